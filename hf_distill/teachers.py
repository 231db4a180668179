"""The teacher side of a distillation: which teachers, their outputs for a batch, cached outputs, EMA.

The teacher belongs to the trainer, never to the model: frozen, in eval mode, never in the optimizer,
never wrapped by DDP, never saved. `TeacherSet` puts every kind of teacher behind one small interface
("give me the teacher's outputs for this batch"):

- one model, or a path/Hub id loaded safely (`hf_distill.modeling.load_teacher`);
- an ensemble (a list): the soft targets are the mean of the teachers' probabilities at temperature T
  (`losses.ensemble_teacher_logits`); intermediate-layer terms use the first teacher;
- `"ema"`: an online teacher, an exponential moving average of the student (`EmaTeacher`);
- none, when the training set carries the teacher's logits as a column (`precompute_teacher_outputs`).
"""

from __future__ import annotations

import copy
import inspect
import os
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Callable, Optional, Sequence, Union

import safetensors.torch
import torch
from torch import nn
from transformers import PreTrainedModel, TrainerCallback

from . import losses
from .modeling import load_teacher
from .task_heads import LABEL_KEYS, head_logits
from .teacher_inputs import TEACHER_INPUT_COLUMNS, TEACHER_PREFIX, TEACHER_TOKEN_INDEX, teacher_view

TEACHER_LOGITS_COLUMN = "teacher_logits"
EMA_WEIGHTS_NAME = "ema_teacher.safetensors"

TeacherSpec = Union[None, str, nn.Module, Sequence[Union[str, nn.Module]]]


class EmaTeacher:
    """A frozen copy of the student whose weights follow the student's as an EMA.

    After each optimizer step, for every parameter: ``θ_t ← m·θ_t + (1 − m)·θ_s`` (Polyak averaging,
    the "mean teacher" of Tarvainen & Valpola, 2017); buffers are copied. The copy is made before the
    trainer attaches projection heads to the student, so the teacher has none.

    Args:
        student (`nn.Module`): The student, copied now.
        momentum (`float`, defaults to 0.999): ``m``, in [0, 1).
    """

    def __init__(self, student: nn.Module, momentum: float = 0.999):
        self.model = copy.deepcopy(student)
        self.model.requires_grad_(False)
        self.model.eval()
        self.momentum = momentum

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        """One EMA step towards `student`'s current weights (parameters the teacher lacks are skipped)."""
        student_params = dict(student.named_parameters())
        for name, teacher_param in self.model.named_parameters():
            source = student_params.get(name)
            if source is not None:
                teacher_param.mul_(self.momentum).add_(source.detach().to(teacher_param.dtype), alpha=1 - self.momentum)
        student_buffers = dict(student.named_buffers())
        for name, buffer in self.model.named_buffers():
            if name in student_buffers:
                buffer.copy_(student_buffers[name])

    def save(self, folder: str) -> None:
        """Writes the EMA weights to `folder/ema_teacher.safetensors` (checkpoints only).

        `safetensors.torch.save_model` keeps one copy of tied weights (e.g. MLM decoder/embeddings).
        """
        safetensors.torch.save_model(self.model, os.path.join(folder, EMA_WEIGHTS_NAME), metadata={"format": "pt"})

    def load(self, folder: str) -> None:
        """Restores the EMA weights from a checkpoint folder.

        Raises:
            FileNotFoundError: When the folder has no EMA file: resuming would restart the teacher
                from the student, silently changing the run.
        """
        path = os.path.join(folder, EMA_WEIGHTS_NAME)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"No EMA teacher at {path}: this run's teacher is an EMA of the student, and the checkpoint does "
                "not hold it. Resume from a checkpoint written by DistillationTrainer with teacher_model='ema'."
            )
        safetensors.torch.load_model(self.model, path, strict=True)


