"""Latency of several runtimes (PyTorch, ONNX Runtime, OpenVINO) on the same inputs, measured in one process."""

from __future__ import annotations

import statistics
import time
from typing import Callable, Optional

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


def measure_latencies(runners: dict, feeds_for_shape: Callable[[int, int], dict], shapes=DEFAULT_SHAPES,
                      runs: int = 10, warmup: int = 2, modality: str = "text",
                      image_size: Optional[int] = None) -> dict[str, dict[str, float]]:
    """Median latency of each runner at each (batch, sequence) shape, the runners taking turns.

    Args:
        runners (`dict`): Variant name (`"pytorch_fp32"`, `"onnx_int8"`, `"openvino_int8"`, ...) -> `Runner`
            (`runners.py`); each is fed the inputs it takes.
        feeds_for_shape (`Callable`): `(batch, sequence) -> feed dict` of numpy arrays.
        shapes (`tuple`): (batch, sequence) pairs.
        runs (`int`): Timed rounds per shape (the median is kept); variants alternate within a round.
        warmup (`int`): Untimed runs first.
        modality (`str`, defaults to `"text"`): `"vision"` names the shapes by image size.
        image_size (`int`, *optional*): The image size of a vision model (for the shape keys).

    Returns:
        `dict`: Shape key -> {variant: ms}.
    """
    results = {}
    for batch_size, sequence_length in shapes:
        feeds = feeds_for_shape(batch_size, sequence_length)
        calls = {}
        for name, runner in runners.items():
            runner_feeds = {key: feeds[key] for key in runner.input_names if key in feeds}
            calls[name] = (lambda r, f: lambda: r.run(f))(runner, runner_feeds)
        row = median_latencies_ms(calls, runs, warmup)
        key = shape_key(batch_size, sequence_length, modality, image_size or 224)
        results[key] = {name: round(value, 2) for name, value in row.items()}
    return results


def measure_dataset_latency(runners: dict, batches: list[dict], runs: int = 3, warmup: int = 1) -> tuple[dict, dict]:
    """Mean time per batch of each runner over a list of real batches, and each runner's outputs.

    Each round runs every runner over all the batches in turn (A over the set, B over the set, ...); the median
    round is kept and divided by the number of batches. The first output of every batch is kept from the warm-up
    (or first) round, so the task metric of each variant comes from the same run.

    Args:
        runners (`dict`): Variant name -> `Runner`.
        batches (`list[dict]`): Feed dicts (e.g. an evaluation set padded per batch to its longest sequence).
        runs (`int`, defaults to 3): Timed rounds.
        warmup (`int`, defaults to 1): Untimed rounds first (at least one round's outputs are kept either way).

    Returns:
        `tuple[dict, dict]`: Variant -> ms per batch, and variant -> list of first outputs (one per batch).
    """
    outputs = {name: [] for name in runners}

    def sweep(name, runner, keep):
        for feeds in batches:
            result = runner.run({k: feeds[k] for k in runner.input_names if k in feeds})
            if keep:
                outputs[name].append(result[0])

    calls = {}
    for name, runner in runners.items():
        state = {"first": True}

        def call(name=name, runner=runner, state=state):
            sweep(name, runner, state["first"])
            state["first"] = False

        calls[name] = call
    totals = median_latencies_ms(calls, runs=max(runs, 1), warmup=warmup)
    return {name: round(value / max(len(batches), 1), 2) for name, value in totals.items()}, outputs
