"""A teacher with its own tokenizer: its inputs beside the student's, their padding, and a token alignment.

When teacher and student tokenize text differently (another vocabulary, e.g. a RoBERTa or multilingual
teacher for a BERT student), each must read the text its own way. The training set then carries the
teacher's tokens in columns of their own:

- `teacher_input_ids`, `teacher_attention_mask` and (when the teacher's tokenizer makes them)
  `teacher_token_type_ids`: the same text through the teacher's tokenizer (`add_teacher_inputs`, or
  `encode_for_teacher` inside your own `dataset.map`);
- `teacher_token_index` (optional, an *alignment*): for each student token, the position of the teacher
  token that holds its first character (−1 where there is none: padding, a special token other than the
  first, text the teacher's truncation cut). It lets the token-level hidden-state terms (`hidden`,
  `embedding`, `cosine`) compare each student token with a teacher token.

`TeacherInputsCollator` pads the teacher's columns with the teacher's tokenizer and the student's with
the student's collator; the trainer hands the teacher its columns under the usual names (`teacher_view`)
and never shows them to the student.

What works across tokenizers without an alignment: the sequence-level terms, soft targets of
classification and regression heads (`kd`, also from a cached `teacher_logits` column) and the pooled
representation (`pooled`). Token-level soft targets, attention scores and MiniLM relations need the same
tokens on both sides and are refused.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional, Sequence

import torch

TEACHER_PREFIX = "teacher_"
TEACHER_INPUT_COLUMNS = ("teacher_input_ids", "teacher_attention_mask", "teacher_token_type_ids")
"""The teacher's own tokenization of each example."""
TEACHER_TOKEN_INDEX = "teacher_token_index"
"""For each student token, the position of the teacher token holding its first character, or −1."""
NO_TEACHER_TOKEN = -1

__all__ = [
    "TEACHER_INPUT_COLUMNS", "TEACHER_TOKEN_INDEX", "TeacherInputsCollator", "add_teacher_inputs", "align_to_student",
    "encode_for_teacher", "has_teacher_inputs", "load_teacher_tokenizer", "teacher_dataset", "teacher_view",
]


def load_teacher_tokenizer(name_or_path: str, revision: Optional[str] = None) -> Any:
    """The teacher's tokenizer, from a folder or the Hub (never with `trust_remote_code`)."""
    from transformers import AutoTokenizer

    from .modeling import check_model_path

    path = os.path.expanduser(name_or_path)
    check_model_path(path, "teacher tokenizer")
    return AutoTokenizer.from_pretrained(path, revision=revision)


def has_teacher_inputs(dataset: Any) -> bool:
    """Whether a dataset carries the teacher's own tokenization (`teacher_input_ids`)."""
    return TEACHER_INPUT_COLUMNS[0] in (getattr(dataset, "column_names", None) or [])


def _first_character_alignment(student: Any, teacher: Any, row: int) -> list[int]:
    """`teacher_token_index` of one example from the two tokenizers' offsets (see the module docstring)."""
    s_offsets, t_offsets = student["offset_mapping"][row], teacher["offset_mapping"][row]
    s_sequences, t_sequences = student.sequence_ids(row), teacher.sequence_ids(row)
    owner = {}  # (sequence, character) -> the teacher token holding it
    for t_position, ((t_start, t_end), t_sequence) in enumerate(zip(t_offsets, t_sequences)):
        if t_sequence is not None:
            for character in range(t_start, t_end):
                owner.setdefault((t_sequence, character), t_position)
    index = []
    for position, ((start, end), sequence) in enumerate(zip(s_offsets, s_sequences)):
        if sequence is None or end <= start:
            # Special tokens: the first (the classification token) maps onto the teacher's first.
            index.append(0 if position == 0 and t_sequences and t_sequences[0] is None else NO_TEACHER_TOKEN)
        else:
            index.append(owner.get((sequence, start), NO_TEACHER_TOKEN))
    return index


def encode_for_teacher(
    teacher_tokenizer: Any,
    texts: Sequence[Sequence[str]],
    max_length: Optional[int] = None,
    student_tokenizer: Any = None,
) -> dict[str, list]:
    """The teacher's columns for a batch of texts (a `dataset.map(..., batched=True)` function's result).

    Args:
        teacher_tokenizer (`PreTrainedTokenizerBase`): The teacher's tokenizer.
        texts (`Sequence[Sequence[str]]`): One list of strings per text column (two for sentence pairs).
        max_length (`int`, *optional*): Truncation length of both tokenizations; the tokenizers' own limit by default.
        student_tokenizer (`PreTrainedTokenizerBase`, *optional*): Also writes `teacher_token_index`, the
            alignment (fast tokenizers only: it reads their character offsets). The student's tokens must be
            the ones this tokenizer makes with the same `max_length`.

    Returns:
        `dict[str, list]`: `teacher_input_ids`, `teacher_attention_mask`, `teacher_token_type_ids` when the
        teacher's tokenizer makes them, and `teacher_token_index` with a student tokenizer.
    """
    align = student_tokenizer is not None
    options = {"truncation": True, "max_length": max_length, "return_offsets_mapping": align}
    teacher = teacher_tokenizer(*texts, **options)
    columns = {TEACHER_PREFIX + key: value for key, value in teacher.items() if key != "offset_mapping"}
    if align:
        if not (getattr(teacher_tokenizer, "is_fast", False) and getattr(student_tokenizer, "is_fast", False)):
            raise ValueError("The token alignment reads character offsets, which only fast tokenizers give: load both "
                             "tokenizers with AutoTokenizer (use_fast=True), or leave the alignment out.")
        student = student_tokenizer(*texts, **options)
        columns[TEACHER_TOKEN_INDEX] = [_first_character_alignment(student, teacher, row)
                                        for row in range(len(student["input_ids"]))]
    return columns


