"""MiniLM's self-attention relation distillation (Wang et al., 2020, MiniLM; Wang et al., 2021, MiniLMv2).

A *relation* of two sequences of vectors ``X, Y`` of shape `(batch, seq, d)`, split into ``A`` heads of
``d / A`` features, is one distribution per head and query token over the key tokens:

``R(X, Y)_{a,i} = softmax_j(X_{a,i} · Y_{a,j} / √(d / A))``

The teacher's relation at one chosen layer teaches the student's relation at its last layer through
``KL(R_teacher ‖ R_student)``. Because a relation is `seq × seq` per head, the student may have another
width (and, with relation heads, another head count) than the teacher:

- MiniLM (v1): the attention distributions (``X = Q``, ``Y = K``, the model's own heads) and the value
  relation (``X = Y = V``, the model's own heads): terms `attention_relation` and `value_relation`; the
  two models need the same number of attention heads.
- MiniLMv2: query-query, key-key and value-value relations with ``A_r`` *relation heads* (the
  projections' outputs, all heads concatenated, re-split into ``A_r`` heads): terms `query_relation`,
  `key_relation`, `value_relation` with `relation_heads=A_r`; any head counts, any widths divisible by
  ``A_r``.

`QKVCapture` records the query, key and value projections of one layer; `relation_kl_loss` is the loss.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .architecture import find_layer_list, shared_layers_reason

# (query, key, value) submodule names inside one encoder layer, by model family.
QKV_NAMES = (
    ("attention.self.query", "attention.self.key", "attention.self.value"),  # BERT, RoBERTa, XLM-R, ELECTRA
    ("attention.q_lin", "attention.k_lin", "attention.v_lin"),  # DistilBERT
    ("attention.self.query_proj", "attention.self.key_proj", "attention.self.value_proj"),  # DeBERTa-v2/v3
)
# A fused projection whose output is [Q; K; V] along the last dimension.
FUSED_QKV_NAMES = ("attn.Wqkv",)  # ModernBERT (Q and K before its rotary position embedding)

VECTORS = ("query", "key", "value")
RELATION_TERMS = {
    "attention_relation": ("query", "key"),
    "value_relation": ("value", "value"),
    "query_relation": ("query", "query"),
    "key_relation": ("key", "key"),
}
"""Relation term name -> the (left, right) vectors whose scaled dot products it compares."""


def relation_kl_loss(
    student_left: torch.Tensor,
    student_right: torch.Tensor,
    teacher_left: torch.Tensor,
    teacher_right: torch.Tensor,
    num_heads: int,
    attention_mask: Optional[torch.Tensor] = None,
    teacher_num_heads: Optional[int] = None,
) -> torch.Tensor:
    r"""KL between the teacher's and the student's relation distributions at one layer (MiniLM, MiniLMv2).

    For each model, ``X`` (left) and ``Y`` (right) of shape `(batch, seq, d)` are split into ``A`` heads of
    ``d_r = d / A`` features, and

    ``R_{b,a,i,j} = softmax_j(X_{b,a,i} · Y_{b,a,j} / √d_r)`` over the real key tokens ``j``;

    ``L = mean over real query tokens (b, i) of mean over heads a of KL(R^t_{b,a,i} ‖ R^s_{b,a,i})``

    MiniLM writes ``1/(A_h·|x|) Σ_a Σ_t KL`` for one sequence of ``|x|`` tokens; over a padded batch the
    mean runs over every real token of the batch, and padded keys get probability 0 in both models. Each
    model scales by its own ``√d_r``.

    Args:
        student_left (`torch.Tensor` of shape `(batch, seq, d_s)`): Student ``X`` (e.g. queries).
        student_right (`torch.Tensor` of shape `(batch, seq, d_s)`): Student ``Y`` (e.g. keys).
        teacher_left (`torch.Tensor` of shape `(batch, seq, d_t)`): Teacher ``X``.
        teacher_right (`torch.Tensor` of shape `(batch, seq, d_t)`): Teacher ``Y``.
        num_heads (`int`): ``A`` of the student (relation heads, or its attention heads for MiniLM v1).
        attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): 1 for real tokens.
        teacher_num_heads (`int`, *optional*): ``A`` of the teacher; must equal `num_heads` (head ``a`` of
            one model teaches head ``a`` of the other). Defaults to `num_heads`.

    Returns:
        `torch.Tensor`: A scalar, the mean over real query tokens of the head-mean KL.
    """
    teacher_num_heads = num_heads if teacher_num_heads is None else teacher_num_heads
    if teacher_num_heads != num_heads:
        raise ValueError(
            f"The relation needs as many heads in the teacher ({teacher_num_heads}) as in the student ({num_heads}): "
            "MiniLM v1's attention and value relations use the models' own heads, so give the student the teacher's "
            "head count, or use MiniLMv2's relation heads (relation_heads=N) instead."
        )
    return scores_kl_loss(_relation_scores(student_left, student_right, num_heads),
                          _relation_scores(teacher_left, teacher_right, num_heads), attention_mask)


def scores_kl_loss(
    student_scores: torch.Tensor,
    teacher_scores: torch.Tensor,
    attention_mask: Optional[torch.Tensor] = None,
    window: Optional[int] = None,
) -> torch.Tensor:
    r"""KL between the teacher's and the student's softmax distributions of pre-softmax scores, per head and query.

    ``P_{b,a,i,·} = softmax_j(S_{b,a,i,j})`` over the keys ``j`` a query may attend to (real tokens, and
    ``|i − j| ≤ window`` for a local-attention layer);

    ``L = mean over real query tokens (b, i) of mean over heads a of KL(P^t_{b,a,i} ‖ P^s_{b,a,i})``

    With the models' own attention scores this is MiniLM's attention transfer (the attention distributions
    the models use); with relation scores it is `relation_kl_loss`.

    Args:
        student_scores (`torch.Tensor` of shape `(batch, heads, seq, seq)`): Student scores, before the mask.
        teacher_scores (`torch.Tensor` of shape `(batch, heads, seq, seq)`): Teacher scores, before the mask.
        attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): 1 for real tokens.
        window (`int`, *optional*): Half-width of a local attention window; `None` for global attention.

    Returns:
        `torch.Tensor`: A scalar, the mean over real query tokens of the head-mean KL.
    """
    if student_scores.shape != teacher_scores.shape:
        raise ValueError(
            f"Scores differ in shape: student {tuple(student_scores.shape)}, teacher {tuple(teacher_scores.shape)}: "
            "the KL pairs head a of the teacher with head a of the student, so both need the same head count."
        )
    batch, _, length, _ = student_scores.shape
    device = student_scores.device
    row = None if attention_mask is None else attention_mask.bool()
    allowed = torch.ones(batch, 1, length, length, dtype=torch.bool, device=device)
    if row is not None:
        allowed = allowed & row[:, None, None, :]
    if window is not None:
        positions = torch.arange(length, device=device)
        allowed = allowed & ((positions[:, None] - positions[None, :]).abs() <= window)[None, None]
    log_s = _masked_log_softmax(student_scores.float(), allowed)
    log_t = _masked_log_softmax(teacher_scores.float(), allowed)
    kl = (log_t.exp() * (log_t - log_s)).masked_fill(~allowed, 0.0)
    per_query = kl.sum(-1).mean(1)  # (batch, query): head-mean KL
    if row is None:
        return per_query.mean()
    rows = per_query[row]
    return rows.mean() if rows.numel() else per_query.sum() * 0.0


def _masked_log_softmax(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(scores.masked_fill(~allowed, torch.finfo(scores.dtype).min), dim=-1)


def _split(vectors: torch.Tensor, num_heads: int) -> torch.Tensor:
    batch, length, width = vectors.shape
    if width % num_heads:
        raise ValueError(
            f"A width of {width} does not split into {num_heads} relation heads: choose relation_heads dividing both "
            "the student's and the teacher's hidden sizes."
        )
    return vectors.float().view(batch, length, num_heads, width // num_heads).transpose(1, 2)


def _relation_scores(left: torch.Tensor, right: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``X_a · Y_aᵀ / √d_r`` per relation head, `(batch, heads, seq, seq)` in float32."""
    x, y = _split(left, num_heads), _split(right, num_heads)
    return x @ y.transpose(-1, -2) / math.sqrt(x.shape[-1])


