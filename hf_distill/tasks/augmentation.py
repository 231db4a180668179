"""TinyBERT's data augmentation for task distillation (Jiao et al., 2020, Algorithm 1).

Each text is split into words and some words get candidate replacements. Then, ``N`` times, each such word is
replaced with probability ``p`` by one of its candidates drawn uniformly, and the new texts are kept. The output
holds the original rows and their augmented copies (other columns, e.g. the label, copied), to be written to a
CSV/JSON file that the task recipes read with `train_file`. There are two modes.

``mode="default"`` (``p = 0.4``, ``K = 15``, ``N = 20``, the paper's values): a word that is a single word piece
of the teacher's vocabulary (and not punctuation or ``[UNK]``) gets the masked LM's top-``K`` predictions for that
word masked in its sentence, the sentence fed alone (``[CLS] masked [SEP]``). The original word, sub-word pieces
(``##…``) and special tokens are skipped until ``K`` are found. Other words are kept. Each column is augmented on
its own: a copy changes one column and keeps the others as they were. Where it differs from the reference
`TinyBERT/data_augmentation.py` (huawei-noah/Pretrained-Language-Model): the reference feeds
``[CLS] masked [SEP] original [SEP]``, keeps the original word among the candidates, skips stop words, only
considers words of letters a-z, replaces words of several pieces with GloVe neighbours and makes 30 copies
(10 or 20 for some tasks).

``mode="reference"`` does what that script does, as its authors ran it:

- the words are the tokenizer's basic words (lower-cased for an uncased model). A word is considered when it is
  made of the letters a-z only and is not one of the reference's 173 stop words (`STOP_WORDS`);
- a word of one word piece is masked, and the masked LM reads ``[CLS] masked sentence [SEP] original sentence
  [SEP]`` (segment ids 0 up to and including the first ``[SEP]``, 1 after it), cut at 512 tokens. Its candidates
  are the top ``K`` pieces at the mask, less those that begin with ``##``, so fewer than ``K`` may remain. The
  original word is kept when it is among them, so a "replacement" may leave the word as it was;
- a word of several pieces gets its ``K`` nearest GloVe words by cosine similarity (`GloveNeighbours`: the first
  100,000 words of a ``word v1 v2 ...`` file, the word itself left out, title-cased when the word is). A word that
  GloVe lacks, or every such word when no GloVe file is given, keeps itself as its only candidate, so it stays;
- for each copy and each word, a candidate is drawn, then the word is replaced with probability ``p = 0.4``. A copy
  is kept when its text (the words joined by spaces) differs from the original text and from the copies so far.
  The word as the tokenizer normalised it counts as new, so the unchanged sentence in that form can be a copy;
- ``N`` is 30, or the reference's value for the GLUE task (`REFERENCE_NUM_COPIES`, `--task_name`: 10 for MNLI and
  QQP, 20 for SST-2 and QNLI);
- in a pair, each sentence is augmented in turn (first, then second), and each of its texts (the original, then
  its copies) is written as one row. The row is changed in place as the reference changes it. So the second
  sentence's rows carry the first sentence's last copy, and that row appears twice (it ends the first sentence's
  rows and opens the second's).

What still differs in reference mode, and why:

- special tokens (``[CLS]``, ``[SEP]``, ``[MASK]``, ``[PAD]``, ``[UNK]``) are not candidates. The reference keeps
  them, but written into the task file they would become real special tokens when the recipe tokenizes it;
- without a GloVe file, words of several pieces stay as they are. The reference requires the file;
- the masked LM reads all masked copies of a sentence in one batch. They have the same length, so there is no
  padding, and the logits equal the reference's one-at-a-time passes up to float rounding. The length is cut at
  the smaller of 512 and the model's position table;
- the draws come from `random.Random(seed)` in the reference's order (candidate, then the ``p`` test). The
  reference uses Python's unseeded global generator, so its output cannot be reproduced draw for draw;
- the tokenizer is the model folder's own, with its own casing. The reference's tokenizer lower-cases every
  model, which changes nothing for the uncased BERT it was run with;
- a GloVe line that does not parse is refused with its line number, where the reference fails with a numpy
  error. Zero vectors (``<unk>``) are never neighbours, where the reference sorts their NaN similarities last.
  Equal similarities keep file order;
- the output is the input's format (CSV/JSON with a header) rather than ``train_aug.tsv``, and an explicit
  ``--num_copies`` wins over the task's ``N``. In the reference, the task's value wins.

    hf-distill augment --model_name_or_path bert-base-uncased --input train.csv --text_column sentence \\
        --output train_aug.csv
    hf-distill augment --mode reference --model_name_or_path bert-base-uncased --input train.csv \\
        --task_name mrpc --glove_file glove.6B.300d.txt --output train_aug.csv
"""

