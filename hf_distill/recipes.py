"""Reading a recipe: a YAML file of arguments, with command-line flags that override it.

A recipe is a flat YAML mapping whose keys are fields of `ModelArguments`, `DataArguments` and
`DistillationConfig` (so every `TrainingArguments` field too). It is read with `yaml.safe_load`,
turned into command-line tokens, and parsed with `HfArgumentParser` after them together with the
user's flags: a flag given on the command line wins over the file, and every value is parsed and
checked exactly as if it had been typed.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import typing
from typing import Any, Optional, Sequence

import yaml
from transformers import HfArgumentParser

from .arguments import DataArguments, ModelArguments
from .config import DistillationConfig

RECIPE_DATACLASSES = (ModelArguments, DataArguments, DistillationConfig)


class RecipeError(ValueError):
    """A recipe file or a command-line override that cannot be used."""


def recipe_parser() -> HfArgumentParser:
    """The parser of `hf-distill train`: every model, data and distillation/training option."""
    return HfArgumentParser(RECIPE_DATACLASSES)


def known_keys() -> dict[str, dataclasses.Field]:
    """Every recipe key with its dataclass field."""
    keys = {}
    for cls in RECIPE_DATACLASSES:
        for item in dataclasses.fields(cls):
            if item.init:
                keys[item.name] = item
    return keys


def _unknown_key_error(key: str, where: str) -> RecipeError:
    close = difflib.get_close_matches(key, known_keys(), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return RecipeError(f"Unknown key {key!r} in {where}.{hint} `hf-distill train --help` lists every key.")


def load_recipe(path: str) -> dict[str, Any]:
    """Reads a recipe file (YAML, `safe_load`) and checks that every key is known.

    Raises:
        RecipeError: When the file is missing, is not a mapping, or has an unknown key.
    """
    if not os.path.isfile(path):
        raise RecipeError(f"Recipe {path!r} does not exist.")
    with open(path) as file:
        values = yaml.safe_load(file) or {}
    if not isinstance(values, dict):
        raise RecipeError(f"Recipe {path!r} must be a mapping of option: value, got {type(values).__name__}.")
    fields = known_keys()
    for key in values:
        if key not in fields:
            raise _unknown_key_error(key, f"recipe {path}")
    return values


def _is_text_field(key: str) -> bool:
    """Whether the option is typed `str` / `Optional[str]` (a list value is then written "a,b,c")."""
    for cls in RECIPE_DATACLASSES:
        hints = typing.get_type_hints(cls)
        if key in hints:
            return hints[key] in (str, Optional[str])
    return False


def _to_tokens(key: str, value: Any) -> list[str]:
    if value is None:
        return []
    flag = f"--{key}"
    if isinstance(value, bool):
        return [flag, "true" if value else "false"]
    if isinstance(value, dict):
        return [flag, json.dumps(value)]
    if isinstance(value, (list, tuple)):
        if _is_text_field(key):
            return [flag, ",".join(str(v) for v in value)]
        return [flag, *[str(v) for v in value]]
    return [flag, str(value)]


def _check_override_keys(overrides: Sequence[str]) -> None:
    fields = known_keys()
    for token in overrides:
        if token.startswith("--"):
            key = token[2:].split("=", 1)[0].replace("-", "_")
            if key.startswith("no_") and key[3:] in fields:
                continue
            if key not in fields:
                raise _unknown_key_error(key, "the command line")


def parse_recipe(
    path: Optional[str], overrides: Sequence[str] = ()
) -> tuple[ModelArguments, DataArguments, DistillationConfig]:
    """Parses a recipe file and command-line overrides into the three argument dataclasses.

    Args:
        path (`str`, *optional*): The recipe YAML; `None` parses the overrides alone.
        overrides (`Sequence[str]`, defaults to `()`): Command-line tokens such as
            `["--learning_rate", "1e-4"]`; they win over the file.

    Returns:
        `tuple[ModelArguments, DataArguments, DistillationConfig]`.
    """
    values = load_recipe(path) if path else {}
    _check_override_keys(overrides)
    tokens: list[str] = []
    for key, value in values.items():
        tokens.extend(_to_tokens(key, value))
    parser = recipe_parser()
    try:
        model_args, data_args, config = parser.parse_args_into_dataclasses(
            args=[*tokens, *overrides], look_for_args_file=False
        )
    except SystemExit as exit_error:  # argparse already printed what is wrong
        raise RecipeError(f"Could not parse the recipe {path or ''} and its overrides (see the message above).") from exit_error
    return model_args, data_args, config
