"""`RetrievalDistillationConfig`: `TrainingArguments` plus the loss weights of dual-encoder distillation."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from transformers import TrainingArguments

from ..config import DistillationConfigBase
from .losses import EMBEDDING_LOSSES

RETRIEVAL_WEIGHT_NAMES = (
    "contrastive_weight",
    "similarity_kd_weight",
    "embedding_weight",
    "rkd_distance_weight",
    "rkd_angle_weight",
)
TEACHER_WEIGHT_NAMES = RETRIEVAL_WEIGHT_NAMES[1:]


@dataclass
class RetrievalDistillationConfig(DistillationConfigBase):
    r"""Configuration of [`RetrievalDistillationTrainer`]: every `TrainingArguments` field, plus the loss.

    The total loss of a batch of ``B`` image-caption pairs is

    ``contrastive_weight·L_clip + similarity_kd_weight·L_sim + embedding_weight·L_emb +
    rkd_distance_weight·L_rkd_d + rkd_angle_weight·L_rkd_a``

    (see `hf_distill.retrieval.losses`); ``L_emb`` and the RKD terms are the means of their image
    and text values. A term whose weight is 0 is not computed; with only the contrastive term on,
    no teacher is needed (a teacher recipe or a no-teacher baseline). Each term is logged as
    `loss_<term>` (`loss_clip`, `loss_sim`, `loss_emb`, `loss_rkd_distance`, `loss_rkd_angle`).

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
            Temperature ``T`` of the similarity distillation; each model's logits already include its
            own logit scale.
        logit_scale (`float`, *optional*):
            A fixed logit scale ``s`` (1/τ, e.g. 14.3 for τ = 0.07) for the student's contrastive
            logits: the student's `logit_scale` parameter is set to ``log s`` and frozen. `None`
            (default): the student's learned `logit_scale`, as in CLIP.
        max_logit_scale (`float`, defaults to 100.0):
            After each optimizer step a learned scale is clipped to at most this (CLIP clips at 100).
        teacher_model_name_or_path (`str`, *optional*):
            Teacher to load (any dual encoder `AutoModel` loads, e.g. `openai/clip-vit-base-patch32`).
        teacher_model_revision (`str`, *optional*):
            Revision of the teacher on the Hub.
        teacher_model_init_kwargs (`dict[str, Any]` or `str`, *optional*):
            Keyword arguments for the teacher's `from_pretrained` (a JSON string on the command line).
        distillation_heads_path (`str`, *optional*):
            Folder with saved embedding projections (`distillation_heads.safetensors`) to start from.
        stop_on_nonfinite_loss (`bool`, defaults to `True`):
            Stop with an error naming the loss term when one is NaN or infinite.
    """

    _VALID_DICT_FIELDS = TrainingArguments._VALID_DICT_FIELDS + ["teacher_model_init_kwargs"]

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
    teacher_model_name_or_path: Optional[str] = field(
        default=None, metadata={"help": "Teacher dual encoder: a folder or Hub id (e.g. openai/clip-vit-base-patch32)."}
    )
    teacher_model_revision: Optional[str] = field(
        default=None, metadata={"help": "Revision of the teacher model on the Hub (branch, tag or commit)."}
    )
    teacher_model_init_kwargs: Optional[Union[dict[str, Any], str]] = field(
        default=None,
        metadata={"help": "Keyword arguments (a JSON string on the command line) for the teacher's from_pretrained."},
    )
    distillation_heads_path: Optional[str] = field(
        default=None,
        metadata={"help": "Saved embedding projections to start from (a folder with distillation_heads.safetensors)."},
    )
    stop_on_nonfinite_loss: bool = field(
        default=True,
        metadata={"help": "Stop training with an error naming the loss term and step when a loss is NaN or inf."},
    )

    def __post_init__(self):
        if isinstance(self.teacher_model_init_kwargs, str):
            self.teacher_model_init_kwargs = json.loads(self.teacher_model_init_kwargs)
        super().__post_init__()
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}.")
        if self.embedding_loss not in EMBEDDING_LOSSES:
            raise ValueError(f"embedding_loss must be one of {EMBEDDING_LOSSES}, got {self.embedding_loss!r}.")
        for name in RETRIEVAL_WEIGHT_NAMES:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
        if all(getattr(self, name) == 0 for name in RETRIEVAL_WEIGHT_NAMES):
            raise ValueError(
                f"All loss weights are 0, so there is nothing to train: set at least one of {RETRIEVAL_WEIGHT_NAMES} > 0."
            )
        if self.logit_scale is not None and not self.logit_scale > 0:
            raise ValueError(f"logit_scale must be > 0 (it is 1/temperature, not its log), got {self.logit_scale}.")
        if not self.max_logit_scale > 0:
            raise ValueError(f"max_logit_scale must be > 0, got {self.max_logit_scale}.")

    @property
    def needs_teacher(self) -> bool:
        """Whether a teacher-based term is on."""
        return any(getattr(self, name) > 0 for name in TEACHER_WEIGHT_NAMES)

    @property
    def loss_weights(self) -> dict[str, float]:
        """The weights by logged term name (`"clip"`, `"sim"`, `"emb"`, `"rkd_distance"`, `"rkd_angle"`)."""
        return {term: float(getattr(self, name)) for term, name in TERM_WEIGHTS.items()}

    @property
    def log_max_logit_scale(self) -> float:
        return math.log(self.max_logit_scale)


TERM_WEIGHTS = {
    "clip": "contrastive_weight",
    "sim": "similarity_kd_weight",
    "emb": "embedding_weight",
    "rkd_distance": "rkd_distance_weight",
    "rkd_angle": "rkd_angle_weight",
}
