"""Structured pruning: a smaller, dense model of the same class, sliced from a trained one.

The pruned model is a plain checkpoint (no masks): a config with smaller sizes and weights of those
sizes, so `AutoModelFor*.from_pretrained` loads it with no missing or unexpected weight.

Three knobs, each chosen by `PruningImportance` (`compute_importance`):

- **FFN neurons** (`intermediate_size`): every layer keeps its own top-``k`` neurons (``k`` the same in every
  layer, as the config has one `intermediate_size`). *Exact*: the pruned model computes what the original
  computes with the removed neurons' activations set to zero.
- **Depth** (`layers` or `num_layers`): the layers kept, in their order. *Exact*: the pruned model computes what
  the original computes with the removed layers skipped.
- **Heads and width** (`num_attention_heads`): a BERT-family config has one head count for every layer and
  ``head_dim = hidden_size / num_attention_heads`` (transformers 5 also has no per-layer head pruning), so a
  dense model keeping ``k`` heads per layer has ``hidden_size = k · head_dim``. Every layer keeps its own
  top-``k`` heads; the ``k · head_dim`` residual channels are chosen once for the whole model by their
  importance (Minitron), and the embeddings, every LayerNorm, Q/K/V (rows: the kept heads; columns: the
  kept channels), the attention output, the FFN, the pooler and the head are sliced alike. *Not exact*:
  a LayerNorm over fewer channels has another mean and variance, so the pruned model only approximates the
  original; which heads each layer keeps is what the head importance picks. Distil the pruned model from
  the original afterwards to recover (Minitron).
  The pooler's (or classification head's) hidden units shrink with `hidden_size` too: the most important
  `head_units` are kept.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence

import torch
from transformers import PreTrainedModel

from .importance import PruningImportance
from .layout import Layout, describe_model

REPORT_FILE = "pruning.json"


@dataclass
class PruningReport:
    """What `prune_model` did; JSON-serialisable (`to_dict`, `save` writes `pruning.json`).

    Args:
        architecture (`str`): The model class, e.g. `"BertForSequenceClassification"`.
        original (`dict`): `num_hidden_layers`, `num_attention_heads`, `hidden_size`, `intermediate_size` before.
        pruned (`dict`): The same sizes after.
        parameters_before (`int`): Parameters of the original (tied weights once).
        parameters_after (`int`): Parameters of the pruned model.
        importance (`dict` or `None`): How the scores were measured (`PruningImportance.describe`), `None` when
            only given layers were kept.
        layers (`list[int]`): The original layers kept, in order.
        heads (`list[list[int]]`): Per kept layer, the original heads kept.
        neurons (`list[list[int]]`): Per kept layer, the original FFN neurons kept.
        channels (`list[int]`): The original residual channels kept (all when the width is unchanged).
        head_units (`list[int]` or `None`): The pooler's or classification head's hidden units kept.
        exact (`bool`): Whether the pruned model computes exactly what the original computes with the removed
            parts zeroed/skipped (true unless the width shrank).
    """

    architecture: str
    original: dict[str, int]
    pruned: dict[str, int]
    parameters_before: int
    parameters_after: int
    importance: Optional[dict[str, Any]]
    layers: list[int]
    heads: list[list[int]]
    neurons: list[list[int]]
    channels: list[int]
    head_units: Optional[list[int]] = None
    exact: bool = True
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return asdict(self)

    def save(self, folder: str) -> str:
        """Writes the report to `folder/pruning.json` and returns the path."""
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, REPORT_FILE)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.to_dict(), handle, indent=2)
        return path


def _sizes(config: Any) -> dict[str, int]:
    return {name: int(getattr(config, name)) for name in
            ("num_hidden_layers", "num_attention_heads", "hidden_size", "intermediate_size")}


def _top(scores: torch.Tensor, k: int) -> list[int]:
    """The indices of the ``k`` highest scores (ties: the lower index), in increasing order."""
    order = torch.sort(scores.float(), descending=True, stable=True).indices[:k]
    return sorted(int(index) for index in order)


def _check_importance(model: PreTrainedModel, importance: PruningImportance, layout: Layout) -> None:
    config = model.config
    expected = {
        "heads": (config.num_hidden_layers, config.num_attention_heads),
        "neurons": (config.num_hidden_layers, config.intermediate_size),
        "channels": (config.hidden_size,),
        "layers": (config.num_hidden_layers,),
    }
    for name, shape in expected.items():
        if tuple(getattr(importance, name).shape) != shape:
            actual = tuple(getattr(importance, name).shape)
            raise ValueError(f"importance.{name} has shape {actual}, not {shape}: it was computed for another model; "
                             "run compute_importance on this one.")
    has_units = layout.units_consumer is not None or layout.units_producer is not None
    if has_units and (importance.head_units is None or tuple(importance.head_units.shape) != (config.hidden_size,)):
        raise ValueError("importance.head_units does not match this model's pooler/classification head: it was "
                         "computed for another model; run compute_importance on this one.")


def _resolve_layers(config: Any, importance: Optional[PruningImportance], layers: Optional[Sequence[int]],
                    num_layers: Optional[int]) -> list[int]:
    total = config.num_hidden_layers
    if layers is not None:
        layers = [int(layer) for layer in layers]
        if num_layers is not None and num_layers != len(layers):
            raise ValueError(f"layers has {len(layers)} entries but num_layers={num_layers}: give one or the other.")
        if not layers or len(set(layers)) != len(layers) or any(not 0 <= layer < total for layer in layers):
            raise ValueError(f"layers={layers} must be distinct 0-based indices of the model's {total} layers "
                             f"(0..{total - 1}).")
        return sorted(layers)
    if num_layers is None:
        return list(range(total))
    if not 1 <= num_layers <= total:
        raise ValueError(f"num_layers={num_layers} must be between 1 and the model's {total} layers.")
    return _top(importance.layers, num_layers)


def _check_sizes(model: PreTrainedModel, layout: Layout, num_attention_heads: Optional[int],
                 intermediate_size: Optional[int], needs_importance: bool,
                 importance: Optional[PruningImportance]) -> None:
    config = model.config
    if num_attention_heads is not None and not 1 <= num_attention_heads <= config.num_attention_heads:
        raise ValueError(f"num_attention_heads={num_attention_heads} must be between 1 and the model's "
                         f"{config.num_attention_heads} heads.")
    if intermediate_size is not None and not 1 <= intermediate_size <= config.intermediate_size:
        raise ValueError(f"intermediate_size={intermediate_size} must be between 1 and the model's "
                         f"{config.intermediate_size}.")
    if needs_importance and importance is None:
        raise ValueError("Choosing heads, neurons or layers needs scores: pass importance=compute_importance(model, "
                         "calibration_data), or keep given layers only with layers=[...].")
    if layout.factorised_embeddings and num_attention_heads is not None:
        hidden = num_attention_heads * (config.hidden_size // config.num_attention_heads)
        if hidden == config.embedding_size:
            raise ValueError(
                f"num_attention_heads={num_attention_heads} gives hidden_size={hidden}, equal to embedding_size, and "
                f"{type(model).__name__} then has no embeddings_project to keep; pick another head count.")


def _pruned_config(model: PreTrainedModel, layout: Layout, layers: list[int], heads: int, hidden: int,
                   intermediate: int) -> Any:
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = len(layers)
    config.num_attention_heads = heads
    config.hidden_size = hidden
    config.intermediate_size = intermediate
    if getattr(config, "embedding_size", None) is not None and not layout.factorised_embeddings:
        config.embedding_size = hidden
    return config


def _slice(value: torch.Tensor, spaces: tuple, indices: dict[str, Optional[torch.Tensor]]) -> torch.Tensor:
    for dim, space in enumerate(spaces):
        index = indices.get(space) if space is not None else None
        if index is not None:
            value = value.index_select(dim, index.to(value.device))
    return value.clone()


def _all(size: int) -> list[int]:
    return list(range(size))


def _long(values: Sequence[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long)


def _count(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def _sliced_state_dict(model: PreTrainedModel, layout: Layout, kept_layers: list[int],
                       shared: dict[str, Optional[torch.Tensor]],
                       per_layer: dict[int, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The original's weights, sliced to the kept indices, under the pruned model's names (layers renumbered)."""
    state_dict = {}
    for name, value in model.state_dict().items():
        layer, spaces = layout.spaces(name)
        if layer is not None:
            if layer not in per_layer:
                continue
            rest = name[len(layout.layers_prefix) + 1:].split(".", 1)[1]
            name = f"{layout.layers_prefix}.{kept_layers.index(layer)}.{rest}"
        state_dict[name] = _slice(value, spaces, {**shared, **per_layer.get(layer, {})})
    return state_dict


