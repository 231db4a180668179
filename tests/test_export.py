"""`hf-distill export` / `benchmark`: ONNX export, INT8 quantization, parity, accuracy, latency, errors.

Tiny models built in code, offline; each export runs in a few seconds.
"""

import json
import os

import numpy as np
import pytest
import torch
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    BertTokenizerFast,
    CLIPConfig,
    CLIPModel,
)

from hf_distill.cli import main
from hf_distill.export import ExportError, ParityError, benchmark_export, detect_preset, export_model, format_table

SCHEMA_KEYS = {"format_version", "source_model", "task", "opset", "optimization_level", "files", "quantization",
               "parity", "accuracy", "size_mb", "latency_ms", "pytorch_attention", "speedup_int8_vs_pytorch_batch_32",
               "machine"}
WORDS = ["the", "a", "film", "movie", "is", "was", "good", "bad", "great", "awful", "fun", "dull", "plot", "not",
         "very", "it", "and", "but", "acting", "story", "ok", "best", "worst", "ending", "long", "i", "liked"]
POSITIVE = ["the film is good", "a great story", "it was fun and very good", "i liked the acting", "the best movie"]
NEGATIVE = ["the film is bad", "a dull plot", "it was awful and very long", "not good", "the worst ending"]


def _tokenizer(folder):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    path = folder / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n")
    return BertTokenizerFast(vocab_file=str(path))


def _config(**overrides):
    values = dict(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=128, attn_implementation="eager")
    values.update(overrides)
    return BertConfig(**values)