class EmaUpdateCallback(TrainerCallback):
    """Moves the EMA teacher after every optimizer step (Trainer calls `on_step_end` right after it)."""

    def __init__(self, ema: EmaTeacher, student_getter: Callable[[], nn.Module]):
        self.ema = ema
        self.student_getter = student_getter

    def on_step_end(self, args, state, control, **kwargs):
        self.ema.update(self.student_getter())


class TeacherSet:
    """The trainer's teachers: one, several (an ensemble), an EMA of the student, or none.

    Args:
        teacher_model (`PreTrainedModel`, `str`, `list` or `"ema"`, *optional*): What the user gave (see the
            module docstring). Paths and Hub ids are loaded with the auto class of the student's head.
        student (`nn.Module`): The student (its head picks the teacher's auto class; the EMA copies it).
        init_kwargs (`dict`, *optional*): `from_pretrained` options for teachers given by path.
        revision (`str`, *optional*): Hub revision of teachers given by path.
        ema_momentum (`float`, defaults to 0.999): The EMA teacher's momentum.
        own_inputs (`bool`, defaults to `False`): The teachers have their own tokenizer: they read the batch's
            `teacher_input_ids`, `teacher_attention_mask` and `teacher_token_type_ids` (`hf_distill.teacher_inputs`)
            instead of the student's inputs.

    Raises:
        ValueError: For an empty list, or an EMA teacher with inputs of its own (it is a copy of the student).
    """

    def __init__(
        self,
        teacher_model: TeacherSpec,
        student: nn.Module,
        init_kwargs: Optional[dict[str, Any]] = None,
        revision: Optional[str] = None,
        ema_momentum: float = 0.999,
        own_inputs: bool = False,
    ):
        self.ema: Optional[EmaTeacher] = None
        self.own_inputs = own_inputs
        if own_inputs and isinstance(teacher_model, str) and teacher_model == "ema":
            raise ValueError("An EMA teacher is a copy of the student and reads the student's tokens: drop the "
                             "teacher tokenizer (teacher_tokenizer_name_or_path / teacher_processing_class).")
        if isinstance(teacher_model, str) and teacher_model == "ema":
            self.ema = EmaTeacher(student, ema_momentum)  # before projection heads are attached to the student
            models = [self.ema.model]
        elif isinstance(teacher_model, (list, tuple)):
            if not teacher_model:
                raise ValueError("teacher_model=[] is empty: pass one or more teachers, or None for a baseline.")
            models = [load_teacher(t, student, init_kwargs, revision) if isinstance(t, str) else t for t in teacher_model]
        elif teacher_model is None:
            models = []
        else:
            models = [load_teacher(teacher_model, student, init_kwargs, revision)
                      if isinstance(teacher_model, str) else teacher_model]
        self.models: list[nn.Module] = models
        self._input_names = [set(inspect.signature(model.forward).parameters) for model in models]

    def __bool__(self) -> bool:
        return bool(self.models)

    def inputs_beyond(self, student: nn.Module) -> tuple[str, ...]:
        """Model inputs a teacher's forward takes and the student's does not (e.g. a BERT teacher's
        `token_type_ids` beside a DistilBERT student), or the teacher's own columns (`own_inputs`): Trainer must
        keep these dataset columns, and the student must not be given them."""
        if self.own_inputs:
            return (*TEACHER_INPUT_COLUMNS, TEACHER_TOKEN_INDEX)
        student_names = set(inspect.signature(student.forward).parameters)
        wanted = {"input_ids", "attention_mask", "token_type_ids", "position_ids", "pixel_values", "input_features"}
        return tuple(sorted(name for names in self._input_names for name in names
                            if name in wanted and name not in student_names))

    def __len__(self) -> int:
        return len(self.models)

    @property
    def first(self) -> Optional[nn.Module]:
        """The designated teacher: the only one run for the intermediate-layer terms."""
        return self.models[0] if self.models else None

    def prepare(self, device: torch.device) -> None:
        """Freezes every teacher, puts it in eval mode and on `device`."""
        for model in self.models:
            model.requires_grad_(False)
            model.eval()
            model.to(device)

    def forward(
        self,
        inputs: dict[str, Any],
        indices: Sequence[int],
        output_hidden_states: bool = False,
        autocast: Optional[AbstractContextManager] = None,
    ) -> dict[int, Any]:
        """Runs the teachers `indices` on a batch (each gets the inputs its forward takes, never the labels; with
        `own_inputs`, the batch's `teacher_*` columns under the usual names).

        Returns:
            `dict[int, ModelOutput]`: The outputs by teacher index. Hidden states are asked of the first
            teacher only.
        """
        outputs = {}
        if self.own_inputs:
            inputs = teacher_view(inputs)
        with torch.no_grad(), (autocast if autocast is not None else nullcontext()):
            for index in indices:
                model = self.models[index]
                model.eval()
                kwargs = {k: v for k, v in inputs.items() if k not in LABEL_KEYS and k in self._input_names[index]}
                if index == 0 and output_hidden_states:
                    kwargs["output_hidden_states"] = True
                outputs[index] = model(**kwargs)
        return outputs

    def outputs(
        self,
        inputs: dict[str, Any],
        cached_logits: Optional[torch.Tensor],
        need_logits: bool,
        need_hidden: bool,
        need_scores: bool,
        temperature: float,
        kd_loss: str = "kl",
        autocast: Optional[AbstractContextManager] = None,
    ) -> tuple[Optional[torch.Tensor], Optional[tuple[torch.Tensor, ...]]]:
        """The teacher logits and hidden states a step needs, running as few teachers as possible.

        Logits come from the cached column when the batch has it, otherwise from the teachers: one
        teacher's logits, or the ensemble's (`losses.ensemble_teacher_logits`: mean probabilities at
        T, or mean prediction for regression and `kd_loss="mse"`). Hidden states and attention scores
        (recorded by hooks during this forward) come from the first teacher alone.

        Raises:
            ValueError: When the batch needs a teacher output and there is neither a teacher nor a cached column.
        """
        need_live_logits = need_logits and cached_logits is None
        if (need_live_logits or need_hidden or need_scores) and not self.models:
            raise ValueError(
                f"This batch has no {TEACHER_LOGITS_COLUMN!r} column and the trainer has no teacher: precompute "
                "the column for every training example (precompute_teacher_outputs), or pass teacher_model."
            )
        run = [i for i in range(len(self.models)) if need_live_logits or (i == 0 and (need_hidden or need_scores))]
        outputs = self.forward(inputs, run, output_hidden_states=need_hidden, autocast=autocast)
        hidden = outputs[0].hidden_states if need_hidden else None
        if not need_logits:
            return None, hidden
        if cached_logits is not None:
            return cached_logits.float(), hidden
        if len(self.models) == 1:
            return head_logits(outputs[0]), hidden
        all_logits = [head_logits(outputs[i]) for i in range(len(self.models))]
        average = "logits" if all_logits[0].shape[-1] == 1 or kd_loss == "mse" else "probabilities"
        return losses.ensemble_teacher_logits(all_logits, temperature, average), hidden


