"""Export for CPU serving, INT8 quantization and their checks (`hf-distill export`, `hf-distill benchmark`).

Two backends (`backend=`): ONNX Runtime (default) and OpenVINO. The ONNX graph is written by Optimum where
optimum-onnx is installed (transformers < 4.58) and by `torch.onnx` everywhere else (`exporter="auto"`;
`backend.py`); ONNX Runtime's optimiser and quantizer then write `model.onnx` / `model_quantized.onnx`, or OpenVINO
converts the plain graph to `openvino_model.xml` and NNCF quantizes it (`openvino_exporter.py`). Optimum, ONNX,
ONNX Runtime, OpenVINO and NNCF are imported only when a function here runs, so `import hf_distill` stays fast.

    from hf_distill.export import export_model
    report = export_model("runs/glue/sst2/distilbert", quantize="auto", backend="openvino",
                          task_name="sst2", data_dir="../shared/data/glue")
"""

from .backend import EXPORTERS, optimum_onnx_available
from .benchmark import BENCHMARK_FILE, benchmark_model
from .exporter import AUTO_QUANTIZATION, benchmark_export, export_model, resolve_quantization
from .onnx_export import ONNX_FP32_FILE, ONNX_INT8_FILE, ORT_MODEL_CLASSES, REPORT_FILE, ExportError
from .openvino_backend import OPENVINO_FP32_FILE, OPENVINO_INT8_FILE, OV_MODEL_CLASSES, openvino_available
from .quantization import detect_preset
from .report import BACKENDS, format_table
from .verification import ParityError

__all__ = [
    "AUTO_QUANTIZATION",
    "BACKENDS",
    "BENCHMARK_FILE",
    "EXPORTERS",
    "ExportError",
    "ONNX_FP32_FILE",
    "ONNX_INT8_FILE",
    "OPENVINO_FP32_FILE",
    "OPENVINO_INT8_FILE",
    "ORT_MODEL_CLASSES",
    "OV_MODEL_CLASSES",
    "ParityError",
    "REPORT_FILE",
    "benchmark_export",
    "benchmark_model",
    "detect_preset",
    "export_model",
    "format_table",
    "openvino_available",
    "optimum_onnx_available",
    "resolve_quantization",
]
