"""`export_model` and `benchmark_export`: the Python side of `hf-distill export` and `hf-distill benchmark`.

The steps both backends share live here (loading, the ONNX trace, parity, accuracy, latency, the report); the
ONNX Runtime files are written here too, the OpenVINO ones by `openvino_exporter.py`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .backend import REPORT_NAMES, resolve_exporter
from .latency import DEFAULT_SHAPES, measure_latencies
from .onnx_export import (
    DEFAULT_OPSET,
    ONNX_FP32_FILE,
    ONNX_INT8_FILE,
    ExportError,
    ModelSpec,
    copy_side_files,
    export_to_onnx,
    load_preprocessor,
    load_pytorch_model,
    optimize_onnx,
    resolve_model_spec,
)
from .openvino_backend import OPENVINO_FP32_FILE, OPENVINO_INT8_FILE
from .ort_config import save_ort_config
from .quantization import detect_preset, quantization_config, quantize_dynamic_onnx, quantize_static_onnx
from .report import (
    BACKEND_VARIANTS,
    BACKENDS,
    format_table,
    machine_info,
    new_report,
    pytorch_size_mb,
    read_report,
    size_mb,
    speedup,
    write_report,
)
from .runners import OnnxRuntimeRunner, TorchRunner
from .verification import (
    DEFAULT_TOLERANCE,
    SAMPLE_SENTENCES,
    ParityError,
    check_parity,
    evaluate_variants,
    synthetic_feeds,
    text_feeds,
)

logger = logging.getLogger(__name__)

AUTO_QUANTIZATION = {"with calibration data": "static", "without": "dynamic"}
"""What `quantize="auto"` (`--quantize` without a value) runs, on either backend: static INT8 where the task's
training data can calibrate it (`task_name`), else dynamic. Static kept accuracy best on both backends (ONNX
Runtime: +0.57 / +0.35 / -0.21 points vs PyTorch fp32 on SST-2 / MRPC / IMDB, dynamic -0.34 / -0.22 / -0.14;
OpenVINO with NNCF: +0.23 / +0.03 / +0.02) and OpenVINO's is the fastest path (docs/benchmark_history.md,
"OpenVINO and INT8 paths")."""
INT8_WARNING_POINTS = 1.0
"""How many points (x100) an INT8 variant may score below fp32 on the task's evaluation data before the export warns
(static and dynamic INT8 usually land within a few tenths; see `AUTO_QUANTIZATION`)."""
DEFAULT_OUTPUT_SUBDIR = {"onnxruntime": "onnx", "openvino": "openvino"}
"""The export folder inside the model folder when `output_dir` is not given."""
OPENVINO_CALIBRATION_PADDING = "longest"
"""NNCF calibrates on batch-1 examples at their own length (no padding): measured as accurate as padding to
`max_seq_length` on SST-2 and IMDB and 0.2 points better on MRPC (docs/benchmark_history.md, "OpenVINO and INT8
paths")."""


def _set_threads(threads: Optional[int]) -> int:
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def _parity_feeds(spec: ModelSpec, model, preprocessor, runner, texts, max_length: int) -> dict:
    if spec.modality == "vision":
        return synthetic_feeds(runner.input_names, model, batch_size=4, sequence_length=0)
    feeds = text_feeds(preprocessor, texts, max_length=max_length)
    return feeds


def _load_task(task_name: str, preprocessor, data_dir, train_file, validation_file, max_seq_length: int,
               calibration_samples: int, max_eval_samples: Optional[int], seed: int):
    from ..tasks.arguments import DataArguments
    from ..tasks.data import load_task_data

    data_args = DataArguments(task_name=task_name, data_dir=data_dir, train_file=train_file,
                              validation_file=validation_file, max_seq_length=max_seq_length,
                              max_train_samples=max(calibration_samples, 1), max_eval_samples=max_eval_samples)
    return load_task_data(data_args, preprocessor, seed=seed)


def _calibration_feeds(dataset, input_names, tokenizer, max_length: int, batch_size: int = 8,
                       padding: str = "max_length") -> list[dict]:
    """Calibration batches, padded to `max_length` (the shape the model is served and benchmarked at) by default,
    or to each batch's longest sequence (`padding="longest"`)."""
    feeds = []
    for start in range(0, len(dataset), batch_size):
        rows = dataset[start:start + batch_size]
        features = [{name: rows[name][i] for name in input_names if name in rows}
                    for i in range(len(rows[input_names[0]]))]
        padded = tokenizer.pad(features, padding=padding, max_length=max_length, return_tensors="np")
        feeds.append({name: np.asarray(padded[name], dtype=np.int64) for name in input_names})
    return feeds


def export_model(
    model_dir: str | os.PathLike,
    output_dir: Optional[str | os.PathLike] = None,
    quantize: Optional[str] = None,
    *,
    backend: str = "onnxruntime",
    task: str = "auto",
    tower: Optional[str] = None,
    exporter: str = "auto",
    opset: int = DEFAULT_OPSET,
    optimization_level: Optional[str] = "O2",
    preset: str = "auto",
    per_channel: bool = True,
    smooth_quant_alpha: Optional[float] = None,
    fast_bias_correction: bool = True,
    ignored_scope: Sequence[str] = (),
    task_name: Optional[str] = None,
    data_dir: Optional[str] = None,
    train_file: Optional[str] = None,
    validation_file: Optional[str] = None,
    calibration_samples: Optional[int] = None,
    max_eval_samples: Optional[int] = None,
    max_seq_length: int = 128,
    tolerance: float = DEFAULT_TOLERANCE,
    latency: bool = True,
    latency_runs: int = 10,
    threads: Optional[int] = None,
    seed: int = 42,
    verbose: bool = True,
) -> dict:
    """Exports a saved model for CPU serving (ONNX Runtime or OpenVINO, optionally INT8), verifies it and writes
    `export_report.json`.

    With `backend="onnxruntime"` the folder loads with `onnxruntime.InferenceSession` and, where optimum-onnx is
    installed, with `optimum.onnxruntime.ORTModelFor<Task>.from_pretrained(output_dir)` (`file_name=
    "model_quantized.onnx"` for the int8 model). With `backend="openvino"` it holds `openvino_model.xml` / `.bin`
    (fp32) and `openvino_model_int8.xml` / `.bin`: `openvino.Core().read_model` loads them and, where optimum-intel
    is installed, `optimum.intel.OVModelFor<Task>.from_pretrained(output_dir)` (`file_name=
    "openvino_model_int8.xml"` for INT8). Either folder holds the config and tokenizer.

    Args:
        model_dir (`str` or `os.PathLike`): A folder written by `save_pretrained` (e.g. `hf-distill train`'s output).
        output_dir (`str` or `os.PathLike`, *optional*): Defaults to `<model_dir>/onnx` (ONNX Runtime) or
            `<model_dir>/openvino` (OpenVINO).
        quantize (`str`, *optional*): INT8 quantization: `"dynamic"` (no calibration data: ONNX Runtime's dynamic
            quantization, or OpenVINO INT8 weights with activations quantized at run time), `"static"`
            (calibrated on the task's training data: ONNX Runtime's QDQ MatMuls, or NNCF's post-training
            quantization), or `"auto"`: static where `task_name` gives calibration data, else dynamic (the most
            accurate path measured on both backends, `AUTO_QUANTIZATION`); on ONNX Runtime, a static model that
            scores more than `INT8_WARNING_POINTS` below fp32 is quantized dynamically too, and the better one is
            kept. `None` exports fp32 only.
        backend (`str`, defaults to `"onnxruntime"`): `"onnxruntime"` or `"openvino"` (needs
            `pip install "hf-distill[openvino]"`).
        task (`str`, defaults to `"auto"`): Optimum task; read from the config's `architectures` by default.
        tower (`str`, *optional*): `"text"` or `"vision"` to export one tower of a CLIP dual encoder.
        exporter (`str`, defaults to `"auto"`): What writes the ONNX graph (which OpenVINO converts too):
            `"optimum"` (optimum's exporter and `ORTOptimizer`; needs optimum-onnx, transformers < 4.58),
            `"torch"` (`torch.onnx.export`; any transformers version), or `"auto"`: optimum where it imports.
        opset (`int`, defaults to 17): ONNX opset.
        optimization_level (`str`, *optional*, defaults to `"O2"`): ONNX Runtime graph optimisation: `"O1"`
            (basic), `"O2"` (transformer fusions, no approximation), `"O3"` (adds the GELU approximation), or `None`.
            OpenVINO optimises the graph itself when it compiles it; the option does not apply there.
        preset (`str`, defaults to `"auto"`): ONNX Runtime: instruction set of the int8 kernels (`avx512_vnni`,
            `avx512`, `avx2`, `arm64`); `"auto"` reads this machine's.
        per_channel (`bool`, defaults to `True`): ONNX Runtime: per-channel weight scales (per-tensor loses
            accuracy). OpenVINO's are always per channel.
        smooth_quant_alpha (`float`, *optional*): OpenVINO static INT8: SmoothQuant's strength on the MatMuls (NNCF's
            0.95 by default; negative turns it off).
        fast_bias_correction (`bool`, defaults to `True`): OpenVINO static INT8: NNCF's fast bias correction;
            `False` runs the slower, layer-by-layer one.
        ignored_scope (`Sequence[str]`, defaults to `()`): OpenVINO INT8: regular expressions of node names NNCF
            keeps in floating point (sensitive layers).
        task_name (`str`, *optional*): A GLUE task or `imdb`: its evaluation split scores PyTorch fp32 and the
            export's fp32 and int8 variants, and its training split calibrates static quantization.
        data_dir, train_file, validation_file (`str`, *optional*): Where the task's data is (as in recipes).
        calibration_samples (`int`, *optional*): Training examples that calibrate static quantization (default 128
            for ONNX Runtime, 300 for OpenVINO, NNCF's own default).
        max_eval_samples (`int`, *optional*): Score on a seeded subset of this size.
        max_seq_length (`int`, defaults to 128): Truncation length, and the padded length of calibration batches.
        tolerance (`float`, defaults to 1e-4): Largest allowed |fp32 export - PyTorch| over all outputs.
        latency (`bool`, defaults to `True`): Measure latency at batch 1 and 32, sequence 128.
        latency_runs (`int`, defaults to 10): Timed runs per variant and shape; the median is reported.
        threads (`int`, *optional*): Threads for PyTorch and the backend (PyTorch's default when `None`).
        seed (`int`, defaults to 42): Seed of the data subsets.
        verbose (`bool`, defaults to `True`): Print the table at the end.

    Returns:
        `dict`: The report written to `<output_dir>/export_report.json`.

    Raises:
        ExportError: For a folder that is not a model, corrupt or mismatched weights or tokenizer, bad options,
            `exporter="optimum"` where optimum-onnx does not import, or `backend="openvino"` where OpenVINO (or,
            for INT8, NNCF) does not.
        ParityError: When the fp32 export's outputs differ from PyTorch by more than `tolerance` (the report is
            still written, with `parity.passed = false`).
    """
    if backend not in BACKENDS:
        raise ExportError(f"backend={backend!r}: choose one of {', '.join(BACKENDS)}.")
    model_dir = Path(model_dir).expanduser()
    output_dir = Path(output_dir).expanduser() if output_dir is not None else model_dir / DEFAULT_OUTPUT_SUBDIR[backend]
    automatic = quantize == "auto"
    quantize = resolve_quantization(quantize, task_name)
    if quantize not in (None, "dynamic", "static"):
        raise ExportError(f"quantize={quantize!r}: choose 'dynamic', 'static', 'auto' or None.")
    if task_name is None and (train_file is not None or validation_file is not None):
        raise ExportError("train_file / validation_file need task_name: the task names the text columns, labels and "
                          "metric, e.g. `--task_name sst2 --calibration-data calibration.csv`.")
    if quantize == "static" and task_name is None:
        raise ExportError("Static quantization calibrates on the task's training data: pass task_name (and data_dir "
                          "or train_file), e.g. `--quantize static --task_name sst2 --data_dir ../shared/data/glue`.")
    if optimization_level is not None and optimization_level not in ("O1", "O2", "O3"):
        raise ExportError(f"optimization_level={optimization_level!r}: choose O1, O2, O3 or none (O4 is GPU-only).")
    if output_dir.resolve() == model_dir.resolve():
        raise ExportError("output_dir must differ from model_dir (the export writes its own config.json).")
    nncf_options = None
    if backend == "openvino":
        from .openvino_backend import require_openvino

        require_openvino()
        if quantize is not None:
            from .nncf_quantization import nncf_settings, require_nncf

            require_nncf()
            nncf_options = nncf_settings(quantize, smooth_quant_alpha=smooth_quant_alpha,
                                         fast_bias_correction=fast_bias_correction, ignored_scope=ignored_scope)
    if calibration_samples is None:
        calibration_samples = 300 if backend == "openvino" else 128
    exporter = resolve_exporter(exporter)
    spec = resolve_model_spec(model_dir, task=task, tower=tower)
    quant_config = None
    if backend == "onnxruntime":
        if preset == "auto":
            preset = detect_preset()
        quant_config = quantization_config(quantize, preset, per_channel) if quantize else None
    threads = _set_threads(threads)

    model = load_pytorch_model(model_dir, spec)
    preprocessor = load_preprocessor(model_dir, spec, model)
    task_data = None
    if task_name is not None:
        if spec.modality != "text":
            raise ExportError("task_name evaluates text classifiers; it does not apply to a vision tower.")
        task_data = _load_task(task_name, preprocessor, data_dir, train_file, validation_file, max_seq_length,
                               calibration_samples if quantize == "static" else 1, max_eval_samples, seed)

    report = new_report(str(model_dir), spec.task, opset, exporter=REPORT_NAMES[exporter], backend=backend)
    fp32_variant, int8_variant = BACKEND_VARIANTS[backend]
    output_dir.mkdir(parents=True, exist_ok=True)
    for stale in _stale_files(backend):
        if (output_dir / stale).exists():
            (output_dir / stale).unlink()
    with tempfile.TemporaryDirectory(prefix="hf-distill-export-") as scratch:
        raw_dir = Path(scratch) / "raw"
        export_to_onnx(model, spec, preprocessor, raw_dir, opset=opset, exporter=exporter)
        if backend == "openvino":
            from .openvino_exporter import write_openvino_fp32

            ov_model, fp32_runner = write_openvino_fp32(raw_dir, output_dir, threads)
            report["files"][fp32_variant] = OPENVINO_FP32_FILE
        else:
            report["optimization_level"] = optimize_onnx(raw_dir, output_dir, optimization_level, exporter=exporter)
            copy_side_files(raw_dir, output_dir)
            fp32_runner = OnnxRuntimeRunner(output_dir / ONNX_FP32_FILE, threads)
            report["files"][fp32_variant] = ONNX_FP32_FILE

        parity = check_parity(model, fp32_runner, _parity_feeds(spec, model, preprocessor, fp32_runner,
                                                                SAMPLE_SENTENCES, max_seq_length))
        report["parity"] = {"max_abs_diff": parity["max_abs_diff"], "tolerance": tolerance,
                            "passed": parity["max_abs_diff"] <= tolerance, "num_samples": parity["num_samples"]}
        if not report["parity"]["passed"]:
            write_report(report, output_dir)
            name = "OpenVINO" if backend == "openvino" else "ONNX"
            fix = ("another opset (`--opset`) or the other exporter (`--exporter`)" if backend == "openvino" else
                   "optimization_level=None (`--optimization_level none`), another opset or the other exporter "
                   "(`--exporter`)")
            raise ParityError(
                f"The {name} export in {output_dir} does not match PyTorch: max |diff| {parity['max_abs_diff']:.3e} > "
                f"tolerance {tolerance:.0e} (per output: {parity['per_output']}). Try {fix}; the report is in "
                "export_report.json."
            )

        runners = {fp32_variant: fp32_runner}
        calibration_set = None
        if quantize == "static":
            calibration_set = task_data.train
            if calibration_set is None or len(calibration_set) == 0:
                raise ExportError(f"Task {task_name!r} has no training split to calibrate on; pass train_file.")
        if backend == "openvino" and quantize is not None:
            from .openvino_exporter import write_openvino_int8

            feeds = None
            if calibration_set is not None:
                feeds = _calibration_feeds(calibration_set, fp32_runner.input_names, preprocessor, max_seq_length,
                                           batch_size=1, padding=OPENVINO_CALIBRATION_PADDING)
            runners[int8_variant] = write_openvino_int8(ov_model, output_dir, nncf_options, feeds, threads)
            report["files"][int8_variant] = OPENVINO_INT8_FILE
            report["quantization"] = {"mode": quantize, "method": "nncf",
                                      "calibration_examples": len(feeds) if feeds else None,
                                      "nncf": {key: value for key, value in nncf_options.to_dict().items()
                                               if key not in ("mode", "subset_size")}}
            if quantize == "dynamic":
                report["quantization"]["nncf"] = {"weights": "int8_asym per channel",
                                                  "ignored_scope": list(nncf_options.ignored_scope)}
        elif quant_config is not None:
            int8_path = output_dir / ONNX_INT8_FILE
            if quantize == "dynamic":
                quantize_dynamic_onnx(output_dir / ONNX_FP32_FILE, int8_path, quant_config)
                calibration_examples = None
            else:
                feeds = _calibration_feeds(calibration_set, fp32_runner.input_names, preprocessor, max_seq_length)
                quantize_static_onnx(raw_dir / ONNX_FP32_FILE, int8_path, quant_config, feeds, Path(scratch))
                calibration_examples = len(calibration_set)
            report["files"][int8_variant] = ONNX_INT8_FILE
            report["quantization"] = {"mode": quantize, "preset": preset, "per_channel": per_channel,
                                      "calibration_examples": calibration_examples}
            runners[int8_variant] = OnnxRuntimeRunner(int8_path, threads)
        if backend == "onnxruntime":
            save_ort_config(output_dir, report["optimization_level"], quant_config, opset=opset, exporter=exporter)

    if backend == "openvino":
        report["inference_precision"] = {name: runner.precision for name, runner in runners.items()}
    if task_data is not None and spec.task == "text-classification" and task_data.evaluation:
        split, dataset = next(iter(task_data.evaluation.items()))
        predictors = {"pytorch_fp32": lambda feeds: _torch_logits(model, feeds)}
        for name, runner in runners.items():
            predictors[name] = (lambda r: lambda feeds: r.run(feeds)[0])(runner)
        scores = evaluate_variants(predictors, dataset, preprocessor, fp32_runner.input_names,
                                   task_data.compute_metrics, task_data.score)
        metric = task_data.metric_names[0] if len(task_data.metric_names) == 1 else "mean(" + ",".join(
            task_data.metric_names) + ")"
        report["accuracy"] = {"metric": metric, "eval_examples": len(dataset), "pytorch_fp32": scores["pytorch_fp32"],
                              fp32_variant: scores[fp32_variant], int8_variant: scores.get(int8_variant)}
        warning = int8_accuracy_warning(report["accuracy"], fp32_variant, int8_variant, report.get("quantization"))
        if warning and automatic and backend == "onnxruntime" and quantize == "static":
            _dynamic_fallback(output_dir, report, runners, preset, per_channel, threads, dataset, preprocessor,
                              fp32_runner.input_names, task_data, exporter, opset)
            warning = int8_accuracy_warning(report["accuracy"], fp32_variant, int8_variant, report["quantization"])
        if warning:
            report["accuracy"]["warning"] = warning
            logger.warning(warning)

    report["size_mb"] = {"pytorch_fp32": pytorch_size_mb(model_dir)}
    for variant in (fp32_variant, int8_variant):
        report["size_mb"][variant] = _variant_size(output_dir, report["files"][variant])
    if latency:
        report["latency_ms"], report["pytorch_attention"] = _latencies(model_dir, runners, spec, latency_runs)
        report["speedup_int8_vs_pytorch_batch_32"] = speedup(report["latency_ms"], int8_variant)
    report["machine"] = machine_info(threads, (backend,))
    write_report(report, output_dir)
    if verbose:
        print(format_table(report))
        print(f"wrote {output_dir / 'export_report.json'}")
    return report


def _dynamic_fallback(output_dir: Path, report: dict, runners: dict, preset: str, per_channel: bool,
                      threads: Optional[int], dataset, preprocessor, input_names: list[str], task_data, exporter: str,
                      opset: int) -> None:
    """`quantize="auto"` on ONNX Runtime, when static INT8 scored more than `INT8_WARNING_POINTS` below fp32:
    quantizes dynamically too and keeps whichever INT8 model scores higher. The report's `quantization` says which
    (`instead_of` holds static's score when dynamic is kept; `dynamic_score` is dynamic's when static is kept), and
    `runners`, the accuracy and `ort_config.json` follow the model kept."""
    dynamic_config = quantization_config("dynamic", preset, per_channel)
    candidate = output_dir / ("dynamic_" + ONNX_INT8_FILE)
    quantize_dynamic_onnx(output_dir / ONNX_FP32_FILE, candidate, dynamic_config)
    runner = OnnxRuntimeRunner(candidate, threads)
    score = evaluate_variants({"onnx_int8": lambda feeds: runner.run(feeds)[0]}, dataset, preprocessor, input_names,
                              task_data.compute_metrics, task_data.score)["onnx_int8"]
    static = {"mode": "static", "score": report["accuracy"]["onnx_int8"],
              "calibration_examples": report["quantization"]["calibration_examples"]}
    if score <= static["score"]:
        candidate.unlink()
        report["quantization"]["dynamic_score"] = score  # tried, and kept static
        return
    del runner
    os.replace(candidate, output_dir / ONNX_INT8_FILE)
    runners["onnx_int8"] = OnnxRuntimeRunner(output_dir / ONNX_INT8_FILE, threads)
    report["accuracy"]["onnx_int8"] = score
    report["quantization"] = {"mode": "dynamic", "preset": preset, "per_channel": per_channel,
                              "calibration_examples": None, "instead_of": static}
    save_ort_config(output_dir, report["optimization_level"], dynamic_config, opset=opset, exporter=exporter)
    logger.warning(f"quantize=auto: static INT8 scored {100 * static['score']:.2f}, dynamic {100 * score:.2f} "
                   f"(fp32 {100 * report['accuracy']['onnx_fp32']:.2f}); kept the dynamic model.")


def int8_accuracy_warning(accuracy: dict, fp32_variant: str, int8_variant: str,
                          quantization: Optional[dict] = None) -> Optional[str]:
    """One line naming an INT8 variant that scores more than `INT8_WARNING_POINTS` below fp32, and the fix; else None.

    Static INT8 can lose much more than its usual few tenths: a pruned MiniLM on MRPC lost 11 points statically
    (with 128 or 512 calibration examples, per channel or per tensor) and 0.1 dynamically (BENCHMARKS.md,
    "Compression: prune, distil, INT8").
    """
    fp32, int8 = accuracy.get(fp32_variant), accuracy.get(int8_variant)
    if fp32 is None or int8 is None:
        return None
    scale = 100.0 if max(abs(fp32), abs(int8)) <= 1.0 else 1.0
    drop = round((fp32 - int8) * scale, 6)
    if drop <= INT8_WARNING_POINTS:
        return None
    mode = (quantization or {}).get("mode")
    fix = ("export again with dynamic quantization (`--quantize dynamic`), or keep the fp32 model"
           if mode == "static" else "keep the fp32 model, or try static quantization with the task's data "
           "(`--quantize static --task_name ...`)")
    return (f"{int8_variant} scores {int8 * scale:.2f} against {fp32 * scale:.2f} for {fp32_variant} "
            f"({accuracy.get('metric')}, {drop:.1f} points lower): {fix}.")


def resolve_quantization(quantize: Optional[str], task_name: Optional[str]) -> Optional[str]:
    """The INT8 mode to run: `quantize`, with `"auto"` resolved to `"static"` where `task_name` gives calibration
    data and to `"dynamic"` otherwise (`AUTO_QUANTIZATION`)."""
    if quantize != "auto":
        return quantize
    return AUTO_QUANTIZATION["with calibration data" if task_name is not None else "without"]


def _stale_files(backend: str) -> tuple[str, ...]:
    if backend == "openvino":
        from .openvino_exporter import stale_files

        return stale_files()
    return ONNX_FP32_FILE, ONNX_INT8_FILE


def _variant_size(output_dir: Path, file_name: Optional[str]) -> Optional[float]:
    """Size on disk of one exported variant: the ONNX file with its external data, or the IR's `.xml` and `.bin`."""
    if not file_name:
        return None
    path = output_dir / file_name
    if path.suffix == ".xml":
        return size_mb([path, path.with_suffix(".bin")])
    return size_mb([path, output_dir / (file_name + "_data")])


def _torch_logits(model, feeds: dict) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model(**{name: torch.from_numpy(value) for name, value in feeds.items()}).logits.float().numpy()


def _latencies(model_dir: Path, runners: dict, spec: ModelSpec, runs: int, shapes=DEFAULT_SHAPES) -> tuple[dict, str]:
    """Latencies of the export `runners` and of the PyTorch model as a user loads it (default attention kernel).

    Returns:
        `tuple`: The `latency_ms` table and the PyTorch baseline's attention implementation (e.g. `"sdpa"`).
    """
    model = load_pytorch_model(model_dir, spec, attn_implementation=None)
    reference = next(iter(runners.values()))
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if max_positions:
        shapes = tuple((batch, min(length, max_positions)) for batch, length in shapes)
    timed = {"pytorch_fp32": TorchRunner(model, reference.input_names, reference.output_names), **runners}
    table = measure_latencies(timed, lambda b, s: synthetic_feeds(reference.input_names, model, b, s), shapes=shapes,
                              runs=runs, modality=spec.modality, image_size=getattr(model.config, "image_size", None))
    return table, model.config._attn_implementation


def benchmark_export(export_dir: str | os.PathLike, latency_runs: int = 10, threads: Optional[int] = None,
                     update_report: bool = True, verbose: bool = True) -> dict:
    """Measures latency again for an existing export, with every other runtime of its model (`benchmark.py`).

    Args:
        export_dir (`str` or `os.PathLike`): A folder written by `export_model` / `hf-distill export`.
        latency_runs (`int`, defaults to 10): Timed runs per variant and shape.
        threads (`int`, *optional*): Threads for PyTorch and the runtimes.
        update_report (`bool`, defaults to `True`): Write the new latencies into `export_report.json`.
        verbose (`bool`, defaults to `True`): Print the table.

    Returns:
        `dict`: The updated report of `export_dir`.
    """
    from .benchmark import benchmark_model

    export_dir = Path(export_dir).expanduser()
    report = read_report(export_dir)
    result = benchmark_model(report["source_model"], export_dirs=[export_dir], latency_runs=latency_runs,
                             threads=threads, update_reports=update_report, teacher=False, write_summary=False,
                             verbose=False)
    updated = result["reports"][str(export_dir)]
    if verbose:
        print(format_table(updated))
    return updated
