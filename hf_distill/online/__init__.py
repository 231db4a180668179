"""Distillation without a trained teacher: deep mutual learning and self-distillation with early exits.

- `config`: `MutualLearningConfig`, `SelfDistillationConfig` and `PeerArguments`.
- `mutual`: `MutualLearningModel` (the peers in one module) and `MutualLearningTrainer`.
- `early_exit`: `EarlyExitModel`, `SelfDistillationTrainer`, early-exit inference and its sweep.
- `losses`: the two families' terms; `run`: their recipe runners.

Public names are imported on first use, so the recipe parser can read `config` without the training stack.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "MutualLearningConfig": "config",
    "SelfDistillationConfig": "config",
    "EarlyExitModel": "early_exit",
    "SelfDistillationTrainer": "early_exit",
    "early_exit_predict": "early_exit",
    "early_exit_sweep": "early_exit",
    "exit_decisions": "early_exit",
    "plot_sweep": "early_exit",
    "MutualLearningModel": "mutual",
    "MutualLearningTrainer": "mutual",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
