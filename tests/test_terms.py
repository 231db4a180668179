"""The table of loss terms: one name per term, and a tiny run of each family logs every active term by it."""

import pytest
import torch
from transformers import BertForMaskedLM, BertForSequenceClassification

from hf_distill import terms
from hf_distill.config import DistillationConfig
from hf_distill.online.config import MutualLearningConfig, SelfDistillationConfig
from hf_distill.retrieval.config import RetrievalDistillationConfig
from tests.conftest import ALL_TERMS, offline_config, pad_collator, random_classification_dataset, tiny_bert_config


def test_each_family_config_declares_one_weight_field_per_term_with_help():
    for config_class, family in ((DistillationConfig, "task"), (RetrievalDistillationConfig, "retrieval"),
                                 (MutualLearningConfig, "mutual"), (SelfDistillationConfig, "self_distillation")):
        assert config_class.TERMS is terms.FAMILY_TERMS[family]
        fields = config_class.__dataclass_fields__
        for term in config_class.TERMS:
            assert term.weight_field in fields, (config_class.__name__, term.name)
            assert fields[term.weight_field].metadata.get("help"), term.weight_field
        names = [term.name for term in config_class.TERMS]
        assert len(names) == len(set(names))


def test_term_properties_follow_the_name():
    attention = terms.term_named(terms.TASK_TERMS, "attention")
    assert (attention.weight_field, attention.log_key) == ("attention_weight", "loss_attention")
    assert attention.needs_teacher and attention.unit == terms.TOKEN_PAIRS
    assert not terms.term_named(terms.TASK_TERMS, "task").needs_teacher
    with pytest.raises(KeyError, match="No loss term 'att'"):
        terms.term_named(terms.TASK_TERMS, "att")


def logged_term_keys(trainer) -> set:
    return {key for entry in trainer.state.log_history for key in entry
            if key.startswith("loss_") and key != "loss"}


def assert_logged_by_weight_names(trainer):
    """Every active term is logged as `loss_<name>` (or `loss_<name>_<part>`), and nothing else is."""
    active = [term for term in trainer.args.TERMS if getattr(trainer.args, term.weight_field) > 0]
    keys = logged_term_keys(trainer)
    for term in active:
        assert any(key == term.log_key or key.startswith(term.log_key + "_") for key in keys), (term.name, keys)
    names = {term.log_key for term in active}
    for key in keys:
        assert key in names or any(key.startswith(name + "_") and key[len(name) + 1:].startswith(("peer", "exit"))
                                   for name in names), key


def test_task_family_logs_every_term_under_its_name(tmp_path):
    from hf_distill import DistillationTrainer, create_student
    from tests.conftest import tiny_teacher

    teacher = tiny_teacher()
    student = create_student(teacher, num_layers=2, hidden_size=16, num_attention_heads=4)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=offline_config(
        tmp_path, max_steps=2, logging_steps=1, layer_map=[2, 4], **ALL_TERMS), train_dataset=random_classification_dataset(),
        data_collator=pad_collator)
    trainer.train()
    assert logged_term_keys(trainer) == {"loss_task", "loss_kd", "loss_cosine", "loss_hidden", "loss_embedding",
                                         "loss_attention"}
    assert_logged_by_weight_names(trainer)


def test_general_family_masked_lm_terms_are_logged_under_their_names(tmp_path):
    from hf_distill.general.trainer import GeneralDistillationTrainer

    torch.manual_seed(0)
    teacher = BertForMaskedLM(tiny_bert_config()).eval()
    student = BertForMaskedLM(tiny_bert_config(num_hidden_layers=2))
    rows = random_classification_dataset(16).remove_columns("labels")

    def collate(features):
        batch = pad_collator([{**f, "labels": 0} for f in features])
        labels = batch["input_ids"].clone()
        labels[:, ::2] = -100  # half the positions are "masked" targets
        return {**{k: v for k, v in batch.items() if k != "labels"}, "labels": labels}

    args = offline_config(tmp_path, max_steps=2, logging_steps=1, task_weight=0.0, kd_weight=5.0, mlm_weight=2.0,
                          cosine_weight=1.0, layer_map="last")
    trainer = GeneralDistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=rows,
                                         data_collator=collate)
    trainer.train()
    assert logged_term_keys(trainer) == {"loss_kd", "loss_mlm", "loss_cosine"}
    assert_logged_by_weight_names(trainer)


def test_retrieval_family_logs_every_term_under_its_name(tmp_path):
    from tests.retrieval.test_trainer import ALL_RETRIEVAL_TERMS, make_trainer, narrow_student, tiny_clip

    teacher = tiny_clip()
    trainer = make_trainer(tmp_path, narrow_student(teacher), teacher, max_steps=1, **ALL_RETRIEVAL_TERMS)
    trainer.train()
    assert logged_term_keys(trainer) == {"loss_contrastive", "loss_similarity_kd", "loss_embedding",
                                         "loss_rkd_distance", "loss_rkd_angle"}
    assert_logged_by_weight_names(trainer)


def test_mutual_family_logs_each_peers_terms_under_the_weight_names(tmp_path):
    from hf_distill.online import MutualLearningModel, MutualLearningTrainer
    from tests.online.test_mutual import dml_args, tiny_peers

    trainer = MutualLearningTrainer(model=MutualLearningModel(tiny_peers()), args=dml_args(tmp_path, max_steps=2),
                                    train_dataset=random_classification_dataset(16), data_collator=pad_collator)
    trainer.train()
    assert logged_term_keys(trainer) == {"loss_task_peer0", "loss_task_peer1", "loss_kd_peer0", "loss_kd_peer1"}
    assert_logged_by_weight_names(trainer)


def test_self_distillation_family_logs_each_exits_terms_under_the_weight_names(tmp_path):
    from hf_distill.online import SelfDistillationTrainer
    from tests.online.test_early_exit import sd_args

    torch.manual_seed(0)
    backbone = BertForSequenceClassification(tiny_bert_config(num_hidden_layers=3))
    trainer = SelfDistillationTrainer(model=backbone, args=sd_args(tmp_path, max_steps=2, hidden_weight=0.5),
                                      train_dataset=random_classification_dataset(16), data_collator=pad_collator)
    trainer.train()
    keys = logged_term_keys(trainer)
    assert {"loss_task_exit1", "loss_task_exit3", "loss_kd_exit1", "loss_hidden_exit2"} <= keys
    assert_logged_by_weight_names(trainer)
