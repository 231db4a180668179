"""Importance scores for structured pruning, measured on calibration examples of the task.

One pass over the calibration batches measures, with forward hooks that work for every attention
implementation (eager, sdpa, ...):

- **heads** ``[L, H]``: by default Michel et al. (2019), *Are Sixteen Heads Really Better than One?*:
  ``I_h = E_x |∂L(x)/∂ξ_h|``, where the gate ``ξ_h = 1`` multiplies head ``h``'s context vector (the input of
  the attention output projection). Each example has its own gates, so the expectation is over examples,
  not batches. ``L`` is the model's task loss when the batches carry labels (the batch-mean loss times the
  batch size: exactly the example's loss for sequence classification, regression and question answering;
  for token-level losses, the example's share of the batch's token mean). Without labels, ``L`` is the
  entropy of the model's own predictions (for token-level logits, averaged over the example's real tokens).
  Michel et al. normalise each layer's scores by their L2 norm; `normalize_heads=True` does too (it does
  not change which heads a layer keeps, only comparisons across layers). `head_importance="activation"`
  instead scores a head by the mean L2 norm of its context vector over real tokens (Minitron, Muralidharan
  et al., 2024), which needs no loss.
- **neurons** ``[L, I]``: mean over real tokens (attention mask) of ``|a|`` after the intermediate
  nonlinearity (Minitron).
- **channels** ``[d]``: mean over real tokens of ``|LayerNorm output|`` per residual channel, summed over every
  LayerNorm of the residual stream: the embedding LayerNorm (unless ELECTRA factorises its embeddings) and
  both LayerNorms of every layer (Minitron).
- **layers** ``[L]``: Minitron's block importance, ``1 − E_tokens cos(x_l, x_{l+1})`` between a layer's input
  and output hidden states; lower means the layer changes its input less.
- **head units** ``[d]`` (models with a pooler or a classification head's hidden layer): the mean over
  examples of ``|u_j|`` times the L2 norm of the weights that read unit ``j`` (its expected contribution to
  the logits), or ``E|u_j|`` for a bare encoder's pooler.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import torch
from torch import nn
from transformers import PreTrainedModel, default_data_collator

from .layout import Layout, describe_model

HEAD_IMPORTANCES = ("gradient", "activation")
LABEL_NAMES = ("labels", "start_positions", "end_positions")


@dataclass
class PruningImportance:
    """Importance scores of one model's prunable parts (higher = more important).

    Args:
        heads (`torch.Tensor`): ``[num_layers, num_attention_heads]``.
        neurons (`torch.Tensor`): ``[num_layers, intermediate_size]``.
        channels (`torch.Tensor`): ``[hidden_size]``, the residual-stream channels.
        layers (`torch.Tensor`): ``[num_layers]``, block importance.
        head_units (`torch.Tensor`, *optional*): ``[hidden_size]``, the pooler's or classification head's hidden
            units; `None` for models without them.
        head_importance (`str`, defaults to `"gradient"`): How `heads` was measured: `"gradient"` (Michel et al.)
            or `"activation"` (Minitron).
        head_loss (`str`, *optional*): For gradient scores, `"task"` (the labels' loss) or `"entropy"` (no labels).
        normalize_heads (`bool`, defaults to `True`): Whether each layer's head scores were divided by their L2 norm.
        num_examples (`int`, defaults to 0): Calibration examples seen.
        num_tokens (`int`, defaults to 0): Real (unpadded) calibration tokens seen.
    """

    heads: torch.Tensor
    neurons: torch.Tensor
    channels: torch.Tensor
    layers: torch.Tensor
    head_units: Optional[torch.Tensor] = None
    head_importance: str = "gradient"
    head_loss: Optional[str] = None
    normalize_heads: bool = True
    num_examples: int = 0
    num_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy (tensors as nested lists)."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return {name: value.tolist() if isinstance(value, torch.Tensor) else value for name, value in values.items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "PruningImportance":
        """The inverse of `to_dict`."""
        tensors = ("heads", "neurons", "channels", "layers", "head_units")
        return cls(**{name: torch.tensor(value) if name in tensors and value is not None else value
                      for name, value in values.items()})

    def describe(self) -> dict[str, Any]:
        """How the scores were measured, for a report (no scores)."""
        return {
            "heads": "michel2019_gradient" if self.head_importance == "gradient" else "minitron_activation",
            "head_loss": self.head_loss,
            "normalize_heads": self.normalize_heads,
            "neurons": "minitron_activation",
            "channels": "minitron_layernorm_activation",
            "layers": "minitron_block_importance",
            "head_units": None if self.head_units is None else "activation_times_weight_norm",
            "num_examples": self.num_examples,
            "num_tokens": self.num_tokens,
        }


@dataclass
class _Accumulator:
    """Running sums filled by the hooks during one batch's forward pass."""

    num_layers: int
    token_mask: Optional[torch.Tensor] = None  # [B, T] floats, set before each batch
    gates: list[torch.Tensor] = field(default_factory=list)  # per layer [B, H], requires grad
    head_norms: dict[int, torch.Tensor] = field(default_factory=dict)
    neurons: dict[int, torch.Tensor] = field(default_factory=dict)
    channels: Optional[torch.Tensor] = None
    layers: dict[int, torch.Tensor] = field(default_factory=dict)
    units: Optional[torch.Tensor] = None

    def masked_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sums ``values [B, T, ...]`` over the real tokens, leaving the trailing dimensions."""
        mask = self.token_mask.to(values.dtype)
        return torch.einsum("bt,bt...->...", mask, values.detach()).float()

    def add(self, store: dict, key: int, value: torch.Tensor) -> None:
        store[key] = store[key] + value if key in store else value


def _hidden_states(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _install_hooks(layout: Layout, acc: _Accumulator, num_heads: int) -> list[Any]:
    handles = []
    for index, layer in enumerate(layout.layers):
        def gate_context(module, args, index=index):
            context = args[0]
            batch, length, width = context.shape
            per_head = context.view(batch, length, num_heads, width // num_heads)
            acc.add(acc.head_norms, index, acc.masked_sum(per_head.norm(dim=-1)))
            if acc.gates:
                gated = per_head * acc.gates[index].to(context.dtype)[:, None, :, None]
                return (gated.reshape(batch, length, width), *args[1:])
            return None

        def neurons(module, args, output, index=index):
            acc.add(acc.neurons, index, acc.masked_sum(output.abs()))

        def block(module, args, kwargs, output, index=index):
            inputs = _hidden_states(args, kwargs)
            outputs = output[0] if isinstance(output, tuple) else output
            cosine = nn.functional.cosine_similarity(inputs.float(), outputs.float(), dim=-1)
            acc.add(acc.layers, index, acc.masked_sum(1 - cosine))

        handles.append(layer.attention.output.dense.register_forward_pre_hook(gate_context))
        handles.append(layer.intermediate.register_forward_hook(neurons))
        handles.append(layer.register_forward_hook(block, with_kwargs=True))
    norms = [norm for layer in layout.layers for norm in (layer.attention.output.LayerNorm, layer.output.LayerNorm)]
    if layout.embedding_norm is not None:
        norms.append(layout.embedding_norm)

    def channels(module, args, output):
        value = acc.masked_sum(output.abs())
        acc.channels = value if acc.channels is None else acc.channels + value

    handles.extend(norm.register_forward_hook(channels) for norm in norms)

    def units(values: torch.Tensor) -> None:
        value = values.detach().abs().float().sum(0)
        acc.units = value if acc.units is None else acc.units + value

    if layout.units_consumer is not None:
        handles.append(layout.units_consumer.register_forward_pre_hook(lambda module, args: units(args[0])))
    elif layout.units_producer is not None:
        handles.append(layout.units_producer.register_forward_hook(lambda module, args, output: units(output)))
    return handles


@contextmanager
def _calibration_mode(model: nn.Module, layout: Layout) -> Iterator[None]:
    """Eval mode, whole (unchunked) feed-forward passes; restored afterwards."""
    was_training = model.training
    chunks = [getattr(layer, "chunk_size_feed_forward", 0) for layer in layout.layers]
    model.eval()
    for layer in layout.layers:
        if hasattr(layer, "chunk_size_feed_forward"):
            layer.chunk_size_feed_forward = 0
    try:
        yield
    finally:
        model.train(was_training)
        for layer, chunk in zip(layout.layers, chunks):
            if hasattr(layer, "chunk_size_feed_forward"):
                layer.chunk_size_feed_forward = chunk


def _batches(data: Any, batch_size: int, data_collator: Optional[Callable]) -> Iterable[Mapping[str, Any]]:
    if isinstance(data, Mapping):
        raise ValueError("compute_importance got one batch (a dict); pass a DataLoader, a list of batches or a "
                         "dataset.")
    if hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, (list, tuple)):
        return torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False,
                                           collate_fn=data_collator or default_data_collator)
    if data_collator is not None:
        raise ValueError("data_collator only applies to a dataset; a DataLoader or list of batches is used as it is.")
    return data


def _entropy_objective(outputs: Any, token_mask: torch.Tensor) -> torch.Tensor:
    """Sum over examples of the entropy of the model's own predictions (token-level: mean over real tokens)."""
    total = 0
    for name, logits in outputs.items():
        if not name.endswith("logits") or not isinstance(logits, torch.Tensor):
            continue
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        if entropy.dim() == 2:  # [B, T]: token-level predictions
            mask = token_mask.to(entropy.dtype)
            entropy = (entropy * mask).sum(-1) / mask.sum(-1).clamp_min(1)
        total = total + entropy.sum()
    return total


def _check_arguments(model: nn.Module, layout: Layout, num_batches: Optional[int], batch_size: int,
                     head_importance: str) -> None:
    if head_importance not in HEAD_IMPORTANCES:
        raise ValueError(f"head_importance={head_importance!r}: choose one of {', '.join(HEAD_IMPORTANCES)}.")
    if num_batches is not None and num_batches < 1:
        raise ValueError(f"num_batches={num_batches} must be at least 1 (or None for every batch).")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1.")
    if head_importance == "gradient" and not layout.has_logits:
        raise ValueError(f"{type(model).__name__} has no task head, so gradient head importance has no loss to "
                         "differentiate; pass head_importance='activation' or load the model with its task head.")


def compute_importance(
    model: PreTrainedModel,
    data: Any,
    num_batches: Optional[int] = None,
    batch_size: int = 8,
    data_collator: Optional[Callable] = None,
    head_importance: str = "gradient",
    normalize_heads: bool = True,
) -> PruningImportance:
    """Measures the importance of every head, FFN neuron, hidden channel and layer on calibration data.

    The model is left unchanged (eval mode during the pass, its training mode restored; no parameter
    gradient is written).

    Args:
        model (`PreTrainedModel`): A BERT, RoBERTa, XLM-R, CamemBERT or ELECTRA model (see `describe_model`).
        data (`DataLoader`, `Dataset` or iterable of batches): Calibration examples of the task. A dataset
            (`datasets.Dataset` or torch `Dataset`) is batched with `data_collator`; batches are dicts of
            tensors, with `labels` (or `start_positions`/`end_positions`) for the task loss. Keys the model's
            `forward` does not take are dropped.
        num_batches (`int`, *optional*): Stop after this many batches; defaults to all.
        batch_size (`int`, defaults to 8): Batch size for a dataset.
        data_collator (`Callable`, *optional*): Batches a dataset; defaults to `default_data_collator` (equal
            lengths). Pass `DataCollatorWithPadding(tokenizer)` for texts of different lengths.
        head_importance (`str`, defaults to `"gradient"`): `"gradient"` (Michel et al., 2019: needs a task head;
            uses the labels' loss, else the entropy of the model's predictions) or `"activation"` (Minitron).
        normalize_heads (`bool`, defaults to `True`): Divide each layer's head scores by their L2 norm
            (Michel et al.'s default). The heads each layer keeps are the same either way.

    Returns:
        `PruningImportance`: The scores, on the CPU, in float32.

    Raises:
        ValueError: For an unsupported model or argument (before any batch runs), no batch, or gradient
            importance of a regression head without labels.
    """
    layout = describe_model(model)
    _check_arguments(model, layout, num_batches, batch_size, head_importance)
    config = model.config
    num_layers, num_heads = config.num_hidden_layers, config.num_attention_heads
    accepted = set(inspect.signature(model.forward).parameters)
    device = next(model.parameters()).device
    acc = _Accumulator(num_layers=num_layers)
    heads = torch.zeros(num_layers, num_heads)
    num_examples = num_tokens = 0
    head_loss = None
    handles = _install_hooks(layout, acc, num_heads)
    try:
        with _calibration_mode(model, layout):
            for step, batch in enumerate(_batches(data, batch_size, data_collator)):
                if num_batches is not None and step >= num_batches:
                    break
                batch = {key: value.to(device) if isinstance(value, torch.Tensor) else value
                         for key, value in batch.items() if key in accepted}
                input_ids = batch.get("input_ids", batch.get("inputs_embeds"))
                batch_len, length = input_ids.shape[:2]
                mask = batch.get("attention_mask")
                acc.token_mask = (mask if mask is not None else torch.ones(batch_len, length, device=device)).float()
                has_labels = any(batch.get(name) is not None for name in LABEL_NAMES)
                if head_importance == "gradient":
                    if not has_labels and getattr(config, "num_labels", 2) == 1 and hasattr(model, "classifier"):
                        raise ValueError("A regression head's own prediction has no entropy to differentiate; "
                                         "give the calibration batches labels or pass head_importance='activation'.")
                    head_loss = "task" if has_labels else "entropy"
                    acc.gates = [torch.ones(batch_len, num_heads, device=device, requires_grad=True)
                                 for _ in range(num_layers)]
                    with torch.enable_grad():
                        outputs = model(**batch)
                        if has_labels:
                            objective = outputs.loss * batch_len
                        else:
                            objective = _entropy_objective(outputs, acc.token_mask)
                        grads = torch.autograd.grad(objective, acc.gates)
                    heads += torch.stack([grad.abs().sum(0) for grad in grads]).float().cpu()
                else:
                    with torch.no_grad():
                        model(**batch)
                num_examples += batch_len
                num_tokens += int(acc.token_mask.sum())
    finally:
        for handle in handles:
            handle.remove()
        acc.gates = []
    if num_examples == 0:
        raise ValueError("compute_importance got no calibration batch; pass a non-empty dataset or DataLoader.")
    if head_importance == "activation":
        heads = torch.stack([acc.head_norms[index] for index in range(num_layers)]).cpu() / num_tokens
    else:
        heads = heads / num_examples
    if normalize_heads:
        heads = heads / heads.norm(dim=1, keepdim=True).clamp_min(torch.finfo(heads.dtype).tiny)
    return PruningImportance(
        heads=heads,
        neurons=torch.stack([acc.neurons[index] for index in range(num_layers)]).cpu() / num_tokens,
        channels=acc.channels.cpu() / num_tokens,
        layers=torch.stack([acc.layers[index] for index in range(num_layers)]).cpu() / num_tokens,
        head_units=_head_units(layout, acc, num_examples),
        head_importance=head_importance,
        head_loss=head_loss,
        normalize_heads=normalize_heads,
        num_examples=num_examples,
        num_tokens=num_tokens,
    )


def _head_units(layout: Layout, acc: _Accumulator, num_examples: int) -> Optional[torch.Tensor]:
    if acc.units is None:
        return None
    scores = acc.units.cpu() / num_examples
    if layout.units_consumer is not None:
        scores = scores * layout.units_consumer.weight.detach().float().norm(dim=0).cpu()
    return scores
