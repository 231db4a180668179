"""Setup checks that run before the first training step, as pure functions.

Each takes the models, the data or the config, and raises `ValueError` (or `TypeError`) with one
message that names the problem and the fix; none trains or changes anything. The trainers call them
from `__init__`, the recipe runners before loading what they do not need yet.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Optional

from .terms import TEACHER_LOGITS

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn
    from transformers import TrainingArguments

    from .config import DistillationConfigBase

LABEL_COLUMNS = ("labels", "label", "label_ids")


def is_masked_lm(model: "nn.Module") -> bool:
    """Whether the model is a `*ForMaskedLM` (its own loss is the masked-LM loss)."""
    return type(model).__name__.endswith("ForMaskedLM")


def is_classifier(model: "nn.Module") -> bool:
    """Whether the model is a sequence or token classifier (soft targets need the same label space)."""
    return type(model).__name__.endswith(("ForSequenceClassification", "ForTokenClassification"))


def check_teacher_need(config: "DistillationConfigBase", has_teacher: bool, cached_logits: bool = False) -> None:
    """A teacher is there exactly when a term that needs one is on (over the whole schedule).

    Args:
        config (`DistillationConfigBase`): The family's config; its `TERMS` say which need a teacher.
        has_teacher (`bool`): Whether the trainer has a live teacher (a model, an ensemble or the EMA).
        cached_logits (`bool`, defaults to `False`): Whether the training set carries the teacher's logits,
            which serve the terms that need only logits.

    Raises:
        ValueError: When a teacher term is on without a teacher, or a teacher is given that no term uses.
    """
    maxima = config.max_loss_weights
    on = [term for term in config.TERMS if term.needs_teacher and maxima[term.weight_field] > 0]
    live = [term for term in on if not (cached_logits and term.teacher == TEACHER_LOGITS)]
    if not has_teacher and live:
        cached = (f" (the teacher_logits column serves {', '.join(t.weight_field for t in on if t not in live)} only)"
                  if cached_logits else "")
        raise ValueError(
            f"{', '.join(term.weight_field for term in live)} > 0 needs a teacher{cached}: pass teacher_model=... "
            "(a model or a path) or set teacher_model_name_or_path, or set those weights to 0 for a no-teacher "
            "baseline."
        )
    if has_teacher and not on:
        teacher_terms = [term.weight_field for term in config.TERMS if term.needs_teacher]
        raise ValueError(
            f"A teacher was given but every teacher-based weight ({', '.join(teacher_terms) or 'none in this family'}) "
            "is 0: set one of them > 0, or drop the teacher for a no-teacher baseline."
        )


def check_student_and_teacher(
    student: "nn.Module", teacher: Optional["nn.Module"], config: "DistillationConfigBase"
) -> None:
    """The task and general families: the student's head and the teacher fit the terms that are on.

    Raises:
        ValueError: For an MLM term on a model that has no masked-LM head (or a task term on one), teachers
            whose vocabulary, label space, label order or head differ from the student's, or an attention
            term between models of different head counts.
    """
    maxima = config.max_loss_weights
    if maxima["mlm_weight"] > 0 and not is_masked_lm(student):
        raise ValueError(
            f"mlm_weight > 0 needs a *ForMaskedLM student, got {type(student).__name__}: set mlm_weight=0."
        )
    if maxima["task_weight"] > 0 and is_masked_lm(student):
        raise ValueError(
            "The student is a masked LM: its own loss is the MLM loss. Use mlm_weight instead of task_weight."
        )
    if teacher is None:
        return
    s_cfg, t_cfg = student.config, teacher.config
    s_vocab, t_vocab = getattr(s_cfg, "vocab_size", None), getattr(t_cfg, "vocab_size", None)
    if s_vocab != t_vocab:
        raise ValueError(
            f"Teacher and student vocabularies differ (teacher vocab_size={t_vocab}, student {s_vocab}): "
            "they must share a tokenizer. Build the student with create_student(teacher, ...)."
        )
    if maxima["kd_weight"] > 0 and is_classifier(student):
        if s_cfg.num_labels != t_cfg.num_labels:
            raise ValueError(
                f"Teacher has num_labels={t_cfg.num_labels}, student {s_cfg.num_labels}: soft targets need the "
                "same label space. Build the student from the teacher (create_student) or fix num_labels."
            )
        if dict(s_cfg.id2label) != dict(t_cfg.id2label):
            raise ValueError(
                f"Teacher and student label orders differ: teacher id2label={dict(t_cfg.id2label)}, student "
                f"{dict(s_cfg.id2label)}. Give the student the teacher's id2label/label2id."
            )
    if maxima["kd_weight"] > 0 and type(student).__name__.split("For")[-1] != type(teacher).__name__.split("For")[-1]:
        raise ValueError(
            f"Teacher {type(teacher).__name__} and student {type(student).__name__} have different heads: "
            "soft targets need the same kind of head (e.g. both *ForSequenceClassification)."
        )
    if maxima["attention_weight"] > 0 and s_cfg.num_attention_heads != t_cfg.num_attention_heads:
        raise ValueError(
            f"attention_weight > 0 needs equal head counts (teacher {t_cfg.num_attention_heads}, student "
            f"{s_cfg.num_attention_heads}): build the student with num_attention_heads="
            f"{t_cfg.num_attention_heads}, or set attention_weight=0."
        )


def check_distributed_setup(has_teacher: bool, args: "TrainingArguments") -> None:
    """Refuses DeepSpeed ZeRO-3 with a teacher: the teacher runs outside the DeepSpeed engine."""
    from transformers.integrations import deepspeed as hf_deepspeed

    if has_teacher and args.deepspeed is not None and hf_deepspeed.is_deepspeed_zero3_enabled():
        raise ValueError(
            "DeepSpeed ZeRO stage 3 partitions every model loaded under it, the teacher included, and the "
            "hf-distill trainers run the teacher outside the DeepSpeed engine. Use ZeRO stage 1 or 2 (the "
            "teacher is kept whole on each device), DDP, or FSDP."
        )


def check_train_columns(
    train_dataset: Any, args: "TrainingArguments", needs_labels: bool, main_input: str = "input_ids",
    why_labels: str = "set task_weight=0 to distil from the teacher alone",
) -> None:
    """A tokenized training set must reach the models: fail now, not at the first step.

    Checked when Trainer drops the columns the model does not take (`remove_unused_columns`, the
    default), so a collator that builds the inputs itself is never in the way.

    Args:
        train_dataset: The training set (a `datasets.Dataset`; anything without `column_names` passes).
        args (`TrainingArguments`): For `remove_unused_columns` and `label_names`.
        needs_labels (`bool`): Whether a term learns from labels.
        main_input (`str`, defaults to `"input_ids"`): The model's main input.
        why_labels (`str`): The way out when labels are missing.
    """
    columns = getattr(train_dataset, "column_names", None)
    if not isinstance(columns, list) or not args.remove_unused_columns:
        return
    if main_input not in columns:
        raise ValueError(
            f"The training dataset has no {main_input} column (columns: {columns}): tokenize the text first, "
            "e.g. dataset.map(lambda batch: tokenizer(batch['sentence'], truncation=True), batched=True)."
        )
    label_columns = {*LABEL_COLUMNS, *(args.label_names or [])}
    if needs_labels and not label_columns & set(columns):
        raise ValueError(
            f"task_weight > 0 but the training dataset has no labels column (columns: {columns}): add a "
            f"'labels' (or 'label') column, or {why_labels}."
        )


def check_cached_logits(student: "nn.Module", dataset: Any, column: str) -> None:
    """The cached logits must fit the student's head: one float per label."""
    first = dataset[0][column] if len(dataset) else None
    num_labels = getattr(student.config, "num_labels", None)
    if first is not None and len(first) != num_labels:
        raise ValueError(
            f"The {column!r} column has {len(first)} values a row but the student has "
            f"num_labels={num_labels}: precompute the logits with a teacher of the same label space."
        )


