"""Structured pruning of BERT-family models into smaller dense checkpoints (Minitron-style, issue #25).

    from hf_distill.pruning import compute_importance, prune_model
    importance = compute_importance(model, calibration_dataset, num_batches=32, data_collator=collator)
    student, report = prune_model(model, importance, num_attention_heads=6, intermediate_size=1536, num_layers=8)
    student.save_pretrained(folder)
    report.save(folder)  # pruning.json

`importance.py` measures heads (Michel et al., 2019, or activations), FFN neurons, residual channels and
layers (Minitron); `prune.py` slices the weights; `layout.py` says which weight dimension belongs where and
refuses models it cannot prune. FFN-neuron and layer pruning are exact; shrinking the width with the head
count is not (LayerNorm statistics change).
"""

from .importance import HEAD_IMPORTANCES, PruningImportance, compute_importance
from .layout import SUPPORTED_HEADS, SUPPORTED_MODEL_TYPES, describe_model
from .prune import REPORT_FILE, PruningReport, prune_model

__all__ = [
    "HEAD_IMPORTANCES",
    "REPORT_FILE",
    "SUPPORTED_HEADS",
    "SUPPORTED_MODEL_TYPES",
    "PruningImportance",
    "PruningReport",
    "compute_importance",
    "describe_model",
    "prune_model",
]
