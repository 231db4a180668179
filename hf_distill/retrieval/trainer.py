"""`RetrievalDistillationTrainer`: `DistillationTrainer` for dual encoders (CLIP-style image-text retrieval).

It reuses `DistillationTrainer`'s Trainer overrides unchanged: saving the student alone plus its
projection heads beside it (`distillation_heads.safetensors`), restoring them on resume and with
`load_best_model_at_end`, DDP wrapping with a static graph when heads exist, per-term logging
(`loss_<term>`, the mean over the optimizer steps since the last log) and teacher loading
(safetensors only, no remote code by default). Only the loss (`compute_loss`) and the setup differ.

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
from collections import defaultdict
from typing import Any, Optional, Union

import torch
from torch import nn
from transformers import PreTrainedModel, Trainer, TrainerCallback

from ..trainer import DistillationTrainer, check_finite, install_heads
from . import losses
from .config import TERM_WEIGHTS, RetrievalDistillationConfig

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


class RetrievalDistillationTrainer(DistillationTrainer):
    """Trains a dual-encoder student (`model`) on image-caption pairs, optionally against a frozen teacher.

    Args:
        model (`PreTrainedModel`): The student dual encoder (see `create_clip_student`).
        teacher_model (`PreTrainedModel` or `str`, *optional*): The teacher, or a folder / Hub id
            loaded with `AutoModel`. Defaults to `args.teacher_model_name_or_path`. Needed when a
            teacher-based weight (similarity, embedding, RKD) is on; must be absent otherwise.
        args (`RetrievalDistillationConfig`): Training arguments and loss weights.
        **kwargs: Every other `Trainer` argument. The training set yields ``{"image", "caption",
            "pair_id"}`` examples (`PairDataset`) and `data_collator` is a `RetrievalCollator`.
    """

    def __init__(
        self,
        model: Optional[PreTrainedModel] = None,
        teacher_model: Optional[Union[PreTrainedModel, str]] = None,
        args: Optional[RetrievalDistillationConfig] = None,
        **kwargs: Any,
    ):
        if not isinstance(args, RetrievalDistillationConfig):
            raise TypeError(
                f"RetrievalDistillationTrainer needs args=RetrievalDistillationConfig(...), got {type(args).__name__}."
            )
        if model is None:
            raise ValueError("RetrievalDistillationTrainer needs the student as model=... (see create_clip_student).")
        self._check_dual_encoder(model, "student")
        teacher_model = teacher_model if teacher_model is not None else args.teacher_model_name_or_path
        if isinstance(teacher_model, str):
            teacher_model = self._load_teacher(teacher_model, model, args)
        if teacher_model is not None:
            self._check_dual_encoder(teacher_model, "teacher")
        if teacher_model is not None:
            self._check_shared_inputs(model, teacher_model)
        if args.needs_teacher and teacher_model is None:
            on = [name for term, name in TERM_WEIGHTS.items() if term != "clip" and getattr(args, name) > 0]
            raise ValueError(
                f"{', '.join(on)} > 0 needs a teacher: pass teacher_model=... or set teacher_model_name_or_path, or "
                "set those weights to 0 (contrastive_weight alone trains without a teacher)."
            )
        if teacher_model is not None and not args.needs_teacher:
            raise ValueError(
                "A teacher was given but every teacher-based weight (similarity_kd, embedding, rkd_distance, "
                "rkd_angle) is 0: set one of them > 0, or drop the teacher for a no-teacher baseline."
            )
        # What DistillationTrainer's inherited methods (saving, loading, logging, wrapping) read. Its
        # __init__ is not called: it sets up and checks a classification/MLM student.
        self.teachers = [teacher_model] if teacher_model is not None else []
        self.teacher = teacher_model
        self.ema = None
        self._schedule = None
        self.layer_map = None
        self._set_logit_scale(model, args)
        self.distillation_heads = self._build_retrieval_heads(model, teacher_model, args)
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if args.logit_scale is None:
            callbacks.append(ClampLogitScale(lambda: self.accelerator.unwrap_model(self.model), args.log_max_logit_scale))
        kwargs["callbacks"] = callbacks
        Trainer.__init__(self, model=model, args=args, **kwargs)
        self.model_accepts_loss_kwargs = False  # each loss is a mean: Trainer divides by the accumulation steps
        self._window_counts = None
        self._window_scale = 1.0
        self._logged_terms: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), dtype=torch.float64))
        self._logged_steps = 0
        if self.teachers:
            self._prepare_teacher()

    # ------------------------------------------------------------------ setup

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

    def _build_retrieval_heads(self, student, teacher, args) -> Optional[RetrievalHeads]:
        if teacher is None or args.embedding_weight == 0:
            return None
        heads = RetrievalHeads(embedding_dim(student), embedding_dim(teacher))
        return install_heads(student, heads, args.distillation_heads_path)

    def _set_signature_columns_if_needed(self):
        """Keeps the raw example fields: the `RetrievalCollator` builds the model inputs from them."""
        Trainer._set_signature_columns_if_needed(self)
        self._signature_columns = [*self._signature_columns, *EXAMPLE_COLUMNS]

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        # Trainer's own: the retrieval terms are per-micro-batch means, no token counting.
        return Trainer.get_batch_samples(self, epoch_iterator, num_batches, device)

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
        weights = self.args.loss_weights
        if not self.teachers:
            weights = {term: (value if term == "clip" else 0.0) for term, value in weights.items()}
        heads = self.distillation_heads
        if heads is not None:
            heads.active, heads.projected = True, {}
        try:
            student_out = model(**inputs)
        finally:
            if heads is not None:
                heads.active = False
        teacher_out = None
        if any(weights[term] > 0 for term in ("sim", "emb", "rkd_distance", "rkd_angle")):
            with torch.no_grad(), self.accelerator.autocast():
                self.teacher.eval()
                teacher_out = self.teacher(**inputs)

        terms: dict[str, torch.Tensor] = {}
        if weights["clip"] > 0:
            terms["clip"] = losses.contrastive_loss(student_out.logits_per_text, pair_ids)
        if weights["sim"] > 0:
            terms["sim"] = losses.similarity_distillation_loss(
                student_out.logits_per_text, teacher_out.logits_per_text, self.args.temperature
            )
        if weights["emb"] > 0:
            projected = heads.projected
            kind = self.args.embedding_loss
            terms["emb"] = (
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
        self._record_retrieval_terms(terms, model.training)
        return (loss, student_out) if return_outputs else loss

    def _record_retrieval_terms(self, terms: dict[str, torch.Tensor], training: bool) -> None:
        if not training:
            return
        steps = self.current_gradient_accumulation_steps
        for term, value in terms.items():
            value = value.detach()
            if self.args.stop_on_nonfinite_loss:
                check_finite(term, value, self.state.global_step + 1)
            self._logged_terms[term] = self._logged_terms[term] + value.to(torch.float64).cpu() / steps

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Evaluation reports the loss only (recalls come from `hf_distill.retrieval.evaluation`)."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None
