"""The `retrieval` recipe family through `hf-distill train`: synthetic teacher, then a distilled student."""

import json

import pytest

from hf_distill.cli import main
from hf_distill.recipes import parse_recipe, recipe_family_of
from hf_distill.retrieval.arguments import RetrievalDataArguments, RetrievalModelArguments
from hf_distill.retrieval.config import RetrievalDistillationConfig

TINY = ["--synthetic_train_images", "16", "--synthetic_eval_images", "12", "--max_steps", "2",
        "--per_device_train_batch_size", "8", "--disable_tqdm", "true"]


def test_retrieval_recipes_parse_into_the_family_dataclasses():
    for name in ("teacher", "distill", "alone"):
        path = f"recipes/retrieval_synthetic/{name}.yaml"
        assert recipe_family_of(path).name == "retrieval"
        model_args, data_args, config = parse_recipe(path)
        assert isinstance(model_args, RetrievalModelArguments) and isinstance(data_args, RetrievalDataArguments)
        assert isinstance(config, RetrievalDistillationConfig) and data_args.dataset == "synthetic_shapes"
    for name in ("distill", "distill_narrow", "text_only", "baseline"):
        model_args, data_args, config = parse_recipe(f"recipes/flickr30k/{name}.yaml")
        assert data_args.dataset == "flickr30k" and data_args.eval_split == "test"
    _, _, config = parse_recipe("recipes/flickr30k/distill.yaml", ["--temperature", "3"])
    assert config.temperature == 3.0 and config.similarity_kd_weight > 0


def test_unknown_retrieval_key_names_the_family_help(tmp_path, capsys):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("recipe_family: retrieval\nsimilarity_weight: 1.0\n")
    assert main(["train", str(recipe)]) == 2
    assert "similarity_kd_weight" in capsys.readouterr().err


def test_train_teacher_then_distil_a_student_from_the_command_line(tmp_path):
    teacher_dir, student_dir = tmp_path / "teacher", tmp_path / "student"
    assert main(["train", "recipes/retrieval_synthetic/teacher.yaml", "--output_dir", str(teacher_dir), *TINY]) == 0
    teacher_results = json.load(open(teacher_dir / "results.json"))
    assert "teacher" not in teacher_results and teacher_results["data"]["eval_captions"] == 60
    assert (teacher_dir / "tokenizer.json").exists()
    assert main(["train", "recipes/retrieval_synthetic/distill.yaml", "--output_dir", str(student_dir),
                 "--teacher_model_name_or_path", str(teacher_dir), "--rerank_top_k", "3", *TINY]) == 0
    results = json.load(open(student_dir / "results.json"))
    assert results["teacher"]["parameters"] > results["student"]["parameters"] and results["compression"] > 1
    assert set(results["recipe"]["loss_weights"]) == {"contrastive", "similarity_kd", "embedding", "rkd_distance", "rkd_angle"}
    # The same schedule record as every other runner (the effective batch needs the accumulation steps).
    assert {"learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "seed"} <= set(results["recipe"])
    assert results["chance"]["text_to_image_R@1"] == pytest.approx(100 / 12, abs=0.01)
    assert results["two_stage"]["teacher_encodings_per_query"] == {"text_to_image": 4, "image_to_text": 4}
    for entry in (results["student"]["recall"], results["teacher"]["recall"], results["two_stage"]["recall"]):
        assert 0 <= entry["mean_recall"] <= 100
    # The teacher's own recall equals what its run measured: the same model, the same evaluation set.
    assert results["teacher"]["recall"] == teacher_results["student"]["recall"]
    assert (student_dir / "distillation_heads.safetensors").exists()
