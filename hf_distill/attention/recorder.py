"""`AttentionScoreRecorder`: each layer's pre-softmax attention scores, for TinyBERT's attention term."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from .base import ScoreCapture, apply_window
from .deberta import DebertaV2Capture
from .modernbert import ModernBertCapture
from .query_key import QueryKeyCapture

# model_type -> its capture; every other model uses its query and key projections (`QueryKeyCapture`).
CAPTURES = {"modernbert": ModernBertCapture, "deberta-v2": DebertaV2Capture}


def capture_for(model: nn.Module) -> ScoreCapture:
    """The score capture of `model`'s architecture.

    Raises:
        ValueError: When its scores cannot be captured, with the reason (e.g. fused query/key/value
            projections, relative position scores, shared blocks that run several layers at once).
    """
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return CAPTURES.get(model_type, QueryKeyCapture)(model)


def _narrower(first: Optional[int], second: Optional[int]) -> Optional[int]:
    """The narrower of two windows (`None`: global)."""
    if first is None or second is None:
        return second if first is None else first
    return min(first, second)


class AttentionScoreRecorder:
    """Records each layer's pre-softmax attention scores during a forward pass.

    The scores are those the model adds its attention mask to before the softmax, so that
    ``softmax(A + mask)`` is the model's attention probabilities: ``Q Kᵀ / √d`` for BERT-like models,
    after rotary positions for ModernBERT, with the disentangled position terms for DeBERTa-v2/v3
    (`capture_for`). Hooks on the projections read them whatever the attention kernel (eager, sdpa,
    flash). Recording is armed by a pre-forward hook on the model and disarmed when its forward
    returns, so activation-checkpointing recomputation during backward records nothing. The scores
    keep the autograd graph of the projections, so the attention loss trains the student's query and
    key weights.

    In a layer with a local window (ModernBERT's local layers), the pairs outside the window are not
    attended to; `scores()` gives them 0, TinyBERT's value for masked pairs. `pair` narrows the
    windows of a student and its teacher to their intersection, so that a mapped pair of layers is
    compared on the token pairs both attend to.

    Args:
        model (`nn.Module`): The model to record.
        num_heads (`int`, *optional*): Its number of attention heads; checked against the model's.

    Raises:
        ValueError: When the model's scores cannot be captured, with the reason.
    """

    def __init__(self, model: nn.Module, num_heads: Optional[int] = None):
        self.capture = capture_for(model)
        if num_heads is not None and num_heads != self.capture.num_heads:
            raise ValueError(f"num_heads={num_heads}, but {type(model).__name__} has {self.capture.num_heads} heads.")
        self.num_heads = self.capture.num_heads
        self.num_layers = self.capture.num_layers
        self.windows: list[Optional[int]] = list(self.capture.windows)
        self._armed = False
        self._handles = [model.register_forward_pre_hook(self._arm), model.register_forward_hook(self._disarm)]
        self._handles += self.capture.install(lambda: self._armed)

    @classmethod
    def pair(
        cls, student: nn.Module, teacher: nn.Module, layer_map: Sequence[int]
    ) -> tuple["AttentionScoreRecorder", "AttentionScoreRecorder"]:
        """Recorders for a student and its teacher, their windows narrowed to what both layers attend to.

        For teacher layer ``g`` and the student layers ``m`` with ``g(m) = g``, both sides use the
        window ``w = min(w_t(g), min_m w_s(m))`` (global layers count as infinitely wide).

        Args:
            student (`nn.Module`): The student.
            teacher (`nn.Module`): The teacher.
            layer_map (`Sequence[int]`): ``g(m)`` (1-based teacher layer) per student layer.

        Raises:
            ValueError: When either model's scores cannot be captured, naming the model.
        """
        recorders = []
        for role, model in (("student", student), ("teacher", teacher)):
            try:
                recorders.append(cls(model))
            except ValueError as error:
                raise ValueError(f"attention_weight > 0, but the {role}'s scores cannot be captured: {error}") from None
        student_scores, teacher_scores = recorders
        narrowed = list(teacher_scores.windows)
        for m, g in enumerate(layer_map):
            narrowed[g - 1] = _narrower(narrowed[g - 1], student_scores.windows[m])
        teacher_scores.windows = narrowed
        student_scores.windows = [narrowed[g - 1] for g in layer_map]
        return student_scores, teacher_scores

    def _arm(self, module, args):
        self._armed = True
        self.capture.reset()

    def _disarm(self, module, args, output):
        self._armed = False

    def scores(self) -> list[torch.Tensor]:
        """One `(batch, heads, seq, seq)` float32 tensor per layer from the last forward, 0 outside local windows."""
        return [apply_window(scores, window) for scores, window in zip(self.capture.layer_scores(), self.windows)]

    def clear(self) -> None:
        """Drops the recorded tensors (and the graph they keep alive)."""
        self.capture.reset()
        self._armed = False

    def remove(self) -> None:
        """Removes every hook."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
