"""What results.json records to reproduce a run: non-default options and a command line without secrets."""

import shlex

from hf_distill.provenance import REDACTED, changed_options, redact_argv, run_provenance, train_command
from hf_distill.recipes import parse_recipe

TOKEN = "hf_FakeTokenForTestsOnly0123456789abcdef"


def test_token_values_are_redacted_in_every_spelling():
    argv = ["hf-distill", "train", "r.yaml", "--hub_token", TOKEN, f"--push_to_hub_token={TOKEN}", "--note", TOKEN,
            "--learning_rate", "1e-4"]
    assert redact_argv(argv) == ["hf-distill", "train", "r.yaml", "--hub_token", REDACTED,
                                 f"--push_to_hub_token={REDACTED}", "--note", REDACTED, "--learning_rate", "1e-4"]


def test_changed_options_round_trip_through_the_recipe_parser():
    parsed = parse_recipe(None, ["--task_name", "mrpc", "--student_num_layers", "3", "--kd_weight", "0.7",
                                 "--layer_map", "2,4,6", "--output_dir", "out", "--hub_token", TOKEN,
                                 "--schedule", '{"kd_weight": {"type": "linear", "start": 1, "end": 0}}'])
    options = changed_options(*parsed)
    assert "hub_token" not in options and "logging_dir" not in options and "local_rank" not in options
    assert options["kd_weight"] == 0.7 and options["layer_map"] == [2, 4, 6] and options["task_name"] == "mrpc"
    command = train_command(options)
    again = parse_recipe(None, shlex.split(command)[2:])
    assert changed_options(*again) == options


def test_run_provenance_names_the_command_and_versions():
    parsed = parse_recipe(None, ["--output_dir", "out", "--hub_token", TOKEN])
    record = run_provenance(*parsed, argv=["/venv/bin/hf-distill", "train", "--hub_token", TOKEN])
    assert record["command_line"] == f"hf-distill train --hub_token '{REDACTED}'"
    assert TOKEN not in str(record) and set(record["versions"]) == {"hf_distill", "transformers", "torch"}
