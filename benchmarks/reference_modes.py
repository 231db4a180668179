"""Per-task GLUE teachers, and TinyBERT-style students in the default mode beside `--reference tinybert`.

1. Teachers: all-MiniLM-L6-v2 (pip-installed weights) fine-tuned with `recipes/glue/teacher.yaml` and
   nothing but its `per_task:` entry for the task (epochs, learning rate, batch, sequence length): this
   script passes no --learning_rate / --num_train_epochs / --max_seq_length / batch flag to the teachers.
   Next to each teacher it prints the best constant prediction on the same evaluation rows (the
   majority class; 0 for STS-B, where a constant has no correlation).
2. Students (`--student_tasks`, MRPC and STS-B by default): teacher layers 1, 3, 5 (as
   `benchmarks/glue.py`), TinyBERT's intermediate stage then its prediction stage
   (`tinybert_prediction_regression.yaml` for STS-B), once in the project's default reductions and
   once with `--reference tinybert` (task_distill.py's), with the same teacher, seed, data and steps.
   The intermediate stage runs `--intermediate_epochs` (default 3, not the recipe's per-task 20,
   to fit 2 CPU cores) in both modes; the prediction stage keeps its recipe (3 epochs).

QNLI and WNLI have only dev.tsv in ../shared/data/glue: their dev rows are shuffled with `--seed`
and split in two (`--split_fraction` for training, the rest held out for evaluation), written in the
GLUE layout under `--split_dir` (outside the repository by default); the other tasks read the real
files, their training sets capped by `--max_train_samples` (SST-2 and STS-B: 4,000, as glue.py).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/reference_modes.py --output_dir runs/reference_modes

`--teacher_epochs mrpc=3 stsb=3`, `--intermediate_epochs` and `--prediction_epochs` shorten runs that do
not fit the CPU time at hand (the numbers in BENCHMARKS.md say which were used).

Stages with a results.json in --output_dir are kept with --reuse, so a rerun with --reuse only prints
the tables; tasks can be run in parallel processes (--tasks ... --student_tasks ...) and reported
together afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from typing import Optional

import torch
import transformers

from hf_distill.assets import minilm_l6_v2_path
from hf_distill.cli import main as hf_distill
from hf_distill.runs import RESULTS_NAME
from hf_distill.runs import read_results as load_results
from hf_distill.tasks.glue import get_glue_task, read_glue_tsv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = os.path.join(ROOT, "recipes", "glue")
DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "glue")
DEFAULT_SPLIT_DIR = os.path.join(tempfile.gettempdir(), "hf-distill-glue-dev-split")
# Training examples per task (None = all), to fit 2 CPU cores.
MAX_TRAIN_SAMPLES = {"sst2": 4000, "stsb": 4000}
# Tasks whose release here has no train.tsv: their dev.tsv is split.
DEV_ONLY = ("qnli", "wnli")
METRIC = {"sst2": "accuracy", "mrpc": "mean of accuracy and F1", "stsb": "mean of Pearson and Spearman",
          "qnli": "accuracy", "wnli": "accuracy"}
STUDENT_LAYERS = "1,3,5"
MODES = {"default": [], "reference": ["--reference", "tinybert"]}


def split_dev(task: str, data_dir: str, split_dir: str, fraction: float, seed: int) -> str:
    """Writes `<split_dir>/<TSV dir>/{train,dev}.tsv` from the task's dev.tsv (seeded shuffle); returns split_dir."""
    name = get_glue_task(task).tsv_dir
    with open(os.path.join(data_dir, name, "dev.tsv"), encoding="utf-8") as file:
        header, *lines = file.read().splitlines()
    lines = [line for line in lines if line.strip()]
    random.Random(seed).shuffle(lines)
    cut = round(fraction * len(lines))
    os.makedirs(os.path.join(split_dir, name), exist_ok=True)
    for split, rows in (("train", lines[:cut]), ("dev", lines[cut:])):
        with open(os.path.join(split_dir, name, f"{split}.tsv"), "w", encoding="utf-8") as file:
            file.write("\n".join([header, *rows]) + "\n")
    return split_dir


def constant_score(task: str, data_dir: str) -> tuple[float, str]:
    """The best score of one constant prediction on the task's evaluation rows (dev.tsv), and what it predicts."""
    spec = get_glue_task(task)
    rows = read_glue_tsv(os.path.join(data_dir, spec.tsv_dir, "dev.tsv"), spec)
    if spec.is_regression:
        return 0.0, "any constant (correlation undefined: 0)"
    labels = [row["label"] for row in rows]
    best, best_label = -1.0, None
    for label in range(spec.num_labels):
        accuracy = sum(gold == label for gold in labels) / len(labels)
        score = accuracy
        if task == "mrpc":  # mean of accuracy and F1 of the positive class
            positives = sum(gold == 1 for gold in labels)
            f1 = 2 * positives / (positives + len(labels)) if label == 1 and positives else 0.0
            score = (accuracy + f1) / 2
        if score > best:
            best, best_label = score, label
    return best, f"always '{spec.label_names[best_label]}'"