def prune_model(
    model: PreTrainedModel,
    importance: Optional[PruningImportance] = None,
    num_attention_heads: Optional[int] = None,
    intermediate_size: Optional[int] = None,
    layers: Optional[Sequence[int]] = None,
    num_layers: Optional[int] = None,
) -> tuple[PreTrainedModel, PruningReport]:
    """Builds a smaller, dense model of the same class from `model`'s most important parts.

    Args:
        model (`PreTrainedModel`): A BERT, RoBERTa, XLM-R, CamemBERT or ELECTRA model: bare, or with a
            sequence-classification, token-classification, question-answering or masked-LM head. Unchanged.
        importance (`PruningImportance`, *optional*): Scores of `model` from `compute_importance`; needed unless
            only `layers=[...]` is given.
        num_attention_heads (`int`, *optional*): Heads kept per layer, each layer its own top ones; sets
            ``hidden_size = num_attention_heads · head_dim`` (the width is not exact, see the module docstring).
            Defaults to the model's (width unchanged).
        intermediate_size (`int`, *optional*): FFN neurons kept per layer, each layer its own top ones (exact).
            Defaults to the model's.
        layers (`Sequence[int]`, *optional*): 0-based layers to keep (exact); kept in their original order.
        num_layers (`int`, *optional*): Keep this many layers, those of highest block importance.

    Returns:
        `tuple[PreTrainedModel, PruningReport]`: The pruned model (same class, dtype, device, attention
        implementation and training mode) and what was kept.

    Raises:
        ValueError: Before any weight is touched, for an unsupported model, sizes out of range, layers that
            are not the model's, missing importance, or importance of another model.
    """
    layout = describe_model(model)
    config = model.config
    width_changes = num_attention_heads is not None and num_attention_heads != config.num_attention_heads
    ffn_changes = intermediate_size is not None and intermediate_size != config.intermediate_size
    _check_sizes(model, layout, num_attention_heads, intermediate_size,
                 width_changes or ffn_changes or (layers is None and num_layers is not None), importance)
    if importance is not None:
        _check_importance(model, importance, layout)
    kept_layers = _resolve_layers(config, importance, layers, num_layers)

    num_heads = num_attention_heads or config.num_attention_heads
    intermediate = intermediate_size or config.intermediate_size
    head_dim = config.hidden_size // config.num_attention_heads
    hidden = num_heads * head_dim
    heads = [_top(importance.heads[layer], num_heads) if width_changes else _all(config.num_attention_heads)
             for layer in kept_layers]
    neurons = [_top(importance.neurons[layer], intermediate) if ffn_changes else _all(config.intermediate_size)
               for layer in kept_layers]
    channels = _top(importance.channels, hidden) if width_changes else _all(config.hidden_size)
    units = None
    if layout.units_consumer is not None or layout.units_producer is not None:
        units = _top(importance.head_units, hidden) if width_changes else _all(config.hidden_size)

    pruned = type(model)(_pruned_config(model, layout, kept_layers, num_heads, hidden, intermediate))
    pruned.to(device=next(model.parameters()).device, dtype=model.dtype)
    shared = {"hidden": _long(channels), "units": None if units is None else _long(units),
              "embedding": None if layout.factorised_embeddings else _long(channels)}
    per_layer = {old: {"heads": _long([h * head_dim + d for h in heads[new] for d in range(head_dim)]),
                       "neurons": _long(neurons[new])}
                 for new, old in enumerate(kept_layers)}
    pruned.load_state_dict(_sliced_state_dict(model, layout, kept_layers, shared, per_layer), strict=True)
    pruned.train(model.training)

    report = PruningReport(
        architecture=type(model).__name__,
        original=_sizes(config),
        pruned=_sizes(pruned.config),
        parameters_before=_count(model),
        parameters_after=_count(pruned),
        importance=importance.describe() if importance is not None else None,
        layers=kept_layers,
        heads=heads,
        neurons=neurons,
        channels=channels,
        head_units=units,
        exact=not width_changes,
        notes=[] if not width_changes else [
            "hidden_size shrank with the head count: LayerNorms over fewer channels change their statistics, so "
            "the pruned model approximates the original; distil it from the original to recover."],
    )
    return pruned, report
