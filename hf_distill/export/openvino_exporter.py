"""The OpenVINO steps of `export_model(..., backend="openvino")`: the fp32 IR, then its INT8 version.

`exporter.export_model` runs the steps shared by both backends (loading, the ONNX trace, parity, accuracy,
latency, the report); this module writes the OpenVINO files:

- `write_openvino_fp32`: the plain ONNX trace converted to `openvino_model.xml` / `.bin` (fp32), with
  `config.json` and the tokenizer copied beside it.
- `write_openvino_int8`: `openvino_model_int8.xml` / `.bin`, quantized by NNCF (`nncf_quantization.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .nncf_quantization import NNCFSettings, compress_weights_openvino, quantize_static_openvino
from .onnx_export import ONNX_FP32_FILE, copy_side_files
from .openvino_backend import (
    OPENVINO_FP32_FILE,
    OPENVINO_INT8_FILE,
    OpenVINORunner,
    bin_file,
    convert_onnx_to_openvino,
    save_ir,
)

INT8_PRECISION: Optional[str] = None
"""`INFERENCE_PRECISION_HINT` of the INT8 variant's floating-point operations when it is checked and timed: the CPU's
default, as plain OpenVINO and optimum-intel run it (bf16 on CPUs with AMX or AVX512-BF16, else f32; the report's
`inference_precision` says which). On the AMX machine of docs/benchmark_history.md ("OpenVINO and INT8 paths"),
bf16 made INT8 1.4x faster at batch 32 than f32 for the same accuracy (within 0.1 points on SST-2, MRPC and IMDB)."""


def stale_files() -> tuple[str, ...]:
    """The files an earlier OpenVINO export left, removed before a new one is written."""
    names = []
    for xml in (OPENVINO_FP32_FILE, OPENVINO_INT8_FILE):
        names += [xml, bin_file(Path(xml)).name]
    return tuple(names)


def write_openvino_fp32(raw_dir: Path, output_dir: Path, threads: Optional[int]):
    """Converts the plain ONNX export in `raw_dir` into `output_dir/openvino_model.xml` (fp32).

    Args:
        raw_dir (`Path`): Folder of the plain export (`model.onnx`, `config.json`, tokenizer files).
        output_dir (`Path`): The export folder.
        threads (`int`, *optional*): Inference threads of the returned runner.

    Returns:
        `tuple`: The `openvino.Model` (to quantize) and an `OpenVINORunner` of the saved file, in f32.
    """
    model = convert_onnx_to_openvino(raw_dir / ONNX_FP32_FILE, output_dir / OPENVINO_FP32_FILE)
    copy_side_files(raw_dir, output_dir)
    return model, OpenVINORunner(output_dir / OPENVINO_FP32_FILE, threads, precision="f32")


def write_openvino_int8(model, output_dir: Path, settings: NNCFSettings, calibration_feeds: Optional[list[dict]],
                        threads: Optional[int]) -> OpenVINORunner:
    """Quantizes the fp32 model with NNCF and saves `output_dir/openvino_model_int8.xml`.

    Args:
        model (`openvino.Model`): The fp32 model.
        output_dir (`Path`): The export folder.
        settings (`NNCFSettings`): The quantization options (`mode` `"static"` needs `calibration_feeds`).
        calibration_feeds (`list[dict]`, *optional*): Batch-1 model inputs for static quantization.
        threads (`int`, *optional*): Inference threads of the returned runner.

    Returns:
        `OpenVINORunner`: The saved INT8 model.
    """
    if settings.mode == "static":
        quantized = quantize_static_openvino(model, calibration_feeds or [], settings)
    else:
        quantized = compress_weights_openvino(model, settings)
    path = save_ir(quantized, output_dir / OPENVINO_INT8_FILE)
    return OpenVINORunner(path, threads, precision=INT8_PRECISION)
