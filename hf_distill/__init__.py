"""hf-distill: distil Hugging Face models with `transformers.Trainer`.

The public API: every family's config and trainer, `create_student`, `precompute_teacher_outputs`,
`add_teacher_inputs` (a teacher with its own tokenizer), `compute_importance` and `prune_model` (structured
pruning) and `export_model`. It is imported on first use (`from hf_distill import DistillationTrainer` loads torch and
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
    "TeacherDistillationConfigBase": "config",
    "DistillationHeads": "layers",
    "resolve_layer_map": "layers",
    "LossSchedule": "schedules",
    "create_student": "students",
    "TEACHER_LOGITS_COLUMN": "teachers",
    "precompute_teacher_outputs": "teachers",
    "add_teacher_inputs": "teacher_inputs",
    "DistillationTrainer": "trainer",
    "DistillationTrainerBase": "trainer",
    "NonFiniteLossError": "trainer",
    "RetrievalDistillationConfig": "retrieval.config",
    "RetrievalDistillationTrainer": "retrieval.trainer",
    "MutualLearningConfig": "online.config",
    "MutualLearningTrainer": "online.mutual",
    "SelfDistillationConfig": "online.config",
    "SelfDistillationTrainer": "online.early_exit",
    "export_model": "export",
    "compute_importance": "pruning",
    "prune_model": "pruning",
    "PruningImportance": "pruning",
    "PruningReport": "pruning",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from .config import DistillationConfig, DistillationConfigBase, TeacherDistillationConfigBase
    from .export import export_model
    from .layers import DistillationHeads, resolve_layer_map
    from .online.config import MutualLearningConfig, SelfDistillationConfig
    from .online.early_exit import SelfDistillationTrainer
    from .online.mutual import MutualLearningTrainer
    from .pruning import PruningImportance, PruningReport, compute_importance, prune_model
    from .retrieval.config import RetrievalDistillationConfig
    from .retrieval.trainer import RetrievalDistillationTrainer
    from .schedules import LossSchedule
    from .students import create_student
    from .teacher_inputs import add_teacher_inputs
    from .teachers import TEACHER_LOGITS_COLUMN, precompute_teacher_outputs
    from .trainer import DistillationTrainer, DistillationTrainerBase, NonFiniteLossError


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