def add_teacher_inputs(
    dataset: Any,
    teacher_tokenizer: Any,
    text_columns: Sequence[str],
    max_length: Optional[int] = None,
    student_tokenizer: Any = None,
    batch_size: int = 1000,
) -> Any:
    """Adds the teacher's own tokenization of `text_columns` to a dataset tokenized for the student.

    Args:
        dataset (`datasets.Dataset`): The student's training (or evaluation) set, its text columns still there.
        teacher_tokenizer (`PreTrainedTokenizerBase`): The teacher's tokenizer.
        text_columns (`Sequence[str]`): The text (one column, or two for sentence pairs), in the order the
            student's tokenizer read them.
        max_length (`int`, *optional*): Truncation length; use the student's.
        student_tokenizer (`PreTrainedTokenizerBase`, *optional*): Also adds the alignment `teacher_token_index`
            (needed by `hidden_weight`, `embedding_weight` and `cosine_weight` across tokenizers). It must be the
            tokenizer (and `max_length`) that made the dataset's `input_ids`: a row whose lengths differ is refused.
        batch_size (`int`, defaults to 1000): Rows per `map` batch.

    Returns:
        `datasets.Dataset`: `dataset` with the teacher's columns.

    Raises:
        ValueError: For a missing text column, or an alignment that does not fit the dataset's `input_ids`.
    """
    missing = [column for column in text_columns if column not in dataset.column_names]
    if missing or not text_columns:
        raise ValueError(f"add_teacher_inputs needs the text columns {list(text_columns)} in the dataset; it has "
                         f"{dataset.column_names}. Add the teacher's columns before removing the text.")
    result = dataset.map(
        lambda batch: encode_for_teacher(teacher_tokenizer, [batch[c] for c in text_columns], max_length,
                                         student_tokenizer),
        batched=True, batch_size=batch_size,
    )
    if student_tokenizer is not None and "input_ids" in result.column_names:
        for row, (ids, index) in enumerate(zip(result["input_ids"], result[TEACHER_TOKEN_INDEX])):
            if len(ids) != len(index):
                raise ValueError(
                    f"Row {row}: the student's input_ids have {len(ids)} tokens but student_tokenizer makes "
                    f"{len(index)}: pass the tokenizer and max_length that tokenized the dataset."
                )
    return result


def teacher_view(inputs: dict[str, Any]) -> dict[str, Any]:
    """The teacher's inputs of a batch under the usual names (`teacher_input_ids` → `input_ids`, ...)."""
    return {name[len(TEACHER_PREFIX):]: inputs[name] for name in TEACHER_INPUT_COLUMNS if name in inputs}


def teacher_dataset(dataset: Any) -> Any:
    """A dataset with the teacher's columns as its inputs (and the labels), to evaluate the teacher alone."""
    keep = [c for c in (*TEACHER_INPUT_COLUMNS, "labels", "label") if c in dataset.column_names]
    dataset = dataset.select_columns(keep)
    return dataset.rename_columns({c: c[len(TEACHER_PREFIX):] for c in TEACHER_INPUT_COLUMNS if c in keep})


def align_to_student(teacher_states: torch.Tensor, token_index: torch.Tensor) -> torch.Tensor:
    """Teacher states at the positions the alignment gives, one per student token (zeros where it gives −1).

    Args:
        teacher_states (`torch.Tensor` of shape `(batch, teacher_seq, d)`): e.g. one layer's hidden states.
        token_index (`torch.Tensor` of shape `(batch, student_seq)`): `teacher_token_index`.

    Returns:
        `torch.Tensor` of shape `(batch, student_seq, d)`.
    """
    valid = token_index >= 0
    gather = token_index.clamp(min=0).unsqueeze(-1).expand(-1, -1, teacher_states.shape[-1])
    return torch.gather(teacher_states, 1, gather) * valid.unsqueeze(-1).to(teacher_states.dtype)


class TeacherInputsCollator:
    """Pads a batch whose rows carry the teacher's own tokens: the student's columns with `collator`, the
    teacher's with `teacher_tokenizer.pad`, `teacher_token_index` with −1 to the student's padded length.

    Args:
        collator (`Callable`): The student's collator (e.g. `DataCollatorWithPadding(student_tokenizer)`).
        teacher_tokenizer (`PreTrainedTokenizerBase`): Pads the teacher's columns.
    """

    def __init__(self, collator: Callable[[list[dict[str, Any]]], dict[str, Any]], teacher_tokenizer: Any):
        self.collator = collator
        self.teacher_tokenizer = teacher_tokenizer

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        own = (*TEACHER_INPUT_COLUMNS, TEACHER_TOKEN_INDEX)
        student_rows = [{k: v for k, v in row.items() if k not in own} for row in features]
        batch = dict(self.collator(student_rows))
        if TEACHER_INPUT_COLUMNS[0] in features[0]:
            teacher_rows = [{name[len(TEACHER_PREFIX):]: row[name] for name in TEACHER_INPUT_COLUMNS if name in row}
                            for row in features]
            padded = self.teacher_tokenizer.pad(teacher_rows, return_tensors="pt")
            batch.update({TEACHER_PREFIX + key: value for key, value in padded.items()})
        if TEACHER_TOKEN_INDEX in features[0]:
            length = batch["input_ids"].shape[1]
            batch[TEACHER_TOKEN_INDEX] = torch.tensor(
                [list(row[TEACHER_TOKEN_INDEX]) + [NO_TEACHER_TOKEN] * (length - len(row[TEACHER_TOKEN_INDEX]))
                 for row in features])
        return batch
