"""Every difference between the supported transformers versions (4.57 and 5.x), in one place.

The rest of hf-distill calls the functions here and never tests a version itself. Each function
says what differs between the two lines and which behaviour it gives on both.

Nothing here imports torch or transformers at module level, so the command line stays fast.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Optional, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn
    from transformers import PreTrainedTokenizerBase, TrainingArguments


@functools.lru_cache(maxsize=None)
def transformers_major() -> int:
    """The major version of the installed transformers (4 or 5)."""
    from importlib.metadata import version

    return int(version("transformers").split(".")[0])


def load_sharded_checkpoint(model: "nn.Module", folder: str, strict: bool = True) -> Any:
    """transformers' `load_sharded_checkpoint` (in `modeling_utils` in 4.57, `trainer_utils` in 5.x)."""
    try:
        from transformers.trainer_utils import load_sharded_checkpoint as load
    except ImportError:
        from transformers.modeling_utils import load_sharded_checkpoint as load
    return load(model, folder, strict=strict)


# ---------------------------------------------------------------------------------------- warmup


@functools.lru_cache(maxsize=None)
def trainer_has_field(name: str) -> bool:
    """Whether `TrainingArguments` has the field `name` (5.x removed `warmup_ratio` and `overwrite_output_dir`)."""
    import dataclasses

    from transformers import TrainingArguments

    return any(item.name == name for item in dataclasses.fields(TrainingArguments))


def trainer_has_warmup_ratio() -> bool:
    """Whether `TrainingArguments` has its own `warmup_ratio` field (4.57 yes; 5.x removed it)."""
    return trainer_has_field("warmup_ratio")


def normalize_warmup(args: "TrainingArguments") -> None:
    """Makes `warmup_ratio` and `warmup_steps` mean the same on every transformers version.

    A recipe may give the warmup either way, and either is read the same on both lines:

    - `warmup_ratio` (a float in [0, 1)): the share of the training steps spent warming up.
    - `warmup_steps`: an integer number of steps, or a float in (0, 1), read as a ratio (the 5.x
      convention).

    transformers 4.57 keeps the two fields (`warmup_steps` wins when > 0); 5.x has only
    `warmup_steps`, a float that is a ratio below 1. Here, after the config's `__post_init__`, the
    values are written the installed version's way: on 5.x a ratio goes into `warmup_steps`; on 4.57 a
    fractional `warmup_steps` goes into `warmup_ratio`. `warmup_ratio` stays readable on both.

    Raises:
        ValueError: When both are set, or a value is negative or a ratio is not below 1.
    """
    ratio = float(getattr(args, "warmup_ratio", 0.0) or 0.0)
    steps = float(args.warmup_steps or 0)
    if ratio < 0 or not ratio < 1:
        raise ValueError(f"warmup_ratio must be in [0, 1), got {ratio}.")
    if steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {args.warmup_steps}.")
    if 0 < steps < 1:
        if ratio > 0 and ratio != steps:
            raise ValueError(
                f"warmup_steps={steps} (a ratio) and warmup_ratio={ratio} both set the warmup: give one of them."
            )
        ratio, steps = steps, 0.0
    elif steps >= 1 and ratio > 0:
        raise ValueError(
            f"warmup_steps={args.warmup_steps} and warmup_ratio={ratio} both set the warmup: give one of them."
        )
    elif steps >= 1 and steps != int(steps):
        raise ValueError(f"warmup_steps must be a whole number of steps or a ratio below 1, got {steps}.")
    if trainer_has_warmup_ratio():
        args.warmup_ratio = ratio
        args.warmup_steps = int(steps)
    else:
        object.__setattr__(args, "warmup_ratio", ratio)
        args.warmup_steps = ratio if ratio > 0 else int(steps)


def warmup_of(args: "TrainingArguments") -> dict[str, float]:
    """The warmup as `{"warmup_ratio": r, "warmup_steps": n}`, read the same on every version."""
    steps = float(args.warmup_steps or 0)
    if 0 < steps < 1:
        return {"warmup_ratio": steps, "warmup_steps": 0}
    return {"warmup_ratio": float(getattr(args, "warmup_ratio", 0.0) or 0.0), "warmup_steps": int(steps)}


def rotate_checkpoints(trainer: Any, run_dir: str) -> None:
    """Deletes the checkpoints beyond `save_total_limit` in `run_dir`, keeping the best one (Trainer's rotation:
    the method `_rotate_checkpoints` in 4.57, the function `trainer_utils.rotate_checkpoints` in 5.x)."""
    if hasattr(trainer, "_rotate_checkpoints"):
        trainer._rotate_checkpoints(use_mtime=True, output_dir=run_dir)
        return
    from transformers.trainer_utils import rotate_checkpoints as rotate

    rotate(output_dir=run_dir, save_total_limit=trainer.args.save_total_limit,
           best_model_checkpoint=trainer.state.best_model_checkpoint, use_mtime=True)


# ---------------------------------------------------------------------------------------- tokenizers


def special_tokens_frame(tokenizer: "PreTrainedTokenizerBase") -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer puts before and after one sequence, e.g. `([CLS], [SEP])`.

    transformers 5.x dropped `build_inputs_with_special_tokens`; this reads the frame from the
    tokenizer itself (one word encoded with and without special tokens), which works on both lines
    and for any tokenizer whose single-sequence template is prefix + text + suffix (BERT, RoBERTa,
    XLM-R, ALBERT, DeBERTa, ModernBERT).

    Raises:
        ValueError: When the template is not of that shape.
    """
    plain = tokenizer("hello", add_special_tokens=False)["input_ids"]
    full = tokenizer("hello", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return list(full[:start]), list(full[start + len(plain) :])
    raise ValueError(
        f"{type(tokenizer).__name__} does not add its special tokens around the text; it cannot cut raw text "
        "into sequences here."
    )


def with_special_tokens(ids: Sequence[int], frame: tuple[Sequence[int], Sequence[int]]) -> list[int]:
    """`ids` inside the frame of `special_tokens_frame`."""
    prefix, suffix = frame
    return [*prefix, *ids, *suffix]


def bert_tokenizer_from_vocab(vocab_file: str, **kwargs: Any) -> "PreTrainedTokenizerBase":
    """A fast BERT tokenizer from a `vocab.txt` (5.x ignores the `vocab_file=` keyword; the path is positional)."""
    from transformers import BertTokenizerFast

    return BertTokenizerFast(vocab_file, **kwargs)


# ---------------------------------------------------------------------------------------- models


def extended_attention_mask(attention_mask: "torch.Tensor", dtype: "torch.dtype") -> "torch.Tensor":
    """The additive mask an encoder layer takes: `(batch, 1, 1, seq)`, 0 for real tokens, the dtype's minimum
    for padding (the `get_extended_attention_mask` of 4.57 models, gone from 5.x models)."""
    import torch

    mask = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - mask) * torch.finfo(dtype).min


def pooled_features(output: Any) -> "torch.Tensor":
    """The embedding a `get_text_features` / `get_image_features` call returns: a tensor in 4.57, an output
    object whose `pooler_output` holds it in 5.x."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is None:
        raise TypeError(f"Expected a tensor or an output with pooler_output, got {type(output).__name__}.")
    return pooled

