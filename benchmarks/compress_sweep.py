"""Prune -> distil -> INT8 at several compression levels, beside a layer-dropping student, on real GLUE data.

For each level, one run of `recipes/compress/prune_distil_int8.yaml` (recipe family `compress`) from the same
fine-tuned all-MiniLM-L6-v2 teacher: importance on 32 x 16 training sentences, pruning, 0.5·task + 0.5·T²·KL
distillation (`--epochs`), ONNX + static INT8, and the benchmark that times the teacher, the student in PyTorch,
ONNX fp32 and INT8 in one run (batch 1 x 128, 32 x 128, and the real dev set in batches of 32 padded to their
longest). The timing runs after every model is trained, each run's models interleaved in one benchmark, so
training jobs do not share the CPU with it (`--reuse` keeps the trained runs and times them again). The layer-dropping student of the GLUE table (teacher layers 1, 3, 5 copied, DistilBERT-style recipe
`recipes/glue/distilbert.yaml`, the same epochs) is exported and timed the same way, for a comparison at equal
latency. Prints one table and writes `speed_accuracy.png` (accuracy against speed-up over the teacher at
32 x 128, PyTorch and INT8) and `sweep.json` into `--output_dir`.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/compress_sweep.py --teacher runs/narrow_student/sst2/teacher \
        --output_dir runs/compress_sweep
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/compress_sweep.py --task_name mrpc --teacher runs/mrpc/teacher \
        --output_dir runs/compress_sweep_mrpc

The teacher is any classifier folder fine-tuned on `--task_name` (e.g. the SST-2 one `benchmarks/narrow_student.py`
fine-tunes, or `hf-distill train recipes/glue/teacher.yaml --task_name mrpc --model_name_or_path <MiniLM-L6> ...`).
Sequences are cut at `--max_seq_length` (default: TinyBERT's per-task length, 64 for SST-2 and 128 for MRPC).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from hf_distill.cli import main as hf_distill  # noqa: E402
from hf_distill.compress.run import refresh_compress_report  # noqa: E402
from hf_distill.export import export_model  # noqa: E402
from hf_distill.export.benchmark import benchmark_model  # noqa: E402
from hf_distill.tasks.arguments import DataArguments  # noqa: E402
from hf_distill.export.report import cpu_name  # noqa: E402

DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "glue")
# name -> (heads kept of 12, FFN neurons kept of 1536, layers kept of 6)
LEVELS = {
    "heads8-ffn1024-6L": (8, 1024, 6),
    "heads6-ffn768-6L": (6, 768, 6),
    "heads6-ffn768-4L": (6, 768, 4),
    "heads4-ffn512-3L": (4, 512, 3),
}
SHAPE = "batch_32_seq_128"


def run(command: list[str]) -> None:
    print("hf-distill " + " ".join(command), flush=True)
    if hf_distill(command) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="A teacher folder fine-tuned on --task_name.")
    parser.add_argument("--task_name", default="sst2", help="A GLUE classification task (sst2, mrpc, ...).")
    parser.add_argument("--max_seq_length", type=int, default=None, help="Default: 64 for sst2 and cola, else 128.")
    parser.add_argument("--data_dir", default=DEFAULT_DATA)
    parser.add_argument("--output_dir", default="runs/compress_sweep")
    parser.add_argument("--levels", nargs="+", default=list(LEVELS)[:3], choices=list(LEVELS))
    parser.add_argument("--max_train_samples", type=int, default=4000)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--latency_runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no_layer_dropping", action="store_true", help="Skip the layer-dropping student.")
    parser.add_argument("--reuse", action="store_true", help="Keep the runs that already have a report.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = args.task_name
    length = args.max_seq_length or (64 if task in ("sst2", "cola") else 128)
    started = time.time()
    common = ["--task_name", task, "--data_dir", args.data_dir, "--max_train_samples", str(args.max_train_samples),
              "--num_train_epochs", str(args.epochs), "--teacher_model_name_or_path", args.teacher,
              "--max_seq_length", str(length), "--overwrite_output_dir", "true"]
    rows = {}
    for name in args.levels:
        heads, ffn, layers = LEVELS[name]
        out = os.path.join(args.output_dir, name)
        report_path = os.path.join(out, "compress_report.json")
        if not (args.reuse and os.path.isfile(report_path)):
            start = time.time()
            run(["train", os.path.join(ROOT, "recipes", "compress", "prune_distil_int8.yaml"), *common,
                 "--prune_num_attention_heads", str(heads), "--prune_intermediate_size", str(ffn),
                 "--prune_num_layers", str(layers), "--latency_runs", str(args.latency_runs), "--output_dir", out])
            print(f"{name}: {(time.time() - start) / 60:.1f} min", flush=True)
    dropping = None
    out = os.path.join(args.output_dir, "layer-dropping-1,3,5")
    if not args.no_layer_dropping:
        if not (args.reuse and os.path.isfile(os.path.join(out, "onnx", "export_report.json"))):
            run(["train", os.path.join(ROOT, "recipes", "glue", "distilbert.yaml"), *common, "--student_layers", "1,3,5",
                 "--student_num_layers", "3", "--eval_strategy", "no", "--save_strategy", "no", "--output_dir", out])
            export_model(out, quantize="auto", task_name=task, data_dir=args.data_dir, max_seq_length=length,
                         latency=False)
    # Timing, after every run is trained: each run's teacher, PyTorch, ONNX and INT8 in one interleaved benchmark.
    data_args = DataArguments(task_name=task, data_dir=args.data_dir, max_seq_length=length)
    for name in args.levels:
        rows[name] = refresh_compress_report(os.path.join(args.output_dir, name), data_args, teacher=args.teacher,
                                             latency_runs=args.latency_runs, threads=args.threads)
    if not args.no_layer_dropping:
        benchmark_model(out, teacher=args.teacher, task_name=task, data_dir=args.data_dir, max_seq_length=length,
                        latency_runs=args.latency_runs, threads=args.threads, verbose=False)
        with open(os.path.join(out, "benchmark_report.json")) as file:
            dropping = json.load(file)
        with open(os.path.join(out, "results.json")) as file:
            dropping["results"] = json.load(file)

    metric = next((r["benchmark_accuracy"]["metric"] for r in rows.values() if r.get("benchmark_accuracy")), "score")
    print(f"\nMachine: {cpu_name()}, {args.threads} threads; {(time.time() - started) / 60:.0f} min in all. {task} dev, "
          f"{metric} x 100; latency in ms at {SHAPE.replace('_', ' ')} (random tokens) and on the dev "
          "set in batches of 32 (padded to the longest).\n")
    print("| student | parameters | stage | score | retention | ms 1 x 128 | ms 32 x 128 | ms dev b32 | "
          "speed-up vs teacher at 32 x 128 |")
    print("|---|---|---|---|---|---|---|---|---|")
    points = []
    for name, report in rows.items():
        stages = {row["stage"]: row for row in report["stages"]}
        teacher = stages["teacher"]
        teacher_ms = (teacher.get("latency_ms") or {}).get(SHAPE)
        for label, row in stages.items():
            latency = row.get("latency_ms") or {}
            ms = latency.get(SHAPE)
            speed = teacher_ms / ms if teacher_ms and ms else None
            dev = next((v for k, v in latency.items() if k.startswith("dev_")), None)
            score = None if row["score"] is None else 100 * row["score"] if row["score"] <= 1 else row["score"]
            print(f"| {name} | {row['parameters']:,} | {label} | {score:.2f} | {row['retention_percent']:.1f}% | "
                  f"{_fmt(latency.get('batch_1_seq_128'))} | {_fmt(ms)} | {_fmt(dev)} | {_fmt(speed, 'x')} |")
            if speed and label != "teacher" and score is not None:
                points.append((name, label, speed, score))
    if dropping:
        results = dropping["results"]
        teacher_ms = dropping["latency_ms"][SHAPE].get("teacher_fp32")
        accuracy = dropping.get("accuracy") or {}
        teacher_score = 100 * accuracy["teacher_fp32"] if "teacher_fp32" in accuracy else None
        for variant in ("pytorch_fp32", "onnx_int8"):
            if variant not in accuracy:
                continue
            ms = dropping["latency_ms"][SHAPE].get(variant)
            speed = teacher_ms / ms if teacher_ms and ms else None
            dev = next((v.get(variant) for k, v in dropping["latency_ms"].items() if k.startswith("dev_")), None)
            score = 100 * accuracy[variant]
            print(f"| layer dropping (teacher layers 1,3,5) | {results['student']['parameters']:,} | {variant} | "
                  f"{score:.2f} | {100 * score / teacher_score:.1f}% | "
                  f"{_fmt(dropping['latency_ms']['batch_1_seq_128'].get(variant))} | {_fmt(ms)} | {_fmt(dev)} | "
                  f"{_fmt(speed, 'x')} |")
            points.append(("layer dropping", variant, speed, score))
    with open(os.path.join(args.output_dir, "sweep.json"), "w") as file:
        json.dump({"points": points, "levels": {n: LEVELS[n] for n in rows}}, file, indent=2)
    _plot(points, os.path.join(args.output_dir, "speed_accuracy.png"), f"{task} dev score ({metric})")


def _fmt(value, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{suffix}"


def _plot(points, path: str, ylabel: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'hf-distill[plots]').")
        return
    figure, axis = plt.subplots(figsize=(6, 4))
    for marker, keep in (("o", lambda label: "PyTorch" in label or label == "pytorch_fp32"),
                         ("s", lambda label: "INT8" in label or "int8" in label)):
        chosen = [(n, s, a) for n, label, s, a in points if keep(label)]
        axis.scatter([s for _, s, _ in chosen], [a for _, _, a in chosen], marker=marker,
                     label="PyTorch fp32" if marker == "o" else "ONNX INT8")
        for name, speed, accuracy in chosen:
            axis.annotate(name, (speed, accuracy), fontsize=6)
    axis.set_xlabel("speed-up over the teacher, 32 x 128")
    axis.set_ylabel(ylabel)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=150)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
