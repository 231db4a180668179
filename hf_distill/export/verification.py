"""Checks of an export, whatever runs it: fp32 parity with PyTorch, and the task metric of each variant on an
evaluation set."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from .runners import select_feeds

DEFAULT_TOLERANCE = 1e-4
SAMPLE_SENTENCES = (
    "A gripping, beautifully acted film.",
    "The plot never comes together and the dialogue is flat.",
    "ok",
    "It is neither the best nor the worst thing I have seen this year, but it is long.",
    "An utterly charming story that stays with you for days after the credits roll.",
    "Bad.",
    "The second half drags, yet the ending almost makes up for it.",
    "I would not recommend it to anyone who values their evening.",
)


class ParityError(RuntimeError):
    """The fp32 export's outputs (ONNX Runtime or OpenVINO) differ from PyTorch's by more than the tolerance."""


def create_session(path: Path, threads: Optional[int] = None):
    """An ONNX Runtime CPU `InferenceSession` with `threads` intra-op threads (ORT's default when `None`)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def text_feeds(tokenizer, texts, max_length: int = 128, padding="longest") -> dict[str, np.ndarray]:
    """Tokenizes `texts` into int64 numpy arrays."""
    encoded = tokenizer(list(texts), padding=padding, truncation=True, max_length=max_length, return_tensors="np")
    return {name: np.asarray(value, dtype=np.int64) for name, value in encoded.items()}


def synthetic_feeds(input_names: Sequence[str], model, batch_size: int, sequence_length: int,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of a fixed shape for every name in `input_names` (token ids, full masks, or pixels).

    Args:
        input_names (`Sequence[str]`): The inputs of the export (a runner's `input_names`).
        model (`PreTrainedModel`): Gives the vocabulary size, or the image size and channels.
        batch_size, sequence_length (`int`): The shape.
        seed (`int`, defaults to 0): Seed of the token ids or pixels.
    """
    rng = np.random.default_rng(seed)
    config = model.config
    feeds = {}
    for name in input_names:
        if name == "input_ids":
            vocab_size = getattr(config, "vocab_size", 1000)
            low = min(1000, vocab_size // 2)
            feeds[name] = rng.integers(low, vocab_size, (batch_size, sequence_length), dtype=np.int64)
        elif name == "attention_mask":
            feeds[name] = np.ones((batch_size, sequence_length), dtype=np.int64)
        elif name == "token_type_ids":
            feeds[name] = np.zeros((batch_size, sequence_length), dtype=np.int64)
        elif name == "pixel_values":
            size = config.image_size
            feeds[name] = rng.standard_normal((batch_size, config.num_channels, size, size)).astype(np.float32)
        else:
            raise ValueError(f"No synthetic value for the input {name!r}.")
    return feeds


def pytorch_outputs(model, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
    """Runs the PyTorch model on numpy `feeds` and returns its outputs called `names`, as numpy arrays."""
    import torch

    with torch.inference_mode():
        outputs = model(**{name: torch.from_numpy(value) for name, value in feeds.items()})
    missing = [name for name in names if name not in outputs]
    if missing:
        raise ValueError(f"The PyTorch model returns no {missing}; it returns {list(outputs.keys())}.")
    return [outputs[name].float().numpy() for name in names]


def check_parity(model, runner, feeds: dict[str, np.ndarray]) -> dict:
    """Largest absolute difference between an export's outputs and the PyTorch model's, over all outputs.

    Args:
        model (`PreTrainedModel`): The PyTorch model.
        runner (`Runner`): The export (`runners.OnnxRuntimeRunner`, `openvino_backend.OpenVINORunner`).
        feeds (`dict[str, np.ndarray]`): The inputs (those the runner does not take are ignored).

    Returns:
        `dict`: `max_abs_diff`, `num_samples` and `per_output` (name -> max abs diff).
    """
    names = runner.output_names
    feeds = select_feeds(feeds, runner.input_names)
    export_values = runner.run(feeds)
    torch_values = pytorch_outputs(model, feeds, names)
    per_output = {}
    for name, export_value, torch_value in zip(names, export_values, torch_values):
        if export_value.shape != torch_value.shape:
            raise ParityError(f"Exported output {name!r} has shape {export_value.shape}, PyTorch's {torch_value.shape}.")
        per_output[name] = float(np.max(np.abs(export_value.astype(np.float64) - torch_value)))
    num_samples = len(next(iter(feeds.values())))
    return {"max_abs_diff": max(per_output.values()), "num_samples": num_samples, "per_output": per_output}


def task_batches(dataset, input_names: list[str], tokenizer, batch_size: int = 32):
    """Batches of a tokenized evaluation set, each padded to its longest sequence: `(feeds, labels)` pairs."""
    for start in range(0, len(dataset), batch_size):
        rows = dataset[start:start + batch_size]
        features = [{name: rows[name][i] for name in input_names if name in rows} for i in range(len(rows["labels"]))]
        padded = tokenizer.pad(features, padding="longest", return_tensors="np")
        yield {name: np.asarray(padded[name], dtype=np.int64) for name in input_names}, np.asarray(rows["labels"])


def evaluate_variants(predictors: dict[str, Callable[[dict], np.ndarray]], dataset, tokenizer, input_names: list[str],
                      compute_metrics: Callable, score: Callable[[dict], float], batch_size: int = 32) -> dict[str, float]:
    """Scores each predictor (numpy feeds -> logits) on a tokenized evaluation set with the task's metric.

    Args:
        predictors (`dict[str, Callable]`): Variant name -> function from a feed dict to logits.
        dataset (`Dataset`): Tokenized evaluation set with `labels`.
        tokenizer (`PreTrainedTokenizerBase`): Pads each batch to its longest sequence.
        input_names (`list[str]`): The model inputs to feed.
        compute_metrics (`Callable`): The task's `compute_metrics` (takes an `EvalPrediction`).
        score (`Callable`): Reduces the metrics to one number.

    Returns:
        `dict[str, float]`: Variant name -> score.
    """
    from transformers import EvalPrediction

    logits = {name: [] for name in predictors}
    labels = []
    for feeds, batch_labels in task_batches(dataset, input_names, tokenizer, batch_size):
        labels.append(batch_labels)
        for name, predict in predictors.items():
            logits[name].append(np.asarray(predict(feeds), dtype=np.float32))
    labels = np.concatenate(labels)
    return {name: float(score(compute_metrics(EvalPrediction(predictions=np.concatenate(values), label_ids=labels))))
            for name, values in logits.items()}
