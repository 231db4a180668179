"""The torch backend: `torch.onnx.export` with the TorchScript exporter, named and shaped as Optimum's export.

Works with every supported transformers version (no Optimum needed). The graph has the inputs `input_ids`,
`attention_mask` and `token_type_ids` (those the model and its tokenizer use) or `pixel_values`, and the outputs
of `onnx_export.output_axes`, with dynamic batch and sequence axes. The trace runs on a batch whose last row is
padded, so that the graph records the attention mask being built from the input even where a transformers code
path skips the mask for a batch without padding; the parity check then runs on padded batches.
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import torch

from .onnx_export import (
    DEFAULT_OPSET,
    ONNX_FP32_FILE,
    PIXEL_AXES,
    TEXT_INPUTS,
    ExportError,
    ModelSpec,
    output_axes,
    text_axes,
)

DUMMY_BATCH_SIZE = 2
DUMMY_SEQUENCE_LENGTH = 16


class _NamedOutputs(torch.nn.Module):
    """Calls the model with keyword inputs and returns the named outputs as a tuple (what the tracer records)."""

    def __init__(self, model: torch.nn.Module, input_names: list[str], output_names: list[str]):
        super().__init__()
        self.model = model
        self.input_names = input_names
        self.output_names = output_names

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(**dict(zip(self.input_names, inputs)))
        return tuple(outputs[name] for name in self.output_names)


def input_names(model, spec: ModelSpec, preprocessor) -> list[str]:
    """The graph's inputs: `pixel_values` for a vision tower; else the text inputs that the model's `forward` takes
    and its tokenizer produces (no `token_type_ids` for RoBERTa-like models, nor where `type_vocab_size` is 0)."""
    if spec.modality == "vision":
        return ["pixel_values"]
    accepted = inspect.signature(model.forward).parameters
    produced = getattr(preprocessor, "model_input_names", None) or TEXT_INPUTS
    names = [name for name in TEXT_INPUTS if name in accepted and name in produced]
    if "token_type_ids" in names and getattr(model.config, "type_vocab_size", 1) == 0:
        names.remove("token_type_ids")
    return names


def dummy_inputs(model, names: list[str]) -> tuple[torch.Tensor, ...]:
    """Inputs to trace with: batch 2, sequence 16 (or the model's maximum), the last row right-padded."""
    config = model.config
    generator = torch.Generator().manual_seed(0)
    batch = DUMMY_BATCH_SIZE
    length = min(DUMMY_SEQUENCE_LENGTH, getattr(config, "max_position_embeddings", None) or DUMMY_SEQUENCE_LENGTH)
    values = []
    for name in names:
        if name == "pixel_values":
            size = config.image_size
            values.append(torch.randn(batch, config.num_channels, size, size, generator=generator))
        elif name == "input_ids":
            values.append(torch.randint(0, config.vocab_size, (batch, length), generator=generator))
        elif name == "attention_mask":
            mask = torch.ones(batch, length, dtype=torch.int64)
            mask[-1, length // 2:] = 0
            values.append(mask)
        else:  # token_type_ids
            values.append(torch.zeros(batch, length, dtype=torch.int64))
    return tuple(values)


def export_with_torch(model, spec: ModelSpec, preprocessor, output_dir: Path, opset: int = DEFAULT_OPSET) -> None:
    """Writes `output_dir/model.onnx` with `torch.onnx.export(..., dynamo=False)`.

    Args:
        model (`PreTrainedModel`): The model in eval mode (eager attention, the pattern ONNX Runtime fuses).
        spec (`ModelSpec`): What is exported (task or CLIP tower).
        preprocessor (`PreTrainedTokenizerBase`, *optional*): Says which text inputs the model is fed.
        output_dir (`Path`): The folder to write into.
        opset (`int`, defaults to 17): ONNX opset.

    Raises:
        ExportError: When the TorchScript exporter fails on the model.
    """
    inputs = input_names(model, spec, preprocessor)
    outputs = output_axes(spec)
    dynamic_axes = {name: PIXEL_AXES if name == "pixel_values" else text_axes() for name in inputs}
    dynamic_axes.update(outputs)
    wrapper = _NamedOutputs(model, inputs, list(outputs)).eval()  # export restores the wrapper's mode on the model
    was_training = model.training
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            # dynamo=False is deliberate (the graph ONNX Runtime's fusions match); torch deprecates it loudly.
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
            torch.onnx.export(
                wrapper,
                dummy_inputs(model, inputs),
                str(output_dir / ONNX_FP32_FILE),
                input_names=inputs,
                output_names=list(outputs),
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as error:
        raise ExportError(f"torch.onnx.export failed on {type(model).__name__} ({type(error).__name__}: {error}); "
                          "where optimum-onnx is installed, try exporter='optimum' (`--exporter optimum`).") from error
    finally:
        model.train(was_training)
