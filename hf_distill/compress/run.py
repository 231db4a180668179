"""The compress family's runner: prune the teacher, distil the pruned model from it, export INT8, report each stage.

1. **Prune.** The fine-tuned teacher's importance is measured on `calibration_batches` batches of the task's
   training set (`hf_distill.pruning.compute_importance`), and the teacher is cut to the sizes of
   `CompressArguments` (`prune_model`): a dense model, saved with its `pruning.json` in `<output_dir>/pruned`,
   and scored on the evaluation set before any training.
2. **Distil to recover.** The task runner (`hf_distill.tasks.run.run_recipe`) trains the pruned model against
   its unpruned teacher with the recipe's terms, into `output_dir`.
3. **Quantize.** `hf_distill.export.export_model` writes ONNX and INT8 (`<output_dir>/onnx`), checks parity and
   scores them; `benchmark_model` times the teacher, the student in PyTorch, ONNX fp32 and INT8 at batch 1 and
   32 × 128 and on the real evaluation batches (padded to their longest), in one interleaved run.
4. **Quantization-aware distillation** (optional, `quantization_aware_epochs`): the distilled student trains on
   against the teacher with fake-quantized INT8 linear layers (`hf_distill.compress.quantization_aware`) into
   `<output_dir>/quantization_aware`, and is exported with static INT8 there, so both INT8 models are scored side
   by side.

`compress_report.json` (and the printed table) holds each stage's parameters, size, score, retention and
latency; the model card's results come from `results.json` as for any task run, with the chain beside them.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from typing import Any, Optional

from transformers import DataCollatorWithPadding, set_seed

from ..checks import check_run_folder
from ..config import DistillationConfig
from ..hub.card import write_model_card
from ..hub.push import push_to_hub
from ..modeling import load_tokenizer
from ..runs import read_results, retention
from ..tasks.arguments import DataArguments, ModelArguments
from ..tasks.data import load_task_data
from ..tasks.run import evaluate_model, load_classifier, run_recipe
from .arguments import CompressArguments

REPORT_NAME = "compress_report.json"
PRUNED_FOLDER = "pruned"
QUANTIZATION_AWARE_FOLDER = "quantization_aware"
_STUDENT_OPTIONS = ("student_model_name_or_path", "student_layers", "student_num_layers", "student_hidden_size",
                    "student_intermediate_size", "student_num_attention_heads", "model_name_or_path")


def check_compress_inputs(model_args: ModelArguments, config: DistillationConfig) -> None:
    """A compress recipe prunes its student from the teacher: it needs a teacher and no other student."""
    if not config.teacher_model_name_or_path:
        raise ValueError("A compress recipe prunes a fine-tuned teacher: set teacher_model_name_or_path.")
    given = [name for name in _STUDENT_OPTIONS if getattr(model_args, name) is not None]
    if given:
        raise ValueError(f"A compress recipe builds its student by pruning the teacher: drop {', '.join(given)} "
                         "(the sizes are prune_num_attention_heads, prune_intermediate_size, prune_num_layers).")
    if config.teacher_tokenizer_name_or_path:
        raise ValueError("A pruned student keeps its teacher's vocabulary: drop teacher_tokenizer_name_or_path.")


def prune_teacher(teacher, task, tokenizer, compress_args: CompressArguments, seed: int):
    """Importance on calibration batches of the training set, then `prune_model`; returns (student, report)."""
    from ..pruning import compute_importance, prune_model

    size = min(len(task.train), compress_args.calibration_batches * compress_args.calibration_batch_size)
    calibration = task.train.shuffle(seed=seed).select(range(size))
    importance = compute_importance(teacher, calibration, num_batches=compress_args.calibration_batches,
                                    batch_size=compress_args.calibration_batch_size,
                                    data_collator=DataCollatorWithPadding(tokenizer),
                                    head_importance=compress_args.head_importance)
    return prune_model(teacher, importance, num_attention_heads=compress_args.prune_num_attention_heads,
                       intermediate_size=compress_args.prune_intermediate_size, layers=compress_args.layer_list,
                       num_layers=compress_args.prune_num_layers)


def _stage(name: str, parameters: Optional[int], size_mb: Optional[float], score: Optional[float],
           teacher_score: Optional[float], latency: dict, variant: Optional[str]) -> dict[str, Any]:
    row = {"stage": name, "parameters": parameters, "size_mb": size_mb, "score": score,
           "retention_percent": retention(score, teacher_score) if score is not None and teacher_score else None}
    if variant is not None:
        row["latency_ms"] = {shape: values.get(variant) for shape, values in latency.items()}
    return row


def compress_report(pruning: dict, pruned_score: Optional[float], results: dict, benchmark: Optional[dict],
                    export_report: Optional[dict], teacher_path: Optional[str] = None,
                    quantization_aware_export: Optional[dict] = None) -> dict[str, Any]:
    """The chain's report: one row per stage (teacher, pruned, distilled, INT8, and INT8 after quantization-aware
    distillation when `quantization_aware_export` is given) and what was measured where."""
    teacher = results.get("teacher") or {}
    student = results.get("student") or {}
    teacher_score = teacher.get("score")
    latency = (benchmark or {}).get("latency_ms") or {}
    accuracy = (benchmark or {}).get("accuracy") or {}
    sizes = (benchmark or {}).get("sizes_mb") or {}
    int8 = next((v for v in ("onnx_int8", "onnx_int8_static", "onnx_int8_dynamic") if v in sizes), None)
    int8 = int8 or next((v for v in accuracy if str(v).startswith("onnx_int8")), None)
    stages = [
        _stage("teacher", teacher.get("parameters"), sizes.get("teacher_fp32"), teacher_score, teacher_score, latency,
               "teacher_fp32" if "teacher_fp32" in sizes else None),
        _stage("pruned, before distillation", pruning.get("parameters_after"), None, pruned_score, teacher_score,
               latency, None),
        _stage("pruned + distilled (PyTorch fp32)", student.get("parameters"), sizes.get("pytorch_fp32"),
               student.get("score"), teacher_score, latency, "pytorch_fp32" if latency else None),
    ]
    if "onnx_fp32" in sizes:
        stages.append(_stage("ONNX fp32", student.get("parameters"), sizes.get("onnx_fp32"), accuracy.get("onnx_fp32"),
                             teacher_score, latency, "onnx_fp32"))
    if int8 is not None:
        mode = ((export_report or {}).get("quantization") or {}).get("mode")
        stages.append(_stage(f"INT8 ({int8}, {mode})" if mode else f"INT8 ({int8})", student.get("parameters"), sizes.get(int8), accuracy.get(int8),
                             teacher_score, latency, int8))
    if quantization_aware_export:
        qat_accuracy = quantization_aware_export.get("accuracy") or {}
        qat_mode = (quantization_aware_export.get("quantization") or {}).get("mode")
        # The same graph as the INT8 row, so the same latency; timed there.
        stages.append(_stage(f"INT8 after quantization-aware distillation (onnx_int8, {qat_mode})",
                             student.get("parameters"), (quantization_aware_export.get("size_mb") or {}).get("onnx_int8"),
                             qat_accuracy.get("onnx_int8"), teacher_score, {}, None))
    return {"task": results.get("task"), "teacher_path": teacher_path, "pruning": pruning, "stages": stages,
            "benchmark_accuracy": accuracy or None, "speedups_batch_32": (benchmark or {}).get("speedups_batch_32"),
            "machine": (benchmark or {}).get("machine"),
            "quantization": (export_report or {}).get("quantization")}


def format_compress_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table: a row per stage."""
    shapes = sorted({shape for row in report["stages"] for shape in (row.get("latency_ms") or {})})
    header = "| stage | parameters | size (MB) | score | retention | " + " | ".join(f"ms {s}" for s in shapes) + " |"
    lines = [header, "|---" * (5 + len(shapes)) + "|"]

    def fmt(value, digits=2):
        return "-" if value is None else (f"{value:,}" if isinstance(value, int) else f"{value:.{digits}f}")

    for row in report["stages"]:
        latency = row.get("latency_ms") or {}
        score = row["score"] * 100 if row["score"] is not None and row["score"] <= 1.0 else row["score"]
        lines.append(f"| {row['stage']} | {fmt(row['parameters'])} | {fmt(row['size_mb'], 1)} | {fmt(score)} | "
                     f"{fmt(row['retention_percent'], 1)}% | " + " | ".join(fmt(latency.get(s)) for s in shapes) + " |")
    return "\n".join(lines)