def find_qkv_modules(model: nn.Module, layer: int) -> tuple[tuple[nn.Module, ...], bool]:
    """The query, key and value projections of one layer (0-based), and whether they are one fused module.

    Raises:
        ValueError: When the layer has neither separate nor fused projections hf-distill knows, naming them.
    """
    shared = shared_layers_reason(model)
    if shared:
        raise ValueError(
            f"{type(model).__name__} runs one set of query/key/value projections for all its layers (shared layer "
            "weights), so a hook on them cannot tell one layer's vectors from another's: set value_relation_weight, "
            "query_relation_weight and key_relation_weight to 0 (attention_relation_weight works)."
        )
    _, layers = find_layer_list(model)
    if not -len(layers) <= layer < len(layers):
        raise ValueError(f"Layer {layer} is out of range for the {len(layers)} layers of {type(model).__name__}.")
    block = layers[layer]
    submodules = dict(block.named_modules())
    for names in QKV_NAMES:
        if all(name in submodules for name in names):
            return tuple(submodules[name] for name in names), False
    for name in FUSED_QKV_NAMES:
        if name in submodules:
            return (submodules[name],), True
    looked_for = ", ".join("/".join(names) for names in QKV_NAMES) + ", " + ", ".join(FUSED_QKV_NAMES)
    raise ValueError(
        f"{type(model).__name__} has no query/key/value projections hf-distill knows (looked for {looked_for}), so "
        "the MiniLM relation terms cannot be computed: set their weights to 0."
    )


