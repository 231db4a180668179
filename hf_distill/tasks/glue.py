"""GLUE: the nine tasks, their data and their official metrics.

Data comes from one of three places, always in the schema of the Hub dataset `nyu-mll/glue` (the task's
text columns, `label` as a `ClassLabel` or a `float32` score for STS-B, and `idx`):

- a local folder in the original GLUE release layout (`<data_dir>/SST-2/train.tsv`, `dev.tsv`, MNLI's
  `dev_matched.tsv`/`dev_mismatched.tsv`), read with `csv` and quoting off, since GLUE sentences contain
  bare quotes, and with MRPC's UTF-8 byte-order mark removed;
- CSV or JSON(L) files that already use the Hub's column names;
- the Hub itself.

Metrics come from `evaluate`'s `glue` module when the Hub is reachable and otherwise from the copy this
package ships in `hf_distill/metrics/glue`. Both return the same keys.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, load_dataset
from transformers import EvalPrediction, PreTrainedTokenizerBase

from ..checks import check_text_column, check_text_file
from ..teacher_inputs import encode_for_teacher

METRIC_SCRIPT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "metrics", "glue")
"""Folder of the shipped `evaluate` metric script (`glue.py`), for `evaluate.load(METRIC_SCRIPT_DIR, name)`."""

HUB_DATASET = "nyu-mll/glue"


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task.

    Attributes:
        name (`str`): Config name on the Hub (`"cola"`, `"sst2"`, `"mrpc"`, `"stsb"`, `"qqp"`, `"mnli"`,
            `"qnli"`, `"rte"`, `"wnli"`).
        text_columns (`tuple[str, ...]`): Text column(s), named as in `nyu-mll/glue`.
        label_names (`tuple[str, ...]`, *optional*): Class names in the Hub's order; `None` for STS-B,
            whose label is a similarity score from 0 to 5.
        metric_names (`tuple[str, ...]`): The keys the task's metric returns.
        eval_splits (`tuple[str, ...]`): Evaluation splits; MNLI has a matched and a mismatched one.
        tsv_dir (`str`): Folder name of the task in the original GLUE release (`"SST-2"`, ...).
    """

    name: str
    text_columns: tuple[str, ...]
    label_names: Optional[tuple[str, ...]]
    metric_names: tuple[str, ...]
    eval_splits: tuple[str, ...]
    tsv_dir: str

    @property
    def is_regression(self) -> bool:
        """Whether the label is a score (STS-B) rather than a class."""
        return self.label_names is None

    @property
    def num_labels(self) -> int:
        """Number of model outputs: 1 for STS-B, else the number of classes."""
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def features(self) -> Features:
        """The Hub's schema for this task: text columns, `label` and `idx`."""
        label = Value("float32") if self.is_regression else ClassLabel(names=list(self.label_names))
        return Features({**{column: Value("string") for column in self.text_columns}, "label": label,
                         "idx": Value("int32")})


_VALIDATION = ("validation",)
GLUE_TASKS: dict[str, GlueTask] = {
    task.name: task
    for task in (
        GlueTask("cola", ("sentence",), ("unacceptable", "acceptable"), ("matthews_correlation",), _VALIDATION,
                 "CoLA"),
        GlueTask("sst2", ("sentence",), ("negative", "positive"), ("accuracy",), _VALIDATION, "SST-2"),
        GlueTask("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), ("accuracy", "f1"),
                 _VALIDATION, "MRPC"),
        GlueTask("stsb", ("sentence1", "sentence2"), None, ("pearson", "spearmanr"), _VALIDATION, "STS-B"),
        GlueTask("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), ("accuracy", "f1"),
                 _VALIDATION, "QQP"),
        GlueTask("mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), ("accuracy",),
                 ("validation_matched", "validation_mismatched"), "MNLI"),
        GlueTask("qnli", ("question", "sentence"), ("entailment", "not_entailment"), ("accuracy",), _VALIDATION,
                 "QNLI"),
        GlueTask("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), ("accuracy",), _VALIDATION,
                 "RTE"),
        GlueTask("wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), ("accuracy",), _VALIDATION,
                 "WNLI"),
    )
}
"""The nine GLUE tasks by Hub config name."""