from __future__ import annotations

import argparse
import os
import random
import re
from itertools import accumulate
from typing import TYPE_CHECKING, Optional, Sequence, Union

if TYPE_CHECKING:  # pragma: no cover - the command's parser stays light; the rest imports these on use
    import numpy as np
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

MODES = ("default", "reference")
"""`mode="default"`: hf-distill's augmentation; `mode="reference"`: the authors' `data_augmentation.py`."""

DEFAULT_NUM_COPIES = 20
"""``N`` of the default mode (the paper's value)."""

REFERENCE_NUM_COPIES = {"cola": 30, "sst2": 20, "mrpc": 30, "stsb": 30, "qqp": 10, "mnli": 10, "qnli": 20, "rte": 30}
"""``N`` of the reference per GLUE task (`REFERENCE_DEFAULT_NUM_COPIES` for any other data)."""

REFERENCE_DEFAULT_NUM_COPIES = 30
"""``N`` of the reference's command (``--N``), used for data of no listed task."""

REFERENCE_MAX_LENGTH = 512
"""The reference cuts the masked LM's input at 512 tokens, and finds no candidates for a word past it."""

GLOVE_MAX_WORDS = 100_000
"""The reference reads the first 100,000 words of the GloVe file."""

# The reference's stop-word list (NLTK's English list and "'s", "'re"), transcribed. The words with an apostrophe
# can never match a word, since the tokenizer splits at the apostrophe; they are kept to keep the list whole.
STOP_WORDS = frozenset(
    """
    i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves he him his
    himself she she's her hers herself it it's its itself they them their theirs themselves this that that'll
    these those am is are was were be been being have has had having do does did doing a an the and but if or
    because as until while of at by for with about against between into through during before after above below
    to from up down in out on off over under again further then once here there all any both each few more most
    other some such no nor not only own same so than too very s t can will just don don't should should've now d
    ll m o re ve y ain aren aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn hasn't haven haven't
    isn isn't ma mightn mightn't mustn mustn't needn needn't shan shan't shouldn shouldn't wasn wasn't weren
    weren't won won't wouldn wouldn't 's 're
    """.split()
)
"""The 173 stop words that reference mode never replaces."""


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


