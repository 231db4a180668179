"""No family ever writes the Hub token to a file: not in training_args.bin, checkpoints, results.json or the card."""

import os

import pytest
import torch
from transformers import BertForMaskedLM, BertForSequenceClassification

from hf_distill.cli import main
from tests.conftest import ALL_TERMS, offline_config, pad_collator, random_classification_dataset, tiny_bert_config
from tests.helpers.run_folders import FAKE_TOKEN
from tests.hub.test_push import files_holding

SAVE_EVERY_STEP = dict(max_steps=2, save_strategy="steps", save_steps=1, hub_token=FAKE_TOKEN)


def task_trainer(output_dir):
    from hf_distill import DistillationTrainer, create_student
    from tests.conftest import tiny_teacher

    teacher = tiny_teacher()
    return DistillationTrainer(model=create_student(teacher, num_layers=2, hidden_size=16), teacher_model=teacher,
                               args=offline_config(output_dir, layer_map=[2, 4], **ALL_TERMS, **SAVE_EVERY_STEP),
                               train_dataset=random_classification_dataset(8), data_collator=pad_collator)


def general_trainer(output_dir):
    from hf_distill.general.trainer import GeneralDistillationTrainer

    torch.manual_seed(0)
    teacher, student = BertForMaskedLM(tiny_bert_config()).eval(), BertForMaskedLM(tiny_bert_config(num_hidden_layers=2))

    def collate(features):
        batch = pad_collator([{**f, "labels": 0} for f in features])
        return {**{k: v for k, v in batch.items() if k != "labels"}, "labels": batch["input_ids"].clone()}

    return GeneralDistillationTrainer(
        model=student, teacher_model=teacher, data_collator=collate,
        args=offline_config(output_dir, task_weight=0.0, kd_weight=1.0, mlm_weight=1.0, **SAVE_EVERY_STEP),
        train_dataset=random_classification_dataset(8).remove_columns("labels"))


def retrieval_trainer(output_dir):
    from tests.retrieval.test_trainer import make_trainer, narrow_student, tiny_clip

    teacher = tiny_clip()
    return make_trainer(output_dir, narrow_student(teacher), teacher, embedding_weight=1.0, **SAVE_EVERY_STEP)


def mutual_trainer(output_dir):
    from hf_distill.online import MutualLearningModel, MutualLearningTrainer
    from tests.online.test_mutual import dml_args, tiny_peers

    return MutualLearningTrainer(model=MutualLearningModel(tiny_peers()), args=dml_args(output_dir, **SAVE_EVERY_STEP),
                                 train_dataset=random_classification_dataset(8), data_collator=pad_collator)


def self_distillation_trainer(output_dir):
    from hf_distill.online import SelfDistillationTrainer
    from tests.online.test_early_exit import sd_args

    torch.manual_seed(0)
    backbone = BertForSequenceClassification(tiny_bert_config(num_hidden_layers=3))
    return SelfDistillationTrainer(model=backbone, args=sd_args(output_dir, hidden_weight=0.5, **SAVE_EVERY_STEP),
                                   train_dataset=random_classification_dataset(8), data_collator=pad_collator)


@pytest.mark.parametrize("make", [task_trainer, general_trainer, retrieval_trainer, mutual_trainer,
                                  self_distillation_trainer], ids=lambda make: make.__name__)
def test_no_family_writes_the_token_given_in_the_config_or_the_environment(tmp_path, monkeypatch, make):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    trainer = make(tmp_path / "run")
    trainer.train()
    trainer.save_model()
    trainer.create_model_card()
    saved = [path for path in (tmp_path / "run").rglob("training_args.bin")]
    assert len(saved) == 3  # the run folder and both checkpoints
    assert trainer.args.hub_token == FAKE_TOKEN  # the trainer still has it for uploads
    assert files_holding(str(tmp_path), FAKE_TOKEN) == []


def test_a_token_in_the_recipe_file_reaches_no_file(tmp_path, monkeypatch):
    """The task family from the command line with the token in the YAML recipe (the flag and HF_TOKEN are tested
    with `tests/helpers/run_folders.py`'s run)."""
    from tests.helpers.run_folders import make_tiny_run

    def main_with_token_in_yaml(argv):
        recipe = argv[1]
        with_token = tmp_path / "with_token.yaml"
        with_token.write_text(open(recipe).read() + f"\nhub_token: {FAKE_TOKEN}\n")
        flags = [token for i, token in enumerate(argv[2:], start=2)
                 if token != "--hub_token" and argv[i - 1] != "--hub_token"]
        return main([argv[0], str(with_token), *flags])

    monkeypatch.setattr("tests.helpers.run_folders.main", main_with_token_in_yaml)
    folder = make_tiny_run(tmp_path)
    assert os.path.isfile(os.path.join(folder, "results.json"))
    found = files_holding(str(tmp_path), FAKE_TOKEN)
    assert found == [str(tmp_path / "with_token.yaml")]  # the user's own recipe, nothing the run wrote