def write_compress_report(output_dir: str, pruning: dict[str, Any], teacher: str, data_args: DataArguments,
                          latency_runs: int = 10, timed: bool = True, threads: Optional[int] = None,
                          seed: int = 42) -> dict[str, Any]:
    """Times the run's teacher, student and exports in one run (`benchmark_model`) and writes `compress_report.json`.

    Also what `refresh_compress_report` calls to time a finished run again (e.g. on a quiet machine).

    Args:
        output_dir (`str`): The compress run's folder (the distilled student, `results.json`, `onnx/`).
        pruning (`dict`): The pruning record (`PruningReport.to_dict()` plus `score_before_distillation`).
        teacher (`str`): The teacher folder, timed beside the student.
        data_args (`DataArguments`): The task and its data, for the scores on real batches.
        latency_runs (`int`, defaults to 10): Timed runs per model and shape.
        timed (`bool`, defaults to `True`): Whether there is an export to time (`quantize != "none"`).
        threads (`int`, *optional*): Threads of PyTorch and ONNX Runtime.
        seed (`int`, defaults to 42): Seed of an evaluation subset.
    """
    benchmark = export_report = None
    if timed:
        from ..export.benchmark import benchmark_model
        from ..export.report import read_report

        benchmark = benchmark_model(output_dir, teacher=teacher, task_name=data_args.task_name,
                                    data_dir=data_args.data_dir, validation_file=data_args.validation_file,
                                    max_eval_samples=data_args.max_eval_samples,
                                    max_seq_length=data_args.max_seq_length, latency_runs=latency_runs,
                                    threads=threads, seed=seed, verbose=False)
        export_report = read_report(os.path.join(output_dir, "onnx"))
    qat_export = None
    qat_onnx = os.path.join(output_dir, QUANTIZATION_AWARE_FOLDER, "onnx")
    if os.path.isfile(os.path.join(qat_onnx, "export_report.json")):
        from ..export.report import read_report

        qat_export = read_report(qat_onnx)
    report = compress_report(pruning, pruning.get("score_before_distillation"), read_results(output_dir), benchmark,
                             export_report, teacher_path=teacher, quantization_aware_export=qat_export)
    with open(os.path.join(output_dir, REPORT_NAME), "w", encoding="utf-8") as file:
        json.dump(report, file, indent=2)
        file.write("\n")
    return report


