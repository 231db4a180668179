"""Run records: model sizes, the results table, and what reproduces a run (non-default options, no secrets)."""

import shlex

import pytest

from hf_distill import DistillationConfig, DistillationTrainer
from hf_distill.recipes import parse_recipe
from hf_distill.runs import (
    REDACTED,
    changed_options,
    count_parameters,
    format_results_table,
    redact_argv,
    retention,
    run_provenance,
    train_command,
    weights_size_mb,
)
from tests.conftest import tiny_teacher
from tests.test_trainer import narrow_student


def test_parameters_and_size_exclude_projection_heads(tmp_path):
    teacher = tiny_teacher()
    student = narrow_student(teacher)
    plain = sum(p.numel() for p in student.parameters())
    trainer = DistillationTrainer(model=student, teacher_model=teacher,
                                  args=DistillationConfig(output_dir=str(tmp_path), hidden_weight=1.0, report_to=[]))
    assert sum(p.numel() for p in student.parameters()) > plain  # the heads are attached to the student...
    assert count_parameters(student) == plain  # ...but are not part of the model that is shipped
    trainer.save_model()
    size = (tmp_path / "model.safetensors").stat().st_size
    assert weights_size_mb(str(tmp_path)) == round(size / 1e6, 2)


def test_retention_and_table():
    assert retention(0.85, 0.9) == pytest.approx(94.44)
    assert retention(None, 0.9) is None and retention(0.8, 0.0) is None
    table = format_results_table({
        "task": "mrpc", "retention_percent": 97.5,
        "teacher": {"num_layers": 6, "hidden_size": 384, "parameters": 22713986, "size_mb": 90.9, "score": 0.8},
        "student": {"num_layers": 3, "hidden_size": 384, "parameters": 17390594, "size_mb": 69.6, "score": 0.78},
    })
    lines = table.splitlines()
    assert "mrpc score" in lines[0] and "retention %" in lines[0]
    assert lines[2].split()[:2] == ["teacher", "6"] and "22,713,986" in lines[2]
    assert lines[3].split()[-2:] == ["0.7800", "97.5"]


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


def test_published_records_hold_no_path_of_the_training_machine_and_the_command_still_runs(tmp_path, monkeypatch):
    """results.json and the card show local paths relative to the run folder (or as `<local>/NAME` when far away);
    the reproduce command parses from the run folder into the same models and data, writing into `reproduced/`."""
    import json
    import os

    from tests.helpers.run_folders import make_tiny_run

    folder = make_tiny_run(tmp_path)
    record = open(os.path.join(folder, "results.json")).read()
    card = open(os.path.join(folder, "README.md")).read()
    for text in (record, card):
        assert str(tmp_path) not in text and os.path.expanduser("~") + "/" not in text
    results = json.loads(record)
    assert results["teacher"]["path"] == "../base" and results["student"]["path"] == "."
    assert results["reproduce"]["options"]["output_dir"] == "reproduced"
    monkeypatch.chdir(folder)
    _, data_args, config = parse_recipe(None, shlex.split(results["reproduce"]["command"])[2:])
    assert os.path.samefile(config.teacher_model_name_or_path, tmp_path / "base")
    assert os.path.samefile(data_args.data_dir, tmp_path / "glue")
    assert config.output_dir == "reproduced"


def test_a_path_far_from_the_run_folder_is_reduced_to_its_name(tmp_path):
    from hf_distill.runs import make_shareable, shareable_path

    deep = tmp_path / "a" / "b" / "c" / "d" / "run"
    deep.mkdir(parents=True)
    elsewhere = tmp_path / "models" / "teacher"
    elsewhere.mkdir(parents=True)
    assert shareable_path(str(elsewhere), str(deep)) == "<local>/teacher"
    assert shareable_path(str(deep.parent / "teacher"), str(deep)) == str(deep.parent / "teacher")  # not there: kept
    assert shareable_path("org/model", str(deep)) == "org/model"  # a Hub id
    record = make_shareable({"teacher": {"path": str(elsewhere)}, "scores": [0.5], "task": "sst2"}, str(deep))
    assert record == {"teacher": {"path": "<local>/teacher"}, "scores": [0.5], "task": "sst2"}
