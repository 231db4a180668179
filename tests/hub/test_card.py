"""Model cards built from a real run folder of a tiny model (`hf-distill train`, then `hf-distill card`)."""

import json
import os
import shlex
import shutil

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from hf_distill.hub.card import build_model_card, is_hub_id, write_model_card
from hf_distill.cli import main
from hf_distill.recipes import parse_recipe
from tests.helpers.run_folders import tiny_run  # noqa: F401  (module-scoped fixture)

EXPORT_REPORT = {
    "format_version": 1,
    "source_model": "student",
    "task": "text-classification",
    "opset": 17,
    "optimization_level": None,
    "files": {"onnx_fp32": "model.onnx", "onnx_int8": "model_quantized.onnx"},
    "quantization": {"mode": "dynamic", "preset": "avx512_vnni", "per_channel": True, "calibration_examples": None},
    "parity": {"max_abs_diff": 3.1e-06, "tolerance": 1e-04, "passed": True, "num_samples": 8},
    "accuracy": {"metric": "accuracy", "eval_examples": 872, "pytorch_fp32": 0.8096, "onnx_fp32": 0.8096,
                 "onnx_int8": 0.8050},
    "size_mb": {"pytorch_fp32": 69.6, "onnx_fp32": 69.7, "onnx_int8": 17.8},
    "latency_ms": {"batch_1_seq_128": {"pytorch_fp32": 9.1, "onnx_fp32": 5.2, "onnx_int8": 2.9},
                   "batch_32_seq_128": {"pytorch_fp32": 222.0, "onnx_fp32": 249.0, "onnx_int8": 149.0}},
    "speedup_int8_vs_pytorch_batch_32": 1.49,
    "machine": {"cpu": "AMD EPYC", "threads": 2, "onnxruntime": "1.32.0", "torch": "2.13.0+cpu"},
}


def copy_run(run_dir, tmp_path, with_export=False):
    """A writable copy of the shared run folder, optionally with a fake ONNX export in `onnx/`."""
    folder = tmp_path / "student"
    shutil.copytree(run_dir, folder)
    if with_export:
        (folder / "onnx").mkdir()
        (folder / "onnx" / "model.onnx").write_bytes(b"onnx fp32")
        (folder / "onnx" / "model_quantized.onnx").write_bytes(b"onnx int8")
        (folder / "onnx" / "export_report.json").write_text(json.dumps(EXPORT_REPORT))
    return str(folder)


def results_of(run_dir):
    with open(os.path.join(run_dir, "results.json")) as file:
        return json.load(file)


def test_training_writes_a_card_whose_metadata_parses(tiny_run):
    path = os.path.join(tiny_run, "README.md")
    assert os.path.isfile(path), "hf-distill train must write README.md into the model folder"
    data = ModelCard.load(path).data
    assert data.library_name == "transformers" and data.pipeline_tag == "text-classification"
    assert {"distillation", "hf-distill"} <= set(data.tags)
    assert data.datasets == ["nyu-mll/glue"] and data.metrics == ["accuracy"] and data.language == "en"
    # the teacher is a local folder here, which is not a valid base_model on the Hub
    assert data.base_model is None


def test_model_index_converts_with_the_students_scores(tiny_run, tmp_path):
    folder = copy_run(tiny_run, tmp_path)
    write_model_card(folder, repo_id="me/tiny-student", base_model="org/tiny-teacher", license="apache-2.0")
    card = ModelCard.load(os.path.join(folder, "README.md"))
    assert card.data.base_model == "org/tiny-teacher" and card.data.license == "apache-2.0"
    name, entries = model_index_to_eval_results(card.data.to_dict()["model-index"])
    accuracy = results_of(folder)["student"]["metrics"]["validation"]["eval_accuracy"]
    assert name == "me/tiny-student" and len(entries) == 1
    entry = entries[0]
    assert (entry.task_type, entry.dataset_type, entry.dataset_config, entry.dataset_split, entry.metric_type) == (
        "text-classification", "nyu-mll/glue", "sst2", "validation", "accuracy")
    assert entry.metric_value == round(accuracy, 4)


