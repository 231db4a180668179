"""The Optimum backend: `optimum.exporters.onnx` writes the graph, `optimum.onnxruntime.ORTOptimizer` optimises it.

Needs optimum-onnx (transformers < 4.58 only); `backend.resolve_exporter` decides whether it runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from .onnx_export import ONNX_FP32_FILE, ModelSpec, output_axes, text_axes

if TYPE_CHECKING:  # pragma: no cover
    from .quantization import QuantizationSettings


def _custom_onnx_configs(model, spec: ModelSpec) -> Optional[dict]:
    """ONNX configs for CLIP towers: optimum's, with the attention mask and the projected embedding as outputs."""
    if spec.tower is None:
        return None
    from optimum.exporters.onnx.model_configs import CLIPTextWithProjectionOnnxConfig, CLIPVisionModelOnnxConfig

    class CLIPTextTowerOnnxConfig(CLIPTextWithProjectionOnnxConfig):
        @property
        def inputs(self):
            return {"input_ids": text_axes(), "attention_mask": text_axes()}

        @property
        def outputs(self):
            return output_axes(spec)

    class CLIPVisionTowerOnnxConfig(CLIPVisionModelOnnxConfig):
        @property
        def outputs(self):
            return output_axes(spec)

    config_class = CLIPTextTowerOnnxConfig if spec.tower == "text" else CLIPVisionTowerOnnxConfig
    return {"model": config_class(model.config, task="feature-extraction")}


def export_with_optimum(model, spec: ModelSpec, preprocessor, output_dir: Path, opset: int) -> None:
    """Writes `output_dir/model.onnx` with `optimum.exporters.onnx.onnx_export_from_model`.

    Optimum's own validation is skipped: `verification.check_parity` runs a stricter one afterwards.
    """
    from optimum.exporters.onnx import onnx_export_from_model

    onnx_export_from_model(
        model,
        output_dir,
        opset=opset,
        task=spec.task,
        do_validation=False,
        custom_onnx_configs=_custom_onnx_configs(model, spec),
        preprocessors=[preprocessor] if preprocessor is not None else None,
    )


def optimization_config(level: str):
    """Optimum's `OptimizationConfig` for `"O1"`, `"O2"` or `"O3"`, as hf-distill runs it (no shape inference)."""
    from optimum.onnxruntime import AutoOptimizationConfig

    return AutoOptimizationConfig.with_optimization_level(optimization_level=level, disable_shape_inference=True)


def optimize_with_optimum(raw_dir: Path, output_dir: Path, level: str) -> Optional[str]:
    """Optimises `raw_dir/model.onnx` into `output_dir` with `ORTOptimizer` at `level`.

    Returns:
        `str` or `None`: `level`, or `None` when Optimum has no fusion rules for the model type (a note is printed
        and nothing is written: the caller keeps the plain export).
    """
    from optimum.onnxruntime import ORTOptimizer
    from optimum.onnxruntime.utils import ORTConfigManager

    config = optimization_config(level)
    with open(raw_dir / "config.json", encoding="utf-8") as file:
        model_type = json.load(file)["model_type"]
    try:
        ORTConfigManager.check_optimization_supported_model(model_type, config)
    except NotImplementedError as error:
        print(f"hf-distill export: graph optimisation {level} is not available for this model ({error}); "
              "keeping the plain export (ONNX Runtime still applies its own optimisations when loading).")
        return None
    optimizer = ORTOptimizer.from_pretrained(raw_dir, file_names=[ONNX_FP32_FILE])
    optimizer.optimize(save_dir=output_dir, optimization_config=config, file_suffix="")
    return level


def save_optimum_ort_config(output_dir: Path, optimization_level: Optional[str],
                            quantization: Optional["QuantizationSettings"], opset: int) -> None:
    """Writes `ort_config.json` with Optimum's `ORTConfig`: the optimisation level and quantization settings used."""
    from onnxruntime.quantization import QuantFormat, QuantizationMode, QuantType
    from optimum.onnxruntime import ORTConfig, QuantizationConfig

    quantization_config = None
    if quantization is not None:
        quantization_config = QuantizationConfig(
            is_static=quantization.is_static,
            format=QuantFormat[quantization.format],
            mode=QuantizationMode[quantization.mode],
            activations_dtype=QuantType[quantization.activations_dtype],
            activations_symmetric=quantization.activations_symmetric,
            weights_dtype=QuantType[quantization.weights_dtype],
            weights_symmetric=quantization.weights_symmetric,
            per_channel=quantization.per_channel,
            reduce_range=quantization.reduce_range,
            operators_to_quantize=list(quantization.operators_to_quantize),
        )
    optimization = optimization_config(optimization_level) if optimization_level is not None else None
    ORTConfig(opset=opset, optimization=optimization, quantization=quantization_config).save_pretrained(output_dir)
