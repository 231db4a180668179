"""The `retrieval` recipe family: train a dual encoder (teacher or student), evaluate Recall@K, write results.json.

`run_retrieval(model_args, data_args, config)` is what `hf-distill train` calls for a recipe with
``recipe_family: retrieval``. It writes the trained model (plain `from_pretrained` folder, with its
tokenizer), its projection heads if any, and `results.json` (student and teacher recalls on the
evaluation split, chance level, two-stage re-ranking) into `config.output_dir`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Union

from transformers import AutoConfig, AutoImageProcessor, AutoModel, CLIPConfig, CLIPModel, set_seed

from ..checks import check_run_folder, fit_sequence_length
from ..modeling import check_model_path, load_pretrained, load_tokenizer
from ..runs import describe_model, recipe_record, write_results
from .arguments import DATASETS, RetrievalDataArguments, RetrievalModelArguments
from .config import RetrievalDistillationConfig
from .data import (
    PairDataset,
    RetrievalCollator,
    RetrievalSplit,
    load_karpathy_folder,
    load_karpathy_hub,
    synthetic_shapes,
    synthetic_vocabulary,
    word_level_tokenizer,
)
from .evaluation import chance_recall, evaluate_retrieval, two_stage_retrieval
from .students import create_clip_student, create_text_student
from .trainer import RetrievalDistillationTrainer

TINY_CLIP = "tiny-clip"


def tiny_clip_config(vocab_size: int, image_size: int = 32, max_length: int = 32) -> CLIPConfig:
    """The `"tiny-clip"` config: image and text towers of 2 layers, width 64, 4 heads, 64-d embeddings.

    Its text tower pools the first ``[EOS]`` (id 3, see `word_level_tokenizer`).
    """
    return CLIPConfig(
        text_config=dict(
            vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=max_length, pad_token_id=0, bos_token_id=2, eos_token_id=3,
        ),
        vision_config=dict(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            image_size=image_size, patch_size=max(1, image_size // 4),
        ),
        projection_dim=64,
    )


def load_splits(data_args: RetrievalDataArguments, seed: int) -> tuple[RetrievalSplit, RetrievalSplit]:
    """The training split and the evaluation split of a recipe."""
    if data_args.dataset == "synthetic_shapes":
        size = data_args.synthetic_image_size
        train = synthetic_shapes(data_args.synthetic_train_images, size, seed=seed)
        evaluation = synthetic_shapes(data_args.synthetic_eval_images, size, seed=seed + 1_000_003)
    else:
        if data_args.data_dir:
            splits = load_karpathy_folder(data_args.data_dir)
        else:
            splits = load_karpathy_hub(
                data_args.dataset_name,
                data_args.dataset_config_name,
                data_args.dataset_revision,
                image_column=data_args.image_column,
                caption_column=data_args.caption_column,
                split_column=data_args.split_column,
            )
        missing = [s for s in ("train", data_args.eval_split) if s not in splits]
        if missing:
            raise ValueError(f"Flickr30k has no {missing} split here (found {sorted(splits)}).")
        train, evaluation = splits["train"], splits[data_args.eval_split]
    return train.select(data_args.max_train_images), evaluation.select(data_args.max_eval_images)


def _first(*values: Optional[str]) -> Optional[str]:
    return next((value for value in values if value), None)


def load_processors(model_args, data_args, config) -> tuple[Any, Any]:
    """The tokenizer and image processor (a word-level tokenizer for the synthetic set when none is saved)."""
    source = _first(
        model_args.tokenizer_name,
        config.teacher_model_name_or_path,
        model_args.student_model_name_or_path,
        model_args.model_name_or_path,
    )
    if source is None:
        if data_args.dataset != "synthetic_shapes":
            raise ValueError("Set tokenizer_name (or a teacher / model folder that has one) to read the captions.")
        tokenizer = word_level_tokenizer(synthetic_vocabulary(), data_args.max_caption_length)
    else:
        tokenizer = load_tokenizer(source, trust_remote_code=model_args.trust_remote_code)
    image_processor = None
    if data_args.dataset != "synthetic_shapes":
        image_source = _first(
            model_args.image_processor_name,
            config.teacher_model_name_or_path,
            model_args.student_model_name_or_path,
            model_args.model_name_or_path,
        )
        if image_source is None:
            raise ValueError("Set image_processor_name (or a teacher / model folder that has one) to read the images.")
        image_processor = AutoImageProcessor.from_pretrained(image_source, trust_remote_code=model_args.trust_remote_code)
    return tokenizer, image_processor


def _load_dual_encoder(path: str, model_args: RetrievalModelArguments, what: str):
    check_model_path(path, what)
    return load_pretrained(AutoModel, path, what, trust_remote_code=model_args.trust_remote_code, use_safetensors=True)


def _layers(spec: Optional[str]) -> Union[None, int, list[int]]:
    if spec is None:
        return None
    text = str(spec).strip().strip("[]")
    if "," in text:
        return [int(part) for part in text.split(",") if part.strip()]
    return int(text)


def build_model(model_args, data_args, config, tokenizer, teacher) -> Any:
    """The model to train: a ready one, a new one from a config, or a student built from the base/teacher."""
    if model_args.student_model_name_or_path:
        return _load_dual_encoder(model_args.student_model_name_or_path, model_args, "student")
    if model_args.model_config:
        if model_args.model_config == TINY_CLIP:
            model_config = tiny_clip_config(len(tokenizer), data_args.synthetic_image_size, data_args.max_caption_length)
        else:
            model_config = AutoConfig.from_pretrained(model_args.model_config)
        base = CLIPModel(model_config) if isinstance(model_config, CLIPConfig) else AutoModel.from_config(model_config)
    elif model_args.model_name_or_path:
        base = _load_dual_encoder(model_args.model_name_or_path, model_args, "model")
    elif teacher is not None:
        base = teacher
    else:
        raise ValueError("Nothing to train: set model_config, model_name_or_path, student_model_name_or_path or a teacher.")
    if not model_args.reshapes_student:
        if base is teacher:
            raise ValueError(
                "The student would be the teacher itself: set student_vision_layers / student_text_layers (or widths), "
                "text_only, or a student_model_name_or_path."
            )
        return base
    if model_args.text_only:
        if model_args.student_vision_layers is not None or model_args.student_vision_hidden_size is not None:
            raise ValueError("text_only keeps the teacher's image tower: drop student_vision_layers/hidden size.")
        return create_text_student(
            base, text_layers=_layers(model_args.student_text_layers), text_hidden_size=model_args.student_text_hidden_size
        )
    return create_clip_student(
        base,
        vision_layers=_layers(model_args.student_vision_layers),
        text_layers=_layers(model_args.student_text_layers),
        vision_hidden_size=model_args.student_vision_hidden_size,
        text_hidden_size=model_args.student_text_hidden_size,
        projection_dim=model_args.student_projection_dim,
    )


def _describe(model, path: Optional[str], recall: dict[str, float]) -> dict[str, Any]:
    return describe_model(model, path, embedding_dim=getattr(model.config, "projection_dim", None),
                          recall={k: round(v, 2) for k, v in recall.items()})


def run_retrieval(
    model_args: RetrievalModelArguments, data_args: RetrievalDataArguments, config: RetrievalDistillationConfig
) -> dict:
    """Trains, saves and evaluates one retrieval recipe; writes and returns `results.json`.

    Returns:
        `dict`: `student` (and `teacher`) recalls on the evaluation split, `chance`, `two_stage`
        (when `rerank_top_k` > 0), `train` metrics, `recipe` and `data`.
    """
    check_run_folder(config, (config.teacher_model_name_or_path, model_args.model_name_or_path,
                              model_args.student_model_name_or_path))
    data_args = dataclasses.replace(data_args, max_caption_length=fit_sequence_length(data_args.max_caption_length, {
        "teacher": config.teacher_model_name_or_path, "model": model_args.model_name_or_path,
        "student": model_args.student_model_name_or_path}, model_args.trust_remote_code))
    set_seed(config.seed)
    train_split, eval_split = load_splits(data_args, config.data_seed or config.seed)
    tokenizer, image_processor = load_processors(model_args, data_args, config)
    teacher = (
        _load_dual_encoder(config.teacher_model_name_or_path, model_args, "teacher")
        if config.teacher_model_name_or_path
        else None
    )
    model = build_model(model_args, data_args, config, tokenizer, teacher)
    collator = RetrievalCollator(tokenizer, image_processor, data_args.max_caption_length)
    trainer = RetrievalDistillationTrainer(
        model=model,
        teacher_model=teacher,
        args=config,
        train_dataset=PairDataset(train_split),
        data_collator=collator,
        processing_class=tokenizer,
    )
    train_output = trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    trainer.save_model()
    if image_processor is not None and trainer.is_world_process_zero():
        image_processor.save_pretrained(config.output_dir)
    if not trainer.is_world_process_zero():
        return {}
    batch = config.per_device_eval_batch_size
    student_recall = evaluate_retrieval(model, eval_split.images, eval_split.captions, collator, batch)
    captions_per_image = round(sum(len(c) for c in eval_split.captions) / len(eval_split))
    results: dict[str, Any] = {
        "task": f"{data_args.dataset} retrieval ({data_args.eval_split if data_args.dataset == 'flickr30k' else 'eval'})",
        "student": _describe(model, config.output_dir, student_recall),
        "chance": {k: round(v, 2) for k, v in chance_recall(len(eval_split), captions_per_image).items()},
        "train": {**train_output.metrics, "global_step": train_output.global_step},
        "recipe_family": "retrieval",
        "recipe": recipe_record(
            config, embedding_loss=config.embedding_loss if config.embedding_weight > 0 else None,
            logit_scale=config.logit_scale if config.logit_scale is not None else "learned",
            text_only=model_args.text_only,
        ),
        "data": {
            "dataset": data_args.dataset,
            "train_images": len(train_split),
            "train_pairs": len(trainer.train_dataset),
            "eval_images": len(eval_split),
            "eval_captions": sum(len(c) for c in eval_split.captions),
        },
    }
    if teacher is not None:
        teacher_recall = evaluate_retrieval(teacher, eval_split.images, eval_split.captions, collator, batch)
        results["teacher"] = _describe(teacher, config.teacher_model_name_or_path, teacher_recall)
        results["compression"] = round(results["teacher"]["parameters"] / results["student"]["parameters"], 2)
        if data_args.rerank_top_k > 0:
            two_stage = two_stage_retrieval(
                model, teacher, eval_split.images, eval_split.captions, collator, collator, data_args.rerank_top_k, batch
            )
            two_stage["recall"] = {k: round(v, 2) for k, v in two_stage["recall"].items()}
            results["two_stage"] = two_stage
    write_results(config.output_dir, results)
    print("\n" + format_recall_table(results) + "\n")
    return results


def format_recall_table(results: dict) -> str:
    """A Markdown table of the recalls in a `results.json`."""
    keys = ["text_to_image_R@1", "text_to_image_R@5", "text_to_image_R@10",
            "image_to_text_R@1", "image_to_text_R@5", "image_to_text_R@10", "mean_recall"]
    header = "| model | params | " + " | ".join(k.replace("text_to_image_", "t→i ").replace("image_to_text_", "i→t ")
                                              .replace("mean_recall", "mean") for k in keys) + " |"
    lines = [f"{results.get('task', '')}", header, "|" + "---|" * (len(keys) + 2)]
    rows = [("teacher", results.get("teacher")), ("student", results.get("student"))]
    if "two_stage" in results:
        rows.append((f"student top-{results['two_stage']['top_k']} + teacher re-rank", {"recall": results["two_stage"]["recall"]}))
    rows.append(("chance", {"recall": results.get("chance", {})}))
    for name, entry in rows:
        if not entry:
            continue
        params = entry.get("parameters")
        values = " | ".join(f"{entry['recall'].get(k, float('nan')):.1f}" for k in keys)
        lines.append(f"| {name} | {params if params is not None else ''} | {values} |")
    return "\n".join(lines)
