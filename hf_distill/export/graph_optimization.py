"""Graph optimisation of the torch backend's export with ONNX Runtime's own transformer optimiser.

`onnxruntime.transformers.optimizer.optimize_model` with `FusionOptions`, set up level by level as Optimum's
`AutoOptimizationConfig` does, so that O1/O2/O3 mean the same on both backends:

- O1: ONNX Runtime's basic graph optimisations (constant folding, redundant nodes) only, no transformer fusions.
- O2: ONNX Runtime's extended optimisations, then the transformer fusions (`Attention`, `SkipLayerNormalization`,
  `BiasGelu`, ...), without approximations. The embedding fusion (`EmbedLayerNormalization`) stays off because
  ONNX Runtime's quantization cannot handle it; symbolic shape inference is off (it fails on some exports).
- O3: O2 plus the GELU approximation (`FastGelu`), slightly less exact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .onnx_export import ONNX_FP32_FILE

ORT_MODEL_TYPES = {
    **dict.fromkeys(
        ("albert", "bert", "big_bird", "camembert", "deberta", "deberta-v2", "distilbert", "electra", "modernbert",
         "mpnet", "nystromformer", "roberta", "xlm-roberta"),
        "bert",
    ),
    "clip": "clip",
}
"""transformers `model_type` -> the model type of ONNX Runtime's optimiser, for the encoders Optimum also maps there.
Other types (CLIP towers' `clip_text_model` / `clip_vision_model` among them, as with Optimum) keep the plain export."""


@dataclass(frozen=True)
class OptimizationLevel:
    """What one level asks of ONNX Runtime's optimiser (in the words of Optimum's `OptimizationConfig`).

    Attributes:
        optimization_level (`int`): ONNX Runtime's own graph optimisation level (1 basic, 2 extended).
        enable_transformers_specific_optimizations (`bool`): Apply the transformer fusions after ONNX Runtime's.
        enable_gelu_approximation (`bool`): Replace GELU by its tanh approximation (`FastGelu`).
    """

    optimization_level: int
    enable_transformers_specific_optimizations: bool
    enable_gelu_approximation: bool = False

    def settings(self) -> dict:
        """The full settings as Optimum's `OptimizationConfig` keys (for `ort_config.json`); unnamed keys keep
        Optimum's defaults, which are what runs here."""
        return {
            "optimization_level": self.optimization_level,
            "enable_transformers_specific_optimizations": self.enable_transformers_specific_optimizations,
            "enable_gelu_approximation": self.enable_gelu_approximation,
            "optimize_for_gpu": False,
            "fp16": False,
            "disable_embed_layer_norm_fusion": True,
            "disable_shape_inference": True,
        }


LEVELS = {
    "O1": OptimizationLevel(optimization_level=1, enable_transformers_specific_optimizations=False),
    "O2": OptimizationLevel(optimization_level=2, enable_transformers_specific_optimizations=True),
    "O3": OptimizationLevel(optimization_level=2, enable_transformers_specific_optimizations=True,
                            enable_gelu_approximation=True),
}


def fusion_options(level: str, ort_model_type: str):
    """ONNX Runtime's `FusionOptions` for a level (`"O1"`, `"O2"`, `"O3"`) and an optimiser model type.

    Returns:
        `FusionOptions`: ONNX Runtime's defaults for the model type, with the embedding fusion, symbolic shape
        inference and (CLIP) group-norm and packed-KV fusions off, and the GELU approximation on for O3 only.
    """
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions(ort_model_type)
    options.enable_embed_layer_norm = False
    options.enable_shape_inference = False
    options.enable_gelu_approximation = LEVELS[level].enable_gelu_approximation
    if ort_model_type == "clip":  # Stable Diffusion fusions that Optimum leaves off by default
        options.enable_group_norm = False
        options.enable_packed_kv = False
    return options


def _attention_shape(config: dict) -> tuple[int, int]:
    """(heads, hidden size) from a config dict; 0 lets ONNX Runtime read them from the graph."""
    heads = next((config[key] for key in ("num_attention_heads", "n_heads", "num_heads") if key in config), 0)
    hidden = next((config[key] for key in ("hidden_size", "dim", "d_model") if key in config), 0)
    return int(heads), int(hidden)


def _uses_external_data(path: Path) -> bool:
    import onnx
    from onnx.external_data_helper import uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    return any(uses_external_data(tensor) for tensor in model.graph.initializer)


def optimize_with_onnxruntime(raw_dir: Path, output_dir: Path, level: str) -> Optional[str]:
    """Optimises `raw_dir/model.onnx` into `output_dir/model.onnx` with ONNX Runtime's transformer optimiser.

    Args:
        raw_dir (`Path`): Folder of the plain export (`model.onnx`, `config.json`).
        output_dir (`Path`): Where the optimised `model.onnx` goes.
        level (`str`): `"O1"`, `"O2"` or `"O3"`.

    Returns:
        `str` or `None`: `level`, or `None` when ONNX Runtime's optimiser does not know the model type (a note is
        printed and nothing is written: the caller keeps the plain export).
    """
    from onnxruntime.transformers.optimizer import optimize_model

    with open(raw_dir / "config.json", encoding="utf-8") as file:
        config = json.load(file)
    model_type = config["model_type"]
    ort_model_type = ORT_MODEL_TYPES.get(model_type)
    if ort_model_type is None:
        print(f"hf-distill export: graph optimisation {level} is not available for model type {model_type!r} "
              "(ONNX Runtime's transformer optimiser knows BERT-like encoders and CLIP); keeping the plain export "
              "(ONNX Runtime still applies its own optimisations when loading).")
        return None
    source = raw_dir / ONNX_FP32_FILE
    heads, hidden = _attention_shape(config)
    settings = LEVELS[level]
    optimizer = optimize_model(
        str(source),
        model_type=ort_model_type,
        num_heads=heads,
        hidden_size=hidden,
        optimization_options=fusion_options(level, ort_model_type),
        opt_level=settings.optimization_level,
        use_gpu=False,
        only_onnxruntime=not settings.enable_transformers_specific_optimizations,
    )
    optimizer.save_model_to_file(str(output_dir / ONNX_FP32_FILE), use_external_data_format=_uses_external_data(source),
                                 all_tensors_to_one_file=True)
    return level