class GloveNeighbours:
    """Nearest GloVe words by cosine similarity, as the reference finds them for words of several word pieces.

    Args:
        words (`list[str]`): The GloVe words, in file order.
        vectors (`np.ndarray` of shape `(len(words), dim)`): Their vectors.

    Calling it with a word gives its `k` nearest words (the word itself left out), title-cased when the word is;
    a word without a vector gives `[]`. As in the reference, ``<unk>``, zero vectors and all but the last of a word
    given twice are never neighbours.
    """

    def __init__(self, words: Sequence[str], vectors: "np.ndarray") -> None:
        import numpy as np

        vectors = np.asarray(vectors, dtype=np.float64)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.words = list(words)
        self.index = {word: i for i, word in enumerate(self.words)}  # a word given twice: its last vector
        self.unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
        self.usable = np.zeros(len(self.words), dtype=bool)
        self.usable[[i for word, i in self.index.items() if word != "<unk>"]] = True
        self.usable &= norms[:, 0] > 0
        self._cache: dict[tuple[str, int], list[str]] = {}

    @classmethod
    def from_file(cls, path: Union[str, os.PathLike], max_words: int = GLOVE_MAX_WORDS) -> "GloveNeighbours":
        """Reads the first `max_words` words of a GloVe text file (``word v1 v2 ...`` on each line).

        Raises:
            `FileNotFoundError`: The file does not exist.
            `ValueError`: A line is not a word followed by as many numbers as the first line has.
        """
        import numpy as np

        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"The GloVe file {path!r} does not exist: pass a GloVe text file, e.g. glove.6B.300d.txt."
            )
        words: list[str] = []
        vectors: list[list[float]] = []
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if len(words) == max_words:
                    break
                items = line.split()
                if not items:
                    continue
                try:
                    values = [float(item) for item in items[1:]]
                except ValueError:
                    bad = next(item for item in items[1:] if not _is_number(item))
                    raise ValueError(
                        f"{path}, line {number}: {bad!r} is not a number; a GloVe file is text with one "
                        f"'word v1 v2 ...' per line."
                    ) from None
                if not vectors and len(values) == 1 and items[0].isdigit() and float(items[1]).is_integer():
                    raise ValueError(
                        f"{path}, line 1: {line.strip()!r} looks like a word2vec header (count, size); remove the "
                        f"first line to give the file GloVe's 'word v1 v2 ...' format."
                    )
                if not values or (vectors and len(values) != len(vectors[0])):
                    expected = len(vectors[0]) if vectors else "some"
                    raise ValueError(
                        f"{path}, line {number}: expected a word and {expected} numbers, got {len(values)} numbers; "
                        f"a GloVe file has one 'word v1 v2 ...' per line, every line the same size."
                    )
                words.append(items[0])
                vectors.append(values)
        if not words:
            raise ValueError(f"The GloVe file {path!r} holds no vectors: pass a GloVe text file ('word v1 v2 ...').")
        return cls(words, np.array(vectors))

    def __call__(self, word: str, k: int) -> list[str]:
        if (word, k) not in self._cache:
            self._cache[word, k] = self._nearest(word, k)
        return list(self._cache[word, k])

    def _nearest(self, word: str, k: int) -> list[str]:
        import numpy as np

        row = self.index.get(word)
        if row is None or not self.usable[row]:
            return []
        similarity = self.unit @ self.unit[row]
        similarity[~self.usable] = -np.inf
        similarity[row] = -np.inf
        order = np.argsort(-similarity, kind="stable")[:k]
        neighbours = [self.words[i] for i in order if similarity[i] > -np.inf]
        return [w.title() for w in neighbours] if word.istitle() else neighbours


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_glove(path: Union[str, os.PathLike], max_words: int = GLOVE_MAX_WORDS) -> GloveNeighbours:
    """`GloveNeighbours.from_file`: the first `max_words` words of a GloVe text file (the reference reads 100,000)."""
    return GloveNeighbours.from_file(path, max_words)


def is_reference_word(word: str) -> bool:
    """Whether reference mode considers `word`: letters a-z only (any case), and not a stop word."""
    return re.search("[^a-z]", word.lower()) is None and word.lower() not in STOP_WORDS


