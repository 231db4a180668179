"""The task heads `DistillationTrainer` distils, and how their logits are read.

One table, `HEAD_KINDS`, names every supported head by the suffix of its transformers class
(`BertForQuestionAnswering` → `"span"`); a model without a head (`BertModel`) is an `"encoder"`, which
only the hidden-state, embedding, cosine and attention terms can train. Every other head (multiple
choice, causal LM, ...) is refused before the first step by `checks.check_supported_head`.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

HEAD_KINDS = {
    "ForSequenceClassification": "sequence",
    "ForTokenClassification": "token",
    "ForQuestionAnswering": "span",
    "ForMaskedLM": "masked_lm",
}
"""Class-name suffix → kind: `"sequence"` (one row of logits per example, or one score for regression),
`"token"` (one row per token), `"span"` (start and end logits over the positions), `"masked_lm"` (one row
of vocabulary logits per token)."""

ENCODER = "encoder"
"""A model with no task head: hidden states only."""

LABEL_KEYS = ("labels", "start_positions", "end_positions")
"""The batch keys that hold labels: the teacher never receives them."""


def head_kind(model: Any) -> Optional[str]:
    """The kind of `model`'s head (`HEAD_KINDS`), `"encoder"` for a model without one, `None` when unsupported.

    Args:
        model (`nn.Module`): A transformers model (or any module; its class name decides).
    """
    name = type(model).__name__
    for suffix, kind in HEAD_KINDS.items():
        if name.endswith(suffix):
            return kind
    if "For" not in name and hasattr(model, "config"):
        return ENCODER
    return None


def supported_heads() -> str:
    """The supported heads, as an error message names them."""
    return ", ".join(f"*{suffix}" for suffix in HEAD_KINDS)


def head_logits(output: Any) -> Optional[torch.Tensor]:
    """The logits a soft-target loss compares, from a model's output.

    `logits` for every head but question answering, whose start and end logits come back stacked as one
    `(batch, 2, seq)` tensor (`losses.span_kl_divergence_loss`). `None` when the output has neither.
    """
    logits = getattr(output, "logits", None)
    if logits is not None:
        return logits
    start, end = getattr(output, "start_logits", None), getattr(output, "end_logits", None)
    if start is not None and end is not None:
        return torch.stack((start, end), dim=1)
    return None