def test_card_numbers_are_read_from_results_json(tiny_run, tmp_path):
    """Distinctive numbers written into results.json appear in the card: nothing is typed in."""
    folder = copy_run(tiny_run, tmp_path)
    results = results_of(folder)
    results["teacher"].update(parameters=109_482_240, size_mb=438.01, score=0.9232, num_layers=12, hidden_size=768)
    results["student"].update(parameters=66_362_880, size_mb=265.49, score=0.9106, num_layers=6, hidden_size=768)
    results["student"]["metrics"]["validation"]["eval_accuracy"] = 0.9106
    results.update(retention_percent=98.64, compression=1.65)
    with open(os.path.join(folder, "results.json"), "w") as file:
        json.dump(results, file)
    text = build_model_card(folder).text
    table = text.split("## Teacher vs. student")[1].split("##")[0]
    for row in ("| layers | 12 | 6 |", "| hidden size | 768 | 768 |", "| parameters | 109,482,240 | 66,362,880 (1.65x fewer) |",
                "| size on disk (MB) | 438.0 | 265.5 (61% of the teacher) |", "| SST-2 accuracy | 0.9232 | 0.9106 |",
                "| retention (student / teacher score) | 100% | 98.64% |"):
        assert row in table
    assert "98.64% of its SST-2 accuracy (0.9106 vs 0.9232)" in text
    assert "value: 0.9106" in build_model_card(folder).content


def test_recipe_section_and_the_reproduce_command(tiny_run):
    text = ModelCard.load(os.path.join(tiny_run, "README.md")).text
    recipe = text.split("## Distillation recipe")[1].split("## Reproduce")[0]
    for row in ("| loss term `task` (task loss from the labels) | weight 0.5 |",
                "| loss term `hidden` (hidden-state MSE over mapped layers) | weight 1 |",
                "| temperature T | 2 |", "| layer map | student layer → teacher layer (1-based): 1→2, 2→4 |",
                "| projection heads (training only, not published) | shared |",
                '| schedule of temperature / loss weights | `{"temperature": {"type": "linear", "start": 4, "end": 1}}` |',
                "| training steps | 3 |", "| max steps | 3 |"):
        assert row in recipe
    assert "Loss: 0.5·L_task + 0.5·L_kd + 1·L_cosine + 1·L_hidden" in recipe
    # The command in the card, parsed again, is the same recipe.
    command = results_of(tiny_run)["reproduce"]["command"]
    assert f"```bash\n{command}\n```" in text
    tokens = shlex.split(command)
    assert tokens[:2] == ["hf-distill", "train"]
    model_args, data_args, config = parse_recipe(None, tokens[2:])
    assert (model_args.student_num_layers, model_args.student_hidden_size) == (2, 16)
    assert data_args.task_name == "sst2" and config.layer_map == [2, 4] and config.max_steps == 3
    assert config.loss_weights == {"task": 0.5, "kd": 0.5, "mlm": 0.0, "cosine": 1.0, "hidden": 1.0, "embedding": 0.0,
                                   "pooled": 0.0, "attention": 0.0, "attention_relation": 0.0, "value_relation": 0.0, "query_relation": 0.0, "key_relation": 0.0}
    assert config.schedule == {"temperature": {"type": "linear", "start": 4, "end": 1}}
    assert "--hub_token '<REDACTED>'" in text and "hub_token" not in command


def test_data_and_limitations_sections(tiny_run):
    text = ModelCard.load(os.path.join(tiny_run, "README.md")).text
    data = text.split("## Training data")[1]
    assert "GLUE SST-2" in data and "- Training examples: 16" in data and "validation: 16" in data
    limits = text.split("## Intended use and limitations")[1].split("## Training data")[0]
    assert "sentiment of English sentences (SST-2), with the labels negative, positive" in limits
    assert "100.00% of the teacher's score" in limits
    assert "## Export" not in text  # no export yet


def test_data_section_names_a_train_file_that_replaced_the_folders_split(tiny_run, tmp_path):
    """`--data_dir` with `--train_file` trains on the file and evaluates on the folder's dev set: the card says so."""
    folder = copy_run(tiny_run, tmp_path)
    results = results_of(folder)
    assert results["data"]["train_file"] is None and results["data"]["validation_file"] is None
    data_dir = results["data"]["data_dir"]
    results["reproduce"]["options"]["train_file"] = "aug/train_aug.csv"
    with open(os.path.join(folder, "results.json"), "w") as file:
        json.dump(results, file)
    data = build_model_card(folder).text.split("## Training data")[1]
    assert "training on the local file `aug/train_aug.csv`" in data
    assert f"evaluation on the dev files in `{os.path.join(data_dir, 'SST-2')}`" in data
    assert "evaluation `None`" not in data


