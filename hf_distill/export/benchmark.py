"""`hf-distill benchmark`: every runtime of one model timed in one interleaved run, the teacher included.

For a model folder (or one of its export folders) it finds the exports (`<model_dir>/onnx`, `<model_dir>/openvino`
and any other subfolder with an `export_report.json`), loads each variant whose runtime is installed (PyTorch fp32,
ONNX Runtime fp32 / INT8, OpenVINO fp32 / INT8) and the teacher (the run's `results.json` names it, or `--teacher`),
and times them all, taking turns, at batch 1 x 128 and 32 x 128, and, when a task is given, over its evaluation set
in real batches of 32 padded to their longest sequence (which also gives each variant's task metric). The result
goes into `<model_dir>/benchmark_report.json` and into each export's `export_report.json` (`latency_ms` with every
runtime, `teacher`, the INT8 speed-ups), so that the model card's numbers all come from one run.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Optional, Sequence

from .latency import DEFAULT_SHAPES, measure_dataset_latency, measure_latencies
from .onnx_export import REPORT_FILE, ExportError, load_preprocessor, load_pytorch_model, resolve_model_spec
from .report import (
    BACKEND_VARIANTS,
    VARIANT_LABELS,
    VARIANTS,
    int8_variant,
    machine_info,
    pytorch_size_mb,
    read_report,
    report_backend,
    speedup,
    write_report,
)

BENCHMARK_FILE = "benchmark_report.json"
DEFAULT_EXPORT_SUBDIRS = ("onnx", "openvino")


def find_exports(model_dir: Path) -> list[Path]:
    """The export folders of a model folder: `onnx/`, `openvino/`, then any other subfolder with a report, one per
    backend (the first found)."""
    candidates = [model_dir / name for name in DEFAULT_EXPORT_SUBDIRS]
    candidates += [model_dir / name for name in sorted(os.listdir(model_dir))
                   if not name.startswith("checkpoint-") and name not in DEFAULT_EXPORT_SUBDIRS]
    found, backends = [], set()
    for folder in candidates:
        if (folder / REPORT_FILE).is_file():
            backend = report_backend(read_report(folder))
            if backend not in backends:
                found.append(folder)
                backends.add(backend)
    return found


def resolve_teacher(model_dir: Path, teacher) -> Optional[Path]:
    """The teacher folder to time: `teacher` when it is a path, none for `False`, else the run's `results.json`
    teacher when it is a local folder (as recorded, or beside the student folder).

    Raises:
        ExportError: When `teacher` is a path that is not a model folder.
    """
    if teacher is False:
        return None
    if teacher:
        path = Path(teacher).expanduser()
        if not (path / "config.json").is_file():
            raise ExportError(f"--teacher {teacher}: not a model folder (no config.json). Pass the teacher's "
                              "save_pretrained folder, e.g. runs/demo/teacher.")
        return path
    results = model_dir / "results.json"
    if not results.is_file():
        return None
    with open(results, encoding="utf-8") as file:
        recorded = ((json.load(file).get("teacher") or {}).get("path")) or ""
    if not recorded:
        return None
    for path in (Path(recorded).expanduser(), model_dir.parent / Path(recorded).name):
        if (path / "config.json").is_file() and path.resolve() != model_dir.resolve():
            return path
    return None


def _export_runners(export_dir: Path, report: dict, threads: Optional[int]) -> tuple[dict, list[str]]:
    """The runners of one export's variants whose runtime imports here, and notes on those skipped."""
    backend = report_backend(report)
    files = report.get("files") or {}
    runners, notes = {}, []
    if backend == "openvino":
        from .openvino_backend import OpenVINORunner, openvino_import_error
        from .openvino_exporter import INT8_PRECISION

        error = openvino_import_error()
        if error:
            return {}, [f"{export_dir}: OpenVINO does not import ({error}); `pip install \"hf-distill[openvino]\"`"]
        precision = {"openvino_fp32": "f32", "openvino_int8": INT8_PRECISION}
        make = lambda variant, path: OpenVINORunner(path, threads, precision=precision[variant])  # noqa: E731
    else:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as error:
            return {}, [f"{export_dir}: ONNX Runtime does not import ({error}); `pip install \"hf-distill[export]\"`"]
        from .runners import OnnxRuntimeRunner

        make = lambda variant, path: OnnxRuntimeRunner(path, threads)  # noqa: E731
    for variant in BACKEND_VARIANTS[backend]:
        name = files.get(variant)
        if not name:
            continue
        path = export_dir / name
        if not path.is_file():
            raise ExportError(f"{path} is missing; re-run `hf-distill export`.")
        runners[variant] = make(variant, path)
    return runners, notes


