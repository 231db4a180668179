"""Cached teacher outputs: run the teacher once over a dataset, train without it afterwards."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from datasets import Dataset, Sequence, Value
from torch import nn
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

TEACHER_LOGITS_COLUMN = "teacher_logits"


@torch.no_grad()
def precompute_teacher_outputs(
    teacher: nn.Module,
    dataset: Dataset,
    batch_size: int = 64,
    data_collator: Optional[Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]] = None,
    tokenizer: Optional[PreTrainedTokenizerBase] = None,
    device: Optional[torch.device | str] = None,
    column: str = TEACHER_LOGITS_COLUMN,
) -> Dataset:
    """Adds the teacher's logits to `dataset` as a column, for `DistillationTrainer` without a teacher.

    The teacher runs once, in eval mode (dropout off) and in float32, so a trainer given the
    returned dataset and no teacher computes the same soft-target loss as one running the teacher
    live. Each row gets `num_labels` floats (4 bytes each, held by the Arrow table; save it with
    `dataset.save_to_disk` to reuse it across runs). Only sequence-level heads (classification and
    regression) are cached: token-level logits (masked LM, token classification) are
    `sequence length × classes` floats a row, and intermediate-layer losses (cosine, hidden,
    embedding, attention) still need the live teacher.

    Args:
        teacher (`nn.Module`): The teacher, e.g. an `*ForSequenceClassification` model.
        dataset (`datasets.Dataset`): Tokenized examples (`input_ids`, `attention_mask`, ...).
        batch_size (`int`, defaults to 64): Examples per teacher forward.
        data_collator (`Callable`, *optional*): Builds a batch from rows; defaults to
            `DataCollatorWithPadding(tokenizer)`, or right-padding with 0 when no tokenizer is given.
        tokenizer (`PreTrainedTokenizerBase`, *optional*): For the default collator.
        device (`torch.device` or `str`, *optional*): Where to run the teacher; defaults to where it is.
        column (`str`, defaults to `"teacher_logits"`): Name of the new column.

    Returns:
        `datasets.Dataset`: `dataset` with the new column (same rows, same order).

    Raises:
        ValueError: When `dataset` already has the column, or the teacher's logits are token-level.
    """
    if column in dataset.column_names:
        raise ValueError(f"The dataset already has a {column!r} column: remove it first, or pass another column=.")
    was_training = teacher.training
    teacher.eval()
    device = torch.device(device) if device is not None else next(teacher.parameters()).device
    input_names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in dataset.column_names]
    inputs_only = dataset.select_columns(input_names)
    collate = data_collator or (DataCollatorWithPadding(tokenizer) if tokenizer is not None else _pad_right)
    rows: list[list[float]] = []
    try:
        for batch in DataLoader(inputs_only, batch_size=batch_size, shuffle=False, collate_fn=collate):
            batch = {k: v.to(device) for k, v in batch.items() if k in input_names}
            logits = teacher(**batch).logits
            if logits.dim() != 2:
                raise ValueError(
                    f"The teacher's logits have shape {tuple(logits.shape)}: only sequence-level heads "
                    "(batch, num_labels) are cached. Run token-level teachers live."
                )
            rows.extend(logits.float().cpu().tolist())
    finally:
        teacher.train(was_training)
    return dataset.add_column(column, rows, feature=Sequence(Value("float32")))


def _pad_right(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    length = max(len(f["input_ids"]) for f in features)
    return {
        key: torch.tensor([list(f[key]) + [0] * (length - len(f[key])) for f in features])
        for key in features[0]
    }
