"""The `hf-distill` command.

    hf-distill train RECIPE.yaml [--key value ...]   run a recipe; flags override the file
    hf-distill demo [--output_dir DIR] [...]         offline end-to-end distillation on pip-installed assets
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from .recipes import RecipeError, parse_recipe, recipe_parser

DESCRIPTION = "hf-distill: distil Hugging Face models with transformers.Trainer."


def _train(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        parser = recipe_parser()
        parser.prog = "hf-distill train RECIPE.yaml"
        parser.description = (
            "Run a recipe: a YAML file of the options below. Command-line flags override the file, "
            "e.g. `hf-distill train recipes/glue/distilbert.yaml --task_name mrpc --learning_rate 5e-5`."
        )
        parser.print_help()
        return 0
    recipe, overrides = (argv[0], list(argv[1:])) if not argv[0].startswith("--") else (None, list(argv))
    model_args, data_args, config = parse_recipe(recipe, overrides)
    from .run import run_recipe

    run_recipe(model_args, data_args, config)
    return 0


def _demo(argv: Sequence[str]) -> int:
    from .demo import demo_parser, run_demo

    options = demo_parser().parse_args(argv)
    run_demo(**vars(options))
    return 0


COMMANDS = {
    "train": (_train, "Run a recipe YAML (`hf-distill train --help` lists every option)."),
    "demo": (_demo, "Offline end-to-end demo: fine-tune MiniLM-L6 on IMDB, distil a 3-layer student, compare."),
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `hf-distill` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser = argparse.ArgumentParser(prog="hf-distill", description=DESCRIPTION)
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
        print(f"hf-distill: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
