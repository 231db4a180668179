"""ONNX export of a saved model folder, and ONNX Runtime graph optimisation, through either backend.

`export_to_onnx` and `optimize_onnx` run the backend that `backend.resolve_exporter` picks: Optimum
(`optimum_backend.py`) or `torch.onnx` with ONNX Runtime's optimiser (`torch_backend.py`, `graph_optimization.py`).
Either writes the same folder: `model.onnx` with the input and output names and dynamic axes below, `config.json`
and the preprocessor's files.

Supported models: sequence classification (and regression), masked LM, token classification,
question answering, plain encoders (`feature-extraction`), and the two towers of a CLIP dual
encoder (`CLIPTextModelWithProjection`, `CLIPVisionModelWithProjection`, or either tower of a
`CLIPModel` folder with `tower="text"` / `"vision"`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ONNX_FP32_FILE = "model.onnx"
ONNX_INT8_FILE = "model_quantized.onnx"
REPORT_FILE = "export_report.json"
DEFAULT_OPSET = 17

# Architecture suffix -> (optimum task, transformers auto class name).
_HEADS = {
    "ForSequenceClassification": ("text-classification", "AutoModelForSequenceClassification"),
    "ForMaskedLM": ("fill-mask", "AutoModelForMaskedLM"),
    "ForTokenClassification": ("token-classification", "AutoModelForTokenClassification"),
    "ForQuestionAnswering": ("question-answering", "AutoModelForQuestionAnswering"),
}
_CLIP_TOWERS = {
    "text": "CLIPTextModelWithProjection",
    "vision": "CLIPVisionModelWithProjection",
}
ORT_MODEL_CLASSES = {
    "text-classification": "ORTModelForSequenceClassification",
    "fill-mask": "ORTModelForMaskedLM",
    "token-classification": "ORTModelForTokenClassification",
    "question-answering": "ORTModelForQuestionAnswering",
    "feature-extraction": "ORTModelForFeatureExtraction",
}
"""The `optimum.onnxruntime` class that loads an export of each task."""

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
"""Inputs of a text model's graph, in this order, as far as the model and its tokenizer use them."""


def text_axes() -> dict[int, str]:
    """The dynamic axes of a `(batch, sequence)` tensor."""
    return {0: "batch_size", 1: "sequence_length"}


TASK_OUTPUTS = {
    "text-classification": {"logits": {0: "batch_size"}},
    "fill-mask": {"logits": text_axes()},
    "token-classification": {"logits": text_axes()},
    "question-answering": {"start_logits": text_axes(), "end_logits": text_axes()},
    "feature-extraction": {"last_hidden_state": text_axes()},
}
"""Output names and dynamic axes of the graph for each task (Optimum's)."""
TOWER_OUTPUTS = {
    "text": {"text_embeds": {0: "batch_size"}, "last_hidden_state": text_axes()},
    "vision": {"image_embeds": {0: "batch_size"}, "last_hidden_state": {0: "batch_size"}},
}
"""Output names and dynamic axes of a CLIP tower's graph: the projected embedding and the last hidden state."""
PIXEL_AXES = {0: "batch_size", 1: "num_channels", 2: "height", 3: "width"}
"""Dynamic axes of `pixel_values` (Optimum's; the position embeddings fix the image size in practice)."""


class ExportError(ValueError):
    """A model folder that cannot be exported, or an export that failed its own checks."""


@dataclass
class ModelSpec:
    """What to export from a model folder.

    Attributes:
        task (`str`): Optimum task name (`"text-classification"`, `"fill-mask"`, `"feature-extraction"`, ...).
        model_class (`str`): The `transformers` class that loads the PyTorch model.
        tower (`str`, *optional*): `"text"` or `"vision"` for a CLIP tower, else `None`.
        modality (`str`): `"text"` or `"vision"`: what the model's inputs are.
    """

    task: str
    model_class: str
    tower: Optional[str] = None
    modality: str = "text"


def _read_config(model_dir: Path) -> dict:
    if not model_dir.is_dir():
        raise ExportError(f"{model_dir} is not a folder. Pass a model folder written by `save_pretrained` "
                          "(e.g. the output_dir of `hf-distill train`).")
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise ExportError(f"{model_dir} has no config.json, so it is not a saved model folder. Pass the folder "
                          "written by `save_pretrained` (e.g. the output_dir of `hf-distill train`).")
    try:
        with open(config_path, encoding="utf-8") as file:
            config = json.load(file)
    except json.JSONDecodeError as error:
        raise ExportError(f"{config_path} is not valid JSON ({error}); the folder is corrupt. Re-save the model "
                          "with `save_pretrained`.") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise ExportError(f"{config_path} has no `model_type`; it is not a transformers config. Re-save the model "
                          "with `save_pretrained`.")
    weights = [name for name in os.listdir(model_dir) if name.endswith((".safetensors", ".bin"))]
    if not weights:
        raise ExportError(f"{model_dir} holds no weights (no *.safetensors or *.bin file). Copy the whole folder "
                          "written by `save_pretrained`.")
    return config


