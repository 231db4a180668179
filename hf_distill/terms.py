"""The table of loss terms: every term of every recipe family, in one place.

A term's name is its one name everywhere: the config field is `<name>_weight`, the training log key is
`loss_<name>`, `results.json` and the model card list it under `<name>`, and a schedule changes it as
`<name>_weight`. Each entry also says what the term averages over (which drives the
gradient-accumulation scaling of the task family) and what it needs from a teacher (which drives the
checks that a teacher is there, or not needed, before training starts).

A family's config lists its terms in its `TERMS` class attribute; adding a term to a family means adding
one `LossTerm` here, its field to the config and its computation to the trainer's `compute_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass

# What a term averages over.
EXAMPLES = "examples"
"""Every example of the batch."""
LABELS = "labels"
"""The labelled items: examples with a label (sequence heads), or tokens whose label is not -100 (token heads)."""
LOGIT_ROWS = "logit rows"
"""The rows of the logits: examples (sequence heads); tokens with a label, else real tokens (token heads)."""
TOKENS = "tokens"
"""The real (non-padding) tokens."""
TOKEN_PAIRS = "token pairs"
"""The (query, key) pairs of real tokens, per head."""
MICRO_BATCH = "micro-batch"
"""The micro-batch as a whole (in-batch contrastive and relational terms)."""
POSITIONS = "positions"
"""Every position of the padded batch, padding included (batch × padded length)."""
POSITION_PAIRS = "position pairs"
"""Every (query, key) pair of the padded batch, per head (batch × padded length²)."""

# What a term needs from a teacher.
NO_TEACHER = "none"
TEACHER_LOGITS = "logits"
"""The teacher's logits: a live teacher, an ensemble, or a cached `teacher_logits` column."""
TEACHER_HIDDEN_STATES = "hidden states"
TEACHER_ATTENTION_SCORES = "attention scores"
TEACHER_RELATIONS = "query/key/value vectors"
TEACHER_SIMILARITIES = "image-text similarities"
TEACHER_EMBEDDINGS = "embeddings"


@dataclass(frozen=True)
class LossTerm:
    """One loss term of a family.

    Attributes:
        name (`str`): The term's one name (`"attention"`): weight field `attention_weight`, log key
            `loss_attention`.
        unit (`str`): What it averages over (`EXAMPLES`, `LABELS`, `LOGIT_ROWS`, `TOKENS`, `TOKEN_PAIRS`,
            `MICRO_BATCH`).
        teacher (`str`): What it needs from a trained teacher (`NO_TEACHER`, `TEACHER_LOGITS`, ...).
        description (`str`): One line, as the model card and the docs print it.
    """

    name: str
    unit: str
    teacher: str
    description: str

    @property
    def weight_field(self) -> str:
        """The config field of its weight."""
        return f"{self.name}_weight"

    @property
    def log_key(self) -> str:
        """Its key in the training logs."""
        return f"loss_{self.name}"

    @property
    def needs_teacher(self) -> bool:
        """Whether it learns from a trained teacher."""
        return self.teacher != NO_TEACHER


# The task and general families (`DistillationConfig`): DistilBERT's and TinyBERT's terms.
TASK_TERMS = (
    LossTerm("task", LABELS, NO_TEACHER, "task loss from the labels"),
    LossTerm("kd", LOGIT_ROWS, TEACHER_LOGITS, "soft-target loss on the logits"),
    LossTerm("mlm", LABELS, NO_TEACHER, "masked-LM loss"),
    LossTerm("cosine", TOKENS, TEACHER_HIDDEN_STATES, "cosine loss on the last hidden states"),
    LossTerm("hidden", TOKENS, TEACHER_HIDDEN_STATES, "hidden-state MSE over mapped layers"),
    LossTerm("embedding", TOKENS, TEACHER_HIDDEN_STATES, "embedding-output MSE"),
    LossTerm("pooled", EXAMPLES, TEACHER_HIDDEN_STATES,
             "MSE between the mean-pooled last hidden states through a projection (works across tokenizers)"),
    LossTerm("attention", TOKEN_PAIRS, TEACHER_ATTENTION_SCORES, "pre-softmax attention-score MSE over mapped layers"),
    LossTerm("attention_relation", TOKENS, TEACHER_ATTENTION_SCORES,
             "KL between the attention distributions of one teacher layer and the student's last (MiniLM)"),
    LossTerm("value_relation", TOKENS, TEACHER_RELATIONS,
             "KL between the value-value relations of one teacher layer and the student's last (MiniLM, MiniLMv2)"),
    LossTerm("query_relation", TOKENS, TEACHER_RELATIONS,
             "KL between the query-query relations of one teacher layer and the student's last (MiniLMv2)"),
    LossTerm("key_relation", TOKENS, TEACHER_RELATIONS,
             "KL between the key-key relations of one teacher layer and the student's last (MiniLMv2)"),
)

