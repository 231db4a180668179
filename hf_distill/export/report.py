"""`export_report.json`: the record every export writes, and its table.

The report lives in the export folder (`<model_dir>/onnx` or `<model_dir>/openvino` unless `--output` says
otherwise) and is read by the model cards (`hf_distill.hub.card`). Every key is always present; a value is null
when it was not measured (`exporter` is absent from reports written before it existed, and `backend`, `teacher`,
`speedup_int8_vs_teacher_batch_32` and `inference_precision` from reports written before OpenVINO; such a report
is an ONNX Runtime one). Format version 1 (latency keys of a vision tower read `batch_N_image_S`).

The variants of a report are `pytorch_fp32` and its backend's two: `onnx_fp32` / `onnx_int8` (`backend`
`"onnxruntime"`) or `openvino_fp32` / `openvino_int8` (`backend` `"openvino"`). `files`, `size_mb` and `accuracy`
hold those; `latency_ms` rows hold them too after `hf-distill export`, and after `hf-distill benchmark` every
runtime timed in the same run (`teacher_fp32` and the other backend's variants included)::

    {
      "format_version": 1,
      "source_model": "<path of the PyTorch model folder>",
      "task": "text-classification" | "fill-mask" | "feature-extraction" | ...,   # optimum task name
      "backend": "onnxruntime" | "openvino",  # what runs the export (`--backend`)
      "opset": 17,                           # of the ONNX graph (OpenVINO converts the plain one)
      "exporter": "optimum" | "torch.onnx",  # what wrote the ONNX graph (`--exporter`)
      "optimization_level": "O2" | null,     # ONNX Runtime's graph optimisation; null for OpenVINO
      "files": {"onnx_fp32": "model.onnx", "onnx_int8": "model_quantized.onnx" | null}
             | {"openvino_fp32": "openvino_model.xml", "openvino_int8": "openvino_model_int8.xml" | null},
      "quantization": null
          | {"mode": "dynamic" | "static", "preset": "avx512_vnni" | "avx512" | "avx2" | "arm64",   # onnxruntime
             "per_channel": true, "calibration_examples": 128 | null}
          | {"mode": "static" | "dynamic", "method": "nncf", "calibration_examples": 300 | null,    # openvino
             "nncf": {"model_type": "transformer", "preset": "mixed", "smooth_quant_alpha": 0.95,
                      "fast_bias_correction": true, "ignored_scope": [], ...}},
      "parity": {"max_abs_diff": 3.1e-06, "tolerance": 1e-04, "passed": true, "num_samples": 8},
      "accuracy": null | {"metric": "accuracy", "eval_examples": 872,
                          "pytorch_fp32": 0.8096, "onnx_fp32": 0.8096, "onnx_int8": 0.8050},
      "size_mb": {"pytorch_fp32": 69.6, "onnx_fp32": 69.7, "onnx_int8": 17.8 | null},
      "latency_ms": {                       # median of several runs, the variants taking turns
         "batch_1_seq_128":  {"pytorch_fp32": 9.1, "onnx_fp32": 5.2, "onnx_int8": 2.9},
         "batch_32_seq_128": {"pytorch_fp32": 222.0, "onnx_fp32": 249.0, "onnx_int8": 149.0},
         "dev_sst2_batch_32": {...}         # `hf-distill benchmark --task_name`: ms per real batch
      } | null,
      "pytorch_attention": "sdpa" | "eager" | null,   # attention kernel of the PyTorch latency baseline
      "speedup_int8_vs_pytorch_batch_32": 1.49 | null,
      "teacher": null | {"path": "<teacher folder>", "size_mb": 90.9},   # timed by `hf-distill benchmark`
      "speedup_int8_vs_teacher_batch_32": 5.9 | null,
      "inference_precision": null | {"openvino_fp32": "f32", "openvino_int8": "bf16"},   # OpenVINO's CPU plugin
      "machine": {"cpu": "...", "threads": 2, "onnxruntime": "1.32.0" | "openvino": "2026.4.1", "torch": "2.13.0+cpu"}
    }
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Iterable, Optional

FORMAT_VERSION = 1
BACKENDS = ("onnxruntime", "openvino")
BACKEND_VARIANTS = {"onnxruntime": ("onnx_fp32", "onnx_int8"), "openvino": ("openvino_fp32", "openvino_int8")}
"""The fp32 and INT8 variant names of each backend."""
VARIANTS = ("pytorch_fp32", "teacher_fp32", "onnx_fp32", "onnx_int8", "openvino_fp32", "openvino_int8")
"""Every variant a report or a benchmark may hold, in table order."""
VARIANT_LABELS = {"pytorch_fp32": "PyTorch fp32", "teacher_fp32": "teacher fp32", "onnx_fp32": "ONNX fp32",
                  "onnx_int8": "ONNX INT8", "openvino_fp32": "OpenVINO fp32", "openvino_int8": "OpenVINO INT8"}


def report_backend(report: dict) -> str:
    """The backend of a report; reports written before OpenVINO have no `backend` key and are ONNX Runtime's."""
    return report.get("backend") or "onnxruntime"


