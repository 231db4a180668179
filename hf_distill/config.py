"""The configs of hf-distill: one base every family extends, and the task family's `DistillationConfig`.

- `DistillationConfigBase`: what every family shares (the warmup on every transformers version, the
  temperature, the schedule of temperature and weights, the non-finite check) and the checks of the
  family's loss weights, driven by its terms in `hf_distill.terms`.
- `TeacherDistillationConfigBase`: adds the trained teacher (path, revision, `from_pretrained` options)
  and saved projection heads, for the families that learn from one (task, general, retrieval).
- `DistillationConfig`: the task and general families (DistilBERT's and TinyBERT's terms).

The other families' configs live in their packages (`hf_distill.retrieval.config`,
`hf_distill.online.config`) and declare only their own fields.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional, Union

import torch
from transformers import TrainingArguments

from . import compat
from .layers import parse_layer_map
from .losses import KD_LOSSES
from .schedules import LossSchedule
from .terms import TASK_TERMS, LossTerm, weight_fields

REFERENCE_MODES = ("tinybert", "distilbert")
"""Papers whose code `DistillationConfig(reference=...)` reproduces term by term."""
KD_POSITIONS = ("masked", "all")


def _has_accelerator() -> bool:
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None:
        return bool(accelerator.is_available())
    return torch.cuda.is_available()


def unpin_memory_without_accelerator(args: TrainingArguments) -> None:
    """Turns `dataloader_pin_memory` off when there is no accelerator.

    Pinned memory only speeds up copies to an accelerator; on a CPU-only machine PyTorch warns about it
    in every data loader. Called by `DistillationConfigBase.__post_init__`.
    """
    if args.dataloader_pin_memory and not _has_accelerator():
        args.dataloader_pin_memory = False


def _json_option(value: Any, name: str) -> Any:
    """A dict option given as a JSON string on the command line, parsed; a clear error when it is not JSON."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(f"{name} must be a JSON object on the command line, e.g. '{{\"key\": 1}}': {error}.") from None


def _resume_option(value: Any) -> Any:
    """`resume_from_checkpoint` as Trainer takes it: `True` for `"true"`/`"latest"` (the latest complete checkpoint),
    `None` for `"false"`/`""`, a path otherwise."""
    if isinstance(value, str) and value.strip().lower() in ("true", "latest", "yes", "1"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "no", "0", "none", ""):
        return None
    return value


def hub_offline() -> bool:
    """Whether the user switched the Hub off (`HF_HUB_OFFLINE`)."""
    import os

    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _check_mixed_precision(args: TrainingArguments) -> None:
    """fp16 needs an accelerator: on a CPU, Trainer would train in fp32 while the run records `fp16: true`.

    Raises:
        ValueError: For `fp16=True` without an accelerator (or with `use_cpu=True`), naming bf16 as the CPU option.
    """
    if args.fp16 and (args.use_cpu or not _has_accelerator()):
        raise ValueError(
            "fp16=True needs a GPU (or another accelerator), and this run has none"
            + (" (use_cpu=True)" if args.use_cpu else "")
            + ": Trainer would silently train in fp32. Drop fp16, or use bf16=True (CPU autocast)."
        )


