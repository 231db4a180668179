"""ONNX / INT8 export of a distilled student: size, latency and accuracy of PyTorch fp32, ONNX fp32 and INT8.

One line reproduces the table in BENCHMARKS.md (run from the repository root, ../shared beside it):

    python benchmarks/export.py --model_dir runs/glue/sst2/distilbert --task_name sst2 --data_dir ../shared/data/glue

It runs `hf_distill.export.export_model` once per quantization mode (dynamic, static) in this one process, so
every variant is timed on the same machine state; each export folder gets its own export_report.json
(`runs/export/<name>-<mode>/`), and the combined table is printed at the end. Latency is the median of
`--latency_runs` runs at batch 1 and 32, sequence 128 (padded), with `--threads` threads for PyTorch and ORT.
Without --model_dir it uses runs/glue/sst2/distilbert if present, else the offline demo student
(runs/demo/student-distilbert, written by `hf-distill demo`) scored on 800 held-out IMDB reviews.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hf_distill.export import export_model  # noqa: E402


def _defaults(options):
    if options.model_dir is not None:
        return
    if os.path.isdir("runs/glue/sst2/distilbert"):
        options.model_dir, options.task_name = "runs/glue/sst2/distilbert", options.task_name or "sst2"
        options.data_dir = options.data_dir or "../shared/data/glue"
    else:
        options.model_dir, options.task_name = "runs/demo/student-distilbert", options.task_name or "imdb"
        options.max_eval_samples = options.max_eval_samples or 800


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", default=None, help="The PyTorch student folder.")
    parser.add_argument("--task_name", default=None, help="GLUE task or imdb (accuracy and calibration data).")
    parser.add_argument("--data_dir", default=None, help="Local GLUE data (original layout).")
    parser.add_argument("--max_eval_samples", type=int, default=None)
    parser.add_argument("--modes", nargs="+", default=["dynamic", "static"], choices=("dynamic", "static"))
    parser.add_argument("--calibration_samples", type=int, default=128)
    parser.add_argument("--preset", default="auto")
    parser.add_argument("--latency_runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output_root", default="runs/export")
    options = parser.parse_args(argv)
    _defaults(options)
    name = os.path.basename(os.path.normpath(options.model_dir))
    reports = {}
    for mode in options.modes:
        output = os.path.join(options.output_root, f"{options.task_name}-{name}-{mode}")
        print(f"\n=== {mode} quantization -> {output}")
        reports[mode] = export_model(
            options.model_dir, output, quantize=mode, preset=options.preset, task_name=options.task_name,
            data_dir=options.data_dir, max_eval_samples=options.max_eval_samples,
            calibration_samples=options.calibration_samples, latency_runs=options.latency_runs,
            threads=options.threads,
        )

    first = reports[options.modes[0]]
    rows = [("pytorch fp32", first, "pytorch_fp32"), ("onnx fp32", first, "onnx_fp32")]
    rows += [(f"onnx int8 {mode}", report, "onnx_int8") for mode, report in reports.items()]
    accuracy = first["accuracy"] or {}
    metric = accuracy.get("metric", "metric")
    header = (f"{'variant':<20}{'size MB':>9}{'b1x128 ms':>11}{'b32x128 ms':>12}{'vs torch b32':>14}"
              f"{metric:>10}{'Δ points':>10}")
    print(f"\n{options.model_dir} ({options.task_name}, {accuracy.get('eval_examples', '?')} eval examples), "
          f"{first['machine']['cpu']}, {first['machine']['threads']} threads, median of {options.latency_runs} runs")
    print(header)
    print("-" * len(header))
    for label, report, key in rows:
        latency = report["latency_ms"] or {}
        b1 = latency.get("batch_1_seq_128", {}).get(key)
        b32 = latency.get("batch_32_seq_128", {}).get(key)
        torch_b32 = latency.get("batch_32_seq_128", {}).get("pytorch_fp32")
        score = (report["accuracy"] or {}).get(key)
        base = (report["accuracy"] or {}).get("pytorch_fp32")
        delta = f"{100 * (score - base):+.2f}" if score is not None and base is not None else "-"
        print(f"{label:<20}{report['size_mb'][key]:>9.1f}{b1:>11.1f}{b32:>12.1f}{torch_b32 / b32:>13.2f}x"
              f"{100 * score if score is not None else float('nan'):>10.2f}{delta:>10}")
    print("parity (max |ONNX fp32 - PyTorch|): " + ", ".join(
        f"{mode} run {report['parity']['max_abs_diff']:.1e}" for mode, report in reports.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
