"""Model sizes, the training schedule recorded in `results.json`, and the results table printed at the end of a run."""

from __future__ import annotations

import os
from typing import Any, Optional

from torch import nn
from transformers import TrainingArguments

from .trainer import HEADS_ATTRIBUTE


def count_parameters(model: nn.Module) -> int:
    """Parameters of the model as saved: the student's projection heads are not counted."""
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith(f"{HEADS_ATTRIBUTE}."))


def weights_size_mb(model_dir: str) -> Optional[float]:
    """Size on disk of the model weights (`*.safetensors` / `*.bin`, projection heads excluded), in MB."""
    if not os.path.isdir(model_dir):
        return None
    total = sum(
        os.path.getsize(os.path.join(model_dir, name))
        for name in os.listdir(model_dir)
        if name.endswith((".safetensors", ".bin")) and not name.startswith("distillation_heads")
        and name != "training_args.bin"
    )
    return round(total / 1e6, 2) if total else None


def _fmt(value, spec: str = "") -> str:
    if value is None:
        return "-"
    return format(value, spec) if spec else str(value)


def format_table(task: str, rows: list[tuple[str, dict, Optional[float]]]) -> str:
    """A plain-text table with one row per model: `(label, model info, retention %)`.

    Columns: model, layers, hidden size, parameters, size on disk (MB), task score, retention (%).
    """
    header = ["model", "layers", "hidden", "parameters", "size MB", f"{task} score", "retention %"]
    cells = [
        [label, _fmt(info.get("num_layers")), _fmt(info.get("hidden_size")), _fmt(info.get("parameters"), ","),
         _fmt(info.get("size_mb"), ".1f"), _fmt(info.get("score"), ".4f"), _fmt(retention, ".1f")]
        for label, info, retention in rows
    ]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in [header, *cells]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def retention(score: Optional[float], teacher_score: Optional[float]) -> Optional[float]:
    """``100 · student score / teacher score``, rounded to 0.01; `None` when either is missing."""
    if score is None or not teacher_score:
        return None
    return round(100.0 * score / teacher_score, 2)


def format_results_table(results: dict) -> str:
    """Renders a run's `results.json`: the teacher (if any) and the trained student."""
    if not results.get("teacher"):  # a fine-tune without a teacher (a teacher recipe, a baseline)
        return format_table(results.get("task", ""), [("model (no teacher)", results["student"], None)])
    rows = [("teacher", results["teacher"], None), ("student", results["student"], results.get("retention_percent"))]
    return format_table(results.get("task", ""), rows)


TRAINING_SCHEDULE_KEYS = ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
                          "gradient_accumulation_steps", "seed")


def training_schedule(config: TrainingArguments) -> dict[str, Any]:
    """The `TrainingArguments` every `results.json` records under `recipe` (learning rate, epochs, steps, batch, seed)."""
    return {key: getattr(config, key) for key in TRAINING_SCHEDULE_KEYS}
