"""INT8 quantization of an exported ONNX model with ONNX Runtime, configured by Optimum's presets.

The weight/activation types, symmetry and operator lists come from
`optimum.onnxruntime.AutoQuantizationConfig.<preset>`; the quantization itself calls ONNX Runtime's
`quantize_dynamic` / `quantize_static` directly, because `ORTQuantizer` cannot pass
`extra_options={"DefaultTensorType": FLOAT}`, without which quantizing a graph that ORT's optimiser has
fused (level O2: `Attention`, `SkipLayerNormalization`, ...) fails with "Unable to find data type for
weight_name". The settings used are saved as `ort_config.json` (optimum's `ORTConfig`).
"""

from __future__ import annotations

import platform
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


def quantization_config(mode: str, preset: str, per_channel: bool = True):
    """Optimum's `QuantizationConfig` for `mode` (`"dynamic"` or `"static"`) and an instruction-set preset.

    For `avx2` the weights are signed int8 with 7-bit range (`reduce_range=True`), as ONNX Runtime recommends
    for AVX2 without VNNI (U8S8 kernels, no saturation), instead of optimum's uint8 weights: U8U8 measured
    16% slower on the SST-2 student here (640 ms vs 552 ms at 32 x 128) for the same predictions.

    Raises:
        ValueError: For an unknown mode or preset.
    """
    from onnxruntime.quantization import QuantType
    from optimum.onnxruntime import AutoQuantizationConfig

    if mode not in ("dynamic", "static"):
        raise ValueError(f"quantize={mode!r}: choose 'dynamic' or 'static'.")
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r}: choose one of {', '.join(PRESETS)} (or 'auto' to detect it).")
    config = getattr(AutoQuantizationConfig, preset)(is_static=mode == "static", per_channel=per_channel)
    if preset == "avx2":
        config.weights_dtype = QuantType.QInt8
        config.reduce_range = True
    if mode == "static":
        config.operators_to_quantize = list(STATIC_OPERATORS)
    return config


def _extra_options(config) -> dict:
    import onnx

    return {
        "WeightSymmetric": config.weights_symmetric,
        "ActivationSymmetric": config.activations_symmetric,
        "DefaultTensorType": onnx.TensorProto.FLOAT,
    }


def quantize_dynamic_onnx(model_path: Path, output_path: Path, config) -> Path:
    """Dynamic INT8 quantization: int8 weights, activations quantized on the fly per batch.

    Args:
        model_path (`Path`): The fp32 (optionally ORT-optimised) model.
        output_path (`Path`): Where the int8 model goes.
        config (`QuantizationConfig`): From `quantization_config("dynamic", ...)`.
    """
    from onnxruntime.quantization import quantize_dynamic

    quantize_dynamic(
        str(model_path),
        str(output_path),
        op_types_to_quantize=[str(getattr(op, "value", op)) for op in config.operators_to_quantize],
        per_channel=config.per_channel,
        reduce_range=config.reduce_range,
        weight_type=config.weights_dtype,
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


def quantize_static_onnx(model_path: Path, output_path: Path, config, calibration_feeds: list[dict], work_dir: Path) -> Path:
    """Static INT8 quantization: activation ranges calibrated (min/max) on `calibration_feeds`.

    Runs on the plain (not ORT-fused) export after ORT's quantization pre-processing (shape inference), since
    the fused `Attention` op has no static int8 kernel. ONNX Runtime fuses the QDQ graph when it loads it.

    Args:
        model_path (`Path`): The plain fp32 export.
        output_path (`Path`): Where the int8 model goes.
        config (`QuantizationConfig`): From `quantization_config("static", ...)`.
        calibration_feeds (`list[dict]`): Batches of model inputs (numpy int64) to calibrate on.
        work_dir (`Path`): A scratch folder.
    """
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, quantize_static
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
        quant_format=config.format,
        op_types_to_quantize=[str(getattr(op, "value", op)) for op in config.operators_to_quantize],
        per_channel=config.per_channel,
        reduce_range=config.reduce_range,
        activation_type=config.activations_dtype,
        weight_type=config.weights_dtype,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options=_extra_options(config),
    )
    return output_path


def save_ort_config(output_dir: Path, optimization_level: Optional[str], quantization=None) -> None:
    """Writes optimum's `ort_config.json`: the optimisation level and quantization settings used."""
    from optimum.onnxruntime import AutoOptimizationConfig, ORTConfig

    optimization = None
    if optimization_level is not None:
        optimization = AutoOptimizationConfig.with_optimization_level(optimization_level=optimization_level)
    ORTConfig(optimization=optimization, quantization=quantization).save_pretrained(output_dir)
