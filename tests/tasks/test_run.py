"""The task family's runner end to end through the command: GLUE-layout data, teacher and student runs."""

import json
import math
import os
import re

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from hf_distill.cli import main
from tests.conftest import tiny_bert_config
from tests.test_cli import RECIPES, tiny_tokenizer, write


def test_teacher_then_distilled_student_end_to_end_on_glue_layout(tmp_path):
    """A real recipe run through the command: GLUE-layout data, a teacher run, then a student run."""
    tokenizer = tiny_tokenizer(tmp_path / "tok")
    base = tmp_path / "base"
    AutoModelForSequenceClassification.from_config(tiny_bert_config(vocab_size=len(tokenizer))).save_pretrained(base)
    tokenizer.save_pretrained(base)
    rows = [("good w1 w2", 1), ("bad w3", 0), ("w4 good", 1), ("bad bad w5", 0)] * 4
    body = "sentence\tlabel\n" + "".join(f"{s} \t{label}\n" for s, label in rows)
    write(tmp_path / "glue" / "SST-2" / "train.tsv", body)
    write(tmp_path / "glue" / "SST-2" / "dev.tsv", body)
    common = ["--task_name", "sst2", "--data_dir", str(tmp_path / "glue"), "--max_steps", "3",
              "--per_device_train_batch_size", "4", "--report_to", "none", "--use_cpu", "true",
              "--save_strategy", "no", "--disable_tqdm", "true"]
    teacher_dir, student_dir = str(tmp_path / "teacher"), str(tmp_path / "student")
    recipe_dir = os.path.join(RECIPES, "glue")
    assert main(["train", os.path.join(recipe_dir, "teacher.yaml"), *common, "--model_name_or_path", str(base),
                 "--output_dir", teacher_dir, "--eval_strategy", "no"]) == 0
    assert main(["train", os.path.join(recipe_dir, "distilbert.yaml"), *common,
                 "--teacher_model_name_or_path", teacher_dir, "--student_num_layers", "2",
                 "--output_dir", student_dir, "--eval_strategy", "no"]) == 0
    results = json.load(open(os.path.join(student_dir, "results.json")))
    assert results["task"] == "sst2" and results["student"]["num_layers"] == 2
    assert results["teacher"]["num_layers"] == 4
    assert results["student"]["parameters"] < results["teacher"]["parameters"]
    assert 0.0 <= results["student"]["score"] <= 1.0 and "retention_percent" in results
    assert results["recipe"]["loss_weights"] == {"task": 0.5, "kd": 0.5, "cosine": 1.0}
    student = AutoModelForSequenceClassification.from_pretrained(student_dir)
    assert student.config.id2label == {0: "negative", 1: "positive"}


def test_tinybert_two_stages_on_a_regression_task_end_with_the_gold_scores(tmp_path):
    """STS-B through the shipped TinyBERT recipes: stage 1 imitates the teacher's layers, stage 2 (the
    regression recipe) trains the stage-1 student on the gold scores, as TinyBERT's reference code does."""
    tokenizer = tiny_tokenizer(tmp_path / "tok")
    base = tmp_path / "base"
    config = tiny_bert_config(vocab_size=len(tokenizer), num_labels=1)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    pairs = [("good w1", "good w2", 4.5), ("bad w3", "good w4", 1.0), ("w5 w6", "w5 w6", 5.0), ("bad", "w7", 0.2)]
    body = header + "".join(f"{i}\tg\tf\t2012\t{i}\tnone\tnone\t{a}\t{b}\t{score}\n"
                            for i, (a, b, score) in enumerate(pairs * 4))
    write(tmp_path / "glue" / "STS-B" / "train.tsv", body)
    write(tmp_path / "glue" / "STS-B" / "dev.tsv", body)
    common = ["--task_name", "stsb", "--data_dir", str(tmp_path / "glue"), "--max_steps", "3",
              "--per_device_train_batch_size", "4", "--report_to", "none", "--use_cpu", "true",
              "--save_strategy", "no", "--eval_strategy", "no", "--disable_tqdm", "true"]
    recipe_dir = os.path.join(RECIPES, "glue")
    teacher_dir, stage1, stage2 = (str(tmp_path / name) for name in ("teacher", "stage1", "stage2"))
    assert main(["train", os.path.join(recipe_dir, "teacher.yaml"), *common, "--model_name_or_path", str(base),
                 "--output_dir", teacher_dir]) == 0
    assert main(["train", os.path.join(recipe_dir, "tinybert_intermediate.yaml"), *common,
                 "--teacher_model_name_or_path", teacher_dir, "--student_num_layers", "2",
                 "--output_dir", stage1]) == 0
    assert main(["train", os.path.join(recipe_dir, "tinybert_prediction_regression.yaml"), *common,
                 "--model_name_or_path", stage1, "--output_dir", stage2]) == 0
    results = json.load(open(os.path.join(stage2, "results.json")))
    assert results["recipe"]["loss_weights"] == {"task": 1.0}
    assert results["student"]["num_layers"] == 2 and "eval_pearson" in results["student"]["metrics"]["validation"]
    first = AutoModelForSequenceClassification.from_pretrained(stage1)
    student = AutoModelForSequenceClassification.from_pretrained(stage2)
    assert student.config.num_labels == 1 and student.config.problem_type == "regression"
    # Stage 2 started from stage 1 and trained it: same shape, different weights.
    assert student.bert.encoder.layer[0].attention.self.query.weight.shape == \
        first.bert.encoder.layer[0].attention.self.query.weight.shape
    assert not torch.equal(student.classifier.weight, first.classifier.weight)


