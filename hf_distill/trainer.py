"""`DistillationTrainer`: a `transformers.Trainer` that distils a frozen teacher into the model it trains.

Only Trainer overrides live here: `compute_loss` (gathers outputs, calls the pure functions of
`hf_distill.losses`), gradient-accumulation bookkeeping, per-term logging, and saving/loading the
projection heads next to the student. The training loop, mixed precision, DDP, checkpointing,
callbacks and `report_to` are Trainer's own.

Design:

- The student and its projection heads are one module: the heads are a submodule of the
  student (`distillation_heads`) whose forward runs from a hook inside the student's forward, so
  the optimizer, DDP and checkpoints see one model. `_keys_to_ignore_on_save` keeps the heads out
  of the saved student, which loads with plain `from_pretrained`; the heads go to
  `distillation_heads.safetensors` beside it.
  Under DDP the heads reach the loss through the trainer rather than the student's outputs, so
  the student is wrapped with a static graph (`_wrap_model`).
- The teacher belongs to the trainer: frozen, in eval mode, never in the optimizer, never wrapped
  by DDP, never saved. It may be one model, an ensemble (`teacher_model=[...]`), an EMA copy of the
  student (`"ema"`, saved in checkpoints only), or absent when the training set carries cached
  teacher logits (`precompute_teacher_outputs`).
- Publishing (`push_to_hub`) comes from `hf_distill.hub.HubPublishingMixin`: the student alone, with
  hf-distill's model card; never the heads, checkpoints or a token.
"""

from __future__ import annotations

import inspect
import json
import os
from collections import defaultdict
from typing import Any, Optional, Union

import safetensors.torch
import torch
from torch import nn
import transformers
from transformers import AutoModel, PreTrainedModel, Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from . import losses
from .config import DistillationConfig
from .ema import EmaTeacher, EmaUpdateCallback
from .hub import HubPublishingMixin
from .layers import AttentionScoreRecorder, DistillationHeads, resolve_layer_map
from .schedules import SCHEDULABLE
from .teacher_cache import TEACHER_LOGITS_COLUMN

HEADS_WEIGHTS_NAME = "distillation_heads.safetensors"
HEADS_CONFIG_NAME = "distillation_heads.json"
HEADS_ATTRIBUTE = "distillation_heads"
TERM_NAMES = ("task", "kd", "mlm", "cos", "hidden", "emb", "att")
_WEIGHT_OF_TERM = {
    "task": "task_weight",
    "kd": "kd_weight",
    "mlm": "mlm_weight",
    "cos": "cosine_weight",
    "hidden": "hidden_weight",
    "emb": "embedding_weight",
    "att": "attention_weight",
}
_TERM_OF_WEIGHT = {weight: term for term, weight in _WEIGHT_OF_TERM.items()}


def check_model_path(path: Optional[str], what: str) -> None:
    """Raises a clear error for a local-looking model path (``./x``, ``/x``, ``a/b/c``) that is not a folder.

    Anything else may be a Hub id (``org/name``) and is left to `from_pretrained`.
    """
    if not path:
        return
    path = os.path.expanduser(path)
    if (path.startswith((".", "/")) or path.count("/") > 1) and not os.path.isdir(path):
        raise FileNotFoundError(
            f"The {what} {path!r} does not exist: pass a folder saved with save_pretrained, or a Hub id."
        )


def check_finite(term: str, value: torch.Tensor, step: int) -> None:
    """Raises `NonFiniteLossError` naming the loss term and the step when `value` is NaN or inf."""
    if not torch.isfinite(value):
        raise NonFiniteLossError(
            f"The {term} loss (loss_{term}) is {value.item()} at step {step}. Training stopped; the last saved "
            "checkpoint is untouched. Lower the learning rate, check the inputs for NaN, or use bf16 instead of fp16."
        )


class NonFiniteLossError(RuntimeError):
    """Raised when a distillation loss term is NaN or infinite."""


def _is_masked_lm(model: nn.Module) -> bool:
    return type(model).__name__.endswith("ForMaskedLM")


def _is_classifier(model: nn.Module) -> bool:
    return type(model).__name__.endswith(("ForSequenceClassification", "ForTokenClassification"))


def _problem_type(config: transformers.PretrainedConfig, labels: torch.Tensor) -> str:
    """The config's `problem_type`, or the one transformers' sequence classifiers infer from the labels."""
    if config.problem_type:
        return config.problem_type
    if config.num_labels == 1:
        return "regression"
    return "multi_label_classification" if labels.is_floating_point() else "single_label_classification"


