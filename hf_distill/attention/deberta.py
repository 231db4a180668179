"""DeBERTa-v2/v3's scores: disentangled attention, content and relative positions.

For queries ``Q``, keys ``K`` (content) and the relative-position embeddings ``P`` (`2k` rows,
``k`` the attention span), with ``Q_r = P W_{Q,r}ᵀ``, ``K_r = P W_{K,r}ᵀ`` (the query and key
projections themselves when `share_att_key`, DeBERTa-v3), DeBERTa scores

``A_ij = (Q_i·K_j + [c2p] Q_i·K_r[c(δ(i, j))] + [p2c] K_j·Q_r[c(−δ(j, i))]) / √(d · s)``

where ``δ(i, j)`` is the (log-bucketed) relative position of ``i`` to ``j``, ``c(x) = clamp(x + k,
0, 2k − 1)``, ``s = 1 + [c2p] + [p2c]`` counts the terms listed in `pos_att_type`, and ``d`` is the
head width. The content projections, the position embeddings after the model's own dropout and the
relative positions the encoder built are read by hooks during the forward; the two position terms
are then computed here from the module's weights, so gradients reach every projection.
"""

from __future__ import annotations

import inspect
import math
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from ..architecture import find_layer_list
from .base import Armed, ScoreCapture, recording_hook, split_heads


def log_bucket_positions(relative: torch.Tensor, buckets: int, max_position: int) -> torch.Tensor:
    """DeBERTa's log buckets of relative positions (``mid = buckets // 2``).

    ``δ = r`` where ``|r| ≤ mid``, else ``sign(r) · (mid + ⌈(mid − 1) · log(|r| / mid) / log((max_position − 1) / mid)⌉)``.
    """
    sign = torch.sign(relative)
    mid = buckets // 2
    inner = (relative < mid) & (relative > -mid)
    absolute = torch.where(inner, torch.tensor(mid - 1).type_as(relative), relative.abs())
    log_position = torch.ceil(
        torch.log(absolute / mid) / torch.log(torch.tensor((max_position - 1) / mid)) * (mid - 1)
    ) + mid
    return torch.where(absolute <= mid, relative.type_as(log_position), log_position * sign)


def relative_positions(length: int, buckets: int, max_position: int, device: torch.device) -> torch.Tensor:
    """``δ(i, j)`` for ``i, j < length``: ``i − j``, log-bucketed when `buckets` and `max_position` are > 0.

    Returns:
        `torch.LongTensor` of shape `(length, length)`.
    """
    positions = torch.arange(length, device=device)
    relative = positions[:, None] - positions[None, :]
    if buckets > 0 and max_position > 0:
        relative = log_bucket_positions(relative, buckets, max_position)
    return relative.long()


def _project(states: torch.Tensor, linear: nn.Linear, num_heads: int) -> torch.Tensor:
    """``P Wᵀ + b`` in float32, split into heads: `(rows, width)` → `(heads, rows, d)`."""
    bias = None if linear.bias is None else linear.bias.float()
    projected = F.linear(states.float(), linear.weight.float(), bias)
    return projected.view(states.shape[0], num_heads, -1).transpose(0, 1)


class DebertaV2Capture(ScoreCapture):
    """DeBERTa-v2/v3's disentangled scores per layer (see the module docstring).

    Args:
        model (`nn.Module`): A DeBERTa-v2 or v3 model (any head).
    """

    def __init__(self, model: nn.Module):
        _, layers = find_layer_list(model)
        self.attentions = [layer.attention.self for layer in layers]
        first = self.attentions[0]
        self.num_layers = len(self.attentions)
        self.num_heads = first.num_attention_heads
        self.windows = [None] * self.num_layers
        self.position_terms = [term for term in ("c2p", "p2c") if term in first.pos_att_type]
        self.relative = bool(first.relative_attention)
        self._query: list[Optional[torch.Tensor]] = [None] * self.num_layers
        self._key: list[Optional[torch.Tensor]] = [None] * self.num_layers
        self._embeddings: list[Optional[torch.Tensor]] = [None] * self.num_layers
        self._positions: list[Optional[torch.Tensor]] = [None] * self.num_layers

    def install(self, armed: Armed) -> list:
        handles = []
        for index, attention in enumerate(self.attentions):
            # With share_att_key the projections run again on the position embeddings: keep the first call.
            handles.append(attention.query_proj.register_forward_hook(recording_hook(armed, self._query, index, True)))
            handles.append(attention.key_proj.register_forward_hook(recording_hook(armed, self._key, index, True)))
            if self.relative:
                handles.append(attention.pos_dropout.register_forward_hook(
                    recording_hook(armed, self._embeddings, index, True)))
                handles.append(attention.register_forward_pre_hook(self._position_reader(armed, index), with_kwargs=True))
        return handles

    def _position_reader(self, armed: Armed, index: int):
        def hook(module, args, kwargs):
            if armed():
                bound = inspect.signature(module.forward).bind_partial(*args, **kwargs).arguments
                self._positions[index] = bound.get("relative_pos")

        return hook

    def reset(self) -> None:
        for store in (self._query, self._key, self._embeddings, self._positions):
            for index in range(self.num_layers):
                store[index] = None

    def layer_scores(self) -> list[torch.Tensor]:
        if any(q is None for q in self._query) or any(k is None for k in self._key):
            raise RuntimeError("No attention scores were recorded: call the model's forward first.")
        return [self._layer_scores(index) for index in range(self.num_layers)]

    def _layer_scores(self, index: int) -> torch.Tensor:
        attention = self.attentions[index]
        query, key = split_heads(self._query[index], self.num_heads), split_heads(self._key[index], self.num_heads)
        scale = math.sqrt(query.shape[-1] * (1 + len(self.position_terms)))
        scores = query @ key.transpose(-1, -2)
        if not (self.relative and self.position_terms):
            return scores / scale
        batch, heads, length, _ = query.shape
        span = attention.pos_ebd_size
        embeddings = self._embeddings[index][0 : 2 * span]
        positions = self._positions[index]
        if positions is None:
            positions = relative_positions(length, attention.position_buckets, attention.max_relative_positions,
                                           query.device)
        positions = positions.to(query.device).long()
        while positions.dim() < 4:
            positions = positions.unsqueeze(0) if positions.dim() == 2 else positions.unsqueeze(1)
        positions = positions.expand(batch, heads, length, length)
        if "c2p" in self.position_terms:
            projection = attention.key_proj if attention.share_att_key else attention.pos_key_proj
            position_keys = _project(embeddings, projection, self.num_heads)  # (heads, 2k, d)
            content_to_position = torch.einsum("bhid,hrd->bhir", query, position_keys)
            scores = scores + torch.gather(content_to_position, -1, torch.clamp(positions + span, 0, 2 * span - 1))
        if "p2c" in self.position_terms:
            projection = attention.query_proj if attention.share_att_key else attention.pos_query_proj
            position_queries = _project(embeddings, projection, self.num_heads)
            position_to_content = torch.einsum("bhjd,hrd->bhjr", key, position_queries)
            index_ = torch.clamp(-positions + span, 0, 2 * span - 1)
            scores = scores + torch.gather(position_to_content, -1, index_).transpose(-1, -2)
        return scores / scale