def _student_inputs(model, spec, tokenizer) -> list[str]:
    from .torch_backend import input_names

    return input_names(model, spec, tokenizer)


def benchmark_model(
    path: str | os.PathLike,
    *,
    export_dirs: Optional[Sequence[str | os.PathLike]] = None,
    teacher=None,
    task_name: Optional[str] = None,
    data_dir: Optional[str] = None,
    validation_file: Optional[str] = None,
    max_eval_samples: Optional[int] = None,
    max_seq_length: int = 128,
    batch_size: int = 32,
    latency_runs: int = 10,
    dataset_runs: int = 3,
    threads: Optional[int] = None,
    shapes=DEFAULT_SHAPES,
    update_reports: bool = True,
    write_summary: bool = True,
    seed: int = 42,
    verbose: bool = True,
) -> dict:
    """Times every runtime of a model, and its teacher, in one interleaved run.

    Args:
        path (`str` or `os.PathLike`): The model folder, or one of its export folders.
        export_dirs (`Sequence`, *optional*): The exports to time; by default those `find_exports` finds (with
            `path` first when it is an export folder).
        teacher (`str`, `False` or `None`, *optional*): The teacher folder to time too; `None` reads it from the
            run's `results.json` (when it is a local folder); `False` times no teacher.
        task_name (`str`, *optional*): A GLUE task or `imdb`: also time the evaluation set in real batches padded to
            their longest sequence, and score every variant on it.
        data_dir, validation_file (`str`, *optional*): Where the task's data is (as in recipes).
        max_eval_samples (`int`, *optional*): Use a seeded subset of the evaluation set.
        max_seq_length (`int`, defaults to 128): Truncation length of the evaluation set.
        batch_size (`int`, defaults to 32): Batch size of the evaluation set.
        latency_runs (`int`, defaults to 10): Timed rounds per shape (median).
        dataset_runs (`int`, defaults to 3): Timed passes over the evaluation set (median).
        threads (`int`, *optional*): Threads for PyTorch and every runtime (PyTorch's default when `None`).
        shapes (`tuple`, defaults to `((1, 128), (32, 128))`): (batch, sequence) shapes timed on random tokens.
        update_reports (`bool`, defaults to `True`): Write the results into each export's `export_report.json`.
        write_summary (`bool`, defaults to `True`): Write `<model_dir>/benchmark_report.json`.
        seed (`int`, defaults to 42): Seed of the evaluation subset.
        verbose (`bool`, defaults to `True`): Print the table.

    Returns:
        `dict`: The benchmark (`latency_ms`, `accuracy`, `speedups`, `sizes_mb`, `teacher`, `exports`, `machine`,
        `notes`), with `reports`: export folder -> its updated report.

    Raises:
        ExportError: For a folder that is neither a model nor an export, a model folder that is gone, or a missing
            export file.
    """
    import torch

    from .exporter import _load_task, _set_threads
    from .verification import synthetic_feeds, task_batches

    path = Path(path).expanduser()
    exports = [Path(p).expanduser() for p in export_dirs] if export_dirs is not None else []
    if (path / REPORT_FILE).is_file():
        model_dir = Path(read_report(path)["source_model"])
        if export_dirs is None:
            exports = [path]
        if not model_dir.is_dir():
            raise ExportError(f"The report's source_model {model_dir} does not exist any more; the PyTorch baseline "
                              "needs it.")
    elif (path / "config.json").is_file():
        model_dir = path
    else:
        raise ExportError(f"{path} is neither a model folder (no config.json) nor an export folder (no {REPORT_FILE}). "
                          "Pass the folder written by `hf-distill train` or by `hf-distill export`.")
    if export_dirs is None:
        exports += [folder for folder in find_exports(model_dir)
                    if folder.resolve() not in {e.resolve() for e in exports}
                    and report_backend(read_report(folder)) not in {report_backend(read_report(e)) for e in exports}]
    threads = _set_threads(threads)

    reports = {folder: read_report(folder) for folder in exports}
    runners, notes = {}, []
    for folder, report in reports.items():
        found, skipped = _export_runners(folder, report, threads)
        runners.update(found)
        notes += skipped

    tower = None
    if json.loads((model_dir / "config.json").read_text(encoding="utf-8")).get("model_type", "").startswith("clip"):
        names = {name for runner in runners.values() for name in runner.input_names}
        tower = "vision" if "pixel_values" in names else "text"
    spec = resolve_model_spec(model_dir, tower=tower)
    student = load_pytorch_model(model_dir, spec, attn_implementation=None)
    preprocessor = load_preprocessor(model_dir, spec, student)
    reference = next(iter(runners.values()), None)
    inputs = reference.input_names if reference else _student_inputs(student, spec, preprocessor)
    outputs = reference.output_names if reference else ["logits"]
    from .runners import TorchRunner

    timed = {"pytorch_fp32": TorchRunner(student, inputs, outputs)}
    teacher_dir = resolve_teacher(model_dir, teacher)
    teacher_info = None
    if teacher_dir is not None:
        teacher_model = load_pytorch_model(teacher_dir, resolve_model_spec(teacher_dir, tower=tower),
                                           attn_implementation=None)
        accepted = set(inspect.signature(teacher_model.forward).parameters)
        timed["teacher_fp32"] = TorchRunner(teacher_model, [n for n in inputs if n in accepted], outputs[:1])
        teacher_info = {"path": str(teacher_dir), "size_mb": pytorch_size_mb(teacher_dir)}
    timed.update({variant: runners[variant] for variant in VARIANTS if variant in runners})

    max_positions = getattr(student.config, "max_position_embeddings", None)
    if max_positions:
        shapes = tuple((batch, min(length, max_positions)) for batch, length in shapes)
    with torch.inference_mode():
        latency = measure_latencies(timed, lambda b, s: synthetic_feeds(inputs, student, b, s), shapes=shapes,
                                    runs=latency_runs, modality=spec.modality,
                                    image_size=getattr(student.config, "image_size", None))
    accuracy = None
    if task_name is not None:
        task_data = _load_task(task_name, preprocessor, data_dir, None, validation_file, max_seq_length, 1,
                               max_eval_samples, seed)
        split, dataset = next(iter(task_data.evaluation.items()))
        batches, labels = [], []
        for feeds, batch_labels in task_batches(dataset, inputs, preprocessor, batch_size):
            batches.append(feeds)
            labels.append(batch_labels)
        with torch.inference_mode():
            per_batch, predictions = measure_dataset_latency(timed, batches, runs=dataset_runs)
        latency[f"dev_{task_data.name}_batch_{batch_size}"] = per_batch
        accuracy = _scores(task_data, predictions, labels)
        accuracy.update(eval_examples=len(dataset), split=split)

    sizes = {"pytorch_fp32": pytorch_size_mb(model_dir)}
    if teacher_info:
        sizes["teacher_fp32"] = teacher_info["size_mb"]
    for report in reports.values():
        sizes.update({k: v for k, v in (report.get("size_mb") or {}).items() if k != "pytorch_fp32"})
    speedups = {variant: {"vs_pytorch_fp32": speedup(latency, variant),
                          "vs_teacher_fp32": speedup(latency, variant, "teacher_fp32")}
                for variant in timed if variant != "pytorch_fp32"}
    speedups["pytorch_fp32"] = {"vs_teacher_fp32": speedup(latency, "pytorch_fp32", "teacher_fp32")}
    backends = sorted({report_backend(report) for report in reports.values()})
    machine = machine_info(threads, backends)
    result = {
        "model": str(model_dir),
        "teacher": teacher_info,
        "exports": {str(folder): report_backend(report) for folder, report in reports.items()},
        "variants": list(timed),
        "latency_ms": latency,
        "accuracy": accuracy,
        "sizes_mb": sizes,
        "speedups_batch_32": speedups,
        "pytorch_attention": student.config._attn_implementation,
        "machine": machine,
        "notes": notes,
    }
    updated = {}
    for folder, report in reports.items():
        report["latency_ms"] = latency
        report["pytorch_attention"] = result["pytorch_attention"]
        report["speedup_int8_vs_pytorch_batch_32"] = speedup(latency, int8_variant(report))
        report["teacher"] = teacher_info
        report["speedup_int8_vs_teacher_batch_32"] = speedup(latency, int8_variant(report), "teacher_fp32")
        report["machine"] = machine
        if update_reports:
            write_report(report, folder)
        updated[str(folder)] = report
    if write_summary:
        with open(model_dir / BENCHMARK_FILE, "w", encoding="utf-8") as file:
            json.dump(result, file, indent=2)
            file.write("\n")
    result["reports"] = updated
    if verbose:
        print(format_benchmark(result))
        if write_summary:
            print(f"wrote {model_dir / BENCHMARK_FILE}")
    return result


