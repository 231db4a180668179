"""Loss terms of dual-encoder (CLIP-style) distillation, one pure function each.

Every function takes tensors and returns a scalar tensor computed in float32; none reaches into a
model. Notation: a batch holds ``B`` image-caption pairs; ``u_i`` / ``v_i`` are the L2-normalised
image / text embeddings of pair ``i``; ``s`` is a logit scale (CLIP's ``exp(logit_scale)``, 1/τ);
``Z = s · V Uᵀ`` is the ``(B, B)`` text→image logit matrix (CLIP's `logits_per_text`), so
``Zᵀ`` is image→text (`logits_per_image`). Subscripts ``S`` / ``T`` mark student / teacher.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..losses import kl_divergence_loss

EMBEDDING_LOSSES = ("cosine", "mse")


def similarity_logits(image_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: float) -> torch.Tensor:
    r"""The text→image logit matrix ``Z = s · norm(V) norm(U)ᵀ`` (CLIP's `logits_per_text`).

    Args:
        image_embeds (`torch.Tensor` of shape `(B_i, D)`): Image embeddings ``U`` (normalised here).
        text_embeds (`torch.Tensor` of shape `(B_t, D)`): Text embeddings ``V`` (normalised here).
        logit_scale (`float`): The scale ``s`` (not its logarithm).

    Returns:
        `torch.Tensor` of shape `(B_t, B_i)`: ``Z[j, i] = s · cos(v_j, u_i)``.
    """
    image = F.normalize(image_embeds.float(), dim=-1)
    text = F.normalize(text_embeds.float(), dim=-1)
    return logit_scale * text @ image.T


def _positive_targets(pair_ids: Optional[torch.Tensor], size: int, device) -> torch.Tensor:
    """``Y[j, i] = 1/|P(j)|`` where ``P(j) = {i : id_i = id_j}`` (the identity when `pair_ids` is None)."""
    if pair_ids is None:
        return torch.eye(size, device=device)
    same = (pair_ids.reshape(-1, 1) == pair_ids.reshape(1, -1)).float().to(device)
    return same / same.sum(-1, keepdim=True)


def contrastive_loss(logits_per_text: torch.Tensor, pair_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""Symmetric InfoNCE on ground-truth pairs (CLIP, Radford et al., 2021; HF's `clip_loss`).

    ``L = ½ · [ mean_j CE(Z[j, :], y_j) + mean_i CE(Zᵀ[i, :], y_i) ]`` with ``y_j = j`` (pair ``j``'s
    own image/caption is its positive), ``CE(z, y) = −log softmax(z)_y``. The logit scale is
    already in ``Z`` (learned, CLIP's ``logit_scale``, or fixed). This is the value of HF's
    `clip_loss(logits_per_text)` and of OpenCLIP's `ClipLoss` on one device (negatives are the
    other pairs of the same batch; no gathering across devices).

    With `pair_ids`, pairs that share an id (two captions of one image in one batch) are not
    treated as negatives of each other: the target of row ``j`` is uniform over ``P(j) =
    {i : id_i = id_j}``, i.e. ``CE = −Σ_{i∈P(j)} log softmax(Z[j, :])_i / |P(j)|`` (a
    multi-positive InfoNCE, as in SupCon's "out" form). Without duplicates it equals the above.

    Args:
        logits_per_text (`torch.Tensor` of shape `(B, B)`): ``Z``, text rows, image columns.
        pair_ids (`torch.Tensor` of shape `(B,)`, *optional*): Image id of each pair.

    Returns:
        `torch.Tensor`: A scalar, the mean of the two directions' mean cross-entropies.
    """
    if logits_per_text.dim() != 2 or logits_per_text.shape[0] != logits_per_text.shape[1]:
        raise ValueError(f"contrastive_loss needs a square (B, B) logit matrix, got {tuple(logits_per_text.shape)}.")
    z = logits_per_text.float()
    targets = _positive_targets(pair_ids, z.shape[0], z.device)
    text_to_image = -(targets * F.log_softmax(z, dim=-1)).sum(-1).mean()
    image_to_text = -(targets.T * F.log_softmax(z.T, dim=-1)).sum(-1).mean()
    return (text_to_image + image_to_text) / 2


def similarity_distillation_loss(
    student_logits_per_text: torch.Tensor,
    teacher_logits_per_text: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    r"""In-batch similarity distillation: KL from the teacher's to the student's retrieval distributions.

    ``L = ½ · T² · [ mean_j KL(softmax(Z_T[j, :]/T) ‖ softmax(Z_S[j, :]/T))
                   + mean_i KL(softmax(Z_Tᵀ[i, :]/T) ‖ softmax(Z_Sᵀ[i, :]/T)) ]``

    i.e. the text→image and image→text distributions over the batch, each at temperature ``T``,
    with Hinton's ``T²`` (`hf_distill.losses.kl_divergence_loss`, mean over rows). Each model's
    logits carry its own logit scale, as in CLIP-KD's contrastive relational distillation (Yang et
    al., 2024, "CLIP-KD", ICL/CRD) and TinyCLIP's affinity mimicking (Wu et al., 2023).

    Args:
        student_logits_per_text (`torch.Tensor` of shape `(B, B)`): ``Z_S``.
        teacher_logits_per_text (`torch.Tensor` of shape `(B, B)`): ``Z_T`` on the same batch.
        temperature (`float`, defaults to 1.0): ``T``.

    Returns:
        `torch.Tensor`: A scalar.
    """
    if student_logits_per_text.shape != teacher_logits_per_text.shape:
        raise ValueError(
            f"Student and teacher similarity matrices differ in shape: {tuple(student_logits_per_text.shape)} vs "
            f"{tuple(teacher_logits_per_text.shape)}; both must be computed on the same batch."
        )
    z_s, z_t = student_logits_per_text, teacher_logits_per_text
    text_to_image = kl_divergence_loss(z_s, z_t, temperature)
    image_to_text = kl_divergence_loss(z_s.T, z_t.T, temperature)
    return (text_to_image + image_to_text) / 2


def embedding_matching_loss(
    student_embeds: torch.Tensor, teacher_embeds: torch.Tensor, kind: str = "cosine"
) -> torch.Tensor:
    r"""Matches each student embedding to the teacher's embedding of the same input.

    - `"cosine"`: ``L = mean_i (1 − cos(e_S,i, e_T,i))`` (DistilBERT's cosine loss, per embedding).
    - `"mse"`: ``L = mean_i mean_d (e_S,i,d − e_T,i,d)²`` (CLIP-KD's feature distillation, FD),
      `torch.nn.functional.mse_loss` with its default mean reduction.

    When the embedding widths differ, the caller passes ``e_S = P·u_S``, the student's embedding
    through a learned projection ``P`` (see `RetrievalHeads`).

    Args:
        student_embeds (`torch.Tensor` of shape `(B, D)`): ``e_S``.
        teacher_embeds (`torch.Tensor` of shape `(B, D)`): ``e_T``.
        kind (`str`, defaults to `"cosine"`): `"cosine"` or `"mse"`.

    Returns:
        `torch.Tensor`: A scalar.
    """
    if kind not in EMBEDDING_LOSSES:
        raise ValueError(f"embedding loss must be one of {EMBEDDING_LOSSES}, got {kind!r}.")
    if student_embeds.shape != teacher_embeds.shape:
        raise ValueError(
            f"Embedding shapes differ: student {tuple(student_embeds.shape)}, teacher {tuple(teacher_embeds.shape)}. "
            "Project the student's embeddings to the teacher's width first."
        )
    e_s, e_t = student_embeds.float(), teacher_embeds.float()
    if kind == "cosine":
        return (1 - F.cosine_similarity(e_s, e_t, dim=-1)).mean()
    return F.mse_loss(e_s, e_t)


def _pairwise_distances(embeds: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``D[i, j] = ‖x_i − x_j‖``, with an exact zero diagonal (as RKD's `pdist`)."""
    squared = embeds.pow(2).sum(-1)
    distances = (squared.unsqueeze(1) + squared.unsqueeze(0) - 2 * embeds @ embeds.T).clamp(min=eps).sqrt()
    return distances * (1 - torch.eye(len(embeds), device=embeds.device, dtype=embeds.dtype))


def rkd_distance_loss(student_embeds: torch.Tensor, teacher_embeds: torch.Tensor) -> torch.Tensor:
    r"""Relational KD, distance-wise (Park et al., 2019, "Relational Knowledge Distillation").

    ``ψ_D(i, j) = ‖x_i − x_j‖ / μ`` with ``μ`` the mean distance over pairs ``i ≠ j``;
    ``L = mean_{i, j} huber(ψ_D^S(i, j) − ψ_D^T(i, j))`` over all ``B²`` entries (the zero
    diagonal included), ``huber`` = `smooth_l1_loss` with β = 1, as in the authors' code
    (`lenscloth/RKD`, `RkdDistance`). The embedding widths may differ: only distances are compared.

    Args:
        student_embeds (`torch.Tensor` of shape `(B, D_S)`): Student embeddings.
        teacher_embeds (`torch.Tensor` of shape `(B, D_T)`): Teacher embeddings of the same inputs.

    Returns:
        `torch.Tensor`: A scalar.
    """
    _check_relational(student_embeds, teacher_embeds)

    def normalised(embeds: torch.Tensor) -> torch.Tensor:
        d = _pairwise_distances(embeds.float())
        return d / d[d > 0].mean().clamp(min=1e-12)

    return F.smooth_l1_loss(normalised(student_embeds), normalised(teacher_embeds))


def rkd_angle_loss(student_embeds: torch.Tensor, teacher_embeds: torch.Tensor) -> torch.Tensor:
    r"""Relational KD, angle-wise (Park et al., 2019).

    ``e_ij = (x_i − x_j) / ‖x_i − x_j‖``, ``ψ_A(i, j, k) = ⟨e_ji, e_jk⟩`` (the cosine of the angle at
    ``x_j``); ``L = mean_{i, j, k} huber(ψ_A^S − ψ_A^T)`` over all ``B³`` triplets (degenerate ones,
    where a difference is zero, give 0 in both), as in the authors' `RKdAngle`.

    Args:
        student_embeds (`torch.Tensor` of shape `(B, D_S)`): Student embeddings.
        teacher_embeds (`torch.Tensor` of shape `(B, D_T)`): Teacher embeddings of the same inputs.

    Returns:
        `torch.Tensor`: A scalar.
    """
    _check_relational(student_embeds, teacher_embeds)

    def angles(embeds: torch.Tensor) -> torch.Tensor:
        x = embeds.float()
        differences = F.normalize(x.unsqueeze(0) - x.unsqueeze(1), p=2, dim=2)  # [j, i] = x_i − x_j
        return torch.bmm(differences, differences.transpose(1, 2)).reshape(-1)

    return F.smooth_l1_loss(angles(student_embeds), angles(teacher_embeds))


def _check_relational(student_embeds: torch.Tensor, teacher_embeds: torch.Tensor) -> None:
    if student_embeds.dim() != 2 or teacher_embeds.dim() != 2 or len(student_embeds) != len(teacher_embeds):
        raise ValueError(
            f"RKD needs (B, D) embeddings of the same B inputs, got {tuple(student_embeds.shape)} and "
            f"{tuple(teacher_embeds.shape)}."
        )
