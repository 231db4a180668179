"""Distillation loss terms, one pure function each.

Every function takes tensors (and masks) and returns a scalar tensor. None of them reaches into a
model, so each can be checked against numbers worked out by hand. All computations are done in
float32, whatever the dtype of the inputs (so fp16/bf16 autocast cannot overflow them).

Notation: ``z_s``/``z_t`` are student/teacher logits, ``T`` the temperature, ``h`` hidden states,
``A`` pre-softmax attention scores, ``P`` a learned projection (applied by the caller).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

KD_LOSSES = ("kl", "soft_ce", "mse")


def _select_rows(tensor: torch.Tensor, row_mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Flattens `tensor` to `(rows, features)` and keeps the rows where `row_mask` is true.

    `tensor` has shape `(*rows, C)`; `row_mask` has shape `rows` (or is `None`: keep every row).
    """
    flat = tensor.reshape(-1, tensor.shape[-1]).float()
    if row_mask is None:
        return flat
    return flat[row_mask.reshape(-1).bool()]


def _mean_or_zero(values: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean of `values`, or a zero that keeps the graph alive when there is nothing to average."""
    if values.numel() == 0:
        return reference.sum() * 0.0
    return values.mean()


def kl_divergence_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 2.0,
    row_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    r"""Soft-target KL divergence (Hinton et al., 2015; DistilBERT's `loss_ce`).

    ``L = T² · mean_rows KL(softmax(z_t/T) || softmax(z_s/T))``
    ``  = T² · mean_rows Σ_c p_t,c · (log p_t,c − log p_s,c)``

    The ``T²`` factor keeps the gradient scale independent of the temperature (Hinton et al.).
    DistilBERT's reference code (`distiller.py`) uses ``KLDivLoss(reduction="batchmean")`` over the
    selected rows, which is this mean over rows. Which rows: distiller.py takes every real token of a
    masked-LM batch (`--restrict_ce_to_mask` off); `DistillationTrainer` takes the masked positions by
    default and every real token with `kd_positions="all"` or `reference="distilbert"`.

    Args:
        student_logits (`torch.Tensor` of shape `(*rows, C)`): Student logits.
        teacher_logits (`torch.Tensor` of shape `(*rows, C)`): Teacher logits.
        temperature (`float`, defaults to 2.0): Softmax temperature ``T``.
        row_mask (`torch.Tensor` of shape `rows`, *optional*): Rows to average over (e.g. tokens whose
            label is not -100). Every row when `None`.

    Returns:
        `torch.Tensor`: A scalar, mean over the selected rows.
    """
    z_s = _select_rows(student_logits, row_mask) / temperature
    z_t = _select_rows(teacher_logits, row_mask) / temperature
    log_p_s = F.log_softmax(z_s, dim=-1)
    log_p_t = F.log_softmax(z_t, dim=-1)
    per_row = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
    return temperature**2 * _mean_or_zero(per_row, z_s)


def soft_cross_entropy_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    row_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    r"""Soft cross-entropy (TinyBERT's prediction-layer loss, `soft_cross_entropy` in its code).

    ``L = T² · mean_rows(−Σ_c softmax(z_t/T)_c · log_softmax(z_s/T)_c)``

    It differs from `kl_divergence_loss` by the teacher's entropy, a constant for the student, so
    the gradients are the same; the value does not go to zero. TinyBERT's code uses ``T = 1`` and
    reduces differently: it takes the mean over rows *and classes* with no ``T²`` factor, ``1/(C·T²)``
    times this value (`tinybert_soft_cross_entropy_loss`, selected by `reference="tinybert"`).

    Args:
        student_logits (`torch.Tensor` of shape `(*rows, C)`): Student logits.
        teacher_logits (`torch.Tensor` of shape `(*rows, C)`): Teacher logits.
        temperature (`float`, defaults to 1.0): Softmax temperature ``T``.
        row_mask (`torch.Tensor` of shape `rows`, *optional*): Rows to average over.

    Returns:
        `torch.Tensor`: A scalar, mean over the selected rows.
    """
    z_s = _select_rows(student_logits, row_mask) / temperature
    z_t = _select_rows(teacher_logits, row_mask) / temperature
    per_row = -(F.softmax(z_t, dim=-1) * F.log_softmax(z_s, dim=-1)).sum(-1)
    return temperature**2 * _mean_or_zero(per_row, z_s)


def tinybert_soft_cross_entropy_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    row_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    r"""TinyBERT's prediction-layer loss exactly as its code reduces it (`reference="tinybert"`).

    ``L = mean over rows and classes of (−softmax(z_t/T)_c · log_softmax(z_s/T)_c)``

    `soft_cross_entropy` in TinyBERT's `task_distill.py` is ``(−p_t · log_softmax(z_s/T)).mean()``: a mean
    over batch × classes, with no ``T²``. `soft_cross_entropy_loss` (the default) sums over the classes and
    multiplies by ``T²``, so it is ``C·T²`` times this value (``C`` classes) and its gradient does not shrink
    with more classes or a higher temperature; the two train the same way up to the learning rate.

    Args:
        student_logits (`torch.Tensor` of shape `(*rows, C)`): Student logits.
        teacher_logits (`torch.Tensor` of shape `(*rows, C)`): Teacher logits.
        temperature (`float`, defaults to 1.0): Softmax temperature ``T`` (TinyBERT's default 1).
        row_mask (`torch.Tensor` of shape `rows`, *optional*): Rows to average over (token-level heads).

    Returns:
        `torch.Tensor`: A scalar, mean over rows and classes.
    """
    z_s = _select_rows(student_logits, row_mask) / temperature
    z_t = _select_rows(teacher_logits, row_mask) / temperature
    return _mean_or_zero(-(F.softmax(z_t, dim=-1) * F.log_softmax(z_s, dim=-1)), z_s)


def span_kl_divergence_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 2.0,
    position_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    r"""Soft targets of a question-answering head: the KL on the start and on the end logits, averaged.

    ``L = T² · ½ · Σ_{e ∈ {start, end}} mean_b KL(softmax(z_t,e,b/T) || softmax(z_s,e,b/T))``

    where each softmax runs over the positions ``j`` of example ``b`` with `position_mask` 1 (every
    position when `position_mask` is `None`). With `position_mask=None` this is DistilBERT's
    `run_squad_w_distillation.py` (``KLDivLoss(reduction="batchmean")`` on start and on end logits over the
    whole padded sequence, times ``T²``, the two averaged), its `reference="distilbert"` mode. The default
    (`DistillationTrainer` passes the attention mask) leaves padding positions out of both distributions:
    their logits carry no answer, and the teacher's probability on them would otherwise be a target that
    depends on how the batch was padded.

    Args:
        student_logits (`torch.Tensor` of shape `(batch, 2, seq)`): Student start and end logits, stacked.
        teacher_logits (`torch.Tensor` of shape `(batch, 2, seq)`): Teacher start and end logits, stacked.
        temperature (`float`, defaults to 2.0): Softmax temperature ``T``.
        position_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): 1 for the positions to keep.

    Returns:
        `torch.Tensor`: A scalar, mean over the ``2·batch`` distributions.
    """
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 3:
        raise ValueError(
            f"Span logits must be (batch, 2, seq) for both models, got student {tuple(student_logits.shape)} and "
            f"teacher {tuple(teacher_logits.shape)}: teacher and student need the same padded inputs."
        )
    if position_mask is None:  # every position: one KL row per (example, start/end)
        return kl_divergence_loss(student_logits.float(), teacher_logits.float(), temperature)
    z_s = student_logits.float() / temperature
    z_t = teacher_logits.float() / temperature
    keep = position_mask.bool()[:, None, :].expand_as(z_s)
    log_p_s = F.log_softmax(z_s.masked_fill(~keep, float("-inf")), dim=-1)
    log_p_t = F.log_softmax(z_t.masked_fill(~keep, float("-inf")), dim=-1)
    terms = torch.where(keep, log_p_t.exp() * (log_p_t - log_p_s), torch.zeros_like(z_s))
    return temperature**2 * _mean_or_zero(terms.sum(-1), z_s)


def logit_mse_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    row_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    r"""Mean squared error between logits (Ba & Caruana, 2014), no temperature.

    ``L = mean_rows mean_c (z_s,c − z_t,c)²``

    Also the soft-target loss of regression heads (``C = 1``, e.g. STS-B): the MSE between the
    student's and the teacher's predictions.

    Args:
        student_logits (`torch.Tensor` of shape `(*rows, C)`): Student logits or predictions.
        teacher_logits (`torch.Tensor` of shape `(*rows, C)`): Teacher logits or predictions.
        row_mask (`torch.Tensor` of shape `rows`, *optional*): Rows to average over.

    Returns:
        `torch.Tensor`: A scalar, mean over the selected rows and the classes.
    """
    z_s = _select_rows(student_logits, row_mask)
    z_t = _select_rows(teacher_logits, row_mask)
    return _mean_or_zero((z_s - z_t).pow(2), z_s)


def soft_target_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    kd_loss: str = "kl",
    temperature: float = 2.0,
    row_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Dispatches to the soft-target loss named by `kd_loss`.

    Regression heads (last dimension 1) always use `logit_mse_loss`: a softmax over one class is
    constant, so KL or soft cross-entropy would carry no signal.

    Args:
        student_logits (`torch.Tensor` of shape `(*rows, C)`): Student logits.
        teacher_logits (`torch.Tensor` of shape `(*rows, C)`): Teacher logits.
        kd_loss (`str`, defaults to `"kl"`): One of `"kl"`, `"soft_ce"`, `"mse"`.
        temperature (`float`, defaults to 2.0): Softmax temperature (ignored by `"mse"`).
        row_mask (`torch.Tensor` of shape `rows`, *optional*): Rows to average over.

    Returns:
        `torch.Tensor`: A scalar.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"Student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} "
            "have different shapes: teacher and student need the same label space (num_labels / vocabulary)."
        )
    if student_logits.shape[-1] == 1 or kd_loss == "mse":
        return logit_mse_loss(student_logits, teacher_logits, row_mask)
    if kd_loss == "kl":
        return kl_divergence_loss(student_logits, teacher_logits, temperature, row_mask)
    if kd_loss == "soft_ce":
        return soft_cross_entropy_loss(student_logits, teacher_logits, temperature, row_mask)
    raise ValueError(f"Unknown kd_loss {kd_loss!r}; choose one of {KD_LOSSES}.")


def labelled_rows(labels: torch.Tensor) -> torch.Tensor:
    """Which examples of a batch of sequence-level labels carry a label.

    An example without a label takes part in the teacher terms (soft targets, cosine, hidden states,
    attention) and not in the task loss, as the transfer data of TinyBERT or the unlabelled data of
    Tang et al. (2019) does. It is marked by a class index below 0 (-100, the ignore index of PyTorch
    and transformers; -1, the `datasets` convention of GLUE's test splits) or, for a regression score,
    by NaN.

    Args:
        labels (`torch.Tensor` of shape `(batch,)`): Class indices (integer) or scores (float).

    Returns:
        `torch.Tensor` of shape `(batch,)`: `True` where the example has a label.
    """
    if labels.is_floating_point():
        return ~torch.isnan(labels)
    return labels >= 0


def sequence_task_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    problem_type: str,
    row_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    r"""The task loss of a sequence-classification head, over the labelled examples only.

    - ``"regression"`` (one output, e.g. STS-B): ``L = mean_rows (z − y)²``;
    - ``"single_label_classification"``: ``L = mean_rows(−log softmax(z)_y)``.

    Over every row these are the losses, and the reductions, of transformers' sequence-classification
    heads (`MSELoss`, `CrossEntropyLoss`, both means over the batch). `DistillationTrainer` calls this
    only for batches that hold examples without a label (`labelled_rows`), whose label values must not
    reach those heads: -1 is out of range for the cross-entropy and NaN poisons the MSE. With no
    labelled row the loss is a zero that keeps the graph.

    Args:
        logits (`torch.Tensor` of shape `(batch, C)`): Student logits (``C = 1`` for regression).
        labels (`torch.Tensor` of shape `(batch,)`): Class indices or scores; unlabelled rows hold any value.
        problem_type (`str`): `"regression"` or `"single_label_classification"` (the model config's).
        row_mask (`torch.Tensor` of shape `(batch,)`, *optional*): Rows to average over; defaults to
            `labelled_rows(labels)`.

    Returns:
        `torch.Tensor`: A scalar, mean over the selected rows.
    """
    if row_mask is None:
        row_mask = labelled_rows(labels)
    row_mask = row_mask.reshape(-1).bool()
    z = _select_rows(logits, row_mask)
    y = labels.reshape(-1)[row_mask]
    if problem_type == "regression":
        if z.shape[-1] != 1:
            raise ValueError(f"Regression with {z.shape[-1]} outputs per example: expected one (num_labels=1).")
        return _mean_or_zero((z[:, 0] - y.float()).pow(2), logits)
    if problem_type == "single_label_classification":
        return _mean_or_zero(F.cross_entropy(z, y.long(), reduction="none"), logits)
    raise ValueError(
        f"Examples without a label are supported for regression and single-label classification, not "
        f"problem_type={problem_type!r}: give every example a label."
    )


def cosine_hidden_loss(
    student_hidden: torch.Tensor,
    teacher_hidden: torch.Tensor,
    attention_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    r"""DistilBERT's cosine embedding loss on hidden states (`loss_cos` in its reference code).

    ``L = mean over non-padding tokens of (1 − cos(P(h_s), h_t))``

    DistilBERT applies it to the last hidden layer with `nn.CosineEmbeddingLoss(reduction="mean")`
    and target 1 over the non-padding tokens, which is this formula. The caller applies `P`.

    Args:
        student_hidden (`torch.Tensor` of shape `(batch, seq, d)`): Projected student hidden states.
        teacher_hidden (`torch.Tensor` of shape `(batch, seq, d)`): Teacher hidden states.
        attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): 1 for real tokens.

    Returns:
        `torch.Tensor`: A scalar, mean over the non-padding tokens.
    """
    h_s = _select_rows(student_hidden, attention_mask)
    h_t = _select_rows(teacher_hidden, attention_mask)
    return _mean_or_zero(1.0 - F.cosine_similarity(h_s, h_t, dim=-1, eps=1e-8), h_s)


def hidden_mse_loss(
    student_hidden: torch.Tensor,
    teacher_hidden: torch.Tensor,
    attention_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    r"""TinyBERT's hidden-state (and embedding) loss for one mapped layer.

    ``L = mean over non-padding tokens and features of (P(h_s) − h_t)²``

    TinyBERT's reference code takes `MSELoss()` over every position, padding included, which is this
    function with `attention_mask=None` (`reference="tinybert"`); with no padding the two are equal. The
    default averages over real tokens so that the loss does not shrink with the amount of padding. TinyBERT
    also projects the embedding output and every layer with one shared `fit_dense`; hf-distill gives the
    embeddings their own projection unless `reference="tinybert"`. The caller applies `P` and sums this over
    the mapped layers.

    Args:
        student_hidden (`torch.Tensor` of shape `(batch, seq, d)`): Projected student hidden states.
        teacher_hidden (`torch.Tensor` of shape `(batch, seq, d)`): Teacher hidden states.
        attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): 1 for real tokens.

    Returns:
        `torch.Tensor`: A scalar, mean over non-padding tokens and features.
    """
    h_s = _select_rows(student_hidden, attention_mask)
    h_t = _select_rows(teacher_hidden, attention_mask)
    return _mean_or_zero((h_s - h_t).pow(2), h_s)


def mean_pool(hidden: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""The mean of each example's hidden states over its real tokens: ``h̄ = Σ_i m_i·h_i / Σ_i m_i``.

    Args:
        hidden (`torch.Tensor` of shape `(batch, seq, d)`): Hidden states.
        attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): 1 for real tokens; all by default.

    Returns:
        `torch.Tensor` of shape `(batch, d)`, in float32.
    """
    hidden = hidden.float()
    if attention_mask is None:
        return hidden.mean(1)
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def pooled_mse_loss(
    student_hidden: torch.Tensor,
    teacher_hidden: torch.Tensor,
    student_mask: Optional[torch.Tensor] = None,
    teacher_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    r"""MSE between the mean-pooled last hidden states of student and teacher, each pooled over its own tokens.

    ``L = mean over examples and features of (mean_pool(P(h_s), m_s) − mean_pool(h_t, m_t))²``

    The sentence-representation distillation of Reimers & Gurevych (2020, "Making Monolingual Sentence
    Embeddings Multilingual using Knowledge Distillation": MSE between mean-pooled embeddings, the
    student reading the text with its own tokenizer). Each side pools over its own real tokens, so the two
    sequences need not have the same tokens, or the same length: it works across tokenizers. The caller
    applies `P` (``P`` is affine, so projecting each token and then pooling equals pooling and then projecting).

    Args:
        student_hidden (`torch.Tensor` of shape `(batch, student_seq, d)`): Projected student last hidden states.
        teacher_hidden (`torch.Tensor` of shape `(batch, teacher_seq, d)`): Teacher last hidden states.
        student_mask (`torch.Tensor` of shape `(batch, student_seq)`, *optional*): 1 for the student's real tokens.
        teacher_mask (`torch.Tensor` of shape `(batch, teacher_seq)`, *optional*): 1 for the teacher's real tokens.

    Returns:
        `torch.Tensor`: A scalar, mean over examples and features.
    """
    pooled_s, pooled_t = mean_pool(student_hidden, student_mask), mean_pool(teacher_hidden, teacher_mask)
    if pooled_s.shape != pooled_t.shape:
        raise ValueError(f"Pooled student {tuple(pooled_s.shape)} and teacher {tuple(pooled_t.shape)} representations "
                         "differ in shape: project the student to the teacher's width.")
    return F.mse_loss(pooled_s, pooled_t)


def attention_score_mse_loss(
    student_scores: torch.Tensor,
    teacher_scores: torch.Tensor,
    attention_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    r"""TinyBERT's attention loss for one mapped layer, on **pre-softmax** scores.

    ``L = mean over heads and over (query, key) pairs where both tokens are non-padding of (A_s − A_t)²``
    with ``A = Q Kᵀ / √d_head`` before the attention mask and the softmax.

    TinyBERT's reference code replaces masked scores (≤ −100 after adding the mask) by 0 and takes
    `MSELoss()` over every position, padding queries included (`tinybert_attention_loss`, selected by
    `reference="tinybert"`); with no padding the two are equal. Over padded batches TinyBERT's term is
    smaller by the share of real pairs, about (real length / padded length)², so next to its hidden-state
    term (which shrinks only linearly) it weighs less than this one. Student and teacher need the same
    number of heads.

    Args:
        student_scores (`torch.Tensor` of shape `(batch, heads, seq, seq)`): Student scores.
        teacher_scores (`torch.Tensor` of shape `(batch, heads, seq, seq)`): Teacher scores.
        attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): 1 for real tokens.

    Returns:
        `torch.Tensor`: A scalar, mean over heads and valid pairs.
    """
    if student_scores.shape != teacher_scores.shape:
        raise ValueError(
            f"Attention scores differ in shape: student {tuple(student_scores.shape)}, teacher "
            f"{tuple(teacher_scores.shape)}. The attention loss needs the same number of heads."
        )
    diff = (student_scores.float() - teacher_scores.float()).pow(2)
    if attention_mask is None:
        return diff.mean()
    mask = attention_mask.bool()
    pair_mask = (mask[:, None, :, None] & mask[:, None, None, :]).expand_as(diff)
    return _mean_or_zero(diff[pair_mask], diff)


def tinybert_attention_loss(
    student_scores: torch.Tensor,
    teacher_scores: torch.Tensor,
    attention_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    r"""TinyBERT's attention loss for one mapped layer exactly as its code computes it (`reference="tinybert"`).

    ``Ã = A + (1 − m_key)·(−10000)``, then ``Ã ← 0`` wherever ``Ã ≤ −100``, for student and teacher alike;
    ``L = mean over batch × heads × L × L of (Ã_s − Ã_t)²``.

    TinyBERT's model adds its extended attention mask (−10000 on padding keys) to ``Q Kᵀ/√d`` and returns
    those scores; `task_distill.py` zeroes every score ``≤ −1e2`` and takes `MSELoss()` over the whole padded
    tensor. So a padding key contributes 0 but still counts in the mean, and padding *query* rows (real
    keys) do contribute. `attention_score_mse_loss` (the default) averages over the pairs of real tokens
    only, which does not change with the amount of padding; with no padding the two are equal.

    Args:
        student_scores (`torch.Tensor` of shape `(batch, heads, seq, seq)`): Student pre-softmax scores ``Q Kᵀ/√d``.
        teacher_scores (`torch.Tensor` of shape `(batch, heads, seq, seq)`): Teacher pre-softmax scores.
        attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): 1 for real tokens.

    Returns:
        `torch.Tensor`: A scalar, mean over every (padded) position.
    """
    if student_scores.shape != teacher_scores.shape:
        raise ValueError(
            f"Attention scores differ in shape: student {tuple(student_scores.shape)}, teacher "
            f"{tuple(teacher_scores.shape)}. The attention loss needs the same number of heads."
        )
    a_s, a_t = student_scores.float(), teacher_scores.float()
    if attention_mask is not None:
        additive = (1.0 - attention_mask.float())[:, None, None, :] * -10000.0
        a_s, a_t = a_s + additive, a_t + additive
    a_s = torch.where(a_s <= -1e2, torch.zeros_like(a_s), a_s)
    a_t = torch.where(a_t <= -1e2, torch.zeros_like(a_t), a_t)
    return (a_s - a_t).pow(2).mean()


def ensemble_teacher_logits(
    teacher_logits: Sequence[torch.Tensor], temperature: float = 2.0, average: str = "probabilities"
) -> torch.Tensor:
    r"""Combines the logits of ``K`` teachers into the logits of their averaged soft targets.

    - `average="probabilities"` (soft targets, classification): the soft targets are the mean of the
      teachers' probabilities at temperature ``T``, ``p̄ = (1/K) Σ_k softmax(z_k/T)``. They are
      returned as logits ``z̄ = T · log p̄``, computed as
      ``T · (logsumexp_k log_softmax(z_k/T) − log K)`` (never ``log 0``), so that
      ``softmax(z̄/T) = p̄`` and every soft-target loss takes them unchanged. This is the ensemble
      of Hinton et al. (2015), averaging the distributions, not the logits.
    - `average="logits"` (regression heads, `kd_loss="mse"`): the mean prediction
      ``(1/K) Σ_k z_k``.

    Args:
        teacher_logits (`Sequence[torch.Tensor]`, each of shape `(*rows, C)`): One tensor per teacher.
        temperature (`float`, defaults to 2.0): Softmax temperature ``T``.
        average (`str`, defaults to `"probabilities"`): `"probabilities"` or `"logits"`.

    Returns:
        `torch.Tensor` of shape `(*rows, C)`, float32: the combined teacher logits.
    """
    if len(teacher_logits) == 0:
        raise ValueError("ensemble_teacher_logits needs at least one teacher's logits.")
    stacked = torch.stack([z.float() for z in teacher_logits])
    if average == "logits":
        return stacked.mean(0)
    if average != "probabilities":
        raise ValueError(f"average must be 'probabilities' or 'logits', got {average!r}.")
    log_probs = F.log_softmax(stacked / temperature, dim=-1)
    return temperature * (torch.logsumexp(log_probs, dim=0) - math.log(len(teacher_logits)))
