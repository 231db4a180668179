"""Argument parsers and handlers of `hf-distill export` and `hf-distill benchmark`.

The parsers import neither torch nor transformers (nor the ONNX or OpenVINO stacks), so `hf-distill export --help`
is instant.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from .backend import EXPORTERS
from .quantization import PRESETS

BACKENDS = ("onnxruntime", "openvino")


def export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-distill export",
        description="Export a saved model for CPU serving: to ONNX for ONNX Runtime (with Optimum where "
                    "optimum-onnx is installed, else with torch.onnx; graph optimisation O2) or to OpenVINO IR "
                    "(--backend openvino), optionally quantize it to INT8, check parity with PyTorch (max |diff| <= "
                    "1e-4 or the export fails), score it on the task's evaluation set, time it, and write "
                    "export_report.json.",
    )
    parser.add_argument("model_dir", help="A folder written by save_pretrained (e.g. hf-distill train's output_dir).")
    parser.add_argument("--backend", choices=BACKENDS, default="onnxruntime",
                        help="onnxruntime (default): model.onnx / model_quantized.onnx, loaded by "
                             "onnxruntime.InferenceSession and optimum's ORTModelFor*; openvino: openvino_model.xml / "
                             "openvino_model_int8.xml, loaded by openvino and optimum-intel's OVModelFor* (needs "
                             'pip install "hf-distill[openvino]").')
    parser.add_argument("--output", "--output_dir", dest="output_dir", default=None,
                        help="Export folder (default MODEL_DIR/onnx, or MODEL_DIR/openvino with --backend openvino).")
    parser.add_argument("--exporter", choices=EXPORTERS, default="auto",
                        help="optimum: optimum's exporter and ORTOptimizer (needs optimum-onnx, transformers < 4.58); "
                             "torch: torch.onnx.export and ONNX Runtime's own optimiser (any transformers); auto "
                             "(default): optimum where it imports, else torch. Both write the same folder.")
    parser.add_argument("--quantize", choices=("auto", "dynamic", "static"), nargs="?", const="auto", default=None,
                        help="INT8 quantization: dynamic (no calibration data), static (calibrated on the task's "
                             "training data; with OpenVINO, NNCF's post-training quantization), or auto (also "
                             "`--quantize` alone): static with --task_name, else dynamic, the most accurate path "
                             "measured on both backends.")
    parser.add_argument("--preset", choices=("auto", *PRESETS), default="auto",
                        help="ONNX Runtime: instruction set of the INT8 kernels (default: this machine's).")
    parser.add_argument("--per_tensor", action="store_true",
                        help="ONNX Runtime: per-tensor weight scales instead of per-channel (smaller, measurably less "
                             "accurate).")
    nncf = parser.add_argument_group("OpenVINO INT8 (NNCF)")
    nncf.add_argument("--smooth_quant_alpha", type=float, default=None,
                      help="SmoothQuant strength on the MatMuls of static quantization (default 0.95, NNCF's; "
                           "negative: off).")
    nncf.add_argument("--bias_correction", action="store_true",
                      help="NNCF's layer-by-layer bias correction instead of the fast one (slower to quantize).")
    nncf.add_argument("--ignored_scope", nargs="+", default=(), metavar="REGEX",
                      help="Node-name regular expressions NNCF keeps in floating point (sensitive layers).")
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
    data.add_argument("--calibration_samples", "--calibration-samples", type=int, default=None,
                      help="Training examples that calibrate static quantization (default 128 for ONNX Runtime, "
                           "300 for OpenVINO).")
    data.add_argument("--max_eval_samples", type=int, default=None, help="Score on a seeded subset of this size.")
    data.add_argument("--max_seq_length", type=int, default=128, help="Truncation length (default 128).")
    timing = parser.add_argument_group("checks and timing")
    timing.add_argument("--tolerance", type=float, default=1e-4, help="Parity tolerance (default 1e-4).")
    timing.add_argument("--no_latency", action="store_true", help="Skip the latency measurement.")
    timing.add_argument("--latency_runs", type=int, default=10, help="Timed runs per variant and shape (median).")
    timing.add_argument("--threads", type=int, default=None, help="Threads for PyTorch and the backend.")
    return parser


def benchmark_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-distill benchmark",
        description="Time every runtime of a model in one interleaved run: PyTorch fp32, the teacher, and the "
                    "fp32 and INT8 variants of each export found (MODEL_DIR/onnx, MODEL_DIR/openvino) whose runtime "
                    "is installed, at batch 1 x 128 and 32 x 128 and, with --task_name, over the evaluation set in "
                    "real batches padded to their longest sequence (with each variant's task metric). Writes "
                    "MODEL_DIR/benchmark_report.json and updates each export's export_report.json.",
    )
    parser.add_argument("path", help="The model folder (hf-distill train's output_dir), or one of its export folders.")
    parser.add_argument("--export", dest="exports", nargs="+", default=None, metavar="EXPORT_DIR",
                        help="The export folders to time (default: those in MODEL_DIR, one per backend).")
    parser.add_argument("--teacher", default=None,
                        help="The teacher folder to time (default: the teacher in the run's results.json, when it is "
                             "a local folder).")
    parser.add_argument("--no_teacher", action="store_true", help="Time no teacher.")
    data = parser.add_argument_group("real batches (as in recipes)")
    data.add_argument("--task_name", default=None, help="GLUE task or 'imdb': time and score its evaluation set.")
    data.add_argument("--data_dir", default=None, help="Local GLUE data in the original layout.")
    data.add_argument("--validation_file", default=None, help="CSV/JSON evaluation file.")
    data.add_argument("--max_eval_samples", type=int, default=None, help="Use a seeded subset of this size.")
    data.add_argument("--max_seq_length", type=int, default=128, help="Truncation length (default 128).")
    parser.add_argument("--latency_runs", type=int, default=10, help="Timed runs per variant and shape (median).")
    parser.add_argument("--dataset_runs", type=int, default=3,
                        help="Timed passes over the evaluation set per variant (median; default 3).")
    parser.add_argument("--threads", type=int, default=None, help="Threads for PyTorch and every runtime.")
    parser.add_argument("--print_only", action="store_true",
                        help="Print the stored table (of an export folder, or MODEL_DIR/benchmark_report.json) "
                             "without measuring.")
    return parser


def run_export_command(argv: Sequence[str]) -> int:
    from .exporter import export_model

    options = export_parser().parse_args(argv)
    export_model(
        options.model_dir,
        options.output_dir,
        quantize=options.quantize,
        backend=options.backend,
        smooth_quant_alpha=options.smooth_quant_alpha,
        fast_bias_correction=not options.bias_correction,
        ignored_scope=tuple(options.ignored_scope),
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
    import json
    from pathlib import Path

    from .benchmark import BENCHMARK_FILE, benchmark_model, format_benchmark
    from .onnx_export import REPORT_FILE, ExportError
    from .report import format_table, read_report

    options = benchmark_parser().parse_args(argv)
    if options.print_only:
        path = Path(options.path)
        if (path / REPORT_FILE).is_file() or not (path / BENCHMARK_FILE).is_file():
            print(format_table(read_report(path)))
        else:
            print(format_benchmark(json.loads((path / BENCHMARK_FILE).read_text(encoding="utf-8"))))
        return 0
    if options.teacher and options.no_teacher:
        raise ExportError("--teacher and --no_teacher contradict each other: pass one.")
    benchmark_model(
        options.path,
        export_dirs=options.exports,
        teacher=False if options.no_teacher else options.teacher,
        task_name=options.task_name,
        data_dir=options.data_dir,
        validation_file=options.validation_file,
        max_eval_samples=options.max_eval_samples,
        max_seq_length=options.max_seq_length,
        latency_runs=options.latency_runs,
        dataset_runs=options.dataset_runs,
        threads=options.threads,
    )
    return 0
