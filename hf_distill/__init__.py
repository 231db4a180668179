"""hf-distill: distil Hugging Face models with `transformers.Trainer`."""

from .config import DistillationConfig
from .layers import DistillationHeads, resolve_layer_map
from .students import create_student
from .trainer import DistillationTrainer, NonFiniteLossError

__version__ = "0.1.0"

__all__ = [
    "DistillationConfig",
    "DistillationHeads",
    "DistillationTrainer",
    "NonFiniteLossError",
    "create_student",
    "resolve_layer_map",
]