@dataclass
class DistillationConfigBase(TrainingArguments):
    r"""`TrainingArguments` plus what every hf-distill family shares; each family's config extends it.

    A subclass lists its loss terms in `TERMS` (see `hf_distill.terms`) and declares one `<name>_weight`
    field per term; this base checks those weights (numbers >= 0, at least one on at some point of the
    schedule) and builds the schedule of the temperature and the weights.

    Parameters:
        temperature (`float`, defaults to 2.0):
            Softmax temperature ``T`` of the family's soft targets (> 0). Families override the default.
        schedule (`dict` or `str`, *optional*):
            Temperature and loss weights that change during training: per value `constant` or
            `linear` over the steps, or `stages` by epoch (see `hf_distill.schedules`). A JSON string
            on the command line. The scheduled values are logged at every logging step.
        stop_on_nonfinite_loss (`bool`, defaults to `True`):
            Stop training with an error naming the loss term and step when a loss is NaN or infinite.
        warmup_ratio (`float`, defaults to 0.0):
            Share of the training steps spent warming the learning rate up, in [0, 1). transformers 5
            removed this field; here it exists on every version (see `hf_distill.compat.normalize_warmup`).
        warmup_steps (`int` or `float`, defaults to 0):
            Warmup steps; a float in (0, 1) is a ratio, as in transformers 5. Give this or `warmup_ratio`.
        overwrite_output_dir (`bool`, defaults to `False`):
            Train into an `output_dir` that holds a finished run or the checkpoints of another run, deleting them
            first. Without it, such a folder is refused before anything loads (transformers 5 removed the field;
            here it exists on every version).
        resume_from_checkpoint (`str` or `bool`, *optional*):
            A checkpoint folder, or `"true"` / `"latest"` for the latest complete checkpoint in `output_dir`.
    """

    TERMS: ClassVar[tuple[LossTerm, ...]] = ()
    _VALID_DICT_FIELDS = TrainingArguments._VALID_DICT_FIELDS + ["schedule"]

    if not compat.trainer_has_warmup_ratio():
        warmup_ratio: float = field(
            default=0.0, metadata={"help": "Share of the training steps spent warming the learning rate up, in [0, 1)."}
        )
    if not compat.trainer_has_field("overwrite_output_dir"):
        overwrite_output_dir: bool = field(
            default=False,
            metadata={"help": "Replace a finished run or the checkpoints of another run in output_dir (they are "
                              "deleted first); without it such a folder is refused."},
        )
    warmup_steps: float = field(
        default=0,
        metadata={"help": "Warmup steps (a whole number), or a ratio of the training steps when below 1."},
    )
    temperature: float = field(default=2.0, metadata={"help": "Softmax temperature T of the soft targets (> 0)."})
    schedule: Optional[Union[dict[str, Any], str]] = field(
        default=None,
        metadata={
            "help": "Schedule of the temperature and loss weights (JSON on the command line): per value "
            "{'type': 'linear', 'start': 4, 'end': 1} or a number, or {'stages': [{'epochs': 2, "
            "'temperature': 2, 'kd_weight': 0.7}, ...]}."
        },
    )
    stop_on_nonfinite_loss: bool = field(
        default=True,
        metadata={"help": "Stop training with an error naming the loss term and step when a loss is NaN or inf."},
    )

    def __post_init__(self):
        self.schedule = _json_option(self.schedule, "schedule")
        compat.normalize_warmup(self)
        self.resume_from_checkpoint = _resume_option(self.resume_from_checkpoint)
        super().__post_init__()
        unpin_memory_without_accelerator(self)
        _check_mixed_precision(self)
        if self.push_to_hub and hub_offline():
            raise ValueError(
                "push_to_hub=True needs the Hugging Face Hub, but HF_HUB_OFFLINE is set: unset it to publish at the end "
                "of training, or train offline and publish later with `hf-distill push OUTPUT_DIR --repo-id NAME`."
            )
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}.")
        for name in weight_fields(self.TERMS):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
        self._check_options()
        # Parsing the schedule checks it (errors name the key); a weight that any stage turns on counts.
        if self.TERMS and all(value == 0 for value in self.max_loss_weights.values()):
            raise ValueError(
                "All loss weights are 0, so there is nothing to train: set at least one of "
                f"{', '.join(weight_fields(self.TERMS))} > 0."
            )

    def _check_options(self) -> None:
        """Checks and normalises the family's own options (called before the schedule is parsed)."""

    def scheduled_values(self) -> dict[str, float]:
        """The values a schedule may change, as this config sets them: `temperature` and every term's weight."""
        return {"temperature": float(self.temperature),
                **{name: float(getattr(self, name)) for name in weight_fields(self.TERMS)}}

    @property
    def loss_schedule(self) -> Optional[LossSchedule]:
        """The parsed `schedule`, or `None` when the values are constant."""
        if self.schedule is None:
            return None
        return LossSchedule(self.schedule, self.scheduled_values())

    @property
    def max_loss_weights(self) -> dict[str, float]:
        """The largest value each loss weight takes during training (schedule included), by field name."""
        schedule = self.loss_schedule
        values = schedule.max_values() if schedule is not None else self.scheduled_values()
        return {name: float(values[name]) for name in weight_fields(self.TERMS)}

    @property
    def loss_weights(self) -> dict[str, float]:
        """The loss weights by term name (`"task"`, `"kd"`, ...), zeros included."""
        return {term.name: float(getattr(self, term.weight_field)) for term in self.TERMS}

    @property
    def needs_teacher(self) -> bool:
        """Whether a term that learns from a trained teacher is on at some point of training."""
        maxima = self.max_loss_weights
        return any(maxima[term.weight_field] > 0 for term in self.TERMS if term.needs_teacher)


