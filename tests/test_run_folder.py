"""A run is never overwritten or mixed: the output folder is checked before training, checkpoints are atomic, and a
resumed checkpoint must belong to the run."""

import hashlib
import json
import os
import time

import pytest
import torch

from hf_distill import DistillationTrainer
from hf_distill.checks import RunFolderError, check_output_dir, check_writable, clear_previous_run
from hf_distill.runs import PARTIAL_CHECKPOINT_PREFIX, RUN_FINGERPRINT_NAME
from tests.conftest import ALL_TERMS, StopAfter, pad_collator, random_classification_dataset, tiny_teacher
from tests.test_trainer import make_args, narrow_student, run_steps


def checksums(folder) -> dict:
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return found


def test_a_second_run_into_a_finished_runs_folder_is_refused_and_leaves_it_untouched(tmp_path):
    first = run_steps(tmp_path, 4)
    first.save_model()
    before = checksums(tmp_path)
    assert {"model.safetensors", "results.json", "checkpoint-2/model.safetensors"} <= set(before)
    with pytest.raises(RunFolderError, match=r"already holds a run \(checkpoint-2, checkpoint-4, model.safetensors, "
                                             r"results.json\).*--output_dir NEW.*--overwrite_output_dir true"):
        run_steps(tmp_path, 4)
    assert checksums(tmp_path) == before


def test_overwrite_output_dir_replaces_the_run_and_clears_its_checkpoints(tmp_path):
    run_steps(tmp_path, 4)
    (tmp_path / "checkpoint-9").mkdir()  # a checkpoint of the old run that the new one would never write
    teacher = tiny_teacher()
    args = make_args(tmp_path, max_steps=2, save_strategy="steps", save_steps=2, overwrite_output_dir=True)
    trainer = DistillationTrainer(model=narrow_student(teacher), teacher_model=teacher, args=args,
                                  train_dataset=random_classification_dataset(16), data_collator=pad_collator)
    trainer.train()
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2"]
    saved = json.load(open(tmp_path / "checkpoint-2" / "trainer_state.json"))
    assert saved["max_steps"] == 2  # the new run's checkpoint, not the old one


def test_clear_previous_run_removes_checkpoints_partials_and_the_record_only(tmp_path):
    for name in ("checkpoint-2", f"{PARTIAL_CHECKPOINT_PREFIX}checkpoint-4", "data"):
        (tmp_path / name).mkdir()
    for name in ("results.json", RUN_FINGERPRINT_NAME, "notes.txt"):
        (tmp_path / name).write_text("x")
    removed = clear_previous_run(str(tmp_path))
    assert removed == [f"{PARTIAL_CHECKPOINT_PREFIX}checkpoint-4", "checkpoint-2", RUN_FINGERPRINT_NAME, "results.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "notes.txt"]


def test_a_folder_without_a_run_and_resuming_are_accepted(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    check_output_dir(str(tmp_path), overwrite=False, resume=None)  # no run in it
    (tmp_path / "checkpoint-2").mkdir()
    check_output_dir(str(tmp_path), overwrite=False, resume=True)  # resuming continues the folder's run
    with pytest.raises(RunFolderError):
        check_output_dir(str(tmp_path), overwrite=False, resume=None)


def test_an_unwritable_output_folder_is_refused_before_the_run_loads_anything(tmp_path, monkeypatch, capsys):
    """The CLI checks the folder before it reads the data or loads a model (here: no model exists at all)."""
    from hf_distill.cli import main

    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path).startswith(str(tmp_path)) else
                        real_access(path, mode))
    start = time.time()
    assert main(["train", "--task_name", "sst2", "--teacher_model_name_or_path", str(tmp_path / "no-teacher"),
                 "--output_dir", str(tmp_path / "out"), "--report_to", "none"]) == 2
    assert time.time() - start < 1.0
    err = capsys.readouterr().err
    assert err.startswith("hf-distill train: error: Cannot write to") and "(--output_dir)" in err
    assert len(err.strip().splitlines()) == 1