# Where each field sits in the release's TSV files: a header name, or a column index for CoLA (no header).
_TSV_COLUMNS: dict[str, dict[str, Union[str, int]]] = {
    "cola": {"sentence": 3, "label": 1},
    "sst2": {"sentence": "sentence", "label": "label"},
    "mrpc": {"sentence1": "#1 String", "sentence2": "#2 String", "label": "Quality"},
    "stsb": {"sentence1": "sentence1", "sentence2": "sentence2", "label": "score"},
    "qqp": {"question1": "question1", "question2": "question2", "label": "is_duplicate"},
    "mnli": {"premise": "sentence1", "hypothesis": "sentence2", "label": "gold_label"},
    "qnli": {"question": "question", "sentence": "sentence", "label": "label"},
    "rte": {"sentence1": "sentence1", "sentence2": "sentence2", "label": "label"},
    "wnli": {"sentence1": "sentence1", "sentence2": "sentence2", "label": "label"},
}
_COLA_WIDTH = 4  # source, label, original judgement, sentence
_SPLIT_FILES = {
    "train": "train.tsv",
    "validation": "dev.tsv",
    "validation_matched": "dev_matched.tsv",
    "validation_mismatched": "dev_mismatched.tsv",
}


def get_glue_task(name: Union[str, GlueTask]) -> GlueTask:
    """Looks a task up by its Hub name or its release name, in any case (`"sst2"`, `"SST-2"`, `"sts-b"`).

    Args:
        name (`str` or `GlueTask`): The task name; a `GlueTask` is returned as it is.

    Returns:
        `GlueTask`.

    Raises:
        ValueError: For an unknown name, listing the valid ones.
    """
    if isinstance(name, GlueTask):
        return name
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    if key not in GLUE_TASKS:
        raise ValueError(
            f"Unknown GLUE task {name!r}. Valid names: {', '.join(GLUE_TASKS)} "
            "(release spellings such as 'SST-2' or 'STS-B' also work)."
        )
    return GLUE_TASKS[key]


def _parse_label(task: GlueTask, raw: str, where: str) -> Union[int, float]:
    raw = raw.strip()
    if task.is_regression:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{where}: score {raw!r} is not a number.") from None
    if raw in task.label_names:
        return task.label_names.index(raw)
    if raw.isdigit() and int(raw) < task.num_labels:
        return int(raw)
    raise ValueError(
        f"{where}: unknown label {raw!r} for {task.name}; expected one of {list(task.label_names)} "
        f"or an index below {task.num_labels}."
    )


