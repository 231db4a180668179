"""hf-distill: distil Hugging Face models with `transformers.Trainer`."""

from .config import DistillationConfig
from .layers import DistillationHeads, resolve_layer_map
from .schedules import LossSchedule
from .students import create_student
from .teacher_cache import TEACHER_LOGITS_COLUMN, precompute_teacher_outputs
from .trainer import DistillationTrainer, NonFiniteLossError

__version__ = "0.1.0"

__all__ = [
    "DistillationConfig",
    "DistillationHeads",
    "DistillationTrainer",
    "LossSchedule",
    "NonFiniteLossError",
    "TEACHER_LOGITS_COLUMN",
    "create_student",
    "precompute_teacher_outputs",
    "resolve_layer_map",
]
