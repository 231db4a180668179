"""Publishing a distilled model to the Hugging Face Hub: `hf-distill push` and `push_to_hub=True`.

What is uploaded is an allow-list (`upload_plan`): the student's weights and config, its tokenizer,
the model card (`README.md`) and `results.json`, and with `include_onnx=True` the files of the
ONNX/INT8 export folder. Everything else in the folder stays local; in particular projection heads
(`distillation_heads.*`), the EMA teacher, `checkpoint-*` folders with optimizer, scheduler and RNG
states, `trainer_state.json`, and `training_args.bin`, which `Trainer` pickles with `hub_token` in
clear text when one was set. The upload is one commit (`HfApi.create_commit`).

The token is whatever `huggingface_hub` finds (the `HF_TOKEN` environment variable or `hf auth login`),
or an explicit `token=` from Python; this module never prints, logs or writes it.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from typing import Any, Optional

from .cards import CARD_NAME, RESULTS_NAME, build_model_card, find_export_report

WEIGHT_PATTERNS = (
    "model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json",
    "pytorch_model.bin", "pytorch_model-*-of-*.bin", "pytorch_model.bin.index.json",
)
CONFIG_PATTERNS = ("config.json", "generation_config.json")
TOKENIZER_PATTERNS = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt",
    "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model",
    "chat_template.jinja", "chat_template.json",
)
PUBLISHED_PATTERNS = WEIGHT_PATTERNS + CONFIG_PATTERNS + TOKENIZER_PATTERNS + (CARD_NAME, RESULTS_NAME)
# Never uploaded, whatever the folder holds, with the reason `--dry-run` prints.
NEVER_UPLOADED = {
    "distillation_heads.*": "projection heads, used in training only",
    "ema_teacher.safetensors": "EMA teacher, used in training only",
    "checkpoint-*": "training checkpoint (optimizer, scheduler and RNG states)",
    "optimizer.pt": "optimizer state",
    "scheduler.pt": "scheduler state",
    "scaler.pt": "mixed-precision scaler state",
    "rng_state*.pth": "RNG state",
    "trainer_state.json": "trainer state",
    "training_args.bin": "pickled TrainingArguments: may hold hub_token in clear text",
    "runs": "TensorBoard logs",
}


@dataclass(frozen=True)
class UploadFile:
    """One file of the commit: where it is on disk and where it goes in the repository."""

    local_path: str
    path_in_repo: str

    @property
    def size(self) -> Optional[int]:
        """Bytes on disk; `None` for a card that a dry run built but did not write."""
        return os.path.getsize(self.local_path) if os.path.isfile(self.local_path) else None


def _never_uploaded(name: str) -> Optional[str]:
    for pattern, reason in NEVER_UPLOADED.items():
        if fnmatch.fnmatch(name, pattern):
            return reason
    return None


def upload_plan(
    model_dir: str, include_onnx: bool = False, export_dir: Optional[str] = None
) -> tuple[list[UploadFile], dict[str, str]]:
    """What `push` uploads from a model folder, and what it leaves out.

    Args:
        model_dir (`str`): The run folder (student, tokenizer, `README.md`, `results.json`).
        include_onnx (`bool`, defaults to `False`): Also upload the export folder's files, under `onnx/`.
        export_dir (`str`, *optional*): The export folder when it is not `<model_dir>/onnx`.

    Returns:
        `tuple[list[UploadFile], dict[str, str]]`: The files to upload, sorted by path in the repository,
        and the folder's other entries with the reason each is left out.

    Raises:
        FileNotFoundError: When the folder holds no model weights or config, or `include_onnx` is set but
            there is no export.
    """
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"{model_dir} is not a folder: give the output_dir of an `hf-distill train` run.")
    files, skipped = [], {}
    for name in sorted(os.listdir(model_dir)):
        path = os.path.join(model_dir, name)
        reason = _never_uploaded(name)
        if reason is None and os.path.isfile(path) and any(fnmatch.fnmatch(name, p) for p in PUBLISHED_PATTERNS):
            files.append(UploadFile(path, name))
        else:
            skipped[name + ("/" if os.path.isdir(path) else "")] = reason or "not part of the published model"
    names = {item.path_in_repo for item in files}
    if "config.json" not in names or not any(any(fnmatch.fnmatch(n, p) for p in WEIGHT_PATTERNS) for n in names):
        raise FileNotFoundError(
            f"{model_dir} holds no model (config.json and model.safetensors): give the output_dir of a finished run."
        )
    report = find_export_report(model_dir, export_dir) if (include_onnx or export_dir) else None
    if include_onnx:
        if report is None:
            raise FileNotFoundError(
                f"--include-onnx: no export_report.json under {model_dir}: run `hf-distill export {model_dir}` first, "
                "or pass the export folder."
            )
        folder = os.path.dirname(report)
        inside = os.path.abspath(folder).startswith(os.path.abspath(model_dir) + os.sep)
        if inside:
            skipped.pop(os.path.relpath(folder, model_dir).split(os.sep)[0] + "/", None)
        for root, dirs, names_in_root in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if _never_uploaded(d) is None)
            for name in sorted(names_in_root):
                if _never_uploaded(name) is None:
                    path = os.path.join(root, name)
                    files.append(UploadFile(path, "onnx/" + os.path.relpath(path, folder).replace(os.sep, "/")))
    return sorted(files, key=lambda item: item.path_in_repo), skipped


def _human_size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"


def format_plan(files: list[UploadFile], skipped: dict[str, str], repo_id: str) -> str:
    """The `--dry-run` listing: each file with its size, then what is left out and why."""
    lines = [f"Would upload {len(files)} files to {repo_id} in one commit:"]
    lines += [f"  {item.path_in_repo}  " + (f"({_human_size(item.size)})" if item.size is not None else
                                            "(model card, built from results.json)") for item in files]
    if skipped:
        lines.append("Not uploaded:")
        lines += [f"  {name}  ({reason})" for name, reason in skipped.items()]
    return "\n".join(lines)


def _check_token(token: Optional[str]) -> None:
    from huggingface_hub import get_token

    if token is None and get_token() is None:
        raise PermissionError(
            "No Hugging Face token found: run `hf auth login` (or `huggingface-cli login`) or set the HF_TOKEN "
            "environment variable to a token with write access."
        )


def push_to_hub(
    model_dir: str,
    repo_id: str,
    private: bool = False,
    revision: Optional[str] = None,
    include_onnx: bool = False,
    export_dir: Optional[str] = None,
    commit_message: Optional[str] = None,
    dry_run: bool = False,
    token: Optional[str] = None,
    license: Optional[str] = None,
    base_model: Optional[str] = None,
    create_repo: bool = True,
) -> Any:
    """Uploads a run folder's published files to a Hub model repository in one commit.

    When the folder has a `results.json`, the model card is rebuilt for `repo_id` first and written to
    `<model_dir>/README.md` (in a dry run it is only built), so the uploaded card is the local one.

    Args:
        model_dir (`str`): The run folder.
        repo_id (`str`): `user/name` or `org/name`.
        private (`bool`, defaults to `False`): Create the repository private (an existing one keeps its
            visibility).
        revision (`str`, *optional*): Branch to commit to; created from `main` when missing.
        include_onnx (`bool`, defaults to `False`): Upload the ONNX/INT8 export too, under `onnx/`.
        export_dir (`str`, *optional*): The export folder when it is not `<model_dir>/onnx`.
        commit_message (`str`, *optional*): Defaults to "Upload distilled model with hf-distill".
        dry_run (`bool`, defaults to `False`): Only return what would be uploaded; nothing is sent or written.
        token (`str`, *optional*): A token; by default `huggingface_hub`'s own (HF_TOKEN or the saved login).
        license (`str`, *optional*): License id for the card's metadata.
        base_model (`str`, *optional*): Hub id of the teacher for the card, when the run used a local folder.
        create_repo (`bool`, defaults to `True`): Create the repository when it does not exist.

    Returns:
        The `CommitInfo` of the commit, or for a dry run the tuple `(files, skipped)` of `upload_plan`.
    """
    has_results = os.path.isfile(os.path.join(model_dir, RESULTS_NAME))
    card = None
    if has_results:
        card = build_model_card(model_dir, repo_id=repo_id, license=license, base_model=base_model,
                                export_dir=export_dir, include_onnx=include_onnx)
    elif not os.path.isfile(os.path.join(model_dir, CARD_NAME)):
        raise FileNotFoundError(
            f"{model_dir} has neither results.json nor README.md: a model is published with its card. Push the "
            "output_dir of an `hf-distill train` run, or write a README.md."
        )
    files, skipped = upload_plan(model_dir, include_onnx=include_onnx, export_dir=export_dir)
    if card is not None and CARD_NAME not in {item.path_in_repo for item in files}:
        files = sorted([*files, UploadFile(os.path.join(model_dir, CARD_NAME), CARD_NAME)], key=lambda f: f.path_in_repo)
    if dry_run:
        return files, skipped
    _check_token(token)
    if card is not None:
        card.save(os.path.join(model_dir, CARD_NAME))

    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(token=token)
    if create_repo:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    if revision is not None:
        api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
    operations = [CommitOperationAdd(path_in_repo=item.path_in_repo, path_or_fileobj=item.local_path) for item in files]
    return api.create_commit(
        repo_id,
        operations=operations,
        commit_message=commit_message or "Upload distilled model with hf-distill",
        repo_type="model",
        revision=revision,
    )


def push_parser():
    """The options of `hf-distill push`."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="hf-distill push",
        description="Upload a run folder to a Hub model repository in one commit: weights, config, tokenizer, the "
        "model card (rebuilt for the repository) and results.json; with --include-onnx the ONNX/INT8 export too. "
        "Projection heads, the EMA teacher, checkpoints, optimizer states and training_args.bin stay local. The "
        "token comes from HF_TOKEN or `hf auth login` and is never printed.",
    )
    parser.add_argument("output_dir", help="The run's output_dir.")
    parser.add_argument("--repo-id", required=True, help="user/name or org/name of the model repository.")
    parser.add_argument("--private", action="store_true", help="Create the repository private.")
    parser.add_argument("--revision", help="Branch to commit to (created from main when missing).")
    parser.add_argument("--include-onnx", action="store_true", help="Also upload the ONNX/INT8 export, under onnx/.")
    parser.add_argument("--export-dir", help="The export folder, when it is not OUTPUT_DIR/onnx.")
    parser.add_argument("--license", help="License id for the card's metadata.")
    parser.add_argument("--base-model", help="Hub id of the teacher, when the run used a local teacher folder.")
    parser.add_argument("--commit-message", help="Commit message.")
    parser.add_argument("--dry-run", action="store_true", help="List what would be uploaded; send and write nothing.")
    return parser