def read_glue_tsv(path: str, task: Union[GlueTask, str]) -> list[dict]:
    """Reads one file of the original GLUE release into rows of the Hub's schema.

    Quoting is off (GLUE sentences contain bare `"`), a UTF-8 byte-order mark is dropped (MRPC's header
    starts with one), and text fields are stripped of surrounding whitespace (SST-2 keeps a trailing space).
    Blank lines are skipped.

    Args:
        path (`str`): A `train.tsv`, `dev.tsv`, `dev_matched.tsv` or `dev_mismatched.tsv` file.
        task (`GlueTask` or `str`): The task the file belongs to.

    Returns:
        `list[dict]`: One dict per row with the task's text columns, `label` (class index, or float score
        for STS-B) and `idx` (the row's position).

    Raises:
        ValueError: For a header that lacks a needed column, a row with the wrong number of fields, or an
            unknown label; the message names the file and line.
    """
    task = get_glue_task(task)
    columns = _TSV_COLUMNS[task.name]
    check_text_file(path, min_rows=0)
    with open(path, encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE)
        if all(isinstance(column, int) for column in columns.values()):
            header, width, positions = None, _COLA_WIDTH, dict(columns)
        else:
            header = next(reader, None)
            if header is None:
                raise ValueError(f"{path} is empty; expected a {task.tsv_dir} file with a header line.")
            missing = [column for column in columns.values() if column not in header]
            if missing:
                raise ValueError(
                    f"{path}, line 1: the header {header} lacks the column(s) {missing}; "
                    f"is this a {task.tsv_dir} file from the original GLUE release?"
                )
            width, positions = len(header), {field: header.index(column) for field, column in columns.items()}
        rows = []
        for fields in reader:
            if not fields:
                continue
            where = f"{path}, line {reader.line_num}"
            if len(fields) != width:
                raise ValueError(
                    f"{where}: {len(fields)} tab-separated fields, expected {width}. Check that the file is an "
                    "unmodified GLUE release file (tab-separated, read with quoting off) and fix or drop the row."
                )
            row = {field: fields[pos].strip() for field, pos in positions.items() if field != "label"}
            row["label"] = _parse_label(task, fields[positions["label"]], where)
            row["idx"] = len(rows)
            rows.append(row)
    return rows


# How a CSV/JSON file marks an example without a label: an empty cell or null, or -1 (`datasets`' "no label",
# as in GLUE's test splits) or -100 (the ignore index of transformers).
_NO_LABEL_INDICES = (-1, -100)


def _marks_no_label(value: Any) -> bool:
    if isinstance(value, str):  # a label column read as text
        return value.strip() in ("", *map(str, _NO_LABEL_INDICES))
    return value is None or (isinstance(value, float) and math.isnan(value)) or value in _NO_LABEL_INDICES


def _check_and_cast_labels(dataset: Dataset, task: GlueTask, source: str, allow_unlabelled: bool) -> Dataset:
    """Gives a CSV/JSON split the Hub's label feature, checking the values first.

    With `allow_unlabelled` (a training split) an example may lack a label: it becomes -1 (classification,
    `ClassLabel`'s "no label") or NaN (regression), which `DistillationTrainer` leaves out of the task loss
    while the teacher terms still use the example.
    """
    found = dataset.unique("label")
    missing = [value for value in found if _marks_no_label(value)]
    if missing and not allow_unlabelled:
        count = sum(1 for value in dataset["label"] if _marks_no_label(value))
        raise ValueError(
            f"{source}: {count:,} example(s) have no label (an empty cell, null, -1 or -100). An evaluation split "
            "needs a label on every example: fill them in or drop those rows. Examples without a label belong in "
            "the training file, where the teacher terms still learn from them."
        )
    if task.is_regression:
        if missing:
            dataset = dataset.map(lambda batch: {"label": [
                math.nan if _marks_no_label(value) else value for value in batch["label"]
            ]}, batched=True)
        return dataset.cast_column("label", Value("float32"))
    present = [value for value in found if value not in missing]
    strings = dataset.features["label"].dtype in ("string", "large_string")
    if strings:  # names, or indices written as text
        bad = [value for value in present if value not in task.label_names and _string_index(value, task) is None]
    else:
        bad = [value for value in present if not (float(value).is_integer() and 0 <= int(value) < task.num_labels)]
    if bad:
        raise ValueError(
            f"{source}: unknown label(s) {sorted(map(str, bad))} for {task.name}; use the names "
            f"{list(task.label_names)} or their indices 0..{task.num_labels - 1}"
            + (", or leave the label empty for an example without one." if allow_unlabelled else ".")
        )
    if missing or strings:  # class indices, -1 for an example without a label
        def to_index(value: Any) -> int:
            if _marks_no_label(value):
                return -1
            if isinstance(value, str):
                return task.label_names.index(value) if value in task.label_names else _string_index(value, task)
            return int(value)

        dataset = dataset.map(lambda batch: {"label": [to_index(value) for value in batch["label"]]}, batched=True,
                              features=Features({**dataset.features, "label": Value("int64")}))
    return dataset.cast_column("label", ClassLabel(names=list(task.label_names)))


