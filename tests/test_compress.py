"""The compress family end to end: prune a teacher, distil the pruned model from it, export INT8, one report."""

import json
import os

import pytest
from transformers import AutoModelForSequenceClassification

from hf_distill.cli import main
from hf_distill.compress.arguments import CompressArguments
from hf_distill.compress.run import check_compress_inputs, format_compress_table, refresh_compress_report
from hf_distill.tasks.arguments import DataArguments, ModelArguments
from tests.conftest import offline_config, tiny_bert_config
from tests.test_cli import RECIPES, tiny_tokenizer, write


def _glue(tmp_path):
    rows = [("good w1 w2", 1), ("bad w3", 0), ("w4 good", 1), ("bad bad w5", 0)] * 8
    body = "sentence\tlabel\n" + "".join(f"{s} \t{label}\n" for s, label in rows)
    write(tmp_path / "glue" / "SST-2" / "train.tsv", body)
    write(tmp_path / "glue" / "SST-2" / "dev.tsv", body)
    return str(tmp_path / "glue")


def _compress(tmp_path, *flags: str):
    """A tiny teacher trained on `_glue`, then the compress recipe on it with `flags`; returns (teacher, output)."""
    tokenizer = tiny_tokenizer(tmp_path / "tok")
    base = tmp_path / "base"
    AutoModelForSequenceClassification.from_config(tiny_bert_config(vocab_size=len(tokenizer))).save_pretrained(base)
    tokenizer.save_pretrained(base)
    common = ["--task_name", "sst2", "--data_dir", _glue(tmp_path), "--max_steps", "3", "--report_to", "none",
              "--use_cpu", "true", "--per_device_train_batch_size", "8", "--disable_tqdm", "true"]
    teacher_dir, out = tmp_path / "teacher", tmp_path / "compressed"
    assert main(["train", os.path.join(RECIPES, "glue", "teacher.yaml"), *common, "--model_name_or_path", str(base),
                 "--output_dir", str(teacher_dir), "--eval_strategy", "no", "--save_strategy", "no"]) == 0
    assert main(["train", os.path.join(RECIPES, "compress", "prune_distil_int8.yaml"), *common,
                 "--teacher_model_name_or_path", str(teacher_dir), "--output_dir", str(out),
                 "--prune_num_attention_heads", "2", "--prune_intermediate_size", "32", "--prune_num_layers", "2",
                 "--calibration_batches", "2", "--calibration_batch_size", "8", "--latency_runs", "1", *flags]) == 0
    return teacher_dir, out


def test_prune_distil_int8_in_one_recipe(tmp_path):
    teacher_dir, out = _compress(tmp_path, "--quantize", "dynamic")
    pruning = json.load(open(out / "pruned" / "pruning.json"))
    assert len(pruning["layers"]) == 2 and pruning["parameters_after"] < pruning["parameters_before"]
    student = AutoModelForSequenceClassification.from_pretrained(out)
    assert (student.config.num_hidden_layers, student.config.num_attention_heads, student.config.hidden_size,
            student.config.intermediate_size) == (2, 2, 16, 32)
    report = json.load(open(out / "compress_report.json"))
    stages = [row["stage"] for row in report["stages"]]
    assert stages[:3] == ["teacher", "pruned, before distillation", "pruned + distilled (PyTorch fp32)"]
    assert "INT8 (onnx_int8, dynamic)" in stages and "ONNX fp32" in stages  # the quantization the export ran
    rows = {row["stage"]: row for row in report["stages"]}
    assert rows["pruned + distilled (PyTorch fp32)"]["parameters"] == pruning["parameters_after"]
    assert rows["teacher"]["parameters"] > rows["pruned + distilled (PyTorch fp32)"]["parameters"]
    assert rows["teacher"]["latency_ms"] and all(v is not None for v in rows["teacher"]["latency_ms"].values())
    assert 0.0 <= rows["pruned, before distillation"]["score"] <= 1.0
    results = json.load(open(out / "results.json"))
    assert results["student"]["score"] == rows["pruned + distilled (PyTorch fp32)"]["score"]
    assert "| teacher |" in format_compress_table(report)
    # Timed again later (e.g. on a quiet machine): the same stages, scores kept, the teacher timed again.
    refreshed = refresh_compress_report(str(out), DataArguments(task_name="sst2", data_dir=_glue(tmp_path)),
                                        latency_runs=1)
    assert [row["stage"] for row in refreshed["stages"]] == stages and refreshed["teacher_path"] == str(teacher_dir)
    again = {row["stage"]: row for row in refreshed["stages"]}
    assert again["pruned, before distillation"]["score"] == rows["pruned, before distillation"]["score"]
    assert all(v is not None for v in again["teacher"]["latency_ms"].values())
    card = open(out / "README.md").read()
    assert "## Compression chain" in card and "4 layers, 4 heads, hidden 32, FFN 64 to 2 layers, 2 heads" in card


def test_quantization_aware_distillation_adds_a_static_int8_model_beside_the_post_training_one(tmp_path):
    from safetensors import safe_open

    _, out = _compress(tmp_path, "--quantize", "static", "--quantization_aware_epochs", "1",
                       "--quantization_aware_learning_rate", "1e-3")
    qat = out / "quantization_aware"
    stage = json.load(open(qat / "results.json"))
    assert stage["train"]["global_step"] == 4  # one epoch of 32 examples at 8, not the recipe's max_steps
    with safe_open(out / "model.safetensors", "pt") as distilled, safe_open(qat / "model.safetensors", "pt") as trained:
        assert set(distilled.keys()) == set(trained.keys())  # a plain checkpoint: no quantizer state
        query = "bert.encoder.layer.0.attention.self.query.weight"
        assert not distilled.get_tensor(query).equal(trained.get_tensor(query))  # it trained on
    AutoModelForSequenceClassification.from_pretrained(qat)
    assert json.load(open(qat / "onnx" / "export_report.json"))["quantization"]["mode"] == "static"
    rows = {row["stage"]: row for row in json.load(open(out / "compress_report.json"))["stages"]}
    assert "INT8 (onnx_int8, static)" in rows
    qat_row = rows["INT8 after quantization-aware distillation (onnx_int8, static)"]
    assert 0.0 <= qat_row["score"] <= 1.0 and qat_row["parameters"] == rows["INT8 (onnx_int8, static)"]["parameters"]
    assert "quantization-aware" in open(out / "README.md").read()


def test_compress_refuses_what_it_cannot_do(tmp_path):
    with pytest.raises(ValueError, match="A compress recipe prunes: set prune_num_attention_heads"):
        CompressArguments()
    with pytest.raises(ValueError, match="not both"):
        CompressArguments(prune_layers="0,1", prune_num_layers=2)
    config = offline_config(tmp_path, teacher_model_name_or_path="runs/teacher")
    with pytest.raises(ValueError, match="drop student_num_layers"):
        check_compress_inputs(ModelArguments(student_num_layers=2), config)
    with pytest.raises(ValueError, match="set teacher_model_name_or_path"):
        check_compress_inputs(ModelArguments(), offline_config(tmp_path))
