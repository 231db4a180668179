"""Reading a recipe: a YAML file of arguments, with command-line flags that override it.

A recipe is a flat YAML mapping. Its optional `recipe_family` key picks a `RecipeFamily` (default
`"task"`: GLUE/IMDB teachers, students and baselines); every other key is a field of one of that
family's argument dataclasses (for `"task"`: `ModelArguments`, `DataArguments` and
`DistillationConfig`, so every `TrainingArguments` field too). The file is read with
`yaml.safe_load`, turned into command-line tokens, and parsed with `HfArgumentParser` after them
together with the user's flags: a flag given on the command line wins over the file, and every value
is parsed and checked exactly as if it had been typed.

A recipe may also hold a `per_task` mapping: settings by task name (`mrpc: {num_train_epochs: 20}`), applied
for the task the run is on (the file's `task_name`, or the `--task_name` flag), over the file's other keys
and under the command line. The GLUE recipes use it for per-task epochs, learning rates, batch sizes and
sequence lengths.

A new family (retrieval, general distillation, ...) registers itself in `RECIPE_FAMILIES` with its
dataclasses and the `"module:function"` that runs it; `hf-distill train` needs no other change.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import json
import os
import typing
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import yaml

FAMILY_KEY = "recipe_family"
DEFAULT_FAMILY = "task"
PER_TASK_KEY = "per_task"
"""A recipe key holding settings by task name (`per_task: {mrpc: {num_train_epochs: 10}}`): the entry of the
recipe's task (its `task_name`, or the `--task_name` flag) is applied over the file's other keys, and the
command line still wins over both."""
EXCLUSIVE_OPTIONS = (("student_layers", "student_num_layers"),)
"""Options that exclude each other: one given on the command line replaces the recipe's other one (a recipe's
`student_num_layers: 6` gives way to `--student_layers 1,3,5`), as any flag wins over the file."""


class RecipeError(ValueError):
    """A recipe file or a command-line override that cannot be used."""


def _resolve(spec: Union[str, type]) -> type:
    """A class from its `"module:Name"` path (or the class itself)."""
    if isinstance(spec, str):
        module_name, name = spec.split(":")
        return getattr(importlib.import_module(module_name), name)
    return spec


@dataclass(frozen=True)
class RecipeFamily:
    """A kind of recipe: the argument dataclasses its YAML keys belong to and the function that runs it.

    Attributes:
        name (`str`): The value of the recipe's `recipe_family` key.
        dataclass_specs (`tuple`): The argument dataclasses, parsed together by `HfArgumentParser`, each a
            `"module:Name"` path (imported only when a recipe is parsed, so the registry and the command's
            help stay light) or the class itself. Their field names are the recipe's keys.
        runner (`str`): `"module:function"` called with the parsed dataclasses, in order.
        description (`str`): One line for `hf-distill train --help`.
    """

    name: str
    dataclass_specs: tuple[Union[str, type], ...]
    runner: str
    description: str

    @property
    def dataclasses(self) -> tuple[type, ...]:
        """The argument dataclasses, imported."""
        return tuple(_resolve(spec) for spec in self.dataclass_specs)

    @property
    def importable_by_path(self) -> bool:
        """Whether every dataclass is given by path (what `hf-distill train --help` may cache by)."""
        return all(isinstance(spec, str) for spec in self.dataclass_specs)

    def load_runner(self) -> Callable[..., Any]:
        return _resolve(self.runner)


_TASK_ARGUMENTS = ("hf_distill.tasks.arguments:ModelArguments", "hf_distill.tasks.arguments:DataArguments")

RECIPE_FAMILIES: dict[str, RecipeFamily] = {
    "task": RecipeFamily(
        "task",
        (*_TASK_ARGUMENTS, "hf_distill.config:DistillationConfig"),
        "hf_distill.tasks.run:run_recipe",
        "GLUE / IMDB: fine-tune a teacher, distil a student (DistilBERT, TinyBERT), no-teacher baselines.",
    ),
    "general": RecipeFamily(
        "general",
        ("hf_distill.general.arguments:GeneralModelArguments", "hf_distill.general.arguments:TextDataArguments",
         "hf_distill.config:DistillationConfig"),
        "hf_distill.general.run:run_general",
        "Raw text, no labels: DistilBERT's masked-LM pre-training distillation, TinyBERT's general stage.",
    ),
    "retrieval": RecipeFamily(
        "retrieval",
        ("hf_distill.retrieval.arguments:RetrievalModelArguments",
         "hf_distill.retrieval.arguments:RetrievalDataArguments",
         "hf_distill.retrieval.config:RetrievalDistillationConfig"),
        "hf_distill.retrieval.run:run_retrieval",
        "Image-text retrieval (Flickr30k): distil a CLIP-style dual encoder; Recall@1/5/10 both ways.",
    ),
    "mutual": RecipeFamily(
        "mutual",
        ("hf_distill.online.config:PeerArguments", "hf_distill.tasks.arguments:DataArguments",
         "hf_distill.online.config:MutualLearningConfig"),
        "hf_distill.online.run:run_mutual",
        "Deep mutual learning: two or more peers teach each other, no trained teacher.",
    ),
    "compress": RecipeFamily(
        "compress",
        (*_TASK_ARGUMENTS, "hf_distill.compress.arguments:CompressArguments", "hf_distill.config:DistillationConfig"),
        "hf_distill.compress.run:run_compress",
        "Prune a fine-tuned teacher (heads, FFN neurons, layers), distil the pruned model from it, export INT8.",
    ),
    "self_distillation": RecipeFamily(
        "self_distillation",
        (*_TASK_ARGUMENTS, "hf_distill.online.config:SelfDistillationConfig"),
        "hf_distill.online.run:run_self_distillation",
        "Layer-wise self-distillation: exits on intermediate layers taught by the last; early-exit curve.",
    ),
}


def get_family(name: Optional[str]) -> RecipeFamily:
    """The `RecipeFamily` called `name` (`None` is the default, `"task"`)."""
    name = name or DEFAULT_FAMILY
    if name not in RECIPE_FAMILIES:
        raise RecipeError(
            f"Unknown recipe_family {name!r}; choose from {', '.join(sorted(RECIPE_FAMILIES))}."
        )
    return RECIPE_FAMILIES[name]


def recipe_parser(family: Optional[str] = None):
    """The `HfArgumentParser` of `hf-distill train` for one recipe family (default: every task option)."""
    from transformers import HfArgumentParser

    return HfArgumentParser(get_family(family).dataclasses)


def known_keys(family: Optional[str] = None) -> dict[str, dataclasses.Field]:
    """Every recipe key of a family with its dataclass field."""
    keys = {}
    for cls in get_family(family).dataclasses:
        for item in dataclasses.fields(cls):
            if item.init:
                keys[item.name] = item
    return keys


def _unknown_key_error(key: str, where: str, family: Optional[str] = None) -> RecipeError:
    close = difflib.get_close_matches(key, known_keys(family), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    help_command = "hf-distill train --help" if family in (None, DEFAULT_FAMILY) else f"hf-distill train --recipe_family {family} --help"
    return RecipeError(f"Unknown key {key!r} in {where}.{hint} `{help_command}` lists every key.")


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a mapping with the same key twice (YAML would keep the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise RecipeError(
                    f"the key {key!r} is given twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1}) in "
                    f"{key_node.start_mark.name}: keep one of them."
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise RecipeError(f"Recipe {path!r} does not exist.")
    with open(path) as file:
        try:
            values = yaml.load(file, Loader=_UniqueKeyLoader) or {}  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as error:
            raise RecipeError(f"Recipe {path!r} is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(values, dict):
        raise RecipeError(f"Recipe {path!r} must be a mapping of option: value, got {type(values).__name__}.")
    return values


def _split_family(values: dict[str, Any], overrides: Sequence[str]) -> tuple[Optional[str], list[str]]:
    """The family named by the file or a `--recipe_family` flag (the flag wins), and the other flags."""
    family = values.pop(FAMILY_KEY, None)
    rest: list[str] = []
    tokens = list(overrides)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token == f"--{FAMILY_KEY}" and index + 1 < len(tokens):
            family = tokens[index + 1]
            index += 2
            continue
        if token.startswith(f"--{FAMILY_KEY}="):
            family = token.split("=", 1)[1]
        else:
            rest.append(token)
        index += 1
    return family, rest


def load_recipe(path: str, family: Optional[str] = None) -> dict[str, Any]:
    """Reads a recipe file (YAML, `safe_load`) and checks that every key is known to its family.

    Args:
        path (`str`): The recipe YAML.
        family (`str`, *optional*): Check against this family instead of the file's `recipe_family`.

    Returns:
        `dict[str, Any]`: The options, without the `recipe_family` key.

    Raises:
        RecipeError: When the file is missing, is not a mapping, or has an unknown key.
    """
    values = _read_yaml(path)
    file_family = values.pop(FAMILY_KEY, None)
    family = family or file_family
    fields = known_keys(family)
    for key in values:
        if key == PER_TASK_KEY:
            _check_per_task(values[key], path, family)
        elif key not in fields:
            raise _unknown_key_error(key, f"recipe {path}", family)
    return values


def _check_per_task(per_task: Any, path: str, family: Optional[str]) -> None:
    """`per_task` maps task names to mappings of known keys."""
    if not isinstance(per_task, dict) or not all(isinstance(entry, dict) for entry in per_task.values()):
        raise RecipeError(f"{PER_TASK_KEY} in recipe {path} must map task names to settings, e.g. "
                          f"'{PER_TASK_KEY}: {{mrpc: {{num_train_epochs: 10}}}}'.")
    fields = known_keys(family)
    for task, entry in per_task.items():
        for key in entry:
            if key not in fields or key == "task_name":
                raise _unknown_key_error(key, f"recipe {path} ({PER_TASK_KEY}: {task})", family)


def _flag_value(tokens: Sequence[str], name: str) -> Optional[str]:
    """The value of `--name VALUE` or `--name=VALUE` among command-line tokens (the last one wins)."""
    value = None
    for index, token in enumerate(tokens):
        if token == f"--{name}" and index + 1 < len(tokens):
            value = tokens[index + 1]
        elif token.startswith(f"--{name}="):
            value = token.split("=", 1)[1]
    return value


def apply_per_task(values: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """The recipe's values with the `per_task` entry of the run's task applied (and the `per_task` key gone).

    Args:
        values (`dict[str, Any]`): The recipe file's values.
        overrides (`Sequence[str]`): The command-line tokens (a `--task_name` flag picks the task).

    Returns:
        `dict[str, Any]`: The values to parse before the command line.
    """
    values = dict(values)
    per_task = values.pop(PER_TASK_KEY, None) or {}
    task = _flag_value(overrides, "task_name") or values.get("task_name")
    entry = per_task.get(str(task).lower()) if task is not None else None
    return {**values, **(entry or {})}


def drop_replaced_options(values: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """The recipe's values without the options that a command-line flag replaces (see `EXCLUSIVE_OPTIONS`).

    Args:
        values (`dict[str, Any]`): The recipe file's values.
        overrides (`Sequence[str]`): The command-line tokens.

    Returns:
        `dict[str, Any]`: `values`, less each option whose exclusive partner is on the command line and itself is not.
    """
    given = {_flag_name(token) for token in overrides if token.startswith("--")}
    dropped = set()
    for group in EXCLUSIVE_OPTIONS:
        for key in group:
            if key in given:
                dropped.update(other for other in group if other != key and other not in given)
    return {key: value for key, value in values.items() if key not in dropped}


def _flag_name(token: str) -> str:
    return token[2:].split("=", 1)[0].replace("-", "_")


def recipe_family_of(path: Optional[str], overrides: Sequence[str] = ()) -> RecipeFamily:
    """The family a recipe file and its flags belong to."""
    values = _read_yaml(path) if path else {}
    family, _ = _split_family(values, overrides)
    return get_family(family)


def _is_text_field(key: str, family: Optional[str] = None) -> bool:
    """Whether the option is typed `str` / `Optional[str]` (a list value is then written "a,b,c")."""
    for cls in get_family(family).dataclasses:
        hints = typing.get_type_hints(cls)
        if key in hints:
            return hints[key] in (str, Optional[str])
    return False


def _to_tokens(key: str, value: Any, family: Optional[str] = None) -> list[str]:
    if value is None:
        return []
    flag = f"--{key}"
    if isinstance(value, bool):
        return [flag, "true" if value else "false"]
    if isinstance(value, dict):
        return [flag, json.dumps(value)]
    if isinstance(value, (list, tuple)):
        if _is_text_field(key, family):
            return [flag, ",".join(str(v) for v in value)]
        return [flag, *[str(v) for v in value]]
    return [flag, str(value)]


def _check_override_keys(overrides: Sequence[str], family: Optional[str] = None) -> None:
    fields = known_keys(family)
    for token in overrides:
        if token.startswith("--"):
            key = _flag_name(token)
            if key.startswith("no_") and key[3:] in fields:
                continue
            if key not in fields:
                raise _unknown_key_error(key, "the command line", family)


def parse_recipe(path: Optional[str], overrides: Sequence[str] = ()) -> tuple[Any, ...]:
    """Parses a recipe file and command-line overrides into its family's argument dataclasses.

    Args:
        path (`str`, *optional*): The recipe YAML; `None` parses the overrides alone.
        overrides (`Sequence[str]`, defaults to `()`): Command-line tokens such as
            `["--learning_rate", "1e-4"]`; they win over the file. `--recipe_family NAME` picks the
            family when the file does not.

    Returns:
        `tuple`: One instance per dataclass of the family, in order. For the default `"task"` family:
        `(ModelArguments, DataArguments, DistillationConfig)`.
    """
    values = _read_yaml(path) if path else {}
    family_name, overrides = _split_family(values, overrides)
    family = get_family(family_name)
    if path:
        values = drop_replaced_options(apply_per_task(load_recipe(path, family.name), overrides), overrides)
    _check_override_keys(overrides, family.name)
    tokens: list[str] = []
    for key, value in values.items():
        tokens.extend(_to_tokens(key, value, family.name))
    parser = recipe_parser(family.name)
    try:
        parsed = parser.parse_args_into_dataclasses(args=[*tokens, *overrides], look_for_args_file=False)
    except SystemExit as exit_error:  # argparse already printed what is wrong
        raise RecipeError(f"Could not parse the recipe {path or ''} and its overrides (see the message above).") from exit_error
    return tuple(parsed)


def run_parsed(family: RecipeFamily, parsed: Sequence[Any]) -> Any:
    """Runs a parsed recipe with its family's runner."""
    return family.load_runner()(*parsed)
