"""DistilBERT's student initialisation: a BERT teacher's layers copied into a `DistilBert*` model.

The reference script (`scripts/extract_distilbert.py` of the HF DistilBERT research project) takes
the embeddings, the MLM head and one layer out of two (`[0, 2, 4, 7, 9, 11]` of a 12-layer BERT)
and renames them into DistilBERT's layout. DistilBERT has no token-type (segment) embeddings, so
they cannot be copied; this function folds segment 0's embedding into the position embeddings
(``pos'_i = pos_i + tok_type_0``), which makes the student's embedding output equal to the
teacher's for single-segment input (`token_type_ids` all 0, as in masked-LM pre-training). The
reference drops them instead. A student of the teacher's own class (`create_student`) keeps them.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from transformers import DistilBertConfig, DistilBertForMaskedLM, DistilBertModel, PreTrainedModel

from ..students import uniform_layer_selection

_LAYER_KEYS = {
    "attention.q_lin": "attention.self.query",
    "attention.k_lin": "attention.self.key",
    "attention.v_lin": "attention.self.value",
    "attention.out_lin": "attention.output.dense",
    "sa_layer_norm": "attention.output.LayerNorm",
    "ffn.lin1": "intermediate.dense",
    "ffn.lin2": "output.dense",
    "output_layer_norm": "output.LayerNorm",
}
_HEAD_KEYS = {
    "vocab_transform": "cls.predictions.transform.dense",
    "vocab_layer_norm": "cls.predictions.transform.LayerNorm",
}


def _distilbert_config(config, num_layers: int) -> DistilBertConfig:
    if config.model_type != "bert":
        raise ValueError(
            f"student_architecture='distilbert' converts a BERT teacher, got model_type={config.model_type!r}: "
            "use student_architecture='same' (create_student) for other teachers."
        )
    if config.hidden_act not in ("gelu", "relu"):
        raise ValueError(f"DistilBERT supports the gelu and relu activations, the teacher uses {config.hidden_act!r}.")
    if abs(config.layer_norm_eps - 1e-12) > 1e-15:
        raise ValueError(f"DistilBERT's layer norms use eps=1e-12, the teacher uses {config.layer_norm_eps}.")
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        raise ValueError("DistilBERT has absolute position embeddings only; the teacher uses another kind.")
    student_config = DistilBertConfig(
        vocab_size=config.vocab_size,
        max_position_embeddings=config.max_position_embeddings,
        sinusoidal_pos_embds=False,
        n_layers=num_layers,
        n_heads=config.num_attention_heads,
        dim=config.hidden_size,
        hidden_dim=config.intermediate_size,
        dropout=config.hidden_dropout_prob,
        attention_dropout=config.attention_probs_dropout_prob,
        activation=config.hidden_act,
        initializer_range=config.initializer_range,
        pad_token_id=config.pad_token_id,
        tie_word_embeddings=getattr(config, "tie_word_embeddings", True),
    )
    student_config._attn_implementation = getattr(config, "_attn_implementation", None) or "eager"
    return student_config


def bert_to_distilbert(
    teacher: PreTrainedModel, layers: Optional[Sequence[int]] = None, num_layers: Optional[int] = None
) -> PreTrainedModel:
    """Builds a `DistilBertForMaskedLM` (or `DistilBertModel`) student from a BERT teacher's layers.

    Args:
        teacher (`PreTrainedModel`): A `BertForMaskedLM`/`BertForPreTraining` (gives a
            `DistilBertForMaskedLM` with the teacher's MLM head) or a `BertModel` (gives a
            `DistilBertModel`).
        layers (`Sequence[int]`, *optional*): 0-based teacher layers to copy, e.g. `[0, 2, 4, 7, 9, 11]`.
        num_layers (`int`, *optional*): Or the number of evenly spaced layers
            (`uniform_layer_selection`; 12 → 6 gives DistilBERT's own choice).

    Returns:
        `PreTrainedModel`: The student, in training mode, with the teacher's dtype.
    """
    n = teacher.config.num_hidden_layers
    if layers is None:
        if num_layers is None:
            raise ValueError("bert_to_distilbert needs layers=[...] or num_layers=M.")
        layers = uniform_layer_selection(n, num_layers)
    layers = list(layers)
    if not layers or len(set(layers)) != len(layers) or any(not 0 <= layer < n for layer in layers):
        raise ValueError(f"layers={layers} must be distinct 0-based indices of the teacher's {n} layers.")
    config = _distilbert_config(teacher.config, len(layers))
    state = teacher.state_dict()
    masked_lm = any(key.startswith("cls.predictions.") for key in state)
    prefix = "bert." if any(key.startswith("bert.") for key in state) else ""
    out_prefix = "distilbert." if masked_lm else ""
    converted: dict[str, torch.Tensor] = {}
    embeddings = f"{prefix}embeddings"
    converted[f"{out_prefix}embeddings.word_embeddings.weight"] = state[f"{embeddings}.word_embeddings.weight"]
    position = state[f"{embeddings}.position_embeddings.weight"]
    token_type = state.get(f"{embeddings}.token_type_embeddings.weight")
    if token_type is not None:
        position = position + token_type[0]
    converted[f"{out_prefix}embeddings.position_embeddings.weight"] = position
    for name in ("weight", "bias"):
        converted[f"{out_prefix}embeddings.LayerNorm.{name}"] = state[f"{embeddings}.LayerNorm.{name}"]
    for new_index, old_index in enumerate(layers):
        for new_key, old_key in _LAYER_KEYS.items():
            for name in ("weight", "bias"):
                converted[f"{out_prefix}transformer.layer.{new_index}.{new_key}.{name}"] = state[
                    f"{prefix}encoder.layer.{old_index}.{old_key}.{name}"
                ]
    if masked_lm:
        for new_key, old_key in _HEAD_KEYS.items():
            for name in ("weight", "bias"):
                converted[f"{new_key}.{name}"] = state[f"{old_key}.{name}"]
        decoder = state.get("cls.predictions.decoder.weight", state[f"{embeddings}.word_embeddings.weight"])
        converted["vocab_projector.weight"] = decoder
        converted["vocab_projector.bias"] = state.get("cls.predictions.bias", state.get("cls.predictions.decoder.bias"))
    student_class = DistilBertForMaskedLM if masked_lm else DistilBertModel
    student = student_class(config)
    student.load_state_dict({k: v.clone() for k, v in converted.items()}, strict=True)
    student.to(dtype=teacher.dtype)
    student.train()
    return student
