"""Run records: `results.json`, the models it describes, the command that reproduces a run, and its tables.

Every recipe runner, and a trainer's `save_model()` for Python-API users, writes `results.json` into the
run folder with `write_results`; the model card (`hf_distill.hub.card`) and `hf-distill card` read it with
`read_results`. The pieces every family records the same way live here: `describe_model` (a model's
path, architecture, depth, width, parameters and size), `recipe_record` (loss weights by term name,
temperature, schedule and the training schedule), and `run_provenance` (the command line, every
non-default option and a reproducing `hf-distill train` command; no secret ever enters it: options whose
name ends in `token` are left out and replaced by `<REDACTED>` in the command line).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import shlex
import sys
from typing import TYPE_CHECKING, Any, Optional, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn
    from transformers import TrainingArguments

# The files of a run folder besides the student's own (`save_pretrained`) files.
RESULTS_NAME = "results.json"
HEADS_WEIGHTS_NAME = "distillation_heads.safetensors"
HEADS_CONFIG_NAME = "distillation_heads.json"
HEADS_ATTRIBUTE = "distillation_heads"
"""The student's submodule that holds its projection heads (training only, never in the saved student)."""
RUN_FINGERPRINT_NAME = "hf_distill_run.json"
"""What a run trains (model, teacher, data, terms), written into the run folder and every checkpoint: resume
checks that a checkpoint belongs to the run that resumes it."""
PARTIAL_CHECKPOINT_PREFIX = ".partial-"
"""A checkpoint is written into `.partial-checkpoint-<step>/` and renamed to `checkpoint-<step>` when complete."""


def write_results(output_dir: str, results: dict[str, Any]) -> str:
    """Writes `results.json` into `output_dir`, every local path made shareable (`make_shareable`); returns its path."""
    path = os.path.join(output_dir, RESULTS_NAME)
    with open(path, "w") as file:
        json.dump(make_shareable(results, output_dir), file, indent=2, default=str)
    return path


LOCAL_NAME_PREFIX = "<local>/"
"""Marks a local path reduced to its name (it lay far outside the run folder): never a Hub id."""
REPRODUCED_DIR = "reproduced"
"""The output folder of the reproduce command, which runs from the run folder."""
_MAX_CLIMB = 3


def shareable_path(path: str, run_dir: str) -> str:
    """A local path as a run record shows it: relative to the run folder, or reduced to its name.

    Hub ids and other values that are not existing local paths are returned unchanged. A path within three
    levels of the run folder becomes relative to it (`../teacher`, `../../data/glue`); one farther away (it
    would show the machine's folders, e.g. a home directory) becomes `<local>/<name>`.
    """
    expanded = os.path.expanduser(path)
    if not path or not os.path.exists(expanded):
        return path
    relative = os.path.relpath(os.path.abspath(expanded), os.path.abspath(run_dir))
    if relative.split(os.sep)[:_MAX_CLIMB + 1].count("..") > _MAX_CLIMB:
        return LOCAL_NAME_PREFIX + os.path.basename(os.path.normpath(expanded))
    return relative.replace(os.sep, "/")


def _shareable_value(value: str, run_dir: str) -> str:
    parts = value.split(",")
    if len(parts) > 1 and all(os.path.exists(os.path.expanduser(part.strip())) for part in parts if part.strip()):
        return ",".join(shareable_path(part.strip(), run_dir) for part in parts)
    return shareable_path(value, run_dir)


def shareable_command(command: str, run_dir: str, output_dir: Optional[str] = None) -> str:
    """A shell command with every local path made shareable, and `--output_dir`'s value replaced by `output_dir`."""
    tokens = shlex.split(command)
    result = []
    for index, token in enumerate(tokens):
        previous = tokens[index - 1] if index else ""
        if output_dir is not None and previous == "--output_dir":
            result.append(output_dir)
        elif output_dir is not None and token.startswith("--output_dir="):
            result.append(f"--output_dir={output_dir}")
        elif token.startswith("--") and "=" in token:
            key, value = token.split("=", 1)
            result.append(f"{key}={_shareable_value(value, run_dir)}")
        else:
            result.append(_shareable_value(token, run_dir))
    return shlex.join(result)


def make_shareable(results: Any, run_dir: str) -> Any:
    """A run record with no path of the training machine: every string that is a local path made relative to the
    run folder or reduced to a name (`shareable_path`); the reproduce command runs from the run folder and writes
    into `reproduced/`. Hub ids, names and numbers are kept."""
    if isinstance(results, dict):
        return {key: _shareable_reproduce(value, run_dir) if key == "reproduce" and isinstance(value, dict)
                else make_shareable(value, run_dir) for key, value in results.items()}
    if isinstance(results, list):
        return [make_shareable(value, run_dir) for value in results]
    if isinstance(results, str):
        return _shareable_value(results, run_dir)
    return results