@dataclass
class TeacherDistillationConfigBase(DistillationConfigBase):
    r"""`DistillationConfigBase` plus the trained teacher: the base of the task, general and retrieval configs.

    Parameters:
        teacher_model_name_or_path (`str`, *optional*):
            Teacher to load when the trainer is given no `teacher_model` (or a path string).
        teacher_model_revision (`str`, *optional*):
            Revision of the teacher on the Hub.
        teacher_model_init_kwargs (`dict[str, Any]` or `str`, *optional*):
            Keyword arguments for the teacher's `from_pretrained` (a JSON string on the command line).
        distillation_heads_path (`str`, *optional*):
            Folder or file with saved projection heads (`distillation_heads.safetensors`) to start from,
            e.g. the output of a TinyBERT general or intermediate stage.
    """

    _VALID_DICT_FIELDS = DistillationConfigBase._VALID_DICT_FIELDS + ["teacher_model_init_kwargs"]

    teacher_model_name_or_path: Optional[str] = field(
        default=None, metadata={"help": "Teacher model path or Hub id, used when the trainer gets no teacher model."}
    )
    teacher_model_revision: Optional[str] = field(
        default=None, metadata={"help": "Revision of the teacher model on the Hub (branch, tag or commit)."}
    )
    teacher_model_init_kwargs: Optional[Union[dict[str, Any], str]] = field(
        default=None,
        metadata={"help": "Keyword arguments (a JSON string on the command line) for the teacher's from_pretrained."},
    )
    distillation_heads_path: Optional[str] = field(
        default=None,
        metadata={"help": "Saved projection heads to start from (a folder with distillation_heads.safetensors)."},
    )

    def __post_init__(self):
        self.teacher_model_init_kwargs = _json_option(self.teacher_model_init_kwargs, "teacher_model_init_kwargs")
        super().__post_init__()