def _count_items(inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Counts the units each loss term averages over in one micro-batch.

    `examples` (sequence-level terms), `labelled` (examples with a label: the sequence-level task term),
    `labels` (labels ≠ −100: token-level task/kd terms),
    `tokens` (attention_mask = 1: hidden, embedding, cosine terms, token-level kd without labels),
    `pairs` (pairs of real tokens: the attention term).
    """
    input_ids = inputs.get("input_ids")
    mask = inputs.get("attention_mask")
    if mask is None and input_ids is not None:
        mask = torch.ones_like(input_ids)
    counts = {}
    if mask is not None:
        lengths = mask.sum(-1).to(torch.float64)
        counts["examples"] = torch.tensor(float(mask.shape[0]), dtype=torch.float64)
        counts["tokens"] = lengths.sum().cpu()
        counts["pairs"] = lengths.pow(2).sum().cpu()
    labels = inputs.get("labels")
    if isinstance(labels, torch.Tensor):
        if labels.dim() > 1:
            counts["labels"] = (labels != -100).sum().to(torch.float64).cpu()
        else:
            counts["labelled"] = losses.labelled_rows(labels).sum().to(torch.float64).cpu()
        if "examples" not in counts:
            counts["examples"] = torch.tensor(float(labels.shape[0]), dtype=torch.float64)
    return {key: value for key, value in counts.items() if value is not None}


class DistillationTrainer(HubPublishingMixin, Trainer):
    """A `Trainer` that trains `model` (the student) against a frozen `teacher_model`.

    A sequence-classification training set may hold examples without a label (class -100 or -1,
    score NaN; `losses.labelled_rows`): they are left out of the task term and take part in every
    teacher term, so a transfer set of unlabelled text trains in the same run as the labelled data.

    Args:
        model (`PreTrainedModel`): The student (see `create_student`).
        teacher_model (`PreTrainedModel`, `str` or `list`, *optional*): The teacher, or a path/Hub id
            loaded with the student's auto class. Defaults to `args.teacher_model_name_or_path`.
            Also accepted:

            - a list of teachers (models or paths), an ensemble: the soft targets are the mean of
              their probabilities at temperature T (regression and `kd_loss="mse"`: the mean
              prediction); the intermediate-layer losses use the first teacher alone;
            - `"ema"`: an online teacher, a copy of the student updated after each optimizer step as
              ``θ_t ← m·θ_t + (1 − m)·θ_s`` (`args.ema_momentum`), saved in every checkpoint;
            - `None` with a training set that has a `teacher_logits` column
              (`precompute_teacher_outputs`): the soft targets come from the column and no teacher
              is in memory (the intermediate-layer losses still need a live teacher).

            Needed unless only the task/MLM losses are on (a no-teacher baseline).
        args (`DistillationConfig`): Training arguments and loss weights.
        **kwargs: Every other `Trainer` argument (`train_dataset`, `eval_dataset`, `data_collator`,
            `processing_class`, `compute_metrics`, `callbacks`, ...), unchanged.
    """

    def __init__(
        self,
        model: Optional[PreTrainedModel] = None,
        teacher_model: Optional[Union[PreTrainedModel, str]] = None,
        args: Optional[DistillationConfig] = None,
        **kwargs: Any,
    ):
        if args is None:
            args = DistillationConfig(output_dir="trainer_output")
        if not isinstance(args, DistillationConfig):
            raise TypeError(
                f"DistillationTrainer needs args=DistillationConfig(...), got {type(args).__name__}. "
                "DistillationConfig accepts every TrainingArguments field."
            )
        if model is None:
            raise ValueError("DistillationTrainer needs the student as model=... (see hf_distill.create_student).")
        self._schedule = args.loss_schedule
        self._constant_values = {name: float(getattr(args, name)) for name in SCHEDULABLE}
        self._max_weights = {term: args.max_loss_weights[_WEIGHT_OF_TERM[term]] for term in TERM_NAMES}
        self._set_scheduled_values(epoch=0.0, step=0, max_steps=1)
        train_dataset = kwargs.get("train_dataset")
        self._cached_logits = TEACHER_LOGITS_COLUMN in (getattr(train_dataset, "column_names", None) or [])
        self.ema = None
        teacher_model = teacher_model if teacher_model is not None else args.teacher_model_name_or_path
        if isinstance(teacher_model, str) and teacher_model == "ema":
            self.ema = EmaTeacher(model, args.ema_momentum)  # before the heads are attached to the student
            teachers = [self.ema.model]
        elif isinstance(teacher_model, (list, tuple)):
            if not teacher_model:
                raise ValueError("teacher_model=[] is empty: pass one or more teachers, or None for a baseline.")
            teachers = [self._load_teacher(t, model, args) if isinstance(t, str) else t for t in teacher_model]
        elif teacher_model is None:
            teachers = []
        else:
            teachers = [self._load_teacher(teacher_model, model, args) if isinstance(teacher_model, str) else teacher_model]
        self.teachers: list[nn.Module] = teachers
        # The designated teacher: the only one run for the intermediate-layer losses.
        self.teacher = teachers[0] if teachers else None
        for teacher in teachers or [None]:
            self._check_models(model, teacher, args)
        if self._cached_logits and not teachers and self._max_weights["kd"] > 0:
            self._check_cached_logits(model, train_dataset)
        self._check_distributed_setup(self.teacher, args)
        self._check_train_columns(model, train_dataset, args)
        self.layer_map = self._resolve_layer_map(model, self.teacher, args)
        self.distillation_heads = self._build_heads(model, self.teacher, args)
        if self.ema is not None:
            callbacks = list(kwargs.pop("callbacks", None) or [])
            kwargs["callbacks"] = [*callbacks, EmaUpdateCallback(self.ema, lambda: self.accelerator.unwrap_model(self.model))]
        super().__init__(model=model, args=args, **kwargs)
        # Our losses are means; the accumulation window is normalised in compute_loss (see
        # `get_batch_samples`), and Trainer divides each micro-batch loss by the accumulation steps.
        self.model_accepts_loss_kwargs = False
        self._window_counts: Optional[dict[str, torch.Tensor]] = None
        self._window_scale = 1.0
        self._logged_terms: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), dtype=torch.float64))
        self._logged_steps = 0
        self._teacher_scores = self._student_scores = None
        if self._max_weights["att"] > 0:
            self._check_gradient_checkpointing(args)
            self._student_scores = AttentionScoreRecorder(model, model.config.num_attention_heads)
            self._teacher_scores = AttentionScoreRecorder(self.teacher, self.teacher.config.num_attention_heads)
        self._token_level_logits = False
        self._teacher_input_names = [set(inspect.signature(t.forward).parameters) for t in teachers]
        if teachers:
            self._prepare_teacher()

    # ------------------------------------------------------------------ setup

    @staticmethod
    def _load_teacher(path: str, student: nn.Module, args: DistillationConfig) -> PreTrainedModel:
        """Loads the teacher with the auto class of the student's head, safetensors only by default."""
        init_kwargs = dict(args.teacher_model_init_kwargs or {})
        init_kwargs.setdefault("trust_remote_code", False)
        init_kwargs.setdefault("use_safetensors", True)
        if args.teacher_model_revision is not None:
            init_kwargs.setdefault("revision", args.teacher_model_revision)
        path = os.path.expanduser(path)
        check_model_path(path, "teacher model path")
        head = type(student).__name__.split("For", 1)
        loader = getattr(transformers, f"AutoModelFor{head[1]}", AutoModel) if len(head) == 2 else AutoModel
        try:
            return loader.from_pretrained(path, **init_kwargs)
        except ValueError as error:
            if "trust_remote_code" not in str(error):
                raise
            raise ValueError(
                f"The teacher at {path!r} needs its own Python code, which is not run by default: {error}\nIf you "
                "trust that code, set teacher_model_init_kwargs={'trust_remote_code': True}."
            ) from error
        except OSError as error:
            raise OSError(
                f"Could not load the teacher from {path!r}: {error}\nPass a folder saved with save_pretrained "
                "(safetensors weights), or a Hub id while online. For pickle (.bin) weights you trust, set "
                "teacher_model_init_kwargs={'use_safetensors': False}."
            ) from error

    def _check_models(self, student: nn.Module, teacher: Optional[nn.Module], args: DistillationConfig) -> None:
        weights = self._max_weights
        needs_teacher = any(weights[term] > 0 for term in ("kd", "cos", "hidden", "emb", "att"))
        live_terms = ("cos", "hidden", "emb", "att") if self._cached_logits else ("kd", "cos", "hidden", "emb", "att")
        if teacher is None and any(weights[t] > 0 for t in live_terms):
            on = [_WEIGHT_OF_TERM[t] for t in live_terms if weights[t] > 0]
            cached = f" (the {TEACHER_LOGITS_COLUMN!r} column serves kd_weight only)" if self._cached_logits else ""
            raise ValueError(
                f"{', '.join(on)} > 0 needs a teacher{cached}: pass teacher_model=... (a model or a path) or set "
                "teacher_model_name_or_path, or set those weights to 0 for a no-teacher baseline."
            )
        if weights["mlm"] > 0 and not _is_masked_lm(student):
            raise ValueError(
                f"mlm_weight > 0 needs a *ForMaskedLM student, got {type(student).__name__}: set mlm_weight=0."
            )
        if weights["task"] > 0 and _is_masked_lm(student):
            raise ValueError(
                "The student is a masked LM: its own loss is the MLM loss. Use mlm_weight instead of task_weight."
            )
        if teacher is None:
            return
        if not needs_teacher:
            raise ValueError(
                "A teacher was given but every teacher-based loss weight (kd, cosine, hidden, embedding, "
                "attention) is 0: set one of them > 0, or drop the teacher for a no-teacher baseline."
            )
        s_cfg, t_cfg = student.config, teacher.config
        s_vocab = getattr(s_cfg, "vocab_size", None)
        t_vocab = getattr(t_cfg, "vocab_size", None)
        if s_vocab != t_vocab:
            raise ValueError(
                f"Teacher and student vocabularies differ (teacher vocab_size={t_vocab}, student {s_vocab}): "
                "they must share a tokenizer. Build the student with create_student(teacher, ...)."
            )
        if weights["kd"] > 0 and _is_classifier(student):
            if s_cfg.num_labels != t_cfg.num_labels:
                raise ValueError(
                    f"Teacher has num_labels={t_cfg.num_labels}, student {s_cfg.num_labels}: soft targets need the "
                    "same label space. Build the student from the teacher (create_student) or fix num_labels."
                )
            if dict(s_cfg.id2label) != dict(t_cfg.id2label):
                raise ValueError(
                    f"Teacher and student label orders differ: teacher id2label={dict(t_cfg.id2label)}, student "
                    f"{dict(s_cfg.id2label)}. Give the student the teacher's id2label/label2id."
                )
        if weights["kd"] > 0 and type(student).__name__.split("For")[-1] != type(teacher).__name__.split("For")[-1]:
            raise ValueError(
                f"Teacher {type(teacher).__name__} and student {type(student).__name__} have different heads: "
                "soft targets need the same kind of head (e.g. both *ForSequenceClassification)."
            )
        if weights["att"] > 0 and s_cfg.num_attention_heads != t_cfg.num_attention_heads:
            raise ValueError(
                f"attention_weight > 0 needs equal head counts (teacher {t_cfg.num_attention_heads}, student "
                f"{s_cfg.num_attention_heads}): build the student with num_attention_heads="
                f"{t_cfg.num_attention_heads}, or set attention_weight=0."
            )

    @staticmethod
    def _check_distributed_setup(teacher: Optional[nn.Module], args: DistillationConfig) -> None:
        """Refuses the setups whose teacher handling is not supported (see README, "Distributed")."""
        from transformers.integrations import deepspeed as hf_deepspeed

        if teacher is not None and args.deepspeed is not None and hf_deepspeed.is_deepspeed_zero3_enabled():
            raise ValueError(
                "DeepSpeed ZeRO stage 3 partitions every model loaded under it, the teacher included, and "
                "DistillationTrainer runs the teacher outside the DeepSpeed engine. Use ZeRO stage 1 or 2 (the "
                "teacher is kept whole on each device), DDP, or FSDP."
            )

    def _check_train_columns(self, student: nn.Module, train_dataset: Any, args: DistillationConfig) -> None:
        """A tokenized training set must reach the models: fail now, not at the first step.

        Checked when Trainer drops the columns the model does not take (`remove_unused_columns`, the
        default), so a collator that builds the inputs itself is never in the way.
        """
        columns = getattr(train_dataset, "column_names", None)
        if not isinstance(columns, list) or not args.remove_unused_columns:
            return
        main_input = getattr(student, "main_input_name", "input_ids")
        if main_input not in columns:
            raise ValueError(
                f"The training dataset has no {main_input} column (columns: {columns}): tokenize the text first, "
                "e.g. dataset.map(lambda batch: tokenizer(batch['sentence'], truncation=True), batched=True)."
            )
        label_columns = {"labels", "label", "label_ids", *(args.label_names or [])}
        if self._max_weights["task"] > 0 and not label_columns & set(columns):
            raise ValueError(
                f"task_weight > 0 but the training dataset has no labels column (columns: {columns}): add a "
                "'labels' (or 'label') column, or set task_weight=0 to distil from the teacher alone."
            )

    @staticmethod
    def _check_cached_logits(student: nn.Module, dataset: Any) -> None:
        """The cached logits must fit the student's head: one float per label."""
        first = dataset[0][TEACHER_LOGITS_COLUMN] if len(dataset) else None
        num_labels = getattr(student.config, "num_labels", None)
        if first is not None and len(first) != num_labels:
            raise ValueError(
                f"The {TEACHER_LOGITS_COLUMN!r} column has {len(first)} values a row but the student has "
                f"num_labels={num_labels}: precompute the logits with a teacher of the same label space."
            )

    def _resolve_layer_map(self, student, teacher, args) -> Optional[list[int]]:
        if teacher is None or (self._max_weights["hidden"] == 0 and self._max_weights["att"] == 0):
            return None
        return resolve_layer_map(args.layer_map, teacher.config.num_hidden_layers, student.config.num_hidden_layers)

    def _build_heads(self, student, teacher, args) -> Optional[DistillationHeads]:
        if teacher is None or not any(self._max_weights[t] > 0 for t in ("hidden", "emb", "cos")):
            return None
        heads = DistillationHeads(
            student.config.hidden_size,
            teacher.config.hidden_size,
            student.config.num_hidden_layers,
            hidden=self._max_weights["hidden"] > 0,
            embedding=self._max_weights["emb"] > 0,
            cosine=self._max_weights["cos"] > 0,
            per_layer=args.projection == "per_layer",
        )
        return install_heads(student, heads, args.distillation_heads_path)

    @staticmethod
    def _check_gradient_checkpointing(args: DistillationConfig) -> None:
        kwargs = args.gradient_checkpointing_kwargs or {}
        if args.gradient_checkpointing and kwargs.get("use_reentrant", True):
            raise ValueError(
                "attention_weight > 0 with reentrant gradient checkpointing cannot train the attention scores: "
                "set gradient_checkpointing_kwargs={'use_reentrant': False}."
            )

    def _wrap_model(self, model, training=True, dataloader=None):
        """Trainer's wrapping, with DDP told how the projection heads are used.

        The heads run inside the student's forward but reach the loss through the trainer, not
        through the student's outputs. DDP's search for unused parameters (`find_unused_parameters`,
        which Trainer turns on by default) starts from the outputs, so it would mark the heads unused
        and then fail when their gradients arrive. A static graph learns the used parameters from the
        first backward pass instead, which holds here: the set of active losses never changes.
        """
        wrapped = super()._wrap_model(model, training=training, dataloader=dataloader)
        handler = self.accelerator.ddp_handler
        heads = self.distillation_heads
        if handler is not None and handler.find_unused_parameters and heads is not None and heads.has_parameters:
            handler.static_graph = True
        return wrapped

    def _prepare_teacher(self) -> None:
        for teacher in self.teachers:
            teacher.requires_grad_(False)
            teacher.eval()
            teacher.to(self.accelerator.device)

    def _set_signature_columns_if_needed(self):
        """Keeps the cached teacher logits when Trainer drops the columns the student does not take."""
        super()._set_signature_columns_if_needed()
        if TEACHER_LOGITS_COLUMN not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, TEACHER_LOGITS_COLUMN]

    def _set_scheduled_values(self, epoch: float, step: int, max_steps: int) -> None:
        """Sets the current temperature and loss weights: the config's, or the schedule's at this point."""
        if self._schedule is None:
            values = self._constant_values
        else:
            values = self._schedule.values_at(epoch, step, max_steps)
        self._weights = {term: float(values[_WEIGHT_OF_TERM[term]]) for term in TERM_NAMES}
        self._temperature = float(values["temperature"])

    # ------------------------------------------------------------------ loss

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """Collects one accumulation window and counts what each loss term averages over in it."""
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        totals: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), dtype=torch.float64))
        for batch in batch_samples:
            for key, value in _count_items(batch).items():
                totals[key] = totals[key] + value
        self._window_scale = 1.0
        if self.args.average_tokens_across_devices and self.accelerator.num_processes > 1:
            keys = sorted(totals)
            stacked = torch.stack([totals[key] for key in keys]).to(self.accelerator.device)
            gathered = self.accelerator.gather(stacked.unsqueeze(0)).sum(0).cpu()
            totals = dict(zip(keys, gathered))
            # DDP averages gradients over processes; undo it so the window mean is global.
            self._window_scale = float(self.accelerator.num_processes)
        self._window_counts = dict(totals)
        return batch_samples, num_items_in_batch

    def _term_scales(self, inputs: dict[str, Any], token_level_labels: bool) -> dict[str, float]:
        """Factor turning each term's micro-batch mean into its share of the window mean.

        ``k · n_mb / N_window`` per term (k = accumulation steps; Trainer divides by k again), so
        summing the micro-batches of a window gives the mean over the whole window, whatever the
        micro-batch split and padding: accumulation is exact.
        """
        if not self.model.training or self._window_counts is None:
            return {term: 1.0 for term in TERM_NAMES}
        counts = _count_items(inputs)
        steps = self.current_gradient_accumulation_steps

        def scale(unit: str) -> float:
            total = self._window_counts.get(unit)
            if unit not in counts or total is None or float(total) == 0:
                return 1.0
            return steps * self._window_scale * float(counts[unit]) / float(total)

        kd_unit = "labels" if token_level_labels else "tokens" if self._token_level_logits else "examples"
        return {
            "task": scale("labels" if token_level_labels else "labelled"),
            "mlm": scale("labels"),
            "kd": scale(kd_unit),
            "cos": scale("tokens"),
            "hidden": scale("tokens"),
            "emb": scale("tokens"),
            "att": scale("pairs"),
        }

    def _teacher_outputs(
        self,
        inputs: dict[str, Any],
        cached_logits: Optional[torch.Tensor],
        need_logits: bool,
        need_hidden: bool,
        need_scores: bool,
    ) -> tuple[Optional[torch.Tensor], Optional[tuple[torch.Tensor, ...]]]:
        """The teacher logits and hidden states this step needs, running as few teachers as possible.

        Logits come from the cached column when the batch has it, otherwise from the teachers: one
        teacher's logits, or the ensemble's (`losses.ensemble_teacher_logits`: mean probabilities at
        T, or mean prediction for regression and `kd_loss="mse"`). Hidden states and attention scores
        come from the designated teacher (`self.teacher`, the first one) alone.
        """
        need_live_logits = need_logits and cached_logits is None
        if (need_live_logits or need_hidden or need_scores) and not self.teachers:
            raise ValueError(
                f"This batch has no {TEACHER_LOGITS_COLUMN!r} column and the trainer has no teacher: precompute "
                "the column for every training example (precompute_teacher_outputs), or pass teacher_model."
            )
        run = [i for i in range(len(self.teachers)) if need_live_logits or (i == 0 and (need_hidden or need_scores))]
        outputs = {}
        with torch.no_grad(), self.accelerator.autocast():
            for index in run:
                teacher = self.teachers[index]
                teacher.eval()
                kwargs = {k: v for k, v in inputs.items() if k != "labels" and k in self._teacher_input_names[index]}
                if index == 0 and need_hidden:
                    kwargs["output_hidden_states"] = True
                outputs[index] = teacher(**kwargs)
        hidden = outputs[0].hidden_states if need_hidden else None
        if not need_logits:
            return None, hidden
        if cached_logits is not None:
            return cached_logits.float(), hidden
        if len(self.teachers) == 1:
            return outputs[0].logits, hidden
        all_logits = [outputs[i].logits for i in range(len(self.teachers))]
        average = "logits" if all_logits[0].shape[-1] == 1 or self.args.kd_loss == "mse" else "probabilities"
        return losses.ensemble_teacher_logits(all_logits, self._temperature, average), hidden

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Optional[torch.Tensor] = None,
    ):
        """Runs the student (with its projection heads) and the teacher, and sums the weighted terms.

        Returns the total loss (and the student's outputs when `return_outputs`). The unweighted
        value of each active term is accumulated for logging as `loss_<term>`.
        """
        if model.training and self._schedule is not None:
            self._set_scheduled_values(self.state.epoch or 0.0, self.state.global_step, self.state.max_steps)
        w = dict(self._weights)
        cached_logits = inputs.pop(TEACHER_LOGITS_COLUMN, None)
        if not self.teachers and cached_logits is None and not model.training:
            # Evaluation on a set without cached logits, and no teacher in memory: no teacher terms.
            w.update({term: 0.0 for term in ("kd", "cos", "hidden", "emb", "att")})
        need_hidden = any(w[t] > 0 for t in ("hidden", "emb", "cos"))
        labels = inputs.get("labels")
        # Sequence-level labels with unlabelled examples (class -100/-1, score NaN): the model must not see
        # them (its loss would fail or turn NaN); the task term is computed here over the labelled rows.
        labelled = None
        if isinstance(labels, torch.Tensor) and labels.dim() == 1:
            labelled = losses.labelled_rows(labels)
            if bool(labelled.all()):
                labelled = None
        model_inputs = inputs if labelled is None else {k: v for k, v in inputs.items() if k != "labels"}
        if self.distillation_heads is not None:
            self.distillation_heads.active = True
            self.distillation_heads.projected = {}
        try:
            student_out = model(**model_inputs, output_hidden_states=True) if need_hidden else model(**model_inputs)
        finally:
            if self.distillation_heads is not None:
                self.distillation_heads.active = False
        teacher_logits, teacher_hidden = self._teacher_outputs(
            inputs, cached_logits, need_logits=w["kd"] > 0, need_hidden=need_hidden, need_scores=w["att"] > 0
        )

        mask = inputs.get("attention_mask")
        logits = student_out.logits if hasattr(student_out, "logits") else None
        self._token_level_logits = logits is not None and logits.dim() == 3
        token_level_labels = isinstance(labels, torch.Tensor) and labels.dim() > 1
        terms: dict[str, torch.Tensor] = {}

        if labelled is not None and w["task"] > 0:
            config = self.accelerator.unwrap_model(model).config
            terms["task"] = losses.sequence_task_loss(logits, labels, _problem_type(config, labels), labelled)
        elif w["task"] > 0 or w["mlm"] > 0:
            if getattr(student_out, "loss", None) is None:
                raise ValueError(
                    "task_weight/mlm_weight > 0 but the student returned no loss: the batches need a 'labels' column."
                )
            terms["mlm" if _is_masked_lm(self.accelerator.unwrap_model(model)) else "task"] = student_out.loss
        if w["kd"] > 0:
            row_mask = None
            if self._token_level_logits:
                row_mask = (labels != -100) if token_level_labels else mask
            terms["kd"] = losses.soft_target_loss(logits, teacher_logits, self.args.kd_loss, self._temperature, row_mask)
        if need_hidden:
            projected = self.distillation_heads.projected
            if w["cos"] > 0:
                terms["cos"] = losses.cosine_hidden_loss(projected["cosine"], teacher_hidden[-1], mask)
            if w["emb"] > 0:
                terms["emb"] = losses.hidden_mse_loss(projected["embedding"], teacher_hidden[0], mask)
            if w["hidden"] > 0:
                terms["hidden"] = sum(
                    losses.hidden_mse_loss(h_s, teacher_hidden[g], mask)
                    for h_s, g in zip(projected["hidden"], self.layer_map)
                )
        if w["att"] > 0:
            s_scores = self._student_scores.scores()
            t_scores = self._teacher_scores.scores()
            terms["att"] = sum(
                losses.attention_score_mse_loss(a_s, t_scores[g - 1], mask)
                for a_s, g in zip(s_scores, self.layer_map)
            )
        if self._student_scores is not None:
            self._student_scores.clear()
            self._teacher_scores.clear()

        scales = self._term_scales(inputs, token_level_labels)
        loss = sum(w[term] * value * scales[term] for term, value in terms.items())
        self._record_terms(terms, scales, model.training)
        if return_outputs and need_hidden and not model.training:
            # Evaluation gathers every output but the loss as predictions: keep hidden states out of them.
            student_out = type(student_out)(**{k: v for k, v in student_out.items() if k != "hidden_states"})
        return (loss, student_out) if return_outputs else loss

    def _record_terms(self, terms: dict[str, torch.Tensor], scales: dict[str, float], training: bool) -> None:
        if not training or self._window_counts is None:  # evaluation, or a call outside train()
            return
        steps = self.current_gradient_accumulation_steps
        for term, value in terms.items():
            value = value.detach()
            if self.args.stop_on_nonfinite_loss:
                check_finite(term, value, self.state.global_step + 1)
            # Share of the window mean, so a window's shares add up to its mean.
            share = value.to(torch.float64).cpu() * scales[term] / steps / self._window_scale
            self._logged_terms[term] = self._logged_terms[term] + share

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.accelerator.gradient_state.sync_gradients:
            self._logged_steps += 1
        return loss

    def log(self, logs: dict[str, float], start_time: Optional[float] = None) -> None:
        """Adds `loss_<term>` (mean over the optimizer steps since the last log) to training logs."""
        if "loss" in logs and self._logged_steps > 0:
            for term, total in self._logged_terms.items():
                value = total / self._logged_steps
                if self.accelerator.num_processes > 1:
                    gathered = self.accelerator.gather(value.to(self.accelerator.device).unsqueeze(0))
                    # Shares are of the global window mean when counts are averaged across devices.
                    value = gathered.sum() if self._window_scale > 1 else gathered.mean()
                logs[f"loss_{term}"] = round(float(value), 6)
            self._logged_terms.clear()
            self._logged_steps = 0
            if self._schedule is not None:
                logs["temperature"] = self._temperature
                for name in self._schedule.names:
                    if name != "temperature":
                        logs[name] = self._weights[_TERM_OF_WEIGHT[name]]
        super().log(logs, start_time)

    # ------------------------------------------------------------------ saving and loading

    def _save(self, output_dir: Optional[str] = None, state_dict=None):
        """Saves the student alone (loadable with `from_pretrained`), then its heads beside it."""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if state_dict is not None:
            state_dict = {k: v for k, v in state_dict.items() if not k.startswith(f"{HEADS_ATTRIBUTE}.")}
        super()._save(output_dir, state_dict=state_dict)
        if self.distillation_heads is not None and self.distillation_heads.has_parameters:
            save_heads(self.distillation_heads, output_dir)

    def _save_checkpoint(self, model, trial):
        """Trainer's checkpoint, plus the EMA teacher's weights when the teacher is an EMA (resume needs them)."""
        super()._save_checkpoint(model, trial)
        if self.ema is not None and self.args.should_save:
            folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
            self.ema.save(folder)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model=model)
        if self.ema is not None:
            self.ema.load(resume_from_checkpoint)
        if self.distillation_heads is not None and self.distillation_heads.has_parameters:
            load_heads_into(self.distillation_heads, resume_from_checkpoint)

    def _load_best_model(self):
        super()._load_best_model()
        if self.distillation_heads is not None and self.distillation_heads.has_parameters:
            load_heads_into(self.distillation_heads, self.state.best_model_checkpoint)


