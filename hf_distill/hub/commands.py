"""The `hf-distill card` and `hf-distill push` commands: parsers (light to import) and handlers."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


def card_parser() -> argparse.ArgumentParser:
    """The options of `hf-distill card`."""
    parser = argparse.ArgumentParser(
        prog="hf-distill card",
        description="Write README.md (the model card) into a run folder from its results.json and, when the model "
        "was exported, its export_report.json.",
    )
    parser.add_argument("output_dir", help="The run's output_dir (student, tokenizer, results.json).")
    parser.add_argument("--repo-id", help="Hub repository the model will be published to (name and usage example).")
    parser.add_argument("--license", help="License id for the metadata (default: the teacher card's license).")
    parser.add_argument("--base-model", help="Hub id of the teacher, when the run used a local teacher folder.")
    parser.add_argument("--export-dir", help="The export folder, when it is not OUTPUT_DIR/onnx.")
    return parser


def card_command(argv: Sequence[str]) -> int:
    """`hf-distill card OUTPUT_DIR`: writes the card and says where; exit status 2 on a bad folder."""
    from huggingface_hub import ModelCard

    from .card import write_model_card

    options = card_parser().parse_args(argv)
    try:
        path = write_model_card(options.output_dir, repo_id=options.repo_id, license=options.license,
                                base_model=options.base_model, export_dir=options.export_dir)
    except (FileNotFoundError, ValueError) as error:
        print(f"hf-distill card: error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote the model card {path}")
    if ModelCard.load(path).data.get("base_model") is None:
        print("Note: the teacher (or base model) of this run is not a Hub id, so the card has no base_model; pass "
              "--base-model ORG/NAME to link it.")
    return 0


def push_parser() -> argparse.ArgumentParser:
    """The options of `hf-distill push`."""
    parser = argparse.ArgumentParser(
        prog="hf-distill push",
        description="Upload a run folder to a Hub model repository in one commit: weights, config, tokenizer, the "
        "model card (rebuilt for the repository) and results.json; with --include-export every export too (ONNX "
        "under onnx/, OpenVINO under openvino/), with --include-onnx the ONNX/INT8 export only. "
        "Projection heads, the EMA teacher, checkpoints, optimizer states and training_args.bin stay local. The "
        "token comes from HF_TOKEN or `hf auth login` and is never printed.",
    )
    parser.add_argument("output_dir", help="The run's output_dir.")
    parser.add_argument("--repo-id", required=True, help="user/name or org/name of the model repository.")
    parser.add_argument("--private", action="store_true", help="Create the repository private.")
    parser.add_argument("--revision", help="Branch to commit to (created from main when missing).")
    parser.add_argument("--include-export", action="store_true",
                        help="Also upload every export of `hf-distill export`: ONNX Runtime's under onnx/, OpenVINO's "
                             "under openvino/, and benchmark_report.json.")
    parser.add_argument("--include-onnx", action="store_true", help="Also upload the ONNX/INT8 export, under onnx/.")
    parser.add_argument("--export-dir", help="The export folder, when it is not in OUTPUT_DIR (onnx/, openvino/).")
    parser.add_argument("--license", help="License id for the card's metadata.")
    parser.add_argument("--base-model", help="Hub id of the teacher, when the run used a local teacher folder.")
    parser.add_argument("--commit-message", help="Commit message.")
    parser.add_argument("--dry-run", action="store_true", help="List what would be uploaded; send and write nothing.")
    return parser


def push_command(argv: Sequence[str]) -> int:
    """`hf-distill push OUTPUT_DIR --repo-id NAME`; exit status 2 on a bad folder or a missing token."""
    from .push import format_plan, push_to_hub

    options = push_parser().parse_args(argv)
    try:
        result = push_to_hub(
            options.output_dir, options.repo_id, private=options.private, revision=options.revision,
            include_onnx=options.include_onnx, include_export=options.include_export, export_dir=options.export_dir,
            commit_message=options.commit_message,
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
