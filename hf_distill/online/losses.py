"""Loss terms of online distillation (deep mutual learning) and of self-distillation with early exits.

Pure functions of tensors, built on `hf_distill.losses.kl_divergence_loss` (``T²·KL``) and
`hf_distill.losses.hidden_mse_loss`; none of them reaches into a model.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..losses import hidden_mse_loss, kl_divergence_loss


def mutual_learning_losses(
    peer_logits: Sequence[torch.Tensor],
    temperature: float = 1.0,
    row_mask: Optional[torch.Tensor] = None,
) -> list[torch.Tensor]:
    r"""The mimicry term of each peer in deep mutual learning (Zhang et al., 2018, "Deep Mutual Learning").

    For peer ``i`` of ``K ≥ 2`` peers:

    ``L_i = 1/(K − 1) · Σ_{j ≠ i} T² · mean_rows KL(softmax(z_j/T).detach() || softmax(z_i/T))``

    The other peers' distributions are detached: they are targets, so peer ``i``'s mimicry term
    sends no gradient into peer ``j``. Each peer's KL is `kl_divergence_loss` (``T²``, mean over
    rows, as in DistilBERT/Hinton). The paper (and its reference code) uses ``T = 1`` and averages
    over the other peers (``1/(K − 1)``), which is what this function does for ``K > 2``.

    Args:
        peer_logits (`Sequence[torch.Tensor]`, each of shape `(*rows, C)`): The logits of every peer.
        temperature (`float`, defaults to 1.0): Softmax temperature ``T``.
        row_mask (`torch.Tensor` of shape `rows`, *optional*): Rows to average over (e.g. tokens whose
            label is not -100). Every row when `None`.

    Returns:
        `list[torch.Tensor]`: One scalar per peer, in the order of `peer_logits`.

    Raises:
        ValueError: With fewer than two peers, or peers whose logits differ in shape.
    """
    if len(peer_logits) < 2:
        raise ValueError(f"Mutual learning needs at least two peers, got {len(peer_logits)}.")
    shapes = {tuple(z.shape) for z in peer_logits}
    if len(shapes) > 1:
        raise ValueError(f"The peers' logits differ in shape ({sorted(shapes)}): the peers must share a label space.")
    targets = [z.detach() for z in peer_logits]
    terms = []
    for i, z_i in enumerate(peer_logits):
        others = [kl_divergence_loss(z_i, targets[j], temperature, row_mask) for j in range(len(peer_logits)) if j != i]
        terms.append(torch.stack(others).mean())
    return terms


def exit_distillation_losses(
    exit_logits: Sequence[torch.Tensor],
    temperature: float = 3.0,
) -> list[torch.Tensor]:
    r"""Soft-target term of each shallow exit, taught by the deepest exit (Zhang et al., 2019, "Be Your Own Teacher").

    For each shallow exit ``k`` (every entry but the last), with ``z_L`` the deepest exit's logits:

    ``L_k = T² · mean_rows KL(softmax(z_L/T).detach() || softmax(z_k/T))``

    (`kl_divergence_loss`). The deep exit's soft targets are detached, so the shallow exits do not
    pull the deep exit towards themselves; the deep exit learns from the labels only.

    Args:
        exit_logits (`Sequence[torch.Tensor]`, each of shape `(batch, C)`): The exits' logits, shallow
            to deep; the last one is the teacher.
        temperature (`float`, defaults to 3.0): Softmax temperature ``T`` (Be Your Own Teacher uses 3).

    Returns:
        `list[torch.Tensor]`: One scalar per shallow exit (`len(exit_logits) - 1` of them).
    """
    target = exit_logits[-1].detach()
    return [kl_divergence_loss(z_k, target, temperature) for z_k in exit_logits[:-1]]


def exit_hidden_losses(
    projected_hidden: Sequence[torch.Tensor],
    deep_hidden: torch.Tensor,
    attention_mask: Optional[torch.Tensor] = None,
) -> list[torch.Tensor]:
    r"""Hint term of each shallow exit: its projected hidden states against the deepest layer's.

    ``L_k = mean over non-padding tokens and features of (P_k(h_k) − h_L.detach())²``

    (`hidden_mse_loss`, TinyBERT's convention; Be Your Own Teacher's feature hint is the same L2
    between a shallow feature map, through a learned bottleneck, and the deepest one.) ``h_L`` is
    detached: the deep layer is the target.

    Args:
        projected_hidden (`Sequence[torch.Tensor]`, each of shape `(batch, seq, d)`): ``P_k(h_k)`` per
            shallow exit.
        deep_hidden (`torch.Tensor` of shape `(batch, seq, d)`): The deepest layer's hidden states.
        attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): 1 for real tokens.

    Returns:
        `list[torch.Tensor]`: One scalar per shallow exit.
    """
    target = deep_hidden.detach()
    return [hidden_mse_loss(h_k, target, attention_mask) for h_k in projected_hidden]
