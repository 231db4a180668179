"""ModernBERT's scores: rotary positions on a fused query/key/value projection, local and global layers.

Each ModernBERT layer projects its input once, ``[Q | K | V] = X W_qkvᵀ`` (`attn.Wqkv`), rotates
the queries and keys by their positions (RoPE) and scores

``A = R(Q) R(K)ᵀ / √d``,  ``R(x) = x ⊙ cos + rotate_half(x) ⊙ sin``,  ``rotate_half([x₁, x₂]) = [−x₂, x₁]``

with the `cos`/`sin` tables of the layer's kind (global layers and local layers use different
rotary bases). A local layer attends only where ``|i − j| ≤ local_attention // 2``; its mask
removes the other pairs, and the recorder sets their scores to 0 (TinyBERT's value for masked
pairs; `windows`). The projection's output and the tables the model really used are read by hooks
(`compat.hook_modernbert_rotary`), so the scores do not depend on the attention kernel.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .. import compat
from ..architecture import find_layer_list
from .base import Armed, ScoreCapture, recording_hook


def rotate_half(states: torch.Tensor) -> torch.Tensor:
    """``[x₁, x₂] → [−x₂, x₁]`` over the last dimension (halves ``x₁``, ``x₂``)."""
    first, second = states.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rotary(states: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``R(x) = x ⊙ cos + rotate_half(x) ⊙ sin``; `states` `(batch, heads, seq, d)`, tables `(batch|1, seq, d)`."""
    cos, sin = cos.float().unsqueeze(1), sin.float().unsqueeze(1)
    return states * cos + rotate_half(states) * sin


class ModernBertCapture(ScoreCapture):
    """``A = R(Q) R(K)ᵀ / √d`` per ModernBERT layer, 0 outside a local layer's window.

    Args:
        model (`nn.Module`): A ModernBERT model (any head).

    Raises:
        ValueError: When the installed transformers runs this model in a way whose rotary tables cannot
            be read (`compat.modernbert_capture_problem`).
    """

    def __init__(self, model: nn.Module):
        config = model.config
        _, layers = find_layer_list(model)
        self.attentions = [layer.attn for layer in layers]
        problem = compat.modernbert_capture_problem(self.attentions[0])
        if problem:
            raise ValueError(f"Cannot capture the attention scores of {type(model).__name__}: {problem}.")
        self.num_layers = len(self.attentions)
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // self.num_heads
        self.windows: list[Optional[int]] = [compat.modernbert_window(attention, config) for attention in self.attentions]
        self._qkv: list[Optional[torch.Tensor]] = [None] * self.num_layers
        self._tables: list[Optional[tuple[torch.Tensor, torch.Tensor]]] = [None] * self.num_layers

    def install(self, armed: Armed) -> list:
        handles = []
        for index, attention in enumerate(self.attentions):
            handles.append(attention.Wqkv.register_forward_hook(recording_hook(armed, self._qkv, index)))

            def receive(cos, sin, index=index):
                if armed():
                    self._tables[index] = (cos, sin)

            handles.append(compat.hook_modernbert_rotary(attention, receive))
        return handles

    def reset(self) -> None:
        for index in range(self.num_layers):
            self._qkv[index] = self._tables[index] = None

    def layer_scores(self) -> list[torch.Tensor]:
        if any(qkv is None for qkv in self._qkv) or any(tables is None for tables in self._tables):
            raise RuntimeError("No attention scores were recorded: call the model's forward first.")
        scores = []
        for qkv, (cos, sin) in zip(self._qkv, self._tables):
            batch, length, _ = qkv.shape
            qkv = qkv.float().view(batch, length, 3, self.num_heads, self.head_dim)
            query = apply_rotary(qkv[:, :, 0].transpose(1, 2), cos, sin)
            key = apply_rotary(qkv[:, :, 1].transpose(1, 2), cos, sin)
            scores.append(query @ key.transpose(-1, -2) * self.head_dim**-0.5)
        return scores