def _shareable_reproduce(reproduce: dict[str, Any], run_dir: str) -> dict[str, Any]:
    shared = dict(reproduce)
    if isinstance(shared.get("options"), dict):
        shared["options"] = {key: REPRODUCED_DIR if key == "output_dir" else make_shareable(value, run_dir)
                             for key, value in shared["options"].items()}
    if isinstance(shared.get("command"), str):
        shared["command"] = shareable_command(shared["command"], run_dir, output_dir=REPRODUCED_DIR)
    if isinstance(shared.get("command_line"), str):
        shared["command_line"] = shareable_command(shared["command_line"], run_dir)
    return shared


def read_results(model_dir: str) -> dict[str, Any]:
    """Reads the `results.json` of a run folder, with a clear error when the folder has none."""
    path = os.path.join(model_dir, RESULTS_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No {RESULTS_NAME} in {model_dir}: pass a folder written by `hf-distill train` or by a hf-distill "
            "trainer's save_model()."
        )
    with open(path) as file:
        return json.load(file)


def count_parameters(model: "nn.Module") -> int:
    """Parameters of the model as saved: the student's projection heads are not counted."""
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith(f"{HEADS_ATTRIBUTE}."))


def weights_size_mb(model_dir: str) -> Optional[float]:
    """Size on disk of the model weights (`*.safetensors` / `*.bin`, projection heads excluded), in MB."""
    if not os.path.isdir(model_dir):
        return None
    total = sum(
        os.path.getsize(os.path.join(model_dir, name))
        for name in os.listdir(model_dir)
        if name.endswith((".safetensors", ".bin")) and not name.startswith("distillation_heads")
        and name != "training_args.bin"
    )
    return round(total / 1e6, 2) if total else None


def describe_model(model: "nn.Module", path: Optional[str], **extra: Any) -> dict[str, Any]:
    """What `results.json` says of a model: path, architecture, layers, width, parameters, size on disk.

    Args:
        model (`nn.Module`): The model.
        path (`str`, *optional*): Where it is (a folder, or a Hub id); its size is measured when it is a folder.
        **extra: More keys (the family's scores, e.g. `score` and `metrics`, or `recall`).
    """
    config = getattr(model, "config", None)
    return {
        "path": path,
        "architecture": type(model).__name__,
        "num_layers": getattr(config, "num_hidden_layers", getattr(config, "n_layers", None)),
        "hidden_size": getattr(config, "hidden_size", getattr(config, "dim", None)),
        "parameters": count_parameters(model),
        "size_mb": weights_size_mb(path) if path and os.path.isdir(path) else None,
        **extra,
    }


TRAINING_SCHEDULE_KEYS = ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
                          "gradient_accumulation_steps", "seed")


def training_schedule(config: "TrainingArguments") -> dict[str, Any]:
    """The `TrainingArguments` every `results.json` records under `recipe` (learning rate, epochs, steps, batch, seed)."""
    return {key: getattr(config, key) for key in TRAINING_SCHEDULE_KEYS}


def recipe_record(config: Any, **extra: Any) -> dict[str, Any]:
    """The `recipe` of `results.json`: the weights of the terms that are on (by term name), the temperature,
    the schedule, the training schedule, warmup, learning-rate schedule and weight decay; `extra` adds the
    family's own options."""
    from .compat import warmup_of

    return {
        "loss_weights": {name: value for name, value in config.loss_weights.items() if value > 0},
        "temperature": config.temperature,
        "schedule": config.schedule,
        **training_schedule(config),
        **warmup_of(config),
        "lr_scheduler_type": getattr(config.lr_scheduler_type, "value", config.lr_scheduler_type),
        "weight_decay": config.weight_decay,
        **extra,
    }


def retention(score: Optional[float], teacher_score: Optional[float]) -> Optional[float]:
    """``100 · student score / teacher score``, rounded to 0.01; `None` when either is missing."""
    if score is None or not teacher_score:
        return None
    return round(100.0 * score / teacher_score, 2)


def _fmt(value, spec: str = "") -> str:
    if value is None:
        return "-"
    return format(value, spec) if spec else str(value)


def format_table(task: str, rows: list[tuple[str, dict, Optional[float]]]) -> str:
    """A plain-text table with one row per model: `(label, model info, retention %)`.

    Columns: model, layers, hidden size, parameters, size on disk (MB), task score, retention (%).
    """
    header = ["model", "layers", "hidden", "parameters", "size MB", f"{task} score", "retention %"]
    cells = [
        [label, _fmt(info.get("num_layers")), _fmt(info.get("hidden_size")), _fmt(info.get("parameters"), ","),
         _fmt(info.get("size_mb"), ".1f"), _fmt(info.get("score"), ".4f"), _fmt(retention, ".1f")]
        for label, info, retention in rows
    ]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in [header, *cells]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def format_results_table(results: dict) -> str:
    """Renders a run's `results.json`: the teacher (if any) and the trained student."""
    if not results.get("teacher"):  # a fine-tune without a teacher (a teacher recipe, a baseline)
        return format_table(results.get("task", ""), [("model (no teacher)", results["student"], None)])
    rows = [("teacher", results["teacher"], None), ("student", results["student"], results.get("retention_percent"))]
    return format_table(results.get("task", ""), rows)


