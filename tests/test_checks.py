"""Bad input is refused before any training step, with a message that names the fix.

The README's "Bad input" table lists each case with the test that covers it; the last test here
checks that every test the table names exists.
"""

import json
import os
import re

import pytest
import torch
from transformers.integrations import deepspeed as hf_deepspeed

from hf_distill import DistillationConfig, DistillationTrainer, create_student
from tests.conftest import offline_config, pad_collator, random_classification_dataset, save_pickle_only, tiny_teacher

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def args(tmp_path, **overrides):
    return offline_config(tmp_path, **{"max_steps": 1, **overrides})


def test_training_set_without_input_ids_is_refused(tmp_path):
    teacher = tiny_teacher()
    raw = random_classification_dataset(8).remove_columns(["input_ids", "attention_mask"]).add_column(
        "sentence", ["a review"] * 8)
    with pytest.raises(ValueError, match=r"no input_ids column .*tokenize the text first"):
        DistillationTrainer(model=create_student(teacher, layers=[0, 1]), teacher_model=teacher,
                            args=args(tmp_path), train_dataset=raw, data_collator=pad_collator)


def test_task_loss_without_labels_is_refused_but_pure_distillation_trains(tmp_path):
    teacher = tiny_teacher()
    unlabelled = random_classification_dataset(8).remove_columns(["labels"])
    with pytest.raises(ValueError, match=r"no labels column .*set task_weight=0"):
        DistillationTrainer(model=create_student(teacher, layers=[0, 1]), teacher_model=teacher,
                            args=args(tmp_path, task_weight=0.5), train_dataset=unlabelled)

    def collate(features):
        return {k: v for k, v in pad_collator([{**f, "labels": 0} for f in features]).items() if k != "labels"}

    trainer = DistillationTrainer(model=create_student(teacher, layers=[0, 1]), teacher_model=teacher,
                                  args=args(tmp_path, task_weight=0.0, kd_weight=1.0), train_dataset=unlabelled,
                                  data_collator=collate)
    trainer.train()
    assert trainer.state.global_step == 1


def test_pickle_teacher_loads_when_the_user_opts_in(tmp_path):
    teacher = tiny_teacher()
    save_pickle_only(teacher, tmp_path / "teacher")
    assert not (tmp_path / "teacher" / "model.safetensors").exists()
    trainer = DistillationTrainer(model=create_student(teacher, layers=[0, 1]), teacher_model=str(tmp_path / "teacher"),
                                  args=args(tmp_path / "out", teacher_model_init_kwargs={"use_safetensors": False}))
    torch.testing.assert_close(trainer.teacher.classifier.weight, teacher.classifier.weight)


def write_remote_code_model(folder, marker):
    """A model folder whose config points at Python code (auto_map) that leaves a marker file when run."""
    teacher = tiny_teacher()
    teacher.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "custom-bert"  # unknown to transformers: only the folder's code could build it
    config["auto_map"] = {"AutoConfig": "configuration_custom.CustomConfig",
                          "AutoModelForSequenceClassification": "modeling_custom.CustomModel"}
    (folder / "config.json").write_text(json.dumps(config))
    code = f"open({str(marker)!r}, 'w').write('ran')\nfrom transformers import BertConfig as CustomConfig\n"
    (folder / "configuration_custom.py").write_text(code)
    (folder / "modeling_custom.py").write_text(code.replace("BertConfig as CustomConfig",
                                                            "BertForSequenceClassification as CustomModel"))
    return teacher


def test_remote_code_is_not_run_by_default(tmp_path):
    marker = tmp_path / "code_ran"
    teacher = write_remote_code_model(tmp_path / "teacher", marker)
    with pytest.raises(ValueError, match=r"teacher_model_init_kwargs=\{'trust_remote_code': True\}"):
        DistillationTrainer(model=create_student(teacher, layers=[0, 1]), teacher_model=str(tmp_path / "teacher"),
                            args=args(tmp_path / "out"))
    assert not marker.exists()
    assert DistillationConfig(output_dir=str(tmp_path)).teacher_model_init_kwargs is None


def test_deepspeed_zero3_is_refused_with_the_alternatives(tmp_path, monkeypatch):
    teacher = tiny_teacher()
    config = args(tmp_path)
    monkeypatch.setattr(config, "deepspeed", {"zero_optimization": {"stage": 3}})
    monkeypatch.setattr(hf_deepspeed, "is_deepspeed_zero3_enabled", lambda: True)
    with pytest.raises(ValueError, match="ZeRO stage 3 .* Use ZeRO stage 1 or 2"):
        DistillationTrainer(model=create_student(teacher, layers=[0, 1]), teacher_model=teacher, args=config)


def test_every_test_named_in_the_troubleshooting_table_exists():
    page = open(os.path.join(ROOT, "docs", "troubleshooting.md"), encoding="utf-8").read()
    section = page.split("## Bad input", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", section)
    assert len(named) >= 12, named
    for path, name in named:
        assert os.path.isfile(os.path.join(ROOT, path)), f"{path} is named in docs/troubleshooting.md but does not exist"
        source = open(os.path.join(ROOT, path), encoding="utf-8").read()
        assert re.search(rf"def {name}\(", source), f"{path}::{name} is named in docs/troubleshooting.md but does not exist"
