"""ONNX export, INT8 quantization and their checks (`hf-distill export`, `hf-distill benchmark`).

The graph is written by Optimum where optimum-onnx is installed (transformers < 4.58) and by `torch.onnx` with
ONNX Runtime's own optimiser everywhere else (`exporter="auto"`; `backend.py`); both write the same folder.
Optimum, ONNX and ONNX Runtime are imported only when a function here runs, so `import hf_distill` stays fast.

    from hf_distill.export import export_model
    report = export_model("runs/glue/sst2/distilbert", "runs/glue/sst2/onnx", quantize="dynamic",
                          task_name="sst2", data_dir="../shared/data/glue")
"""

from .backend import EXPORTERS, optimum_onnx_available
from .exporter import benchmark_export, export_model
from .onnx_export import ONNX_FP32_FILE, ONNX_INT8_FILE, ORT_MODEL_CLASSES, REPORT_FILE, ExportError
from .quantization import detect_preset
from .report import format_table
from .verification import ParityError

__all__ = [
    "EXPORTERS",
    "ExportError",
    "ONNX_FP32_FILE",
    "ONNX_INT8_FILE",
    "ORT_MODEL_CLASSES",
    "ParityError",
    "REPORT_FILE",
    "benchmark_export",
    "detect_preset",
    "export_model",
    "format_table",
    "optimum_onnx_available",
]
