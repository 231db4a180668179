"""A cache for help texts that need the training stack to build (`hf-distill train --help`).

The help of `hf-distill train` lists every `TrainingArguments` field, and building it imports torch and
transformers (several seconds). The text is built once and kept in
`$HF_DISTILL_CACHE` (default `$XDG_CACHE_HOME/hf-distill`, else `~/.cache/hf-distill`), under a key made
of the versions of hf-distill and transformers, the dataclasses it lists and the modification times of
hf-distill's own files, so an upgrade or an edit builds it again. A cache that cannot be written is
skipped silently: the help is then built every time.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Sequence

_PACKAGE_DIR = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """Where cached texts live."""
    if os.environ.get("HF_DISTILL_CACHE"):
        return Path(os.environ["HF_DISTILL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hf-distill"


def _fingerprint(name: str, parts: Sequence[str]) -> str:
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    try:
        transformers_version = version("transformers")
    except PackageNotFoundError:  # pragma: no cover - transformers is a requirement
        transformers_version = "none"
    digest = hashlib.sha256()
    for item in (name, __version__, transformers_version, *parts):
        digest.update(item.encode() + b"\0")
    for path in sorted(_PACKAGE_DIR.rglob("*.py")):
        digest.update(f"{path.relative_to(_PACKAGE_DIR)}:{path.stat().st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def cached_text(name: str, parts: Sequence[str], build: Callable[[], str]) -> str:
    """The text cached under `name` and `parts`, built with `build()` and stored when missing.

    Args:
        name (`str`): What the text is (part of the file name), e.g. `"train-task"`.
        parts (`Sequence[str]`): Anything else the text depends on (e.g. dataclass paths).
        build (`Callable[[], str]`): Makes the text.

    Returns:
        `str`: The text.
    """
    path = cache_dir() / f"{name}-{_fingerprint(name, parts)}.txt"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    text = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text(text, encoding="utf-8")
        os.replace(scratch, path)
    except OSError:
        pass
    return text
