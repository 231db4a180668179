"""Image-text retrieval: distilling a CLIP-style dual encoder (image tower + text tower) into a smaller one.

- `losses`: contrastive (InfoNCE), in-batch similarity distillation, embedding matching, RKD.
- `students`: smaller `CLIPModel` students built from a teacher (fewer layers, narrower, text only).
- `data`: Flickr30k (Karpathy split: local folder or Hub parquet), a synthetic shapes set, the collator.
- `evaluation`: Recall@1/5/10 both ways with 5 captions per image, two-stage re-ranking.
- `config` / `trainer`: `RetrievalDistillationConfig` and `RetrievalDistillationTrainer`.
- `arguments` / `run`: the `retrieval` recipe family (`hf-distill train recipes/flickr30k/...`).

Importing this package is light (the trainer is imported on first use), so the recipe parser can
read the `retrieval` family's dataclasses without loading the training stack.
"""

from .config import RetrievalDistillationConfig

__all__ = ["RetrievalDistillationConfig", "RetrievalDistillationTrainer", "create_clip_student", "create_text_student"]


def __getattr__(name):
    if name == "RetrievalDistillationTrainer":
        from .trainer import RetrievalDistillationTrainer

        return RetrievalDistillationTrainer
    if name in ("create_clip_student", "create_text_student"):
        from . import students

        return getattr(students, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
