"""The config of a student built from its teacher's: fewer layers (copied) or a narrower width (new).

A config names widths in more places than `hidden_size`, and a narrow student must not keep any of
its teacher's. Per architecture:

| architecture | fields set for a width ``h`` with ``a`` heads | kept |
|---|---|---|
| every one | `hidden_size` (DistilBERT `dim`), `num_attention_heads`, the feed-forward width (`intermediate_size`, DistilBERT `hidden_dim`) | vocabulary, labels, positions, dropout |
| ELECTRA, ALBERT | `embedding_size = min(teacher's, h)` (factorised embeddings stay factorised) | |
| DeBERTa-v2/v3 | `pooler_hidden_size = h` (the pooler feeds the classifier), `attention_head_size = h / a` when set, `embedding_size = min(teacher's, h)` when set | `position_buckets`, `max_relative_positions`, `pos_att_type`, `share_att_key` (the relative-position table has one row per bucket, of the new width) |
| ModernBERT | the layer kinds (global or local attention) of the new depth | `local_attention`, the rotary bases |
| ALBERT | `num_hidden_groups ≤ num_hidden_layers` | `inner_group_num` |

ModernBERT's layer kinds depend on the layer's position; `copied_config` keeps the kind of every
copied layer where the installed transformers can (`compat.set_modernbert_layer_kinds`).
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Optional, Sequence

from . import compat

logger = logging.getLogger(__name__)


def _feed_forward_field(config: Any) -> str:
    return "hidden_dim" if getattr(config, "model_type", None) == "distilbert" else "intermediate_size"


def _periodic(kinds: Sequence[bool], length: int) -> list[bool]:
    """`length` layer kinds that continue the shortest period of `kinds` (ModernBERT: global every n layers)."""
    for period in range(1, len(kinds) + 1):
        if all(kinds[i] == kinds[i % period] for i in range(len(kinds))):
            return [kinds[i % period] for i in range(length)]
    return list(kinds[:length])  # pragma: no cover (the full length is always a period)


def copied_config(teacher_config: Any, layers: Sequence[int]) -> Any:
    """The config of a student made of the teacher's `layers` (0-based), each keeping its attention kind.

    Returns:
        `PretrainedConfig`: A copy of the teacher's config with `num_hidden_layers = len(layers)`.
    """
    config = copy.deepcopy(teacher_config)
    config.num_hidden_layers = len(layers)
    if getattr(config, "model_type", None) == "modernbert":
        kinds = compat.modernbert_layer_kinds(teacher_config)
        changed = compat.set_modernbert_layer_kinds(config, [kinds[layer] for layer in layers])
        if changed:
            logger.warning(
                "Student layers %s attend globally where the teacher layers copied into them attend locally, or the "
                "reverse: this transformers version sets a ModernBERT layer's kind from its position "
                "(global_attn_every_n_layers=%d). Copy layers whose kinds follow that rule to keep them.",
                changed, config.global_attn_every_n_layers)
    return config


def narrow_config(
    teacher_config: Any,
    num_layers: int,
    hidden_size: int,
    intermediate_size: Optional[int] = None,
    num_attention_heads: Optional[int] = None,
) -> Any:
    """The config of a narrower, randomly initialised student (see the table in the module docstring).

    Args:
        teacher_config (`PretrainedConfig`): The teacher's config (left unchanged).
        num_layers (`int`): ``M``.
        hidden_size (`int`): The student's width ``h``.
        intermediate_size (`int`, *optional*): Its feed-forward width; defaults to the teacher's ratio,
            ``round(h · intermediate_t / hidden_t)`` (4·h for BERT-family models, 1.5·h for ModernBERT-base).
        num_attention_heads (`int`, *optional*): Its heads ``a``; defaults to the teacher's.

    Raises:
        ValueError: When ``h`` is not a multiple of ``a``.
    """
    config = copy.deepcopy(teacher_config)
    heads = num_attention_heads or config.num_attention_heads
    if hidden_size % heads != 0:
        raise ValueError(
            f"hidden_size={hidden_size} is not divisible by num_attention_heads={heads}: pick a width that is a "
            "multiple of the head count, or pass num_attention_heads."
        )
    feed_forward = _feed_forward_field(config)
    teacher_hidden, teacher_feed_forward = teacher_config.hidden_size, getattr(teacher_config, feed_forward)
    config.num_hidden_layers = num_layers
    config.hidden_size = hidden_size
    config.num_attention_heads = heads
    setattr(config, feed_forward, intermediate_size or round(hidden_size * teacher_feed_forward / teacher_hidden))
    if getattr(config, "embedding_size", None) is not None:  # ELECTRA, ALBERT, some DeBERTa configs
        config.embedding_size = min(config.embedding_size, hidden_size)
    if getattr(config, "pooler_hidden_size", None) is not None:  # DeBERTa-v2/v3: pooler -> classifier
        config.pooler_hidden_size = hidden_size
    if getattr(config, "attention_head_size", None) is not None:  # DeBERTa-v2/v3 configs that set it
        config.attention_head_size = hidden_size // heads
    if getattr(config, "num_hidden_groups", None) is not None:  # ALBERT
        config.num_hidden_groups = min(config.num_hidden_groups, num_layers)
    if getattr(config, "model_type", None) == "modernbert":
        compat.set_modernbert_layer_kinds(config, _periodic(compat.modernbert_layer_kinds(teacher_config), num_layers))
    return config