# ---------------------------------------------------------------------------------------- provenance

REDACTED = "<REDACTED>"
# Set by `TrainingArguments.__post_init__` or by the machine, not by the user: not part of a recipe.
_DERIVED_FIELDS = frozenset({
    "logging_dir", "local_rank", "debug", "fsdp", "fsdp_config", "accelerator_config", "report_to", "do_eval",
    "disable_tqdm", "include_num_input_tokens_seen", "deepspeed_plugin", "distributed_state",
})
# Written even at their default value: a reader of the command needs them.
_ALWAYS_WRITTEN = frozenset({"task_name"})


def is_secret_option(name: str) -> bool:
    """Whether an option holds a credential (`hub_token`, `push_to_hub_token`, any `*token`)."""
    return name.lstrip("-").replace("-", "_").lower().endswith("token")


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line with the value of every `--*token` option replaced by `<REDACTED>`.

    Handles `--hub_token VALUE` and `--hub_token=VALUE`, and any value that looks like a Hugging Face
    token (`hf_...`) wherever it stands.
    """
    redacted: list[str] = []
    hide_next = False
    for token in argv:
        if hide_next:
            redacted.append(REDACTED)
            hide_next = False
        elif token.startswith("--") and "=" in token and is_secret_option(token.split("=", 1)[0]):
            redacted.append(f"{token.split('=', 1)[0]}={REDACTED}")
        elif token.startswith("--") and is_secret_option(token):
            redacted.append(token)
            hide_next = True
        elif token.startswith("hf_") and len(token) > 20 and " " not in token:
            redacted.append(REDACTED)
        else:
            redacted.append(token)
    return redacted


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


def _default_of(item: dataclasses.Field) -> Any:
    if item.default is not dataclasses.MISSING:
        return _plain(item.default)
    if item.default_factory is not dataclasses.MISSING:
        return _plain(item.default_factory())
    return None


def changed_options(*arguments: Any) -> dict[str, Any]:
    """The options of parsed recipe dataclasses whose value differs from the field's default.

    Secrets and values that `TrainingArguments` derives by itself (`logging_dir`, `local_rank`, ...)
    are left out, so `hf-distill train` given these options alone runs the same recipe (with the same
    library versions: defaults may change between versions). `task_name` is always included.

    Args:
        *arguments: Dataclass instances, e.g. `(ModelArguments, DataArguments, DistillationConfig)`.

    Returns:
        `dict[str, Any]`: Option name to value, JSON-serialisable, in field order.
    """
    options: dict[str, Any] = {}
    for instance in arguments:
        for item in dataclasses.fields(instance):
            if not item.init or item.name in _DERIVED_FIELDS or is_secret_option(item.name):
                continue
            value = _plain(getattr(instance, item.name))
            changed = value != _default_of(item) or item.name in _ALWAYS_WRITTEN
            if changed and isinstance(value, (str, int, float, bool, list, dict)):
                options[item.name] = value
    return options


def train_command(options: dict[str, Any], family: Optional[str] = None) -> str:
    """`hf-distill train --key value ...`, a shell-quoted command that runs a recipe from its options."""
    from .recipes import _to_tokens

    tokens = ["hf-distill", "train"]
    for key, value in options.items():
        tokens.extend(_to_tokens(key, value, family))
    return shlex.join(tokens)


def run_provenance(*arguments: Any, argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """What `results.json` records to reproduce a run.

    Args:
        *arguments: The run's parsed dataclasses.
        argv (`Sequence[str]`, *optional*): The command line; defaults to `sys.argv`.

    Returns:
        `dict`: `command_line` (as typed, secrets redacted), `options` (every non-default option),
        `command` (an `hf-distill train` command built from `options` alone) and `versions`.
    """
    import torch
    import transformers

    from . import __version__

    options = changed_options(*arguments)
    argv = list(sys.argv if argv is None else argv)
    if argv and os.path.basename(argv[0]) in ("hf-distill", "cli.py", "__main__.py"):
        argv[0] = "hf-distill"
    return {
        "command_line": shlex.join(redact_argv(argv)),
        "options": options,
        "command": train_command(options),
        "versions": {"hf_distill": __version__, "transformers": transformers.__version__, "torch": torch.__version__},
    }