def train(recipe: str, out: str, flags: list[str], reuse: bool) -> Optional[float]:
    """Runs one `hf-distill train` stage into `out`; returns its wall minutes (None when reused)."""
    if reuse and os.path.isfile(os.path.join(out, RESULTS_NAME)):
        print(f"reusing {out}", flush=True)
        return None
    start = time.time()
    command = ["train", os.path.join(RECIPES, recipe), *flags, "--output_dir", out]
    print("hf-distill " + " ".join(command), flush=True)
    code = hf_distill(command)
    if code != 0:
        raise SystemExit(f"{out}: hf-distill train failed with exit code {code}")
    return round((time.time() - start) / 60, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["sst2", "mrpc", "stsb", "qnli", "wnli"],
                        help="Tasks whose teacher is trained (default: %(default)s).")
    parser.add_argument("--student_tasks", nargs="*", default=["mrpc", "stsb"],
                        help="Tasks with TinyBERT-style students in both modes (default: %(default)s).")
    parser.add_argument("--report_tasks", nargs="*",
                        help="Tasks to print in the tables (default: --tasks and --student_tasks).")
    parser.add_argument("--data_dir", default=DEFAULT_DATA)
    parser.add_argument("--split_dir", default=DEFAULT_SPLIT_DIR,
                        help="Where the split dev sets of QNLI and WNLI are written (default: %(default)s).")
    parser.add_argument("--split_fraction", type=float, default=0.5,
                        help="Share of a dev-only task's rows used for training (default: %(default)s).")
    parser.add_argument("--output_dir", default="runs/reference_modes")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--intermediate_epochs", type=float, default=3.0,
                        help="Epochs of the TinyBERT intermediate stage in both modes (default: %(default)s).")
    parser.add_argument("--prediction_epochs", type=float,
                        help="Epochs of the TinyBERT prediction stage in both modes (default: the recipe's 3).")
    parser.add_argument("--teacher_epochs", nargs="*", default=[], metavar="TASK=EPOCHS",
                        help="Override the per-task epochs of these teachers (e.g. mrpc=3 stsb=3) when CPU time "
                             "does not allow the recipe's; every other per-task setting is kept.")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s).")
    parser.add_argument("--reuse", action="store_true", help="Keep the stages that already have a results.json.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    teacher_epochs = dict(item.split("=", 1) for item in args.teacher_epochs)

    def data_dir_of(task: str) -> str:
        if task in DEV_ONLY:
            return split_dev(task, args.data_dir, args.split_dir, args.split_fraction, args.seed)
        return args.data_dir

    def common(task: str) -> list[str]:
        cap = MAX_TRAIN_SAMPLES.get(task)
        return ["--task_name", task, "--data_dir", data_dir_of(task), "--seed", str(args.seed),
                "--disable_tqdm", "true", "--save_strategy", "no", "--eval_strategy", "no", "--logging_steps", "50",
                *(["--max_train_samples", str(cap)] if cap else [])]

    out = lambda task, name: os.path.join(args.output_dir, task, name)  # noqa: E731
    minutes = {}
    for task in dict.fromkeys([*args.tasks, *args.student_tasks]):
        minutes[(task, "teacher")] = train("teacher.yaml", out(task, "teacher"),
                                           [*common(task), "--model_name_or_path", minilm_l6_v2_path(),
                                            *(["--num_train_epochs", teacher_epochs[task]] if task in teacher_epochs
                                              else [])], args.reuse)
    for task in args.student_tasks:
        student = ["--student_layers", STUDENT_LAYERS, "--student_num_layers", str(len(STUDENT_LAYERS.split(",")))]
        for mode, reference in MODES.items():
            intermediate = out(task, f"intermediate-{mode}")
            minutes[(task, f"intermediate-{mode}")] = train(
                "tinybert_intermediate.yaml", intermediate,
                [*common(task), "--teacher_model_name_or_path", out(task, "teacher"), *student,
                 "--num_train_epochs", str(args.intermediate_epochs), *reference], args.reuse)
            if get_glue_task(task).is_regression:
                recipe, flags = "tinybert_prediction_regression.yaml", ["--model_name_or_path", intermediate]
            else:
                recipe, flags = "tinybert_prediction.yaml", ["--teacher_model_name_or_path", out(task, "teacher"),
                                                             "--student_model_name_or_path", intermediate]
            if args.prediction_epochs:
                flags += ["--num_train_epochs", str(args.prediction_epochs)]
            minutes[(task, mode)] = train(recipe, out(task, f"prediction-{mode}"), [*common(task), *flags, *reference],
                                          args.reuse)
    print(f"\nwall minutes of the stages run now: {json.dumps({'/'.join(k): v for k, v in minutes.items() if v})}")
    report(args, out)


def report(args, out) -> None:
    tasks = args.report_tasks if args.report_tasks is not None else list(dict.fromkeys([*args.tasks,
                                                                                       *args.student_tasks]))
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    print(f"\nMachine: {model}, {os.cpu_count()} cores, torch {torch.__version__}, transformers "
          f"{transformers.__version__}, python {sys.version.split()[0]}; seed {args.seed}. Scores x100.\n")
    summary = {}
    lines = ["| task (metric) | train / eval examples | epochs, lr, batch, tokens | teacher | best constant |",
             "|---|---|---|---|---|"]
    for task in tasks:
        path = os.path.join(out(task, "teacher"), RESULTS_NAME)
        if not os.path.isfile(path):
            lines.append(f"| {task} | not run | | | |")
            continue
        result = load_results(out(task, "teacher"))
        recipe, data = result["recipe"], result["data"]
        eval_examples = sum(data["eval_examples"].values())
        source = (f"{task} dev.tsv split {args.split_fraction:g}/{1 - args.split_fraction:g}, seed {args.seed}"
                  if task in DEV_ONLY else f"{task} train.tsv / dev.tsv")
        evaluation = (split_dev(task, args.data_dir, args.split_dir, args.split_fraction, args.seed)
                      if task in DEV_ONLY else args.data_dir)
        constant, what = constant_score(task, evaluation)
        summary[task] = {"teacher": result["student"]["score"], "constant": constant, "constant_is": what,
                         "train_examples": data["train_examples"], "eval_examples": eval_examples, "source": source,
                         "epochs": recipe["num_train_epochs"], "learning_rate": recipe["learning_rate"],
                         "batch": recipe["per_device_train_batch_size"], "max_seq_length": data["max_seq_length"],
                         "steps": result["train"].get("global_step"),
                         "train_minutes": round(result["train"]["train_runtime"] / 60, 1)}
        lines.append(f"| {task} ({METRIC[task]}) | {data['train_examples']:,} / {eval_examples:,} | "
                     f"{recipe['num_train_epochs']:g}, {recipe['learning_rate']:g}, "
                     f"{recipe['per_device_train_batch_size']}, {data['max_seq_length']} | "
                     f"{100 * result['student']['score']:.2f} | {100 * constant:.2f} ({what}) |")
    print("Teachers (recipes/glue/teacher.yaml, per-task settings):\n")
    print("\n".join(lines))
    lines = ["| task | teacher (6L) | intermediate epochs / prediction epochs, steps | default mode (3L) | "
             "`--reference tinybert` (3L) |", "|---|---|---|---|---|"]
    for task in args.student_tasks if args.report_tasks is None else [t for t in tasks if t in args.student_tasks]:
        paths = {mode: out(task, f"prediction-{mode}") for mode in MODES}
        if not all(os.path.isfile(os.path.join(p, RESULTS_NAME)) for p in [*paths.values(), out(task, "teacher")]):
            lines.append(f"| {task} | not run | | | |")
            continue
        teacher = load_results(out(task, "teacher"))["student"]["score"]
        cells, steps = [], []
        for mode, path in paths.items():
            result = load_results(path)
            first = load_results(out(task, f"intermediate-{mode}"))
            score = result["student"]["score"]
            summary.setdefault(f"{task}-students", {})[mode] = {
                "score": score, "retention": score / teacher,
                "intermediate_steps": first["train"].get("global_step"), "prediction_steps": result["train"].get("global_step"),
                "intermediate_loss": first["train"].get("train_loss"),
                "train_minutes": [round(first["train"]["train_runtime"] / 60, 1),
                                  round(result["train"]["train_runtime"] / 60, 1)]}
            steps.append(f"{first['train'].get('global_step')}+{result['train'].get('global_step')}")
            cells.append(f"{100 * score:.2f} ({100 * score / teacher:.1f}%)")
        epochs = (f"{load_results(out(task, 'intermediate-default'))['recipe']['num_train_epochs']:g} / "
                  f"{load_results(paths['default'])['recipe']['num_train_epochs']:g}, {' vs '.join(steps)}")
        lines.append(f"| {task} ({METRIC[task]}) | {100 * teacher:.2f} | {epochs} | {cells[0]} | {cells[1]} |")
    print("\nTinyBERT-style students, default mode vs --reference tinybert (retention = student / teacher):\n")
    print("\n".join(lines))
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "summary.json"), "w") as file:
        json.dump(summary, file, indent=2)


if __name__ == "__main__":
    main()
