"""Latency of PyTorch fp32, ONNX fp32 and ONNX int8 on fixed-shape inputs, measured in one process."""

from __future__ import annotations

import statistics
import time
from typing import Callable

DEFAULT_SHAPES = ((1, 128), (32, 128))


def median_latencies_ms(runners: dict[str, Callable[[], object]], runs: int = 10, warmup: int = 2) -> dict[str, float]:
    """Median wall time in milliseconds of each runner, over `runs` rounds after `warmup` untimed rounds.

    The runners take turns within each round (A, B, C, A, B, C, ...) rather than running in blocks, so a
    change in machine load during the measurement (other jobs on a shared CPU) hits every variant alike.
    """
    for _ in range(warmup):
        for run in runners.values():
            run()
    times = {name: [] for name in runners}
    for _ in range(runs):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: 1000.0 * statistics.median(values) for name, values in times.items()}


def shape_key(batch_size: int, sequence_length: int, modality: str = "text", image_size: int = 224) -> str:
    """The `latency_ms` key of one input shape: `batch_32_seq_128` (text) or `batch_32_image_224` (vision)."""
    if modality == "vision":
        return f"batch_{batch_size}_image_{image_size}"
    return f"batch_{batch_size}_seq_{sequence_length}"


def measure_latencies(model, sessions: dict, feeds_for_shape: Callable[[int, int], dict], shapes=DEFAULT_SHAPES,
                      runs: int = 10, warmup: int = 2, modality: str = "text") -> dict[str, dict[str, float]]:
    """Median latency of the PyTorch model and each ONNX session at each (batch, sequence) shape.

    Args:
        model (`PreTrainedModel`): The PyTorch fp32 model (eval mode).
        sessions (`dict`): Variant name (`"onnx_fp32"`, `"onnx_int8"`) -> `InferenceSession`.
        feeds_for_shape (`Callable`): `(batch, sequence) -> feed dict` of numpy arrays.
        shapes (`tuple`): (batch, sequence) pairs.
        runs (`int`): Timed rounds per shape (the median is kept); variants alternate within a round.
        warmup (`int`): Untimed runs first.

    Returns:
        `dict`: Shape key -> {"pytorch_fp32": ms, "onnx_fp32": ms, "onnx_int8": ms}.
    """
    import torch

    results = {}
    for batch_size, sequence_length in shapes:
        feeds = feeds_for_shape(batch_size, sequence_length)
        tensors = {name: torch.from_numpy(value) for name, value in feeds.items()}

        def run_torch():
            with torch.inference_mode():
                model(**tensors)

        runners = {"pytorch_fp32": run_torch}
        for name, session in sessions.items():
            session_feeds = {spec.name: feeds[spec.name] for spec in session.get_inputs()}
            runners[name] = (lambda s, f: lambda: s.run(None, f))(session, session_feeds)
        row = median_latencies_ms(runners, runs, warmup)
        image_size = getattr(model.config, "image_size", 224)
        results[shape_key(batch_size, sequence_length, modality, image_size)] = {k: round(v, 2) for k, v in row.items()}
    return results
