"""OpenVINO: the IR files of an export, loading and compiling them, and running them as a `Runner`.

The IR is converted from the plain ONNX graph of `onnx_export.export_to_onnx` (the same trace the ONNX Runtime
backend writes) with `openvino.Core.read_model` and saved with `openvino.save_model` in fp32 (no fp16 weight
compression). Neither call goes through OpenVINO's model converter (`openvino.convert_model`), whose telemetry
would otherwise report each conversion; the runtime itself sends nothing.

Files, as optimum-intel names them: `openvino_model.xml` / `.bin` (fp32) and `openvino_model_int8.xml` / `.bin`
(INT8), next to `config.json` and the tokenizer. `openvino.Core().read_model(folder / "openvino_model.xml")`
loads either, and so does optimum-intel (`OVModelForSequenceClassification.from_pretrained(folder)`, with
`file_name="openvino_model_int8.xml"` for INT8), which reads `openvino_model.xml` by default and fetches the
`.bin` of the same stem.

On CPUs with bfloat16 units (AMX, AVX512-BF16) OpenVINO runs fp32 IR in bfloat16 unless it is told otherwise;
`compile_openvino` asks for f32 where the variant is fp32, so that its outputs are the ones checked for parity.

Telemetry: `import openvino` reports the import to Google Analytics (its model converter, `openvino.tools.ovc`,
sends an event when it is imported), and NNCF reports each quantization, unless the user opted out
(`opt_in_out --opt_out`) or a CI variable is set. `import_openvino` and `nncf_quantization.import_nncf` import both
as if the optional `openvino-telemetry` package were absent, the case both packages support with a stub that
sends nothing, so that hf-distill sends nothing on the user's behalf. A process that imported `openvino` (or
`nncf`) before hf-distill keeps its own setting.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from .onnx_export import ExportError

OPENVINO_FP32_FILE = "openvino_model.xml"
OPENVINO_INT8_FILE = "openvino_model_int8.xml"
INSTALL_HINT = 'pip install "hf-distill[openvino]"'
OV_MODEL_CLASSES = {
    "text-classification": "OVModelForSequenceClassification",
    "fill-mask": "OVModelForMaskedLM",
    "token-classification": "OVModelForTokenClassification",
    "question-answering": "OVModelForQuestionAnswering",
    "feature-extraction": "OVModelForFeatureExtraction",
}
"""The `optimum.intel` class that loads an OpenVINO export of each task."""


@contextlib.contextmanager
def telemetry_blocked() -> Iterator[None]:
    """Within it, `import openvino_telemetry` fails, so OpenVINO and NNCF imported inside use their no-op stubs.

    On exit `sys.modules` is as before (a module the process had imported is put back), so a later
    `import openvino_telemetry` of the user's works.
    """
    previous = sys.modules.get("openvino_telemetry")
    sys.modules["openvino_telemetry"] = None  # makes `import openvino_telemetry` raise ImportError
    try:
        yield
    finally:
        if previous is not None:
            sys.modules["openvino_telemetry"] = previous
        elif sys.modules.get("openvino_telemetry", 0) is None:
            del sys.modules["openvino_telemetry"]


def import_openvino():
    """`import openvino` without its import-time telemetry (see the module's docstring).

    Returns:
        The `openvino` module.
    """
    if "openvino" in sys.modules:
        import openvino
    else:
        with telemetry_blocked():
            import openvino
    return openvino


@functools.lru_cache(maxsize=None)
def openvino_import_error() -> Optional[str]:
    """Why `openvino` cannot be used here, in one line; `None` when it imports."""
    try:
        import_openvino()
    except Exception as error:  # ImportError, or a broken install that fails while importing
        return f"{type(error).__name__}: {error}".splitlines()[0]
    return None


def openvino_available() -> bool:
    """Whether the OpenVINO backend works here (`openvino` installed and importable)."""
    return openvino_import_error() is None


def require_openvino(what: str = "--backend openvino") -> None:
    """Raises a one-line `ExportError` naming the fix where `openvino` does not import.

    Args:
        what (`str`, defaults to `"--backend openvino"`): What needs OpenVINO, for the message.
    """
    error = openvino_import_error()
    if error:
        raise ExportError(f"{what} needs OpenVINO, which does not import here ({error}): install it with "
                          f"`{INSTALL_HINT}`.")


def openvino_version() -> str:
    """The installed OpenVINO runtime's version, e.g. `"2026.4.1"` (the build suffix dropped)."""
    openvino = import_openvino()

    return openvino.get_version().split("-")[0]


def bin_file(xml_path: Path) -> Path:
    """The weights file of an IR: the `.bin` of the same stem."""
    return Path(xml_path).with_suffix(".bin")


def convert_onnx_to_openvino(onnx_path: Path, xml_path: Path):
    """Reads an ONNX graph into OpenVINO and saves it as fp32 IR (`xml_path` and its `.bin`).

    Args:
        onnx_path (`Path`): The plain (not ONNX Runtime-fused) export; its input and output names carry over.
        xml_path (`Path`): Where the IR goes.

    Returns:
        `openvino.Model`: The model read, for quantization.
    """
    openvino = import_openvino()

    model = openvino.Core().read_model(str(onnx_path))
    save_ir(model, xml_path)
    return model


def save_ir(model, xml_path: Path) -> Path:
    """Saves an `openvino.Model` as IR with fp32 weights (OpenVINO would otherwise compress them to fp16)."""
    openvino = import_openvino()

    openvino.save_model(model, str(xml_path), compress_to_fp16=False)
    return Path(xml_path)


def read_ir(xml_path: Path):
    """Reads an IR file, with a one-line `ExportError` for a missing or corrupt file.

    Args:
        xml_path (`Path`): The `.xml` file; its `.bin` must be beside it.

    Returns:
        `openvino.Model`.
    """
    require_openvino()
    openvino = import_openvino()

    xml_path = Path(xml_path)
    if not xml_path.is_file() or not bin_file(xml_path).is_file():
        missing = xml_path if not xml_path.is_file() else bin_file(xml_path)
        raise ExportError(f"{missing} is missing, so {xml_path.parent} is not a complete OpenVINO export; re-run "
                          "`hf-distill export MODEL_DIR --backend openvino`.")
    try:
        return openvino.Core().read_model(str(xml_path))
    except Exception as error:  # corrupt xml or truncated bin
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(f"OpenVINO cannot read {xml_path} ({message}); the export is corrupt: re-run "
                          "`hf-distill export MODEL_DIR --backend openvino`.") from None


def compile_openvino(model, threads: Optional[int] = None, precision: Optional[str] = "f32"):
    """Compiles an OpenVINO model for the CPU, for one request at a time (`PERFORMANCE_HINT=LATENCY`).

    Args:
        model (`openvino.Model`, `str` or `Path`): The model, or its `.xml` file.
        threads (`int`, *optional*): `INFERENCE_NUM_THREADS`; OpenVINO's default (all cores) when `None`.
        precision (`str`, *optional*, defaults to `"f32"`): `INFERENCE_PRECISION_HINT` of the operations that are
            not quantized: `"f32"`, `"bf16"`, or `None` for the CPU's default (bf16 where it has AMX or
            AVX512-BF16, else f32).

    Returns:
        `openvino.CompiledModel`.
    """
    openvino = import_openvino()

    if isinstance(model, (str, Path)):
        model = read_ir(Path(model))
    config = {"PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    if precision is not None:
        config["INFERENCE_PRECISION_HINT"] = precision
    return openvino.Core().compile_model(model, "CPU", config)


def _tensor_name(port) -> str:
    """The port's graph name (`logits`), not an internal alias that OpenVINO may add (`/model/.../MatMul_output_0`)."""
    names = sorted(port.get_names())
    plain = [name for name in names if "/" not in name]
    return (plain or names or [port.get_any_name()])[0]


class OpenVINORunner:
    """A compiled OpenVINO model as a `Runner` (one infer request, reused).

    Args:
        model (`openvino.Model`, `str` or `Path`): The model, or its `.xml` file.
        threads (`int`, *optional*): Inference threads (OpenVINO's default when `None`).
        precision (`str`, *optional*, defaults to `"f32"`): See `compile_openvino`.
    """

    def __init__(self, model, threads: Optional[int] = None, precision: Optional[str] = "f32"):
        self.compiled = compile_openvino(model, threads, precision)
        self.input_names = [_tensor_name(port) for port in self.compiled.inputs]
        self.output_names = [_tensor_name(port) for port in self.compiled.outputs]
        self.request = self.compiled.create_infer_request()

    @property
    def precision(self) -> str:
        """The precision OpenVINO runs the operations that are not quantized in (`"f32"`, `"bf16"`)."""
        value = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        return value.to_string() if hasattr(value, "to_string") else str(value)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = self.request.infer({name: feeds[name] for name in self.input_names})
        return [np.asarray(results[port]) for port in self.compiled.outputs]