def push_command(argv) -> int:
    """`hf-distill push OUTPUT_DIR --repo-id NAME`; exit status 2 on a bad folder or a missing token."""
    import sys

    options = push_parser().parse_args(argv)
    try:
        result = push_to_hub(
            options.output_dir, options.repo_id, private=options.private, revision=options.revision,
            include_onnx=options.include_onnx, export_dir=options.export_dir, commit_message=options.commit_message,
            dry_run=options.dry_run, license=options.license, base_model=options.base_model,
        )
    except (FileNotFoundError, PermissionError, ValueError) as error:
        print(f"hf-distill push: error: {error}", file=sys.stderr)
        return 2
    if options.dry_run:
        print(format_plan(*result, repo_id=options.repo_id))
    else:
        print(f"Uploaded {options.output_dir} to {getattr(result, 'commit_url', options.repo_id)}")
    return 0


class HubPublishingMixin:
    """`Trainer` overrides that publish like `hf-distill push` when `push_to_hub=True`.

    - `push_to_hub` and the pushes at each save (`hub_strategy="every_save"`) upload only
      `upload_plan`'s files, with hf-distill's model card, in one commit each (blocking).
    - `hub_strategy="checkpoint"` / `"all_checkpoints"` are refused: they upload checkpoint folders
      with optimizer states and projection heads.
    - `training_args.bin` is written with `hub_token` and `push_to_hub_token` removed, so no file that
      training writes holds the token.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        training_args = kwargs.get("args")
        if training_args is not None and training_args.push_to_hub and str(
            getattr(training_args.hub_strategy, "value", training_args.hub_strategy)
        ) in ("checkpoint", "all_checkpoints"):
            raise ValueError(
                f"hub_strategy={training_args.hub_strategy.value!r} uploads whole checkpoints (optimizer states, "
                "projection heads): hf-distill publishes the student alone. Use hub_strategy 'every_save' or 'end', "
                "and resume from local checkpoints."
            )
        super().__init__(*args, **kwargs)

    def _save(self, output_dir: Optional[str] = None, state_dict=None):
        super()._save(output_dir, state_dict=state_dict)
        if self.args.hub_token is not None or getattr(self.args, "push_to_hub_token", None) is not None:
            import copy

            import torch
            from transformers.trainer import TRAINING_ARGS_NAME

            redacted = copy.copy(self.args)
            redacted.hub_token = None
            redacted.push_to_hub_token = None
            folder = output_dir if output_dir is not None else self.args.output_dir
            torch.save(redacted, os.path.join(folder, TRAINING_ARGS_NAME))

    def create_model_card(self, **kwargs: Any) -> None:
        """Writes hf-distill's card: from `results.json` when the folder has one, else from the trainer."""
        if not self.is_world_process_zero():
            return
        from .cards import results_from_trainer, write_model_card

        has_results = os.path.isfile(os.path.join(self.args.output_dir, RESULTS_NAME))
        write_model_card(self.args.output_dir, repo_id=getattr(self, "hub_model_id", None),
                         results=None if has_results else results_from_trainer(self))

    def _publish(self, commit_message: str, token: Optional[str] = None, revision: Optional[str] = None):
        self.create_model_card()
        return push_to_hub(
            self.args.output_dir, self.hub_model_id, revision=revision or self.args.hub_revision,
            commit_message=commit_message, token=token if token is not None else self.args.hub_token,
            create_repo=False,
        )

    def push_to_hub(self, commit_message: Optional[str] = "End of training", blocking: bool = True,
                    token: Optional[str] = None, revision: Optional[str] = None, **kwargs: Any):
        """Saves the student and uploads the published files with hf-distill's card in one commit.

        Unlike `Trainer.push_to_hub`, the upload always blocks (`blocking` is accepted for compatibility),
        and Trainer's card arguments in `**kwargs` (`tags`, `dataset`, ...) are not used: the card is
        hf-distill's, built from `results.json` when the output folder has one.
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
        """At each save: copies the student from the checkpoint into output_dir and publishes it (blocking)."""
        import shutil

        if not self.is_world_process_zero() or str(getattr(self.args.hub_strategy, "value", "")) == "end":
            return
        for name in os.listdir(checkpoint_folder):
            if any(fnmatch.fnmatch(name, p) for p in WEIGHT_PATTERNS + CONFIG_PATTERNS):
                shutil.copy(os.path.join(checkpoint_folder, name), os.path.join(self.args.output_dir, name))
        if self.processing_class is not None:
            self.processing_class.save_pretrained(self.args.output_dir)
        self._publish(f"Training in progress, step {self.state.global_step}")