def check_gradient_checkpointing(args: "TrainingArguments") -> None:
    """Attention scores recorded by hooks need non-reentrant checkpointing to get their gradients."""
    kwargs = args.gradient_checkpointing_kwargs or {}
    if args.gradient_checkpointing and kwargs.get("use_reentrant", True):
        raise ValueError(
            "attention_weight > 0 with reentrant gradient checkpointing cannot train the attention scores: "
            "set gradient_checkpointing_kwargs={'use_reentrant': False}."
        )


def check_same_tokenizer(tokenizer: Any, other_path: str, what: str) -> None:
    """Refuses a model folder whose saved tokenizer maps tokens to ids differently from `tokenizer`."""
    from transformers import AutoTokenizer

    if not any(os.path.isfile(os.path.join(other_path, f)) for f in ("tokenizer.json", "vocab.txt", "vocab.json")):
        return  # no tokenizer saved with it: the teacher's is used
    other = AutoTokenizer.from_pretrained(other_path)
    if other.get_vocab() != tokenizer.get_vocab():
        raise ValueError(
            f"The {what} at {other_path} was saved with a different tokenizer than the teacher's "
            f"({len(other)} vs {len(tokenizer)} tokens, or different ids): teacher and student must share one "
            "tokenizer. Build the student from the teacher (student_layers / student_num_layers)."
        )


def check_unlabelled_examples(
    unlabelled: int, total: int, config: "DistillationConfigBase", has_teacher: bool
) -> None:
    """Refuses training examples without a label when no loss term would learn from them.

    Args:
        unlabelled (`int`): Training examples without a label.
        total (`int`): Training examples.
        config (`DistillationConfigBase`): Its terms say which learn from a teacher.
        has_teacher (`bool`): Whether the run has a teacher.
    """
    if not unlabelled:
        return
    maxima = config.max_loss_weights  # over the whole schedule
    teacher_fields = [term.weight_field for term in config.TERMS if term.needs_teacher]
    if has_teacher and any(maxima[name] > 0 for name in teacher_fields):
        return
    raise ValueError(
        f"{unlabelled:,} of the {total:,} training examples have no label, and this run has no teacher term "
        f"({', '.join(teacher_fields)} > 0 with a teacher), so they would train nothing. Distil from a teacher, "
        "give those examples labels, or drop them from the train file."
    )
