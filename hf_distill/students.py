"""Building a student from a teacher: `create_student`.

Two recipes:

- **DistilBERT-style** (`layers=[...]` or `num_layers=M`): same width as the teacher; copies the
  embeddings, the chosen encoder layers and the task head (Sanh et al., 2019, initialise the
  student "by taking one layer out of two" of the teacher).
- **TinyBERT-style** (`hidden_size=...`): a narrower, randomly initialised model of the same
  architecture with the teacher's vocabulary and label space (Jiao et al., 2020), trained through
  learned projections. `student_configs.narrow_config` sets every width its config names.

ALBERT shares its layer weights, so it has no layer to copy: only the narrower recipe applies.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Optional, Sequence

from transformers import PreTrainedModel

from .architecture import find_layer_list
from .student_configs import copied_config, narrow_config

logger = logging.getLogger(__name__)


def uniform_layer_selection(num_teacher_layers: int, num_student_layers: int) -> list[int]:
    """Picks ``M`` evenly spaced 0-based teacher layers, first and last included.

    ``layer_i = ⌊i · (N − 1) / (M − 1) + 0.5⌋``; for 12 → 6 this gives DistilBERT's own choice
    ``[0, 2, 4, 7, 9, 11]``.

    Args:
        num_teacher_layers (`int`): ``N``.
        num_student_layers (`int`): ``M``, at most ``N``.

    Returns:
        `list[int]`: ``M`` distinct, increasing layer indices.
    """
    n, m = num_teacher_layers, num_student_layers
    if not 1 <= m <= n:
        raise ValueError(f"num_layers must be between 1 and the teacher's {n} layers, got {m}.")
    if m == 1:
        return [n - 1]
    return [math.floor(i * (n - 1) / (m - 1) + 0.5) for i in range(m)]


def block_top_layer_selection(num_teacher_layers: int, num_student_layers: int) -> list[int]:
    """Picks the top layer of each of ``M`` equal blocks of teacher layers (0-based).

    ``layer_m = ⌊m · N / M⌋ − 1`` for ``m = 1..M``: student block ``m`` starts as a copy of teacher
    layer ``g(m) = m · N / M`` (1-based), the layer TinyBERT's uniform layer map makes student layer
    ``m`` imitate. For 12 → 6 this gives ``[1, 3, 5, 7, 9, 11]``, for 6 → 3 ``[1, 3, 5]``. Used for
    TinyBERT-style students cut from their teacher: with `uniform_layer_selection` ([0, 2, 4] for
    6 → 3) every student layer starts one block away from its target.

    Args:
        num_teacher_layers (`int`): ``N``.
        num_student_layers (`int`): ``M``, at most ``N``.

    Returns:
        `list[int]`: ``M`` distinct, increasing layer indices; the last is always ``N − 1``.
    """
    n, m = num_teacher_layers, num_student_layers
    if not 1 <= m <= n:
        raise ValueError(f"num_layers must be between 1 and the teacher's {n} layers, got {m}.")
    return [(i * n) // m - 1 for i in range(1, m + 1)]


LAYER_SELECTIONS = {"uniform": uniform_layer_selection, "block_top": block_top_layer_selection}


# Per-layer weights a copied layer may gain or lose with its position: ModernBERT's first layer has no
# pre-attention LayerNorm (its input is the normalised embedding output), every other layer has one.
_POSITION_DEPENDENT = re.compile(r"\.attn_norm\.")


def _copy_layers(teacher: PreTrainedModel, layers: Sequence[int]) -> PreTrainedModel:
    num_teacher_layers = teacher.config.num_hidden_layers
    prefix, _ = find_layer_list(teacher)  # refuses models without separate layers (ALBERT), with the reason
    bad = [layer for layer in layers if not 0 <= layer < num_teacher_layers]
    if bad or len(set(layers)) != len(layers) or not layers:
        raise ValueError(
            f"layers={list(layers)} must be distinct 0-based indices of the teacher's "
            f"{num_teacher_layers} layers (0..{num_teacher_layers - 1})."
        )
    student = type(teacher)(copied_config(teacher.config, layers))
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.(.*)$")
    new_index = {old: new for new, old in enumerate(layers)}
    state_dict = {}
    for key, value in teacher.state_dict().items():
        match = pattern.match(key)
        if match is None:
            state_dict[key] = value.clone()
        elif int(match.group(1)) in new_index:
            state_dict[f"{prefix}.{new_index[int(match.group(1))]}.{match.group(2)}"] = value.clone()
    expected = student.state_dict()
    dropped = sorted(key for key in state_dict if key not in expected and _POSITION_DEPENDENT.search(key))
    kept_fresh = sorted(key for key in expected if key not in state_dict and _POSITION_DEPENDENT.search(key))
    if dropped or kept_fresh:
        changes = ([f"leaves out {', '.join(dropped)}"] if dropped else []) + (
            [f"starts {', '.join(kept_fresh)} fresh (weight 1)"] if kept_fresh else [])
        logger.warning("%s's first layer has no attention LayerNorm and its other layers have one: the copy %s.",
                       type(teacher).__name__, " and ".join(changes))
        state_dict = {key: value for key, value in state_dict.items() if key not in dropped}
        state_dict.update({key: expected[key] for key in kept_fresh})
    student.load_state_dict(state_dict, strict=True)
    return student.to(dtype=teacher.dtype)


def create_student(
    teacher: PreTrainedModel,
    layers: Optional[Sequence[int]] = None,
    num_layers: Optional[int] = None,
    hidden_size: Optional[int] = None,
    intermediate_size: Optional[int] = None,
    num_attention_heads: Optional[int] = None,
    layer_selection: str = "uniform",
) -> PreTrainedModel:
    """Builds a smaller student of the teacher's class, vocabulary and label space.

    Args:
        teacher (`PreTrainedModel`): An encoder (BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT,
            DeBERTa-v2/v3, ModernBERT; ALBERT for narrower students), with any head
            (`*ForSequenceClassification`, `*ForMaskedLM`, ...).
        layers (`Sequence[int]`, *optional*): 0-based teacher layers to copy, e.g. `[0, 2, 4]`. The
            embeddings, pooler and task head are copied too.
        num_layers (`int`, *optional*): Number of student layers. Without `hidden_size`, copies
            `num_layers` teacher layers picked by `layer_selection`.
        hidden_size (`int`, *optional*): Width of a randomly initialised, narrower student
            (TinyBERT-style); needs `num_layers`.
        intermediate_size (`int`, *optional*): Feed-forward width of the narrower student, defaults
            to the teacher's ratio, ``round(hidden_size · intermediate_t / hidden_t)`` (``4 · hidden_size``
            for BERT-family models).
        num_attention_heads (`int`, *optional*): Heads of the narrower student, defaults to the
            teacher's (TinyBERT's attention loss needs equal head counts).
        layer_selection (`str`, defaults to `"uniform"`): Which layers `num_layers` copies:
            `"uniform"`, evenly spaced with the first and last (`uniform_layer_selection`, DistilBERT's
            choice), or `"block_top"`, the layers TinyBERT's uniform layer map points at
            (`block_top_layer_selection`). Not used when `layers` is given.

    Returns:
        `PreTrainedModel`: The student, in training mode, with the teacher's dtype and
        attention implementation.
    """
    if layers is not None and (num_layers is not None or hidden_size is not None):
        if num_layers is not None and num_layers != len(layers):
            raise ValueError(f"layers has {len(layers)} entries but num_layers={num_layers}: give one or the other.")
        if hidden_size is not None:
            raise ValueError(
                "layers=[...] copies teacher layers, which fixes the width; hidden_size builds a new, narrower "
                "student. Give one or the other."
            )
    if layer_selection not in LAYER_SELECTIONS:
        raise ValueError(f"layer_selection={layer_selection!r}: choose one of {', '.join(LAYER_SELECTIONS)}.")
    if hidden_size is not None:
        if num_layers is None:
            raise ValueError("create_student(hidden_size=...) also needs num_layers=...")
        config = narrow_config(teacher.config, num_layers, hidden_size, intermediate_size, num_attention_heads)
        student = type(teacher)(config).to(dtype=teacher.dtype)
    else:
        if intermediate_size is not None or num_attention_heads is not None:
            raise ValueError("intermediate_size and num_attention_heads only apply with hidden_size=...")
        if layers is None:
            if num_layers is None:
                raise ValueError("create_student needs layers=[...], num_layers=M, or num_layers with hidden_size.")
            layers = LAYER_SELECTIONS[layer_selection](teacher.config.num_hidden_layers, num_layers)
        student = _copy_layers(teacher, list(layers))
    student.train()
    return student
