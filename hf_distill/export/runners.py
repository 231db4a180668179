"""One interface over every runtime an export is checked and timed on: a `Runner` takes numpy feeds, returns outputs.

`OnnxRuntimeRunner` wraps an `onnxruntime.InferenceSession`, `openvino_backend.OpenVINORunner` a compiled OpenVINO
model and `TorchRunner` a PyTorch model, so that parity, accuracy and latency (`verification.py`, `latency.py`,
`benchmark.py`) are measured by the same code whatever runs the model. Nothing here imports a runtime at module
level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Protocol, Sequence

import numpy as np


class Runner(Protocol):
    """A model that runs on numpy feeds.

    Attributes:
        input_names (`list[str]`): The inputs the model takes (a subset of the feeds it is given is picked by name).
        output_names (`list[str]`): The outputs `run` returns, in this order.
    """

    input_names: list[str]
    output_names: list[str]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Runs the model on `feeds` (extra keys are ignored) and returns every output, in `output_names` order."""


def select_feeds(feeds: dict[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
    """The entries of `feeds` that a runner takes, in its input order."""
    return {name: feeds[name] for name in names}


class OnnxRuntimeRunner:
    """An ONNX Runtime CPU session as a `Runner`.

    Args:
        path (`Path`): The `.onnx` file.
        threads (`int`, *optional*): Intra-op threads (ONNX Runtime's default when `None`).
    """

    def __init__(self, path: Path, threads: Optional[int] = None):
        from .verification import create_session

        self.session = create_session(path, threads)
        self.input_names = [spec.name for spec in self.session.get_inputs()]
        self.output_names = [spec.name for spec in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, select_feeds(feeds, self.input_names))


class TorchRunner:
    """A PyTorch model (eval mode) as a `Runner`: numpy feeds in, the named outputs as numpy arrays out.

    Args:
        model (`PreTrainedModel`): The model.
        input_names (`list[str]`): The inputs it is fed (those of the export it is compared with).
        output_names (`list[str]`): The model outputs to return (e.g. `["logits"]`).
    """

    def __init__(self, model, input_names: Sequence[str], output_names: Sequence[str]):
        self.model = model
        self.input_names = list(input_names)
        self.output_names = list(output_names)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            outputs = self.model(**{name: torch.from_numpy(feeds[name]) for name in self.input_names if name in feeds})
        return [outputs[name].float().numpy() for name in self.output_names]