def refresh_compress_report(output_dir: str, data_args: DataArguments, teacher: Optional[str] = None,
                            latency_runs: int = 10, threads: Optional[int] = None) -> dict[str, Any]:
    """Times a finished compress run again and rewrites its report (teacher: the one `compress_report.json` names,
    unless given)."""
    with open(os.path.join(output_dir, REPORT_NAME), encoding="utf-8") as file:
        previous = json.load(file)
    teacher = teacher or previous.get("teacher_path")
    if teacher is None:
        raise ValueError(f"{output_dir}/{REPORT_NAME} names no teacher folder: pass teacher=.")
    pruning = dict(previous["pruning"])
    if pruning.get("score_before_distillation") is None:  # reports written before it was kept there
        pruning["score_before_distillation"] = next((row["score"] for row in previous["stages"]
                                                     if row["stage"].startswith("pruned, before")), None)
    report = write_compress_report(output_dir, pruning, teacher, data_args, latency_runs, threads=threads)
    write_model_card(output_dir)
    return report


def run_compress(model_args: ModelArguments, data_args: DataArguments, compress_args: CompressArguments,
                 config: DistillationConfig) -> dict:
    """Prunes, distils and exports one recipe; writes and returns `compress_report.json` (see the module docstring)."""
    check_compress_inputs(model_args, config)
    if config.push_to_hub and not config.hub_model_id:
        raise ValueError("push_to_hub with a compress recipe publishes after the export: set hub_model_id (the "
                         "repository, e.g. you/model-compressed).")
    check_run_folder(config, (config.teacher_model_name_or_path,))
    set_seed(config.seed)
    teacher_path = config.teacher_model_name_or_path
    tokenizer = load_tokenizer(model_args.tokenizer_name or teacher_path, trust_remote_code=model_args.trust_remote_code)
    task = load_task_data(data_args, tokenizer, seed=config.data_seed or config.seed)
    if task.train is None or not task.evaluation:
        raise ValueError(f"Task {task.name} needs a training split (calibration, distillation) and an evaluation split.")
    teacher = load_classifier(teacher_path, task, model_args, "teacher")
    student, pruning = prune_teacher(teacher, task, tokenizer, compress_args, config.seed)
    pruned_dir = os.path.join(config.output_dir, PRUNED_FOLDER)
    student.save_pretrained(pruned_dir)
    tokenizer.save_pretrained(pruned_dir)
    pruning.save(pruned_dir)
    pruned_metrics = evaluate_model(student, task, tokenizer, config)
    pruned_score = task.score(next(iter(pruned_metrics.values())))
    del teacher, student

    student_args = dataclasses.replace(model_args, student_model_name_or_path=pruned_dir)
    push, config.push_to_hub = config.push_to_hub, False  # published once, after the export and the report
    try:
        results = run_recipe(student_args, data_args, config)
        if compress_args.quantization_aware_epochs > 0:  # every process trains; the main one exports
            train_quantization_aware(model_args, data_args, compress_args, config)
    finally:
        config.push_to_hub = push
    if not results:  # not the main process
        return {}
    export_report = None
    if compress_args.quantize != "none":
        from ..export import export_model

        export_report = export_model(config.output_dir, quantize=compress_args.quantize, task_name=data_args.task_name,
                                     data_dir=data_args.data_dir, train_file=data_args.train_file,
                                     validation_file=data_args.validation_file,
                                     max_seq_length=data_args.max_seq_length, latency=False, seed=config.seed)
    if compress_args.quantization_aware_epochs > 0:
        export_quantization_aware(data_args, config)
    pruning_record = {**pruning.to_dict(), "folder": PRUNED_FOLDER, "score_before_distillation": pruned_score}
    report = write_compress_report(config.output_dir, pruning_record, teacher_path, data_args,
                                   compress_args.latency_runs, timed=export_report is not None, seed=config.seed)
    print("\n" + format_compress_table(report) + "\n")
    write_model_card(config.output_dir, repo_id=config.hub_model_id)  # now with the chain
    if config.push_to_hub:
        push_to_hub(config.output_dir, config.hub_model_id, private=bool(config.hub_private_repo),
                    revision=config.hub_revision, token=config.hub_token, include_onnx=compress_args.quantize != "none")
    return report


