"""The online teacher: an exponential moving average (EMA) of the student, for self-distillation."""

from __future__ import annotations

import copy
import os

import safetensors.torch
import torch
from torch import nn
from transformers import TrainerCallback

EMA_WEIGHTS_NAME = "ema_teacher.safetensors"


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

    def __init__(self, ema: EmaTeacher, student_getter):
        self.ema = ema
        self.student_getter = student_getter

    def on_step_end(self, args, state, control, **kwargs):
        self.ema.update(self.student_getter())
