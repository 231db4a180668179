"""Distillation without a trained teacher: deep mutual learning and self-distillation with early exits."""

from .config import MutualLearningConfig, SelfDistillationConfig
from .early_exit import (
    EarlyExitModel,
    SelfDistillationTrainer,
    early_exit_predict,
    early_exit_sweep,
    exit_decisions,
    plot_sweep,
)
from .mutual import MutualLearningModel, MutualLearningTrainer

__all__ = [
    "EarlyExitModel",
    "SelfDistillationTrainer",
    "early_exit_predict",
    "early_exit_sweep",
    "exit_decisions",
    "plot_sweep",
    "MutualLearningConfig",
    "MutualLearningModel",
    "MutualLearningTrainer",
    "SelfDistillationConfig",
]
