"""GLUE distillation results: teacher -> no-teacher baseline, DistilBERT-style and TinyBERT-style students.

Runs the shipped recipes (`recipes/glue/*.yaml`) through `hf-distill train`, one task at a time:

1. teacher: all-MiniLM-L6-v2 (pip-installed weights) fine-tuned on the task;
2. baseline: 3 of the teacher's 6 layers (1, 3, 5 by default), fine-tuned without a teacher;
3. DistilBERT-style: the same student, soft targets (T=2) + task + cosine;
4. TinyBERT-style: the same student, intermediate stage (embedding + hidden + attention, uniform
   map g(m) = 2m) then prediction stage (soft cross-entropy on the teacher's logits; for regression,
   MSE on the gold scores, as TinyBERT's reference code does);

Every student stage trains at `--student_learning_rate` (default 1e-4; `recipe` keeps each recipe's
own), the teacher at 5e-5. Student layers 1, 3, 5 (0-based) keep the teacher's top layer and put
in student block m a copy of teacher block 2m, 1-based: the layer whose output TinyBERT's map
g(m) = 2m makes student layer m imitate. Layers 0, 2, 4 (the old default) start every student
layer one block away from its target, which ruined the TinyBERT-style student on STS-B (BENCHMARKS.md).

and prints one Markdown table (score, retention = student / teacher). Data: the real GLUE files in
`../shared/data/glue` (override with --data_dir). Training subsets keep it within CPU time and are
stated in the table.

    python benchmarks/glue.py --tasks sst2 mrpc stsb --output_dir runs/glue
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from typing import Optional

import torch

from hf_distill.assets import minilm_l6_v2_path
from hf_distill.cli import main as hf_distill
from hf_distill.run import RESULTS_NAME, load_results
from hf_distill.tasks.glue import get_glue_task, read_glue_tsv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = os.path.join(ROOT, "recipes", "glue")
DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "glue")
# Training examples per task (None = all) and tokens per example, to fit 2 CPU cores.
TASK_SETTINGS = {
    "sst2": {"max_train_samples": 4000, "max_seq_length": 64},
    "mrpc": {"max_train_samples": None, "max_seq_length": 128},
    "stsb": {"max_train_samples": 4000, "max_seq_length": 128},
    "qnli": {"max_train_samples": None, "max_seq_length": 128},
    "wnli": {"max_train_samples": None, "max_seq_length": 128},
}
DEFAULT_STUDENT_LAYERS = "1,3,5"
DEFAULT_STUDENT_LEARNING_RATE = "1e-4"


def write_transfer_set(task: str, transfer_tasks: list[str], data_dir: str, path: str) -> int:
    """Writes the task's training rows plus other tasks' training sentence pairs to a CSV; returns the rows.

    The transfer rows keep only their text (mapped onto the task's text columns) and get a placeholder
    label, 0: they feed the TinyBERT intermediate stage, whose losses (embedding, hidden states,
    attention scores) use no labels, and with `--transfer_stages both` the classification prediction
    stage, whose soft cross-entropy uses only the teacher's logits. TinyBERT's data augmentation serves
    the same purpose: more inputs on which the student imitates the teacher.
    """
    target = get_glue_task(task)
    rows = [{**{column: row[column] for column in target.text_columns}, "label": row["label"]}
            for row in read_glue_tsv(os.path.join(data_dir, target.tsv_dir, "train.tsv"), target)]
    for name in transfer_tasks:
        source = get_glue_task(name)
        if len(source.text_columns) != len(target.text_columns):
            raise SystemExit(f"--transfer_tasks {name}: its examples have {len(source.text_columns)} text column(s), "
                             f"{task}'s have {len(target.text_columns)}; pick tasks of the same shape.")
        for row in read_glue_tsv(os.path.join(data_dir, source.tsv_dir, "train.tsv"), source):
            texts = {column: row[other] for column, other in zip(target.text_columns, source.text_columns)}
            rows.append({**texts, "label": 0.0 if target.is_regression else 0})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=[*target.text_columns, "label"])
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def prediction_stage(task: str, out: dict[str, str], student_lr: list[str]) -> list[str]:
    """The TinyBERT prediction stage's recipe and flags, starting from the intermediate stage's student.

    Classification: soft cross-entropy on the teacher's logits. Regression (STS-B): the gold scores,
    as in TinyBERT's reference code (`recipes/glue/tinybert_prediction_regression.yaml`).
    """
    if get_glue_task(task).is_regression:
        return ["tinybert_prediction_regression.yaml", "--model_name_or_path", out["tinybert-intermediate"],
                *student_lr]
    return ["tinybert_prediction.yaml", "--teacher_model_name_or_path", out["teacher"],
            "--student_model_name_or_path", out["tinybert-intermediate"], *student_lr]


def run_task(task: str, data_dir: str, output_dir: str, epochs: float, extra: list[str], reuse: bool = False,
             only: Optional[list[str]] = None, student_layers: str = DEFAULT_STUDENT_LAYERS,
             student_learning_rate: str = DEFAULT_STUDENT_LEARNING_RATE,
             transfer_tasks: Optional[list[str]] = None, transfer_stages: str = "intermediate",
             intermediate_epochs: Optional[float] = None) -> dict:
    settings = TASK_SETTINGS.get(task, {"max_train_samples": None, "max_seq_length": 128})
    student = ["--student_layers", student_layers, "--student_num_layers", str(len(student_layers.split(",")))]
    student_lr = [] if student_learning_rate == "recipe" else ["--learning_rate", student_learning_rate]
    common = ["--task_name", task, "--data_dir", data_dir, "--num_train_epochs", str(epochs),
              "--max_seq_length", str(settings["max_seq_length"]), "--disable_tqdm", "true",
              "--save_strategy", "no", "--eval_strategy", "no", "--logging_steps", "50", *extra]
    if settings["max_train_samples"]:
        common += ["--max_train_samples", str(settings["max_train_samples"])]
    out = {name: os.path.join(output_dir, task, name) for name in
           ("teacher", "baseline", "distilbert", "tinybert-intermediate", "tinybert")}
    transfer = []
    transfer_in_prediction_stage = transfer_stages == "both"
    if transfer_in_prediction_stage and not transfer_tasks:
        raise SystemExit(f"--transfer_stages {transfer_stages} needs --transfer_tasks: name the tasks whose sentence "
                         "pairs form the transfer set.")
    if transfer_tasks:
        if transfer_in_prediction_stage and get_glue_task(task).is_regression:
            raise SystemExit(f"--transfer_stages both: {task}'s prediction stage fits the gold scores, which the "
                             "transfer rows do not have; use --transfer_stages intermediate.")
        if transfer_in_prediction_stage and any(arg.split("=")[0] == "--task_weight" for arg in extra):
            raise SystemExit("--transfer_stages both with --task_weight: the transfer rows' labels are placeholders, "
                             "so the prediction stage must not use a task loss; drop --task_weight.")
        transfer_file = os.path.join(output_dir, task, f"train+{'+'.join(transfer_tasks)}.csv")
        rows = write_transfer_set(task, transfer_tasks, data_dir, transfer_file)
        print(f"{task}: TinyBERT {'stages' if transfer_in_prediction_stage else 'intermediate stage'} on "
              f"{rows:,} rows ({transfer_file})")
        transfer = ["--train_file", transfer_file]
    stages = [
        ("teacher", ["teacher.yaml", "--model_name_or_path", minilm_l6_v2_path(), "--learning_rate", "5e-5"]),
        ("baseline", ["baseline.yaml", "--model_name_or_path", out["teacher"], *student, *student_lr]),
        ("distilbert", ["distilbert.yaml", "--teacher_model_name_or_path", out["teacher"], *student, *student_lr]),
        ("tinybert-intermediate", ["tinybert_intermediate.yaml", "--teacher_model_name_or_path", out["teacher"],
                                   *student, *student_lr, *transfer,
                                   *(["--num_train_epochs", str(intermediate_epochs)] if intermediate_epochs else [])]),
        ("tinybert", [*prediction_stage(task, out, student_lr), *(transfer if transfer_in_prediction_stage else [])]),
    ]
    minutes = {}
    if only:
        stages = [stage for stage in stages if stage[0] in ("teacher", *only)]
        if "tinybert" in only and "tinybert-intermediate" not in only:
            raise SystemExit("--stages tinybert needs tinybert-intermediate too")
        out = {name: path for name, path in out.items() if name in ("teacher", *only)}
    for name, (recipe, *overrides) in stages:
        # With --stages the teacher is an input, not a stage to redo: a trained one is kept (it may be a
        # symlink to another run's teacher, which retraining would overwrite).
        if (reuse or (only and name == "teacher")) and os.path.isfile(os.path.join(out[name], RESULTS_NAME)):
            print(f"{task}/{name}: reusing {out[name]}")
            continue
        start = time.time()
        code = hf_distill(["train", os.path.join(RECIPES, recipe), *common, *overrides, "--output_dir", out[name]])
        if code != 0:
            raise SystemExit(f"stage {name} of {task} failed with exit code {code}")
        minutes[name] = round((time.time() - start) / 60, 1)
    results = {name: load_results(path) for name, path in out.items()}
    teacher_score = results["teacher"]["student"]["score"]
    row = {
        "task": task,
        "train_examples": results["teacher"]["data"]["train_examples"],
        "eval_examples": results["teacher"]["data"]["eval_examples"],
        "max_seq_length": settings["max_seq_length"],
        "teacher": teacher_score,
        "minutes": minutes,  # wall time of the stages run now (reused stages are absent)
        "train_minutes": {name: round(r["train"]["train_runtime"] / 60, 1) for name, r in results.items()},
    }
    for name in ("baseline", "distilbert", "tinybert"):
        if name not in results:
            continue
        score = results[name]["student"]["score"]
        row[name] = score
        row[f"{name}_retention"] = round(100 * score / teacher_score, 1)
    row["teacher_parameters"] = results["teacher"]["student"]["parameters"]
    students = [results[name] for name in ("baseline", "distilbert", "tinybert") if name in results]
    row["student_parameters"] = students[0]["student"]["parameters"] if students else None
    return row


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| task (metric) | train examples | teacher (6L) | student, no teacher (3L) | DistilBERT-style (3L) | "
        "TinyBERT-style (3L) |",
        "|---|---|---|---|---|---|",
    ]
    metric = {"sst2": "acc", "mrpc": "acc/F1 mean", "stsb": "Pearson/Spearman mean", "qnli": "acc", "wnli": "acc"}
    for row in rows:
        cells = [f"{row['task']} ({metric.get(row['task'], 'score')})", f"{row['train_examples']:,}",
                 f"{100 * row['teacher']:.2f}"]
        for name in ("baseline", "distilbert", "tinybert"):
            cells.append(f"{100 * row[name]:.2f} ({row[f'{name}_retention']:.1f}%)" if name in row else "not run")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["sst2", "mrpc", "stsb"])
    parser.add_argument("--data_dir", default=DEFAULT_DATA)
    parser.add_argument("--output_dir", default="runs/glue")
    parser.add_argument("--epochs", type=float, default=2.0, help="Training epochs of every stage (default: %(default)s).")
    parser.add_argument("--intermediate_epochs", type=float,
                        help="Epochs of the TinyBERT intermediate stage, if not --epochs (TinyBERT trains this "
                             "stage longer than the prediction stage).")
    parser.add_argument("--reuse", action="store_true",
                        help="Keep the stages that already have a results.json in --output_dir (same settings).")
    parser.add_argument("--stages", nargs="+", choices=["baseline", "distilbert", "tinybert-intermediate", "tinybert"],
                        help="Run only these student stages (default: all). The teacher is always needed: one "
                             "already trained in --output_dir is kept, otherwise it is trained first.")
    parser.add_argument("--student_layers", default=DEFAULT_STUDENT_LAYERS,
                        help="0-based teacher layers copied into every student (default: %(default)s).")
    parser.add_argument("--student_learning_rate", default=DEFAULT_STUDENT_LEARNING_RATE,
                        help="Learning rate of every student stage, or 'recipe' for each recipe's own "
                             "(default: %(default)s).")
    parser.add_argument("--transfer_tasks", nargs="+", default=[],
                        help="GLUE tasks whose training sentences (labels unused) are added to the inputs of the "
                             "TinyBERT intermediate stage, as a transfer set; the task's training-example cap, if "
                             "any, applies to the combined file.")
    parser.add_argument("--transfer_stages", choices=["intermediate", "both"], default="intermediate",
                        help="Which TinyBERT stages read the transfer set: the intermediate stage only, or also "
                             "the prediction stage, as TinyBERT trains both stages on its augmented data "
                             "(classification only: that stage then fits the teacher's logits and no labels).")
    parser.add_argument("extra", nargs="*", help="Further `hf-distill train` flags for every stage, after --.")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    for task in args.tasks:
        rows.append(run_task(task, args.data_dir, args.output_dir, args.epochs, args.extra, args.reuse, args.stages,
                             args.student_layers, args.student_learning_rate, args.transfer_tasks,
                             args.transfer_stages, args.intermediate_epochs))
        with open(os.path.join(args.output_dir, f"summary-{'-'.join(args.tasks)}.json"), "w") as file:
            json.dump(rows, file, indent=2)
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, python {sys.version.split()[0]}")
    print("Scores x100 on the GLUE dev set; (retention = student / teacher).\n")
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
