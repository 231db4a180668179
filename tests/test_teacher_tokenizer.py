"""A teacher with its own tokenizer: its tokens beside the student's, the terms that work across vocabularies
(soft targets, cached too, and the pooled representation), the alignment for the hidden-state terms, and
the refusals."""

import json
import math
import os
import string

import pytest
import torch
from datasets import Dataset
from transformers import (
    AutoModelForSequenceClassification,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertTokenizerFast,
    DataCollatorWithPadding,
)

from hf_distill import DistillationTrainer, add_teacher_inputs, precompute_teacher_outputs
from hf_distill.cli import main
from hf_distill.losses import hidden_mse_loss
from hf_distill.teacher_inputs import TeacherInputsCollator, align_to_student, encode_for_teacher
from tests.conftest import offline_config, tiny_bert_config
from tests.test_cli import RECIPES, write

STUDENT_WORDS = [f"w{i}" for i in range(30)] + ["good", "bad"]
CHARACTERS = list(string.ascii_lowercase) + list("0123456789")
TEXTS = ["good w1 w2", "bad w3", "w4 good", "bad bad w5", "w12 w20 good", "bad"] * 4
LABELS = [1, 0, 1, 0, 1, 0] * 4


def _tokenizer(folder, tokens):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.txt"), "w") as file:
        file.write("\n".join(tokens))
    return BertTokenizerFast(os.path.join(folder, "vocab.txt"))


@pytest.fixture(scope="module")
def student_tokenizer(tmp_path_factory):
    """Word-level: one token per word."""
    return _tokenizer(str(tmp_path_factory.mktemp("student_vocab")), ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
                                                                      *STUDENT_WORDS])


@pytest.fixture(scope="module")
def teacher_tokenizer(tmp_path_factory):
    """Character-level word pieces, another vocabulary (size, order, and a padding id that is not 0)."""
    pieces = CHARACTERS + ["##" + c for c in CHARACTERS]
    return _tokenizer(str(tmp_path_factory.mktemp("teacher_vocab")), ["[UNK]", "[CLS]", "[SEP]", "[MASK]", "[PAD]",
                                                                      *pieces])


def _datasets(student_tokenizer, teacher_tokenizer, align=False):
    raw = Dataset.from_dict({"sentence": TEXTS, "labels": LABELS})
    data = raw.map(lambda batch: student_tokenizer(batch["sentence"], truncation=True), batched=True)
    data = add_teacher_inputs(data, teacher_tokenizer, ["sentence"],
                              student_tokenizer=student_tokenizer if align else None)
    return data.remove_columns(["sentence"])


def _teacher(teacher_tokenizer, sharp=True):
    torch.manual_seed(1)
    teacher = BertForSequenceClassification(tiny_bert_config(vocab_size=len(teacher_tokenizer))).eval()
    if sharp:  # confident, input-dependent predictions, so the soft targets carry something to learn
        with torch.no_grad():
            teacher.classifier.weight.mul_(40.0)
    return teacher


def _student(student_tokenizer, hidden_size=16, seed=2):
    torch.manual_seed(seed)
    return BertForSequenceClassification(tiny_bert_config(vocab_size=len(student_tokenizer), hidden_size=hidden_size,
                                                          num_attention_heads=2, num_hidden_layers=2))


def test_alignment_maps_each_student_token_to_the_teacher_token_holding_its_first_character(
        student_tokenizer, teacher_tokenizer):
    # student: [CLS] good w12 [SEP] | [CLS] w3 [SEP] bad [SEP]
    # teacher: [CLS] g ##o ##o ##d w ##1 ##2 [SEP] | [CLS] w ##3 [SEP] b ##a ##d [SEP]
    single = encode_for_teacher(teacher_tokenizer, [["good w12"]], student_tokenizer=student_tokenizer)
    assert teacher_tokenizer.convert_ids_to_tokens(single["teacher_input_ids"][0]) == [
        "[CLS]", "g", "##o", "##o", "##d", "w", "##1", "##2", "[SEP]"]
    assert single["teacher_token_index"] == [[0, 1, 5, -1]]
    pair = encode_for_teacher(teacher_tokenizer, [["w3"], ["bad"]], student_tokenizer=student_tokenizer)
    assert pair["teacher_token_index"] == [[0, 1, -1, 4, -1]]  # "bad" is found in the second sequence only
    assert pair["teacher_token_type_ids"] == [[0, 0, 0, 0, 1, 1, 1, 1]]