def resolve_model_spec(model_dir: str | os.PathLike, task: str = "auto", tower: Optional[str] = None) -> ModelSpec:
    """Decides what to export from a model folder's `config.json`.

    Args:
        model_dir (`str` or `os.PathLike`): A folder written by `save_pretrained`.
        task (`str`, defaults to `"auto"`): An optimum task name to force, or `"auto"` to read it from the
            config's `architectures`.
        tower (`str`, *optional*): `"text"` or `"vision"`: which tower of a CLIP model to export.

    Returns:
        `ModelSpec`.

    Raises:
        ExportError: For a folder that is not a saved model, or an architecture with no known export.
    """
    config = _read_config(Path(model_dir))
    architecture = (config.get("architectures") or [""])[0]
    model_type = config["model_type"]
    if model_type.startswith("clip") or architecture.startswith("CLIP"):
        if tower is None:
            tower = {"CLIPTextModelWithProjection": "text", "CLIPTextModel": "text",
                     "CLIPVisionModelWithProjection": "vision", "CLIPVisionModel": "vision"}.get(architecture)
        if tower not in _CLIP_TOWERS:
            raise ExportError(f"{model_dir} is a CLIP model ({architecture or model_type}); choose the tower to "
                              "export with tower='text' or tower='vision' (`--tower text|vision`).")
        return ModelSpec("feature-extraction", _CLIP_TOWERS[tower], tower=tower, modality=tower)
    if tower is not None:
        raise ExportError(f"tower={tower!r} applies to CLIP dual encoders only; {model_dir} is a {model_type} model.")
    for suffix, (head_task, auto_class) in _HEADS.items():
        if architecture.endswith(suffix):
            if task not in ("auto", head_task):
                raise ExportError(f"{model_dir} holds a {architecture}, which exports as {head_task!r}, not {task!r}.")
            return ModelSpec(head_task, auto_class)
    if task in ("auto", "feature-extraction") and (architecture.endswith("Model") or not architecture):
        return ModelSpec("feature-extraction", "AutoModel")
    if task in ORT_MODEL_CLASSES:
        inverse = {head_task: auto_class for head_task, auto_class in _HEADS.values()}
        return ModelSpec(task, inverse.get(task, "AutoModel"))
    raise ExportError(f"Don't know how to export {architecture or model_type} from {model_dir}. Supported: "
                      f"*ForSequenceClassification, *ForMaskedLM, *ForTokenClassification, *ForQuestionAnswering, "
                      f"base encoders and CLIP towers; or pass task= one of {sorted(ORT_MODEL_CLASSES)}.")


def load_pytorch_model(model_dir: str | os.PathLike, spec: ModelSpec, attn_implementation: Optional[str] = "eager"):
    """Loads the PyTorch model of `spec` in eval mode, with a clear error for corrupt or mismatched weights.

    Args:
        model_dir (`str` or `os.PathLike`): The model folder.
        spec (`ModelSpec`): What to load.
        attn_implementation (`str`, *optional*, defaults to `"eager"`): The attention kernel. The export traces the
            eager attention (the pattern ORT's optimiser fuses into its `Attention` op); the latency baseline passes
            `None`, transformers' default (SDPA), which is what a user serving the PyTorch model gets.

    Returns:
        `PreTrainedModel`.
    """
    import transformers

    model_class = getattr(transformers, spec.model_class)
    kwargs = {}
    if spec.tower is not None and _read_config(Path(model_dir))["model_type"] == "clip":
        # One tower of a full CLIPModel folder: its sub-config, with the dual encoder's projection width.
        full = transformers.CLIPConfig.from_pretrained(str(model_dir))
        kwargs["config"] = full.text_config if spec.tower == "text" else full.vision_config
        kwargs["config"].projection_dim = full.projection_dim
    try:
        if attn_implementation is not None:
            kwargs["attn_implementation"] = attn_implementation
        model = model_class.from_pretrained(str(model_dir), **kwargs)
    except Exception as error:  # corrupt safetensors, shape mismatch with config.json, ...
        raise ExportError(
            f"Could not load {spec.model_class} from {model_dir}: {type(error).__name__}: {error}\n"
            "The folder is corrupt or its weights do not match its config.json. Re-save the model with "
            "`save_pretrained` (or copy the whole folder again)."
        ) from error
    return model.eval()


