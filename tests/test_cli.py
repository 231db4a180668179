"""The command line and the recipe parser: flags over files, unknown keys, help, recipe families."""

import dataclasses
import os

import pytest
from transformers import BertTokenizerFast

from hf_distill.cli import main
from hf_distill.recipes import RecipeError, parse_recipe

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


@pytest.mark.parametrize("overrides, layers, num_layers", [
    (["--student_layers", "1,3,5"], [1, 3, 5], None),  # the recipe's depth gives way to the explicit layers
    (["--student_layers=1,3,5"], [1, 3, 5], None),
    (["--student_layers", "1,3,5", "--student_num_layers", "3"], [1, 3, 5], 3),  # both given: both kept
    ([], None, 6),
])
def test_a_flag_replaces_the_recipes_exclusive_option(tmp_path, overrides, layers, num_layers):
    recipe = write(tmp_path / "r.yaml", "task_name: sst2\nstudent_num_layers: 6\nreport_to: none\noutput_dir: out\n")
    model_args, _, _ = parse_recipe(recipe, overrides)
    assert model_args.layer_list == layers and model_args.student_num_layers == num_layers


def test_the_recipes_layer_list_gives_way_to_a_depth_flag(tmp_path):
    recipe = write(tmp_path / "r.yaml", "task_name: sst2\nstudent_layers: 0,2,4\nreport_to: none\noutput_dir: out\n")
    model_args, _, _ = parse_recipe(recipe, ["--student_num_layers", "2"])
    assert model_args.layer_list is None and model_args.student_num_layers == 2


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


def test_per_task_entry_applies_for_the_runs_task_and_the_command_line_wins(tmp_path):
    recipe = write(tmp_path / "r.yaml", "task_name: sst2\nlearning_rate: 1.0e-4\nnum_train_epochs: 3\noutput_dir: out\n"
                                        "per_task:\n  mrpc: {num_train_epochs: 10, learning_rate: 5.0e-5}\n"
                                        "  sst2: {max_seq_length: 64}\n")
    _, data_args, config = parse_recipe(recipe)  # the file's task: sst2
    assert data_args.max_seq_length == 64 and config.num_train_epochs == 3 and config.learning_rate == 1e-4
    _, data_args, config = parse_recipe(recipe, ["--task_name", "MRPC"])
    assert config.num_train_epochs == 10 and config.learning_rate == 5e-5 and data_args.max_seq_length == 128
    _, _, config = parse_recipe(recipe, ["--task_name=mrpc", "--num_train_epochs", "2"])
    assert config.num_train_epochs == 2 and config.learning_rate == 5e-5
    _, _, config = parse_recipe(recipe, ["--task_name", "cola"])  # no entry: the file's values
    assert config.num_train_epochs == 3 and config.learning_rate == 1e-4


@pytest.mark.parametrize("text, match", [
    ("per_task:\n  mrpc: {num_train_epoch: 10}\n", r"Unknown key 'num_train_epoch'.*per_task: mrpc.*Did you mean"),
    ("per_task:\n  mrpc: {task_name: rte}\n", r"Unknown key 'task_name'.*per_task: mrpc"),
    ("per_task: [mrpc]\n", r"per_task in recipe .* must map task names to settings"),
])
def test_per_task_with_a_bad_entry_is_refused(tmp_path, text, match):
    recipe = write(tmp_path / "r.yaml", "task_name: mrpc\n" + text)
    with pytest.raises(RecipeError, match=match):
        parse_recipe(recipe)


def test_shipped_glue_recipes_give_the_small_tasks_longer_training():
    for name in ("teacher.yaml", "baseline.yaml", "distilbert.yaml"):
        path = os.path.join(RECIPES, "glue", name)
        _, _, small = parse_recipe(path, ["--task_name", "rte", "--output_dir", "x"])
        _, _, large = parse_recipe(path, ["--task_name", "mnli", "--output_dir", "x"])
        assert small.num_train_epochs > large.num_train_epochs, name


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


def test_errors_print_one_line_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    recipe = write(tmp_path / "r.yaml", "kd_weight: -1\n")
    assert main(["train", recipe, "--output_dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["hf-distill train: error: kd_weight must be a number >= 0, got -1.0."]
    with pytest.raises(ValueError, match="kd_weight must be a number >= 0"):
        main(["train", recipe, "--output_dir", str(tmp_path / "out"), "--debug"])
    monkeypatch.setenv("HF_DISTILL_DEBUG", "1")
    with pytest.raises(ValueError, match="kd_weight must be a number >= 0"):
        main(["train", recipe, "--output_dir", str(tmp_path / "out")])


def test_a_bug_keeps_its_traceback(monkeypatch):
    """Only bad input, files, data and disks are reported in one line; anything else is raised as it is."""
    from hf_distill import cli

    def broken(argv):
        raise KeyError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "card", (broken, "broken"))
    with pytest.raises(KeyError, match="a bug"):
        main(["card", "x"])
