"""What every architecture's score capture shares: the interface, head splitting and local windows."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

Armed = Callable[[], bool]


class ScoreCapture:
    """Records, during one forward pass, what one architecture needs for each layer's pre-softmax scores.

    A subclass finds its modules in `__init__` and raises `ValueError` with the reason when the
    architecture's scores cannot be captured; `install` registers its hooks (which record only while
    `armed()` is true); `layer_scores` turns what they recorded into one `(batch, heads, seq, seq)`
    float32 tensor per layer, the scores the model adds its attention mask to before the softmax, with
    the autograd graph of the projections that made them.

    Attributes:
        num_layers (`int`): Layers whose scores are returned, ``M``.
        num_heads (`int`): Attention heads per layer.
        windows (`list[Optional[int]]`): Per layer, the half-width ``w`` of a local attention window
            (the layer attends where ``|i − j| ≤ w``), or `None` for global attention.
    """

    num_layers: int
    num_heads: int
    windows: list[Optional[int]]

    def install(self, armed: Armed) -> list:
        """Registers the hooks; returns their handles."""
        raise NotImplementedError

    def reset(self) -> None:
        """Drops what the hooks recorded."""
        raise NotImplementedError

    def layer_scores(self) -> list[torch.Tensor]:
        """One `(batch, heads, seq, seq)` float32 tensor per layer, from the last forward."""
        raise NotImplementedError


def split_heads(states: torch.Tensor, num_heads: int) -> torch.Tensor:
    """`(batch, seq, heads · d)` → `(batch, heads, seq, d)` in float32."""
    batch, length, width = states.shape
    return states.float().view(batch, length, num_heads, width // num_heads).transpose(1, 2)


def window_mask(length: int, window: int, device: torch.device) -> torch.Tensor:
    """`(seq, seq)` booleans, true where ``|i − j| ≤ window``."""
    positions = torch.arange(length, device=device)
    return (positions[:, None] - positions[None, :]).abs() <= window


def apply_window(scores: torch.Tensor, window: Optional[int]) -> torch.Tensor:
    """Sets the scores of the pairs outside a local window to 0 (TinyBERT's value for masked pairs).

    ``A'_ij = A_ij`` if ``|i − j| ≤ w``, else ``0``; unchanged when `window` is `None`.
    """
    if window is None:
        return scores
    inside = window_mask(scores.shape[-1], window, scores.device)
    return scores.masked_fill(~inside, 0.0)


def recording_hook(armed: Armed, store: list, index: int, first_only: bool = False):
    """A forward hook that keeps a module's output in `store[index]` while `armed()`.

    With `first_only`, a later call in the same forward (a shared projection reused on other inputs)
    keeps the first output.
    """

    def hook(module: nn.Module, args, output):
        if armed() and not (first_only and store[index] is not None):
            store[index] = output

    return hook