def _string_index(value: str, task: GlueTask) -> Optional[int]:
    """A class index written as text (`"1"`), or `None`."""
    text = str(value).strip()
    return int(text) if text.isdigit() and int(text) < task.num_labels else None


def _load_data_files(task: GlueTask, data_files: dict[str, str], cache_dir: Optional[str]) -> DatasetDict:
    kinds = {}
    for split, path in data_files.items():
        extension = os.path.splitext(path)[1].lower()
        if extension not in (".csv", ".json", ".jsonl"):
            raise ValueError(
                f"data_files[{split!r}] = {path!r}: expected a .csv, .json or .jsonl file. For the original "
                "GLUE .tsv files pass `data_dir` instead."
            )
        kinds[split] = "csv" if extension == ".csv" else "json"
        check_text_file(path, header=extension == ".csv")
    if len(set(kinds.values())) > 1:
        raise ValueError(f"data_files mixes CSV and JSON files ({data_files}); convert them to one format.")
    kind = next(iter(kinds.values()))
    try:
        dataset = load_dataset(kind, data_files=data_files, cache_dir=cache_dir)
    except Exception as error:  # noqa: BLE001 - pyarrow's ArrowInvalid, or datasets' wrapper of it
        if kind != "csv" or task.is_regression or "parse" not in str(error) + str(error.__cause__):
            raise
        # A label column that mixes names and indices ("negative", "1"): type inference fails on it, so every
        # column is read as text and `_check_and_cast_labels` maps names and indices to class indices.
        with open(next(iter(data_files.values())), encoding="utf-8-sig", newline="") as file:
            header = next(csv.reader(file), [])
        dataset = load_dataset(kind, data_files=data_files, cache_dir=cache_dir,
                               features=Features({name: Value("string") for name in header}))
    for split, part in dataset.items():
        missing = [column for column in (*task.text_columns, "label") if column not in part.column_names]
        if missing:
            raise ValueError(
                f"{data_files[split]} lacks the column(s) {missing} that {task.name} needs; "
                f"found {part.column_names}. Rename the columns to {[*task.text_columns, 'label']}."
            )
        check_text_column(part, task.text_columns, data_files[split])
        dataset[split] = _check_and_cast_labels(part, task, data_files[split], allow_unlabelled=split == "train")
    return dataset


def _subset(dataset: Dataset, size: Optional[int], seed: int) -> Dataset:
    if size is None or size >= len(dataset):
        return dataset
    return dataset.shuffle(seed=seed).select(range(size))


