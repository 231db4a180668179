"""`export_report.json`: the record every export writes, and its table.

The report lives in the export folder (`<model_dir>/onnx` unless `--output` says otherwise) and is read
by the model cards (`hf_distill.hub.card`). Every key is always present; a value is null when it was not
measured (`exporter` is absent from reports written before it existed). Format version 1 (latency keys of a
vision tower read `batch_N_image_S`)::

    {
      "format_version": 1,
      "source_model": "<path of the PyTorch model folder>",
      "task": "text-classification" | "fill-mask" | "feature-extraction" | ...,   # optimum task name
      "opset": 17,
      "exporter": "optimum" | "torch.onnx",   # what wrote and optimised model.onnx (`--exporter`)
      "optimization_level": "O2" | null,
      "files": {"onnx_fp32": "model.onnx", "onnx_int8": "model_quantized.onnx" | null},
      "quantization": null | {"mode": "dynamic" | "static", "preset": "avx512_vnni" | "avx512" | "avx2" | "arm64",
                               "per_channel": true, "calibration_examples": 128 | null},
      "parity": {"max_abs_diff": 3.1e-06, "tolerance": 1e-04, "passed": true, "num_samples": 8},
      "accuracy": null | {"metric": "accuracy", "eval_examples": 872,
                          "pytorch_fp32": 0.8096, "onnx_fp32": 0.8096, "onnx_int8": 0.8050},
      "size_mb": {"pytorch_fp32": 69.6, "onnx_fp32": 69.7, "onnx_int8": 17.8 | null},
      "latency_ms": {                       # median of several runs, each config in the same process
         "batch_1_seq_128":  {"pytorch_fp32": 9.1, "onnx_fp32": 5.2, "onnx_int8": 2.9},
         "batch_32_seq_128": {"pytorch_fp32": 222.0, "onnx_fp32": 249.0, "onnx_int8": 149.0}
      } | null,
      "pytorch_attention": "sdpa" | "eager" | null,   # attention kernel of the PyTorch latency baseline
      "speedup_int8_vs_pytorch_batch_32": 1.49 | null,
      "machine": {"cpu": "...", "threads": 2, "onnxruntime": "1.32.0", "torch": "2.13.0+cpu"}
    }
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Optional

FORMAT_VERSION = 1
VARIANTS = ("pytorch_fp32", "onnx_fp32", "onnx_int8")


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


def machine_info(threads: int) -> dict:
    import onnxruntime
    import torch

    return {"cpu": cpu_name(), "threads": threads, "onnxruntime": onnxruntime.__version__, "torch": torch.__version__}


def speedup(latency: Optional[dict]) -> Optional[float]:
    """PyTorch fp32 / ONNX int8 latency at batch 32 (any sequence length or image size); `None` if not measured."""
    if not latency:
        return None
    for key, row in latency.items():
        if key.startswith("batch_32_") and row.get("onnx_int8") and row.get("pytorch_fp32"):
            return round(row["pytorch_fp32"] / row["onnx_int8"], 2)
    return None


def new_report(source_model: str, task: str, opset: int, exporter: Optional[str] = None) -> dict:
    """A report with every key present and nothing measured yet.

    Args:
        source_model (`str`): The PyTorch model folder.
        task (`str`): The optimum task name.
        opset (`int`): The ONNX opset.
        exporter (`str`, *optional*): `"optimum"` or `"torch.onnx"`.
    """
    return {
        "format_version": FORMAT_VERSION,
        "source_model": source_model,
        "task": task,
        "opset": opset,
        "exporter": exporter,
        "optimization_level": None,
        "files": {"onnx_fp32": None, "onnx_int8": None},
        "quantization": None,
        "parity": None,
        "accuracy": None,
        "size_mb": {"pytorch_fp32": None, "onnx_fp32": None, "onnx_int8": None},
        "latency_ms": None,
        "pytorch_attention": None,
        "speedup_int8_vs_pytorch_batch_32": None,
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


def format_table(report: dict) -> str:
    """The report as a text table: size, latency per shape, task metric, parity and int8 speed-up."""
    header = f"{'':<26}" + "".join(f"{name:>14}" for name in VARIANTS)
    exporter = f"exporter {report['exporter']}, " if report.get("exporter") else ""
    lines = [f"export of {report['source_model']} ({report['task']}, {exporter}opset {report['opset']}, "
             f"optimization {report['optimization_level'] or 'none'})"]
    quantization = report.get("quantization")
    if quantization:
        lines.append(f"int8: {quantization['mode']} quantization, preset {quantization['preset']}, per-channel "
                     f"{quantization['per_channel']}, calibration examples {quantization['calibration_examples']}")
    lines += [header, "-" * len(header)]
    lines.append(f"{'size (MB)':<26}" + "".join(f"{_fmt(report['size_mb'].get(v), 1):>14}" for v in VARIANTS))
    for key, row in (report.get("latency_ms") or {}).items():
        label = key.replace("batch_", "latency ms, b").replace("_seq_", " x ").replace("_image_", " img ")
        lines.append(f"{label:<26}" + "".join(f"{_fmt(row.get(v)):>14}" for v in VARIANTS))
    accuracy = report.get("accuracy")
    if accuracy:
        label = f"{accuracy['metric']} (n={accuracy['eval_examples']})"
        lines.append(f"{label:<26}" + "".join(f"{_fmt(accuracy.get(v), 4):>14}" for v in VARIANTS))
    parity = report.get("parity")
    if parity:
        lines.append(f"parity fp32 ONNX vs PyTorch: max |diff| {parity['max_abs_diff']:.2e} on {parity['num_samples']} "
                     f"samples (tolerance {parity['tolerance']:.0e}): {'passed' if parity['passed'] else 'FAILED'}")
    if report.get("speedup_int8_vs_pytorch_batch_32") is not None:
        attention = report.get("pytorch_attention")
        baseline = f" ({attention} attention)" if attention else ""
        lines.append(f"int8 speed-up over PyTorch fp32{baseline} at batch 32: "
                     f"{report['speedup_int8_vs_pytorch_batch_32']:.2f}x")
    machine = report.get("machine")
    if machine:
        lines.append(f"machine: {machine['cpu']}, {machine['threads']} threads, onnxruntime {machine['onnxruntime']}, "
                     f"torch {machine['torch']}")
    return "\n".join(lines)
