"""Publishing a run folder to the Hugging Face Hub: what `hf-distill push` and `push_to_hub=True` upload.

What is uploaded is an allow-list (`upload_plan`): the student's weights and config, its tokenizer,
the model card (`README.md`) and `results.json`, and with `include_export=True` the files of every export
folder (the ONNX Runtime one under `onnx/`, the OpenVINO one under `openvino/`, and `benchmark_report.json`), or
with `include_onnx=True` those of the ONNX/INT8 export only. A run of models made of parts publishes its parts the same way: every peer
folder of a mutual-learning run (`peer_<i>/`, with `mutual_learning.json`), and the exit heads of a
self-distillation run (`early_exit_heads.safetensors`, `early_exit.json`, the early-exit curve). Everything else in the folder stays local; in particular projection heads
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

from ..runs import RESULTS_NAME
from .card import CARD_NAME, REPO_EXPORT_FOLDERS, build_model_card, find_export_reports

BENCHMARK_NAME = "benchmark_report.json"
"""What `hf-distill benchmark` writes into the model folder; published with `include_export=True`."""

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
# The files of models made of parts (`hf_distill.modeling.CompositeModel`): the early exits of a
# self-distillation run, the layout file of a mutual-learning run (its peers are folders, see `PART_FOLDERS`).
PART_PATTERNS = ("early_exit_heads.safetensors", "early_exit.json", "early_exit_curve.json", "early_exit_curve.png",
                 "mutual_learning.json")
PART_FOLDERS = {"mutual_learning.json": "peer_*"}
"""A layout file, and the folders it makes part of the published model."""
PUBLISHED_PATTERNS = WEIGHT_PATTERNS + CONFIG_PATTERNS + TOKENIZER_PATTERNS + PART_PATTERNS + (CARD_NAME, RESULTS_NAME)
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


def _is_published(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in PUBLISHED_PATTERNS)


def upload_plan(
    model_dir: str, include_onnx: bool = False, export_dir: Optional[str] = None, include_export: bool = False
) -> tuple[list[UploadFile], dict[str, str]]:
    """What `push` uploads from a model folder, and what it leaves out.

    Args:
        model_dir (`str`): The run folder (student, tokenizer, `README.md`, `results.json`).
        include_onnx (`bool`, defaults to `False`): Also upload the ONNX export folder's files, under `onnx/`.
        export_dir (`str`, *optional*): The export folder when it is not in `<model_dir>` (`onnx/`, `openvino/`).
        include_export (`bool`, defaults to `False`): Also upload every export folder's files: the ONNX Runtime
            export under `onnx/`, the OpenVINO export under `openvino/`, and `benchmark_report.json`.

    Returns:
        `tuple[list[UploadFile], dict[str, str]]`: The files to upload, sorted by path in the repository,
        and the folder's other entries with the reason each is left out.

    Raises:
        FileNotFoundError: When the folder holds no model weights or config, or `include_onnx` /
            `include_export` is set but there is no such export.
    """
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"{model_dir} is not a folder: give the output_dir of an `hf-distill train` run.")
    part_folders = [pattern for layout, pattern in PART_FOLDERS.items() if os.path.isfile(os.path.join(model_dir, layout))]
    files, skipped = [], {}
    models = []  # the published file names of each model in the folder: the peers', then the top level's
    for name in sorted(os.listdir(model_dir)):
        path = os.path.join(model_dir, name)
        reason = _never_uploaded(name)
        if reason is None and os.path.isfile(path) and _is_published(name):
            files.append(UploadFile(path, name))
        elif reason is None and os.path.isdir(path) and any(fnmatch.fnmatch(name, p) for p in part_folders):
            inner = [entry for entry in sorted(os.listdir(path))
                     if os.path.isfile(os.path.join(path, entry)) and _is_published(entry) and _never_uploaded(entry) is None]
            files.extend(UploadFile(os.path.join(path, entry), f"{name}/{entry}") for entry in inner)
            models.append(set(inner))
        else:
            skipped[name + ("/" if os.path.isdir(path) else "")] = reason or "not part of the published model"
    models.append({item.path_in_repo for item in files if "/" not in item.path_in_repo})
    if not any("config.json" in names and any(any(fnmatch.fnmatch(n, p) for p in WEIGHT_PATTERNS) for n in names)
               for names in models):
        raise FileNotFoundError(
            f"{model_dir} holds no model (config.json and model.safetensors): give the output_dir of a finished run."
        )
    for folder, prefix in _export_folders(model_dir, export_dir, include_onnx, include_export):
        inside = os.path.abspath(folder).startswith(os.path.abspath(model_dir) + os.sep)
        if inside:
            skipped.pop(os.path.relpath(folder, model_dir).split(os.sep)[0] + "/", None)
        for root, dirs, names_in_root in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if _never_uploaded(d) is None)
            for name in sorted(names_in_root):
                if _never_uploaded(name) is None:
                    path = os.path.join(root, name)
                    files.append(UploadFile(path, prefix + "/" + os.path.relpath(path, folder).replace(os.sep, "/")))
    if include_export and os.path.isfile(os.path.join(model_dir, BENCHMARK_NAME)):
        skipped.pop(BENCHMARK_NAME, None)
        files.append(UploadFile(os.path.join(model_dir, BENCHMARK_NAME), BENCHMARK_NAME))
    return sorted(files, key=lambda item: item.path_in_repo), skipped


def _export_folders(model_dir: str, export_dir: Optional[str], include_onnx: bool,
                    include_export: bool) -> list[tuple[str, str]]:
    """The export folders to upload, each with its folder in the repository (`onnx` or `openvino`)."""
    if not (include_onnx or include_export):
        if export_dir is not None:
            find_export_reports(model_dir, export_dir)  # a wrong --export-dir is an error even when not uploaded
        return []
    flag = "--include-export" if include_export else "--include-onnx"
    reports = find_export_reports(model_dir, export_dir)
    backends = {path: _backend_of(path) for path in reports}
    if not include_export:
        reports = [path for path in reports if backends[path] == "onnxruntime"]
    if not reports:
        what = "export_report.json" if include_export else "ONNX export (export_report.json)"
        raise FileNotFoundError(
            f"{flag}: no {what} under {export_dir or model_dir}: run `hf-distill export {model_dir}` first, "
            "or pass the export folder."
        )
    return [(os.path.dirname(path), REPO_EXPORT_FOLDERS[backends[path]]) for path in reports]


def _backend_of(report_path: str) -> str:
    import json

    with open(report_path, encoding="utf-8") as file:
        return json.load(file).get("backend") or "onnxruntime"


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
    include_export: bool = False,
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
        export_dir (`str`, *optional*): The export folder when it is not in `<model_dir>` (`onnx/`, `openvino/`).
        commit_message (`str`, *optional*): Defaults to "Upload distilled model with hf-distill".
        dry_run (`bool`, defaults to `False`): Only return what would be uploaded; nothing is sent or written.
        token (`str`, *optional*): A token; by default `huggingface_hub`'s own (HF_TOKEN or the saved login).
        license (`str`, *optional*): License id for the card's metadata.
        base_model (`str`, *optional*): Hub id of the teacher for the card, when the run used a local folder.
        create_repo (`bool`, defaults to `True`): Create the repository when it does not exist.
        include_export (`bool`, defaults to `False`): Upload every export too: ONNX Runtime's under `onnx/`,
            OpenVINO's under `openvino/`, and `benchmark_report.json`.

    Returns:
        The `CommitInfo` of the commit, or for a dry run the tuple `(files, skipped)` of `upload_plan`.
    """
    has_results = os.path.isfile(os.path.join(model_dir, RESULTS_NAME))
    card = None
    if has_results:
        card = build_model_card(model_dir, repo_id=repo_id, license=license, base_model=base_model,
                                export_dir=export_dir, include_onnx=include_onnx, include_export=include_export)
    elif not os.path.isfile(os.path.join(model_dir, CARD_NAME)):
        raise FileNotFoundError(
            f"{model_dir} has neither results.json nor README.md: a model is published with its card. Push the "
            "output_dir of an `hf-distill train` run, or write a README.md."
        )
    files, skipped = upload_plan(model_dir, include_onnx=include_onnx, export_dir=export_dir,
                                 include_export=include_export)
    if card is not None and CARD_NAME not in {item.path_in_repo for item in files}:
        files = sorted([*files, UploadFile(os.path.join(model_dir, CARD_NAME), CARD_NAME)], key=lambda f: f.path_in_repo)
    if dry_run:
        return files, skipped
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE"):
        raise PermissionError(
            "HF_HUB_OFFLINE is set, so nothing can be uploaded: unset it to publish, or add --dry-run to list what "
            "would be uploaded."
        )
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
