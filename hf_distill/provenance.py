"""What reproduces a run: its command line and every option that differs from the defaults.

`run_provenance(model_args, data_args, config)` is stored under `results.json`'s `"reproduce"` key and
is what the model card's "reproduce" section prints. No secret ever enters it: options whose name
ends in `token` (`hub_token`, `push_to_hub_token`, ...) are left out of the options and replaced by
`<REDACTED>` in the command line.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import shlex
import sys
from typing import Any, Optional, Sequence

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
