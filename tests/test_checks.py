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


# ------------------------------------------------------------------ checked before step 1, printed as one line


def cli_error(capsys, *argv) -> str:
    """Runs `hf-distill` and returns its one error line (asserting exit status 2 and one line on stderr)."""
    from hf_distill.cli import main

    assert main(list(argv)) == 2
    lines = capsys.readouterr().err.strip().splitlines()  # progress bars may come before it
    errors = [line for line in lines if "error" in line.lower() or "Traceback" in line]
    assert len(errors) == 1 and errors[0] == lines[-1], lines
    assert lines[-1].startswith(f"hf-distill {argv[0]}: error: "), lines[-1]
    return lines[-1]


@pytest.fixture
def sst2_folder(tmp_path):
    """A teacher (saved tiny model + tokenizer) and an SST-2 layout with a dev file."""
    from transformers import AutoModelForSequenceClassification

    from tests.conftest import tiny_bert_config
    from tests.test_cli import tiny_tokenizer, write

    tokenizer = tiny_tokenizer(tmp_path / "tok")
    teacher = tmp_path / "teacher"
    AutoModelForSequenceClassification.from_config(tiny_bert_config(vocab_size=len(tokenizer))).save_pretrained(teacher)
    tokenizer.save_pretrained(teacher)
    for split in ("train", "dev"):
        write(tmp_path / "glue" / "SST-2" / f"{split}.tsv", "sentence\tlabel\ngood w1\t1\nbad w2\t0\n")
    common = ["--task_name", "sst2", "--data_dir", str(tmp_path / "glue"), "--teacher_model_name_or_path",
              str(teacher), "--student_num_layers", "2", "--max_steps", "1", "--report_to", "none", "--use_cpu", "true",
              "--output_dir", str(tmp_path / "out")]
    return tmp_path, common


@pytest.mark.parametrize("content, message", [
    ("sentence,label\n,1\ngood w1,0\n", r"1 example\(s\) have no text in column 'sentence' \(rows 1\)"),
    ("sentence,label\n", r"has a header but no rows"),
    ("sentence,label\ngood w1,1\nbad w2,positiv\nw3,0\n", r"unknown label\(s\) \['positiv'\] for sst2"),
], ids=["empty-text", "header-only", "bad-label"])
def test_bad_csv_training_files_are_named_in_one_line(sst2_folder, capsys, content, message):
    root, common = sst2_folder
    (root / "train.csv").write_text(content)
    err = cli_error(capsys, "train", os.path.join(ROOT, "recipes", "glue", "distilbert.yaml"), *common,
                    "--train_file", str(root / "train.csv"))
    assert re.search(message, err), err
    assert str(root / "train.csv") in err
    assert not (root / "out").exists()  # refused before training


def test_a_train_file_that_is_not_utf8_names_the_line(sst2_folder, capsys):
    root, common = sst2_folder
    (root / "train.csv").write_bytes("sentence,label\ngood w1,1\ncaf\xe9 w2,0\n".encode("latin-1"))
    err = cli_error(capsys, "train", os.path.join(ROOT, "recipes", "glue", "distilbert.yaml"), *common,
                    "--train_file", str(root / "train.csv"))
    assert f"{root / 'train.csv'}, line 3, column 4: byte 0xe9 is not utf-8 text" in err


def test_labels_written_as_indices_are_accepted_beside_names(tmp_path):
    from hf_distill.tasks.glue import load_glue

    (tmp_path / "train.csv").write_text("sentence,label\ngood,1\nbad,negative\nfine,positive\nmeh,0\n")
    train = load_glue("sst2", data_files={"train": str(tmp_path / "train.csv")})["train"]
    assert train["label"] == [1, 0, 1, 0]


def test_student_layers_that_are_not_numbers_fail_when_the_recipe_is_parsed(sst2_folder, capsys):
    _, common = sst2_folder
    common = [token for token in common if token not in ("--student_num_layers", "2")]
    err = cli_error(capsys, "train", *common, "--student_layers", "a,b")
    assert "student_layers must be 0-based layer numbers separated by commas, such as '0,2,4'; got 'a,b'" in err


