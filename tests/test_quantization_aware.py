"""Quantization-aware distillation: fake-quantized encoder linears, checked against a hand computation."""

import pytest
import torch
from torch import nn
from transformers import AutoModelForSequenceClassification

from hf_distill.compress.arguments import CompressArguments
from hf_distill.compress.quantization_aware import (
    is_quantization_aware,
    prepare_quantization_aware,
    quantizable_linears,
    quantization_aware_summary,
    strip_quantization_aware,
)
from tests.conftest import tiny_teacher


def _inputs():
    ids = torch.randint(5, 40, (2, 9), generator=torch.Generator().manual_seed(0))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _hand_fake_quantized_linear(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    # inputs: uint8, asymmetric, one scale for the tensor over [min(x, 0), max(x, 0)]
    low, high = min(x.min().item(), 0.0), max(x.max().item(), 0.0)
    scale = (high - low) / 255
    zero = min(max(round(-low / scale), 0), 255)
    x_q = (torch.clamp(torch.round(x / scale) + zero, 0, 255) - zero) * scale
    # weights: int8, symmetric, one scale per output row: max |W_c| / 127
    w = linear.weight.detach()
    w_scale = w.abs().amax(dim=1, keepdim=True) / 127
    w_q = torch.clamp(torch.round(w / w_scale), -127, 127) * w_scale
    return x_q @ w_q.T + linear.bias.detach()


def test_a_prepared_linear_computes_with_int8_rounded_inputs_and_weights_as_by_hand():
    model = tiny_teacher()
    prepare_quantization_aware(model).train()
    linear = model.bert.encoder.layer[0].intermediate.dense
    x = torch.randn(2, 5, linear.in_features, generator=torch.Generator().manual_seed(1))
    out = linear(x)  # the first training batch sets the input range
    torch.testing.assert_close(out, _hand_fake_quantized_linear(linear, x), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, nn.functional.linear(x, linear.weight, linear.bias), atol=1e-6)  # it rounds


def test_every_encoder_linear_is_fake_quantized_and_the_classifier_is_not():
    model = tiny_teacher()
    names = set(quantizable_linears(model))
    per_layer = {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                 "intermediate.dense", "output.dense"}
    layers = model.config.num_hidden_layers
    assert names == {f"bert.encoder.layer.{i}.{n}" for i in range(layers) for n in per_layer}
    prepare_quantization_aware(model)
    assert quantization_aware_summary(model)["linear_layers"] == 6 * layers
    assert not hasattr(model.classifier, "_hf_distill_fake_quantizers")


def test_the_saved_model_is_a_plain_checkpoint_and_stripping_restores_fp32(tmp_path):
    model = tiny_teacher().eval()
    keys = set(model.state_dict())
    reference = model(**_inputs()).logits
    prepare_quantization_aware(model)
    assert set(model.state_dict()) == keys and is_quantization_aware(model)
    model.train()
    model(**_inputs()).logits.sum().backward()  # straight-through: gradients reach the weights
    grad = model.bert.encoder.layer[0].attention.self.query.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert not is_quantization_aware(loaded)
    strip_quantization_aware(model).eval()
    assert not is_quantization_aware(model)
    torch.testing.assert_close(model(**_inputs()).logits, reference)
    torch.testing.assert_close(loaded(**_inputs()).logits, reference)


def test_evaluation_keeps_the_input_range_learned_in_training():
    model = tiny_teacher()
    prepare_quantization_aware(model).train()
    model(**_inputs())
    observer = model.bert.encoder.layer[0].attention.self.query._hf_distill_fake_quantizers.input
    scale = observer.scale.clone()
    model.eval()
    ids = torch.randint(5, 40, (3, 20))
    model(input_ids=ids * 1, attention_mask=torch.ones_like(ids))
    torch.testing.assert_close(observer.scale, scale)


def test_refusals():
    class NoEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(4, 4)

    with pytest.raises(ValueError, match="has no `encoder` module: set quantization_aware_epochs=0"):
        prepare_quantization_aware(NoEncoder())
    with pytest.raises(ValueError, match="set quantize to static or auto"):
        CompressArguments(prune_num_layers=2, quantize="dynamic", quantization_aware_epochs=1)
    with pytest.raises(ValueError, match="must be 0 or more"):
        CompressArguments(prune_num_layers=2, quantization_aware_epochs=-1)