def train_quantization_aware(model_args: ModelArguments, data_args: DataArguments, compress_args: CompressArguments,
                             config: DistillationConfig) -> dict:
    """Step 4: the distilled student in `config.output_dir` trains on against the teacher with fake-quantized INT8
    linear layers (`quantization_aware_epochs` at `quantization_aware_learning_rate`, the recipe's other settings),
    into `<output_dir>/quantization_aware`. The saved student is a plain checkpoint.

    Returns:
        `dict`: The stage's `results.json` (its student score is measured with the fake quantization on).
    """
    from .quantization_aware import prepare_quantization_aware

    stage_config = copy.deepcopy(config)
    stage_config.output_dir = os.path.join(config.output_dir, QUANTIZATION_AWARE_FOLDER)
    stage_config.num_train_epochs = compress_args.quantization_aware_epochs
    stage_config.learning_rate = compress_args.quantization_aware_learning_rate
    stage_config.max_steps = -1
    stage_config.push_to_hub = False
    stage_args = dataclasses.replace(model_args, student_model_name_or_path=config.output_dir)
    return run_recipe(stage_args, data_args, stage_config, prepare_student=prepare_quantization_aware)


def export_quantization_aware(data_args: DataArguments, config: DistillationConfig) -> dict:
    """Exports the quantization-aware student with static INT8 into `<output_dir>/quantization_aware/onnx`."""
    from ..export import export_model

    return export_model(os.path.join(config.output_dir, QUANTIZATION_AWARE_FOLDER), quantize="static",
                        task_name=data_args.task_name, data_dir=data_args.data_dir, train_file=data_args.train_file,
                        validation_file=data_args.validation_file, max_seq_length=data_args.max_seq_length,
                        latency=False, seed=config.seed, verbose=False)
