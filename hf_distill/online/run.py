"""Recipe runners of the `mutual` and `self_distillation` families (`hf-distill train RECIPE.yaml`).

Both load a task with `hf_distill.tasks` (GLUE or the offline `imdb`), build their models with
`hf_distill.tasks.run.build_student`, train, save, evaluate, and write `results.json` into `output_dir`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Optional

from transformers import set_seed

from ..checks import check_run_folder, fit_sequence_length
from ..modeling import load_tokenizer
from ..runs import count_parameters, recipe_record, write_results
from ..tasks.arguments import DataArguments, ModelArguments
from ..tasks.data import load_task_data
from ..tasks.run import build_student
from .config import MutualLearningConfig, PeerArguments, SelfDistillationConfig
from .early_exit import (
    SWEEP_PLOT_NAME,
    SWEEP_RESULTS_NAME,
    EarlyExitModel,
    SelfDistillationTrainer,
    early_exit_sweep,
    format_sweep_table,
    plot_sweep,
)
from .mutual import PEER_FOLDER, MutualLearningModel, MutualLearningTrainer


def run_mutual(peer_args: PeerArguments, data_args: DataArguments, config: MutualLearningConfig) -> dict:
    """Trains two or more peers with deep mutual learning; evaluates every peer and the ensemble.

    Writes `peer_<i>/` (each loads with `AutoModelForSequenceClassification.from_pretrained`) and
    `results.json` into `config.output_dir`, and returns the results.
    """
    peers_args = peer_args.peer_model_arguments()
    check_run_folder(config, tuple(args.model_name_or_path for args in peers_args))
    data_args = dataclasses.replace(data_args, max_seq_length=fit_sequence_length(
        data_args.max_seq_length, {f"peer {i}": args.model_name_or_path for i, args in enumerate(peers_args)},
        peer_args.trust_remote_code))
    set_seed(config.seed)
    tokenizer = load_tokenizer(os.path.expanduser(peer_args.tokenizer_name or "") or peers_args[0].model_name_or_path,
                               trust_remote_code=peer_args.trust_remote_code)
    task = load_task_data(data_args, tokenizer, seed=config.data_seed or config.seed)
    if task.train is None or not task.evaluation:
        raise ValueError(f"Task {task.name} needs a training and an evaluation split here.")
    peers = [build_student(args, task, None) for args in peers_args]
    trainer = MutualLearningTrainer(model=MutualLearningModel(peers), args=config, **task.trainer_inputs(tokenizer))
    train_output = trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    trainer.save_model()
    metrics = {split: trainer.evaluate(dataset, metric_key_prefix=split) for split, dataset in task.evaluation.items()}
    if not trainer.is_world_process_zero():
        return {}
    results = {
        "task": task.name,
        "recipe_family": "mutual",
        "peers": [
            {"path": os.path.join(config.output_dir, PEER_FOLDER.format(i)), "base": args.model_name_or_path,
             "layers": args.layer_list, "num_layers": peer.config.num_hidden_layers,
             "parameters": count_parameters(peer)}
            for i, (args, peer) in enumerate(zip(peers_args, peers))
        ],
        "metrics": metrics,
        "train": {**train_output.metrics, "global_step": train_output.global_step},
        "recipe": recipe_record(config),
        "data": {"task_name": data_args.task_name, "train_examples": len(task.train),
                 "eval_examples": {split: len(ds) for split, ds in task.evaluation.items()},
                 "max_seq_length": data_args.max_seq_length},
    }
    write_results(config.output_dir, results)
    print("\n" + format_peer_table(metrics, task.metric_names) + "\n")
    return results


def format_peer_table(metrics: dict[str, dict], metric_names: tuple[str, ...]) -> str:
    """Every peer's and the ensemble's metrics, one row each, per evaluation split."""
    lines = []
    for split, values in metrics.items():
        models = sorted({key[len(split) + 1:].split("_", 1)[0] for key in values
                         if key.startswith(f"{split}_peer") or key.startswith(f"{split}_ensemble")})
        lines.append(f"| {split} | " + " | ".join(metric_names) + " |")
        lines.append("|---|" + "---|" * len(metric_names))
        for model in models:
            cells = [values.get(f"{split}_{model}_{name}") for name in metric_names]
            lines.append(f"| {model} | " + " | ".join("-" if c is None else f"{100 * c:.2f}" for c in cells) + " |")
    return "\n".join(lines)


def run_self_distillation(model_args: ModelArguments, data_args: DataArguments, config: SelfDistillationConfig) -> dict:
    """Trains a classifier with exits on intermediate layers, then measures its early-exit curve.

    Writes the backbone (a plain `from_pretrained` folder), `early_exit_heads.safetensors`,
    `early_exit.json`, `early_exit_curve.json`, `early_exit_curve.png` and `results.json` into
    `config.output_dir`, prints the per-exit accuracies and the speed/accuracy table, and returns
    the results.
    """
    check_run_folder(config, (model_args.model_name_or_path, model_args.student_model_name_or_path))
    data_args = dataclasses.replace(data_args, max_seq_length=fit_sequence_length(
        data_args.max_seq_length, {"model": model_args.model_name_or_path,
                                   "student": model_args.student_model_name_or_path}, model_args.trust_remote_code))
    set_seed(config.seed)
    model_args = dataclasses.replace(model_args, **{
        name: os.path.expanduser(getattr(model_args, name))
        for name in ("model_name_or_path", "student_model_name_or_path", "tokenizer_name")
        if getattr(model_args, name)
    })
    path = model_args.tokenizer_name or model_args.student_model_name_or_path or model_args.model_name_or_path
    if path is None:
        raise ValueError("Set model_name_or_path: the model that gets the exits.")
    tokenizer = load_tokenizer(path, trust_remote_code=model_args.trust_remote_code)
    task = load_task_data(data_args, tokenizer, seed=config.data_seed or config.seed)
    if task.train is None or not task.evaluation:
        raise ValueError(f"Task {task.name} needs a training and an evaluation split here.")
    backbone = build_student(model_args, task, None)
    trainer = SelfDistillationTrainer(model=backbone, args=config, **task.trainer_inputs(tokenizer))
    train_output = trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    trainer.save_model()
    split, dev = next(iter(task.evaluation.items()))
    metrics = trainer.evaluate(dev, metric_key_prefix=split)
    if not trainer.is_world_process_zero():
        return {}
    model: EarlyExitModel = trainer.accelerator.unwrap_model(trainer.model)
    sweep_set = dev if config.sweep_samples is None else dev.select(range(min(config.sweep_samples, len(dev))))
    rows = early_exit_sweep(model, sweep_set, config.sweep_thresholds, config.exit_criterion)
    table = format_sweep_table(rows, config.exit_criterion)
    plot = plot_sweep(rows, os.path.join(config.output_dir, SWEEP_PLOT_NAME),
                      title=f"{task.name}: early exits at layers {model.all_exit_layers} ({config.exit_criterion})")
    with open(os.path.join(config.output_dir, SWEEP_RESULTS_NAME), "w") as file:
        json.dump({"criterion": config.exit_criterion, "split": split, "examples": len(sweep_set), "rows": rows}, file, indent=2)
    per_exit = {layer: metrics.get(f"{split}_exit{layer}_accuracy") for layer in model.all_exit_layers}
    results = {
        "task": task.name,
        "recipe_family": "self_distillation",
        "model": {"path": config.output_dir, "base": model_args.model_name_or_path, "num_layers": model.num_layers,
                  "exit_layers": model.all_exit_layers, "parameters": count_parameters(model.backbone),
                  "exit_head_parameters": count_parameters(model) - count_parameters(model.backbone)},
        "per_exit_accuracy": per_exit,
        "metrics": {split: metrics},
        "early_exit": {"criterion": config.exit_criterion, "rows": rows, "plot": plot},
        "train": {**train_output.metrics, "global_step": train_output.global_step},
        "recipe": recipe_record(config, exit_layers=config.exit_layers, exit_pooling=config.exit_pooling),
        "data": {"task_name": data_args.task_name, "train_examples": len(task.train), "eval_examples": len(dev),
                 "max_seq_length": data_args.max_seq_length},
    }
    write_results(config.output_dir, results)
    accuracy_line = ", ".join(
        f"layer {layer}: {'-' if value is None else f'{100 * value:.2f}'}" for layer, value in per_exit.items()
    )
    print(f"\nPer-exit accuracy ({split}, {len(dev)} examples): {accuracy_line}\n\nEarly-exit sweep ({len(sweep_set)} {split} examples, one at a time, 1 thread):\n{table}\n\nPlot: {plot}\n")
    return results
