"""Capture of each layer's pre-softmax attention scores, per architecture, for TinyBERT's attention term.

- `base`: the interface every capture follows, head splitting and local windows.
- `query_key`: ``Q Kᵀ / √d`` from separate query and key projections (BERT, RoBERTa, XLM-R, ELECTRA,
  DistilBERT, ALBERT).
- `modernbert`: rotary positions on ModernBERT's fused projection, local and global layers.
- `deberta`: DeBERTa-v2/v3's disentangled content and relative-position terms.
- `recorder`: `AttentionScoreRecorder`, which arms the hooks for one forward and pairs a student's
  windows with its teacher's.

HF's `output_attentions` returns post-softmax probabilities (and only under eager attention);
TinyBERT compares the scores before the softmax.
"""

from .query_key import find_query_key_modules
from .recorder import AttentionScoreRecorder, capture_for

__all__ = ["AttentionScoreRecorder", "capture_for", "find_query_key_modules"]
