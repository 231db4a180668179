"""Which weights of a BERT-family model live in which prunable space, and which models can be pruned.

Every dimension of every weight of a BERT, RoBERTa, XLM-R, CamemBERT or ELECTRA model belongs to one of
these spaces (or to none, and is kept whole):

| space | size | weights (rows ``r`` / columns ``c`` / vectors ``v``) |
|---|---|---|
| ``hidden`` | `hidden_size`, the residual stream, one choice for the whole model | Q/K/V ``c``; attention output ``r``; FFN in ``c``, out ``r``; every layer's LayerNorms ``v``; pooler ``c``; token-level heads ``c``; ELECTRA's `embeddings_project` ``r`` |
| ``embedding`` | the embedding width: ``hidden`` unless ELECTRA factorises it (`embedding_size != hidden_size`), then kept whole | word, position and token-type embeddings ``c``; embedding LayerNorm ``v``; MLM decoders (tied to the word embeddings) and their transforms |
| ``heads`` | `num_attention_heads · head_dim`, per layer | Q/K/V ``r``; attention output ``c`` |
| ``neurons`` | `intermediate_size`, per layer | FFN in ``r``, FFN out ``c`` |
| ``units`` | `hidden_size`, the pooler's or the classification head's hidden units | pooler ``r``; BERT's classifier ``c``; RoBERTa's / ELECTRA's `classifier.dense` ``r`` and `classifier.out_proj` ``c`` |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from torch import nn

from ..architecture import find_layer_list, shared_layers_reason

SUPPORTED_MODEL_TYPES = ("bert", "roberta", "xlm-roberta", "camembert", "electra")
SUPPORTED_HEADS = (
    "Model", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering", "ForMaskedLM")

Spaces = tuple[Optional[str], ...]

# Inside `<layers>.<i>.`: the space of each dimension of each weight.
_LAYER_RULES: list[tuple[str, Spaces]] = [
    (r"attention\.self\.(query|key|value)\.weight", ("heads", "hidden")),
    (r"attention\.self\.(query|key|value)\.bias", ("heads",)),
    (r"attention\.self\.distance_embedding\.weight", (None, None)),  # relative positions, per head dimension
    (r"attention\.output\.dense\.weight", ("hidden", "heads")),
    (r"attention\.output\.dense\.bias", ("hidden",)),
    (r"attention\.output\.LayerNorm\.(weight|bias)", ("hidden",)),
    (r"intermediate\.dense\.weight", ("neurons", "hidden")),
    (r"intermediate\.dense\.bias", ("neurons",)),
    (r"output\.dense\.weight", ("hidden", "neurons")),
    (r"output\.dense\.bias", ("hidden",)),
    (r"output\.LayerNorm\.(weight|bias)", ("hidden",)),
]

# Outside the layers, matched at the end of the name (`bert.pooler.dense.weight`, `pooler.dense.weight`).
_OTHER_RULES: list[tuple[str, Spaces]] = [
    (r"embeddings\.(word|position|token_type)_embeddings\.weight", (None, "embedding")),
    (r"embeddings\.LayerNorm\.(weight|bias)", ("embedding",)),
    (r"embeddings_project\.weight", ("hidden", "embedding")),
    (r"embeddings_project\.bias", ("hidden",)),
    (r"pooler\.dense\.weight", ("units", "hidden")),
    (r"pooler\.dense\.bias", ("units",)),
    (r"classifier\.dense\.weight", ("units", "hidden")),
    (r"classifier\.dense\.bias", ("units",)),
    (r"classifier\.out_proj\.weight", (None, "units")),
    (r"classifier\.out_proj\.bias", (None,)),
    (r"classifier\.bias", (None,)),
    (r"qa_outputs\.weight", (None, "hidden")),
    (r"qa_outputs\.bias", (None,)),
    (r"cls\.predictions\.transform\.dense\.weight", ("embedding", "hidden")),
    (r"cls\.predictions\.transform\.dense\.bias", ("embedding",)),
    (r"cls\.predictions\.transform\.LayerNorm\.(weight|bias)", ("embedding",)),
    (r"cls\.predictions\.decoder\.weight", (None, "embedding")),
    (r"cls\.predictions\.(decoder\.)?bias", (None,)),
    (r"lm_head\.dense\.weight", ("embedding", "hidden")),
    (r"lm_head\.dense\.bias", ("embedding",)),
    (r"lm_head\.layer_norm\.(weight|bias)", ("embedding",)),
    (r"lm_head\.decoder\.weight", (None, "embedding")),
    (r"lm_head\.(decoder\.)?bias", (None,)),
    (r"generator_predictions\.dense\.weight", ("embedding", "hidden")),
    (r"generator_predictions\.dense\.bias", ("embedding",)),
    (r"generator_predictions\.LayerNorm\.(weight|bias)", ("embedding",)),
    (r"generator_lm_head\.weight", (None, "embedding")),
    (r"generator_lm_head\.bias", (None,)),
]


@dataclass
class Layout:
    """Where a prunable model keeps its parts.

    Args:
        layers_prefix (`str`): The qualified name of the layer list, e.g. `"bert.encoder.layer"`.
        layers (`nn.ModuleList`): The layers.
        factorised_embeddings (`bool`): ELECTRA with `embedding_size != hidden_size`: the embeddings keep their
            width and `embeddings_project` maps them into the residual stream.
        embedding_norm (`nn.Module` or `None`): The embedding LayerNorm when it normalises the residual stream.
        units_producer (`nn.Module` or `None`): The pooler, whose output are the ``units`` (bare encoders).
        units_consumer (`nn.Linear` or `None`): The linear layer that reads the ``units``: BERT's classifier
            or RoBERTa's / ELECTRA's `classifier.out_proj`.
        has_logits (`bool`): The model has a task head (anything but the bare encoder).
        classifier_reads_units (`bool`): `classifier` reads the pooler's units (BERT's sequence classifier), not the
            residual stream (token classifiers).
    """

    layers_prefix: str
    layers: nn.ModuleList
    factorised_embeddings: bool
    embedding_norm: Optional[nn.Module]
    units_producer: Optional[nn.Module]
    units_consumer: Optional[nn.Linear]
    has_logits: bool
    classifier_reads_units: bool

    def spaces(self, name: str) -> tuple[Optional[int], Spaces]:
        """The layer index (or `None`) and the space of each dimension of the weight `name`.

        Raises:
            KeyError: When no rule covers `name` (`describe_model` refuses such models up front).
        """
        match = re.match(rf"^{re.escape(self.layers_prefix)}\.(\d+)\.(.+)$", name)
        if match:
            for pattern, spaces in _LAYER_RULES:
                if re.fullmatch(pattern, match.group(2)):
                    return int(match.group(1)), spaces
            raise KeyError(name)
        if re.search(r"(^|\.)classifier\.weight$", name):
            return None, (None, "units" if self.classifier_reads_units else "hidden")
        for pattern, spaces in _OTHER_RULES:
            if re.search(rf"(^|\.){pattern}$", name):
                return None, spaces
        raise KeyError(name)


def _refuse_unsupported(model: nn.Module) -> None:
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    name = type(model).__name__
    shared = shared_layers_reason(model)
    if shared:
        raise ValueError(f"{shared}, so there are no per-layer weights to prune; "
                         "build a narrower student with create_student(teacher, num_layers=M, hidden_size=...).")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"Structured pruning supports BERT, RoBERTa, XLM-R, CamemBERT and ELECTRA, not {name} "
            f"(model_type={model_type!r}); distil it into a smaller student with create_student(...) instead.")
    if _head_of(model) not in SUPPORTED_HEADS:
        raise ValueError(
            f"{name} has a head pruning does not slice; prune the same checkpoint loaded as "
            f"{', '.join(SUPPORTED_HEADS)} (e.g. AutoModelForSequenceClassification).")
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        raise ValueError(f"{name} is configured as a decoder (is_decoder / add_cross_attention); "
                         "prune the encoder: load it with is_decoder=False.")
    if getattr(config, "pruned_heads", None):
        raise ValueError(f"{name} already had heads removed with prune_heads (config.pruned_heads="
                         f"{dict(config.pruned_heads)}); prune the original, unpruned checkpoint instead.")


def describe_model(model: nn.Module) -> Layout:
    """Checks that `model` can be pruned and finds its parts; raises before anything is changed.

    Args:
        model (`nn.Module`): A BERT, RoBERTa, XLM-R, CamemBERT or ELECTRA model: the bare encoder or one with a
            sequence-classification, token-classification, question-answering or masked-LM head.

    Returns:
        `Layout`: Where its layers, embeddings and head are.

    Raises:
        ValueError: For another architecture (ALBERT, DistilBERT, DeBERTa, ModernBERT, ...), another head,
            a decoder, a model already pruned with `prune_heads`, or weights no rule covers.
    """
    _refuse_unsupported(model)
    config = model.config
    layers_prefix, layers = find_layer_list(model)
    for index, layer in enumerate(layers):
        for path in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                     "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"):
            if not _has_submodule(layer, path):
                raise ValueError(f"Layer {index} of {type(model).__name__} has no {path}: pruning needs the BERT "
                                 "layer layout; distil it into a smaller student with create_student(...) instead.")
    modules = dict(model.named_modules())
    factorised = getattr(config, "embedding_size", None) not in (None, config.hidden_size)
    embeddings = next(module for name, module in modules.items() if name.split(".")[-1] == "embeddings")
    poolers = [module for name, module in modules.items() if name.split(".")[-1] == "pooler" and module is not None]
    consumer = modules.get("classifier.out_proj")
    classifier_reads_units = False
    if consumer is None and poolers and isinstance(modules.get("classifier"), nn.Linear):
        consumer, classifier_reads_units = modules["classifier"], True
    layout = Layout(
        layers_prefix=layers_prefix,
        layers=layers,
        factorised_embeddings=factorised,
        embedding_norm=None if factorised else embeddings.LayerNorm,
        units_producer=poolers[0] if poolers and consumer is None else None,
        units_consumer=consumer,
        has_logits=_head_of(model) != "Model",
        classifier_reads_units=classifier_reads_units,
    )
    unknown = []
    for name in model.state_dict():
        try:
            layout.spaces(name)
        except KeyError:
            unknown.append(name)
    if unknown:
        raise ValueError(f"{type(model).__name__} has weights pruning does not know how to slice "
                         f"({', '.join(unknown)}); prune a {'/'.join(SUPPORTED_HEADS)} model of the same checkpoint.")
    return layout


def _head_of(model: nn.Module) -> Optional[str]:
    match = re.fullmatch(r"(Bert|Roberta|XLMRoberta|Camembert|Electra)(\w+)", type(model).__name__)
    return match.group(2) if match else None


def _has_submodule(module: nn.Module, path: str) -> bool:
    try:
        module.get_submodule(path)
    except AttributeError:
        return False
    return True
