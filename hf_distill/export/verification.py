"""Checks of an export: fp32 parity with PyTorch, and the task metric of each variant on an evaluation set."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

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
    """The fp32 ONNX model's outputs differ from PyTorch's by more than the tolerance."""


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


def synthetic_feeds(session, model, batch_size: int, sequence_length: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of a fixed shape for every input of `session` (token ids, full masks, or pixels)."""
    rng = np.random.default_rng(seed)
    config = model.config
    feeds = {}
    for spec in session.get_inputs():
        if spec.name == "input_ids":
            vocab_size = getattr(config, "vocab_size", 1000)
            low = min(1000, vocab_size // 2)
            feeds[spec.name] = rng.integers(low, vocab_size, (batch_size, sequence_length), dtype=np.int64)
        elif spec.name == "attention_mask":
            feeds[spec.name] = np.ones((batch_size, sequence_length), dtype=np.int64)
        elif spec.name == "token_type_ids":
            feeds[spec.name] = np.zeros((batch_size, sequence_length), dtype=np.int64)
        elif spec.name == "pixel_values":
            size = config.image_size
            feeds[spec.name] = rng.standard_normal((batch_size, config.num_channels, size, size)).astype(np.float32)
        else:
            raise ValueError(f"No synthetic value for the ONNX input {spec.name!r}.")
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


def check_parity(model, session, feeds: dict[str, np.ndarray]) -> dict:
    """Largest absolute difference between the ONNX session's outputs and the PyTorch model's, over all outputs.

    Returns:
        `dict`: `max_abs_diff`, `num_samples` and `per_output` (name -> max abs diff).
    """
    names = [output.name for output in session.get_outputs()]
    feeds = {spec.name: feeds[spec.name] for spec in session.get_inputs()}
    onnx_values = session.run(names, feeds)
    torch_values = pytorch_outputs(model, feeds, names)
    per_output = {}
    for name, onnx_value, torch_value in zip(names, onnx_values, torch_values):
        if onnx_value.shape != torch_value.shape:
            raise ParityError(f"ONNX output {name!r} has shape {onnx_value.shape}, PyTorch's {torch_value.shape}.")
        per_output[name] = float(np.max(np.abs(onnx_value.astype(np.float64) - torch_value)))
    num_samples = len(next(iter(feeds.values())))
    return {"max_abs_diff": max(per_output.values()), "num_samples": num_samples, "per_output": per_output}


def _batches(dataset, input_names: list[str], tokenizer, batch_size: int):
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
    for feeds, batch_labels in _batches(dataset, input_names, tokenizer, batch_size):
        labels.append(batch_labels)
        for name, predict in predictors.items():
            logits[name].append(np.asarray(predict(feeds), dtype=np.float32))
    labels = np.concatenate(labels)
    return {name: float(score(compute_metrics(EvalPrediction(predictions=np.concatenate(values), label_ids=labels))))
            for name, values in logits.items()}