def int8_variant(report: dict) -> str:
    """The INT8 variant name of a report's backend (`"onnx_int8"` or `"openvino_int8"`)."""
    return BACKEND_VARIANTS[report_backend(report)][1]


def size_mb(paths) -> Optional[float]:
    """Total size in MB (10^6 bytes) of the files that exist among `paths`; `None` when none exists."""
    sizes = [os.path.getsize(path) for path in paths if path is not None and os.path.isfile(path)]
    return round(sum(sizes) / 1e6, 2) if sizes else None


def pytorch_size_mb(model_dir: Path) -> Optional[float]:
    """Size of a model folder's weights (`*.safetensors`, else `*.bin`)."""
    names = sorted(os.listdir(model_dir))
    weights = [n for n in names if n.endswith(".safetensors")] or [n for n in names if n.endswith(".bin")]
    return size_mb([model_dir / n for n in weights if n != "training_args.bin"])


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(threads: int, backends: Iterable[str] = ("onnxruntime",)) -> dict:
    """CPU model, thread count and the versions of torch and of each backend's runtime (OpenVINO: and NNCF)."""
    import torch

    info = {"cpu": cpu_name(), "threads": threads}
    if "onnxruntime" in backends:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    if "openvino" in backends:
        from .openvino_backend import openvino_version

        info["openvino"] = openvino_version()
        try:
            from importlib.metadata import version

            info["nncf"] = version("nncf")
        except Exception:  # NNCF is only needed for INT8
            info["nncf"] = None
    info["torch"] = torch.__version__
    return info


def speedup(latency: Optional[dict], variant: str = "onnx_int8", baseline: str = "pytorch_fp32") -> Optional[float]:
    """`baseline` / `variant` latency at batch 32 (any sequence length or image size); `None` if not measured.

    Args:
        latency (`dict`, *optional*): A report's `latency_ms`.
        variant (`str`, defaults to `"onnx_int8"`): The faster variant.
        baseline (`str`, defaults to `"pytorch_fp32"`): What it is compared with (`"teacher_fp32"` for the teacher).
    """
    if not latency:
        return None
    for key, row in latency.items():
        if key.startswith("batch_32_") and row.get(variant) and row.get(baseline):
            return round(row[baseline] / row[variant], 2)
    return None


def new_report(source_model: str, task: str, opset: int, exporter: Optional[str] = None,
               backend: str = "onnxruntime") -> dict:
    """A report with every key present and nothing measured yet.

    Args:
        source_model (`str`): The PyTorch model folder.
        task (`str`): The optimum task name.
        opset (`int`): The ONNX opset.
        exporter (`str`, *optional*): `"optimum"` or `"torch.onnx"`.
        backend (`str`, defaults to `"onnxruntime"`): `"onnxruntime"` or `"openvino"`.
    """
    fp32, int8 = BACKEND_VARIANTS[backend]
    return {
        "format_version": FORMAT_VERSION,
        "source_model": source_model,
        "task": task,
        "backend": backend,
        "opset": opset,
        "exporter": exporter,
        "optimization_level": None,
        "files": {fp32: None, int8: None},
        "quantization": None,
        "parity": None,
        "accuracy": None,
        "size_mb": {"pytorch_fp32": None, fp32: None, int8: None},
        "latency_ms": None,
        "pytorch_attention": None,
        "speedup_int8_vs_pytorch_batch_32": None,
        "teacher": None,
        "speedup_int8_vs_teacher_batch_32": None,
        "inference_precision": None,
        "machine": None,
    }


def write_report(report: dict, output_dir: Path) -> Path:
    from .onnx_export import REPORT_FILE

    path = Path(output_dir) / REPORT_FILE
    with open(path, "w", encoding="utf-8") as file:
        json.dump(report, file, indent=2)
        file.write("\n")
    return path


