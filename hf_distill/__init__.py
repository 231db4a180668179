"""hf-distill: distil Hugging Face models with `transformers.Trainer`.

The public API is imported on first use (`from hf_distill import DistillationTrainer` loads torch and
transformers then), so `import hf_distill` and the `hf-distill` command's help stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_LAZY = {
    "DistillationConfig": "config",
    "DistillationConfigBase": "config",
    "DistillationHeads": "layers",
    "resolve_layer_map": "layers",
    "LossSchedule": "schedules",
    "create_student": "students",
    "TEACHER_LOGITS_COLUMN": "teacher_cache",
    "precompute_teacher_outputs": "teacher_cache",
    "DistillationTrainer": "trainer",
    "NonFiniteLossError": "trainer",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from .config import DistillationConfig, DistillationConfigBase
    from .layers import DistillationHeads, resolve_layer_map
    from .schedules import LossSchedule
    from .students import create_student
    from .teacher_cache import TEACHER_LOGITS_COLUMN, precompute_teacher_outputs
    from .trainer import DistillationTrainer, NonFiniteLossError


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