def test_student_saved_with_another_tokenizer_is_refused(tmp_path):
    from hf_distill.checks import check_same_tokenizer

    tokenizer = tiny_tokenizer(tmp_path / "a")
    other_dir = tmp_path / "b"
    other = tiny_tokenizer(other_dir)
    tokenizer.save_pretrained(tmp_path / "same")
    check_same_tokenizer(tokenizer, str(tmp_path / "same"), "student")  # identical: accepted
    other.add_tokens(["extra"])
    other.save_pretrained(other_dir)
    with pytest.raises(ValueError, match="different tokenizer than the teacher's"):
        check_same_tokenizer(tokenizer, str(other_dir), "student")


def test_regression_student_without_the_gold_scores_is_warned_about(caplog):
    from hf_distill.config import DistillationConfig
    from hf_distill.tasks.data import TaskData
    from hf_distill.tasks.run import warn_if_gold_scores_unused

    def task(label_names):
        return TaskData(name="stsb" if label_names is None else "mrpc", train=None, evaluation={},
                        label_names=label_names, compute_metrics=lambda p: {}, metric_names=(), score=lambda m: 0.0)

    def config(**weights):
        return DistillationConfig(output_dir="unused", report_to="none", **weights)

    with caplog.at_level("WARNING", logger="hf_distill.tasks.run"):
        assert warn_if_gold_scores_unused(task(None), config(task_weight=0.0, kd_weight=1.0))
    assert "stsb is a regression" in caplog.text and "tinybert_prediction_regression.yaml" in caplog.text
    assert not warn_if_gold_scores_unused(task(None), config(task_weight=0.5, kd_weight=0.5))
    assert not warn_if_gold_scores_unused(task(["no", "yes"]), config(task_weight=0.0, kd_weight=1.0))
    # A schedule that brings the labels in later counts as using them.
    assert not warn_if_gold_scores_unused(task(None), config(
        task_weight=0.0, kd_weight=1.0, schedule={"task_weight": {"start": 0.0, "end": 1.0}}))