# The retrieval family (`RetrievalDistillationConfig`): dual encoders.
RETRIEVAL_TERMS = (
    LossTerm("contrastive", MICRO_BATCH, NO_TEACHER, "symmetric InfoNCE on the ground-truth image-caption pairs"),
    LossTerm("similarity_kd", MICRO_BATCH, TEACHER_SIMILARITIES,
             "KL to the teacher's in-batch image-text similarities, both directions"),
    LossTerm("embedding", EXAMPLES, TEACHER_EMBEDDINGS, "embedding matching (cosine or MSE) through a projection"),
    LossTerm("rkd_distance", MICRO_BATCH, TEACHER_EMBEDDINGS, "RKD distance loss on the embeddings"),
    LossTerm("rkd_angle", MICRO_BATCH, TEACHER_EMBEDDINGS, "RKD angle loss on the embeddings"),
)

# Deep mutual learning (`MutualLearningConfig`): logged per peer, `loss_<name>_peer<i>`.
MUTUAL_TERMS = (
    LossTerm("task", LABELS, NO_TEACHER, "each peer's loss from the labels"),
    LossTerm("kd", EXAMPLES, NO_TEACHER, "each peer's T²·KL to the other peers' soft targets"),
)

# Self-distillation with early exits (`SelfDistillationConfig`): logged per exit, `loss_<name>_exit<l>`.
SELF_DISTILLATION_TERMS = (
    LossTerm("task", EXAMPLES, NO_TEACHER, "every exit's cross-entropy with the labels"),
    LossTerm("kd", EXAMPLES, NO_TEACHER, "the shallow exits' T²·KL to the deepest exit's soft targets"),
    LossTerm("hidden", TOKENS, NO_TEACHER, "the shallow layers' projected hidden states against the deepest layer"),
)

REFERENCE_UNITS = {
    "tinybert": {"hidden": POSITIONS, "embedding": POSITIONS, "attention": POSITION_PAIRS},
    "distilbert": {},
}
"""Where a reference mode (`DistillationConfig.reference`) averages a term over something else than the
table says: TinyBERT's code takes `MSELoss()` over the whole padded tensors. (DistilBERT's masked-LM soft
targets over every real token are `kd_positions="all"`, a choice of rows, not of unit.)"""

FAMILY_TERMS = {
    "task": TASK_TERMS,
    "general": TASK_TERMS,
    "retrieval": RETRIEVAL_TERMS,
    "mutual": MUTUAL_TERMS,
    "self_distillation": SELF_DISTILLATION_TERMS,
}
"""Each recipe family's terms (what `results.json`'s `recipe_family` names)."""


def term_named(terms: tuple[LossTerm, ...], name: str) -> LossTerm:
    """The term called `name` in `terms`."""
    for term in terms:
        if term.name == name:
            return term
    raise KeyError(f"No loss term {name!r}; the terms are {[term.name for term in terms]}.")


def weight_fields(terms: tuple[LossTerm, ...]) -> tuple[str, ...]:
    """The config fields of the terms' weights, in table order."""
    return tuple(term.weight_field for term in terms)
