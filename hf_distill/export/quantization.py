"""INT8 quantization of an exported ONNX model with ONNX Runtime's own `quantize_dynamic` / `quantize_static`.

The settings of each instruction-set preset are a `QuantizationSettings` of our own, transcribed from Optimum's
`AutoQuantizationConfig.<preset>` (weight/activation types, symmetry, range, operators, format), so quantization
never needs Optimum. ONNX Runtime is called directly rather than through `ORTQuantizer`, because `ORTQuantizer`
cannot pass `extra_options={"DefaultTensorType": FLOAT}`, without which quantizing a graph that ORT's optimiser has
fused (level O2: `Attention`, `SkipLayerNormalization`, ...) fails with "Unable to find data type for weight_name".
The settings used are saved in `ort_config.json` (`ort_config.py`).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

PRESETS = ("avx512_vnni", "avx512", "avx2", "arm64")
STATIC_OPERATORS = ["MatMul"]
"""Operators quantized by static quantization: the MatMuls, where the time goes. Optimum's default static list
also quantizes `Add`, `Mul`, `Softmax`, ... with fixed calibrated ranges; on the SST-2 student that changed 1
prediction in 3 (argmax agreement 66% on 32 dev sentences). Adding the embedding lookups (`Gather`) shrinks the
SST-2 student's int8 file from 54 MB to 18 MB but cost 1.5 accuracy points on SST-2 dev (79.47 vs 80.96 fp32;
MatMuls alone: 80.73), so the embeddings stay fp32; dynamic quantization does quantize them."""


def cpu_flags() -> set[str]:
    """The CPU feature flags from `/proc/cpuinfo` (empty where that file does not exist)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def detect_preset(machine: Optional[str] = None, flags: Optional[Iterable[str]] = None) -> str:
    """Picks the quantization preset that fits this machine's instruction set.

    Args:
        machine (`str`, *optional*): `platform.machine()` by default.
        flags (`Iterable[str]`, *optional*): CPU flags, `/proc/cpuinfo`'s by default.

    Returns:
        `str`: `"arm64"` on ARM, `"avx512_vnni"` with AVX512-VNNI, `"avx512"` with AVX512 (F and BW), else `"avx2"`.
    """
    machine = (machine or platform.machine()).lower()
    if machine in ("arm64", "aarch64") or machine.startswith("armv8"):
        return "arm64"
    flags = set(cpu_flags() if flags is None else flags)
    if flags & {"avx512_vnni", "avx512vnni"}:
        return "avx512_vnni"
    if {"avx512f", "avx512bw"} <= flags:
        return "avx512"
    return "avx2"


_PRESET_WEIGHTS = {
    # preset: (weights_dtype, reduce_range) of optimum's AutoQuantizationConfig.<preset>; every preset has uint8
    # activations (asymmetric), symmetric weights, and leaves per_channel to the caller.
    "avx512_vnni": ("QInt8", False),
    "avx512": ("QInt8", False),
    "avx2": ("QUInt8", False),
    "arm64": ("QInt8", False),
}


@dataclass(frozen=True)
class QuantizationSettings:
    """What ONNX Runtime's quantizer is told: the fields of Optimum's `QuantizationConfig` that a preset sets.

    Types and formats are the member names of ONNX Runtime's `QuantType`, `QuantFormat` and `QuantizationMode`
    (strings, so the settings are plain data and write as JSON).

    Attributes:
        is_static (`bool`): Static (calibrated activation ranges) or dynamic quantization.
        format (`str`): `"QDQ"` (static) or `"QOperator"` (dynamic).
        mode (`str`): `"QLinearOps"` (static) or `"IntegerOps"` (dynamic).
        activations_dtype (`str`, defaults to `"QUInt8"`): Type of the quantized activations.
        activations_symmetric (`bool`, defaults to `False`): Symmetric activation ranges.
        weights_dtype (`str`, defaults to `"QInt8"`): Type of the quantized weights.
        weights_symmetric (`bool`, defaults to `True`): Symmetric weight ranges.
        per_channel (`bool`, defaults to `True`): One scale per output channel instead of per tensor.
        reduce_range (`bool`, defaults to `False`): 7-bit weights (no saturation on AVX2/AVX512 without VNNI).
        operators_to_quantize (`tuple[str, ...]`): The ONNX operator types to quantize.
    """

    is_static: bool
    format: str
    mode: str
    activations_dtype: str = "QUInt8"
    activations_symmetric: bool = False
    weights_dtype: str = "QInt8"
    weights_symmetric: bool = True
    per_channel: bool = True
    reduce_range: bool = False
    operators_to_quantize: tuple[str, ...] = field(default_factory=tuple)


