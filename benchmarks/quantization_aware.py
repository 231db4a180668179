"""Quantization-aware distillation added to finished compress runs: post-training static INT8 against static INT8
after quantization-aware distillation (and dynamic INT8), on the same distilled students and the same dev set.

For each `--runs` folder (a finished `recipes/compress/prune_distil_int8.yaml` run, e.g. from
`benchmarks/compress_sweep.py`), step 4 of the compress runner: the distilled student trains on against the teacher
for `--epochs` with fake-quantized INT8 encoder linears (`hf_distill.compress.quantization_aware`) into
`<run>/quantization_aware`, is exported with static INT8 there, and the run's `compress_report.json` is written again
(`refresh_compress_report`, which times the run again). Dynamic INT8 of the distilled student is exported into a
temporary folder for the third column. The same as `--quantization_aware_epochs` in the recipe, without training the
pruned student again.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/quantization_aware.py --task_name mrpc --teacher runs/mrpc/teacher \
        --runs runs/compress_sweep_mrpc/heads8-ffn1024-6L runs/compress_sweep_mrpc/heads6-ffn768-4L --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from hf_distill.compress.run import (  # noqa: E402
    export_quantization_aware,
    refresh_compress_report,
    train_quantization_aware,
)
from hf_distill.export import export_model  # noqa: E402
from hf_distill.export.report import cpu_name, read_report  # noqa: E402
from hf_distill.recipes import parse_recipe  # noqa: E402

DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "glue")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="Finished compress run folders.")
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--task_name", default="sst2")
    parser.add_argument("--data_dir", default=DEFAULT_DATA)
    parser.add_argument("--max_seq_length", type=int, default=None, help="Default: 64 for sst2 and cola, else 128.")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--learning_rate", type=float, default=1e-5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    length = args.max_seq_length or (64 if args.task_name in ("sst2", "cola") else 128)
    rows = []
    for run in args.runs:
        started = time.time()
        model_args, data_args, compress_args, config = parse_recipe(
            os.path.join(ROOT, "recipes", "compress", "prune_distil_int8.yaml"),
            ["--task_name", args.task_name, "--data_dir", args.data_dir, "--max_seq_length", str(length),
             "--teacher_model_name_or_path", args.teacher, "--output_dir", run, "--quantize", "static",
             "--quantization_aware_epochs", str(args.epochs),
             "--quantization_aware_learning_rate", str(args.learning_rate), "--overwrite_output_dir", "true"])
        train_quantization_aware(model_args, data_args, compress_args, config)
        export_quantization_aware(data_args, config)
        minutes = (time.time() - started) / 60
        with tempfile.TemporaryDirectory() as folder:
            dynamic = export_model(run, output_dir=folder, quantize="dynamic", task_name=args.task_name,
                                   data_dir=args.data_dir, max_seq_length=length, latency=False, threads=args.threads,
                                   verbose=False)["accuracy"]
        post_training = read_report(os.path.join(run, "onnx"))
        qat = read_report(os.path.join(run, "quantization_aware", "onnx"))["accuracy"]
        refresh_compress_report(run, data_args, teacher=args.teacher, latency_runs=10, threads=args.threads)
        rows.append((os.path.basename(run.rstrip("/")), post_training["accuracy"], post_training["quantization"],
                     dynamic, qat, minutes))
    print(f"\nMachine: {cpu_name()}, {args.threads} threads. {args.task_name} dev, {rows[0][1]['metric']} x 100; "
          f"quantization-aware distillation: {args.epochs:g} epoch(s) at lr {args.learning_rate:g}.\n")
    print("| run | fp32 | post-training static INT8 (kept mode) | dynamic INT8 | static INT8 after QAD | QAD student fp32 "
          "| QAD + export minutes |")
    print("|---|---|---|---|---|---|---|")
    for name, accuracy, quantization, dynamic, qat, minutes in rows:
        static = (quantization.get("instead_of") or {}).get("score", accuracy["onnx_int8"])
        print(f"| {name} | {100 * accuracy['pytorch_fp32']:.2f} | {100 * static:.2f} ({quantization['mode']}) | "
              f"{100 * dynamic['onnx_int8']:.2f} | {100 * qat['onnx_int8']:.2f} | {100 * qat['pytorch_fp32']:.2f} | "
              f"{minutes:.1f} |")


if __name__ == "__main__":
    main()
