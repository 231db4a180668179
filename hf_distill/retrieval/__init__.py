"""Image-text retrieval: distilling a CLIP-style dual encoder (image tower + text tower) into a smaller one.

- `losses`: contrastive (InfoNCE), in-batch similarity distillation, embedding matching, RKD.
- `students`: smaller `CLIPModel` students built from a teacher (fewer layers, narrower, text only).
- `data`: Flickr30k (Karpathy split: local folder or Hub parquet), a synthetic shapes set, the collator.
- `evaluation`: Recall@1/5/10 both ways with 5 captions per image, two-stage re-ranking.
- `config` / `trainer`: `RetrievalDistillationConfig` and `RetrievalDistillationTrainer`.
- `run`: the `retrieval` recipe family (`hf-distill train recipes/flickr30k/...`).
"""

from .config import RetrievalDistillationConfig
from .trainer import RetrievalDistillationTrainer

__all__ = ["RetrievalDistillationConfig", "RetrievalDistillationTrainer"]
