"""DistilBERT's dynamic masking for masked-LM distillation: a data collator and its token weights.

`DataCollatorForDistillationMLM` pads a batch and masks it anew at every step, as the reference
code does (`distiller.py::prepare_batch_mlm` of the HF DistilBERT research project):

1. **Selection.** ``n = ⌈p · N⌉`` positions of the batch are drawn without replacement, where
   ``N`` is the number of maskable tokens (not padding, not a special token such as `[CLS]`,
   `[SEP]`, `[PAD]`, `[MASK]`, `[UNK]`) and ``p = mlm_probability`` (0.15). Each maskable position
   is drawn with probability proportional to a weight of its token: 1 for every token (uniform,
   the default), or ``max(count, 1)^(−α)`` with ``α = 0.7`` (the reference's `--mlm_smoothing`,
   see `token_selection_weights`), which makes rare tokens more likely to be predicted. Special
   tokens and padding have weight 0, so they are never selected.
2. **Replacement** (80/10/10). Each selected position independently becomes `[MASK]` with
   probability 0.8, a random token with probability 0.1 (drawn uniformly from the non-special
   vocabulary; the reference draws from the whole vocabulary), or keeps its token with
   probability 0.1.
3. **Labels.** `labels` hold the original token at the selected positions and −100 elsewhere,
   so the MLM loss and the trainer's token-level soft-target loss both average over the selected
   positions.

The reference differs in two small ways that are kept out on purpose: it counts `N` with the
special tokens (then draws only among non-special ones), and it rounds batches to multiples of 8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

import torch
from transformers import PreTrainedTokenizerBase
from transformers.data.data_collator import pad_without_fast_tokenizer_warning

IGNORE_INDEX = -100


def count_tokens(sequences: Iterable[Sequence[int]], vocab_size: int) -> torch.Tensor:
    """Counts how often each token id occurs in `sequences` (the reference's `token_counts.py`).

    Args:
        sequences (`Iterable[Sequence[int]]`): Tokenized sequences (e.g. a dataset's `input_ids`).
        vocab_size (`int`): Length of the returned vector; ids must be below it.

    Returns:
        `torch.Tensor` of shape `(vocab_size,)`, dtype int64: the counts.
    """
    counts = torch.zeros(vocab_size, dtype=torch.int64)
    for ids in sequences:
        ids = torch.as_tensor(ids, dtype=torch.int64)
        if ids.numel() and int(ids.max()) >= vocab_size:
            raise ValueError(f"Token id {int(ids.max())} is not below vocab_size={vocab_size}: wrong tokenizer?")
        counts += torch.bincount(ids, minlength=vocab_size)
    return counts


def token_selection_weights(
    counts: torch.Tensor, smoothing: float = 0.7, special_ids: Iterable[int] = ()
) -> torch.Tensor:
    r"""Per-token selection weights ``w_v = max(count_v, 1)^(−α)``, 0 for special tokens.

    DistilBERT's `train.py`: ``token_probs = np.maximum(counts, 1) ** -args.mlm_smoothing`` with
    ``α = 0.7``, then ``token_probs[special] = 0``. ``α = 0`` gives uniform selection.

    Args:
        counts (`torch.Tensor` of shape `(vocab_size,)`): Token counts (see `count_tokens`).
        smoothing (`float`, defaults to 0.7): The exponent ``α`` (≥ 0).
        special_ids (`Iterable[int]`, defaults to `()`): Token ids that are never selected.

    Returns:
        `torch.Tensor` of shape `(vocab_size,)`, float32: the weights (not normalised; the collator
        normalises over the positions of each batch).
    """
    if smoothing < 0:
        raise ValueError(f"The smoothing exponent must be >= 0, got {smoothing}.")
    weights = counts.to(torch.float64).clamp(min=1.0).pow(-smoothing)
    for index in special_ids:
        if 0 <= index < weights.numel():
            weights[index] = 0.0
    return weights.float()


@dataclass
class DataCollatorForDistillationMLM:
    """Pads a batch of tokenized sequences and masks it for masked-LM distillation (see the module docstring).

    Randomness comes from `generator` when given (e.g. a fixed masking of an evaluation set), else
    from torch's global generator, which `Trainer` seeds.

    Args:
        tokenizer (`PreTrainedTokenizerBase`): Gives the pad, mask and special token ids.
        mlm_probability (`float`, defaults to 0.15): Share ``p`` of the maskable tokens selected.
        mask_replace_prob (`float`, defaults to 0.8): Probability that a selected token becomes `[MASK]`.
        random_replace_prob (`float`, defaults to 0.1): Probability that it becomes a random token; it
            keeps its token with the remaining probability (0.1).
        token_weights (`torch.Tensor` of shape `(vocab_size,)`, *optional*): Selection weight of each
            token id (see `token_selection_weights`); uniform when `None`.
        pad_to_multiple_of (`int`, *optional*): Pad each batch to a multiple of this length.
        generator (`torch.Generator`, *optional*): Source of randomness.
    """

    tokenizer: PreTrainedTokenizerBase
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    token_weights: Optional[torch.Tensor] = None
    pad_to_multiple_of: Optional[int] = None
    generator: Optional[torch.Generator] = None
    _special_ids: torch.Tensor = field(init=False, repr=False)
    _random_ids: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self):
        if self.tokenizer.mask_token_id is None:
            raise ValueError(
                f"The tokenizer {type(self.tokenizer).__name__} has no mask token, so it cannot be used for "
                "masked-LM distillation: use the teacher's masked-LM tokenizer (e.g. BERT's, with [MASK])."
            )
        if self.tokenizer.pad_token_id is None:
            raise ValueError("The tokenizer has no pad token: set tokenizer.pad_token before masking batches.")
        if not 0 < self.mlm_probability < 1:
            raise ValueError(f"mlm_probability must be in (0, 1), got {self.mlm_probability}.")
        for name in ("mask_replace_prob", "random_replace_prob"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {value}.")
        if self.mask_replace_prob + self.random_replace_prob > 1:
            raise ValueError(
                f"mask_replace_prob + random_replace_prob must be <= 1 (the rest keeps the token), got "
                f"{self.mask_replace_prob} + {self.random_replace_prob}."
            )
        special = sorted(set(self.tokenizer.all_special_ids) | {self.tokenizer.pad_token_id})
        self._special_ids = torch.tensor(special, dtype=torch.int64)
        vocab = torch.arange(len(self.tokenizer), dtype=torch.int64)
        self._random_ids = vocab[~torch.isin(vocab, self._special_ids)]
        if self.token_weights is not None:
            self.token_weights = torch.as_tensor(self.token_weights, dtype=torch.float32).clone()
            self.token_weights[self._special_ids[self._special_ids < self.token_weights.numel()]] = 0.0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        features = [{k: v for k, v in f.items() if k in ("input_ids", "attention_mask")} for f in features]
        batch = pad_without_fast_tokenizer_warning(
            self.tokenizer, features, return_tensors="pt", pad_to_multiple_of=self.pad_to_multiple_of
        )
        input_ids, labels = self.mask_tokens(batch["input_ids"], batch.get("attention_mask"))
        batch["input_ids"] = input_ids
        batch["labels"] = labels
        return dict(batch)

    def maskable(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """`True` where a token may be selected: not padding and not a special token."""
        allowed = ~torch.isin(input_ids, self._special_ids)
        if attention_mask is not None:
            allowed &= attention_mask.bool()
        return allowed

    def mask_tokens(
        self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Selects and replaces tokens of a padded batch.

        Args:
            input_ids (`torch.Tensor` of shape `(batch, seq)`): The token ids.
            attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): 1 for real tokens.

        Returns:
            `tuple[torch.Tensor, torch.Tensor]`: The masked `input_ids` (a new tensor) and the
            `labels` (original ids at the selected positions, −100 elsewhere).
        """
        allowed = self.maskable(input_ids, attention_mask)
        if self.token_weights is None:
            weights = allowed.to(torch.float32)
        else:
            ids = input_ids.clamp(max=self.token_weights.numel() - 1)
            weights = self.token_weights[ids] * allowed
        flat_weights = weights.reshape(-1)
        candidates = int((flat_weights > 0).sum())
        count = min(math.ceil(self.mlm_probability * int(allowed.sum())), candidates)
        selected = torch.zeros(input_ids.numel(), dtype=torch.bool)
        if count > 0:
            picks = torch.multinomial(flat_weights, count, replacement=False, generator=self.generator)
            selected[picks] = True
        selected = selected.view_as(input_ids)

        labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
        masked = input_ids.clone()
        keep_prob = 1.0 - self.mask_replace_prob - self.random_replace_prob
        actions = torch.multinomial(
            torch.tensor([self.mask_replace_prob, self.random_replace_prob, max(keep_prob, 0.0)]),
            max(count, 1),
            replacement=True,
            generator=self.generator,
        )[:count]
        positions = selected.nonzero(as_tuple=True)
        new_ids = masked[positions]
        new_ids[actions == 0] = self.tokenizer.mask_token_id
        random_slots = actions == 1
        if random_slots.any():
            draws = torch.randint(
                len(self._random_ids), (int(random_slots.sum()),), generator=self.generator
            )
            new_ids[random_slots] = self._random_ids[draws]
        masked[positions] = new_ids
        return masked, labels