@torch.no_grad()
def precompute_teacher_outputs(
    teacher: nn.Module,
    dataset: Any,
    batch_size: int = 64,
    data_collator: Optional[Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]] = None,
    tokenizer: Any = None,
    device: Optional[torch.device | str] = None,
    column: str = TEACHER_LOGITS_COLUMN,
) -> Any:
    """Adds the teacher's logits to `dataset` as a column, for a trainer without a teacher.

    The teacher runs once, in eval mode (dropout off) and in float32, so a trainer given the
    returned dataset and no teacher computes the same soft-target loss as one running the teacher
    live. Each row gets `num_labels` floats (4 bytes each, held by the Arrow table; save it with
    `dataset.save_to_disk` to reuse it across runs). Only sequence-level heads (classification and
    regression) are cached: token-level logits (masked LM, token classification) are
    `sequence length × classes` floats a row, and intermediate-layer losses (cosine, hidden,
    embedding, attention) still need the live teacher.

    Args:
        teacher (`nn.Module`): The teacher, e.g. an `*ForSequenceClassification` model.
        dataset (`datasets.Dataset`): Tokenized examples (`input_ids`, `attention_mask`, ...). When it has the
            teacher's own tokens (`teacher_input_ids`, ...: a teacher with its own tokenizer), the teacher reads
            those, and the default collator pads them with `tokenizer` (give the teacher's).
        batch_size (`int`, defaults to 64): Examples per teacher forward.
        data_collator (`Callable`, *optional*): Builds a batch from rows; defaults to
            `DataCollatorWithPadding(tokenizer)`, or right-padding with 0 when no tokenizer is given.
        tokenizer (`PreTrainedTokenizerBase`, *optional*): For the default collator.
        device (`torch.device` or `str`, *optional*): Where to run the teacher; defaults to where it is.
        column (`str`, defaults to `"teacher_logits"`): Name of the new column.

    Returns:
        `datasets.Dataset`: `dataset` with the new column (same rows, same order).

    Raises:
        ValueError: When `dataset` already has the column, or the teacher's logits are token-level.
    """
    from datasets import Sequence as SequenceFeature
    from datasets import Value
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding

    if column in dataset.column_names:
        raise ValueError(f"The dataset already has a {column!r} column: remove it first, or pass another column=.")
    was_training = teacher.training
    teacher.eval()
    device = torch.device(device) if device is not None else next(teacher.parameters()).device
    own = TEACHER_INPUT_COLUMNS[0] in dataset.column_names
    columns = TEACHER_INPUT_COLUMNS if own else ("input_ids", "attention_mask", "token_type_ids")
    inputs_only = dataset.select_columns([name for name in columns if name in dataset.column_names])
    if own:
        inputs_only = inputs_only.rename_columns({name: name[len(TEACHER_PREFIX):] for name in inputs_only.column_names})
    input_names = inputs_only.column_names
    collate = data_collator or (DataCollatorWithPadding(tokenizer) if tokenizer is not None else _pad_right)
    rows: list[list[float]] = []
    try:
        for batch in DataLoader(inputs_only, batch_size=batch_size, shuffle=False, collate_fn=collate):
            batch = {k: v.to(device) for k, v in batch.items() if k in input_names}
            logits = head_logits(teacher(**batch))
            if logits is None or logits.dim() != 2:
                shape = "none" if logits is None else f"shape {tuple(logits.shape)}"
                raise ValueError(
                    f"The teacher's logits have {shape}: only sequence-level heads (batch, num_labels) are "
                    "cached. Run token-level and question-answering teachers live."
                )
            rows.extend(logits.float().cpu().tolist())
    finally:
        teacher.train(was_training)
    return dataset.add_column(column, rows, feature=SequenceFeature(Value("float32")))


def _pad_right(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    length = max(len(f["input_ids"]) for f in features)
    return {
        key: torch.tensor([list(f[key]) + [0] * (length - len(f[key])) for f in features])
        for key in features[0]
    }


def has_cached_logits(dataset: Any) -> bool:
    """Whether a dataset carries the teacher's logits (`precompute_teacher_outputs`)."""
    return TEACHER_LOGITS_COLUMN in (getattr(dataset, "column_names", None) or [])


def describe_teacher(teacher: Optional[nn.Module]) -> Optional[str]:
    """What a run record calls the teacher: its `name_or_path` (a Hub id or a folder), or its class."""
    if teacher is None:
        return None
    if isinstance(teacher, PreTrainedModel):
        name = getattr(teacher.config, "name_or_path", None) or getattr(teacher, "name_or_path", None)
        if name:
            return str(name)
    return type(teacher).__name__