def test_a_disk_without_room_for_a_checkpoint_is_refused(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: type("Usage", (), {"free": 10_000_000})())
    with pytest.raises(OSError, match=r"has 10 MB free but one checkpoint of this run needs about 30 MB"):
        check_writable(str(tmp_path), needed_bytes=30_000_000)


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint_as_the_latest_and_resume_works(tmp_path, monkeypatch):
    """A kill or a full disk during a save (simulated by failing the optimizer write of checkpoint-4) leaves no
    partial checkpoint that resume would pick; resuming the latest complete one ends equal to an uninterrupted run."""
    import errno

    full = run_steps(tmp_path / "full", 6)
    real = DistillationTrainer._save_optimizer_and_scheduler

    def fail_at_step_4(self, output_dir):
        if self.state.global_step == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, output_dir)

    monkeypatch.setattr(DistillationTrainer, "_save_optimizer_and_scheduler", fail_at_step_4)
    with pytest.raises(OSError, match=r"is full: checkpoint-4 could not be written and was removed, so the latest "
                                      r"complete checkpoint is .*checkpoint-2"):
        run_steps(tmp_path / "part", 6)
    monkeypatch.setattr(DistillationTrainer, "_save_optimizer_and_scheduler", real)
    assert sorted(p.name for p in (tmp_path / "part").iterdir() if "checkpoint" in p.name) == ["checkpoint-2"]
    resumed = run_steps(tmp_path / "part", 6, resume="latest")
    assert resumed.state.global_step == 6
    for (name, a), (_, b) in zip(full.model.named_parameters(), resumed.model.named_parameters()):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0, msg=name)


def test_a_partial_checkpoint_left_by_a_kill_is_ignored_and_removed(tmp_path):
    run_steps(tmp_path, 4, stop_after=2)
    partial = tmp_path / f"{PARTIAL_CHECKPOINT_PREFIX}checkpoint-3" / "checkpoint-3"
    partial.mkdir(parents=True)
    (partial / "model.safetensors").write_bytes(b"half a file")
    resumed = run_steps(tmp_path, 4, resume=True)
    assert resumed.state.global_step == 4
    assert not partial.parent.exists()


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path):
    run_steps(tmp_path, 4, stop_after=2)
    fingerprint = json.load(open(tmp_path / "checkpoint-2" / RUN_FINGERPRINT_NAME))
    assert set(fingerprint) == {"trainer", "model", "teacher", "data", "terms"}
    teacher = tiny_teacher()
    args = make_args(tmp_path, **{**ALL_TERMS, "kd_weight": 0.1}, max_steps=4, save_strategy="steps", save_steps=2,
                     learning_rate=1e-2)
    other = DistillationTrainer(model=narrow_student(teacher), teacher_model=teacher, args=args,
                                train_dataset=random_classification_dataset(40, variable_length=True, seed=3),
                                data_collator=pad_collator, callbacks=[StopAfter(3)])
    with pytest.raises(ValueError, match=r"checkpoint-2 belongs to another run \(its data, terms differ"):
        other.train(resume_from_checkpoint=True)


def test_resume_latest_without_a_checkpoint_says_so(tmp_path):
    teacher = tiny_teacher()
    trainer = DistillationTrainer(model=narrow_student(teacher), teacher_model=teacher,
                                  args=make_args(tmp_path, max_steps=1, hidden_weight=1.0),
                                  train_dataset=random_classification_dataset(8), data_collator=pad_collator)
    with pytest.raises(FileNotFoundError, match="has no complete checkpoint"):
        trainer.train(resume_from_checkpoint="latest")


@pytest.mark.parametrize("value, expected", [("true", True), ("latest", True), ("false", None), ("ckpt/dir", "ckpt/dir")])
def test_resume_from_checkpoint_takes_true_and_latest_on_the_command_line(value, expected):
    from hf_distill.recipes import parse_recipe

    *_, config = parse_recipe(None, ["--output_dir", "x", "--resume_from_checkpoint", value])
    assert config.resume_from_checkpoint == expected