def _scores(task_data, predictions: dict, labels: list) -> dict:
    import numpy as np
    from transformers import EvalPrediction

    label_ids = np.concatenate(labels)
    scores = {}
    for variant, values in predictions.items():
        logits = np.concatenate([np.asarray(v, dtype=np.float32) for v in values])
        scores[variant] = float(task_data.score(task_data.compute_metrics(
            EvalPrediction(predictions=logits, label_ids=label_ids))))
    metric = task_data.metric_names[0] if len(task_data.metric_names) == 1 else "mean(" + ",".join(
        task_data.metric_names) + ")"
    return {"metric": metric, **scores}


def _fmt(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_benchmark(result: dict) -> str:
    """The benchmark as a text table: a column per runtime; size, latency per shape, task metric, speed-ups."""
    variants = result["variants"]
    header = f"{'':<30}" + "".join(f"{VARIANT_LABELS[v]:>15}" for v in variants)
    lines = [f"benchmark of {result['model']}" + (f" (teacher {result['teacher']['path']})" if result["teacher"]
                                                   else " (no teacher timed)"), header, "-" * len(header)]
    lines.append(f"{'size (MB)':<30}" + "".join(f"{_fmt(result['sizes_mb'].get(v), 1):>15}" for v in variants))
    for key, row in result["latency_ms"].items():
        if key.startswith("dev_"):
            label = "ms per real batch, " + key[len("dev_"):].replace("_batch_", " dev b")
        else:
            label = key.replace("batch_", "latency ms, b").replace("_seq_", " x ").replace("_image_", " img ")
        lines.append(f"{label:<30}" + "".join(f"{_fmt(row.get(v)):>15}" for v in variants))
    accuracy = result.get("accuracy")
    if accuracy:
        label = f"{accuracy['metric']} (n={accuracy['eval_examples']})"
        lines.append(f"{label:<30}" + "".join(f"{_fmt(accuracy.get(v), 4):>15}" for v in variants))
    speedups = result["speedups_batch_32"]
    lines.append(f"{'x PyTorch fp32 at batch 32':<30}" + "".join(
        f"{_fmt((speedups.get(v) or {}).get('vs_pytorch_fp32')) if v != 'pytorch_fp32' else '1.00':>15}"
        for v in variants))
    if result["teacher"]:
        lines.append(f"{'x teacher fp32 at batch 32':<30}" + "".join(
            f"{_fmt((speedups.get(v) or {}).get('vs_teacher_fp32')) if v != 'teacher_fp32' else '1.00':>15}"
            for v in variants))
    machine = result["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine.items() if k not in ("cpu", "threads") and v is not None)
    lines.append(f"machine: {machine['cpu']}, {machine['threads']} threads, {versions}; PyTorch attention "
                 f"{result['pytorch_attention']}")
    lines += [f"note: {note}" for note in result["notes"]]
    return "\n".join(lines)