def test_export_section_from_export_report(tiny_run, tmp_path):
    folder = copy_run(tiny_run, tmp_path, with_export=True)
    assert main(["card", folder]) == 0
    text = ModelCard.load(os.path.join(folder, "README.md")).text
    export = text.split("## Export (ONNX / INT8)")[1].split("## Intended use")[0]
    assert "`onnx/model.onnx` and `onnx/model_quantized.onnx`" in export and "opset 17" in export
    assert "dynamic INT8 quantization, avx512_vnni preset, per-channel weights" in export
    assert "max abs difference 3.1e-06 on 8 samples (tolerance 0.0001): passed" in export
    assert "| | PyTorch fp32 | ONNX fp32 | ONNX INT8 |" in export
    assert "| size (MB) | 69.6 | 69.7 | 17.8 |" in export
    assert "| accuracy (872 examples) | 0.8096 | 0.8096 | 0.8050 |" in export
    assert "| latency, batch 32, seq 128 (ms) | 222.0 | 249.0 | 149.0 |" in export
    assert "1.49x faster than PyTorch at batch 32" in export
    assert "| latency, batch 1, seq 128 (ms, PyTorch fp32 on CPU) | not measured | 9.1 |" in text
    assert "its INT8 ONNX export is 17.8 MB and 1.49x faster than PyTorch fp32 at batch 32 (accuracy 0.8050)" in text
    # a card pushed without --include-onnx says the files are not in the repository
    assert "The ONNX files are not part of this repository." not in export
    pushed = build_model_card(folder, repo_id="me/x", include_onnx=False).text
    assert "The ONNX files are not part of this repository." in pushed


def test_card_command_on_a_folder_without_results_is_an_error(tmp_path, capsys):
    assert main(["card", str(tmp_path)]) == 2
    assert "No results.json" in capsys.readouterr().err


def test_card_command_notes_a_missing_base_model(tiny_run, tmp_path, capsys):
    folder = copy_run(tiny_run, tmp_path)
    assert main(["card", folder]) == 0
    assert "--base-model" in capsys.readouterr().out
    assert main(["card", folder, "--base-model", "org/teacher"]) == 0
    assert "--base-model" not in capsys.readouterr().out


@pytest.mark.parametrize("name, expected", [("bert-base-uncased", True), ("org/model-1.5", True),
                                            ("runs/glue/sst2/teacher", False), ("/abs/path", False),
                                            ("./rel", False), ("a/b/c", False), ("../x", False)])
def test_hub_id_detection(name, expected):
    assert is_hub_id(name) is expected


def test_card_of_a_run_without_teacher(tiny_run, tmp_path):
    """A teacher or baseline run (no teacher): one-column table, no `distillation` tag, a training recipe."""
    folder = copy_run(tiny_run, tmp_path)
    results = results_of(folder)
    for key in ("teacher", "retention_percent", "compression"):
        results.pop(key)
    card = build_model_card(folder, results=results)
    assert "distillation" not in card.data.tags and "hf-distill" in card.data.tags
    assert "## Model\n\n| | this model |" in card.text and "## Teacher vs. student" not in card.text
    assert "| layers | 2 |" in card.text and "## Training recipe" in card.text and "retention" not in card.text


OPENVINO_REPORT = {
    **EXPORT_REPORT,
    "backend": "openvino",
    "optimization_level": None,
    "files": {"openvino_fp32": "openvino_model.xml", "openvino_int8": "openvino_model_int8.xml"},
    "quantization": {"mode": "static", "method": "nncf", "calibration_examples": 300,
                     "nncf": {"model_type": "transformer", "preset": "mixed", "smooth_quant_alpha": 0.95,
                              "fast_bias_correction": True, "ignored_scope": []}},
    "parity": {"max_abs_diff": 7.2e-07, "tolerance": 1e-04, "passed": True, "num_samples": 8},
    "accuracy": {"metric": "accuracy", "eval_examples": 872, "pytorch_fp32": 0.8096, "openvino_fp32": 0.8096,
                 "openvino_int8": 0.8073},
    "size_mb": {"pytorch_fp32": 69.6, "openvino_fp32": 69.9, "openvino_int8": 17.9},
    "teacher": {"path": "runs/teacher", "size_mb": 90.9},
    "inference_precision": {"openvino_fp32": "f32", "openvino_int8": "f32"},
    "machine": {"cpu": "AMD EPYC", "threads": 2, "onnxruntime": "1.32.0", "openvino": "2026.4.1", "torch": "2.13.0+cpu"},
}
BENCHMARKED = {"batch_1_seq_128": {"pytorch_fp32": 9.1, "teacher_fp32": 16.0, "onnx_fp32": 5.2, "onnx_int8": 2.9,
                                   "openvino_fp32": 4.8, "openvino_int8": 2.5},
               "batch_32_seq_128": {"pytorch_fp32": 222.0, "teacher_fp32": 430.0, "onnx_fp32": 249.0,
                                    "onnx_int8": 149.0, "openvino_fp32": 150.0, "openvino_int8": 70.0}}


