"""`export_model` and `benchmark_export`: the Python side of `hf-distill export` and `hf-distill benchmark`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional

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
from .ort_config import save_ort_config
from .quantization import detect_preset, quantization_config, quantize_dynamic_onnx, quantize_static_onnx
from .report import format_table, machine_info, new_report, pytorch_size_mb, read_report, size_mb, speedup, write_report
from .verification import (
    DEFAULT_TOLERANCE,
    SAMPLE_SENTENCES,
    ParityError,
    check_parity,
    create_session,
    evaluate_variants,
    synthetic_feeds,
    text_feeds,
)


def _set_threads(threads: Optional[int]) -> int:
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def _parity_feeds(spec: ModelSpec, model, preprocessor, session, texts, max_length: int) -> dict:
    if spec.modality == "vision":
        return synthetic_feeds(session, model, batch_size=4, sequence_length=0)
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


def _calibration_feeds(dataset, input_names, tokenizer, max_length: int, batch_size: int = 8) -> list[dict]:
    """Calibration batches padded to `max_length`, the shape the model is served and benchmarked at."""
    feeds = []
    for start in range(0, len(dataset), batch_size):
        rows = dataset[start:start + batch_size]
        features = [{name: rows[name][i] for name in input_names if name in rows}
                    for i in range(len(rows[input_names[0]]))]
        padded = tokenizer.pad(features, padding="max_length", max_length=max_length, return_tensors="np")
        feeds.append({name: np.asarray(padded[name], dtype=np.int64) for name in input_names})
    return feeds


def export_model(
    model_dir: str | os.PathLike,
    output_dir: Optional[str | os.PathLike] = None,
    quantize: Optional[str] = None,
    *,
    task: str = "auto",
    tower: Optional[str] = None,
    exporter: str = "auto",
    opset: int = DEFAULT_OPSET,
    optimization_level: Optional[str] = "O2",
    preset: str = "auto",
    per_channel: bool = True,
    task_name: Optional[str] = None,
    data_dir: Optional[str] = None,
    train_file: Optional[str] = None,
    validation_file: Optional[str] = None,
    calibration_samples: int = 128,
    max_eval_samples: Optional[int] = None,
    max_seq_length: int = 128,
    tolerance: float = DEFAULT_TOLERANCE,
    latency: bool = True,
    latency_runs: int = 10,
    threads: Optional[int] = None,
    seed: int = 42,
    verbose: bool = True,
) -> dict:
    """Exports a saved model to ONNX (and optionally INT8), verifies it and writes `export_report.json`.

    The folder it writes loads with `onnxruntime.InferenceSession` and, where optimum-onnx is installed, with
    `optimum.onnxruntime.ORTModelFor<Task>.from_pretrained(output_dir)` (`file_name="model_quantized.onnx"` for
    the int8 model); it holds the config and tokenizer. Both exporters write the same folder.

    Args:
        model_dir (`str` or `os.PathLike`): A folder written by `save_pretrained` (e.g. `hf-distill train`'s output).
        output_dir (`str` or `os.PathLike`, *optional*): Defaults to `<model_dir>/onnx`.
        quantize (`str`, *optional*): `"dynamic"` or `"static"` INT8 quantization; `None` exports fp32 only.
        task (`str`, defaults to `"auto"`): Optimum task; read from the config's `architectures` by default.
        tower (`str`, *optional*): `"text"` or `"vision"` to export one tower of a CLIP dual encoder.
        exporter (`str`, defaults to `"auto"`): `"optimum"` (optimum's exporter and `ORTOptimizer`; needs
            optimum-onnx, transformers < 4.58), `"torch"` (`torch.onnx.export` and ONNX Runtime's own transformer
            optimiser; any transformers version), or `"auto"`: optimum where it imports, else torch.
        opset (`int`, defaults to 17): ONNX opset.
        optimization_level (`str`, *optional*, defaults to `"O2"`): ONNX Runtime graph optimisation: `"O1"`
            (basic), `"O2"` (transformer fusions, no approximation), `"O3"` (adds the GELU approximation), or `None`.
        preset (`str`, defaults to `"auto"`): Instruction set of the int8 kernels (`avx512_vnni`, `avx512`,
            `avx2`, `arm64`); `"auto"` reads this machine's.
        per_channel (`bool`, defaults to `True`): Per-channel weight scales (per-tensor loses accuracy).
        task_name (`str`, *optional*): A GLUE task or `imdb`: its evaluation split scores PyTorch fp32, ONNX fp32
            and ONNX int8, and its training split calibrates static quantization.
        data_dir, train_file, validation_file (`str`, *optional*): Where the task's data is (as in recipes).
        calibration_samples (`int`, defaults to 128): Training examples that calibrate static quantization.
        max_eval_samples (`int`, *optional*): Score on a seeded subset of this size.
        max_seq_length (`int`, defaults to 128): Truncation length, and the padded length of calibration batches.
        tolerance (`float`, defaults to 1e-4): Largest allowed |ONNX fp32 - PyTorch| over all outputs.
        latency (`bool`, defaults to `True`): Measure latency at batch 1 and 32, sequence 128.
        latency_runs (`int`, defaults to 10): Timed runs per variant and shape; the median is reported.
        threads (`int`, *optional*): Threads for PyTorch and ONNX Runtime (PyTorch's default when `None`).
        seed (`int`, defaults to 42): Seed of the data subsets.
        verbose (`bool`, defaults to `True`): Print the table at the end.

    Returns:
        `dict`: The report written to `<output_dir>/export_report.json`.

    Raises:
        ExportError: For a folder that is not a model, corrupt or mismatched weights or tokenizer, bad options, or
            `exporter="optimum"` where optimum-onnx does not import.
        ParityError: When ONNX fp32 outputs differ from PyTorch by more than `tolerance` (the report is still
            written, with `parity.passed = false`).
    """
    model_dir = Path(model_dir).expanduser()
    output_dir = Path(output_dir).expanduser() if output_dir is not None else model_dir / "onnx"
    if quantize not in (None, "dynamic", "static"):
        raise ExportError(f"quantize={quantize!r}: choose 'dynamic', 'static' or None.")
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
    exporter = resolve_exporter(exporter)
    spec = resolve_model_spec(model_dir, task=task, tower=tower)
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

    report = new_report(str(model_dir), spec.task, opset, exporter=REPORT_NAMES[exporter])
    output_dir.mkdir(parents=True, exist_ok=True)
    for stale in (ONNX_FP32_FILE, ONNX_INT8_FILE):
        if (output_dir / stale).exists():
            (output_dir / stale).unlink()
    with tempfile.TemporaryDirectory(prefix="hf-distill-export-") as scratch:
        raw_dir = Path(scratch) / "raw"
        export_to_onnx(model, spec, preprocessor, raw_dir, opset=opset, exporter=exporter)
        report["optimization_level"] = optimize_onnx(raw_dir, output_dir, optimization_level, exporter=exporter)
        copy_side_files(raw_dir, output_dir)
        fp32_path = output_dir / ONNX_FP32_FILE
        report["files"]["onnx_fp32"] = ONNX_FP32_FILE

        session = create_session(fp32_path, threads)
        parity_texts = SAMPLE_SENTENCES
        parity = check_parity(model, session, _parity_feeds(spec, model, preprocessor, session, parity_texts,
                                                            max_seq_length))
        report["parity"] = {"max_abs_diff": parity["max_abs_diff"], "tolerance": tolerance,
                            "passed": parity["max_abs_diff"] <= tolerance, "num_samples": parity["num_samples"]}
        if not report["parity"]["passed"]:
            write_report(report, output_dir)
            raise ParityError(
                f"The ONNX export in {output_dir} does not match PyTorch: max |diff| {parity['max_abs_diff']:.3e} > "
                f"tolerance {tolerance:.0e} (per output: {parity['per_output']}). Try optimization_level=None "
                "(`--optimization_level none`), another opset or the other exporter (`--exporter`); the report is in "
                "export_report.json."
            )

        sessions = {"onnx_fp32": session}
        if quant_config is not None:
            int8_path = output_dir / ONNX_INT8_FILE
            if quantize == "dynamic":
                quantize_dynamic_onnx(fp32_path, int8_path, quant_config)
                calibration_examples = None
            else:
                calibration_set = task_data.train
                if calibration_set is None or len(calibration_set) == 0:
                    raise ExportError(f"Task {task_name!r} has no training split to calibrate on; pass train_file.")
                input_names = [spec.name for spec in session.get_inputs()]
                feeds = _calibration_feeds(calibration_set, input_names, preprocessor, max_seq_length)
                quantize_static_onnx(raw_dir / ONNX_FP32_FILE, int8_path, quant_config, feeds, Path(scratch))
                calibration_examples = len(calibration_set)
            report["files"]["onnx_int8"] = ONNX_INT8_FILE
            report["quantization"] = {"mode": quantize, "preset": preset, "per_channel": per_channel,
                                      "calibration_examples": calibration_examples}
            sessions["onnx_int8"] = create_session(int8_path, threads)
        save_ort_config(output_dir, report["optimization_level"], quant_config, opset=opset, exporter=exporter)

    if task_data is not None and spec.task == "text-classification" and task_data.evaluation:
        split, dataset = next(iter(task_data.evaluation.items()))
        input_names = [spec.name for spec in session.get_inputs()]
        predictors = {"pytorch_fp32": lambda feeds: _torch_logits(model, feeds)}
        for name, variant in sessions.items():
            predictors[name] = (lambda s: lambda feeds: s.run(None, {i.name: feeds[i.name] for i in s.get_inputs()})[0])(variant)
        scores = evaluate_variants(predictors, dataset, preprocessor, input_names, task_data.compute_metrics,
                                   task_data.score)
        metric = task_data.metric_names[0] if len(task_data.metric_names) == 1 else "mean(" + ",".join(
            task_data.metric_names) + ")"
        report["accuracy"] = {"metric": metric, "eval_examples": len(dataset), "pytorch_fp32": scores["pytorch_fp32"],
                              "onnx_fp32": scores["onnx_fp32"], "onnx_int8": scores.get("onnx_int8")}

    report["size_mb"] = {"pytorch_fp32": pytorch_size_mb(model_dir),
                         "onnx_fp32": size_mb([fp32_path, output_dir / (ONNX_FP32_FILE + "_data")]),
                         "onnx_int8": size_mb([output_dir / ONNX_INT8_FILE]) if quant_config else None}
    if latency:
        report["latency_ms"], report["pytorch_attention"] = _latencies(model_dir, sessions, spec, latency_runs)
        report["speedup_int8_vs_pytorch_batch_32"] = speedup(report["latency_ms"])
    report["machine"] = machine_info(threads)
    write_report(report, output_dir)
    if verbose:
        print(format_table(report))
        print(f"wrote {output_dir / 'export_report.json'}")
    return report


def _torch_logits(model, feeds: dict) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model(**{name: torch.from_numpy(value) for name, value in feeds.items()}).logits.float().numpy()


def _latencies(model_dir: Path, sessions: dict, spec: ModelSpec, runs: int, shapes=DEFAULT_SHAPES) -> tuple[dict, str]:
    """Latencies of the ONNX `sessions` and of the PyTorch model as a user loads it (default attention kernel).

    Returns:
        `tuple`: The `latency_ms` table and the PyTorch baseline's attention implementation (e.g. `"sdpa"`).
    """
    model = load_pytorch_model(model_dir, spec, attn_implementation=None)
    reference = next(iter(sessions.values()))
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if max_positions:
        shapes = tuple((batch, min(length, max_positions)) for batch, length in shapes)
    table = measure_latencies(model, sessions, lambda b, s: synthetic_feeds(reference, model, b, s), shapes=shapes,
                              runs=runs, modality=spec.modality)
    return table, model.config._attn_implementation


def _model_type(model_dir: Path) -> str:
    import json

    with open(model_dir / "config.json", encoding="utf-8") as file:
        return json.load(file).get("model_type", "")


def benchmark_export(export_dir: str | os.PathLike, latency_runs: int = 10, threads: Optional[int] = None,
                     update_report: bool = True, verbose: bool = True) -> dict:
    """Measures latency again for an existing export (PyTorch fp32 from the report's `source_model`).

    Args:
        export_dir (`str` or `os.PathLike`): A folder written by `export_model` / `hf-distill export`.
        latency_runs (`int`, defaults to 10): Timed runs per variant and shape.
        threads (`int`, *optional*): Threads for PyTorch and ONNX Runtime.
        update_report (`bool`, defaults to `True`): Write the new latencies into `export_report.json`.
        verbose (`bool`, defaults to `True`): Print the table.

    Returns:
        `dict`: The updated report.
    """
    export_dir = Path(export_dir).expanduser()
    report = read_report(export_dir)
    source = Path(report["source_model"])
    if not source.is_dir():
        raise ExportError(f"The report's source_model {source} does not exist any more; the PyTorch baseline needs it.")
    threads = _set_threads(threads)
    sessions = {}
    for variant, file_name in (("onnx_fp32", report["files"]["onnx_fp32"]), ("onnx_int8", report["files"]["onnx_int8"])):
        if file_name:
            path = export_dir / file_name
            if not path.is_file():
                raise ExportError(f"{path} is missing; re-run `hf-distill export`.")
            sessions[variant] = create_session(path, threads)
    if not sessions:
        raise ExportError(f"The report in {export_dir} names no ONNX file; re-run `hf-distill export`.")
    input_names = {spec.name for spec in next(iter(sessions.values())).get_inputs()}
    tower = None
    if _model_type(source).startswith("clip"):
        tower = "vision" if "pixel_values" in input_names else "text"
    spec = resolve_model_spec(source, tower=tower)
    report["latency_ms"], report["pytorch_attention"] = _latencies(source, sessions, spec, latency_runs)
    report["speedup_int8_vs_pytorch_batch_32"] = speedup(report["latency_ms"])
    report["machine"] = machine_info(threads)
    if update_report:
        write_report(report, export_dir)
    if verbose:
        print(format_table(report))
    return report
