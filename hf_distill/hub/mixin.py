"""`HubPublishingMixin`: the `Trainer` overrides that publish a run like `hf-distill push` does.

`DistillationTrainerBase` (and so every family's trainer) has it:

- `push_to_hub` and the pushes at each save (`hub_strategy="every_save"`) upload only
  `upload_plan`'s files, with hf-distill's model card, in one commit each (blocking).
- `hub_strategy="checkpoint"` / `"all_checkpoints"` are refused: they upload checkpoint folders
  with optimizer states and projection heads.
- `create_model_card` writes hf-distill's card from the folder's `results.json`.

The trainer base writes `training_args.bin` without the token (`hub_token`, `push_to_hub_token`), so no
file that training writes holds it.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from typing import Any, Optional

from .push import CONFIG_PATTERNS, PART_FOLDERS, PART_PATTERNS, WEIGHT_PATTERNS, push_to_hub

_MODEL_FILES = WEIGHT_PATTERNS + CONFIG_PATTERNS + PART_PATTERNS


def hub_strategy_name(args: Any) -> str:
    """`args.hub_strategy` as a plain string (an enum in `TrainingArguments`)."""
    return str(getattr(args.hub_strategy, "value", args.hub_strategy))


class HubPublishingMixin:
    """Publishing overrides of `Trainer` (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        training_args = kwargs.get("args")
        if training_args is not None and training_args.push_to_hub and hub_strategy_name(training_args) in (
            "checkpoint", "all_checkpoints"
        ):
            raise ValueError(
                f"hub_strategy={hub_strategy_name(training_args)!r} uploads whole checkpoints (optimizer states, "
                "projection heads): hf-distill publishes the student alone. Use hub_strategy 'every_save' or 'end', "
                "and resume from local checkpoints."
            )
        super().__init__(*args, **kwargs)

    def create_model_card(self, **kwargs: Any) -> None:
        """Writes hf-distill's card (`README.md`) into `output_dir` from its `results.json`.

        Trainer's card arguments in `**kwargs` (`tags`, `dataset`, ...) are not used. When the folder's
        `results.json` was written by the trainer itself (a run of the Python API), it is refreshed first,
        so the card shows the metrics of the last `evaluate()`.
        """
        if not self.is_world_process_zero():
            return
        from .card import write_model_card

        self.write_run_record()
        write_model_card(self.args.output_dir, repo_id=getattr(self, "hub_model_id", None))

    def write_run_record(self) -> None:  # pragma: no cover - implemented by the trainer base
        """Writes the trainer's `results.json` when the folder has none of a recipe run's."""
        raise NotImplementedError

    def _publish(self, commit_message: str, token: Optional[str] = None, revision: Optional[str] = None):
        self.create_model_card()
        return push_to_hub(
            self.args.output_dir, self.hub_model_id, revision=revision or self.args.hub_revision,
            commit_message=commit_message, token=token if token is not None else self.args.hub_token,
            create_repo=False,
        )

    def push_to_hub(self, commit_message: Optional[str] = "End of training", blocking: bool = True,
                    token: Optional[str] = None, revision: Optional[str] = None, **kwargs: Any):
        """Saves the model and uploads the published files with hf-distill's card in one commit.

        Unlike `Trainer.push_to_hub`, the upload always blocks (`blocking` is accepted for compatibility),
        and Trainer's card arguments in `**kwargs` (`tags`, `dataset`, ...) are not used: the card is
        hf-distill's, built from `results.json`.
        """
        token = token if token is not None else self.args.hub_token
        if self.hub_model_id is None:
            self.init_hf_repo(token=token)
        self.save_model(_internal_call=True)
        if not self.is_world_process_zero():
            return None
        self._finish_current_push()
        return self._publish(commit_message or "End of training", token=token, revision=revision)

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        """At each save: copies the model from the checkpoint into output_dir and publishes it (blocking)."""
        if not self.is_world_process_zero() or hub_strategy_name(self.args) == "end":
            return
        for name in os.listdir(checkpoint_folder):
            source = os.path.join(checkpoint_folder, name)
            destination = os.path.join(self.args.output_dir, name)
            if os.path.isfile(source) and any(fnmatch.fnmatch(name, p) for p in _MODEL_FILES):
                shutil.copy(source, destination)
            elif os.path.isdir(source) and any(fnmatch.fnmatch(name, p) for p in PART_FOLDERS.values()):
                shutil.copytree(source, destination, dirs_exist_ok=True)  # the parts of a model made of parts
        if self.processing_class is not None:
            self.processing_class.save_pretrained(self.args.output_dir)
        self._publish(f"Training in progress, step {self.state.global_step}")