def test_add_teacher_inputs_refuses_an_alignment_made_with_another_tokenization(student_tokenizer, teacher_tokenizer):
    raw = Dataset.from_dict({"sentence": ["good w1 w2 w3"]})
    data = raw.map(lambda batch: student_tokenizer(batch["sentence"], truncation=True, max_length=4), batched=True)
    with pytest.raises(ValueError, match="max_length that tokenized the dataset"):
        add_teacher_inputs(data, teacher_tokenizer, ["sentence"], student_tokenizer=student_tokenizer)
    with pytest.raises(ValueError, match="text columns"):
        add_teacher_inputs(data.remove_columns(["sentence"]), teacher_tokenizer, ["sentence"])


def test_collator_pads_the_teacher_tokens_with_the_teachers_padding_and_the_alignment_with_minus_one(
        student_tokenizer, teacher_tokenizer):
    data = _datasets(student_tokenizer, teacher_tokenizer, align=True)
    collate = TeacherInputsCollator(DataCollatorWithPadding(student_tokenizer), teacher_tokenizer)
    batch = collate([data[5], data[4]])  # "bad" (3 student + 5 teacher tokens), "w12 w20 good" (5 + 12)
    assert batch["input_ids"].shape == (2, 5) and batch["teacher_input_ids"].shape == (2, 12)
    assert teacher_tokenizer.pad_token_id == 4
    assert batch["teacher_input_ids"][0, 5:].tolist() == [4] * 7
    assert batch["teacher_attention_mask"][0].tolist() == [1] * 5 + [0] * 7
    assert batch["input_ids"][0, 3:].tolist() == [student_tokenizer.pad_token_id] * 2
    # [CLS] w ##1 ##2 w ##2 ##0 g ##o ##o ##d [SEP]: w12 -> 1, w20 -> 4, good -> 7
    assert batch["teacher_token_index"].tolist() == [[0, 1, -1, -1, -1], [0, 1, 4, 7, -1]]


def test_teacher_reads_its_own_tokens_and_the_student_never_sees_them(tmp_path, student_tokenizer, teacher_tokenizer):
    teacher, student = _teacher(teacher_tokenizer), _student(student_tokenizer)
    seen = {"teacher": [], "student": []}
    teacher.register_forward_pre_hook(lambda m, a, kw: seen["teacher"].append(kw["input_ids"]), with_kwargs=True)
    student.register_forward_pre_hook(lambda m, a, kw: seen["student"].append(set(kw)), with_kwargs=True)
    args = offline_config(tmp_path, kd_weight=1.0, task_weight=0.0, pooled_weight=1.0, max_steps=2,
                          per_device_train_batch_size=4)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args,
                                  train_dataset=_datasets(student_tokenizer, teacher_tokenizer),
                                  processing_class=student_tokenizer, teacher_processing_class=teacher_tokenizer)
    trainer.train()
    first = seen["teacher"][0]
    assert int(first.max()) >= len(student_tokenizer)  # ids only the teacher's vocabulary has
    for row in first:  # each row is the teacher's tokenization of a training text, padded with its [PAD]
        text = teacher_tokenizer.decode(row, skip_special_tokens=True)
        assert text in TEXTS
        length = len(teacher_tokenizer(text)["input_ids"])
        assert row[:length].tolist() == teacher_tokenizer(text)["input_ids"]
        assert set(row[length:].tolist()) <= {teacher_tokenizer.pad_token_id}
    assert all(not any(key.startswith("teacher_") for key in keys) for keys in seen["student"])
    logged = [entry for entry in trainer.state.log_history if "loss_kd" in entry]
    assert logged and all(math.isfinite(entry["loss_kd"]) and math.isfinite(entry["loss_pooled"]) for entry in logged)
    assert trainer.run_record()["recipe"]["teacher_tokenizer"] == (teacher_tokenizer.name_or_path or type(teacher_tokenizer).__name__)


def test_soft_targets_are_learned_across_vocabularies(tmp_path, student_tokenizer, teacher_tokenizer):
    """The student, reading its own tokens, comes to predict what the teacher predicts from the teacher's."""
    teacher, student = _teacher(teacher_tokenizer), _student(student_tokenizer)
    data = _datasets(student_tokenizer, teacher_tokenizer)
    args = offline_config(tmp_path, kd_weight=1.0, task_weight=0.0, max_steps=60, learning_rate=3e-3,
                          per_device_train_batch_size=8, lr_scheduler_type="constant")
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=data,
                                  processing_class=student_tokenizer, teacher_processing_class=teacher_tokenizer)
    trainer.train()
    kd = [entry["loss_kd"] for entry in trainer.state.log_history if "loss_kd" in entry]
    assert sum(kd[-5:]) / 5 < 0.25 * sum(kd[:5]) / 5
    batch = TeacherInputsCollator(DataCollatorWithPadding(student_tokenizer), teacher_tokenizer)([data[i] for i in range(6)])
    with torch.no_grad():
        teacher_says = teacher(input_ids=batch["teacher_input_ids"], attention_mask=batch["teacher_attention_mask"])
        student_says = student.eval()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert teacher_says.logits.argmax(-1).tolist() == student_says.logits.argmax(-1).tolist()


