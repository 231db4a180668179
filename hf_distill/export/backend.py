"""Which exporter writes and optimises the ONNX graph: Optimum's, or `torch.onnx` with ONNX Runtime's own tools.

- `"optimum"`: `optimum.exporters.onnx` and `optimum.onnxruntime.ORTOptimizer` (`optimum_backend.py`). Needs
  optimum-onnx, which installs only with transformers < 4.58.
- `"torch"`: `torch.onnx.export` (`torch_backend.py`) and ONNX Runtime's transformer optimiser
  (`graph_optimization.py`). Works with every supported transformers version.
- `"auto"`: Optimum where it imports, else torch.

Both write the same folder (same file names, input and output names, dynamic axes); quantization calls ONNX
Runtime directly either way (`quantization.py`).
"""

from __future__ import annotations

import functools
from typing import Optional

from .onnx_export import ExportError

EXPORTERS = ("auto", "optimum", "torch")
REPORT_NAMES = {"optimum": "optimum", "torch": "torch.onnx"}
"""The `exporter` value of `export_report.json` for each backend."""


@functools.lru_cache(maxsize=None)
def optimum_onnx_import_error() -> Optional[str]:
    """Why Optimum's ONNX exporter cannot be used here, in one line; `None` when it imports.

    Under transformers 5.x `optimum.exporters.onnx` and `optimum.onnxruntime` do not exist (optimum-onnx requires
    transformers < 4.58), and a forced install may fail at import time with any error, so every error counts.
    """
    try:
        import optimum.exporters.onnx  # noqa: F401
        import optimum.onnxruntime  # noqa: F401
    except Exception as error:  # ImportError, or an optimum-onnx that does not fit this transformers
        return f"{type(error).__name__}: {error}".splitlines()[0]
    return None


def optimum_onnx_available() -> bool:
    """Whether `exporter="optimum"` works here (optimum-onnx installed and importable)."""
    return optimum_onnx_import_error() is None


def resolve_exporter(exporter: str = "auto") -> str:
    """The backend to run for an `exporter` option.

    Args:
        exporter (`str`, defaults to `"auto"`): `"auto"` (Optimum where it imports, else torch), `"optimum"` or
            `"torch"`.

    Returns:
        `str`: `"optimum"` or `"torch"`.

    Raises:
        ExportError: For an unknown name, or `"optimum"` where optimum-onnx does not import.
    """
    if exporter not in EXPORTERS:
        raise ExportError(f"exporter={exporter!r}: choose one of {', '.join(EXPORTERS)}.")
    if exporter == "torch":
        return "torch"
    error = optimum_onnx_import_error()
    if exporter == "auto":
        return "torch" if error else "optimum"
    if error:
        raise ExportError(f"exporter='optimum' needs optimum-onnx, which does not import here ({error}): install it "
                          "with transformers < 4.58 (`pip install optimum-onnx 'transformers<4.58'`), or use "
                          "exporter='torch' (`--exporter torch`).")
    return "optimum"