def quantization_config(mode: str, preset: str, per_channel: bool = True) -> QuantizationSettings:
    """The quantization settings for `mode` (`"dynamic"` or `"static"`) and an instruction-set preset.

    The values are those of Optimum's `AutoQuantizationConfig.<preset>(is_static=..., per_channel=...)`: QDQ
    format for static, QOperator for dynamic; ONNX Runtime's default operator list for dynamic quantization. Two
    choices of hf-distill differ from Optimum's:

    - `avx2`: the weights are signed int8 with 7-bit range (`reduce_range=True`), as ONNX Runtime recommends for
      AVX2 without VNNI (U8S8 kernels, no saturation), instead of optimum's uint8 weights: U8U8 measured 16% slower
      on the SST-2 student here (640 ms vs 552 ms at 32 x 128) for the same predictions.
    - static quantization quantizes the MatMuls only (`STATIC_OPERATORS`).

    Args:
        mode (`str`): `"dynamic"` or `"static"`.
        preset (`str`): One of `PRESETS`.
        per_channel (`bool`, defaults to `True`): Per-channel weight scales.

    Returns:
        `QuantizationSettings`.

    Raises:
        ValueError: For an unknown mode or preset.
    """
    if mode not in ("dynamic", "static"):
        raise ValueError(f"quantize={mode!r}: choose 'dynamic' or 'static'.")
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r}: choose one of {', '.join(PRESETS)} (or 'auto' to detect it).")
    weights_dtype, reduce_range = _PRESET_WEIGHTS[preset]
    if preset == "avx2":
        weights_dtype, reduce_range = "QInt8", True
    is_static = mode == "static"
    return QuantizationSettings(
        is_static=is_static,
        format="QDQ" if is_static else "QOperator",
        mode="QLinearOps" if is_static else "IntegerOps",
        activations_dtype="QUInt8",
        activations_symmetric=False,
        weights_dtype=weights_dtype,
        weights_symmetric=True,
        per_channel=per_channel,
        reduce_range=reduce_range,
        operators_to_quantize=tuple(STATIC_OPERATORS) if is_static else _dynamic_operators(),
    )


def _dynamic_operators() -> tuple[str, ...]:
    """ONNX Runtime's default operators for dynamic quantization (its `IntegerOpsRegistry`, as Optimum uses)."""
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    return tuple(IntegerOpsRegistry)


def _extra_options(config: QuantizationSettings) -> dict:
    import onnx

    return {
        "WeightSymmetric": config.weights_symmetric,
        "ActivationSymmetric": config.activations_symmetric,
        "DefaultTensorType": onnx.TensorProto.FLOAT,
    }


def quantize_dynamic_onnx(model_path: Path, output_path: Path, config: QuantizationSettings) -> Path:
    """Dynamic INT8 quantization: int8 weights, activations quantized on the fly per batch.

    Args:
        model_path (`Path`): The fp32 (optionally ORT-optimised) model.
        output_path (`Path`): Where the int8 model goes.
        config (`QuantizationSettings`): From `quantization_config("dynamic", ...)`.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(model_path),
        str(output_path),
        op_types_to_quantize=list(config.operators_to_quantize),
        per_channel=config.per_channel,
        reduce_range=config.reduce_range,
        weight_type=QuantType[config.weights_dtype],
        extra_options=_extra_options(config),
    )
    return output_path


class _FeedReader:
    """An ONNX Runtime `CalibrationDataReader` over a list of feed dicts."""

    def __init__(self, feeds: list[dict]):
        self._feeds = iter(feeds)

    def get_next(self):
        return next(self._feeds, None)

    def rewind(self):  # not needed by MinMax; kept for ORT's interface
        raise NotImplementedError


def quantize_static_onnx(model_path: Path, output_path: Path, config: QuantizationSettings,
                         calibration_feeds: list[dict], work_dir: Path) -> Path:
    """Static INT8 quantization: activation ranges calibrated (min/max) on `calibration_feeds`.

    Runs on the plain (not ORT-fused) export after ORT's quantization pre-processing (shape inference), since
    the fused `Attention` op has no static int8 kernel. ONNX Runtime fuses the QDQ graph when it loads it.

    Args:
        model_path (`Path`): The plain fp32 export.
        output_path (`Path`): Where the int8 model goes.
        config (`QuantizationSettings`): From `quantization_config("static", ...)`.
        calibration_feeds (`list[dict]`): Batches of model inputs (numpy int64) to calibrate on.
        work_dir (`Path`): A scratch folder.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration_feeds:
        raise ValueError("Static quantization needs calibration examples: pass the task's data "
                         "(task_name / data_dir) and calibration_samples > 0, or use quantize='dynamic'.")
    prepared = work_dir / "model_preprocessed.onnx"
    quant_pre_process(str(model_path), str(prepared), skip_symbolic_shape=True)
    reader = type("FeedReader", (_FeedReader, CalibrationDataReader), {})(calibration_feeds)
    quantize_static(
        str(prepared),
        str(output_path),
        reader,
        quant_format=QuantFormat[config.format],
        op_types_to_quantize=list(config.operators_to_quantize),
        per_channel=config.per_channel,
        reduce_range=config.reduce_range,
        activation_type=QuantType[config.activations_dtype],
        weight_type=QuantType[config.weights_dtype],
        calibrate_method=CalibrationMethod.MinMax,
        extra_options=_extra_options(config),
    )
    return output_path
