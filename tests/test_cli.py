import dataclasses
import json
import math
import os

import pytest
import torch
import yaml
from transformers import AutoModelForSequenceClassification, BertTokenizerFast

from hf_distill.cli import main
from hf_distill.recipes import RecipeError, parse_recipe
from tests.conftest import tiny_bert_config

RECIPES = os.path.join(os.path.dirname(__file__), "..", "recipes")


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_command_line_flags_override_the_file(tmp_path):
    recipe = write(tmp_path / "r.yaml", "task_name: mrpc\nlearning_rate: 1.0e-4\nlayer_map: [2, 4, 6]\n"
                                        "hidden_weight: 1.0\nreport_to: none\noutput_dir: out\n")
    model_args, data_args, config = parse_recipe(recipe, ["--learning_rate", "3e-5", "--student_layers", "0,2"])
    assert config.learning_rate == 3e-5 and data_args.task_name == "mrpc"
    assert config.layer_map == [2, 4, 6] and model_args.layer_list == [0, 2]
    assert config.hidden_weight == 1.0 and config.report_to == []


@pytest.mark.parametrize("text, overrides, key", [
    ("task_name: sst2\nlearning_rat: 0.1\n", [], "learning_rat"),
    ("task_name: sst2\n", ["--kd_wieght", "1"], "kd_wieght"),
])
def test_unknown_keys_are_named_with_a_suggestion(tmp_path, text, overrides, key):
    recipe = write(tmp_path / "r.yaml", text)
    with pytest.raises(RecipeError, match=rf"Unknown key '{key}'.*Did you mean"):
        parse_recipe(recipe, overrides)


def test_recipe_values_are_type_checked_like_flags(tmp_path, capsys):
    recipe = write(tmp_path / "r.yaml", "temperature: warm\n")
    with pytest.raises(RecipeError):
        parse_recipe(recipe)
    assert "temperature" in capsys.readouterr().err


def test_shipped_recipes_parse():
    names = sorted(os.listdir(os.path.join(RECIPES, "glue")))
    assert {"teacher.yaml", "baseline.yaml", "distilbert.yaml", "tinybert_intermediate.yaml",
            "tinybert_prediction.yaml", "tinybert_prediction_regression.yaml"} <= set(names)
    for name in names:
        model_args, _, config = parse_recipe(os.path.join(RECIPES, "glue", name), ["--output_dir", "x"])
        assert any(v > 0 for v in config.loss_weights.values())
        # TinyBERT's student starts each layer at its layer-map target; DistilBERT's takes every other layer.
        expected = "block_top" if name == "tinybert_intermediate.yaml" else "uniform"
        assert model_args.student_layer_selection == expected, name


def test_help_lists_every_option_with_its_help(capsys):
    assert main(["--help"]) == 0
    assert "train" in capsys.readouterr().out
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--attention_weight", "--student_layers", "--max_train_samples", "--learning_rate"):
        assert option in out
    assert "pre-softmax attention-score" in out


def test_help_imports_no_training_stack_once_built(tmp_path):
    """`hf-distill --help` and the subcommands' help never import torch; `train --help` only the first time."""
    import subprocess
    import sys

    probe = ("import sys, contextlib, io\nfrom hf_distill.cli import main\nwith contextlib.redirect_stdout(io.StringIO()):\n"
             "    try:\n        main(sys.argv[1:])\n    except SystemExit:\n        pass\n"
             "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'onnxruntime') if m in sys.modules))")
    env = {**os.environ, "HF_DISTILL_CACHE": str(tmp_path / "cache")}

    def heavy_modules(*argv):
        done = subprocess.run([sys.executable, "-c", probe, *argv], env=env, capture_output=True, text=True, check=True)
        return done.stdout.strip().splitlines()[-1]

    for argv in (["--help"], ["demo", "--help"], ["card", "--help"], ["push", "--help"], ["augment", "--help"],
                 ["export", "--help"], ["benchmark", "--help"]):
        assert heavy_modules(*argv) == "[]", argv
    assert "torch" in heavy_modules("train", "--help")  # built once, with the training stack
    assert heavy_modules("train", "--help") == "[]"  # then read from the cache
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_unknown_key_exits_with_code_2_and_a_message(tmp_path, capsys):
    recipe = write(tmp_path / "r.yaml", "tempreature: 2\n")
    assert main(["train", recipe]) == 2
    assert "Unknown key 'tempreature'" in capsys.readouterr().err


