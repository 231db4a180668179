"""Argument parsers and handlers of `hf-distill export` and `hf-distill benchmark`.

The parsers import neither torch nor transformers (nor the ONNX stack), so `hf-distill export --help` is instant.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from .backend import EXPORTERS
from .quantization import PRESETS


def export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-distill export",
        description="Export a saved model to ONNX (with Optimum where optimum-onnx is installed, else with "
                    "torch.onnx; ONNX Runtime graph optimisation O2), optionally quantize it to INT8, check parity "
                    "with PyTorch (max |diff| <= 1e-4 or the export fails), score it on the task's evaluation set, "
                    "time it, and write export_report.json.",
    )
    parser.add_argument("model_dir", help="A folder written by save_pretrained (e.g. hf-distill train's output_dir).")
    parser.add_argument("--output", "--output_dir", dest="output_dir", default=None,
                        help="Export folder (default MODEL_DIR/onnx); onnxruntime.InferenceSession and optimum's "
                             "ORTModelFor*.from_pretrained load it.")
    parser.add_argument("--exporter", choices=EXPORTERS, default="auto",
                        help="optimum: optimum's exporter and ORTOptimizer (needs optimum-onnx, transformers < 4.58); "
                             "torch: torch.onnx.export and ONNX Runtime's own optimiser (any transformers); auto "
                             "(default): optimum where it imports, else torch. Both write the same folder.")
    parser.add_argument("--quantize", choices=("dynamic", "static"), default=None,
                        help="INT8 quantization: dynamic, or static calibrated on the task's training data.")
    parser.add_argument("--preset", choices=("auto", *PRESETS), default="auto",
                        help="Instruction set of the INT8 kernels (default: this machine's).")
    parser.add_argument("--per_tensor", action="store_true",
                        help="Per-tensor weight scales instead of per-channel (smaller, measurably less accurate).")
    parser.add_argument("--optimization_level", default="O2", choices=("O1", "O2", "O3", "none"),
                        help="ONNX Runtime graph optimisation: O1 basic, O2 (default) transformer fusions without "
                             "approximation, O3 adds the GELU approximation.")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17).")
    parser.add_argument("--task", default="auto",
                        help="Optimum task (text-classification, fill-mask, feature-extraction, ...); default: "
                             "read from config.json.")
    parser.add_argument("--tower", choices=("text", "vision"), default=None,
                        help="Which tower of a CLIP dual encoder to export.")
    data = parser.add_argument_group("evaluation and calibration data (as in recipes)")
    data.add_argument("--task_name", default=None, help="GLUE task or 'imdb': scores fp32 vs int8 on its dev split.")
    data.add_argument("--data_dir", default=None, help="Local GLUE data in the original layout.")
    data.add_argument("--train_file", "--calibration_data", "--calibration-data", dest="train_file", default=None,
                      help="CSV/JSON file with the task's columns whose examples calibrate static quantization "
                           "(needs --task_name for the columns); default: the task's training split.")
    data.add_argument("--validation_file", default=None, help="CSV/JSON evaluation file.")
    data.add_argument("--calibration_samples", "--calibration-samples", type=int, default=128,
                      help="Training examples that calibrate static quantization (default 128).")
    data.add_argument("--max_eval_samples", type=int, default=None, help="Score on a seeded subset of this size.")
    data.add_argument("--max_seq_length", type=int, default=128, help="Truncation length (default 128).")
    timing = parser.add_argument_group("checks and timing")
    timing.add_argument("--tolerance", type=float, default=1e-4, help="Parity tolerance (default 1e-4).")
    timing.add_argument("--no_latency", action="store_true", help="Skip the latency measurement.")
    timing.add_argument("--latency_runs", type=int, default=10, help="Timed runs per variant and shape (median).")
    timing.add_argument("--threads", type=int, default=None, help="Threads for PyTorch and ONNX Runtime.")
    return parser


def benchmark_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-distill benchmark",
        description="Time an existing export again (PyTorch fp32, ONNX fp32, ONNX int8 at batch 1 and 32, "
                    "sequence 128), print the table and update its export_report.json.",
    )
    parser.add_argument("export_dir", help="A folder written by `hf-distill export`.")
    parser.add_argument("--latency_runs", type=int, default=10, help="Timed runs per variant and shape (median).")
    parser.add_argument("--threads", type=int, default=None, help="Threads for PyTorch and ONNX Runtime.")
    parser.add_argument("--print_only", action="store_true", help="Print the stored table without measuring.")
    return parser


def run_export_command(argv: Sequence[str]) -> int:
    from .exporter import export_model

    options = export_parser().parse_args(argv)
    export_model(
        options.model_dir,
        options.output_dir,
        quantize=options.quantize,
        task=options.task,
        tower=options.tower,
        exporter=options.exporter,
        opset=options.opset,
        optimization_level=None if options.optimization_level == "none" else options.optimization_level,
        preset=options.preset,
        per_channel=not options.per_tensor,
        task_name=options.task_name,
        data_dir=options.data_dir,
        train_file=options.train_file,
        validation_file=options.validation_file,
        calibration_samples=options.calibration_samples,
        max_eval_samples=options.max_eval_samples,
        max_seq_length=options.max_seq_length,
        tolerance=options.tolerance,
        latency=not options.no_latency,
        latency_runs=options.latency_runs,
        threads=options.threads,
    )
    return 0


def run_benchmark_command(argv: Sequence[str]) -> int:
    from .exporter import benchmark_export
    from .report import format_table, read_report

    options = benchmark_parser().parse_args(argv)
    if options.print_only:
        print(format_table(read_report(options.export_dir)))
        return 0
    benchmark_export(options.export_dir, latency_runs=options.latency_runs, threads=options.threads)
    return 0
