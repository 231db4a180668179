"""What the mutual-learning and self-distillation trainers share: a wrapper module, its saving, schedules, logs.

Both train one `nn.Module` that holds several parts (the peers; the backbone and its exit heads),
so `Trainer`'s optimizer, DDP, mixed precision and checkpoints see a single model. Saving is the
wrapper's own (`save_parts` / `load_parts`): every part in a folder (or file) of its own that loads
without hf-distill, in the final output and in every checkpoint, and resume reloads every part.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any, Optional

import torch
from torch import nn
from transformers import Trainer
from transformers.trainer import TRAINING_ARGS_NAME


class CompositeModel(nn.Module):
    """A module made of parts that are saved separately (see `save_parts` and `load_parts`)."""

    def save_parts(self, output_dir: str, processing_class: Any = None) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def load_parts(self, folder: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class CompositeModelTrainer(Trainer):
    """A `Trainer` for a `CompositeModel`: loss weights (optionally scheduled), per-term logs, part-wise saving.

    Subclasses implement `compute_loss` and call `_current_values()` for the temperature and
    weights of this step and `_record(terms)` for the logs.
    """

    def __init__(self, model: CompositeModel, args: Any, weight_names: tuple[str, ...], **kwargs: Any):
        self._weight_names = weight_names
        self._schedule = args.loss_schedule
        super().__init__(model=model, args=args, **kwargs)
        # Our losses are means over the micro-batch: Trainer divides them by the accumulation steps.
        self.model_accepts_loss_kwargs = False
        self._logged_terms: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), dtype=torch.float64))
        self._logged_count = 0

    # ------------------------------------------------------------------ loss values and logs

    def _current_values(self, training: bool) -> dict[str, float]:
        """`temperature` and every weight at this point of training (the schedule's, or the config's)."""
        if training and self._schedule is not None:
            values = self._schedule.values_at(self.state.epoch or 0.0, self.state.global_step, self.state.max_steps)
        else:
            values = {name: getattr(self.args, name) for name in ("temperature", *self._weight_names)}
        self._values = {name: float(values[name]) for name in ("temperature", *self._weight_names)}
        return self._values

    def _record(self, terms: dict[str, torch.Tensor], training: bool) -> None:
        """Keeps each term's value (per micro-batch) for the next training log; checks it is finite."""
        if not training:
            return
        for name, value in terms.items():
            value = value.detach().to(torch.float64).cpu()
            if not torch.isfinite(value):
                raise FloatingPointError(
                    f"The {name} loss is {value.item()} at step {self.state.global_step + 1}. Training stopped; "
                    "the last saved checkpoint is untouched. Lower the learning rate or check the inputs."
                )
            self._logged_terms[name] = self._logged_terms[name] + value
        self._logged_count += 1

    def log(self, logs: dict[str, float], start_time: Optional[float] = None) -> None:
        """Adds `loss_<term>` (mean over the micro-batches since the last log) to training logs."""
        if "loss" in logs and self._logged_count > 0:
            for name, total in self._logged_terms.items():
                value = total / self._logged_count
                if self.accelerator.num_processes > 1:
                    value = self.accelerator.gather(value.to(self.accelerator.device).unsqueeze(0)).mean()
                logs[f"loss_{name}"] = round(float(value), 6)
            if self._schedule is not None:
                logs.update({name: self._values[name] for name in self._schedule.names})
            self._logged_terms.clear()
            self._logged_count = 0
        super().log(logs, start_time)

    # ------------------------------------------------------------------ saving and loading

    def _save(self, output_dir: Optional[str] = None, state_dict=None):
        """Saves every part of the model in its own loadable form (see the model's `save_parts`)."""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        os.makedirs(output_dir, exist_ok=True)
        self.accelerator.unwrap_model(self.model).save_parts(output_dir, self.processing_class)
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        model = model if model is not None else self.model
        self.accelerator.unwrap_model(model).load_parts(resume_from_checkpoint)

    def _load_best_model(self):
        self.accelerator.unwrap_model(self.model).load_parts(self.state.best_model_checkpoint)