def load_preprocessor(model_dir: str | os.PathLike, spec: ModelSpec, model=None):
    """The model's tokenizer (text) or image processor (vision; `None` when the folder has none).

    Raises:
        ExportError: When a text model's folder has no usable tokenizer, or the tokenizer's vocabulary is larger
            than the model's embedding matrix (a tokenizer from another model).
    """
    from transformers import AutoImageProcessor, AutoTokenizer

    if spec.modality == "vision":
        try:
            return AutoImageProcessor.from_pretrained(str(model_dir))
        except Exception:
            return None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    except Exception as error:
        raise ExportError(f"Could not load a tokenizer from {model_dir} ({type(error).__name__}: {error}). Save the "
                          "tokenizer next to the model (`tokenizer.save_pretrained(model_dir)`).") from error
    if model is not None:
        vocab_size = model.get_input_embeddings().weight.shape[0]
        if len(tokenizer) > vocab_size:
            raise ExportError(f"The tokenizer in {model_dir} has {len(tokenizer)} tokens but the model's embedding has "
                              f"{vocab_size} rows: the tokenizer belongs to another model. Save the model's own "
                              "tokenizer into the folder.")
    return tokenizer


def output_axes(spec: ModelSpec) -> dict[str, dict[int, str]]:
    """Output names (in graph order) and their dynamic axes for `spec` (a fresh copy)."""
    outputs = TOWER_OUTPUTS[spec.tower] if spec.tower is not None else TASK_OUTPUTS[spec.task]
    return {name: dict(axes) for name, axes in outputs.items()}


def export_to_onnx(model, spec: ModelSpec, preprocessor, output_dir: Path, opset: int = DEFAULT_OPSET,
                   exporter: str = "auto") -> Path:
    """Exports `model` to `output_dir/model.onnx` with dynamic batch and sequence axes.

    Writes `model.onnx`, `config.json` and the preprocessor files into `output_dir`.

    Args:
        model (`PreTrainedModel`): The PyTorch model, in eval mode (left in eval mode).
        spec (`ModelSpec`): What is exported.
        preprocessor (`PreTrainedTokenizerBase` or image processor, *optional*): Saved next to the graph.
        output_dir (`Path`): The folder to write.
        opset (`int`, defaults to 17): ONNX opset.
        exporter (`str`, defaults to `"auto"`): `"optimum"`, `"torch"` or `"auto"` (see `backend.resolve_exporter`).

    Returns:
        `Path`: The exported `model.onnx`.
    """
    from .backend import resolve_exporter

    exporter = resolve_exporter(exporter)
    output_dir.mkdir(parents=True, exist_ok=True)
    if exporter == "optimum":
        from .optimum_backend import export_with_optimum

        export_with_optimum(model, spec, preprocessor, output_dir, opset)
    else:
        from .torch_backend import export_with_torch

        export_with_torch(model, spec, preprocessor, output_dir, opset)
    model.config.save_pretrained(output_dir)
    if preprocessor is not None:
        preprocessor.save_pretrained(output_dir)
    path = output_dir / ONNX_FP32_FILE
    if not path.is_file():
        raise ExportError(f"The {exporter} exporter wrote no {ONNX_FP32_FILE} into {output_dir}; files: "
                          f"{sorted(os.listdir(output_dir))}.")
    return path


def optimize_onnx(raw_dir: Path, output_dir: Path, level: Optional[str], exporter: str = "auto") -> Optional[str]:
    """Applies ONNX Runtime's graph optimisation at `level` into `output_dir`, through the exporter's backend.

    Optimum's `ORTOptimizer` for `exporter="optimum"`, ONNX Runtime's own transformer optimiser for `"torch"`
    (`graph_optimization.py`); the levels mean the same on both.

    Args:
        raw_dir (`Path`): Folder of the plain export (`model.onnx`, `config.json`).
        output_dir (`Path`): Where the optimised `model.onnx` goes.
        level (`str`, *optional*): `"O1"` (ONNX Runtime's basic optimisations), `"O2"` (transformer fusions, no
            approximation) or `"O3"` (adds the GELU approximation); `None` copies the plain export.
        exporter (`str`, defaults to `"auto"`): `"optimum"`, `"torch"` or `"auto"`.

    Returns:
        `str` or `None`: The level applied; `None` when none was asked for or the model type has no fusion rules
        (then the plain export is copied and a note printed).
    """
    from .backend import resolve_exporter

    output_dir.mkdir(parents=True, exist_ok=True)
    applied = None
    if level is not None:
        if resolve_exporter(exporter) == "optimum":
            from .optimum_backend import optimize_with_optimum as optimize
        else:
            from .graph_optimization import optimize_with_onnxruntime as optimize
        applied = optimize(raw_dir, output_dir, level)
    if applied is None:
        shutil.copyfile(raw_dir / ONNX_FP32_FILE, output_dir / ONNX_FP32_FILE)
    return applied


def copy_side_files(source_dir: Path, output_dir: Path) -> None:
    """Copies config and preprocessor files (everything but ONNX graphs) that `output_dir` lacks."""
    for name in os.listdir(source_dir):
        source = source_dir / name
        if source.is_file() and not name.endswith((".onnx", ".onnx_data")) and not (output_dir / name).exists():
            shutil.copyfile(source, output_dir / name)
