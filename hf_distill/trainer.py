"""The trainers: `DistillationTrainerBase`, which every family's trainer extends, and `DistillationTrainer`.

Only `transformers.Trainer` overrides live here. The training loop, mixed precision, DDP,
checkpointing, callbacks and `report_to` are Trainer's own; the losses are the pure functions of
`hf_distill.losses` (and of each family's package); setup checks are in `hf_distill.checks`.

`DistillationTrainerBase` owns what every family shares:

- **the teacher** (`hf_distill.teachers.TeacherSet`): loaded safely, frozen, in eval mode, on the
  trainer's device, never in the optimizer, never wrapped by DDP, never saved; an ensemble, an EMA of
  the student (saved in checkpoints and restored on resume), or cached logits in the training set;
- **the heads**: the student and its projection heads are one module (the heads are a submodule whose
  forward runs from a hook inside the student's forward), so the optimizer, DDP and checkpoints see one
  model; the heads are kept out of the saved student and written beside it, restored on resume and with
  the best model; under DDP the student is wrapped with a static graph;
- **models made of parts** (`hf_distill.modeling.CompositeModel`: peers, a backbone with exits), saved
  part by part;
- **term logging**: each term's value is logged as `loss_<term>` (the name of `hf_distill.terms`, with a
  `_peer<i>` / `_exit<l>` suffix where a family has one per model), the mean over the optimizer steps
  since the last log, and a NaN or infinite term stops training with `NonFiniteLossError`;
- **loss-only evaluation** for families whose batches have no labels (`evaluation_loss_only`);
- **publishing** (`hf_distill.hub.mixin.HubPublishingMixin`): only the allow-listed files, with
  hf-distill's card; `training_args.bin` is written without the Hub token;
- **the run record**: `save_model()` into `output_dir` writes `results.json` (teacher, recipe, the
  student's last evaluation) unless a recipe run already wrote its own, so `hf-distill card` and
  `create_model_card()` work on a folder of the Python API.

A family's trainer overrides `compute_loss` and the hooks `_setup_student` (checks and preparation
before Trainer's `__init__`), `_build_heads` and `_extra_callbacks`, always through `super()`.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import logging
import os
import shutil
from collections import defaultdict
from typing import Any, ClassVar, Optional, Union

import torch
import transformers
from torch import nn
from transformers import PreTrainedModel, Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from . import checks, losses
from .config import DistillationConfig, DistillationConfigBase
from .hub.mixin import HubPublishingMixin
from .layers import (
    AttentionScoreRecorder,
    DistillationHeads,
    install_heads,
    load_heads_into,
    resolve_layer_map,
    save_heads,
)
from . import compat
from .modeling import CompositeModel
from .runs import (
    HEADS_ATTRIBUTE,
    PARTIAL_CHECKPOINT_PREFIX,
    RESULTS_NAME,
    RUN_FINGERPRINT_NAME,
    describe_model,
    read_results,
    recipe_record,
    write_results,
)
from .teachers import TEACHER_LOGITS_COLUMN, EmaUpdateCallback, TeacherSet, describe_teacher, has_cached_logits
from .teacher_inputs import (
    TEACHER_INPUT_COLUMNS, TEACHER_TOKEN_INDEX, TeacherInputsCollator, align_to_student, load_teacher_tokenizer,
)
from .relations import RELATION_TERMS, RELATION_WEIGHT_FIELDS, RelationDistiller
from .task_heads import head_kind, head_logits
from .terms import (
    EXAMPLES, LABELS, LOGIT_ROWS, POSITION_PAIRS, POSITIONS, REFERENCE_UNITS, TOKEN_PAIRS, TOKENS,
)

TRAINING_ARGS_NAME = "training_args.bin"
logger = logging.getLogger(__name__)
_BOOKKEEPING_METRICS = {"loss", "runtime", "samples_per_second", "steps_per_second", "model_preparation_time", "epoch"}


class NonFiniteLossError(RuntimeError):
    """Raised when a distillation loss term is NaN or infinite."""


def check_finite(name: str, value: torch.Tensor, step: int) -> None:
    """Raises `NonFiniteLossError` naming the loss term (`loss_<name>`) and the step when `value` is NaN or inf."""
    if not torch.isfinite(value):
        raise NonFiniteLossError(
            f"The {name} loss (loss_{name}) is {value.item()} at step {step}. Training stopped; the last saved "
            "checkpoint is untouched. Lower the learning rate, check the inputs for NaN, or use bf16 instead of fp16."
        )


class DistillationTrainerBase(HubPublishingMixin, Trainer):
    """The base of every hf-distill trainer (see the module docstring for what it owns).

    Args:
        model (`nn.Module`): The model to train: the student, or a model made of parts.
        args (`DistillationConfigBase`): The family's config (`config_class`).
        teacher_model (`PreTrainedModel`, `str`, `list` or `"ema"`, *optional*): The teacher (see
            `hf_distill.teachers.TeacherSet`); defaults to `args.teacher_model_name_or_path` where the config
            has one. Families without a trained teacher pass none.
        **kwargs: Every other `Trainer` argument, unchanged.
    """

    config_class: ClassVar[type] = DistillationConfigBase
    """The config the trainer takes (a `TypeError` names it otherwise)."""
    family: ClassVar[str] = ""
    """The recipe family the run record names (`hf_distill.terms.FAMILY_TERMS`)."""
    evaluation_loss_only: ClassVar[bool] = False
    """Evaluation computes the training loss only (families whose batches carry no labels)."""
    teacher_processing_class: Any = None
    """The teacher's own tokenizer, when it has one (set by a family before the base's `__init__`)."""

    def __init__(
        self,
        model: Optional[nn.Module] = None,
        args: Optional[DistillationConfigBase] = None,
        teacher_model: Union[None, str, nn.Module, list] = None,
        **kwargs: Any,
    ):
        if args is None:
            args = self.config_class(output_dir="trainer_output")
        if not isinstance(args, self.config_class):
            raise TypeError(
                f"{type(self).__name__} needs args={self.config_class.__name__}(...), got {type(args).__name__}. "
                f"{self.config_class.__name__} accepts every TrainingArguments field."
            )
        if model is None:
            raise ValueError(f"{type(self).__name__} needs the model to train as model=... (see create_student).")
        self._schedule = args.loss_schedule
        self._max_weights = args.max_loss_weights
        self._set_scheduled_values(epoch=0.0, step=0, max_steps=1, args=args)
        train_dataset = kwargs.get("train_dataset")
        self.cached_logits = has_cached_logits(train_dataset)
        if teacher_model is None:
            teacher_model = getattr(args, "teacher_model_name_or_path", None)
        self.teacher_set = TeacherSet(
            teacher_model, model, init_kwargs=getattr(args, "teacher_model_init_kwargs", None),
            revision=getattr(args, "teacher_model_revision", None), ema_momentum=getattr(args, "ema_momentum", 0.999),
            own_inputs=self.teacher_processing_class is not None,
        )
        self._teacher_only_inputs = self.teacher_set.inputs_beyond(model)
        checks.check_teacher_need(args, has_teacher=bool(self.teacher_set), cached_logits=self.cached_logits)
        checks.check_distributed_setup(bool(self.teacher_set), args)
        evaluation = kwargs.get("eval_dataset")
        evaluation = evaluation if isinstance(evaluation, dict) else {"evaluation set": evaluation}
        self._evaluation_sets_at_init = {name: data for name, data in evaluation.items() if data is not None}
        datasets = {"training set": train_dataset, **evaluation}
        if self.teacher_set.own_inputs:
            checks.check_positions(datasets, {"student": model})
            checks.check_positions(datasets, {"teacher": self.teacher}, column=TEACHER_INPUT_COLUMNS[0])
        else:
            checks.check_positions(datasets, {"student": model, "teacher": self.teacher})
        self._setup_student(model, args, train_dataset, kwargs.get("processing_class"))
        heads = self._build_heads(model, args)
        if heads is not None:
            install_heads(model, heads, getattr(args, "distillation_heads_path", None))
        self.distillation_heads = heads
        callbacks = [*(kwargs.pop("callbacks", None) or []), *self._extra_callbacks(args)]
        if self.ema is not None:
            callbacks.append(EmaUpdateCallback(self.ema, lambda: self.accelerator.unwrap_model(self.model)))
        kwargs["callbacks"] = callbacks
        super().__init__(model=model, args=args, **kwargs)
        # Every term is a mean: Trainer divides each micro-batch loss by the accumulation steps.
        self.model_accepts_loss_kwargs = False
        self._window_scale = 1.0
        self._logged_terms: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), dtype=torch.float64))
        self._logged_steps = 0
        self._in_training_step = False
        if self.teacher_set:
            self.teacher_set.prepare(self.accelerator.device)

    # ------------------------------------------------------------------ the teacher

    @property
    def teachers(self) -> list[nn.Module]:
        """Every teacher (an ensemble has several); empty without one."""
        return self.teacher_set.models

    @property
    def teacher(self) -> Optional[nn.Module]:
        """The designated teacher: the only one run for the intermediate-layer terms."""
        return self.teacher_set.first

    @property
    def ema(self):
        """The EMA teacher (`teacher_model="ema"`), else `None`."""
        return self.teacher_set.ema

    # ------------------------------------------------------------------ hooks of the families

    def _setup_student(
        self, model: nn.Module, args: DistillationConfigBase, train_dataset: Any, processing_class: Any = None
    ) -> None:
        """Checks the model and the training set against the config, and prepares the model (before Trainer's init)."""

    def _build_heads(self, model: nn.Module, args: DistillationConfigBase) -> Optional[nn.Module]:
        """The projection heads the terms need, or `None`; the base installs them in the student."""
        return None

    def _extra_callbacks(self, args: DistillationConfigBase) -> list[TrainerCallback]:
        """Callbacks the family adds to the user's."""
        return []

    def _extra_signature_columns(self) -> tuple[str, ...]:
        """Dataset columns to keep although the model's forward does not take them (the collator or the loss does)."""
        return ()

    # ------------------------------------------------------------------ scheduled values and term logs

    def _set_scheduled_values(self, epoch: float, step: int, max_steps: int, args: Any = None) -> None:
        """Sets the current temperature and weights (by term name): the config's, or the schedule's at this point."""
        args = args if args is not None else self.args
        values = args.scheduled_values() if self._schedule is None else self._schedule.values_at(epoch, step, max_steps)
        self._weights = {term.name: float(values[term.weight_field]) for term in args.TERMS}
        self._temperature = float(values["temperature"])

    def _current_values(self, training: bool) -> tuple[dict[str, float], float]:
        """The weights (by term name) and the temperature of this step.

        Without a schedule they are the config's, read at every step; with one, the schedule's at this point
        of training (evaluation keeps the values of the last training step).
        """
        if self._schedule is None or training:
            self._set_scheduled_values(self.state.epoch or 0.0, self.state.global_step, self.state.max_steps)
        return dict(self._weights), self._temperature

    def training_step(self, model, inputs, num_items_in_batch=None):
        self._in_training_step = True
        try:
            loss = super().training_step(model, inputs, num_items_in_batch)
        finally:
            self._in_training_step = False
        if self.accelerator.gradient_state.sync_gradients:
            self._logged_steps += 1
        return loss

    def _record_terms(self, terms: dict[str, torch.Tensor], scales: Optional[dict[str, float]] = None) -> None:
        """Keeps each term's share of the accumulation window's mean for the next log; checks it is finite.

        Args:
            terms (`dict[str, torch.Tensor]`): Unweighted term values of this micro-batch, by log name
                (`"kd"`, `"kd_peer0"`, ...).
            scales (`dict[str, float]`, *optional*): Factor turning a micro-batch mean into its share of the
                window mean times the accumulation steps (`DistillationTrainer`'s exact accumulation); 1 by default.
        """
        if not self._in_training_step:  # evaluation, or a call outside train()
            return
        steps = self.current_gradient_accumulation_steps
        for name, value in terms.items():
            value = value.detach()
            if self.args.stop_on_nonfinite_loss:
                check_finite(name, value, self.state.global_step + 1)
            scale = 1.0 if scales is None else scales.get(name, 1.0)
            share = value.to(torch.float64).cpu() * scale / steps / self._window_scale
            self._logged_terms[name] = self._logged_terms[name] + share

    def log(self, logs: dict[str, float], start_time: Optional[float] = None) -> None:
        """Adds `loss_<term>` (mean over the optimizer steps since the last log) and the scheduled values."""
        if "loss" in logs and self._logged_steps > 0:
            for name, total in self._logged_terms.items():
                value = total / self._logged_steps
                if self.accelerator.num_processes > 1:
                    gathered = self.accelerator.gather(value.to(self.accelerator.device).unsqueeze(0))
                    # Shares are of the global window mean when counts are summed across devices.
                    value = gathered.sum() if self._window_scale > 1 else gathered.mean()
                logs[f"loss_{name}"] = round(float(value), 6)
            self._logged_terms.clear()
            self._logged_steps = 0
            if self._schedule is not None:
                logs["temperature"] = self._temperature
                for term in self.args.TERMS:
                    if term.weight_field in self._schedule.names:
                        logs[term.weight_field] = self._weights[term.name]
        super().log(logs, start_time)

    # ------------------------------------------------------------------ Trainer plumbing

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        extra = [column for column in self._extra_signature_columns() if column not in self._signature_columns]
        self._signature_columns = [*self._signature_columns, *extra]

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

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Trainer's, or the loss alone (`evaluation_loss_only`: batches without labels still get `eval_loss`)."""
        if not self.evaluation_loss_only:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    # ------------------------------------------------------------------ the run folder

    def train(self, resume_from_checkpoint: Union[None, bool, str] = None, trial=None, **kwargs: Any):
        """Trainer's `train`, after the run folder's checks.

        - A new run refuses an `output_dir` that holds a finished run or checkpoints of another run
          (`checks.check_output_dir`); with `overwrite_output_dir` their checkpoints and record are deleted first.
        - A resumed run (`resume_from_checkpoint` a folder, or `True` / `"latest"` for the latest complete
          checkpoint) must resume a checkpoint of the same run: model, teacher, data and loss terms
          (`hf_distill_run.json`, written into the run folder and every checkpoint).
        - The folder must be writable, with room for one checkpoint.
        """
        resume = _resume_value(resume_from_checkpoint)
        if self.is_world_process_zero():
            if not resume and self.args.overwrite_output_dir:
                removed = checks.clear_previous_run(self.args.output_dir)
                if removed:
                    logger.warning("overwrite_output_dir: deleted the earlier run's %s from %s.", ", ".join(removed),
                                   self.args.output_dir)
            checks.check_output_dir(self.args.output_dir, self.args.overwrite_output_dir, resume)
            model = self.accelerator.unwrap_model(self.model)
            saves = str(getattr(self.args.save_strategy, "value", self.args.save_strategy)) != "no"
            checks.check_writable(self.args.output_dir, checks.checkpoint_bytes(
                sum(p.numel() for p in model.parameters()), self.args.save_only_model or not saves))
            for name in os.listdir(self.args.output_dir):  # left by a save that was killed
                if name.startswith(PARTIAL_CHECKPOINT_PREFIX):
                    shutil.rmtree(os.path.join(self.args.output_dir, name), ignore_errors=True)
        fingerprint = self.run_fingerprint()
        if resume:
            self._check_resumed_checkpoint(resume, fingerprint)
        if self.is_world_process_zero():
            with open(os.path.join(self.args.output_dir, RUN_FINGERPRINT_NAME), "w") as file:
                json.dump(fingerprint, file, indent=2)
        return super().train(resume_from_checkpoint=resume, trial=trial, **kwargs)

    def run_fingerprint(self) -> dict[str, Any]:
        """What this run trains, to tell its checkpoints from another run's: the model's shape, the teacher, the
        training data (size and a hash of a few rows) and the loss terms."""
        model = self.accelerator.unwrap_model(self.model)
        parts = model.parts() if isinstance(model, CompositeModel) else {"": model}
        shapes = {folder or ".": {key: getattr(getattr(part, "config", None), key, None)
                                  for key in ("model_type", "num_hidden_layers", "hidden_size", "vocab_size", "num_labels")}
                  for folder, part in parts.items()}
        return {
            "trainer": type(self).__name__,
            "model": shapes,
            "teacher": describe_teacher(self.teacher) if self.ema is None else "ema",
            "data": _dataset_fingerprint(self.train_dataset),
            "terms": {**{name: value for name, value in self._max_weights.items() if value > 0},
                      "temperature": float(self.args.temperature)},
        }

    def _check_resumed_checkpoint(self, resume: Union[bool, str], fingerprint: dict[str, Any]) -> None:
        """Refuses to resume a checkpoint of another run (a different model, teacher, data or loss terms)."""
        from transformers.trainer_utils import get_last_checkpoint

        folder = get_last_checkpoint(self.args.output_dir) if resume is True else resume
        if folder is None:
            raise FileNotFoundError(
                f"resume_from_checkpoint asks for the latest checkpoint, but {self.args.output_dir} has no complete "
                "checkpoint: train without it, or give a checkpoint folder."
            )
        path = os.path.join(folder, RUN_FINGERPRINT_NAME)
        if not os.path.isfile(path):
            logger.warning("%s has no %s (written by an earlier version): it is resumed without checking that it "
                           "belongs to this run.", folder, RUN_FINGERPRINT_NAME)
            return
        with open(path) as file:
            saved = json.load(file)
        differ = [key for key in ("model", "teacher", "data", "terms") if saved.get(key) != fingerprint.get(key)]
        if differ:
            detail = "; ".join(f"{key}: checkpoint {saved.get(key)} vs this run {fingerprint.get(key)}" for key in differ)
            raise ValueError(
                f"The checkpoint {folder} belongs to another run (its {', '.join(differ)} differ: {detail}). Resume "
                "with the same recipe, or train into a new folder without resume_from_checkpoint."
            )

    # ------------------------------------------------------------------ saving and loading

    @contextlib.contextmanager
    def _args_without_token(self):
        """`self.args` without the Hub token while Trainer pickles it into `training_args.bin`."""
        original = self.args
        if original.hub_token is None and getattr(original, "push_to_hub_token", None) is None:
            yield original
            return
        redacted = copy.copy(original)
        redacted.hub_token = None
        redacted.push_to_hub_token = None
        self.args = redacted
        try:
            yield redacted
        finally:
            self.args = original

    def _save(self, output_dir: Optional[str] = None, state_dict=None):
        """Saves the model as users load it (the student alone, or each part), its heads beside it, no token."""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        model = self.accelerator.unwrap_model(self.model)
        with self._args_without_token() as args:
            if isinstance(model, CompositeModel):
                os.makedirs(output_dir, exist_ok=True)
                model.save_parts(output_dir, self.processing_class)
                torch.save(args, os.path.join(output_dir, TRAINING_ARGS_NAME))
                return
            if state_dict is not None:
                state_dict = {k: v for k, v in state_dict.items() if not k.startswith(f"{HEADS_ATTRIBUTE}.")}
            super()._save(output_dir, state_dict=state_dict)
        if self.distillation_heads is not None and self.distillation_heads.has_parameters:
            save_heads(self.distillation_heads, output_dir)

    def _save_checkpoint(self, model, trial):
        """Trainer's checkpoint, written atomically, plus the EMA teacher and the run's fingerprint.

        Trainer writes the checkpoint into `.partial-checkpoint-<step>/`; it becomes `checkpoint-<step>` by one
        rename once every file is written, so a crash, a kill or a full disk never leaves a partial checkpoint
        that resume would pick (`get_last_checkpoint` only sees `checkpoint-<step>`). The EMA teacher's weights
        (when the teacher is an EMA) and `hf_distill_run.json` go into the checkpoint before the rename.
        """
        run_dir = self._get_output_dir(trial=trial)
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        partial_root = os.path.join(run_dir, f"{PARTIAL_CHECKPOINT_PREFIX}{name}")
        partial, final = os.path.join(partial_root, name), os.path.join(run_dir, name)
        self._get_output_dir = lambda trial=None: partial_root  # Trainer writes (and rotates) there
        try:
            super()._save_checkpoint(model, trial)
            if self.args.should_save:
                if self.ema is not None:
                    self.ema.save(partial)
                fingerprint = os.path.join(run_dir, RUN_FINGERPRINT_NAME)
                if os.path.isfile(fingerprint):
                    shutil.copyfile(fingerprint, os.path.join(partial, RUN_FINGERPRINT_NAME))
            self.accelerator.wait_for_everyone()
            if self.args.should_save:
                if os.path.isdir(final):  # a checkpoint of the same step from an interrupted attempt
                    shutil.rmtree(final)
                os.replace(partial, final)
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise OSError(errno.ENOSPC, (
                    f"The disk holding {run_dir} is full: {name} could not be written and was removed, so the latest "
                    f"complete checkpoint is {_latest_checkpoint(run_dir) or 'none'}. Free space, or keep fewer "
                    "checkpoints (save_total_limit)")) from error
            raise
        finally:
            del self._get_output_dir
            if self.args.should_save:
                shutil.rmtree(partial_root, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            if self.state.best_model_checkpoint and self.state.best_model_checkpoint.startswith(partial_root):
                self.state.best_model_checkpoint = final
                self.state.save_to_json(os.path.join(final, "trainer_state.json"))
            compat.rotate_checkpoints(self, run_dir)

    def _load_parts_or_heads(self, folder: str, model: Optional[nn.Module] = None) -> bool:
        """Loads a model made of parts from `folder` (returns `True`), or the heads after Trainer loaded the rest."""
        unwrapped = self.accelerator.unwrap_model(model if model is not None else self.model)
        if isinstance(unwrapped, CompositeModel):
            unwrapped.load_parts(folder)
            return True
        if self.distillation_heads is not None and self.distillation_heads.has_parameters:
            load_heads_into(self.distillation_heads, folder)
        return False

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        unwrapped = self.accelerator.unwrap_model(model if model is not None else self.model)
        if not isinstance(unwrapped, CompositeModel):
            super()._load_from_checkpoint(resume_from_checkpoint, model=model)
        if self.ema is not None:
            self.ema.load(resume_from_checkpoint)
        self._load_parts_or_heads(resume_from_checkpoint, model)

    def _load_best_model(self):
        if not isinstance(self.accelerator.unwrap_model(self.model), CompositeModel):
            super()._load_best_model()
        self._load_parts_or_heads(self.state.best_model_checkpoint)

    # ------------------------------------------------------------------ the run record

    def save_model(self, output_dir: Optional[str] = None, _internal_call: bool = False):
        """Trainer's `save_model`; into `output_dir` it also writes the run record (see `write_run_record`)."""
        super().save_model(output_dir, _internal_call=_internal_call)
        if output_dir is None or os.path.abspath(output_dir) == os.path.abspath(self.args.output_dir):
            self.write_run_record()

    def write_run_record(self) -> None:
        """Writes `results.json` into `output_dir` from what the trainer knows, unless a recipe run wrote its own.

        The record names the teacher (its `name_or_path`), the recipe (the weights of the terms that are on,
        temperature, schedule, training schedule), the training steps and the student's metrics of the last
        `evaluate()`; `hf-distill card` and `create_model_card()` build the card from it. `hf-distill train`
        writes a fuller record (task, data, teacher scores) after its own evaluation, which this never
        overwrites.
        """
        if not self.is_world_process_zero():
            return
        path = os.path.join(self.args.output_dir, RESULTS_NAME)
        if os.path.isfile(path) and read_results(self.args.output_dir).get("recorded_by") != "trainer":
            return
        os.makedirs(self.args.output_dir, exist_ok=True)
        write_results(self.args.output_dir, self.run_record())

    def run_record(self) -> dict[str, Any]:
        """The trainer's `results.json` (see `write_run_record`)."""
        args = self.args
        model = self.accelerator.unwrap_model(self.model)
        parts = model.parts() if isinstance(model, CompositeModel) else {"": model}
        student = next(iter(parts.values()))
        evaluation = next((entry for entry in reversed(self.state.log_history)
                           if any(key.startswith("eval_") for key in entry)), None)
        metrics = {key: value for key, value in (evaluation or {}).items() if key.startswith("eval_")}
        task_metrics = [value for key, value in metrics.items()
                        if key[len("eval_"):] not in _BOOKKEEPING_METRICS and isinstance(value, (int, float))]
        score = sum(task_metrics) / len(task_metrics) if task_metrics else None
        summary = next((entry for entry in reversed(self.state.log_history) if "train_runtime" in entry), {})
        record: dict[str, Any] = {
            "recorded_by": "trainer",
            "trainer": type(self).__name__,
            "recipe_family": self.family or None,
            "task": None,
            "student": describe_model(student, args.output_dir, score=score,
                                      metrics={"eval": metrics} if metrics else {}),
            "train": {**{k: v for k, v in summary.items() if k != "step"}, "global_step": self.state.global_step},
            "recipe": recipe_record(args, **self._recipe_extras()),
            "data": {"train_examples": _size(self.train_dataset),
                     "eval_examples": {"eval": _size(self.eval_dataset)} if _size(self.eval_dataset) else {}},
            "base_model": describe_teacher(self.teacher) if isinstance(self.teacher, PreTrainedModel) else None,
        }
        if isinstance(model, CompositeModel):
            record["parts"] = {folder or ".": describe_model(part, os.path.join(args.output_dir, folder))
                               for folder, part in parts.items()}
        if isinstance(self.teacher, PreTrainedModel) and self.ema is None:
            record["teacher"] = describe_model(self.teacher, describe_teacher(self.teacher), score=None)
            if record["student"]["parameters"]:
                record["compression"] = round(record["teacher"]["parameters"] / record["student"]["parameters"], 2)
        return record

    def _recipe_extras(self) -> dict[str, Any]:
        """The family's own options in the run record's `recipe`."""
        return {}


def _resume_value(value: Union[None, bool, str]) -> Union[None, bool, str]:
    """`resume_from_checkpoint` given to `train()`: `"true"`/`"latest"` is the latest complete checkpoint."""
    if isinstance(value, str) and value.strip().lower() in ("true", "latest"):
        return True
    return value or None


def _latest_checkpoint(run_dir: str) -> Optional[str]:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(run_dir) if os.path.isdir(run_dir) else None


def _dataset_fingerprint(dataset: Any) -> dict[str, Any]:
    """The size of a training set and a hash of its first, middle and last rows (`None` for an iterable set)."""
    import hashlib

    from datasets import Dataset

    size = _size(dataset)
    if not size or not isinstance(dataset, Dataset):  # other datasets may hold objects without a stable text form
        return {"examples": size}
    rows = [dataset[index] for index in sorted({0, size // 2, size - 1})]
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"examples": size, "rows_sha256": digest}


def _size(dataset: Any) -> Optional[int]:
    try:
        return len(dataset) if dataset is not None else None
    except TypeError:  # an iterable dataset
        return None


def _problem_type(config: transformers.PretrainedConfig, labels: torch.Tensor) -> str:
    """The config's `problem_type`, or the one transformers' sequence classifiers infer from the labels."""
    if config.problem_type:
        return config.problem_type
    if config.num_labels == 1:
        return "regression"
    return "multi_label_classification" if labels.is_floating_point() else "single_label_classification"


def _aligned_mask(mask: Optional[torch.Tensor], token_index: torch.Tensor) -> torch.Tensor:
    """The student tokens that have a teacher token (`teacher_token_index` ≥ 0) among the real ones."""
    aligned = (token_index >= 0).long()
    return aligned if mask is None else mask * aligned


def _default_collator(processing_class: Any) -> Any:
    """The collator Trainer would build: padding with the student's tokenizer, else `default_data_collator`."""
    from transformers import DataCollatorWithPadding, default_data_collator

    return DataCollatorWithPadding(processing_class) if hasattr(processing_class, "pad") else default_data_collator


def _count_items(inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Counts the units the task family's terms average over in one micro-batch.

    `examples`, `labelled` (examples with a label: the sequence-level and question-answering task term),
    `labels` (labels ≠ −100: token-level task/kd terms), `tokens` (attention_mask = 1), `pairs` (pairs of
    real tokens), `positions` and `position_pairs` (every padded position, every padded pair: the
    reductions of `reference="tinybert"`).
    """
    input_ids = inputs.get("input_ids")
    mask = inputs.get("attention_mask")
    if mask is None and input_ids is not None:
        mask = torch.ones_like(input_ids)
    if mask is not None and isinstance(inputs.get(TEACHER_TOKEN_INDEX), torch.Tensor):
        mask = _aligned_mask(mask, inputs[TEACHER_TOKEN_INDEX])  # token terms average over the aligned tokens
    counts = {}
    if mask is not None:
        lengths = mask.sum(-1).to(torch.float64)
        counts["examples"] = torch.tensor(float(mask.shape[0]), dtype=torch.float64)
        counts["tokens"] = lengths.sum().cpu()
        counts["pairs"] = lengths.pow(2).sum().cpu()
        counts["positions"] = torch.tensor(float(mask.numel()), dtype=torch.float64)
        counts["position_pairs"] = torch.tensor(float(mask.numel() * mask.shape[-1]), dtype=torch.float64)
    if isinstance(inputs.get("start_positions"), torch.Tensor):
        counts["labelled"] = torch.tensor(float(inputs["start_positions"].shape[0]), dtype=torch.float64)
    labels = inputs.get("labels")
    if isinstance(labels, torch.Tensor):
        if labels.dim() > 1:
            counts["labels"] = (labels != -100).sum().to(torch.float64).cpu()
        else:
            counts["labelled"] = losses.labelled_rows(labels).sum().to(torch.float64).cpu()
        if "examples" not in counts:
            counts["examples"] = torch.tensor(float(labels.shape[0]), dtype=torch.float64)
    return counts


class DistillationTrainer(DistillationTrainerBase):
    """A `Trainer` that trains `model` (the student) against a frozen `teacher_model`: DistilBERT's and TinyBERT's terms.

    A sequence-classification training set may hold examples without a label (class -100 or -1,
    score NaN; `losses.labelled_rows`): they are left out of the task term and take part in every
    teacher term, so a transfer set of unlabelled text trains in the same run as the labelled data.
    Gradient accumulation is exact: each term is the mean over the whole accumulation window of what
    it averages over (`hf_distill.terms`), whatever the micro-batch split and padding.

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
        teacher_processing_class (`PreTrainedTokenizerBase`, *optional*): The teacher's own tokenizer, when it
            tokenizes text differently from the student (`processing_class`); defaults to loading
            `args.teacher_tokenizer_name_or_path`. The datasets then carry the teacher's tokens
            (`hf_distill.add_teacher_inputs`), the collator pads them with this tokenizer, and only the terms
            that work across tokenizers may be on (`checks.check_teacher_tokenizer`).
        **kwargs: Every other `Trainer` argument (`train_dataset`, `eval_dataset`, `data_collator`,
            `processing_class`, `compute_metrics`, `callbacks`, ...), unchanged.
    """

    config_class = DistillationConfig
    family = "task"

    def __init__(
        self,
        model: Optional[PreTrainedModel] = None,
        teacher_model: Union[None, str, PreTrainedModel, list] = None,
        args: Optional[DistillationConfig] = None,
        teacher_processing_class: Any = None,
        **kwargs: Any,
    ):
        tokenizer_path = getattr(args, "teacher_tokenizer_name_or_path", None)
        if teacher_processing_class is None and tokenizer_path:
            teacher_processing_class = load_teacher_tokenizer(tokenizer_path, getattr(args, "teacher_model_revision", None))
        self.teacher_processing_class = teacher_processing_class
        if teacher_processing_class is not None:
            kwargs["data_collator"] = TeacherInputsCollator(
                kwargs.get("data_collator") or _default_collator(kwargs.get("processing_class")), teacher_processing_class)
        self._window_counts: Optional[dict[str, torch.Tensor]] = None
        self._token_level_logits = False
        self._head_kind = head_kind(model)
        self._teacher_scores = self._student_scores = None
        super().__init__(model=model, args=args, teacher_model=teacher_model, **kwargs)
        if self._max_weights["attention_weight"] > 0:
            self._student_scores, self._teacher_scores = AttentionScoreRecorder.pair(model, self.teacher, self.layer_map)
        self._relations: Optional[RelationDistiller] = None
        if self.teacher is not None and any(self._max_weights[f] > 0 for f in RELATION_WEIGHT_FIELDS):
            self._relations = RelationDistiller(model, self.teacher, self._max_weights, args.relation_heads,
                                                args.relation_teacher_layer)

    # ------------------------------------------------------------------ setup

    def _setup_student(self, model, args, train_dataset, processing_class=None) -> None:
        own_tokenizer = self.teacher_processing_class is not None
        checks.check_teacher_tokenizer(args, model, {"training set": train_dataset, **self._evaluation_sets_at_init},
                                       own_tokenizer, live_teacher=bool(self.teachers) and args.needs_teacher)
        for teacher in self.teachers or [None]:
            checks.check_student_and_teacher(model, teacher, args, teacher_has_own_tokenizer=own_tokenizer)
            folder = getattr(getattr(teacher, "config", None), "name_or_path", None)
            if hasattr(processing_class, "get_vocab") and folder and os.path.isdir(folder) and not own_tokenizer:
                checks.check_same_tokenizer(processing_class, folder, "teacher")
        if self.cached_logits and not self.teachers and self._max_weights["kd_weight"] > 0:
            checks.check_cached_logits(model, train_dataset, TEACHER_LOGITS_COLUMN)
        checks.check_train_columns(train_dataset, args, needs_labels=self._max_weights["task_weight"] > 0,
                                   main_input=getattr(model, "main_input_name", "input_ids"))
        if self._max_weights["attention_weight"] > 0:
            checks.check_gradient_checkpointing(args)
        self.layer_map = None
        if self.teacher is not None and (self._max_weights["hidden_weight"] > 0 or self._max_weights["attention_weight"] > 0):
            self.layer_map = resolve_layer_map(
                args.layer_map, self.teacher.config.num_hidden_layers, model.config.num_hidden_layers
            )

    def _build_heads(self, model, args) -> Optional[DistillationHeads]:
        weights = self._max_weights
        if self.teacher is None or not any(
                weights[f] > 0 for f in ("hidden_weight", "embedding_weight", "cosine_weight", "pooled_weight")):
            return None
        return DistillationHeads(
            model.config.hidden_size,
            self.teacher.config.hidden_size,
            model.config.num_hidden_layers,
            hidden=weights["hidden_weight"] > 0,
            embedding=weights["embedding_weight"] > 0,
            cosine=weights["cosine_weight"] > 0,
            per_layer=args.projection == "per_layer",
            share_embedding=args.reference == "tinybert",
            pooled=weights["pooled_weight"] > 0,
        )

    def _extra_signature_columns(self) -> tuple[str, ...]:
        """Keeps the cached teacher logits, and the inputs only the teachers take, when Trainer drops the
        columns the student does not take."""
        return (TEACHER_LOGITS_COLUMN, *self._teacher_only_inputs)

    def _recipe_extras(self) -> dict[str, Any]:
        heads = self.distillation_heads
        return {"kd_loss": self.args.kd_loss, "layer_map": self.layer_map,
                "projection": self.args.projection if heads is not None and heads.has_parameters else None,
                "reference": self.args.reference, "kd_positions": self.args.kd_positions, **self.relation_record(),
                **self.teacher_tokenizer_record()}

    def teacher_tokenizer_record(self) -> dict[str, Any]:
        """The teacher's own tokenizer (for `results.json`), or `{}` when it shares the student's."""
        tokenizer = self.teacher_processing_class
        if tokenizer is None:
            return {}
        return {"teacher_tokenizer": self.args.teacher_tokenizer_name_or_path
                or getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__}

    def relation_record(self) -> dict[str, Any]:
        """The MiniLM relation settings this run uses (for `results.json`), or `{}` without relation terms."""
        relations = self._relations
        if relations is None:
            return {}
        return {"relation_heads": relations.student_heads if relations.vector_terms else None,
                "relation_teacher_layer": relations.teacher_layer}

    # ------------------------------------------------------------------ exact gradient accumulation

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

    def _term_unit(self, term) -> str:
        """What `term` averages over in this run: the term table's unit, or the reference mode's."""
        return REFERENCE_UNITS.get(self.args.reference or "", {}).get(term.name, term.unit)

    def _count_key(self, unit: str, token_level_labels: bool) -> str:
        """Which count of `_count_items` a term's unit (`hf_distill.terms`) is, for this batch."""
        if unit == LABELS:
            return "labels" if token_level_labels else "labelled"
        if unit == LOGIT_ROWS:
            if token_level_labels and self.args.kd_positions == "masked":
                return "labels"
            return "tokens" if self._token_level_logits else "examples"
        return {EXAMPLES: "examples", TOKENS: "tokens", TOKEN_PAIRS: "pairs", POSITIONS: "positions",
                POSITION_PAIRS: "position_pairs"}[unit]

    def _term_scales(self, inputs: dict[str, Any], token_level_labels: bool) -> dict[str, float]:
        """Factor turning each term's micro-batch mean into its share of the window mean.

        ``k · n_mb / N_window`` per term (k = accumulation steps; Trainer divides by k again), so
        summing the micro-batches of a window gives the mean over the whole window, whatever the
        micro-batch split and padding: accumulation is exact.
        """
        if not self.model.training or self._window_counts is None:
            return {term.name: 1.0 for term in self.args.TERMS}
        counts = _count_items(inputs)
        steps = self.current_gradient_accumulation_steps

        def scale(key: str) -> float:
            total = self._window_counts.get(key)
            if key not in counts or total is None or float(total) == 0:
                return 1.0
            return steps * self._window_scale * float(counts[key]) / float(total)

        return {term.name: scale(self._count_key(self._term_unit(term), token_level_labels)) for term in self.args.TERMS}

    # ------------------------------------------------------------------ loss

    def _soft_target_term(
        self,
        logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        temperature: float,
        labels: Optional[torch.Tensor],
        mask: Optional[torch.Tensor],
    ) -> torch.Tensor:
        """The soft-target term for the student's head, in this run's conventions (`reference`, `kd_positions`).

        Question answering: `losses.span_kl_divergence_loss` over the real positions (every padded position
        with `reference="distilbert"`). Token-level heads: the rows with a label (`kd_positions="masked"`) or
        every real token (`"all"`). `reference="tinybert"` with `kd_loss="soft_ce"` reduces as TinyBERT's
        `soft_cross_entropy` (`losses.tinybert_soft_cross_entropy_loss`).
        """
        args = self.args
        if self._head_kind == "span":
            position_mask = None if args.reference == "distilbert" else mask
            return losses.span_kl_divergence_loss(logits, teacher_logits, temperature, position_mask)
        row_mask = None
        if self._token_level_logits:
            token_level_labels = isinstance(labels, torch.Tensor) and labels.dim() > 1
            row_mask = (labels != -100) if token_level_labels and args.kd_positions == "masked" else mask
        tinybert_ce = args.reference == "tinybert" and args.kd_loss == "soft_ce" and logits.shape[-1] > 1
        if tinybert_ce and logits.shape == teacher_logits.shape:
            return losses.tinybert_soft_cross_entropy_loss(logits, teacher_logits, temperature, row_mask)
        return losses.soft_target_loss(logits, teacher_logits, args.kd_loss, temperature, row_mask)  # checks shapes

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
        w, temperature = self._current_values(model.training)
        cached_logits = inputs.pop(TEACHER_LOGITS_COLUMN, None)
        if not self.teachers and cached_logits is None and not model.training:
            # Evaluation on a set without cached logits, and no teacher in memory: no teacher terms.
            w.update({term.name: 0.0 for term in self.args.TERMS if term.needs_teacher})
        need_hidden = any(w[t] > 0 for t in ("hidden", "embedding", "cosine", "pooled"))
        labels = inputs.get("labels")
        # Sequence-level labels with unlabelled examples (class -100/-1, score NaN): the model must not see
        # them (its loss would fail or turn NaN); the task term is computed here over the labelled rows.
        labelled = None
        if isinstance(labels, torch.Tensor) and labels.dim() == 1:
            labelled = losses.labelled_rows(labels)
            if bool(labelled.all()):
                labelled = None
        dropped = set(self._teacher_only_inputs) | ({"labels"} if labelled is not None else set())
        model_inputs = {k: v for k, v in inputs.items() if k not in dropped} if dropped else inputs
        if self.distillation_heads is not None:
            self.distillation_heads.active = True
            self.distillation_heads.projected = {}
        try:
            student_out = model(**model_inputs, output_hidden_states=True) if need_hidden else model(**model_inputs)
        finally:
            if self.distillation_heads is not None:
                self.distillation_heads.active = False
        relations = {name for name in RELATION_TERMS if w[name] > 0} if self._relations is not None else set()
        teacher_logits, teacher_hidden = self.teacher_set.outputs(
            inputs, cached_logits, need_logits=w["kd"] > 0, need_hidden=need_hidden,
            need_scores=w["attention"] > 0 or bool(relations),
            temperature=temperature, kd_loss=self.args.kd_loss, autocast=self.accelerator.autocast(),
        )

        mask = inputs.get("attention_mask")
        logits = head_logits(student_out)
        self._token_level_logits = logits is not None and logits.dim() == 3 and self._head_kind != "span"
        token_level_labels = isinstance(labels, torch.Tensor) and labels.dim() > 1
        terms: dict[str, torch.Tensor] = {}

        if labelled is not None and w["task"] > 0:
            config = self.accelerator.unwrap_model(model).config
            terms["task"] = losses.sequence_task_loss(logits, labels, _problem_type(config, labels), labelled)
        elif w["task"] > 0 or w["mlm"] > 0:
            if getattr(student_out, "loss", None) is None:
                raise ValueError(
                    "task_weight/mlm_weight > 0 but the student returned no loss: the batches need a 'labels' column "
                    "(start_positions and end_positions for question answering)."
                )
            terms["mlm" if checks.is_masked_lm(self.accelerator.unwrap_model(model)) else "task"] = student_out.loss
        if w["kd"] > 0:
            terms["kd"] = self._soft_target_term(logits, teacher_logits, temperature, labels, mask)
        tinybert = self.args.reference == "tinybert"
        if need_hidden:
            projected = self.distillation_heads.projected
            if w["pooled"] > 0:
                teacher_mask = inputs.get("teacher_attention_mask") if self.teacher_set.own_inputs else mask
                terms["pooled"] = losses.pooled_mse_loss(projected["pooled"], teacher_hidden[-1], mask, teacher_mask)
            token_index = inputs.get(TEACHER_TOKEN_INDEX)
            if token_index is not None:  # a teacher with its own tokenizer: its state at each student token
                teacher_hidden = tuple(align_to_student(h, token_index) for h in teacher_hidden)
                mask = _aligned_mask(mask, token_index)
            token_mask = None if tinybert else mask  # TinyBERT's MSELoss() covers the padding too
            if w["cosine"] > 0:
                terms["cosine"] = losses.cosine_hidden_loss(projected["cosine"], teacher_hidden[-1], mask)
            if w["embedding"] > 0:
                terms["embedding"] = losses.hidden_mse_loss(projected["embedding"], teacher_hidden[0], token_mask)
            if w["hidden"] > 0:
                terms["hidden"] = sum(
                    losses.hidden_mse_loss(h_s, teacher_hidden[g], token_mask)
                    for h_s, g in zip(projected["hidden"], self.layer_map)
                )
        if w["attention"] > 0:
            s_scores = self._student_scores.scores()
            t_scores = self._teacher_scores.scores()
            attention_loss = losses.tinybert_attention_loss if tinybert else losses.attention_score_mse_loss
            terms["attention"] = sum(
                attention_loss(a_s, t_scores[g - 1], mask) for a_s, g in zip(s_scores, self.layer_map)
            )
        if self._student_scores is not None:
            self._student_scores.clear()
            self._teacher_scores.clear()
        if self._relations is not None:
            terms.update(self._relations.losses(relations, mask))
            self._relations.clear()

        scales = self._term_scales(inputs, token_level_labels)
        loss = sum(w[term] * value * scales[term] for term, value in terms.items())
        self._record_terms(terms, scales)
        if return_outputs and need_hidden and not model.training:
            # Evaluation gathers every output but the loss as predictions: keep hidden states out of them.
            student_out = type(student_out)(**{k: v for k, v in student_out.items() if k != "hidden_states"})
        return (loss, student_out) if return_outputs else loss
