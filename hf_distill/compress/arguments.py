"""The pruning and export options of a compress recipe (its other keys are the task family's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..tasks.arguments import parse_layer_numbers

QUANTIZE_CHOICES = ("auto", "dynamic", "static", "none")


@dataclass
class CompressArguments:
    """How the compress chain prunes the teacher and exports the distilled student.

    Parameters:
        prune_num_attention_heads (`int`, *optional*):
            Attention heads kept in each layer, each layer its own most important ones (Michel et al., 2019). The
            width follows: ``hidden_size = heads · head_dim`` (the residual channels of highest activation are
            kept, as in Minitron). Defaults to the teacher's (width unchanged).
        prune_intermediate_size (`int`, *optional*):
            Feed-forward neurons kept in each layer (highest mean activation). Defaults to the teacher's.
        prune_num_layers (`int`, *optional*):
            Layers kept, those of highest block importance (Minitron); `prune_layers` chooses them by hand.
        prune_layers (`str`, *optional*):
            0-based layers to keep, e.g. `"0,2,4"`.
        head_importance (`str`, defaults to `"gradient"`):
            `"gradient"` (the task loss's gradient with respect to a gate on each head, Michel et al.) or
            `"activation"` (the heads' mean output norm, Minitron).
        calibration_batches (`int`, defaults to 32):
            Batches of training examples the importance is measured on.
        calibration_batch_size (`int`, defaults to 16):
            Examples per calibration batch.
        quantize (`str`, defaults to `"auto"`):
            INT8 of the distilled student: `"dynamic"`, `"static"` (calibrated on the task's training data),
            `"auto"` (static for a task with training data, the more accurate path measured), or `"none"`.
        latency_runs (`int`, defaults to 10):
            Timed runs per model and shape in the report.
        quantization_aware_epochs (`float`, defaults to 0.0):
            Epochs of quantization-aware distillation after the export: the distilled student keeps learning from
            the teacher with fake-quantized INT8 weights and inputs in every encoder linear layer
            (`hf_distill.compress.quantization_aware`), then is exported with static INT8 into
            `<output_dir>/quantization_aware`, beside the post-training INT8 model. 0 skips it.
        quantization_aware_learning_rate (`float`, defaults to 1e-5):
            Learning rate of that stage (it starts from a trained student).
    """

    prune_num_attention_heads: Optional[int] = field(
        default=None, metadata={"help": "Attention heads kept per layer (the width follows: heads x head_dim)."}
    )
    prune_intermediate_size: Optional[int] = field(
        default=None, metadata={"help": "Feed-forward neurons kept per layer."}
    )
    prune_num_layers: Optional[int] = field(
        default=None, metadata={"help": "Layers kept, those of highest block importance."}
    )
    prune_layers: Optional[str] = field(default=None, metadata={"help": "0-based layers to keep, e.g. '0,2,4'."})
    head_importance: str = field(
        default="gradient",
        metadata={"help": "Head importance: 'gradient' (Michel et al.) or 'activation' (Minitron).",
                  "choices": ["gradient", "activation"]},
    )
    calibration_batches: int = field(default=32, metadata={"help": "Training batches the importance is measured on."})
    calibration_batch_size: int = field(default=16, metadata={"help": "Examples per calibration batch."})
    quantize: str = field(
        default="auto",
        metadata={"help": "INT8 of the distilled student: auto, dynamic, static or none.",
                  "choices": list(QUANTIZE_CHOICES)},
    )
    latency_runs: int = field(default=10, metadata={"help": "Timed runs per model and shape in the report."})
    quantization_aware_epochs: float = field(
        default=0.0, metadata={"help": "Epochs of quantization-aware distillation after the export (0: none)."}
    )
    quantization_aware_learning_rate: float = field(
        default=1e-5, metadata={"help": "Learning rate of the quantization-aware distillation stage."}
    )

    def __post_init__(self):
        if self.quantize not in QUANTIZE_CHOICES:
            raise ValueError(f"quantize must be one of {QUANTIZE_CHOICES}, got {self.quantize!r}.")
        if self.quantization_aware_epochs < 0:
            raise ValueError(f"quantization_aware_epochs must be 0 or more, got {self.quantization_aware_epochs}.")
        if self.quantization_aware_epochs > 0 and self.quantize in ("none", "dynamic"):
            raise ValueError(f"quantization_aware_epochs trains the student for static INT8, and quantize is "
                             f"{self.quantize!r}: set quantize to static or auto, or quantization_aware_epochs to 0.")
        if self.calibration_batches < 1 or self.calibration_batch_size < 1:
            raise ValueError("calibration_batches and calibration_batch_size must be at least 1.")
        if self.prune_layers is not None and self.prune_num_layers is not None:
            raise ValueError("Give prune_layers or prune_num_layers, not both.")
        if not any(value is not None for value in (self.prune_num_attention_heads, self.prune_intermediate_size,
                                                    self.prune_num_layers, self.prune_layers)):
            raise ValueError("A compress recipe prunes: set prune_num_attention_heads, prune_intermediate_size, "
                             "prune_num_layers or prune_layers.")

    @property
    def layer_list(self) -> Optional[list[int]]:
        """`prune_layers` as 0-based layer numbers (`None` when unset)."""
        return parse_layer_numbers(self.prune_layers, "prune_layers")
