"""`RetrievalDistillationTrainer`: the trainer of dual encoders (CLIP-style image-text retrieval).

It extends `DistillationTrainerBase`, which owns everything but the loss and the setup: saving the
student alone plus its projection heads beside it (`distillation_heads.safetensors`), restoring them on
resume and with `load_best_model_at_end`, DDP wrapping with a static graph when heads exist, per-term
logging (`loss_<term>`, the mean over the optimizer steps since the last log), teacher loading
(safetensors only, no remote code by default), loss-only evaluation and publishing.

Design (as for GLUE):

- The student is any dual encoder whose forward takes `input_ids`, `attention_mask` and
  `pixel_values` and returns `image_embeds`, `text_embeds` and `logits_per_text` (`CLIPModel`,
  `VisionTextDualEncoderModel`). The contrastive logits come from the student's own forward, so
  its `logit_scale` trains inside the forward (DDP sees it).
- The embedding projections (`RetrievalHeads`) are a submodule of the student run from a forward
  hook, so the optimizer, DDP and checkpoints see one model; they are left out of the saved student.
- The teacher is frozen, in eval mode, never in the optimizer, never wrapped or saved. It reads
  the student's batch, so the two share a tokenizer and an image processor (checked: vocabulary
  size and image size).
- In-batch negatives are those of one micro-batch on one device (no gathering across devices), as
  in HF's `clip_loss`. Each micro-batch's loss is its own mean; with gradient accumulation the
  optimizer step uses the mean of the micro-batch losses.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Union

import torch
from torch import nn
from transformers import PreTrainedModel, TrainerCallback

from ..trainer import DistillationTrainerBase
from . import losses
from .config import RetrievalDistillationConfig

PAIR_IDS = "pair_ids"
EXAMPLE_COLUMNS = ("image", "caption", "pair_id", PAIR_IDS)


def embedding_dim(model: nn.Module) -> int:
    """Width of a dual encoder's shared embedding space (`config.projection_dim`)."""
    dim = getattr(getattr(model, "config", None), "projection_dim", None)
    if dim is None:
        projection = getattr(model, "text_projection", None)
        dim = getattr(projection, "out_features", None)
    if dim is None:
        raise ValueError(f"Cannot tell the embedding width of {type(model).__name__}: it has no config.projection_dim.")
    return int(dim)


class RetrievalHeads(nn.Module):
    """Learned projections ``P_img``, ``P_txt`` from the student's embedding width to the teacher's.

    Each is an `nn.Linear(d_student, d_teacher)`, created only when the widths differ; applied to the
    student's (normalised) `image_embeds` / `text_embeds` for the embedding-matching loss.
    `attach(student)` runs them from a forward hook inside the student's forward; after a forward
    while `active`, `projected` holds ``{"image": ..., "text": ...}``.

    Args:
        student_dim (`int`): ``d_student``.
        teacher_dim (`int`): ``d_teacher``.
    """

    def __init__(self, student_dim: int, teacher_dim: int):
        super().__init__()
        self.student_dim, self.teacher_dim = student_dim, teacher_dim
        same = student_dim == teacher_dim
        self.image = None if same else nn.Linear(student_dim, teacher_dim)
        self.text = None if same else nn.Linear(student_dim, teacher_dim)
        self.active = False
        self.projected: dict[str, torch.Tensor] = {}
        self._handle = None

    def config_dict(self) -> dict:
        return {"student_dim": self.student_dim, "teacher_dim": self.teacher_dim, "kind": "retrieval_embeddings"}

    @property
    def has_parameters(self) -> bool:
        return any(True for _ in self.parameters())

    def forward(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "image": image_embeds if self.image is None else self.image(image_embeds),
            "text": text_embeds if self.text is None else self.text(text_embeds),
        }

    def attach(self, student: nn.Module) -> None:
        if self._handle is not None:
            self._handle.remove()
        self._handle = student.register_forward_hook(self._after_student_forward)

    def _after_student_forward(self, module, args, output):
        if self.active and getattr(output, "image_embeds", None) is not None:
            self.projected = self(output.image_embeds, output.text_embeds)


class ClampLogitScale(TrainerCallback):
    """After each optimizer step, clips a learned ``logit_scale`` (log s) to ``[0, log max_logit_scale]`` (CLIP)."""

    def __init__(self, get_model, max_log_scale: float):
        self.get_model = get_model
        self.max_log_scale = max_log_scale

    def on_step_end(self, args, state, control, **kwargs):
        scale = getattr(self.get_model(), "logit_scale", None)
        if isinstance(scale, nn.Parameter) and scale.requires_grad:
            with torch.no_grad():
                scale.clamp_(0.0, self.max_log_scale)