def test_cached_teacher_logits_come_from_the_teachers_own_tokens(tmp_path, student_tokenizer, teacher_tokenizer):
    teacher = _teacher(teacher_tokenizer)
    data = _datasets(student_tokenizer, teacher_tokenizer)
    cached = precompute_teacher_outputs(teacher, data, batch_size=5, tokenizer=teacher_tokenizer)
    with torch.no_grad():
        direct = teacher(**teacher_tokenizer(TEXTS[1], return_tensors="pt")).logits[0]
    assert torch.allclose(torch.tensor(cached[1]["teacher_logits"]), direct, atol=1e-5)
    # No teacher in memory: the soft targets come from the column, and Trainer drops the teacher's tokens.
    args = offline_config(tmp_path, kd_weight=1.0, task_weight=0.0, max_steps=2, per_device_train_batch_size=4)
    trainer = DistillationTrainer(model=_student(student_tokenizer), args=args, train_dataset=cached,
                                  processing_class=student_tokenizer)
    trainer.train()
    assert any(math.isfinite(entry.get("loss_kd", math.nan)) for entry in trainer.state.log_history)


def test_aligned_hidden_term_compares_each_student_token_with_its_teacher_token(
        tmp_path, student_tokenizer, teacher_tokenizer):
    teacher, student = _teacher(teacher_tokenizer, sharp=False), _student(student_tokenizer, hidden_size=32)
    data = _datasets(student_tokenizer, teacher_tokenizer, align=True)
    args = offline_config(tmp_path, kd_weight=0.0, task_weight=0.0, hidden_weight=1.0, layer_map="2,4")
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=data,
                                  processing_class=student_tokenizer, teacher_processing_class=teacher_tokenizer)
    batch = trainer.data_collator([data[i] for i in (0, 4, 5)])
    loss = trainer.compute_loss(student, dict(batch))
    with torch.no_grad():
        t_hidden = teacher(input_ids=batch["teacher_input_ids"], attention_mask=batch["teacher_attention_mask"],
                           output_hidden_states=True).hidden_states
        s_hidden = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           output_hidden_states=True).hidden_states
    index = batch["teacher_token_index"]
    # By hand: student token j of example b against teacher token index[b, j], over the aligned real tokens.
    keep = (batch["attention_mask"] * (index >= 0)).bool()
    expected = 0.0
    for s_layer, t_layer in ((1, 2), (2, 4)):
        rows = [(b, j) for b in range(3) for j in range(index.shape[1]) if keep[b, j]]
        diffs = [(s_hidden[s_layer][b, j] - t_hidden[t_layer][b, int(index[b, j])]).pow(2).mean() for b, j in rows]
        expected += float(torch.stack(diffs).mean())
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    gathered = align_to_student(t_hidden[2], index)
    assert torch.equal(gathered[1, 2], t_hidden[2][1, 4]) and not gathered[0, 4].any()  # [SEP]: no teacher token
    assert hidden_mse_loss(s_hidden[1], gathered, keep.long()).item() == pytest.approx(
        float(torch.stack([(s_hidden[1][b, j] - t_hidden[2][b, int(index[b, j])]).pow(2).mean()
                           for b in range(3) for j in range(index.shape[1]) if keep[b, j]]).mean()), rel=1e-5)


@pytest.mark.parametrize("weights, data_kind, message", [
    ({"attention_weight": 1.0}, "plain", "token pair by token pair"),
    ({"query_relation_weight": 1.0, "relation_heads": 2}, "plain", "token pair by token pair"),
    ({"hidden_weight": 1.0}, "plain", "teacher_token_index"),
    ({"cosine_weight": 1.0}, "plain", "--align_teacher_tokens"),
    ({"kd_weight": 1.0}, "no teacher tokens", "add_teacher_inputs"),
])
def test_terms_that_need_the_same_tokens_are_refused_before_training(
        tmp_path, student_tokenizer, teacher_tokenizer, weights, data_kind, message):
    data = _datasets(student_tokenizer, teacher_tokenizer)
    if data_kind == "no teacher tokens":
        data = data.remove_columns(["teacher_input_ids", "teacher_attention_mask", "teacher_token_type_ids"])
    values = {"kd_weight": 0.0, "task_weight": 0.0, **weights}
    with pytest.raises(ValueError, match=message):
        DistillationTrainer(model=_student(student_tokenizer), teacher_model=_teacher(teacher_tokenizer),
                            args=offline_config(tmp_path, **values), train_dataset=data,
                            processing_class=student_tokenizer, teacher_processing_class=teacher_tokenizer)