def load_glue(
    task: Union[GlueTask, str],
    data_dir: Optional[str] = None,
    data_files: Optional[dict[str, str]] = None,
    cache_dir: Optional[str] = None,
    max_train_samples: Optional[int] = None,
    max_eval_samples: Optional[int] = None,
    seed: int = 42,
) -> DatasetDict:
    """Loads a GLUE task from release files, CSV/JSON files, or the Hub (`nyu-mll/glue`), in that order.

    Args:
        task (`GlueTask` or `str`): The task.
        data_dir (`str`, *optional*):
            Folder in the original GLUE release layout: `<data_dir>/<tsv_dir>/train.tsv` and `dev.tsv`
            (MNLI: `dev_matched.tsv`, `dev_mismatched.tsv`). Splits whose file is absent are left out.
        data_files (`dict[str, str]`, *optional*):
            Split name (`"train"`, `"validation"`, ...) -> CSV or JSON(L) file with the task's text columns
            and `label` (class names or indices; scores for STS-B). With `data_dir`, each file replaces
            that split of the folder (e.g. TinyBERT-augmented training data with the release dev set). In
            the training file an example may have no label (an empty cell, null, -1 or -100): it is kept
            with the label -1 (NaN for a score), and `DistillationTrainer` trains on it with the teacher
            terms only.
        cache_dir (`str`, *optional*): `datasets` cache folder for the Hub and CSV/JSON loaders.
        max_train_samples (`int`, *optional*): Keep a seeded random subset of this size of `train`.
        max_eval_samples (`int`, *optional*): Keep a seeded random subset of this size of each other split.
        seed (`int`, defaults to 42): Seed of the subsets.

    Returns:
        `DatasetDict`: `train` and the task's evaluation splits that exist, with the Hub's columns.

    Raises:
        FileNotFoundError: When `data_dir` holds none of the task's files.
        ValueError: For malformed files, unknown labels, CSV/JSON files that lack a column, or an
            evaluation file with an example that has no label.
    """
    task = get_glue_task(task)
    if data_dir is not None:
        folder = os.path.join(data_dir, task.tsv_dir)
        paths = {split: os.path.join(folder, _SPLIT_FILES[split]) for split in ("train", *task.eval_splits)}
        splits = {
            split: Dataset.from_list(read_glue_tsv(path, task), features=task.features)
            for split, path in paths.items()
            if os.path.isfile(path) and split not in (data_files or {})
        }
        if data_files:  # a file replaces its split of the folder (e.g. an augmented train file)
            splits.update(_load_data_files(task, data_files, cache_dir))
        if not splits:
            raise FileNotFoundError(
                f"No {task.name} data in {data_dir!r}: expected the original GLUE release layout, e.g. "
                f"{list(paths.values())}."
            )
        dataset = DatasetDict(splits)
    elif data_files:
        dataset = _load_data_files(task, data_files, cache_dir)
    else:
        try:
            dataset = load_dataset(HUB_DATASET, task.name, cache_dir=cache_dir)
        except (ConnectionError, OSError) as error:  # offline (HF_HUB_OFFLINE) or no network
            raise ConnectionError(
                f"GLUE {task.name} comes from the Hub ({HUB_DATASET}) when no local data is given, and the Hub cannot "
                f"be reached ({type(error).__name__}): pass --data_dir with the GLUE release files (e.g. "
                f"<dir>/{task.tsv_dir}/train.tsv), or --train_file / --validation_file."
            ) from error
        dataset = DatasetDict({split: part for split, part in dataset.items()
                               if split == "train" or split in task.eval_splits})
    return DatasetDict({
        split: _subset(part, max_train_samples if split == "train" else max_eval_samples, seed)
        for split, part in dataset.items()
    })


def tokenize_glue(
    dataset_dict: DatasetDict,
    task: Union[GlueTask, str],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int = 128,
    padding: Union[bool, str] = False,
    teacher_tokenizer: Optional[PreTrainedTokenizerBase] = None,
    align_teacher_tokens: bool = False,
) -> DatasetDict:
    """Tokenizes the text column(s), as a pair when there are two, for `Trainer`.

    Args:
        dataset_dict (`DatasetDict`): From `load_glue`.
        task (`GlueTask` or `str`): The task.
        tokenizer (`PreTrainedTokenizerBase`): The model's tokenizer.
        max_length (`int`, defaults to 128): Truncation length in tokens.
        padding (`bool` or `str`, defaults to `False`):
            Passed to the tokenizer; the default leaves padding to the data collator.
        teacher_tokenizer (`PreTrainedTokenizerBase`, *optional*): A teacher's own tokenizer: also writes the
            teacher's columns (`hf_distill.teacher_inputs.encode_for_teacher`).
        align_teacher_tokens (`bool`, defaults to `False`): With `teacher_tokenizer`, also the alignment
            `teacher_token_index`.

    Returns:
        `DatasetDict`: The tokenizer's columns plus `labels` (class index, or `float32` score for STS-B);
        the text columns and `idx` are removed.
    """
    task = get_glue_task(task)

    def encode(batch):
        texts = [batch[column] for column in task.text_columns]
        encoded = dict(tokenizer(*texts, truncation=True, max_length=max_length, padding=padding))
        if teacher_tokenizer is not None:
            encoded.update(encode_for_teacher(teacher_tokenizer, texts, max_length,
                                              tokenizer if align_teacher_tokens else None))
        return encoded

    encoded = {}
    for split, part in dataset_dict.items():
        drop = [column for column in (*task.text_columns, "idx") if column in part.column_names]
        part = part.map(encode, batched=True, remove_columns=drop)
        if "label" in part.column_names:
            if task.is_regression:
                part = part.cast_column("label", Value("float32"))
            part = part.rename_column("label", "labels")
        encoded[split] = part
    return DatasetDict(encoded)


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")