class RetrievalDistillationTrainer(DistillationTrainerBase):
    """Trains a dual-encoder student (`model`) on image-caption pairs, optionally against a frozen teacher.

    Evaluation reports the loss only (`eval_loss`); recalls come from `hf_distill.retrieval.evaluation`.

    Args:
        model (`PreTrainedModel`): The student dual encoder (see `create_clip_student`).
        teacher_model (`PreTrainedModel` or `str`, *optional*): The teacher, or a folder / Hub id
            loaded with `AutoModel`. Defaults to `args.teacher_model_name_or_path`. Needed when a
            teacher-based weight (similarity, embedding, RKD) is on; must be absent otherwise.
        args (`RetrievalDistillationConfig`): Training arguments and loss weights.
        **kwargs: Every other `Trainer` argument. The training set yields ``{"image", "caption",
            "pair_id"}`` examples (`PairDataset`) and `data_collator` is a `RetrievalCollator`.
    """

    config_class = RetrievalDistillationConfig
    family = "retrieval"
    evaluation_loss_only = True

    def __init__(
        self,
        model: Optional[PreTrainedModel] = None,
        teacher_model: Optional[Union[PreTrainedModel, str]] = None,
        args: Optional[RetrievalDistillationConfig] = None,
        **kwargs: Any,
    ):
        super().__init__(model=model, args=args, teacher_model=teacher_model, **kwargs)

    # ------------------------------------------------------------------ setup

    def _setup_student(self, model, args, train_dataset, processing_class=None) -> None:
        self._check_dual_encoder(model, "student")
        if self.teacher is not None:
            self._check_dual_encoder(self.teacher, "teacher")
            self._check_shared_inputs(model, self.teacher)
        self._set_logit_scale(model, args)

    def _extra_callbacks(self, args) -> list[TrainerCallback]:
        if args.logit_scale is not None:
            return []
        return [ClampLogitScale(lambda: self.accelerator.unwrap_model(self.model), args.log_max_logit_scale)]

    @staticmethod
    def _check_dual_encoder(model: nn.Module, what: str) -> None:
        missing = [name for name in ("get_image_features", "get_text_features") if not hasattr(model, name)]
        if missing:
            raise TypeError(
                f"The {what} {type(model).__name__} is not a dual encoder (no {', '.join(missing)}): use a CLIPModel, "
                "a VisionTextDualEncoderModel, or another model with image and text towers."
            )

    @staticmethod
    def _check_shared_inputs(student: nn.Module, teacher: nn.Module) -> None:
        """Teacher and student read the same batch: one tokenizer (vocabulary) and one image size."""
        for tower, key, fix in (
            ("text_config", "vocab_size", "they must share a tokenizer"),
            ("vision_config", "image_size", "they must share an image processor"),
        ):
            s_value = getattr(getattr(student.config, tower, None), key, None)
            t_value = getattr(getattr(teacher.config, tower, None), key, None)
            if s_value is not None and t_value is not None and s_value != t_value:
                raise ValueError(
                    f"Teacher and student {tower}.{key} differ ({t_value} vs {s_value}): both models read the same "
                    f"batch, so {fix}. Build the student from the teacher (create_clip_student)."
                )

    @staticmethod
    def _set_logit_scale(model: nn.Module, args: RetrievalDistillationConfig) -> None:
        scale = getattr(model, "logit_scale", None)
        if args.logit_scale is None:
            return
        if not isinstance(scale, nn.Parameter):
            raise ValueError(f"logit_scale is set but {type(model).__name__} has no logit_scale parameter to fix.")
        with torch.no_grad():
            scale.fill_(math.log(args.logit_scale))
        scale.requires_grad_(False)

    def _build_heads(self, model, args) -> Optional[RetrievalHeads]:
        if self.teacher is None or self._max_weights["embedding_weight"] == 0:
            return None
        return RetrievalHeads(embedding_dim(model), embedding_dim(self.teacher))

    def _extra_signature_columns(self) -> tuple[str, ...]:
        """Keeps the raw example fields: the `RetrievalCollator` builds the model inputs from them."""
        return EXAMPLE_COLUMNS

    def _recipe_extras(self) -> dict[str, Any]:
        args = self.args
        return {"embedding_loss": args.embedding_loss if args.embedding_weight > 0 else None,
                "logit_scale": args.logit_scale if args.logit_scale is not None else "learned"}

    # ------------------------------------------------------------------ loss

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Optional[torch.Tensor] = None,
    ):
        """Runs the student (with its heads) and the teacher on a batch of pairs; sums the weighted terms.

        Returns the total loss (and the student's outputs when `return_outputs`). Each active term's
        unweighted value is logged as `loss_<term>`.
        """
        pair_ids = inputs.pop(PAIR_IDS, None)
        weights, temperature = self._current_values(model.training)
        if not self.teachers:
            weights = {term.name: (weights[term.name] if not term.needs_teacher else 0.0) for term in self.args.TERMS}
        heads = self.distillation_heads
        if heads is not None:
            heads.active, heads.projected = True, {}
        try:
            student_out = model(**inputs)
        finally:
            if heads is not None:
                heads.active = False
        teacher_out = None
        if any(weights[term.name] > 0 for term in self.args.TERMS if term.needs_teacher):
            teacher_out = self.teacher_set.forward(inputs, [0], autocast=self.accelerator.autocast())[0]

        terms: dict[str, torch.Tensor] = {}
        if weights["contrastive"] > 0:
            terms["contrastive"] = losses.contrastive_loss(student_out.logits_per_text, pair_ids)
        if weights["similarity_kd"] > 0:
            terms["similarity_kd"] = losses.similarity_distillation_loss(
                student_out.logits_per_text, teacher_out.logits_per_text, temperature
            )
        if weights["embedding"] > 0:
            projected = heads.projected
            kind = self.args.embedding_loss
            terms["embedding"] = (
                losses.embedding_matching_loss(projected["image"], teacher_out.image_embeds, kind)
                + losses.embedding_matching_loss(projected["text"], teacher_out.text_embeds, kind)
            ) / 2
        for term, loss_fn in (("rkd_distance", losses.rkd_distance_loss), ("rkd_angle", losses.rkd_angle_loss)):
            if weights[term] > 0:
                terms[term] = (
                    loss_fn(student_out.image_embeds, teacher_out.image_embeds)
                    + loss_fn(student_out.text_embeds, teacher_out.text_embeds)
                ) / 2
        loss = sum(weights[term] * value for term, value in terms.items())
        self._record_terms(terms)
        return (loss, student_out) if return_outputs else loss