def test_duplicate_recipe_keys_are_refused(tmp_path, capsys):
    (tmp_path / "r.yaml").write_text("kd_weight: 0.5\ntemperature: 2\nkd_weight: 0.9\n")
    err = cli_error(capsys, "train", str(tmp_path / "r.yaml"))
    assert "the key 'kd_weight' is given twice (lines 1 and 3)" in err


def test_fp16_without_a_gpu_is_refused_not_silently_ignored(tmp_path, monkeypatch):
    # TrainingArguments exports its mixed precision to the environment for accelerate: undo it after this test.
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    with pytest.raises(ValueError, match="fp16=True needs a GPU .* Drop fp16, or use bf16=True"):
        DistillationConfig(output_dir=str(tmp_path), fp16=True, use_cpu=True)
    assert DistillationConfig(output_dir=str(tmp_path), bf16=True, use_cpu=True).bf16  # CPU autocast is real


def test_push_to_hub_while_offline_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE is set.*hf-distill push"):
        DistillationConfig(output_dir=str(tmp_path), push_to_hub=True, hub_model_id="me/x")


def test_a_pickle_only_teacher_on_the_command_line_names_the_flag(sst2_folder, capsys):
    root, common = sst2_folder
    teacher = root / "teacher"
    model_file = teacher / "model.safetensors"
    torch.save({}, teacher / "pytorch_model.bin")
    model_file.unlink()
    err = cli_error(capsys, "train", os.path.join(ROOT, "recipes", "glue", "distilbert.yaml"), *common)
    assert "holds pickle (.bin) weights only" in err and "pass --use_safetensors false" in err


def test_corrupt_weights_name_the_file(sst2_folder, capsys, tmp_path):
    root, common = sst2_folder
    (root / "teacher" / "model.safetensors").write_bytes(b"not a safetensors file")
    err = cli_error(capsys, "train", os.path.join(ROOT, "recipes", "glue", "distilbert.yaml"), *common)
    assert str(root / "teacher") in err and ("corrupt" in err or "Could not load the teacher" in err)
    heads = tmp_path / "heads.safetensors"
    heads.write_bytes(b"\x00" * 16)
    from hf_distill.layers import DistillationHeads, load_heads_into

    with pytest.raises(ValueError, match=f"{heads} is corrupt or not a safetensors file"):
        load_heads_into(DistillationHeads(16, 32, 2, hidden=True, embedding=False, cosine=False), str(heads))


def test_an_example_longer_than_the_position_table_is_refused_before_training(tmp_path):
    teacher = tiny_teacher(max_position_embeddings=16)
    long = random_classification_dataset(8, length=20)
    with pytest.raises(ValueError, match="training set holds an example of 20 tokens but the student reads at most 16"):
        DistillationTrainer(model=create_student(teacher, layers=[0, 1]), teacher_model=teacher,
                            args=args(tmp_path), train_dataset=long, data_collator=pad_collator)


def test_a_recipe_longer_than_the_models_positions_is_truncated_with_one_warning(tmp_path, caplog):
    from hf_distill.checks import fit_sequence_length

    teacher = tiny_teacher(max_position_embeddings=64)
    teacher.save_pretrained(tmp_path / "teacher")
    with caplog.at_level("WARNING", logger="hf_distill.checks"):
        fitted = fit_sequence_length(128, {"teacher": str(tmp_path / "teacher"), "student": None})
    assert fitted == 64
    assert len(caplog.records) == 1 and "texts are truncated to 64 tokens" in caplog.text
    assert fit_sequence_length(32, {"teacher": str(tmp_path / "teacher")}) == 32


def test_glue_from_the_hub_while_offline_names_the_local_options(monkeypatch):
    from hf_distill.tasks.glue import load_glue

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(ConnectionError, match="the Hub cannot be reached .*pass --data_dir .*--train_file"):
        load_glue("sst2")
