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

With `--transfer_tasks` (e.g. `stsb` for MRPC) other tasks' training sentence pairs, without their
labels, join the stages named by `--transfer_stages` as a transfer set: only the teacher terms learn
from them (a stand-in for TinyBERT's augmented data, whose masked LM does not install offline).

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
from hf_distill.runs import RESULTS_NAME
from hf_distill.runs import read_results as load_results
from hf_distill.tasks.glue import get_glue_task, load_glue, read_glue_tsv

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
# Student stages that can train on a transfer set (rows without a label), and the names earlier commands used.
TRANSFER_STAGES = ("distilbert", "tinybert-intermediate", "tinybert")
TRANSFER_STAGE_ALIASES = {"intermediate": ("tinybert-intermediate",), "both": ("tinybert-intermediate", "tinybert")}
DEFAULT_STUDENT_LAYERS = "1,3,5"
DEFAULT_STUDENT_LEARNING_RATE = "1e-4"


def write_transfer_set(task: str, transfer_tasks: list[str], data_dir: str, path: str,
                       max_train_samples: Optional[int], seed: int) -> int:
    """Writes the task's training rows plus other tasks' training sentence pairs to a CSV; returns the rows.

    The task's rows are the ones its stages train on without a transfer set: the same seeded subset when
    `max_train_samples` caps them. The transfer rows keep only their text (mapped onto the task's text
    columns) and have no label, so they take part in the teacher terms and not in the task loss: the
    TinyBERT intermediate stage (embedding, hidden states, attention scores), the classification prediction
    stage (soft cross-entropy on the teacher's logits), and the DistilBERT-style stage's soft targets and
    cosine term. TinyBERT's data augmentation serves the same purpose: more inputs on which the student
    imitates the teacher.
    """
    target = get_glue_task(task)
    data = load_glue(target, data_dir=data_dir, max_train_samples=max_train_samples, seed=seed)
    rows = [{**{column: row[column] for column in target.text_columns}, "label": row["label"]} for row in data["train"]]
    # A transfer row that shares a sentence with the task's dev set would show the student dev inputs.
    def normalise(text: str) -> str:
        return " ".join(text.lower().split())

    dev_sentences = {normalise(row[column]) for split in target.eval_splits if split in data
                     for row in data[split] for column in target.text_columns}
    dropped = 0
    for name in transfer_tasks:
        source = get_glue_task(name)
        if len(source.text_columns) != len(target.text_columns):
            raise SystemExit(f"--transfer_tasks {name}: its examples have {len(source.text_columns)} text column(s), "
                             f"{task}'s have {len(target.text_columns)}; pick tasks of the same shape.")
        for row in read_glue_tsv(os.path.join(data_dir, source.tsv_dir, "train.tsv"), source):
            texts = {column: row[other] for column, other in zip(target.text_columns, source.text_columns)}
            if any(normalise(text) in dev_sentences for text in texts.values()):
                dropped += 1
                continue
            rows.append({**texts, "label": None})  # an empty cell: no label
    print(f"{task}: transfer set from {', '.join(transfer_tasks)}: {len(rows) - len(data['train']):,} rows; {dropped:,} "
          f"dropped for sharing a sentence with {task}'s dev set")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=[*target.text_columns, "label"])
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def flag_value(extra: list[str], name: str) -> Optional[str]:
    """The value of an `hf-distill train` flag in `extra` (`--name value` or `--name=value`), if given."""
    for index, arg in enumerate(extra):
        if arg == name and index + 1 < len(extra):
            return extra[index + 1]
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    return None


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
             transfer_tasks: Optional[list[str]] = None,
             transfer_stages: tuple[str, ...] = ("tinybert-intermediate",),
             intermediate_epochs: Optional[float] = None) -> dict:
    settings = TASK_SETTINGS.get(task, {"max_train_samples": None, "max_seq_length": 128})
    student = ["--student_layers", student_layers, "--student_num_layers", str(len(student_layers.split(",")))]
    student_lr = [] if student_learning_rate == "recipe" else ["--learning_rate", student_learning_rate]
    common = ["--task_name", task, "--data_dir", data_dir, "--num_train_epochs", str(epochs),
              "--max_seq_length", str(settings["max_seq_length"]), "--disable_tqdm", "true",
              "--save_strategy", "no", "--eval_strategy", "no", "--logging_steps", "50", *extra]
    cap = ["--max_train_samples", str(settings["max_train_samples"])] if settings["max_train_samples"] else []
    out = {name: os.path.join(output_dir, task, name) for name in
           ("teacher", "baseline", "distilbert", "tinybert-intermediate", "tinybert")}
    transfer_stages = set(transfer_stages)
    if transfer_stages and transfer_tasks:
        if "tinybert" in transfer_stages and get_glue_task(task).is_regression:
            raise SystemExit(f"--transfer_stages tinybert: {task}'s prediction stage fits the gold scores, which the "
                             "transfer rows do not have; leave that stage out of --transfer_stages.")
        transfer_file = os.path.join(output_dir, task, f"train+{'+'.join(transfer_tasks)}.csv")
        seed = flag_value(extra, "--data_seed") or flag_value(extra, "--seed") or "42"
        rows = write_transfer_set(task, transfer_tasks, data_dir, transfer_file, settings["max_train_samples"], int(seed))
        print(f"{task}: {', '.join(sorted(transfer_stages))} on {rows:,} rows ({transfer_file})")
        transfer = ["--train_file", transfer_file]  # it holds the capped task rows: no cap on top
    elif transfer_tasks or transfer_stages != {"tinybert-intermediate"}:
        raise SystemExit("--transfer_tasks and --transfer_stages go together: name the tasks whose sentence pairs "
                         "form the transfer set, and the stages that read it.")
    else:
        transfer = []

    def data_for(stage: str) -> list[str]:
        """The transfer file for the stages that read it, the task's capped training split for the others."""
        return transfer if transfer and stage in transfer_stages else cap

    stages = [
        ("teacher", ["teacher.yaml", "--model_name_or_path", minilm_l6_v2_path(), "--learning_rate", "5e-5", *cap]),
        ("baseline", ["baseline.yaml", "--model_name_or_path", out["teacher"], *student, *student_lr, *cap]),
        ("distilbert", ["distilbert.yaml", "--teacher_model_name_or_path", out["teacher"], *student, *student_lr,
                        *data_for("distilbert")]),
        ("tinybert-intermediate", ["tinybert_intermediate.yaml", "--teacher_model_name_or_path", out["teacher"],
                                   *student, *student_lr, *data_for("tinybert-intermediate"),
                                   *(["--num_train_epochs", str(intermediate_epochs)] if intermediate_epochs else [])]),
        ("tinybert", [*prediction_stage(task, out, student_lr), *data_for("tinybert")]),
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
                        help="GLUE tasks whose training sentences, without their labels, are added to the task's "
                             "training rows (after its training-example cap, if any) as a transfer set, for the "
                             "stages named by --transfer_stages.")
    parser.add_argument("--transfer_stages", nargs="+", default=["tinybert-intermediate"],
                        choices=[*TRANSFER_STAGES, *TRANSFER_STAGE_ALIASES],
                        help="Student stages that train on the transfer set (default: %(default)s). The rows have "
                             "no label, so only the teacher terms learn from them: the DistilBERT-style soft targets "
                             "and cosine term, the TinyBERT intermediate stage, the classification prediction stage "
                             "(soft cross-entropy; TinyBERT trains both its stages on augmented data). Aliases of "
                             "earlier commands: 'intermediate' = tinybert-intermediate, 'both' = "
                             "tinybert-intermediate tinybert.")
    parser.add_argument("extra", nargs="*", help="Further `hf-distill train` flags for every stage, after --.")
    args = parser.parse_args()
    transfer_stages = tuple(sorted({stage for name in args.transfer_stages
                                    for stage in TRANSFER_STAGE_ALIASES.get(name, (name,))}))
    torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    for task in args.tasks:
        rows.append(run_task(task, args.data_dir, args.output_dir, args.epochs, args.extra, args.reuse, args.stages,
                             args.student_layers, args.student_learning_rate, args.transfer_tasks,
                             transfer_stages, args.intermediate_epochs))
        with open(os.path.join(args.output_dir, f"summary-{'-'.join(args.tasks)}.json"), "w") as file:
            json.dump(rows, file, indent=2)
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, python {sys.version.split()[0]}")
    print("Scores x100 on the GLUE dev set; (retention = student / teacher).\n")
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
