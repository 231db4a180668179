"""`ort_config.json`: the optimisation level and quantization settings of an export, in Optimum's format.

After an Optimum export it is written by Optimum's own `ORTConfig`. After a torch export it is written here, with
the same top-level keys (`opset`, `use_external_data_format`, `one_external_file`, `optimization`,
`quantization`), every `QuantizationConfig` key, and the `OptimizationConfig` keys that the level sets (the
others keep Optimum's defaults, which are what runs): `ORTConfig.from_pretrained(folder)` reads it as the
configuration Optimum would have written.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

from .quantization import QuantizationSettings

ORT_CONFIG_FILE = "ort_config.json"


def quantization_dict(settings: QuantizationSettings) -> dict:
    """The settings as Optimum's `QuantizationConfig` writes them (enum names; no node lists; MatMul weights per
    channel along axis 1)."""
    values = dataclasses.asdict(settings)
    values["operators_to_quantize"] = list(settings.operators_to_quantize)
    values.update(nodes_to_quantize=[], nodes_to_exclude=[], qdq_add_pair_to_weight=False, qdq_dedicated_pair=False,
                  qdq_op_type_per_channel_support_to_axis={"MatMul": 1})
    return values


def ort_config_dict(optimization_level: Optional[str], quantization: Optional[QuantizationSettings],
                    opset: int) -> dict:
    """The content of `ort_config.json` for a torch export."""
    from .graph_optimization import LEVELS

    return {
        "one_external_file": True,
        "opset": opset,
        "optimization": LEVELS[optimization_level].settings() if optimization_level is not None else {},
        "quantization": quantization_dict(quantization) if quantization is not None else {},
        "use_external_data_format": False,
    }


def save_ort_config(output_dir: Path, optimization_level: Optional[str], quantization: Optional[QuantizationSettings],
                    opset: int, exporter: str) -> Path:
    """Writes `output_dir/ort_config.json`: with Optimum's `ORTConfig` after an Optimum export, else here.

    Args:
        output_dir (`Path`): The export folder.
        optimization_level (`str`, *optional*): The level applied (`None` when the graph was not optimised).
        quantization (`QuantizationSettings`, *optional*): The int8 settings, `None` without quantization.
        opset (`int`): The ONNX opset of the export.
        exporter (`str`): `"optimum"` or `"torch"`.

    Returns:
        `Path`: The file written.
    """
    if exporter == "optimum":
        from .optimum_backend import save_optimum_ort_config

        save_optimum_ort_config(output_dir, optimization_level, quantization, opset)
    else:
        with open(output_dir / ORT_CONFIG_FILE, "w", encoding="utf-8") as file:
            json.dump(ort_config_dict(optimization_level, quantization, opset), file, indent=2, sort_keys=True)
            file.write("\n")
    return output_dir / ORT_CONFIG_FILE