def glue_metric(task: Union[GlueTask, str], prefer_hub: bool = True):
    """The task's `evaluate` metric: the Hub's `glue` module when reachable, else the shipped copy.

    Args:
        task (`GlueTask` or `str`): The task.
        prefer_hub (`bool`, defaults to `True`):
            Try `evaluate.load("glue", task.name)` first. It is skipped when `HF_HUB_OFFLINE` or
            `HF_EVALUATE_OFFLINE` is set, and any error from it falls back to the shipped script.

    Returns:
        `evaluate.EvaluationModule`, whose `compute(predictions=..., references=...)` returns
        `task.metric_names`.
    """
    import evaluate

    task = get_glue_task(task)
    offline = _env_true("HF_HUB_OFFLINE") or _env_true("HF_EVALUATE_OFFLINE")
    if prefer_hub and not offline:
        try:
            return evaluate.load("glue", task.name)
        except Exception:  # noqa: BLE001 - an unreachable or failing Hub falls back to the shipped copy
            pass
    return evaluate.load(METRIC_SCRIPT_DIR, task.name)


def build_compute_metrics(task: Union[GlueTask, str]) -> Callable[[EvalPrediction], dict]:
    """Builds `compute_metrics` for `Trainer`: argmax of the logits for classes, the raw output for STS-B.

    Args:
        task (`GlueTask` or `str`): The task.

    Returns:
        `Callable[[EvalPrediction], dict[str, float]]`: Maps predictions to the task's metrics.
    """
    task = get_glue_task(task)
    metric = glue_metric(task)

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions
        logits = np.asarray(logits[0] if isinstance(logits, (tuple, list)) else logits)
        labels = np.asarray(prediction.label_ids)
        if task.is_regression:
            if logits.ndim > 1 and logits.shape[-1] != 1:
                raise ValueError(f"stsb expects one output per example, got predictions of shape {logits.shape}.")
            predictions, labels = logits.reshape(-1), labels.reshape(-1)
        else:
            predictions = np.argmax(logits, axis=-1)
        values = metric.compute(predictions=predictions, references=labels)
        return {key: float(value) for key, value in values.items()}

    return compute_metrics


def primary_score(task: Union[GlueTask, str], metrics: dict) -> float:
    """The single number used for retention: the mean of the task's metrics, as GLUE's leaderboard does.

    MRPC and QQP average accuracy and F1, STS-B averages Pearson and Spearman; the other tasks have one
    metric. Keys may carry `Trainer`'s `eval_` prefix.

    Args:
        task (`GlueTask` or `str`): The task.
        metrics (`dict`): Metric values, e.g. from `compute_metrics` or `Trainer.evaluate()`.

    Returns:
        `float`.

    Raises:
        KeyError: When one of the task's metrics is missing.
    """
    task = get_glue_task(task)
    values = []
    for name in task.metric_names:
        key = next((key for key in (name, f"eval_{name}") if key in metrics), None)
        if key is None:
            raise KeyError(f"{task.name} needs the metric {name!r} (or 'eval_{name}'); got {sorted(metrics)}.")
        values.append(float(metrics[key]))
    return sum(values) / len(values)
