"""General (task-agnostic) distillation on raw text: DistilBERT's pre-training recipe, TinyBERT's general stage.

`run_general(model_args, data_args, config)` is the runner of the `general` recipe family
(`hf-distill train recipes/general/*.yaml`). The loss weights of `config` pick the objective:

- **Masked-LM distillation** (DistilBERT, Sanh et al., 2019) when `kd_weight` or `mlm_weight` is
  on: `*ForMaskedLM` teacher and student, batches masked anew at every step by
  `DataCollatorForDistillationMLM` (15%, 80/10/10, specials never masked), and the triple loss
  ``5.0·L_kd + 2.0·L_mlm + 1.0·L_cos`` (`DistillationConfig.distilbert_pretraining()` weights), where
  ``L_kd`` is ``T²·KL`` at ``T = 2`` over the masked positions (the rows where `labels ≠ −100`, as
  the trainer defines them for token-level labels), ``L_mlm`` the student's MLM cross-entropy
  over the same positions, and ``L_cos`` the cosine loss on the last hidden states of all
  non-padding tokens.
- **Intermediate-layer distillation** (TinyBERT's general stage, Jiao et al., 2020) otherwise:
  base-model teacher and student (`AutoModel`), unmasked text, no labels, embedding +
  hidden-state + attention-score MSE through learned projections.

The student is saved as a plain `from_pretrained` folder with the tokenizer, its projection
heads beside it (`distillation_heads.safetensors`), and `results.json` (sizes, the loss terms at
the start and end of training, held-out losses). The TinyBERT task stage picks both up:

    hf-distill train recipes/glue/tinybert_intermediate.yaml --student_model_name_or_path OUT \\
        --distillation_heads_path OUT --teacher_model_name_or_path FINE_TUNED_TEACHER ...
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Optional

import torch
from datasets import Dataset
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    DataCollatorWithPadding,
    PreTrainedModel,
    set_seed,
)

from ..checks import check_run_folder, fit_sequence_length
from ..config import DistillationConfig
from ..modeling import check_model_path, load_pretrained, load_tokenizer, model_load_kwargs
from ..runs import HEADS_WEIGHTS_NAME, describe_model, recipe_record, write_results
from ..tasks.arguments import ModelArguments
from ..tasks.run import create_student_from_args
from .arguments import GeneralModelArguments, TextDataArguments
from .distilbert_init import bert_to_distilbert
from .masking import DataCollatorForDistillationMLM, count_tokens, token_selection_weights
from .text import TextData, load_text_data
from .trainer import GeneralDistillationTrainer

_MLM_ARCHITECTURES = ("ForMaskedLM", "ForPreTraining")


def uses_masked_lm(config: DistillationConfig) -> bool:
    """Whether the recipe distils masked-LM outputs (soft targets or the MLM loss on)."""
    weights = config.max_loss_weights
    return weights["kd_weight"] > 0 or weights["mlm_weight"] > 0


def load_general_model(path: str, masked_lm: bool, model_args: ModelArguments, what: str) -> PreTrainedModel:
    """Loads a teacher or student: `AutoModelForMaskedLM` for masked-LM distillation, else `AutoModel`.

    Raises:
        ValueError: For masked-LM distillation from a checkpoint without a masked-LM head (its head
            would be random), with the recipe to use instead.
    """
    check_model_path(path, what)
    config = AutoConfig.from_pretrained(path, trust_remote_code=model_args.trust_remote_code)
    architectures = config.architectures or []
    if masked_lm and architectures and not any(name.endswith(_MLM_ARCHITECTURES) for name in architectures):
        raise ValueError(
            f"The {what} at {path} is a {architectures[0]} without a masked-LM head, but kd_weight/mlm_weight > 0 "
            "distil masked-LM outputs (DistilBERT's triple loss). Use a *ForMaskedLM checkpoint, or the TinyBERT "
            "general stage (recipes/general/tinybert_general.yaml: kd_weight=0, mlm_weight=0), which needs no head."
        )
    loader = AutoModelForMaskedLM if masked_lm else AutoModel
    return load_pretrained(loader, path, what, **model_load_kwargs(model_args))


def build_general_student(
    model_args: GeneralModelArguments, teacher: PreTrainedModel, masked_lm: bool
) -> PreTrainedModel:
    """The student: a ready one, or one built from the base (default: the teacher).

    `student_architecture="distilbert"` copies a BERT base's layers into DistilBERT
    (`bert_to_distilbert`); otherwise `create_student` copies layers (`student_layers`,
    `student_num_layers`) or builds a narrower, random student (`student_hidden_size`).
    """
    if model_args.student_model_name_or_path:
        return load_general_model(model_args.student_model_name_or_path, masked_lm, model_args, "student")
    base = (
        load_general_model(model_args.model_name_or_path, masked_lm, model_args, "model")
        if model_args.model_name_or_path
        else teacher
    )
    if model_args.student_architecture == "distilbert":
        if model_args.student_hidden_size is not None:
            raise ValueError("student_architecture='distilbert' copies teacher layers: drop student_hidden_size.")
        return bert_to_distilbert(base, layers=model_args.layer_list, num_layers=model_args.student_num_layers)
    if model_args.layer_list is None and model_args.student_num_layers is None and model_args.student_hidden_size is None:
        raise ValueError(
            "Say how to build the student: student_layers (e.g. '0,2,4'), student_num_layers, student_hidden_size "
            "with student_num_layers, or a ready student_model_name_or_path."
        )
    return create_student_from_args(base, model_args)


def build_collator(
    data_args: TextDataArguments, tokenizer, data: TextData, masked_lm: bool, generator: Optional[torch.Generator] = None,
    pad_to_max_length: bool = False,
):
    """DistilBERT's masking collator for masked-LM distillation, padding alone otherwise.

    `pad_to_max_length` pads every batch to `max_seq_length`, as TinyBERT's code does (`reference="tinybert"`:
    its means over every position depend on the padded length).
    """
    if not masked_lm:
        if pad_to_max_length:
            return DataCollatorWithPadding(tokenizer, padding="max_length", max_length=data_args.max_seq_length)
        return DataCollatorWithPadding(tokenizer)
    weights = None
    if data_args.mlm_smoothing is not None:
        limit = data_args.token_count_samples or (10_000 if data.streaming else None)
        sequences = data.train if limit is None else data.train.take(limit) if data.streaming else data.train.select(
            range(min(limit, len(data.train)))
        )
        counts = count_tokens((row["input_ids"] for row in sequences), len(tokenizer))
        weights = token_selection_weights(counts, data_args.mlm_smoothing, tokenizer.all_special_ids)
    return DataCollatorForDistillationMLM(
        tokenizer,
        mlm_probability=data_args.mlm_probability,
        mask_replace_prob=data_args.mask_replace_prob,
        random_replace_prob=data_args.random_replace_prob,
        token_weights=weights,
        generator=generator,
    )


@torch.no_grad()
def masked_lm_loss(
    model: PreTrainedModel, dataset: Any, collator: DataCollatorForDistillationMLM, batch_size: int, seed: int = 0
) -> dict[str, float]:
    """Masked-LM cross-entropy of `model` on `dataset`, masked with a fixed seed (same masks for every model).

    ``loss = Σ_masked −log p(x_i) / n_masked`` over the whole set (token-weighted), and
    ``perplexity = exp(loss)``.
    """
    generator = torch.Generator().manual_seed(seed)
    fixed = DataCollatorForDistillationMLM(
        collator.tokenizer,
        mlm_probability=collator.mlm_probability,
        mask_replace_prob=collator.mask_replace_prob,
        random_replace_prob=collator.random_replace_prob,
        token_weights=collator.token_weights,
        generator=generator,
    )
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count, batch = 0.0, 0, []
    rows = iter(dataset)

    def flush(rows_batch):
        nonlocal total, count
        inputs = {k: v.to(device) for k, v in fixed(rows_batch).items()}
        labels = inputs.pop("labels")
        logits = model(**inputs).logits.float()
        selected = labels != -100
        total += float(torch.nn.functional.cross_entropy(logits[selected], labels[selected], reduction="sum"))
        count += int(selected.sum())

    for row in rows:
        batch.append({"input_ids": row["input_ids"], "attention_mask": row["attention_mask"]})
        if len(batch) == batch_size:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    model.train(was_training)
    loss = total / max(count, 1)
    return {"mlm_loss": round(loss, 4), "perplexity": round(math.exp(min(loss, 50.0)), 2), "masked_tokens": count}


def loss_terms_from_history(log_history: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """The logged loss terms (`loss`, `loss_<term>`) at the first and the last logging step."""
    logged = [
        {key: value for key, value in entry.items() if key == "loss" or key.startswith("loss_")} | {"step": entry["step"]}
        for entry in log_history
        if "loss" in entry
    ]
    return {"first": logged[0], "last": logged[-1]} if logged else {}


def _size(dataset: Any) -> Optional[int]:
    return len(dataset) if isinstance(dataset, Dataset) else None


def run_general(model_args: GeneralModelArguments, data_args: TextDataArguments, config: DistillationConfig) -> dict:
    """Trains, saves and evaluates a general-distillation recipe; writes and returns `results.json`.

    Args:
        model_args (`GeneralModelArguments`): Teacher tokenizer, how the student is built.
        data_args (`TextDataArguments`): The raw text, cutting, filters and masking.
        config (`DistillationConfig`): Loss weights (they pick the objective) and `TrainingArguments`.

    Returns:
        `dict`: The results.
    """
    check_run_folder(config, (config.teacher_model_name_or_path, model_args.model_name_or_path,
                              model_args.student_model_name_or_path))
    data_args = dataclasses.replace(data_args, max_seq_length=fit_sequence_length(data_args.max_seq_length, {
        "teacher": config.teacher_model_name_or_path, "model": model_args.model_name_or_path,
        "student": model_args.student_model_name_or_path}, model_args.trust_remote_code))
    set_seed(config.seed)
    teacher_path = config.teacher_model_name_or_path
    if not teacher_path:
        raise ValueError("General distillation needs a teacher: set teacher_model_name_or_path.")
    if config.teacher_tokenizer_name_or_path:
        raise ValueError(
            "teacher_tokenizer_name_or_path is for task recipes (recipes/glue/teacher_tokenizer.yaml): general "
            "distillation reads raw text with one tokenizer. Drop it, or use DistillationTrainer with "
            "add_teacher_inputs in Python."
        )
    if config.max_loss_weights["task_weight"] > 0:
        raise ValueError(
            "General distillation trains on unlabelled text: set task_weight=0 (a masked-LM student's own loss is "
            "mlm_weight)."
        )
    masked_lm = uses_masked_lm(config)
    tokenizer = load_tokenizer(model_args.tokenizer_name or teacher_path, trust_remote_code=model_args.trust_remote_code)
    teacher = load_general_model(teacher_path, masked_lm, model_args, "teacher")
    student = build_general_student(model_args, teacher, masked_lm)
    data = load_text_data(data_args, tokenizer, seed=config.data_seed or config.seed)
    if data.streaming and config.max_steps <= 0:
        raise ValueError("A streamed dataset has no length: set max_steps (the number of optimizer steps).")
    collator = build_collator(data_args, tokenizer, data, masked_lm, pad_to_max_length=config.reference == "tinybert")
    trainer = GeneralDistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=config,
        train_dataset=data.train,
        eval_dataset=data.validation,
        processing_class=tokenizer,
        data_collator=collator,
    )
    evaluation: dict[str, Any] = {}
    if data.validation is not None and not config.resume_from_checkpoint:
        # The held-out loss of the student as built, to compare with the one after training.
        evaluation["distillation_loss_before"] = trainer.evaluate(metric_key_prefix="eval_before")
    train_output = trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    trainer.save_model()

    if data.validation is not None:
        evaluation["distillation_loss"] = trainer.evaluate()
        if masked_lm:
            batch = config.per_device_eval_batch_size
            evaluation["student"] = masked_lm_loss(student, data.validation, collator, batch, seed=config.seed)
            evaluation["teacher"] = masked_lm_loss(teacher, data.validation, collator, batch, seed=config.seed)
    if not trainer.is_world_process_zero():
        return {}
    heads = trainer.distillation_heads
    results: dict[str, Any] = {
        "recipe_family": "general",
        "objective": "masked_lm" if masked_lm else "intermediate_layers",
        "teacher": describe_model(teacher, teacher_path),
        "student": describe_model(student, config.output_dir),
        "distillation_heads": HEADS_WEIGHTS_NAME
        if heads is not None and heads.has_parameters
        else None,
        "train": {**train_output.metrics, "global_step": train_output.global_step},
        "loss_terms": loss_terms_from_history(trainer.state.log_history),
        "evaluation": evaluation,
        "recipe": recipe_record(
            config, kd_loss=config.kd_loss, layer_map=trainer.layer_map,
            projection=config.projection if heads is not None and heads.has_parameters else None,
            student_architecture=model_args.student_architecture, reference=config.reference,
            kd_positions=config.kd_positions, **trainer.relation_record(),
        ),
        "data": {
            "dataset_name": data_args.dataset_name,
            "train_file": data_args.train_file,
            "streaming": data.streaming,
            "max_seq_length": data_args.max_seq_length,
            "packing": data_args.packing,
            "train_sequences": _size(data.train),
            "eval_sequences": _size(data.validation) if data.validation is not None else None,
            "mlm_probability": data_args.mlm_probability if masked_lm else None,
            "mlm_smoothing": data_args.mlm_smoothing if masked_lm else None,
        },
    }
    if results["student"]["parameters"]:
        results["compression"] = round(results["teacher"]["parameters"] / results["student"]["parameters"], 2)
    write_results(config.output_dir, results)
    print("\n" + format_general_results(results) + "\n")
    return results


def format_general_results(results: dict[str, Any]) -> str:
    """A short text summary of `results.json`."""
    teacher, student = results["teacher"], results["student"]
    lines = [
        f"General distillation ({results['objective']}): teacher {teacher['architecture']} "
        f"{teacher['num_layers']}x{teacher['hidden_size']} ({teacher['parameters']:,} params) -> student "
        f"{student['architecture']} {student['num_layers']}x{student['hidden_size']} ({student['parameters']:,} params)",
    ]
    terms = results.get("loss_terms") or {}
    if terms:
        names = [key for key in terms["last"] if key != "step"]
        lines.append("loss term      " + "  ".join(f"{name:>12}" for name in names))
        for when in ("first", "last"):
            row = terms[when]
            lines.append(f"{when} (step {row['step']:>4})" + "  ".join(f"{row.get(n, float('nan')):>12.4f}" for n in names))
    evaluation = results.get("evaluation") or {}
    if "student" in evaluation:
        lines.append(
            f"held-out MLM loss / perplexity: student {evaluation['student']['mlm_loss']} / "
            f"{evaluation['student']['perplexity']}, teacher {evaluation['teacher']['mlm_loss']} / "
            f"{evaluation['teacher']['perplexity']}"
        )
    if "distillation_loss" in evaluation:
        before = evaluation.get("distillation_loss_before", {}).get("eval_before_loss")
        after = evaluation["distillation_loss"].get("eval_loss")
        lines.append(f"held-out distillation loss: before training {before}, after {after}")
    return "\n".join(lines)
