"""INT8 quantization of an OpenVINO model with NNCF (`nncf.quantize`, `nncf.compress_weights`).

- `"static"`: NNCF's post-training quantization. Activation ranges are calibrated on the task's training examples,
  and the settings are NNCF's transformer ones (`nncf.ModelType.TRANSFORMER`): the operations whose quantization
  hurts transformers (additions, layer norms, the softmax input, ...) stay in floating point, SmoothQuant moves
  activation outliers into the weights before the MatMuls are quantized, and bias correction restores each
  layer's mean output.
- `"dynamic"`: INT8 weights only (`nncf.compress_weights`, asymmetric per output channel), with activations
  quantized per group at run time by OpenVINO's CPU plugin (`DYNAMIC_QUANTIZATION_GROUP_SIZE`). No calibration.

`NNCFSettings` holds the options and is written into the export report. NNCF is imported with its telemetry off
(see `import_nncf`).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from typing import Optional

from .onnx_export import ExportError
from .openvino_backend import INSTALL_HINT, import_openvino, telemetry_blocked

OPENVINO_MODES = ("static", "dynamic")
DYNAMIC_QUANTIZATION_GROUP_SIZE = 32
"""Group size of OpenVINO's run-time activation quantization for the `"dynamic"` mode (the CPU plugin's default)."""


@dataclass(frozen=True)
class NNCFSettings:
    """The options of an OpenVINO INT8 quantization, as written into `export_report.json`.

    Attributes:
        mode (`str`): `"static"` (calibrated post-training quantization) or `"dynamic"` (INT8 weights, activations
            quantized at run time).
        model_type (`str`, *optional*, defaults to `"transformer"`): `nncf.ModelType`; `None` quantizes every
            operation NNCF can (less accurate on transformers).
        preset (`str`, defaults to `"mixed"`): `nncf.QuantizationPreset`: `"mixed"` (symmetric weights, asymmetric
            activations) or `"performance"` (both symmetric).
        smooth_quant_alpha (`float`, defaults to 0.95): SmoothQuant's migration strength for the MatMuls; a negative
            value turns SmoothQuant off.
        fast_bias_correction (`bool`, defaults to `True`): NNCF's fast bias correction; `False` runs the slower,
            layer-by-layer one.
        ignored_scope (`tuple[str, ...]`, defaults to `()`): Regular expressions of node names kept in floating
            point (sensitive layers).
        subset_size (`int`, defaults to 0): Calibration examples used (set from the data).
    """

    mode: str = "static"
    model_type: Optional[str] = "transformer"
    preset: str = "mixed"
    smooth_quant_alpha: float = 0.95
    fast_bias_correction: bool = True
    ignored_scope: tuple[str, ...] = field(default_factory=tuple)
    subset_size: int = 0

    def to_dict(self) -> dict:
        values = asdict(self)
        values["ignored_scope"] = list(self.ignored_scope)
        return values


def nncf_settings(mode: str, *, smooth_quant_alpha: Optional[float] = None, fast_bias_correction: bool = True,
                  ignored_scope=(), model_type: Optional[str] = "transformer", preset: str = "mixed") -> NNCFSettings:
    """Checks and collects the options of an OpenVINO INT8 quantization.

    Args:
        mode (`str`): `"static"` or `"dynamic"`.
        smooth_quant_alpha (`float`, *optional*): SmoothQuant's strength (default 0.95; negative: off).
        fast_bias_correction (`bool`, defaults to `True`): Fast or layer-by-layer bias correction.
        ignored_scope (`Iterable[str]`, defaults to `()`): Node-name regular expressions kept in floating point.
        model_type (`str`, *optional*, defaults to `"transformer"`): `"transformer"` or `None`.
        preset (`str`, defaults to `"mixed"`): `"mixed"` or `"performance"`.

    Returns:
        `NNCFSettings`.

    Raises:
        ExportError: For an unknown mode, model type or preset.
    """
    if mode not in OPENVINO_MODES:
        raise ExportError(f"quantize={mode!r} for the OpenVINO backend: choose one of {', '.join(OPENVINO_MODES)}.")
    if model_type not in ("transformer", None):
        raise ExportError(f"model_type={model_type!r}: choose 'transformer' or None.")
    if preset not in ("mixed", "performance"):
        raise ExportError(f"preset={preset!r} for NNCF: choose 'mixed' or 'performance'.")
    return NNCFSettings(mode=mode, model_type=model_type, preset=preset,
                        smooth_quant_alpha=0.95 if smooth_quant_alpha is None else float(smooth_quant_alpha),
                        fast_bias_correction=fast_bias_correction, ignored_scope=tuple(ignored_scope))


def nncf_import_error() -> Optional[str]:
    """Why NNCF cannot be used here, in one line; `None` when it imports."""
    try:
        import_nncf()
    except Exception as error:
        return f"{type(error).__name__}: {error}".splitlines()[0]
    return None


def import_nncf():
    """Imports NNCF (and OpenVINO) with their telemetry stubs, unless the process imported NNCF before (then its own
    setting holds).

    NNCF reports each `nncf.quantize` call to Google Analytics unless the user opted out (`opt_in_out --opt_out`);
    where `openvino_telemetry` does not import, it uses a stub that sends nothing (`openvino_backend.py`).
    """
    import_openvino()
    if "nncf" in sys.modules:
        import nncf
    else:
        with telemetry_blocked():
            import nncf
    return nncf


def require_nncf() -> None:
    """Raises a one-line `ExportError` naming the fix where NNCF does not import."""
    error = nncf_import_error()
    if error:
        raise ExportError(f"INT8 quantization with the OpenVINO backend needs NNCF, which does not import here "
                          f"({error}): install it with `{INSTALL_HINT}`.")


def _ignored_scope(nncf, patterns: tuple[str, ...]):
    if not patterns:
        return None
    return nncf.IgnoredScope(patterns=list(patterns), validate=False)


def quantize_static_openvino(model, calibration_feeds: list[dict], settings: NNCFSettings):
    """Post-training INT8 quantization of an OpenVINO model, calibrated on `calibration_feeds`.

    Args:
        model (`openvino.Model`): The fp32 model (left unchanged).
        calibration_feeds (`list[dict]`): Model inputs (numpy int64, batch 1 each, as NNCF's transformer
            statistics expect).
        settings (`NNCFSettings`): From `nncf_settings("static", ...)`.

    Returns:
        `openvino.Model`: The quantized model (FakeQuantize nodes; the CPU plugin runs the MatMuls in INT8).
    """
    if not calibration_feeds:
        raise ExportError("Static quantization needs calibration examples: pass the task's data (task_name / "
                          "data_dir) and calibration_samples > 0, or use quantize='dynamic'.")
    nncf = import_nncf()
    from nncf.quantization.advanced_parameters import AdvancedSmoothQuantParameters

    advanced = nncf.AdvancedQuantizationParameters(
        smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=settings.smooth_quant_alpha))
    kwargs = {}
    if settings.model_type is not None:
        kwargs["model_type"] = nncf.ModelType(settings.model_type)
    ignored = _ignored_scope(nncf, settings.ignored_scope)
    if ignored is not None:
        kwargs["ignored_scope"] = ignored
    return nncf.quantize(
        model.clone(),
        nncf.Dataset(calibration_feeds),
        preset=nncf.QuantizationPreset(settings.preset),
        subset_size=len(calibration_feeds),
        fast_bias_correction=settings.fast_bias_correction,
        advanced_parameters=advanced,
        **kwargs,
    )


def compress_weights_openvino(model, settings: NNCFSettings):
    """INT8 weights (asymmetric, per output channel) of every MatMul and embedding; activations stay floating point
    until OpenVINO quantizes them at run time.

    Args:
        model (`openvino.Model`): The fp32 model (left unchanged).
        settings (`NNCFSettings`): From `nncf_settings("dynamic", ...)`.

    Returns:
        `openvino.Model`.
    """
    nncf = import_nncf()
    kwargs = {}
    ignored = _ignored_scope(nncf, settings.ignored_scope)
    if ignored is not None:
        kwargs["ignored_scope"] = ignored
    compressed = nncf.compress_weights(model.clone(), mode=nncf.CompressWeightsMode.INT8_ASYM, **kwargs)
    compressed.set_rt_info(str(DYNAMIC_QUANTIZATION_GROUP_SIZE),
                           ["runtime_options", "DYNAMIC_QUANTIZATION_GROUP_SIZE"])
    return compressed
