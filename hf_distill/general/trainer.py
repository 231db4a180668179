"""`GeneralDistillationTrainer`: `DistillationTrainer` for raw text, whose evaluation reports the distillation loss."""

from __future__ import annotations

from ..trainer import DistillationTrainer


class GeneralDistillationTrainer(DistillationTrainer):
    """`DistillationTrainer` whose evaluation reports the distillation loss on unlabelled text.

    Trainer's `prediction_step` computes a loss only when the batch has labels; a base-model
    student (TinyBERT's general stage) has none, so evaluation returns the weighted distillation loss
    (`eval_loss`) and no predictions (`evaluation_loss_only`).
    """

    family = "general"
    evaluation_loss_only = True