def add_openvino_export(folder, benchmarked=True):
    """A fake OpenVINO export in `<folder>/openvino`; with `benchmarked`, both reports hold one benchmark's rows."""
    ov_dir = os.path.join(folder, "openvino")
    os.makedirs(ov_dir)
    for name in ("openvino_model.xml", "openvino_model.bin", "openvino_model_int8.xml", "openvino_model_int8.bin"):
        with open(os.path.join(ov_dir, name), "wb") as file:
            file.write(b"ir")
    report = dict(OPENVINO_REPORT)
    if benchmarked:
        report.update(latency_ms=BENCHMARKED, speedup_int8_vs_pytorch_batch_32=3.17,
                      speedup_int8_vs_teacher_batch_32=6.14)
        onnx = {**EXPORT_REPORT, "latency_ms": BENCHMARKED, "teacher": OPENVINO_REPORT["teacher"],
                "speedup_int8_vs_teacher_batch_32": 2.89}
        with open(os.path.join(folder, "onnx", "export_report.json"), "w") as file:
            json.dump(onnx, file)
    with open(os.path.join(ov_dir, "export_report.json"), "w") as file:
        json.dump(report, file)
    return ov_dir


def test_export_section_covers_onnx_and_openvino_and_the_teacher(tiny_run, tmp_path):
    folder = copy_run(tiny_run, tmp_path, with_export=True)
    add_openvino_export(folder)
    assert main(["card", folder]) == 0
    text = ModelCard.load(os.path.join(folder, "README.md")).text
    export = text.split("## Export")[1].split("## Intended use")[0]
    assert ("`onnx/model.onnx` and `onnx/model_quantized.onnx` (ONNX Runtime); `openvino/openvino_model.xml` and "
            "`openvino/openvino_model_int8.xml` (OpenVINO)") in export
    assert "OpenVINO: static INT8 quantization with NNCF (transformer model type, SmoothQuant alpha 0.95)" in export
    assert "ONNX: dynamic INT8 quantization, avx512_vnni preset" in export
    assert "OpenVINO fp32 vs PyTorch: max abs difference 7.2e-07 on 8 samples (tolerance 0.0001): passed" in export
    assert ("| | PyTorch fp32 | teacher fp32 | ONNX fp32 | ONNX INT8 | OpenVINO fp32 | OpenVINO INT8 |") in export
    assert "| size (MB) | 69.6 | 90.9 | 69.7 | 17.8 | 69.9 | 17.9 |" in export
    assert "| accuracy (872 examples) | 0.8096 | - | 0.8096 | 0.8050 | 0.8096 | 0.8073 |" in export
    assert "| latency, batch 32, seq 128 (ms) | 222.0 | 430.0 | 249.0 | 149.0 | 150.0 | 70.0 |" in export
    assert "OpenVINO INT8 is 3.17x faster than PyTorch at batch 32 and 6.14x faster than the teacher's" in export
    assert "separate runs" not in export  # one benchmark timed both backends
    # The teacher's latency now fills the comparison table, and the headline names the fastest INT8 export.
    assert "| latency, batch 32, seq 128 (ms, PyTorch fp32 on CPU) | 430.0 | 222.0 |" in text
    assert ("its INT8 OpenVINO export is 17.9 MB and 3.17x faster than PyTorch fp32 at batch 32, 6.14x faster than "
            "the teacher (accuracy 0.8073)") in text
    pushed = build_model_card(folder, repo_id="me/x", include_onnx=True).text
    assert "The OpenVINO files are not part of this repository." in pushed and "`onnx/model.onnx`" in pushed
    everything = build_model_card(folder, repo_id="me/x", include_export=True).text
    assert "not part of this repository" not in everything and "`openvino/openvino_model_int8.xml`" in everything


def test_export_section_says_when_latencies_come_from_separate_runs(tiny_run, tmp_path):
    folder = copy_run(tiny_run, tmp_path, with_export=True)
    add_openvino_export(folder, benchmarked=False)
    with open(os.path.join(folder, "openvino", "export_report.json")) as file:
        report = json.load(file)
    report["latency_ms"] = {"batch_32_seq_128": {"pytorch_fp32": 230.0, "openvino_fp32": 150.0, "openvino_int8": 70.0}}
    with open(os.path.join(folder, "openvino", "export_report.json"), "w") as file:
        json.dump(report, file)
    text = build_model_card(folder).text
    assert "come from separate runs; `hf-distill benchmark MODEL_DIR` times them together" in text


def test_the_card_says_when_auto_quantization_kept_dynamic_over_static():
    from hf_distill.hub.card import _quantization_text

    report = {"quantization": {"mode": "dynamic", "preset": "avx512_vnni", "per_channel": True,
                               "calibration_examples": None,
                               "instead_of": {"mode": "static", "score": 0.6906, "calibration_examples": 128}}}
    assert _quantization_text(report, "onnxruntime", prefix=False) == (
        "dynamic INT8 quantization, avx512_vnni preset, per-channel weights (kept over static INT8, which scored "
        "69.06 on the dev set)")
    del report["quantization"]["instead_of"]
    assert "kept over" not in _quantization_text(report, "onnxruntime", prefix=False)