class QKVCapture:
    """Records the query, key and value vectors (all heads concatenated) of one layer during a forward pass.

    Args:
        model (`nn.Module`): The student or the teacher.
        layer (`int`): 0-based layer (negative counts from the top: -1 is the last layer).
    """

    def __init__(self, model: nn.Module, layer: int):
        modules, self.fused = find_qkv_modules(model, layer)
        self.widths = [m.out_features // (3 if self.fused else 1) for m in modules if isinstance(m, nn.Linear)]
        self._armed = False
        self._vectors: dict[str, torch.Tensor] = {}
        # Armed from the model's forward call to its return: activation-checkpointing recomputation during the
        # backward pass records nothing.
        self._handles = [model.register_forward_pre_hook(self._arm), model.register_forward_hook(self._disarm)]
        if self.fused:
            self._handles.append(modules[0].register_forward_hook(self._fused_hook))
        else:
            self._handles += [module.register_forward_hook(self._hook(name)) for name, module in zip(VECTORS, modules)]

    def _arm(self, module, args):
        self._armed = True
        self._vectors = {}

    def _disarm(self, module, args, output):
        self._armed = False

    def _hook(self, name: str):
        def hook(module, args, output):
            # The first call of a forward: DeBERTa calls its query/key projections again on the relative position
            # embeddings (shared attention keys), after the content vectors.
            if self._armed and name not in self._vectors:
                self._vectors[name] = output

        return hook

    def _fused_hook(self, module, args, output):
        if self._armed:
            for name, chunk in zip(VECTORS, output.chunk(3, dim=-1)):
                self._vectors[name] = chunk

    def vectors(self) -> dict[str, torch.Tensor]:
        """`{"query", "key", "value"}` of the last forward pass, each `(batch, seq, width)`."""
        if len(self._vectors) != 3:
            raise RuntimeError("No query/key/value recorded: run the model's forward first.")
        return dict(self._vectors)

    def clear(self) -> None:
        self._vectors = {}

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


RELATION_WEIGHT_FIELDS = tuple(f"{name}_weight" for name in RELATION_TERMS)


def _common_divisors(*widths: int) -> list[int]:
    return [n for n in range(1, min(widths) + 1) if all(width % n == 0 for width in widths)]


class RelationDistiller:
    """What the MiniLM terms need from one forward of the student and of its teacher, and the terms themselves.

    The student's last layer learns from teacher layer `teacher_layer` (1-based; the last by default). Every
    check runs here, before the first step.

    Args:
        student (`nn.Module`): The student.
        teacher (`nn.Module`): The teacher.
        weights (`dict[str, float]`): The largest weight of each term over training, by field name.
        relation_heads (`int`, *optional*): MiniLMv2's relation heads; `None` for each model's own heads.
        teacher_layer (`int`, *optional*): 1-based teacher layer.

    Raises:
        ValueError: For a teacher layer out of range, head counts that cannot be paired, widths the relation
            heads do not divide, or a model whose projections or scores cannot be captured; each names the fix.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, weights: dict[str, float],
                 relation_heads: Optional[int] = None, teacher_layer: Optional[int] = None):
        from .layers import AttentionScoreRecorder

        num_teacher_layers = teacher.config.num_hidden_layers
        self.teacher_layer = num_teacher_layers if teacher_layer is None else int(teacher_layer)
        if not 1 <= self.teacher_layer <= num_teacher_layers:
            raise ValueError(f"relation_teacher_layer={teacher_layer} is outside the teacher's {num_teacher_layers} "
                             f"layers: give a 1-based layer from 1 to {num_teacher_layers}.")
        self.vector_terms = [name for name in ("value_relation", "query_relation", "key_relation")
                             if weights.get(f"{name}_weight", 0.0) > 0]
        self.attention = weights.get("attention_relation_weight", 0.0) > 0
        s_heads, t_heads = student.config.num_attention_heads, teacher.config.num_attention_heads
        self.student_vectors = self.teacher_vectors = None
        if self.vector_terms:
            fields = ", ".join(f"{name}_weight" for name in self.vector_terms)
            try:
                self.student_vectors = QKVCapture(student, -1)
                self.teacher_vectors = QKVCapture(teacher, self.teacher_layer - 1)
            except ValueError as error:
                raise ValueError(f"{fields} > 0: {error}") from None
            if relation_heads is None:
                if s_heads != t_heads:
                    raise ValueError(
                        f"{fields} > 0 with relation_heads unset uses each model's own attention heads (MiniLM), but "
                        f"the student has {s_heads} and the teacher {t_heads}: set relation_heads (MiniLMv2) to a number "
                        f"dividing both widths, e.g. {max(_common_divisors(*self._widths()))}."
                    )
                self.student_heads, self.teacher_heads = s_heads, t_heads
            else:
                bad = [width for width in self._widths() if width % int(relation_heads)]
                if bad:
                    raise ValueError(
                        f"relation_heads={relation_heads} does not divide the query/key/value width {bad[0]}: choose "
                        f"one of {_common_divisors(*self._widths())[-6:]} (dividing the student's and the teacher's)."
                    )
                self.student_heads = self.teacher_heads = int(relation_heads)
        self.student_scores = self.teacher_scores = None
        self.window: Optional[int] = None
        if self.attention:
            if s_heads != t_heads:
                raise ValueError(
                    f"attention_relation_weight > 0 compares the attention distributions head by head, but the student "
                    f"has {s_heads} heads and the teacher {t_heads}: give the student the teacher's head count, or use "
                    "MiniLMv2's relations (query/key/value_relation_weight with relation_heads) instead."
                )
            try:
                self.student_scores = AttentionScoreRecorder(student)
                self.teacher_scores = AttentionScoreRecorder(teacher)
            except ValueError as error:
                raise ValueError(f"attention_relation_weight > 0: {error}") from None
            windows = [w for w in (getattr(self.student_scores, "windows", [None])[-1],
                                   getattr(self.teacher_scores, "windows", [None] * self.teacher_layer)[self.teacher_layer - 1])
                       if w is not None]
            self.window = min(windows) if windows else None

    def _widths(self) -> list[int]:
        return [*self.student_vectors.widths, *self.teacher_vectors.widths]

    def losses(self, active: set[str], attention_mask: Optional[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The relation terms named in `active`, from the last forward of the student and the teacher."""
        out = {}
        if self.vector_terms and active & set(self.vector_terms):
            s, t = self.student_vectors.vectors(), self.teacher_vectors.vectors()
            for name in self.vector_terms:
                if name in active:
                    left, right = RELATION_TERMS[name]
                    out[name] = relation_kl_loss(s[left], s[right], t[left], t[right], self.student_heads,
                                                 attention_mask, self.teacher_heads)
        if self.attention and "attention_relation" in active:
            out["attention_relation"] = scores_kl_loss(
                self.student_scores.scores()[-1], self.teacher_scores.scores()[self.teacher_layer - 1], attention_mask,
                self.window,
            )
        return out

    def clear(self) -> None:
        """Drops what the captures hold (and the graph it keeps alive)."""
        for capture in (self.student_vectors, self.teacher_vectors):
            if capture is not None:
                capture.clear()
        for recorder in (self.student_scores, self.teacher_scores):
            if recorder is not None:
                recorder.clear()