def read_report(export_dir: Path) -> dict:
    from .onnx_export import REPORT_FILE, ExportError

    path = Path(export_dir) / REPORT_FILE
    if not path.is_file():
        raise ExportError(f"{export_dir} has no {REPORT_FILE}: it is not a folder written by `hf-distill export`. "
                          "Run `hf-distill export MODEL_DIR --output DIR` first.")
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except json.JSONDecodeError as error:
        raise ExportError(f"{path} is not valid JSON ({error}); re-run `hf-distill export`.") from None


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table_variants(report: dict) -> list[str]:
    """The variants a report's table shows: PyTorch, the teacher when timed, the backend's two, and any other
    runtime a benchmark timed alongside."""
    present = set(report.get("size_mb") or {}) | set(report.get("files") or {})
    for row in (report.get("latency_ms") or {}).values():
        present |= set(row or {})
    present |= {"pytorch_fp32", *BACKEND_VARIANTS[report_backend(report)]}
    return [variant for variant in VARIANTS if variant in present]


def format_table(report: dict) -> str:
    """The report as a text table: size, latency per shape, task metric, parity and INT8 speed-ups."""
    variants = table_variants(report)
    backend = report_backend(report)
    header = f"{'':<26}" + "".join(f"{name:>15}" for name in variants)
    exporter = f"exporter {report['exporter']}, " if report.get("exporter") else ""
    lines = [f"{backend} export of {report['source_model']} ({report['task']}, {exporter}opset {report['opset']}, "
             f"optimization {report.get('optimization_level') or 'none'})"]
    quantization = report.get("quantization")
    if quantization and backend == "openvino":
        options = ", ".join(f"{key} {value}" for key, value in (quantization.get("nncf") or {}).items())
        lines.append(f"int8: {quantization['mode']} quantization with NNCF ({options}), calibration examples "
                     f"{quantization.get('calibration_examples')}")
    elif quantization:
        lines.append(f"int8: {quantization['mode']} quantization, preset {quantization['preset']}, per-channel "
                     f"{quantization['per_channel']}, calibration examples {quantization['calibration_examples']}")
    lines += [header, "-" * len(header)]
    sizes = report.get("size_mb") or {}
    if report.get("teacher"):
        sizes = {**sizes, "teacher_fp32": report["teacher"].get("size_mb")}
    lines.append(f"{'size (MB)':<26}" + "".join(f"{_fmt(sizes.get(v), 1):>15}" for v in variants))
    for key, row in (report.get("latency_ms") or {}).items():
        label = key.replace("batch_", "latency ms, b").replace("_seq_", " x ").replace("_image_", " img ")
        if key.startswith("dev_"):
            label = "ms/batch, " + key[len("dev_"):].replace("_batch_", " dev b")
        lines.append(f"{label:<26}" + "".join(f"{_fmt(row.get(v)):>15}" for v in variants))
    accuracy = report.get("accuracy")
    if accuracy:
        label = f"{accuracy['metric']} (n={accuracy['eval_examples']})"
        lines.append(f"{label:<26}" + "".join(f"{_fmt(accuracy.get(v), 4):>15}" for v in variants))
    parity = report.get("parity")
    if parity:
        name = "ONNX" if backend == "onnxruntime" else "OpenVINO"
        lines.append(f"parity fp32 {name} vs PyTorch: max |diff| {parity['max_abs_diff']:.2e} on "
                     f"{parity['num_samples']} samples (tolerance {parity['tolerance']:.0e}): "
                     f"{'passed' if parity['passed'] else 'FAILED'}")
    if report.get("speedup_int8_vs_pytorch_batch_32") is not None:
        attention = report.get("pytorch_attention")
        baseline = f" ({attention} attention)" if attention else ""
        lines.append(f"int8 speed-up over PyTorch fp32{baseline} at batch 32: "
                     f"{report['speedup_int8_vs_pytorch_batch_32']:.2f}x")
    if report.get("speedup_int8_vs_teacher_batch_32") is not None:
        lines.append(f"int8 speed-up over the teacher's PyTorch fp32 at batch 32: "
                     f"{report['speedup_int8_vs_teacher_batch_32']:.2f}x")
    precision = report.get("inference_precision")
    if precision:
        lines.append("OpenVINO inference precision: " + ", ".join(f"{k} {v}" for k, v in precision.items()))
    machine = report.get("machine")
    if machine:
        versions = ", ".join(f"{key} {value}" for key, value in machine.items()
                             if key not in ("cpu", "threads") and value is not None)
        lines.append(f"machine: {machine['cpu']}, {machine['threads']} threads, {versions}")
    return "\n".join(lines)
