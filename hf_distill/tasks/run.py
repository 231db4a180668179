"""The task family's runner: build the models and data, train with `DistillationTrainer`, evaluate, report.

`run_recipe(model_args, data_args, config)` is what `hf-distill train` calls. It writes the
student (plain `from_pretrained` folder), its projection heads if any, `results.json` and the model
card (`README.md`, see `hf_distill.hub.card`) into `config.output_dir`, publishes the folder when
`push_to_hub` is set (`hf_distill.hub.push`), and returns the results.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from typing import Any, Callable, Optional

from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    PreTrainedModel,
    Trainer,
    TrainingArguments,
    set_seed,
)

from ..checks import check_run_folder, check_same_tokenizer, fit_sequence_length, check_unlabelled_examples
from ..config import DistillationConfig
from ..hub.card import write_model_card
from ..hub.push import push_to_hub
from ..modeling import check_model_path, load_pretrained, load_tokenizer, model_load_kwargs
from ..runs import describe_model, format_results_table, recipe_record, retention, run_provenance, write_results
from ..students import create_student
from ..teacher_inputs import load_teacher_tokenizer, teacher_dataset
from ..trainer import DistillationTrainer
from .arguments import DataArguments, ModelArguments
from .data import TaskData, load_task_data


def load_classifier(path: str, task: TaskData, model_args: ModelArguments, what: str) -> PreTrainedModel:
    """Loads the task's model: a sequence classifier, or a question-answering model for SQuAD.

    A model already fine-tuned as a classifier must have the task's label space and order; a
    pretrained encoder gets a new head with the task's labels (or a new span head for SQuAD).
    """
    check_model_path(path, what)
    if task.head == "span":
        return load_pretrained(AutoModelForQuestionAnswering, path, what, **model_load_kwargs(model_args))
    config = AutoConfig.from_pretrained(path, trust_remote_code=model_args.trust_remote_code)
    if any(name.endswith("ForSequenceClassification") for name in config.architectures or []):
        if config.num_labels != task.num_labels:
            raise ValueError(
                f"The {what} at {path} predicts {config.num_labels} labels but task {task.name} has "
                f"{task.num_labels}: use a model fine-tuned on {task.name}."
            )
        saved = {int(k): v for k, v in config.id2label.items()}
        unnamed = all(name == f"LABEL_{index}" for index, name in saved.items())
        if task.id2label is not None and unnamed:  # default names carry no order: give it the task's
            return load_pretrained(AutoModelForSequenceClassification, path, what, **model_load_kwargs(model_args),
                                   **_label_config(task))
        if task.id2label is not None and saved != task.id2label:
            raise ValueError(
                f"The {what} at {path} has labels {dict(config.id2label)} but task {task.name} uses "
                f"{task.id2label}: fine-tune it with this task's label order."
            )
        return load_pretrained(AutoModelForSequenceClassification, path, what, **model_load_kwargs(model_args))
    return load_pretrained(AutoModelForSequenceClassification, path, what, **model_load_kwargs(model_args),
                           **_label_config(task))


def _label_config(task: TaskData) -> dict[str, Any]:
    if task.label_names is None:
        return {"num_labels": 1, "problem_type": "regression"}
    return {
        "num_labels": task.num_labels,
        "id2label": task.id2label,
        "label2id": {label: index for index, label in task.id2label.items()},
    }


logger = logging.getLogger(__name__)


def warn_if_gold_scores_unused(task: TaskData, config: DistillationConfig) -> bool:
    """Warns when a regression student would learn only the teacher's predictions; returns whether it warned.

    With `task_weight=0` and `kd_weight>0` the student of a regression task (STS-B) fits the teacher's
    scores (MSE) and never the gold ones: it inherits the teacher's errors. TinyBERT's reference code
    trains its regression prediction stage on the gold scores instead.
    """
    weights = config.max_loss_weights  # over the whole schedule
    if not task.is_regression or weights["task_weight"] > 0 or weights["kd_weight"] == 0:
        return False
    logger.warning(
        "Task %s is a regression and task_weight=0: the student learns only the teacher's predictions (MSE), "
        "never the gold scores. TinyBERT's reference code trains its regression prediction stage on the gold "
        "scores (recipes/glue/tinybert_prediction_regression.yaml); set task_weight > 0 to use them.",
        task.name,
    )
    return True


def build_student(model_args: ModelArguments, task: TaskData, teacher: Optional[PreTrainedModel]) -> PreTrainedModel:
    """The student: a ready one, or one built with `create_student` from the base (or the teacher)."""
    if model_args.student_model_name_or_path:
        return load_classifier(model_args.student_model_name_or_path, task, model_args, "student")
    if model_args.model_name_or_path:
        base = load_classifier(model_args.model_name_or_path, task, model_args, "model")
    elif teacher is not None:
        base = teacher
    else:
        raise ValueError("Nothing to train: set model_name_or_path, student_model_name_or_path or a teacher.")
    reshape = (
        model_args.layer_list is not None
        or model_args.student_num_layers is not None
        or model_args.student_hidden_size is not None
    )
    if not reshape:
        return base
    return create_student_from_args(base, model_args)


def create_student_from_args(base: PreTrainedModel, model_args: ModelArguments) -> PreTrainedModel:
    """`create_student(base, ...)` with the student options of `ModelArguments` (layers, depth, width)."""
    return create_student(
        base,
        layers=model_args.layer_list,
        num_layers=model_args.student_num_layers,
        hidden_size=model_args.student_hidden_size,
        intermediate_size=model_args.student_intermediate_size,
        num_attention_heads=model_args.student_num_attention_heads,
        layer_selection=model_args.student_layer_selection,
    )


def evaluate_model(
    model: PreTrainedModel, task: TaskData, tokenizer, config: DistillationConfig, own_tokens: bool = False
) -> dict[str, dict]:
    """Task metrics of `model` on every evaluation split, with Trainer's evaluation loop.

    With `own_tokens` the model is a teacher with its own `tokenizer` and reads the splits' teacher columns.
    """
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            per_device_eval_batch_size=config.per_device_eval_batch_size,
            report_to=[],
            use_cpu=config.use_cpu,
            disable_tqdm=config.disable_tqdm,
            dataloader_num_workers=config.dataloader_num_workers,
            dataloader_pin_memory=config.dataloader_pin_memory,
        )
        evaluator = Trainer(
            model=model,
            args=args,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=task.compute_metrics,
        )
        return {split: evaluator.evaluate(teacher_dataset(dataset) if own_tokens else dataset)
                for split, dataset in task.evaluation.items()}


def _describe(model: PreTrainedModel, path: Optional[str], metrics: dict[str, dict], task: TaskData) -> dict:
    first = next(iter(metrics.values())) if metrics else {}
    return describe_model(model, path, score=task.score(first) if first else None, metrics=metrics)


def run_recipe(model_args: ModelArguments, data_args: DataArguments, config: DistillationConfig,
               prepare_student: Optional[Callable[[PreTrainedModel], PreTrainedModel]] = None) -> dict:
    """Trains, saves and evaluates one recipe; writes and returns `results.json`.

    Args:
        model_args (`ModelArguments`): Which models.
        data_args (`DataArguments`): Which data.
        config (`DistillationConfig`): Loss weights and every `TrainingArguments` option.
        prepare_student (`Callable`, *optional*): Applied to the student before training (e.g. the compress
            family's fake quantization); it must leave the student's `state_dict()` keys unchanged.

    Returns:
        `dict`: The results (task, teacher, student, retention, recipe, training metrics).
    """
    check_run_folder(config, (config.teacher_model_name_or_path, model_args.model_name_or_path,
                              model_args.student_model_name_or_path))
    data_args = dataclasses.replace(data_args, max_seq_length=fit_sequence_length(data_args.max_seq_length, {
        "teacher": config.teacher_model_name_or_path, "model": model_args.model_name_or_path,
        "student": model_args.student_model_name_or_path}, model_args.trust_remote_code))
    set_seed(config.seed)
    teacher_path = config.teacher_model_name_or_path
    teacher_tokenizer = None
    if config.teacher_tokenizer_name_or_path and teacher_path:
        # The teacher reads the text its own way; the run's tokenizer is the student's.
        teacher_tokenizer = load_teacher_tokenizer(config.teacher_tokenizer_name_or_path, config.teacher_model_revision)
        tokenizer_path = model_args.tokenizer_name or model_args.student_model_name_or_path or model_args.model_name_or_path
        if tokenizer_path is None:
            raise ValueError("teacher_tokenizer_name_or_path gives the teacher its own tokenizer, so the student needs "
                             "its own: set model_name_or_path (or student_model_name_or_path, or tokenizer_name).")
    else:
        tokenizer_path = (
            model_args.tokenizer_name
            or teacher_path
            or model_args.student_model_name_or_path
            or model_args.model_name_or_path
        )
    if tokenizer_path is None:
        raise ValueError("Set teacher_model_name_or_path or model_name_or_path: there is no model to train.")
    tokenizer = load_tokenizer(tokenizer_path, trust_remote_code=model_args.trust_remote_code)
    checked = (("model", model_args.model_name_or_path), ("student", model_args.student_model_name_or_path))
    if teacher_tokenizer is None:
        checked = (("teacher", teacher_path), *checked)
    for what, path in checked:
        if path and os.path.isdir(os.path.expanduser(path)) and os.path.abspath(os.path.expanduser(path)) != \
                os.path.abspath(os.path.expanduser(tokenizer_path)):
            check_same_tokenizer(tokenizer, os.path.expanduser(path), what)
    task = load_task_data(data_args, tokenizer, seed=config.data_seed or config.seed, teacher_tokenizer=teacher_tokenizer)
    if task.train is None:
        raise ValueError(f"Task {task.name} has no training split here: give data with a train.tsv or train_file.")
    if not task.evaluation:
        raise ValueError(f"Task {task.name} has no evaluation split: give a dev file or validation_file.")

    check_unlabelled_examples(task.unlabelled_train_examples, len(task.train), config, has_teacher=bool(teacher_path))
    teacher = load_classifier(teacher_path, task, model_args, "teacher") if teacher_path else None
    student = build_student(model_args, task, teacher)
    if prepare_student is not None:
        student = prepare_student(student)
    warn_if_gold_scores_unused(task, config)
    pad_to = data_args.max_seq_length if config.reference == "tinybert" else None
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=config,
                                  teacher_processing_class=teacher_tokenizer,
                                  **task.trainer_inputs(tokenizer, pad_to=pad_to))
    train_output = trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    trainer.save_model(_internal_call=True)  # with push_to_hub, the push happens once, card included, at the end

    # The student alone, as users will run it (no teacher forward, no projection heads). Every process
    # takes part, so this works under torchrun; only the main process writes.
    student_metrics = evaluate_model(student, task, tokenizer, config)
    teacher_metrics = None
    if teacher is not None:
        teacher_metrics = evaluate_model(teacher, task, teacher_tokenizer or tokenizer, config,
                                         own_tokens=teacher_tokenizer is not None)
    if not trainer.is_world_process_zero():
        return {}
    results: dict[str, Any] = {
        "task": task.name,
        "student": _describe(student, config.output_dir, student_metrics, task),
        "train": {**train_output.metrics, "global_step": train_output.global_step},
        "recipe_family": "task",
        "recipe": recipe_record(
            config, kd_loss=config.kd_loss, layer_map=trainer.layer_map,
            projection=config.projection if trainer.distillation_heads is not None
            and trainer.distillation_heads.has_parameters else None, reference=config.reference,
            **trainer.relation_record(), **trainer.teacher_tokenizer_record(),
        ),
        "data": {
            "task_name": data_args.task_name,
            "data_dir": data_args.data_dir,
            "train_file": data_args.train_file,
            "validation_file": data_args.validation_file,
            "train_examples": len(task.train),
            "unlabelled_train_examples": task.unlabelled_train_examples,
            "eval_examples": {split: len(ds) for split, ds in task.evaluation.items()},
            "max_seq_length": data_args.max_seq_length,
            **({"align_teacher_tokens": True} if teacher_tokenizer is not None and data_args.align_teacher_tokens else {}),
        },
        "base_model": teacher_path or model_args.model_name_or_path,
        "reproduce": run_provenance(model_args, data_args, config),
    }
    if teacher is not None:
        results["teacher"] = _describe(teacher, teacher_path, teacher_metrics, task)
        results["retention_percent"] = retention(results["student"]["score"], results["teacher"]["score"])
        if results["student"]["parameters"]:
            results["compression"] = round(results["teacher"]["parameters"] / results["student"]["parameters"], 2)
    write_results(config.output_dir, results)
    print("\n" + format_results_table(results) + "\n")
    write_model_card(config.output_dir, repo_id=trainer.hub_model_id)
    if config.push_to_hub:
        push_to_hub(config.output_dir, trainer.hub_model_id, private=bool(config.hub_private_repo),
                    revision=config.hub_revision, token=config.hub_token)
    return results