def check_reference_model(model: "PreTrainedModel", tokenizer: "PreTrainedTokenizerBase") -> None:
    """Raises a `ValueError` unless the masked LM can read reference mode's input.

    Reference mode feeds two segments (`token_type_ids` 0 and 1) and reads WordPiece pieces (``##…``), so it needs
    a BERT-style masked LM with a WordPiece tokenizer, ``[CLS]``, ``[SEP]`` and ``[MASK]``, and two segment types.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    wordpiece = hasattr(tokenizer, "wordpiece_tokenizer") or (
        backend is not None and type(backend.model).__name__ == "WordPiece"
    )
    segments = getattr(model.config, "type_vocab_size", 0) or 0
    specials = None not in (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id)
    if not (wordpiece and specials and segments >= 2):
        lacks = [what for what, ok in (("a WordPiece tokenizer", wordpiece), ("[CLS]/[SEP]/[MASK]", specials),
                                      ("two segment types", segments >= 2)) if not ok]
        raise ValueError(
            f"Reference mode feeds '[CLS] masked [SEP] original [SEP]' with segment ids 0/1 and needs a BERT-style "
            f"masked LM; {type(model).__name__} lacks {' and '.join(lacks)}: use a BERT masked LM (e.g. "
            f"bert-base-uncased) or mode='default' (--mode default)."
        )


def reference_word_candidates(
    words: Sequence[str],
    model: "PreTrainedModel",
    tokenizer: "PreTrainedTokenizerBase",
    top_k: int = 15,
    glove: Optional[GloveNeighbours] = None,
    batch_size: int = 64,
) -> dict[int, list[str]]:
    """Reference mode's candidates: `{word index: candidates}` for each word it considers (`is_reference_word`).

    A word of one piece gets the masked LM's top `top_k` pieces at its mask, the model reading
    ``[CLS] masked [SEP] original [SEP]`` (segment ids 0/1), less ``##`` pieces and special tokens; the original
    word is kept. A word of several pieces gets its `top_k` nearest `glove` words. A word left without candidates
    (past the 512th token, unknown to GloVe, no GloVe given) has itself as its only candidate.

    Args:
        words (`Sequence[str]`): The sentence's words (`split_words`).
        model (`PreTrainedModel`): A BERT-style masked LM (`check_reference_model`).
        tokenizer (`PreTrainedTokenizerBase`): Its tokenizer.
        top_k (`int`, defaults to 15): ``K`` (``M`` in the reference).
        glove (`GloveNeighbours`, *optional*): Neighbours for words of several pieces.
        batch_size (`int`, defaults to 64): Masked copies per forward pass.
    """
    import torch

    pieces = [tokenizer.tokenize(word) for word in words]
    considered = [i for i, word in enumerate(words) if is_reference_word(word)]
    candidates: dict[int, list[str]] = {}
    starts = list(accumulate((len(p) for p in pieces[:-1]), initial=1))  # each word's first piece, after [CLS]
    limit = min(REFERENCE_MAX_LENGTH, getattr(model.config, "max_position_embeddings", REFERENCE_MAX_LENGTH))
    masked = [i for i in considered if len(pieces[i]) == 1 and starts[i] < limit]
    for i in considered:
        if len(pieces[i]) > 1 and glove is not None:
            candidates[i] = glove(words[i], top_k)
    if masked:
        sentence = tokenizer.convert_tokens_to_ids([piece for word_pieces in pieces for piece in word_pieces])
        rows, token_type_ids = _reference_inputs(sentence, [starts[i] for i in masked], tokenizer, limit)
        special = set(tokenizer.all_special_ids)
        device = next(model.parameters()).device
        segments = torch.tensor([token_type_ids], device=device)
        with torch.no_grad():
            for first in range(0, len(masked), batch_size):
                batch = torch.tensor(rows[first:first + batch_size], device=device)
                logits = model(input_ids=batch, token_type_ids=segments.expand_as(batch)).logits.float()
                for row, index in enumerate(masked[first:first + batch_size]):
                    ranked = logits[row, starts[index]].argsort(descending=True, stable=True)[:top_k].tolist()
                    candidates[index] = [
                        token for token_id, token in zip(ranked, tokenizer.convert_ids_to_tokens(ranked))
                        if not token.startswith("##") and token_id not in special
                    ]
    return {i: candidates.get(i) or [words[i]] for i in considered}


def _reference_inputs(
    sentence: list[int], positions: list[int], tokenizer: "PreTrainedTokenizerBase", limit: int
) -> tuple[list[list[int]], list[int]]:
    """Rows ``[CLS] sentence with [MASK] at position [SEP] sentence [SEP]`` cut at `limit`, and their segment ids."""
    cls, sep, mask = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id
    rows = []
    for position in positions:
        first = [cls] + sentence
        first[position] = mask
        rows.append((first + [sep] + sentence + [sep])[:limit])
    first_segment = min(len(sentence) + 2, limit)  # [CLS], the masked sentence and the first [SEP]
    return rows, [0] * first_segment + [1] * (len(rows[0]) - first_segment)


def _reference_copies(
    text: str, words: list[str], candidates: dict[int, list[str]], probability: float, num_copies: int,
    rng: random.Random,
) -> list[str]:
    kept = [text]
    for _ in range(num_copies):
        new_words = list(words)
        for index, options in candidates.items():
            choice = rng.choice(options)
            if rng.random() < probability:
                new_words[index] = choice
        sentence = " ".join(new_words)
        if sentence not in kept:
            kept.append(sentence)
    return kept[1:]


def augment_text(
    text: str,
    model: "PreTrainedModel",
    tokenizer: "PreTrainedTokenizerBase",
    probability: float = 0.4,
    top_k: int = 15,
    num_copies: Optional[int] = None,
    rng: Optional[random.Random] = None,
    *,
    mode: str = "default",
    glove: Optional[GloveNeighbours] = None,
) -> list[str]:
    """Up to `num_copies` new variants of `text` (Algorithm 1 of TinyBERT; see the module docstring).

    Args:
        text (`str`): The text to augment.
        model (`PreTrainedModel`): A masked LM with the tokenizer's vocabulary (e.g. BERT-base).
        tokenizer (`PreTrainedTokenizerBase`): Its tokenizer.
        probability (`float`, defaults to 0.4): ``p``, chance that a word is replaced.
        top_k (`int`, defaults to 15): ``K``, candidates per word.
        num_copies (`int`, *optional*): ``N``, tries; defaults to 20 (`mode="default"`) or 30 (`mode="reference"`).
        rng (`random.Random`, *optional*): The draws; defaults to `random.Random(0)`.
        mode (`str`, defaults to `"default"`): `"default"` or `"reference"` (the authors' script).
        glove (`GloveNeighbours`, *optional*): Reference mode's neighbours for words of several pieces.

    Returns:
        `list[str]`: The distinct new texts (the original excluded), words joined by spaces. In reference mode a
        text is new when it differs from `text` as given, so the unchanged words joined by spaces may be one.
    """
    rng = rng or random.Random(0)
    num_copies = _num_copies(num_copies, mode)
    words = split_words(text, tokenizer)
    if mode == "reference":
        candidates = reference_word_candidates(words, model, tokenizer, top_k=top_k, glove=glove)
        return _reference_copies(text, words, candidates, probability, num_copies, rng)
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


def _num_copies(num_copies: Optional[int], mode: str) -> int:
    if num_copies is not None:
        return num_copies
    return REFERENCE_DEFAULT_NUM_COPIES if mode == "reference" else DEFAULT_NUM_COPIES


def _text_columns(text_column: Union[str, Sequence[str]]) -> list[str]:
    columns = text_column.split(",") if isinstance(text_column, str) else list(text_column)
    return [column.strip() for column in columns]


def augment_dataset(
    dataset: "Dataset",
    model: "PreTrainedModel",
    tokenizer: "PreTrainedTokenizerBase",
    text_column: Union[str, Sequence[str]],
    probability: float = 0.4,
    top_k: int = 15,
    num_copies: Optional[int] = None,
    seed: int = 0,
    *,
    mode: str = "default",
    glove: Union[str, os.PathLike, GloveNeighbours, None] = None,
) -> "Dataset":
    """The rows of `dataset`, each followed by its augmented copies (other columns copied).

    With several text columns (a sentence pair), each is augmented in turn. In the default mode a copy changes one
    column and keeps the others; in reference mode the rows follow the reference (see the module docstring).

    Args:
        dataset (`Dataset`): Task data with text columns.
        model (`PreTrainedModel`): A masked LM with the tokenizer's vocabulary (e.g. BERT-base).
        tokenizer (`PreTrainedTokenizerBase`): Its tokenizer.
        text_column (`str` or `Sequence[str]`): The column to augment, or several (`"sentence1,sentence2"`).
        probability (`float`, defaults to 0.4): ``p``, chance that a word is replaced.
        top_k (`int`, defaults to 15): ``K``, candidates per word.
        num_copies (`int`, *optional*): ``N``, tries per text (duplicates are dropped); defaults to 20
            (`mode="default"`) or 30 (`mode="reference"`; `REFERENCE_NUM_COPIES` has the reference's per-task ``N``).
        seed (`int`, defaults to 0): Seed of the replacements.
        mode (`str`, defaults to `"default"`): `"default"` or `"reference"` (the authors' `data_augmentation.py`).
        glove (`str`, `os.PathLike` or `GloveNeighbours`, *optional*): Reference mode only: a GloVe text file (or
            its loaded neighbours) for words of several word pieces; without it they stay as they are.

    Returns:
        `Dataset`: Same columns, original rows included.
    """
    columns = _text_columns(text_column)
    if mode not in MODES:
        raise ValueError(f"Unknown augmentation mode {mode!r}: use 'default' or 'reference'.")
    if glove is not None and mode != "reference":
        raise ValueError("GloVe neighbours are part of reference mode only: pass mode='reference' "
                         "(--mode reference), or drop the GloVe file.")
    missing = [column for column in columns if column not in dataset.column_names]
    if missing or not columns:
        raise ValueError(f"No column {(missing or [''])[0]!r} to augment (columns: {dataset.column_names}).")
    if len(set(columns)) != len(columns):
        raise ValueError(f"A text column is named twice in {','.join(columns)!r}: name each column once.")
    if tokenizer.mask_token_id is None:
        raise ValueError("Augmentation needs a masked-LM tokenizer with a mask token (e.g. BERT's).")
    num_copies = _num_copies(num_copies, mode)
    if not 0 <= probability <= 1 or top_k < 1 or num_copies < 1:
        raise ValueError(f"Need 0 <= p <= 1, k >= 1, N >= 1; got p={probability}, k={top_k}, N={num_copies}.")
    if mode == "reference":
        check_reference_model(model, tokenizer)
        if glove is not None and not isinstance(glove, GloveNeighbours):
            glove = load_glove(glove)
    from datasets import Dataset

    rng = random.Random(seed)
    model.eval()
    rows: dict[str, list] = {name: [] for name in dataset.column_names}

    def write(row: dict) -> None:
        for name in dataset.column_names:
            rows[name].append(row[name])

    for example in dataset:
        if mode == "reference":
            row = dict(example)
            for column in columns:  # the row is changed in place, as the reference's loop changes its line
                for text in _texts(example[column], model, tokenizer, probability, top_k, num_copies, rng, mode,
                                   glove):
                    row[column] = text
                    write(row)
            continue
        write(example)
        for column in columns:
            for text in _texts(example[column], model, tokenizer, probability, top_k, num_copies, rng, mode)[1:]:
                write({**example, column: text})
    return Dataset.from_dict(rows, features=dataset.features)


def _texts(text, model, tokenizer, probability, top_k, num_copies, rng, mode, glove=None) -> list:
    """The text followed by its variants; a missing text (None) has none."""
    if not isinstance(text, str):
        return [text]
    return [text] + augment_text(text, model, tokenizer, probability, top_k, num_copies, rng, mode=mode, glove=glove)


_READERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json"}


def augment_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-distill augment", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_name_or_path", required=True, help="Masked LM proposing the replacements.")
    parser.add_argument("--input", required=True, help="CSV/TSV/JSON(L) task file.")
    parser.add_argument("--output", required=True, help="Where to write the augmented file (.csv or .json/.jsonl).")
    parser.add_argument("--text_column", default=None,
                        help="Column to augment, or two for a pair (sentence1,sentence2); defaults to --task_name's.")
    parser.add_argument("--mode", choices=MODES, default="default",
                        help="default: hf-distill's augmentation; reference: TinyBERT's data_augmentation.py as its "
                             "authors ran it ([CLS] masked [SEP] original [SEP], stop words, GloVe, N=30).")
    parser.add_argument("--glove_file", default=None,
                        help="Reference mode: GloVe text file ('word v1 v2 ...') for words of several word pieces; "
                             "without it they stay as they are.")
    parser.add_argument("--task_name", default=None,
                        help="GLUE task (mrpc, sst2, ...): its text columns, and in reference mode the reference's N.")
    parser.add_argument("--probability", type=float, default=0.4, help="p: chance a word is replaced (0.4).")
    parser.add_argument("--top_k", type=int, default=15, help="K: masked-LM candidates per word (15).")
    parser.add_argument("--num_copies", type=int, default=None,
                        help="N: augmented tries per text (default mode 20; reference mode 30, or the task's).")
    parser.add_argument("--max_samples", type=int, default=None, help="Augment only the first rows.")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def run_augment(
    model_name_or_path: str,
    input: str,
    output: str,
    text_column: Optional[str] = None,
    probability: float = 0.4,
    top_k: int = 15,
    num_copies: Optional[int] = None,
    max_samples: Optional[int] = None,
    seed: int = 0,
    mode: str = "default",
    glove_file: Optional[str] = None,
    task_name: Optional[str] = None,
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
    if mode not in MODES:
        raise ValueError(f"Unknown augmentation mode {mode!r}: use 'default' or 'reference'.")
    if task_name is not None:
        from .glue import GLUE_TASKS

        task = GLUE_TASKS.get(task_name.lower().replace("-", ""))
        if task is None:
            raise ValueError(f"Unknown GLUE task {task_name!r}: use one of {', '.join(GLUE_TASKS)}.")
        text_column = text_column or ",".join(task.text_columns)
        if num_copies is None and mode == "reference":
            num_copies = REFERENCE_NUM_COPIES.get(task.name, REFERENCE_DEFAULT_NUM_COPIES)
    if not text_column:
        raise ValueError("Name the column(s) to augment: --text_column sentence (or sentence1,sentence2), or a GLUE "
                         "task with --task_name.")
    glove = None
    if glove_file is not None:
        if mode != "reference":
            raise ValueError("--glove_file is part of reference mode only: add --mode reference, or drop the file.")
        glove = load_glove(glove_file)  # a bad file is refused before the model loads
    kwargs = {"delimiter": "\t", "quoting": 3} if extension == ".tsv" else {}
    dataset = load_dataset(_READERS[extension], data_files=input, split="train", **kwargs)
    if max_samples is not None:
        dataset = dataset.select(range(min(max_samples, len(dataset))))
    check_model_path(model_name_or_path, "augmentation model")
    tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
    model = AutoModelForMaskedLM.from_pretrained(model_name_or_path, use_safetensors=True)
    augmented = augment_dataset(dataset, model, tokenizer, text_column, probability, top_k, num_copies, seed,
                                mode=mode, glove=glove)
    if out_extension == ".csv":
        augmented.to_csv(output, index=False)
    else:
        augmented.to_json(output, lines=True)
    print(f"Wrote {len(augmented)} rows ({len(dataset)} original) to {output}")
    return augmented