def install_heads(student: nn.Module, heads: nn.Module, heads_path: Optional[str] = None) -> nn.Module:
    """Makes `heads` part of the student: loaded from `heads_path` if given, on the student's device
    and dtype, a submodule (so the optimizer, DDP and checkpoints see them) kept out of the saved
    student, and run from the student's forward (`heads.attach(student)`). Returns `heads`."""
    if heads_path:
        load_heads_into(heads, heads_path)
    heads.to(device=student.device, dtype=next(student.parameters()).dtype)
    if heads.has_parameters:
        student.add_module(HEADS_ATTRIBUTE, heads)
        student._keys_to_ignore_on_save = [f"{HEADS_ATTRIBUTE}.{key}" for key in heads.state_dict()]
    heads.attach(student)
    return heads


def save_heads(heads: DistillationHeads, output_dir: str) -> None:
    """Writes `distillation_heads.safetensors` and `distillation_heads.json` into `output_dir`."""
    os.makedirs(output_dir, exist_ok=True)
    tensors = {key: value.detach().contiguous().cpu() for key, value in heads.state_dict().items()}
    safetensors.torch.save_file(tensors, os.path.join(output_dir, HEADS_WEIGHTS_NAME), metadata={"format": "pt"})
    with open(os.path.join(output_dir, HEADS_CONFIG_NAME), "w") as file:
        json.dump(heads.config_dict(), file, indent=2)


def load_heads_into(heads: DistillationHeads, path: str) -> None:
    """Loads saved projection heads from a folder (or a `.safetensors` file) into `heads`.

    Raises:
        FileNotFoundError: When the folder has no heads file, instead of silently starting the
            projections from scratch.
        ValueError: When the saved heads do not fit (different widths, layers or losses).
    """
    file = path if path.endswith(".safetensors") else os.path.join(path, HEADS_WEIGHTS_NAME)
    if not os.path.isfile(file):
        raise FileNotFoundError(
            f"No projection heads at {file}: the student has learned projections that this folder does not hold. "
            f"Resume from a checkpoint written by DistillationTrainer (it saves {HEADS_WEIGHTS_NAME}), or remove "
            "distillation_heads_path to start the projections from scratch."
        )
    state = safetensors.torch.load_file(file)
    expected = heads.state_dict()
    if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in expected):
        raise ValueError(
            f"The projection heads in {file} do not match this run's (saved: "
            f"{ {k: tuple(v.shape) for k, v in state.items()} }, expected: "
            f"{ {k: tuple(v.shape) for k, v in expected.items()} }): check the loss weights, projection and widths."
        )
    heads.load_state_dict({k: v.to(expected[k].device, expected[k].dtype) for k, v in state.items()})

