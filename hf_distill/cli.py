"""The `hf-distill` command.

    hf-distill train RECIPE.yaml [--key value ...]   run a recipe; flags override the file
    hf-distill demo [--output_dir DIR] [...]         offline end-to-end distillation on pip-installed assets
    hf-distill card OUTPUT_DIR [...]                 write the run's model card (README.md)
    hf-distill push OUTPUT_DIR --repo-id NAME [...]  publish the run to the Hub (--dry-run lists the files)
    hf-distill augment --model_name_or_path M ...   TinyBERT data augmentation of a task file
    hf-distill export MODEL_DIR [--backend onnxruntime|openvino] [--quantize] [...]   ONNX / OpenVINO / INT8, checked
    hf-distill benchmark MODEL_DIR [--task_name ...]  time every runtime and the teacher in one run
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from .recipes import FAMILY_KEY, RECIPE_FAMILIES, RecipeError, RecipeFamily, parse_recipe, recipe_family_of, run_parsed

DESCRIPTION = "hf-distill: distil Hugging Face models with transformers.Trainer."


def _families_text() -> str:
    lines = [f"  {name:<18} {family.description}" for name, family in RECIPE_FAMILIES.items()]
    return "recipe families (the recipe's `recipe_family` key, default task):\n" + "\n".join(lines)


def _train_help_text(family: RecipeFamily) -> str:
    """The help of `hf-distill train` for one family: every option of its dataclasses (imports transformers)."""
    from .recipes import recipe_parser

    parser = recipe_parser(family.name)
    parser.prog = "hf-distill train RECIPE.yaml"
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        f"Run a recipe: a YAML file of the options below (family {family.name!r}). Command-line flags "
        "override the file, e.g. `hf-distill train recipes/glue/distilbert.yaml --task_name mrpc "
        f"--learning_rate 5e-5`. `--{FAMILY_KEY} NAME --help` lists another family's options.\n\n"
        + _families_text()
    )
    return parser.format_help()


def _train(argv: Sequence[str]) -> int:
    argv = list(argv)
    recipe, overrides = (argv[0], argv[1:]) if argv and not argv[0].startswith("-") else (None, argv)
    if not argv or "-h" in overrides or "--help" in overrides:
        from .help_cache import cached_text

        family = recipe_family_of(recipe, [t for t in overrides if t not in ("-h", "--help")])
        if family.importable_by_path:
            text = cached_text(f"train-{family.name}", family.dataclass_specs, lambda: _train_help_text(family))
        else:
            text = _train_help_text(family)
        sys.stdout.write(text)
        return 0
    family = recipe_family_of(recipe, overrides)
    parsed = parse_recipe(recipe, overrides)
    run_parsed(family, parsed)
    return 0


def _demo(argv: Sequence[str]) -> int:
    from .tasks.demo import demo_parser, run_demo

    options = demo_parser().parse_args(argv)
    run_demo(**vars(options))
    return 0


def _card(argv: Sequence[str]) -> int:
    from .hub.commands import card_command

    return card_command(argv)


def _push(argv: Sequence[str]) -> int:
    from .hub.commands import push_command

    return push_command(argv)


def _augment(argv: Sequence[str]) -> int:
    from .tasks.augmentation import augment_parser, run_augment

    run_augment(**vars(augment_parser().parse_args(argv)))
    return 0


def _export(argv: Sequence[str]) -> int:
    from .export.commands import run_export_command

    return run_export_command(argv)


def _benchmark(argv: Sequence[str]) -> int:
    from .export.commands import run_benchmark_command

    return run_benchmark_command(argv)


COMMANDS = {
    "train": (_train, "Run a recipe YAML (`hf-distill train --help` lists every option)."),
    "demo": (_demo, "Offline end-to-end demo: fine-tune MiniLM-L6 on IMDB, distil a 3-layer student, compare."),
    "card": (_card, "Write the model card (README.md) of a run folder from its results.json and export report."),
    "push": (_push, "Upload a run folder (student, tokenizer, card, optional ONNX) to the Hub in one commit."),
    "augment": (_augment, "TinyBERT data augmentation: masked-LM word replacements written to a new task file."),
    "export": (_export, "Export a model to ONNX or OpenVINO (+ INT8), check parity, accuracy and latency; writes "
                        "export_report.json."),
    "benchmark": (_benchmark, "Time every runtime of a model (PyTorch, ONNX Runtime, OpenVINO) and its teacher in one run."),
}


DEBUG_FLAG = "--debug"
DEBUG_VARIABLE = "HF_DISTILL_DEBUG"


def _user_errors() -> tuple[type[BaseException], ...]:
    """The errors a command reports in one line: the project's own, and bad input, files, data and disks.

    hf-distill's checks raise `ValueError`, `TypeError` (a wrong object given), `FileNotFoundError`,
    `PermissionError` or their own subclasses of these, `RecipeError`, `ExportError`, `ParityError` and
    `NonFiniteLossError`, each with the problem and the fix; data and I/O errors (`OSError`, including a full
    disk; `UnicodeDecodeError`; `datasets`' generation errors) say what went wrong with a file. Anything else
    is a bug and keeps its traceback.
    """
    errors: list[type[BaseException]] = [ValueError, TypeError, OSError, ImportError]
    for module, name in (("hf_distill.trainer", "NonFiniteLossError"), ("hf_distill.export", "ParityError"),
                         ("datasets.exceptions", "DatasetGenerationError")):
        loaded = sys.modules.get(module)
        if loaded is not None and hasattr(loaded, name):
            errors.append(getattr(loaded, name))
    return tuple(errors)


def _one_line(error: BaseException) -> str:
    message = " ".join(str(error).split()) or type(error).__name__
    cause = error.__cause__ or error.__context__
    if isinstance(error, OSError) and getattr(error, "errno", None) == 28:  # ENOSPC
        message = f"the disk is full ({message}): free space, or set save_total_limit to keep fewer checkpoints."
    elif type(error).__module__.startswith("datasets") and cause is not None:
        message = f"{message}: {' '.join(str(cause).split())}"
    return message


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `hf-distill` command.

    Errors of bad input, files, data and disks are printed as one line, `hf-distill <command>: error: <what is
    wrong and how to fix it>`, with exit status 2. `--debug` (anywhere on the command line) or
    `HF_DISTILL_DEBUG=1` shows the traceback instead.
    """
    import os

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or os.environ.get(DEBUG_VARIABLE, "").strip().lower() in ("1", "true", "yes")
    argv = [token for token in argv if token != DEBUG_FLAG]
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser = argparse.ArgumentParser(
            prog="hf-distill", description=DESCRIPTION,
            epilog=f"Errors print one line; {DEBUG_FLAG} or {DEBUG_VARIABLE}=1 shows the traceback.",
        )
        sub = parser.add_subparsers(title="commands", metavar="COMMAND")
        for name, (_, help_text) in COMMANDS.items():
            sub.add_parser(name, help=help_text, add_help=False)
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}")
        parser.print_help()
        return 0
    handler, _ = COMMANDS[argv[0]]
    try:
        return handler(argv[1:])
    except RecipeError as error:
        if debug:
            raise
        print(f"hf-distill {argv[0]}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - the known kinds print one line; others keep their traceback
        if debug or not isinstance(error, _user_errors()):
            raise
        print(f"hf-distill {argv[0]}: error: {_one_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
