"""What kind of encoder a model is: where its layers are, and whether it shares them.

`create_student` copies layers and the attention capture hooks them; both start here. One list of
blocks (`nn.ModuleList` of `config.num_hidden_layers` modules) is what BERT, RoBERTa, XLM-R,
ELECTRA, DistilBERT, DeBERTa-v2/v3 and ModernBERT have. ALBERT has none: its `num_hidden_layers`
layers run `num_hidden_groups` shared blocks (one in every released ALBERT), so it has no layer of
its own to copy.
"""

from __future__ import annotations

from typing import Optional

from torch import nn

SUPPORTED_ENCODERS = "BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT, DeBERTa-v2/v3, ModernBERT (and ALBERT, narrow students)"


def shared_layers_reason(model: nn.Module) -> Optional[str]:
    """Why `model` has no layers of its own (ALBERT's shared blocks), or `None` when it has.

    Args:
        model (`nn.Module`): A transformers model.

    Returns:
        `str` or `None`: One sentence naming the shared blocks.
    """
    config = getattr(model, "config", None)
    groups = getattr(config, "num_hidden_groups", None)
    layers = getattr(config, "num_hidden_layers", None)
    if groups is None or layers is None or groups >= layers:
        return None
    shared = "one shared set of weights" if groups == 1 else f"{groups} shared sets of weights"
    return (
        f"{type(model).__name__} shares its layer weights: its {layers} layers all run {shared} "
        f"(num_hidden_groups={groups}), so there are no separate layers to copy one by one"
    )


def find_layer_list(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """Finds the `nn.ModuleList` of transformer blocks (e.g. `bert.encoder.layer`, `model.layers`).

    Args:
        model (`nn.Module`): A transformers model with `config.num_hidden_layers`.

    Returns:
        `tuple[str, nn.ModuleList]`: The qualified name of the list and the list.

    Raises:
        ValueError: When the model shares its layers (ALBERT) or has no such list.
    """
    shared = shared_layers_reason(model)
    if shared:
        raise ValueError(
            f"{shared}. Build a narrower student instead: create_student(teacher, num_layers=M, hidden_size=...)."
        )
    num_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    candidates = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and (num_layers is None or len(module) == num_layers)
    ]
    if not candidates:
        raise ValueError(
            f"Could not find the encoder layers of {type(model).__name__}: no nn.ModuleList of "
            f"{num_layers} layers. hf-distill supports {SUPPORTED_ENCODERS}."
        )
    # The shortest name is the outermost list (e.g. `bert.encoder.layer`, not a list inside a layer).
    return min(candidates, key=lambda item: item[0].count("."))