def test_unlabelled_training_examples_distil_through_the_teacher_and_a_baseline_refuses_them(tmp_path, capsys):
    """A train file whose extra rows have no label (a transfer set): the DistilBERT-style recipe trains on
    them through the teacher terms and records them; a no-teacher baseline is refused before training."""
    tokenizer = tiny_tokenizer(tmp_path / "tok")
    base = tmp_path / "base"
    AutoModelForSequenceClassification.from_config(tiny_bert_config(vocab_size=len(tokenizer))).save_pretrained(base)
    tokenizer.save_pretrained(base)
    rows = [("good w1 w2", 1), ("bad w3", 0), ("w4 good", 1), ("bad bad w5", 0)] * 4
    write(tmp_path / "glue" / "SST-2" / "dev.tsv",
          "sentence\tlabel\n" + "".join(f"{s}\t{label}\n" for s, label in rows))
    train_file = write(tmp_path / "transfer.csv", "sentence,label\n" + "".join(f"{s},{label}\n" for s, label in rows)
                       + "".join(f"w{i} w{i + 1} good,\n" for i in range(8)))  # 8 rows without a label
    common = ["--task_name", "sst2", "--data_dir", str(tmp_path / "glue"), "--train_file", train_file,
              "--max_steps", "3", "--per_device_train_batch_size", "8", "--report_to", "none", "--use_cpu", "true",
              "--save_strategy", "no", "--eval_strategy", "no", "--disable_tqdm", "true"]
    recipe_dir = os.path.join(RECIPES, "glue")
    assert main(["train", os.path.join(recipe_dir, "baseline.yaml"), *common, "--model_name_or_path", str(base),
                 "--output_dir", str(tmp_path / "baseline")]) == 2
    assert re.search("error: 8 of the 24 training examples have no label.*no teacher term", capsys.readouterr().err)
    assert not (tmp_path / "baseline").exists()  # refused before anything was trained or written
    student_dir = str(tmp_path / "student")
    assert main(["train", os.path.join(recipe_dir, "distilbert.yaml"), *common,
                 "--teacher_model_name_or_path", str(base), "--student_num_layers", "2",
                 "--output_dir", student_dir]) == 0
    results = json.load(open(os.path.join(student_dir, "results.json")))
    assert results["data"]["train_examples"] == 24 and results["data"]["unlabelled_train_examples"] == 8
    assert math.isfinite(results["train"]["train_loss"])
    card = open(os.path.join(student_dir, "README.md")).read()
    assert "- Training examples: 24 (8 of them without a label, learned from the teacher's outputs only)" in card


def test_a_tokenizer_with_the_same_size_but_other_ids_is_refused_on_the_command_line_and_in_python(tmp_path, capsys):
    """Same vocab_size, shuffled ids: a comparison of sizes would pass it; the vocabularies are compared instead."""
    from hf_distill import DistillationConfig, DistillationTrainer, create_student
    from tests.conftest import pad_collator, random_classification_dataset
    from transformers import BertTokenizerFast

    tokenizer = tiny_tokenizer(tmp_path / "tok")
    teacher_dir = tmp_path / "teacher"
    teacher = AutoModelForSequenceClassification.from_config(tiny_bert_config(vocab_size=len(tokenizer)))
    teacher.save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)
    words = (tmp_path / "tok" / "vocab.txt").read_text().split("\n")
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    (shuffled / "vocab.txt").write_text("\n".join(words[:5] + list(reversed(words[5:]))))
    other = BertTokenizerFast(str(shuffled / "vocab.txt"))
    assert len(other) == len(tokenizer) and other.get_vocab() != tokenizer.get_vocab()
    other.save_pretrained(shuffled)
    write(tmp_path / "glue" / "SST-2" / "train.tsv", "sentence\tlabel\ngood w1\t1\nbad w2\t0\n")
    write(tmp_path / "glue" / "SST-2" / "dev.tsv", "sentence\tlabel\ngood w1\t1\nbad w2\t0\n")
    assert main(["train", os.path.join(RECIPES, "glue", "distilbert.yaml"), "--task_name", "sst2", "--data_dir",
                 str(tmp_path / "glue"), "--teacher_model_name_or_path", str(teacher_dir), "--tokenizer_name",
                 str(shuffled), "--student_num_layers", "2", "--output_dir", str(tmp_path / "out"),
                 "--report_to", "none"]) == 2
    assert "The teacher at" in capsys.readouterr().err
    reloaded = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
    with pytest.raises(ValueError, match="different tokenizer than the run's"):
        DistillationTrainer(model=create_student(reloaded, layers=[0, 1]), teacher_model=reloaded,
                            args=DistillationConfig(output_dir=str(tmp_path / "py"), report_to=[]),
                            train_dataset=random_classification_dataset(8, vocab_size=len(tokenizer)),
                            data_collator=pad_collator, processing_class=other)