def tiny_tokenizer(path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(30)] + ["good", "bad"]
    (path / "vocab.txt").parent.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab))
    return BertTokenizerFast(str(path / "vocab.txt"))


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
    from hf_distill.run import check_same_tokenizer

    tokenizer = tiny_tokenizer(tmp_path / "a")
    other_dir = tmp_path / "b"
    other = tiny_tokenizer(other_dir)
    tokenizer.save_pretrained(tmp_path / "same")
    check_same_tokenizer(tokenizer, str(tmp_path / "same"), "student")  # identical: accepted
    other.add_tokens(["extra"])
    other.save_pretrained(other_dir)
    with pytest.raises(ValueError, match="different tokenizer than the teacher's"):
        check_same_tokenizer(tokenizer, str(other_dir), "student")


@dataclasses.dataclass
class _ToyArguments:
    width: int = 4
    name: str = "toy"


def _toy_runner(arguments):
    _toy_runner.calls.append(arguments)


_toy_runner.calls = []


def test_recipe_family_picks_the_dataclasses_and_the_runner(tmp_path, monkeypatch, capsys):
    from hf_distill import recipes

    family = recipes.RecipeFamily("toy", (_ToyArguments,), f"{__name__}:_toy_runner", "a toy family")
    monkeypatch.setitem(recipes.RECIPE_FAMILIES, "toy", family)
    recipe = write(tmp_path / "r.yaml", "recipe_family: toy\nwidth: 8\n")
    assert main(["train", recipe, "--name", "cli"]) == 0
    assert _toy_runner.calls[-1] == _ToyArguments(width=8, name="cli")
    # keys of another family are unknown here, and the message points at this family's help
    assert main(["train", recipe, "--learning_rate", "1"]) == 2
    assert "--recipe_family toy --help" in capsys.readouterr().err
    assert main(["train", "--recipe_family", "toy", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--width WIDTH" in out and "--learning_rate LEARNING_RATE" not in out and "a toy family" in out


def test_unknown_recipe_family_is_an_error_that_lists_the_families(tmp_path, capsys):
    recipe = write(tmp_path / "r.yaml", "recipe_family: glu\n")
    assert main(["train", recipe]) == 2
    assert "Unknown recipe_family 'glu'; choose from" in capsys.readouterr().err


def test_regression_student_without_the_gold_scores_is_warned_about(caplog):
    from hf_distill.config import DistillationConfig
    from hf_distill.run import warn_if_gold_scores_unused
    from hf_distill.tasks import TaskData

    def task(label_names):
        return TaskData(name="stsb" if label_names is None else "mrpc", train=None, evaluation={},
                        label_names=label_names, compute_metrics=lambda p: {}, metric_names=(), score=lambda m: 0.0)

    def config(**weights):
        return DistillationConfig(output_dir="unused", report_to="none", **weights)

    with caplog.at_level("WARNING", logger="hf_distill.run"):
        assert warn_if_gold_scores_unused(task(None), config(task_weight=0.0, kd_weight=1.0))
    assert "stsb is a regression" in caplog.text and "tinybert_prediction_regression.yaml" in caplog.text
    assert not warn_if_gold_scores_unused(task(None), config(task_weight=0.5, kd_weight=0.5))
    assert not warn_if_gold_scores_unused(task(["no", "yes"]), config(task_weight=0.0, kd_weight=1.0))
    # A schedule that brings the labels in later counts as using them.
    assert not warn_if_gold_scores_unused(task(None), config(
        task_weight=0.0, kd_weight=1.0, schedule={"task_weight": {"start": 0.0, "end": 1.0}}))


def test_unlabelled_training_examples_distil_through_the_teacher_and_a_baseline_refuses_them(tmp_path):
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
    with pytest.raises(ValueError, match="8 of the 24 training examples have no label.*no teacher term"):
        main(["train", os.path.join(recipe_dir, "baseline.yaml"), *common, "--model_name_or_path", str(base),
              "--output_dir", str(tmp_path / "baseline")])
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
