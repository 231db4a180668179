"""`RetrievalDistillationConfig`: the config of the retrieval family, on `TeacherDistillationConfigBase`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Optional

from ..config import TeacherDistillationConfigBase
from ..terms import RETRIEVAL_TERMS, LossTerm
from .losses import EMBEDDING_LOSSES


@dataclass
class RetrievalDistillationConfig(TeacherDistillationConfigBase):
    r"""Configuration of [`RetrievalDistillationTrainer`]: the loss of dual-encoder (image-text) distillation.

    Declares only its own fields; every `TrainingArguments` field and the shared ones of
    `TeacherDistillationConfigBase` (teacher, schedule, `stop_on_nonfinite_loss`, ...) come from its bases.
    The total loss of a batch of ``B`` image-caption pairs is

    ``contrastive_weight·L_contrastive + similarity_kd_weight·L_similarity_kd + embedding_weight·L_embedding +
    rkd_distance_weight·L_rkd_distance + rkd_angle_weight·L_rkd_angle``

    (see `hf_distill.retrieval.losses`); ``L_embedding`` and the RKD terms are the means of their image
    and text values. A term whose weight is 0 is not computed; with only the contrastive term on,
    no teacher is needed (a teacher recipe or a no-teacher baseline). Each term is logged as
    `loss_<term>` (`loss_contrastive`, `loss_similarity_kd`, `loss_embedding`, `loss_rkd_distance`,
    `loss_rkd_angle`).

    Parameters:
        contrastive_weight (`float`, defaults to 1.0):
            Weight of the symmetric InfoNCE loss on the ground-truth pairs.
        similarity_kd_weight (`float`, defaults to 1.0):
            Weight of the in-batch similarity distillation (KL, teacher → student, both directions).
        embedding_weight (`float`, defaults to 0.0):
            Weight of the embedding matching loss (through a learned projection when widths differ).
        embedding_loss (`str`, defaults to `"cosine"`):
            `"cosine"` (``1 − cos``) or `"mse"`.
        rkd_distance_weight (`float`, defaults to 0.0):
            Weight of RKD's distance loss on the embeddings.
        rkd_angle_weight (`float`, defaults to 0.0):
            Weight of RKD's angle loss on the embeddings.
        temperature (`float`, defaults to 1.0):
            Temperature ``T`` of the similarity distillation (this family's default); each model's logits
            already include its own logit scale.
        logit_scale (`float`, *optional*):
            A fixed logit scale ``s`` (1/τ, e.g. 14.3 for τ = 0.07) for the student's contrastive
            logits: the student's `logit_scale` parameter is set to ``log s`` and frozen. `None`
            (default): the student's learned `logit_scale`, as in CLIP.
        max_logit_scale (`float`, defaults to 100.0):
            After each optimizer step a learned scale is clipped to at most this (CLIP clips at 100).
    """

    TERMS: ClassVar[tuple[LossTerm, ...]] = RETRIEVAL_TERMS

    contrastive_weight: float = field(
        default=1.0, metadata={"help": "Weight of the symmetric InfoNCE (CLIP) loss on the ground-truth pairs."}
    )
    similarity_kd_weight: float = field(
        default=1.0,
        metadata={"help": "Weight of the in-batch similarity distillation (KL teacher -> student, both directions)."},
    )
    embedding_weight: float = field(
        default=0.0, metadata={"help": "Weight of embedding matching (learned projection when widths differ)."}
    )
    embedding_loss: str = field(
        default="cosine", metadata={"help": "Embedding matching loss: 'cosine' or 'mse'.", "choices": list(EMBEDDING_LOSSES)}
    )
    rkd_distance_weight: float = field(default=0.0, metadata={"help": "Weight of RKD's distance loss."})
    rkd_angle_weight: float = field(default=0.0, metadata={"help": "Weight of RKD's angle loss."})
    temperature: float = field(default=1.0, metadata={"help": "Temperature T of the similarity distillation (> 0)."})
    logit_scale: Optional[float] = field(
        default=None,
        metadata={"help": "Fixed logit scale s = 1/tau of the student's contrastive logits (default: learned)."},
    )
    max_logit_scale: float = field(
        default=100.0, metadata={"help": "Upper bound of a learned logit scale, applied after each step (CLIP: 100)."}
    )

    def _check_options(self) -> None:
        if self.embedding_loss not in EMBEDDING_LOSSES:
            raise ValueError(f"embedding_loss must be one of {EMBEDDING_LOSSES}, got {self.embedding_loss!r}.")
        if self.logit_scale is not None and not self.logit_scale > 0:
            raise ValueError(f"logit_scale must be > 0 (it is 1/temperature, not its log), got {self.logit_scale}.")
        if not self.max_logit_scale > 0:
            raise ValueError(f"max_logit_scale must be > 0, got {self.max_logit_scale}.")

    @property
    def log_max_logit_scale(self) -> float:
        """``log max_logit_scale``: the bound of the student's `logit_scale` parameter, which holds a log."""
        return math.log(self.max_logit_scale)
