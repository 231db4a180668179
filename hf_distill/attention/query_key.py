"""Scores ``Q Kᵀ / √d`` from separate query and key projections: BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT, ALBERT.

These models add nothing to ``Q Kᵀ / √d`` but the attention mask (absolute positions enter through
the embeddings), so the outputs of the query and key projections give the scores exactly, whatever
the attention kernel (eager, sdpa, flash). ALBERT runs one shared block `num_hidden_layers` times;
each call of its projections is one layer's scores, in call order.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..architecture import find_layer_list, shared_layers_reason
from .base import Armed, ScoreCapture, split_heads

# (query, key) submodule names inside one encoder block, by model family.
QUERY_KEY_NAMES = (
    ("attention.self.query", "attention.self.key"),  # BERT, RoBERTa, XLM-R, ELECTRA
    ("attention.q_lin", "attention.k_lin"),  # DistilBERT
    ("attention.query", "attention.key"),  # ALBERT
    ("self_attn.q_proj", "self_attn.k_proj"),  # BART-style and most decoder models
)


def _blocks(model: nn.Module) -> list[nn.Module]:
    """The blocks that hold the projections: the layers, or ALBERT's shared blocks in the order they run."""
    config = model.config
    if shared_layers_reason(model) is None:
        return list(find_layer_list(model)[1])
    inner = getattr(config, "inner_group_num", 1)
    if inner != 1:
        raise ValueError(
            f"{type(model).__name__} runs {inner} attention blocks in each of its {config.num_hidden_layers} layers "
            f"(inner_group_num={inner}), so its attention maps do not line up with its hidden states and the layer "
            "map: set attention_weight=0."
        )
    groups = [module for name, module in model.named_modules() if name.endswith("albert_layer_groups")]
    if not groups:
        raise ValueError(f"Could not find the shared blocks of {type(model).__name__}: set attention_weight=0.")
    return [group.albert_layers[0] for group in groups[0]]


def find_query_key_modules(model: nn.Module) -> list[tuple[nn.Linear, nn.Linear]]:
    """Returns the (query, key) projections of every block, in order (one pair per shared ALBERT block).

    Raises:
        ValueError: When a block has no separate query and key projections (fused QKV), or adds
            relative position scores (a `distance_embedding`: `position_embedding_type="relative_key"`
            on transformers 4.57) that ``Q Kᵀ`` alone does not give.
    """
    blocks = _blocks(model)
    if any(name.endswith("distance_embedding") for block in blocks for name, _ in block.named_modules()):
        position_type = getattr(model.config, "position_embedding_type", "relative")
        raise ValueError(
            f"{type(model).__name__} uses position_embedding_type={position_type!r}: its attention scores "
            "are not Q·Kᵀ/√d alone, so the attention loss cannot be computed. Set attention_weight=0."
        )
    pairs = []
    for index, block in enumerate(blocks):
        submodules = dict(block.named_modules())
        for query_name, key_name in QUERY_KEY_NAMES:
            if query_name in submodules and key_name in submodules:
                pairs.append((submodules[query_name], submodules[key_name]))
                break
        else:
            looked_for = ", ".join(f"{query}/{key}" for query, key in QUERY_KEY_NAMES)
            raise ValueError(
                f"Layer {index} of {type(model).__name__} has no separate query/key projections, so its "
                "pre-softmax attention scores cannot be captured (fused query/key/value projections, like "
                f"DeBERTa v1's in_proj, have no capture; looked for {looked_for}). Set attention_weight=0."
            )
    return pairs


class QueryKeyCapture(ScoreCapture):
    """``A = Q Kᵀ / √d_head`` per layer, from the outputs of the query and key projections.

    ``Q = X W_Qᵀ + b_Q``, ``K = X W_Kᵀ + b_K`` split into heads of ``d_head = width / heads``.

    Args:
        model (`nn.Module`): A model with separate query/key projections (see `QUERY_KEY_NAMES`).
    """

    def __init__(self, model: nn.Module):
        config = model.config
        self.num_heads = config.num_attention_heads
        self.num_layers = config.num_hidden_layers
        self.windows = [None] * self.num_layers
        self.pairs = find_query_key_modules(model)
        self._queries: list[list[torch.Tensor]] = [[] for _ in self.pairs]
        self._keys: list[list[torch.Tensor]] = [[] for _ in self.pairs]

    def install(self, armed: Armed) -> list:
        def appender(store: list):
            def hook(module, args, output):
                if armed():
                    store.append(output)

            return hook

        handles = []
        for index, (query, key) in enumerate(self.pairs):
            handles.append(query.register_forward_hook(appender(self._queries[index])))
            handles.append(key.register_forward_hook(appender(self._keys[index])))
        return handles

    def reset(self) -> None:
        for store in (*self._queries, *self._keys):
            store.clear()

    def layer_scores(self) -> list[torch.Tensor]:
        queries = [q for calls in self._queries for q in calls]
        keys = [k for calls in self._keys for k in calls]
        if len(queries) != self.num_layers or len(keys) != self.num_layers:
            raise RuntimeError(
                f"Recorded {len(queries)} query and {len(keys)} key projections for {self.num_layers} layers: "
                "call the model's forward (once) first."
            )
        scores = []
        for query, key in zip(queries, keys):
            q, k = split_heads(query, self.num_heads), split_heads(key, self.num_heads)
            scores.append(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]))
        return scores
