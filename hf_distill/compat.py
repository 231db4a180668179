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



# ---------------------------------------------------------------------------------------- ModernBERT layers


def modernbert_layer_kinds(config: Any) -> list[bool]:
    """Whether each layer of a ModernBERT config attends globally (`True`) or within a local window (`False`).

    4.57 derives a layer's kind from its index: layer ``i`` is global when
    ``i % global_attn_every_n_layers == 0``. 5.x lists every layer's kind in `config.layer_types`
    (`"full_attention"` or `"sliding_attention"`), built from the same rule unless given.
    """
    types = getattr(config, "layer_types", None)
    if types:
        return [kind == "full_attention" for kind in types[: config.num_hidden_layers]]
    every = config.global_attn_every_n_layers
    return [index % every == 0 for index in range(config.num_hidden_layers)]


def set_modernbert_layer_kinds(config: Any, kinds: Sequence[bool]) -> list[int]:
    """Gives a ModernBERT config `len(kinds)` layers of these kinds (`True`: global attention).

    5.x writes them into `config.layer_types`, so any pattern is kept. 4.57 has no per-layer list: it
    keeps the pattern only when some `global_attn_every_n_layers` reproduces it (layer 0 is always
    global there), and otherwise leaves that field as it was.

    Returns:
        `list[int]`: The layers whose kind differs from `kinds` (empty when every kind was kept).
    """
    kinds = [bool(kind) for kind in kinds]
    config.num_hidden_layers = len(kinds)
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = ["full_attention" if kind else "sliding_attention" for kind in kinds]
        return []
    current = config.global_attn_every_n_layers
    periods = [current] + [period for period in range(1, len(kinds) + 1) if period != current]
    for period in periods:
        if kinds == [index % period == 0 for index in range(len(kinds))]:
            config.global_attn_every_n_layers = period
            return []
    return [index for index, kind in enumerate(modernbert_layer_kinds(config)) if kind != kinds[index]]


def modernbert_window(attention: "nn.Module", config: Any) -> Optional[int]:
    """The half-width ``w`` of one ModernBERT attention module's local window (`None`: global attention).

    A local layer attends where ``|i − j| ≤ w = local_attention // 2`` on both lines. 4.57 keeps the
    window as the module's `local_attention` pair (`(-1, -1)` for global layers); 5.x keeps
    `sliding_window` (`w + 1`, flash attention's inclusive bound; `None` for global layers).
    """
    pair = getattr(attention, "local_attention", None)
    if pair is not None:
        return None if tuple(pair) == (-1, -1) else int(pair[0])
    return None if getattr(attention, "sliding_window", None) is None else int(config.local_attention) // 2


def modernbert_capture_problem(attention: "nn.Module") -> Optional[str]:
    """Why the rotary tables of a ModernBERT attention module cannot be read, or `None`.

    4.57 runs flash attention on unpadded tokens with a rotary module of its own that rotates the
    packed query/key/value in place; 5.x passes the same padded tables to every kernel.
    """
    rotary = getattr(attention, "rotary_emb", None)
    if rotary is not None and type(rotary).__name__ == "ModernBertUnpaddedRotaryEmbedding":
        return ("transformers 4.57 runs ModernBERT's flash attention on unpadded tokens with its own rotary "
                "kernel; load the models with attn_implementation='sdpa' or 'eager'")
    return None


def hook_modernbert_rotary(attention: "nn.Module", receive: Any) -> Any:
    """Calls `receive(cos, sin)` with the rotary tables each call of a ModernBERT attention module uses.

    5.x computes them once per layer kind in the model and passes them to the attention module as its
    `position_embeddings` argument: a forward pre-hook reads the argument. 4.57 computes them inside the
    module (eager and sdpa) with its own `rotary_emb` submodule: a forward hook reads that output.
    Both are `(batch or 1, seq, head_dim)` tables.

    Returns:
        `torch.utils.hooks.RemovableHandle`: The hook's handle.
    """
    rotary = getattr(attention, "rotary_emb", None)
    if rotary is not None:
        return rotary.register_forward_hook(lambda module, args, output: receive(*output))

    def read_argument(module, args, kwargs):
        tables = kwargs.get("position_embeddings", args[1] if len(args) > 1 else None)
        if tables is not None:
            receive(*tables)

    return attention.register_forward_pre_hook(read_argument, with_kwargs=True)
