"""Quantization-aware distillation: the student keeps learning from its teacher through fake-quantized INT8 matmuls.

Each `nn.Linear` of the encoder computes ``F.linear(q_a(x), q_w(W), b)`` while training, where

- ``q_w`` rounds the weight to symmetric INT8 per output channel: ``s_c = max|W_c| / 127``, ``q_w(W)_c = s_c ·
  clamp(round(W_c / s_c), -127, 127)``, the scheme ONNX Runtime's static quantizer gives the MatMul weights here
  (`hf_distill.export.quantization`: per-channel, symmetric, signed);
- ``q_a`` rounds the layer's input to asymmetric UINT8 per tensor over the range an exponential moving average of the
  batch minima and maxima has seen (``s = (max − min) / 255``, ``z = round(−min / s)``), as static calibration does
  with the min/max of the calibration data;

and the rounding passes gradients straight through (the straight-through estimator: ``∂q(x)/∂x = 1`` inside the
range, 0 outside; Jacob et al., 2018; `torch.ao.quantization.FakeQuantize`). The trained weights are then exported and
quantized statically as any student is: training only taught them to tolerate the rounding.

What is not simulated: the two activation-by-activation MatMuls of attention (``Q·Kᵀ`` and ``softmax·V``), which ONNX
Runtime's static quantizer also quantizes, and the classifier (a `Gemm` there, kept in fp32).

The fake quantizers are attached as a plain attribute (moved to the input's device on use) and an instance `forward`,
so `state_dict()`, Trainer's checkpoints and `save_pretrained` hold exactly the plain model's keys: the saved student loads with
`AutoModel*.from_pretrained` and runs in fp32 until it is exported.
"""

from __future__ import annotations

import types
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver, PerChannelMinMaxObserver

WEIGHT_RANGE = (-127, 127)
"""Signed, symmetric INT8 weights (the range ONNX Runtime's symmetric weight quantization uses)."""
ACTIVATION_RANGE = (0, 255)
"""Unsigned INT8 activations with a zero point (ONNX Runtime's static default, `QUInt8`, asymmetric)."""
QUANTIZERS_ATTRIBUTE = "_hf_distill_fake_quantizers"


def weight_fake_quantizer() -> FakeQuantize:
    """Per-output-channel symmetric INT8 fake quantization of a `Linear` weight (min/max of the current weight)."""
    return FakeQuantize(observer=PerChannelMinMaxObserver, quant_min=WEIGHT_RANGE[0], quant_max=WEIGHT_RANGE[1],
                        dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=0)


def activation_fake_quantizer(averaging_constant: float = 0.01) -> FakeQuantize:
    """Per-tensor asymmetric UINT8 fake quantization of a layer input, over a moving average of batch min/max."""
    return FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=ACTIVATION_RANGE[0],
                        quant_max=ACTIVATION_RANGE[1], dtype=torch.quint8, qscheme=torch.per_tensor_affine,
                        averaging_constant=averaging_constant)


def _fake_quantized_forward(self: nn.Linear, inputs: torch.Tensor) -> torch.Tensor:
    quantizers = getattr(self, QUANTIZERS_ATTRIBUTE)
    if quantizers.input.scale.device != inputs.device:
        quantizers.to(inputs.device)
    if self.training or not quantizers.observed:  # evaluation uses the range learned in training
        quantizers.input.enable_observer()
        quantizers.observed = True
    else:
        quantizers.input.disable_observer()
    return F.linear(quantizers.input(inputs.float()), quantizers.weight(self.weight.float()),
                    None if self.bias is None else self.bias.float())


def quantizable_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """The `nn.Linear` modules of the model's encoder (`model.base_model.encoder`), by qualified name.

    Raises:
        ValueError: When the model has no `encoder` or it holds no `nn.Linear`.
    """
    base = getattr(model, "base_model", model)
    encoder = getattr(base, "encoder", None)
    if encoder is None:
        raise ValueError(f"Quantization-aware distillation fake-quantizes the linear layers of an encoder, and "
                         f"{type(model).__name__} has no `encoder` module: set quantization_aware_epochs=0.")
    prefix = next(name for name, module in model.named_modules() if module is encoder)
    linears = {f"{prefix}.{name}": module for name, module in encoder.named_modules() if isinstance(module, nn.Linear)}
    if not linears:
        raise ValueError(f"{type(model).__name__}'s encoder has no nn.Linear to fake-quantize: set "
                         "quantization_aware_epochs=0.")
    return linears


def prepare_quantization_aware(model: nn.Module, averaging_constant: float = 0.01) -> nn.Module:
    """Makes every encoder `nn.Linear` of `model` compute with fake-quantized inputs and weights (in place).

    Args:
        model (`nn.Module`): A transformers encoder model (e.g. `BertForSequenceClassification`).
        averaging_constant (`float`, defaults to 0.01): Weight of each batch in the moving average of the input range.

    Returns:
        `nn.Module`: `model`, whose `state_dict()` keys are unchanged.
    """
    for linear in quantizable_linears(model).values():
        if hasattr(linear, QUANTIZERS_ATTRIBUTE):
            continue
        quantizers = nn.Module()
        quantizers.input = activation_fake_quantizer(averaging_constant)
        quantizers.weight = weight_fake_quantizer()
        quantizers.observed = False  # whether the input range has seen a batch
        # A plain attribute, not a submodule: FakeQuantize always writes its scale into state_dict().
        object.__setattr__(linear, QUANTIZERS_ATTRIBUTE, quantizers.to(linear.weight.device))
        linear.forward = types.MethodType(_fake_quantized_forward, linear)
    return model


def strip_quantization_aware(model: nn.Module) -> nn.Module:
    """Removes what `prepare_quantization_aware` added: the layers compute in plain floating point again (in place)."""
    for module in model.modules():
        if isinstance(module, nn.Linear) and hasattr(module, QUANTIZERS_ATTRIBUTE):
            del module.__dict__[QUANTIZERS_ATTRIBUTE]
            del module.forward  # back to nn.Linear.forward
    return model


def is_quantization_aware(model: nn.Module) -> bool:
    """Whether any layer of `model` computes with fake quantization."""
    return any(hasattr(module, QUANTIZERS_ATTRIBUTE) for module in model.modules())


def quantization_aware_summary(model: nn.Module) -> Optional[dict]:
    """What was fake-quantized, for the report; None when nothing was."""
    layers = [name for name, module in model.named_modules() if hasattr(module, QUANTIZERS_ATTRIBUTE)]
    if not layers:
        return None
    return {"linear_layers": len(layers), "weights": "int8 symmetric per output channel [-127, 127]",
            "inputs": "uint8 asymmetric per tensor, moving-average min/max", "gradients": "straight-through"}
