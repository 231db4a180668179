"""TinyBERT's data augmentation for task distillation (Jiao et al., 2020, Algorithm 1).

For each text, every word that is a single word piece of the teacher's vocabulary (and not
punctuation) gets candidates: the masked-LM's top-``K`` predictions (``K = 15``) for that word
masked in its sentence. Then ``N`` times (``N = 20``), each such word is replaced, with probability
``p`` (``p = 0.4``), by one of its candidates drawn uniformly; new texts (not seen before) are kept.
The output holds the original rows and their augmented copies (other columns, e.g. the label,
copied), to be written to a CSV/JSON file that the task recipes read with `train_file`.

Differences from the reference `data_augmentation.py`: words made of several word pieces are kept
as they are (the reference replaces them with GloVe neighbours, which need GloVe vectors), stop
words are not skipped, and candidates that are sub-word pieces (``##…``) or special tokens are
dropped. Only the column named `text_column` is augmented (the first sentence of a pair).

    hf-distill augment --model_name_or_path bert-base-uncased --input train.csv --text_column sentence \\
        --output train_aug.csv
"""

from __future__ import annotations

import argparse
import os
import random
from typing import TYPE_CHECKING, Optional, Sequence

if TYPE_CHECKING:  # pragma: no cover - the command's parser stays light; the rest imports these on use
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def split_words(text: str, tokenizer: "PreTrainedTokenizerBase") -> list[str]:
    """The words of `text` as the tokenizer's pre-tokenizer splits them (whitespace and punctuation)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and backend.pre_tokenizer is not None:
        normalized = backend.normalizer.normalize_str(text) if backend.normalizer is not None else text
        return [word for word, _ in backend.pre_tokenizer.pre_tokenize_str(normalized)]
    return text.split()


def _is_candidate_word(word: str, tokenizer: "PreTrainedTokenizerBase") -> bool:
    if not any(ch.isalpha() for ch in word):
        return False
    pieces = tokenizer.tokenize(word)
    return len(pieces) == 1 and pieces[0] != tokenizer.unk_token


def word_candidates(
    words: Sequence[str],
    model: "PreTrainedModel",
    tokenizer: "PreTrainedTokenizerBase",
    top_k: int = 15,
    max_length: int = 128,
) -> dict[int, list[str]]:
    """Masked-LM candidates for each single-piece word: `{word index: top-k replacement words}`.

    Each word is masked alone in its sentence (one row per word, one forward pass for all).
    """
    import torch

    with torch.no_grad():
        return _word_candidates(words, model, tokenizer, top_k, max_length)


def _word_candidates(words, model, tokenizer, top_k: int, max_length: int) -> dict[int, list[str]]:
    positions = [i for i, word in enumerate(words) if _is_candidate_word(word, tokenizer)]
    if not positions:
        return {}
    sentences = [" ".join(tokenizer.mask_token if j == i else w for j, w in enumerate(words)) for i in positions]
    batch = tokenizer(sentences, return_tensors="pt", padding=True, truncation=True, max_length=max_length)
    device = next(model.parameters()).device
    logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float()
    special = set(tokenizer.all_special_ids)
    result: dict[int, list[str]] = {}
    for row, index in enumerate(positions):
        where = (batch["input_ids"][row] == tokenizer.mask_token_id).nonzero()
        if len(where) == 0:  # truncated away
            continue
        ranked = logits[row, int(where[0])].argsort(descending=True).tolist()
        picks = []
        for token_id in ranked:
            if token_id in special:
                continue
            token = tokenizer.convert_ids_to_tokens(token_id)
            if token.startswith("##") or token == words[index].lower():
                continue
            picks.append(token)
            if len(picks) == top_k:
                break
        if picks:
            result[index] = picks
    return result


def augment_text(
    text: str,
    model: "PreTrainedModel",
    tokenizer: "PreTrainedTokenizerBase",
    probability: float = 0.4,
    top_k: int = 15,
    num_copies: int = 20,
    rng: Optional[random.Random] = None,
) -> list[str]:
    """Up to `num_copies` new variants of `text` (Algorithm 1 of TinyBERT; see the module docstring).

    Returns:
        `list[str]`: The distinct new texts (the original excluded), words joined by spaces.
    """
    rng = rng or random.Random(0)
    words = split_words(text, tokenizer)
    candidates = word_candidates(words, model, tokenizer, top_k=top_k)
    seen = {" ".join(words)}
    variants = []
    for _ in range(num_copies):
        new_words = list(words)
        for index, options in candidates.items():
            if rng.random() < probability:
                new_words[index] = rng.choice(options)
        sentence = " ".join(new_words)
        if sentence not in seen:
            seen.add(sentence)
            variants.append(sentence)
    return variants


def augment_dataset(
    dataset: "Dataset",
    model: "PreTrainedModel",
    tokenizer: "PreTrainedTokenizerBase",
    text_column: str,
    probability: float = 0.4,
    top_k: int = 15,
    num_copies: int = 20,
    seed: int = 0,
) -> "Dataset":
    """The rows of `dataset`, each followed by its augmented copies (other columns copied).

    Args:
        dataset (`Dataset`): Task data with a text column.
        model (`PreTrainedModel`): A masked LM with the tokenizer's vocabulary (e.g. BERT-base).
        tokenizer (`PreTrainedTokenizerBase`): Its tokenizer.
        text_column (`str`): The column to augment.
        probability (`float`, defaults to 0.4): ``p``, chance that a word is replaced.
        top_k (`int`, defaults to 15): ``K``, candidates per word.
        num_copies (`int`, defaults to 20): ``N``, tries per text (duplicates are dropped).
        seed (`int`, defaults to 0): Seed of the replacements.

    Returns:
        `Dataset`: Same columns, original rows included.
    """
    if text_column not in dataset.column_names:
        raise ValueError(f"No column {text_column!r} to augment (columns: {dataset.column_names}).")
    if tokenizer.mask_token_id is None:
        raise ValueError("Augmentation needs a masked-LM tokenizer with a mask token (e.g. BERT's).")
    if not 0 <= probability <= 1 or top_k < 1 or num_copies < 1:
        raise ValueError(f"Need 0 <= p <= 1, k >= 1, N >= 1; got p={probability}, k={top_k}, N={num_copies}.")
    from datasets import Dataset

    rng = random.Random(seed)
    model.eval()
    rows: dict[str, list] = {name: [] for name in dataset.column_names}
    for example in dataset:
        texts = [example[text_column]]
        texts += augment_text(example[text_column], model, tokenizer, probability, top_k, num_copies, rng)
        for text in texts:
            for name in dataset.column_names:
                rows[name].append(text if name == text_column else example[name])
    return Dataset.from_dict(rows, features=dataset.features)


_READERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json"}


def augment_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-distill augment", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_name_or_path", required=True, help="Masked LM proposing the replacements.")
    parser.add_argument("--input", required=True, help="CSV/TSV/JSON(L) task file.")
    parser.add_argument("--output", required=True, help="Where to write the augmented file (.csv or .json/.jsonl).")
    parser.add_argument("--text_column", required=True, help="Column to augment.")
    parser.add_argument("--probability", type=float, default=0.4, help="p: chance a word is replaced (0.4).")
    parser.add_argument("--top_k", type=int, default=15, help="K: masked-LM candidates per word (15).")
    parser.add_argument("--num_copies", type=int, default=20, help="N: augmented tries per text (20).")
    parser.add_argument("--max_samples", type=int, default=None, help="Augment only the first rows.")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def run_augment(
    model_name_or_path: str,
    input: str,
    output: str,
    text_column: str,
    probability: float = 0.4,
    top_k: int = 15,
    num_copies: int = 20,
    max_samples: Optional[int] = None,
    seed: int = 0,
) -> "Dataset":
    """Reads a task file, augments it and writes the result (`hf-distill augment`)."""
    from datasets import load_dataset
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from ..modeling import check_model_path

    extension = os.path.splitext(input)[1].lower()
    if extension not in _READERS:
        raise ValueError(f"Cannot read {input!r}: use a .csv, .tsv, .json or .jsonl file.")
    if not os.path.isfile(input):
        raise FileNotFoundError(f"The input file {input!r} does not exist.")
    out_extension = os.path.splitext(output)[1].lower()
    if out_extension not in (".csv", ".json", ".jsonl"):
        raise ValueError(f"Write the augmented data to a .csv or .json/.jsonl file, got {output!r}.")
    kwargs = {"delimiter": "\t", "quoting": 3} if extension == ".tsv" else {}
    dataset = load_dataset(_READERS[extension], data_files=input, split="train", **kwargs)
    if max_samples is not None:
        dataset = dataset.select(range(min(max_samples, len(dataset))))
    check_model_path(model_name_or_path, "augmentation model")
    tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
    model = AutoModelForMaskedLM.from_pretrained(model_name_or_path, use_safetensors=True)
    augmented = augment_dataset(dataset, model, tokenizer, text_column, probability, top_k, num_copies, seed)
    if out_extension == ".csv":
        augmented.to_csv(output, index=False)
    else:
        augmented.to_json(output, lines=True)
    print(f"Wrote {len(augmented)} rows ({len(dataset)} original) to {output}")
    return augmented