@dataclass
class DistillationConfig(TeacherDistillationConfigBase):
    r"""Configuration of [`DistillationTrainer`] (task and general families): the loss of DistilBERT and TinyBERT.

    Declares only its own fields; every `TrainingArguments` field and the shared ones of
    `TeacherDistillationConfigBase` (teacher, schedule, temperature, ...) come from its bases. The
    total loss is

    ``task_weight·L_task + kd_weight·L_kd + mlm_weight·L_mlm + cosine_weight·L_cosine +
    hidden_weight·L_hidden + embedding_weight·L_embedding + pooled_weight·L_pooled + attention_weight·L_attention``
    (+ the MiniLM relation terms)

    (see `hf_distill.losses` for each term, `hf_distill.terms` for what each averages over). A term
    whose weight is 0 is not computed, and the teacher is not asked for outputs that no term uses.
    Being a `TrainingArguments` dataclass, it works with `HfArgumentParser` and YAML recipes.

    Parameters:
        temperature (`float`, defaults to 2.0):
            Softmax temperature ``T`` of the soft-target loss (DistilBERT uses 2.0).
        kd_loss (`str`, defaults to `"kl"`):
            Soft-target loss: `"kl"` (Hinton/DistilBERT, ``T²·KL``), `"soft_ce"` (TinyBERT's prediction
            layer), or `"mse"` on logits. Regression heads always use MSE.
        task_weight (`float`, defaults to 0.5):
            Weight of the student's own loss from the labels (`outputs.loss`).
        kd_weight (`float`, defaults to 0.5):
            Weight of the soft-target loss.
        mlm_weight (`float`, defaults to 0.0):
            Weight of the student's masked-LM loss (`*ForMaskedLM` students fed by a masking collator).
        cosine_weight (`float`, defaults to 0.0):
            Weight of DistilBERT's cosine loss on the last hidden states.
        hidden_weight (`float`, defaults to 0.0):
            Weight of TinyBERT's hidden-state MSE, summed over mapped layers.
        embedding_weight (`float`, defaults to 0.0):
            Weight of TinyBERT's embedding-output MSE.
        pooled_weight (`float`, defaults to 0.0):
            Weight of the MSE between the mean-pooled last hidden states of student (through a projection when
            the widths differ) and teacher, each pooled over its own tokens (Reimers & Gurevych, 2020): a
            sentence-level term that works with a teacher that has its own tokenizer.
        attention_weight (`float`, defaults to 0.0):
            Weight of TinyBERT's pre-softmax attention-score MSE, summed over mapped layers.
        attention_relation_weight (`float`, defaults to 0.0):
            Weight of MiniLM's attention transfer: the KL between the attention distributions (the model's
            own scores, softmax over real keys) of teacher layer `relation_teacher_layer` and the student's
            last layer, per head (equal head counts).
        value_relation_weight (`float`, defaults to 0.0):
            Weight of the value-value relation KL (MiniLM; MiniLMv2 with `relation_heads`).
        query_relation_weight (`float`, defaults to 0.0):
            Weight of MiniLMv2's query-query relation KL.
        key_relation_weight (`float`, defaults to 0.0):
            Weight of MiniLMv2's key-key relation KL.
        relation_heads (`int`, *optional*):
            MiniLMv2's relation heads: the value/query/key vectors of all attention heads, concatenated, are
            split into this many heads for the relations, so the two models may have any head counts and
            widths it divides. `None` (MiniLM v1): each model's own attention heads, which must be equal.
        relation_teacher_layer (`int`, *optional*):
            1-based teacher layer whose relations teach the student's last layer. Defaults to the teacher's
            last layer (MiniLM); MiniLMv2 takes an upper-middle layer of large teachers.
        teacher_tokenizer_name_or_path (`str`, *optional*):
            The teacher's own tokenizer, when it tokenizes text differently from the student (another
            vocabulary). The training set then carries the teacher's tokens (`teacher_input_ids`, ...; see
            `hf_distill.teacher_inputs.add_teacher_inputs`), which the teacher reads instead of the student's.
            Soft targets of sequence-level heads (also cached) and `pooled_weight` work across tokenizers; the
            hidden-state terms need an alignment (`teacher_token_index`); the others are refused. In Python, you
            may pass the tokenizer itself as `DistillationTrainer(teacher_processing_class=...)`.
        layer_map (`str` or `list[int]`, defaults to `"uniform"`):
            Teacher layer for each student layer: `"uniform"` (``g(m) = m·N/M``), `"last"`
            (``g(m) = N − M + m``), or a list of 1-based teacher layers such as `[2, 4, 6]` (or `"2,4,6"`).
        projection (`str`, defaults to `"shared"`):
            `"shared"`: one hidden-state projection for all layers (TinyBERT paper); `"per_layer"`: one
            per mapped layer. Projections exist only when student and teacher widths differ.
        ema_momentum (`float`, defaults to 0.999):
            Momentum ``m`` of the online teacher (`teacher_model="ema"`): after each optimizer step,
            ``θ_teacher ← m·θ_teacher + (1 − m)·θ_student``.
        reference (`str`, *optional*):
            Compute the terms exactly as a paper's code does, where hf-distill's default differs
            (`docs/losses.md` lists each difference and why the default is what it is):

            - `"tinybert"` (`task_distill.py`): attention MSE over every padded position with masked scores
              set to 0 (`losses.tinybert_attention_loss`), hidden and embedding MSE over every padded position,
              one projection shared by the embeddings and every layer, and `kd_loss="soft_ce"` as a mean over
              rows and classes without ``T²`` (`losses.tinybert_soft_cross_entropy_loss`);
            - `"distilbert"` (`distiller.py`, `run_squad_w_distillation.py`): masked-LM soft targets on every
              real token (`kd_positions="all"`), question-answering soft targets over every position of the
              padded sequence.

            `None` (default): hf-distill's conventions (means over real tokens and token pairs, ``T²·Σ_c``).
        kd_positions (`str`, *optional*):
            Which tokens of a masked-LM batch the soft targets use: `"masked"` (the positions with an MLM
            label, about 15%: distiller.py's `--restrict_ce_to_mask`) or `"all"` (every real token,
            distiller.py's default). Defaults to `"all"` with `reference="distilbert"`, else `"masked"`.
    """

    TERMS: ClassVar[tuple[LossTerm, ...]] = TASK_TERMS

    kd_loss: str = field(
        default="kl",
        metadata={
            "help": "Soft-target loss: 'kl' (T²·KL, Hinton/DistilBERT), 'soft_ce' (TinyBERT prediction layer) "
            "or 'mse' on logits. Regression heads always use MSE.",
            "choices": list(KD_LOSSES),
        },
    )
    task_weight: float = field(default=0.5, metadata={"help": "Weight of the student's own loss from the labels."})
    kd_weight: float = field(default=0.5, metadata={"help": "Weight of the soft-target (logit) distillation loss."})
    mlm_weight: float = field(default=0.0, metadata={"help": "Weight of the student's masked-LM loss (DistilBERT)."})
    cosine_weight: float = field(
        default=0.0, metadata={"help": "Weight of DistilBERT's cosine loss on the last hidden states."}
    )
    hidden_weight: float = field(
        default=0.0, metadata={"help": "Weight of TinyBERT's hidden-state MSE, summed over mapped layers."}
    )
    embedding_weight: float = field(
        default=0.0, metadata={"help": "Weight of TinyBERT's embedding-output MSE."}
    )
    pooled_weight: float = field(
        default=0.0,
        metadata={"help": "Weight of the MSE between mean-pooled last hidden states (through a projection); works "
                  "with a teacher that has its own tokenizer."},
    )
    attention_weight: float = field(
        default=0.0,
        metadata={"help": "Weight of TinyBERT's pre-softmax attention-score MSE, summed over mapped layers."},
    )
    attention_relation_weight: float = field(
        default=0.0,
        metadata={"help": "Weight of MiniLM's attention-distribution KL (one teacher layer, the student's last layer; "
                  "equal head counts)."},
    )
    value_relation_weight: float = field(
        default=0.0, metadata={"help": "Weight of MiniLM's value-value relation KL (MiniLM v1 and v2)."}
    )
    query_relation_weight: float = field(
        default=0.0, metadata={"help": "Weight of MiniLMv2's query-query relation KL."}
    )
    key_relation_weight: float = field(
        default=0.0, metadata={"help": "Weight of MiniLMv2's key-key relation KL."}
    )
    relation_heads: Optional[int] = field(
        default=None,
        metadata={"help": "MiniLMv2's relation heads for the value/query/key relations (must divide both hidden "
                  "sizes; any head counts). Default: each model's own attention heads (MiniLM v1; equal counts)."},
    )
    relation_teacher_layer: Optional[int] = field(
        default=None,
        metadata={"help": "1-based teacher layer whose relations teach the student's last layer. Default: the "
                  "teacher's last layer (MiniLMv2 takes an upper-middle layer of large teachers)."},
    )
    teacher_tokenizer_name_or_path: Optional[str] = field(
        default=None,
        metadata={"help": "The teacher's own tokenizer (a folder or Hub id), when it tokenizes text differently from "
                  "the student: the teacher reads teacher_input_ids. Soft targets of sequence-level heads and "
                  "pooled_weight work across tokenizers."},
    )
    # Typed `str` so the command line takes "2,4,6"; Python and YAML may pass a list of ints.
    layer_map: str = field(
        default="uniform",
        metadata={
            "help": "Teacher layer for each student layer: 'uniform' (g(m)=m*N/M), 'last' (g(m)=N-M+m), or "
            "1-based teacher layers such as '2,4,6'."
        },
    )
    projection: str = field(
        default="shared",
        metadata={
            "help": "'shared': one hidden-state projection for all layers (TinyBERT); 'per_layer': one per layer.",
            "choices": ["shared", "per_layer"],
        },
    )
    ema_momentum: float = field(
        default=0.999,
        metadata={"help": "Momentum of the EMA teacher (teacher_model='ema'), in [0, 1): teacher <- m*teacher + "
                  "(1-m)*student after each optimizer step."},
    )

    reference: Optional[str] = field(
        default=None,
        metadata={
            "help": "Compute the terms exactly as a paper's code does: 'tinybert' (task_distill.py reductions, one "
            "shared projection) or 'distilbert' (distiller.py: MLM soft targets on every real token; SQuAD soft "
            "targets over the padded sequence). Default: hf-distill's conventions (docs/losses.md).",
            "choices": list(REFERENCE_MODES),
        },
    )
    kd_positions: Optional[str] = field(
        default=None,
        metadata={
            "help": "Tokens of a masked-LM batch the soft targets use: 'masked' (those with an MLM label) or 'all' "
            "(every real token, DistilBERT's distiller.py). Default: 'all' with reference='distilbert', else 'masked'.",
            "choices": list(KD_POSITIONS),
        },
    )

    def _check_options(self) -> None:
        if self.reference is not None and str(self.reference).strip().lower() in ("", "none"):
            self.reference = None
        if self.reference is not None and self.reference not in REFERENCE_MODES:
            raise ValueError(f"reference must be one of {REFERENCE_MODES} or unset, got {self.reference!r}.")
        if self.kd_positions is None:
            self.kd_positions = "all" if self.reference == "distilbert" else "masked"
        if self.kd_positions not in KD_POSITIONS:
            raise ValueError(f"kd_positions must be one of {KD_POSITIONS}, got {self.kd_positions!r}.")
        if self.reference == "tinybert" and self.projection == "per_layer":
            raise ValueError(
                "reference='tinybert' shares one projection between the embeddings and every layer (TinyBERT's "
                "fit_dense): drop projection='per_layer', or drop reference."
            )
        if self.kd_loss not in KD_LOSSES:
            raise ValueError(f"kd_loss must be one of {KD_LOSSES}, got {self.kd_loss!r}.")
        if self.relation_heads is not None and int(self.relation_heads) < 1:
            raise ValueError(f"relation_heads must be a positive number of heads, got {self.relation_heads}.")
        if self.relation_teacher_layer is not None and int(self.relation_teacher_layer) < 1:
            raise ValueError(
                f"relation_teacher_layer is a 1-based teacher layer (1 = the first), got {self.relation_teacher_layer}."
            )
        if self.projection not in ("shared", "per_layer"):
            raise ValueError(f"projection must be 'shared' or 'per_layer', got {self.projection!r}.")
        if not 0 <= self.ema_momentum < 1:
            raise ValueError(f"ema_momentum must be in [0, 1), got {self.ema_momentum}.")
        self.layer_map = parse_layer_map(self.layer_map)

    @classmethod
    def distilbert(cls, **overrides: Any) -> "DistillationConfig":
        """DistilBERT's task distillation as its authors ran it: ``0.5·L_kd + 0.5·L_task`` at T=2.

        `run_squad_w_distillation.py` (the reference's only task-distillation script, SQuAD) uses
        ``alpha_ce = alpha_squad = 0.5`` and T=2, with no cosine term; `reference="distilbert"` makes a
        question-answering head's soft targets cover the padded sequence as that script does. The cosine
        term belongs to DistilBERT's pre-training (`distilbert_pretraining`); add it with
        `cosine_weight=1.0` for the "DistilBERT-style" task recipe of `recipes/glue/distilbert.yaml`.

        Args:
            **overrides: Any `DistillationConfig` field (e.g. `output_dir`).
        """
        zeros = {name: 0.0 for name in weight_fields(TASK_TERMS)}
        values = {**zeros, "temperature": 2.0, "kd_loss": "kl", "task_weight": 0.5, "kd_weight": 0.5,
                  "reference": "distilbert"}
        return cls(**{**values, **overrides})

    @classmethod
    def distilbert_pretraining(cls, **overrides: Any) -> "DistillationConfig":
        """DistilBERT's pre-training triple loss with `distiller.py`'s defaults (Sanh et al., 2019).

        ``5.0·L_kd + 2.0·L_mlm + 1.0·L_cos`` at T=2 (the published `train.py` command), the soft targets on
        every real token (`reference="distilbert"`; pass `kd_positions="masked"` for the masked positions
        only), and the reference optimiser: AdamW with betas (0.9, 0.98), eps 1e-6, learning rate 5e-4,
        5% linear warmup, no weight decay, gradient clipping at 5.0. For a `*ForMaskedLM` student on masked
        raw text (recipe family `general`, `recipes/general/distilbert.yaml`). What still differs from
        distiller.py (its token-frequency-smoothed masking, frozen position embeddings, batches of 4,000
        tokens) is listed in `docs/general.md`.

        Args:
            **overrides: Any `DistillationConfig` field.
        """
        zeros = {name: 0.0 for name in weight_fields(TASK_TERMS)}
        values = {**zeros, "temperature": 2.0, "kd_loss": "kl", "kd_weight": 5.0, "mlm_weight": 2.0,
                  "cosine_weight": 1.0, "reference": "distilbert", "adam_beta1": 0.9, "adam_beta2": 0.98,
                  "adam_epsilon": 1e-6, "learning_rate": 5e-4, "warmup_ratio": 0.05, "weight_decay": 0.0,
                  "max_grad_norm": 5.0}
        return cls(**{**values, **overrides})

    @classmethod
    def minilm(cls, version: int = 2, relation_heads: Optional[int] = 48, **overrides: Any) -> "DistillationConfig":
        """MiniLM's self-attention distillation (Wang et al., 2020; 2021) of the student's last layer, no labels.

        - `version=1` (MiniLM): attention distributions + value relation, weights 1, each model's own heads
          (equal head counts; `relation_heads` is ignored).
        - `version=2` (MiniLMv2): query-query + key-key + value-value relations, weights 1, with
          `relation_heads` relation heads (48 by default: it divides 384, 768 and 1024).

        The teacher layer is the last unless `relation_teacher_layer` says otherwise. A prediction stage
        (soft targets, or the task loss) follows on a task, as TinyBERT's does.

        Args:
            version (`int`, defaults to 2): 1 or 2.
            relation_heads (`int`, *optional*, defaults to 48): Relation heads of version 2.
            **overrides: Any `DistillationConfig` field.
        """
        zeros = {name: 0.0 for name in weight_fields(TASK_TERMS)}
        if version == 1:
            values = {**zeros, "attention_relation_weight": 1.0, "value_relation_weight": 1.0, "relation_heads": None}
        elif version == 2:
            values = {**zeros, "query_relation_weight": 1.0, "key_relation_weight": 1.0, "value_relation_weight": 1.0,
                      "relation_heads": relation_heads}
        else:
            raise ValueError(f"version must be 1 (MiniLM) or 2 (MiniLMv2), got {version!r}.")
        return cls(**{**values, **overrides})

    @classmethod
    def tinybert(cls, stage: str = "intermediate", **overrides: Any) -> "DistillationConfig":
        """TinyBERT's task distillation, one stage at a time (Jiao et al., 2020), with TinyBERT's terms and schedule.

        - `"intermediate"`: embedding + hidden-state + attention-score MSE (weights 1), no labels,
          uniform layer map; `task_distill.py`'s optimiser settings for this stage: constant learning rate
          5e-5 with no warmup, weight decay 0.01, 10 epochs (the README's command; the paper says 20 on the
          augmented data). TinyBERT's general stage uses the same losses on raw text (recipe family `general`,
          `recipes/general/tinybert_general.yaml`).
        - `"prediction"`: soft cross-entropy on the logits at T=1 (TinyBERT's `soft_cross_entropy`), no task
          loss; learning rate 3e-5, 10% linear warmup, weight decay 0.01, 3 epochs.

        The terms use hf-distill's reductions (means over real tokens, ``T²·Σ_c``) unless you pass
        `reference="tinybert"`, which computes each exactly as `task_distill.py` does (`docs/losses.md`).
        Batch size (32 in the reference) and sequence length are yours to set. Still different from the
        reference: BertAdam (no bias correction) versus AdamW, and an identity instead of `fit_dense` when
        student and teacher have the same width.

        Args:
            stage (`str`, defaults to `"intermediate"`): `"intermediate"` or `"prediction"`.
            **overrides: Any `DistillationConfig` field.
        """
        zeros = {name: 0.0 for name in weight_fields(TASK_TERMS)}
        optimiser = {"weight_decay": 0.01, "num_train_epochs": 10.0, "learning_rate": 5e-5,
                     "lr_scheduler_type": "constant", "warmup_ratio": 0.0}
        if stage == "intermediate":
            values = {**zeros, **optimiser, "embedding_weight": 1.0, "hidden_weight": 1.0, "attention_weight": 1.0}
            values["layer_map"] = "uniform"
        elif stage == "prediction":
            values = {**zeros, **optimiser, "kd_weight": 1.0, "kd_loss": "soft_ce", "temperature": 1.0,
                      "num_train_epochs": 3.0, "learning_rate": 3e-5, "lr_scheduler_type": "linear",
                      "warmup_ratio": 0.1}
        else:
            raise ValueError(f"stage must be 'intermediate' or 'prediction', got {stage!r}.")
        return cls(**{**values, **overrides})