def _save(model, folder, tokenizer=True):
    model.save_pretrained(folder)
    if tokenizer:
        _tokenizer(folder.parent).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = _config(num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    return _save(BertForSequenceClassification(config).eval(), tmp_path_factory.mktemp("clf") / "model")


@pytest.fixture(scope="module")
def dynamic_export(classifier_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("export") / "onnx"
    report = export_model(classifier_dir, output, quantize="dynamic", preset="avx2", latency_runs=1, verbose=False)
    return output, report


def _sst2_dir(root, n_train=24, n_dev=10):
    folder = root / "SST-2"
    folder.mkdir(parents=True)
    for name, n in (("train.tsv", n_train), ("dev.tsv", n_dev)):
        lines = ["sentence\tlabel"]
        for i in range(n):
            lines.append(f"{(POSITIVE if i % 2 else NEGATIVE)[i % 5]} \t{i % 2}")
        (folder / name).write_text("\n".join(lines) + "\n")
    return root


def test_dynamic_export_writes_a_loadable_folder_and_a_full_report(classifier_dir, dynamic_export):
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer

    output, report = dynamic_export
    assert set(report) == SCHEMA_KEYS
    assert json.loads((output / "export_report.json").read_text()) == report
    assert report["task"] == "text-classification" and report["optimization_level"] == "O2"
    assert report["files"] == {"onnx_fp32": "model.onnx", "onnx_int8": "model_quantized.onnx"}
    assert report["quantization"] == {"mode": "dynamic", "preset": "avx2", "per_channel": True,
                                      "calibration_examples": None}
    assert report["parity"]["passed"] and report["parity"]["max_abs_diff"] <= 1e-4
    assert report["parity"]["num_samples"] == 8
    assert report["size_mb"]["onnx_int8"] < report["size_mb"]["onnx_fp32"]
    assert set(report["latency_ms"]) == {"batch_1_seq_128", "batch_32_seq_128"}
    for row in report["latency_ms"].values():
        assert set(row) == {"pytorch_fp32", "onnx_fp32", "onnx_int8"} and all(v > 0 for v in row.values())
    assert report["speedup_int8_vs_pytorch_batch_32"] == pytest.approx(
        report["latency_ms"]["batch_32_seq_128"]["pytorch_fp32"] / report["latency_ms"]["batch_32_seq_128"]["onnx_int8"],
        abs=0.01)
    # The PyTorch baseline is the model as a user loads it (SDPA), not the eager copy the export traces.
    assert report["pytorch_attention"] == "sdpa"
    assert report["accuracy"] is None  # no evaluation set given

    # The folder loads with optimum, tokenizer and config included, and matches PyTorch.
    tokenizer = AutoTokenizer.from_pretrained(output)
    inputs = tokenizer(POSITIVE + NEGATIVE, padding=True, return_tensors="pt")
    reference = BertForSequenceClassification.from_pretrained(classifier_dir).eval()
    with torch.no_grad():
        expected = reference(**inputs).logits
    fp32 = ORTModelForSequenceClassification.from_pretrained(output)
    assert fp32.config.id2label == {0: "negative", 1: "positive"}
    torch.testing.assert_close(fp32(**inputs).logits, expected, atol=1e-4, rtol=0)
    int8 = ORTModelForSequenceClassification.from_pretrained(output, file_name="model_quantized.onnx")
    int8_logits = int8(**inputs).logits
    assert int8_logits.shape == expected.shape
    assert torch.max(torch.abs(int8_logits - expected)) < 0.1  # int8 is close but not identical
    assert (output / "ort_config.json").is_file()


def test_parity_holds_for_other_batch_and_sequence_sizes(classifier_dir, dynamic_export):
    import onnxruntime as ort

    output, _ = dynamic_export
    session = ort.InferenceSession(str(output / "model.onnx"), providers=["CPUExecutionProvider"])
    reference = BertForSequenceClassification.from_pretrained(classifier_dir).eval()
    for batch, length in ((1, 3), (5, 17), (3, 128)):
        ids = torch.randint(5, 40, (batch, length))
        mask = torch.ones_like(ids)
        mask[0, length // 2:] = 0
        feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "token_type_ids": np.zeros_like(ids.numpy())}
        with torch.no_grad():
            expected = reference(input_ids=ids, attention_mask=mask).logits.numpy()
        np.testing.assert_allclose(session.run(None, feeds)[0], expected, atol=1e-4, rtol=0)


def test_benchmark_measures_an_existing_export_again(dynamic_export, capsys):
    output, report = dynamic_export
    again = benchmark_export(output, latency_runs=1)
    assert set(again["latency_ms"]) == set(report["latency_ms"])
    assert json.loads((output / "export_report.json").read_text())["latency_ms"] == again["latency_ms"]
    assert again["parity"] == report["parity"]
    assert "batch 32" in capsys.readouterr().out
    assert main(["benchmark", str(output), "--print_only"]) == 0
    table = capsys.readouterr().out
    assert "latency ms, b32 x 128" in table and "onnx_int8" in table and "passed" in table


def test_static_quantization_calibrates_on_the_task_and_reports_accuracy(classifier_dir, tmp_path, monkeypatch):
    from optimum.onnxruntime import ORTModelForSequenceClassification

    data_dir = _sst2_dir(tmp_path / "glue", n_train=24, n_dev=10)
    output = tmp_path / "static"
    working_dir = tmp_path / "cwd"
    working_dir.mkdir()
    monkeypatch.chdir(working_dir)  # ONNX Runtime's tools can leave debug files in the working directory
    report = export_model(classifier_dir, output, quantize="static", task_name="sst2", data_dir=str(data_dir),
                          calibration_samples=16, latency=False, verbose=False)
    assert report["quantization"]["mode"] == "static" and report["quantization"]["calibration_examples"] == 16
    assert report["latency_ms"] is None and report["speedup_int8_vs_pytorch_batch_32"] is None
    accuracy = report["accuracy"]
    assert accuracy["metric"] == "accuracy" and accuracy["eval_examples"] == 10
    for variant in ("pytorch_fp32", "onnx_fp32", "onnx_int8"):
        assert 0.0 <= accuracy[variant] <= 1.0
    assert accuracy["onnx_fp32"] == accuracy["pytorch_fp32"]
    import onnx

    op_types = {node.op_type for node in onnx.load(str(output / "model_quantized.onnx")).graph.node}
    assert "QuantizeLinear" in op_types and "DequantizeLinear" in op_types
    assert os.listdir(working_dir) == []  # scratch files stay in a temporary folder
    model = ORTModelForSequenceClassification.from_pretrained(output, file_name="model_quantized.onnx")
    ids = torch.randint(5, 40, (2, 9))
    assert model(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids)).logits.shape == (2, 2)


def test_static_quantization_calibrates_on_a_given_file_from_the_command_line(classifier_dir, tmp_path, monkeypatch):
    calibration = tmp_path / "calibration.csv"
    rows = [f'"{(POSITIVE if i % 2 else NEGATIVE)[i % 5]}",{i % 2}' for i in range(12)]
    calibration.write_text("sentence,label\n" + "\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "static-from-file"
    assert main(["export", str(classifier_dir), "--output", str(output), "--quantize", "static", "--task_name", "sst2",
                 "--calibration-data", str(calibration), "--calibration_samples", "8", "--no_latency"]) == 0
    report = json.loads((output / "export_report.json").read_text())
    assert report["quantization"]["mode"] == "static"
    assert report["quantization"]["calibration_examples"] == 8  # 8 of the file's 12 rows
    assert report["parity"]["passed"]


def test_regression_masked_lm_and_encoder_exports_pass_parity(tmp_path):
    from optimum.onnxruntime import ORTModelForFeatureExtraction, ORTModelForMaskedLM

    torch.manual_seed(0)
    cases = {
        "regression": (BertForSequenceClassification(_config(num_labels=1)), "text-classification", None),
        "mlm": (BertForMaskedLM(_config()), "fill-mask", ORTModelForMaskedLM),
        "encoder": (BertModel(_config()), "feature-extraction", ORTModelForFeatureExtraction),
    }
    for name, (model, task, ort_class) in cases.items():
        folder = _save(model.eval(), tmp_path / name)
        report = export_model(folder, tmp_path / f"{name}-onnx", quantize="dynamic", latency=False, verbose=False)
        assert report["task"] == task, name
        assert report["parity"]["passed"] and report["parity"]["max_abs_diff"] <= 1e-4, name
        if ort_class is not None:
            loaded = ort_class.from_pretrained(tmp_path / f"{name}-onnx", file_name="model_quantized.onnx")
            ids = torch.randint(5, 40, (2, 7))
            assert loaded(input_ids=ids, attention_mask=torch.ones_like(ids),
                          token_type_ids=torch.zeros_like(ids))[0].shape[:2] == (2, 7)


def test_clip_text_and_vision_towers_export_with_parity(tmp_path):
    import onnxruntime as ort

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=32),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )
    clip = CLIPModel(config).eval()
    folder = _save(clip, tmp_path / "clip")
    with pytest.raises(ExportError, match="tower"):
        export_model(folder, tmp_path / "none", latency=False, verbose=False)

    text = export_model(folder, tmp_path / "text", tower="text", quantize="dynamic", latency=False, verbose=False)
    assert text["task"] == "feature-extraction" and text["parity"]["passed"]
    assert text["optimization_level"] is None  # optimum's ORTOptimizer has no rules for clip_text_model
    session = ort.InferenceSession(str(tmp_path / "text" / "model.onnx"), providers=["CPUExecutionProvider"])
    ids = torch.randint(5, 40, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    embeds = session.run(["text_embeds"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    with torch.no_grad():
        expected = clip.get_text_features(input_ids=ids, attention_mask=mask).numpy()
    np.testing.assert_allclose(embeds, expected, atol=1e-4, rtol=0)

    vision = export_model(folder, tmp_path / "vision", tower="vision", quantize="dynamic", latency_runs=1,
                          verbose=False)
    assert vision["parity"]["passed"]
    assert set(vision["latency_ms"]) == {"batch_1_image_32", "batch_32_image_32"}
    session = ort.InferenceSession(str(tmp_path / "vision" / "model.onnx"), providers=["CPUExecutionProvider"])
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = clip.get_image_features(pixel_values=pixels).numpy()
    np.testing.assert_allclose(session.run(["image_embeds"], {"pixel_values": pixels.numpy()})[0], expected,
                               atol=1e-4, rtol=0)


def test_a_parity_failure_stops_the_export_loudly(classifier_dir, tmp_path, monkeypatch):
    import hf_distill.export.exporter as exporter

    original = exporter.export_to_onnx

    def export_then_drift(model, *args, **kwargs):  # the PyTorch model changes after export: outputs differ
        path = original(model, *args, **kwargs)
        with torch.no_grad():
            model.classifier.bias += 0.01
        return path

    monkeypatch.setattr(exporter, "export_to_onnx", export_then_drift)
    with pytest.raises(ParityError, match="does not match PyTorch"):
        export_model(classifier_dir, tmp_path / "drift", quantize="dynamic", latency=False, verbose=False)
    report = json.loads((tmp_path / "drift" / "export_report.json").read_text())
    assert report["parity"]["passed"] is False
    assert report["parity"]["max_abs_diff"] == pytest.approx(0.01, abs=1e-4)
    assert not (tmp_path / "drift" / "model_quantized.onnx").exists()


def test_bad_model_folders_give_clear_errors(classifier_dir, tmp_path, capsys):
    import shutil

    with pytest.raises(ExportError, match="no config.json"):
        export_model(tmp_path, tmp_path / "out", latency=False, verbose=False)
    with pytest.raises(ExportError, match="is not a folder"):
        export_model(tmp_path / "missing", tmp_path / "out", latency=False, verbose=False)

    corrupt = tmp_path / "corrupt"
    shutil.copytree(classifier_dir, corrupt)
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: os.path.getsize(weights) // 2])
    with pytest.raises(ExportError, match="corrupt or its weights do not match"):
        export_model(corrupt, tmp_path / "out", latency=False, verbose=False)

    mismatched = tmp_path / "mismatched"
    shutil.copytree(classifier_dir, mismatched)
    config = json.loads((mismatched / "config.json").read_text())
    config["hidden_size"] = 48
    (mismatched / "config.json").write_text(json.dumps(config))
    with pytest.raises(ExportError, match="corrupt or its weights do not match"):
        export_model(mismatched, tmp_path / "out", latency=False, verbose=False)

    broken_json = tmp_path / "broken"
    shutil.copytree(classifier_dir, broken_json)
    (broken_json / "config.json").write_text("{not json")
    with pytest.raises(ExportError, match="not valid JSON"):
        export_model(broken_json, tmp_path / "out", latency=False, verbose=False)

    other_tokenizer = tmp_path / "other-tokenizer"
    torch.manual_seed(0)
    _save(BertForSequenceClassification(_config(vocab_size=20)), other_tokenizer)  # tokenizer has 32 tokens
    with pytest.raises(ExportError, match="belongs to another model"):
        export_model(other_tokenizer, tmp_path / "out", latency=False, verbose=False)

    with pytest.raises(ExportError, match="calibrates on the task's training data"):
        export_model(classifier_dir, tmp_path / "out", quantize="static", latency=False, verbose=False)
    with pytest.raises(ExportError, match="need task_name"):
        export_model(classifier_dir, tmp_path / "out", quantize="static", train_file="calibration.csv",
                     latency=False, verbose=False)
    with pytest.raises(ExportError, match="no export_report.json"):
        benchmark_export(tmp_path)

    # The command prints the message and exits with 2 instead of a traceback.
    assert main(["export", str(corrupt), "--output", str(tmp_path / "out"), "--no_latency"]) == 2
    assert "corrupt or its weights do not match" in capsys.readouterr().err
    assert main(["benchmark", str(tmp_path)]) == 2


def test_preset_follows_the_instruction_set():
    assert detect_preset("aarch64", flags=[]) == "arm64"
    assert detect_preset("x86_64", flags=["avx2", "avx512f", "avx512bw", "avx512_vnni"]) == "avx512_vnni"
    assert detect_preset("x86_64", flags=["avx2", "avx512f", "avx512bw"]) == "avx512"
    assert detect_preset("x86_64", flags=["avx", "avx2", "fma"]) == "avx2"


def test_per_tensor_and_per_channel_are_recorded(classifier_dir, tmp_path):
    import onnx

    report = export_model(classifier_dir, tmp_path / "pt", quantize="dynamic", per_channel=False, preset="avx512_vnni",
                          optimization_level=None, latency=False, verbose=False)
    assert report["quantization"]["per_channel"] is False and report["optimization_level"] is None
    model = onnx.load(str(tmp_path / "pt" / "model_quantized.onnx"))
    scales = {init.name: init for init in model.graph.initializer if init.name.endswith("_scale")}
    assert scales and all(len(init.dims) == 0 or np.prod(init.dims) == 1 for init in scales.values())
    assert "per-channel False" in format_table(report)


def test_optimum_and_onnxruntime_are_imported_lazily():
    """`import hf_distill` (and the CLI) must stay fast: no module-level import of the ONNX stack."""
    import ast
    import pathlib

    import hf_distill

    package = pathlib.Path(hf_distill.__file__).parent
    heavy = ("optimum", "onnxruntime", "onnx")
    for path in [package / "cli.py", *sorted((package / "export").glob("*.py"))]:
        for node in ast.parse(path.read_text()).body:  # module level only; imports inside functions are lazy
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not [n for n in names if n.split(".")[0] in heavy], f"{path.name} imports {names} at module level"


def test_latency_variants_take_turns_and_the_median_is_kept():
    from hf_distill.export.latency import median_latencies_ms

    calls = []
    runners = {name: (lambda n: lambda: calls.append(n))(name) for name in ("pytorch_fp32", "onnx_fp32", "onnx_int8")}
    result = median_latencies_ms(runners, runs=3, warmup=1)
    assert calls == ["pytorch_fp32", "onnx_fp32", "onnx_int8"] * 4  # 1 warm-up round + 3 timed rounds, interleaved
    assert set(result) == set(runners) and all(value >= 0 for value in result.values())