def test_a_masked_lm_student_cannot_take_per_token_soft_targets_from_another_vocabulary(
        tmp_path, student_tokenizer, teacher_tokenizer):
    student = BertForMaskedLM(tiny_bert_config(vocab_size=len(student_tokenizer)))
    teacher = BertForMaskedLM(tiny_bert_config(vocab_size=len(teacher_tokenizer)))
    with pytest.raises(ValueError, match="per-token soft targets need the same tokens"):
        DistillationTrainer(model=student, teacher_model=teacher, args=offline_config(tmp_path, kd_weight=1.0,
                            task_weight=0.0), train_dataset=_datasets(student_tokenizer, teacher_tokenizer),
                            teacher_processing_class=teacher_tokenizer)


def test_other_vocabulary_without_a_teacher_tokenizer_names_the_option(tmp_path, student_tokenizer, teacher_tokenizer):
    data = _datasets(student_tokenizer, teacher_tokenizer)
    with pytest.raises(ValueError, match="teacher_tokenizer_name_or_path"):
        DistillationTrainer(model=_student(student_tokenizer), teacher_model=_teacher(teacher_tokenizer),
                            args=offline_config(tmp_path), train_dataset=data, processing_class=student_tokenizer)
    # Same vocabulary size, but teacher tokens in the data and no tokenizer to say whose they are.
    same_size = _student(student_tokenizer)
    with pytest.raises(ValueError, match="teacher would read the student's tokens"):
        DistillationTrainer(model=_student(student_tokenizer), teacher_model=same_size, args=offline_config(tmp_path),
                            train_dataset=data, processing_class=student_tokenizer)
    with pytest.raises(ValueError, match="EMA teacher is a copy of the student"):
        DistillationTrainer(model=_student(student_tokenizer), teacher_model="ema", args=offline_config(tmp_path),
                            train_dataset=data, processing_class=student_tokenizer,
                            teacher_processing_class=teacher_tokenizer)


def test_command_line_run_with_a_teacher_tokenizer_and_aligned_tokens(tmp_path, student_tokenizer, teacher_tokenizer):
    """`hf-distill train` with the shipped recipe: the teacher reads its tokens in training and in its evaluation
    (its score equals the teacher run's own), the student its own; the alignment feeds the cosine term."""
    teacher_base, student_base = tmp_path / "teacher_base", tmp_path / "student_base"
    _teacher(teacher_tokenizer, sharp=False).save_pretrained(teacher_base)
    teacher_tokenizer.save_pretrained(teacher_base)
    _student(student_tokenizer).save_pretrained(student_base)
    student_tokenizer.save_pretrained(student_base)
    body = "sentence\tlabel\n" + "".join(f"{s} \t{label}\n" for s, label in zip(TEXTS, LABELS))
    write(tmp_path / "glue" / "SST-2" / "train.tsv", body)
    write(tmp_path / "glue" / "SST-2" / "dev.tsv", body)
    common = ["--task_name", "sst2", "--data_dir", str(tmp_path / "glue"), "--max_steps", "3", "--max_seq_length", "32",
              "--per_device_train_batch_size", "4", "--report_to", "none", "--use_cpu", "true",
              "--save_strategy", "no", "--disable_tqdm", "true", "--eval_strategy", "no"]
    teacher_dir, student_dir = tmp_path / "teacher", tmp_path / "student"
    assert main(["train", os.path.join(RECIPES, "glue", "teacher.yaml"), *common, "--model_name_or_path",
                 str(teacher_base), "--output_dir", str(teacher_dir)]) == 0
    assert main(["train", os.path.join(RECIPES, "glue", "teacher_tokenizer.yaml"), *common,
                 "--teacher_model_name_or_path", str(teacher_dir), "--teacher_tokenizer_name_or_path", str(teacher_dir),
                 "--model_name_or_path", str(student_base), "--align_teacher_tokens", "true", "--cosine_weight", "0.5",
                 "--output_dir", str(student_dir)]) == 0
    teacher_run = json.load(open(teacher_dir / "results.json"))
    results = json.load(open(student_dir / "results.json"))
    assert results["teacher"]["score"] == pytest.approx(teacher_run["student"]["score"])
    recorded = results["recipe"]["teacher_tokenizer"]  # relative to the run folder, as the record's other paths
    assert os.path.normpath(os.path.join(student_dir, recorded)) == str(teacher_dir)
    assert results["recipe"]["loss_weights"] == {"task": 0.5, "kd": 0.5, "cosine": 0.5, "pooled": 1.0}
    assert results["data"]["align_teacher_tokens"] is True
    student = AutoModelForSequenceClassification.from_pretrained(student_dir)
    assert student.config.vocab_size == len(student_tokenizer)
