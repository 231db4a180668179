"""`hf-distill export` / `benchmark`: ONNX Runtime and OpenVINO export, INT8 quantization, parity, accuracy, latency,
errors.

Tiny models built in code, offline; each export runs in a few seconds. The ONNX Runtime tests run once per exporter
available here: `torch` always, `optimum` where optimum-onnx imports (transformers < 4.58). The OpenVINO tests need
the `openvino` extra (`openvino`, `nncf`), which CI installs in both lanes; where it is missing they fail, except
the ones that check the error a missing OpenVINO gives.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from transformers import (
    AutoConfig,
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    BertTokenizerFast,
    CLIPConfig,
    CLIPModel,
)

from hf_distill.cli import main
from hf_distill.export import (
    ExportError,
    ParityError,
    benchmark_export,
    detect_preset,
    export_model,
    format_table,
    optimum_onnx_available,
)

OPTIMUM = optimum_onnx_available()
EXPORTERS = ["torch", "optimum"] if OPTIMUM else ["torch"]
REPORTED_EXPORTER = {"torch": "torch.onnx", "optimum": "optimum"}
SCHEMA_KEYS = {"format_version", "source_model", "task", "backend", "opset", "exporter", "optimization_level", "files",
               "quantization", "parity", "accuracy", "size_mb", "latency_ms", "pytorch_attention",
               "speedup_int8_vs_pytorch_batch_32", "teacher", "speedup_int8_vs_teacher_batch_32",
               "inference_precision", "machine"}
WORDS = ["the", "a", "film", "movie", "is", "was", "good", "bad", "great", "awful", "fun", "dull", "plot", "not",
         "very", "it", "and", "but", "acting", "story", "ok", "best", "worst", "ending", "long", "i", "liked"]
POSITIVE = ["the film is good", "a great story", "it was fun and very good", "i liked the acting", "the best movie"]
NEGATIVE = ["the film is bad", "a dull plot", "it was awful and very long", "not good", "the worst ending"]


def _tokenizer(folder):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    path = folder / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n")
    return BertTokenizerFast(str(path))  # positional: transformers 5 ignores the vocab_file keyword


def _config(**overrides):
    values = dict(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=128, attn_implementation="eager")
    values.update(overrides)
    return BertConfig(**values)


def _features(output):
    """`get_text_features` / `get_image_features`: a tensor in transformers 4.57, an output object in 5.x."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _session(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _op_types(path):
    import onnx

    return {node.op_type for node in onnx.load(str(path)).graph.node}


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


@pytest.fixture(scope="module", params=EXPORTERS)
def dynamic_export(request, classifier_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp(f"export-{request.param}") / "onnx"
    report = export_model(classifier_dir, output, quantize="dynamic", preset="avx2", exporter=request.param,
                          latency_runs=1, verbose=False)
    return output, report, request.param


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
    from transformers import AutoTokenizer

    output, report, exporter = dynamic_export
    assert set(report) == SCHEMA_KEYS
    assert json.loads((output / "export_report.json").read_text()) == report
    assert report["exporter"] == REPORTED_EXPORTER[exporter] and report["backend"] == "onnxruntime"
    assert report["task"] == "text-classification" and report["optimization_level"] == "O2"
    assert report["teacher"] is None and report["inference_precision"] is None
    # O2 fused the transformer blocks (attention, residual + layer norm) without approximating GELU.
    op_types = _op_types(output / "model.onnx")
    assert {"Attention", "SkipLayerNormalization", "BiasGelu"} <= op_types
    assert not {"FastGelu", "EmbedLayerNormalization"} & op_types  # the embedding stays quantizable
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

    # The folder holds tokenizer and config, loads with ONNX Runtime, and matches PyTorch on a padded batch.
    tokenizer = AutoTokenizer.from_pretrained(output)
    inputs = tokenizer(POSITIVE + NEGATIVE, padding=True, return_tensors="pt")
    assert not bool(inputs["attention_mask"].all())  # the batch has padding
    reference = BertForSequenceClassification.from_pretrained(classifier_dir).eval()
    with torch.no_grad():
        expected = reference(**inputs).logits
    assert AutoConfig.from_pretrained(output).id2label == {0: "negative", 1: "positive"}
    feeds = {name: value.numpy() for name, value in inputs.items()}
    np.testing.assert_allclose(_session(output / "model.onnx").run(["logits"], feeds)[0], expected.numpy(),
                               atol=1e-4, rtol=0)
    int8_logits = torch.from_numpy(_session(output / "model_quantized.onnx").run(["logits"], feeds)[0])
    assert int8_logits.shape == expected.shape
    assert torch.max(torch.abs(int8_logits - expected)) < 0.1  # int8 is close but not identical
    ort_config = json.loads((output / "ort_config.json").read_text())
    assert ort_config["opset"] == 17 and ort_config["optimization"]["optimization_level"] == 2
    assert ort_config["quantization"]["weights_dtype"] == "QInt8" and ort_config["quantization"]["reduce_range"]

    if OPTIMUM:  # optimum's ORTModel classes load the folder, whichever exporter wrote it
        from optimum.onnxruntime import ORTModelForSequenceClassification

        fp32 = ORTModelForSequenceClassification.from_pretrained(output)
        assert fp32.config.id2label == {0: "negative", 1: "positive"}
        torch.testing.assert_close(fp32(**inputs).logits, expected, atol=1e-4, rtol=0)
        int8 = ORTModelForSequenceClassification.from_pretrained(output, file_name="model_quantized.onnx")
        torch.testing.assert_close(int8(**inputs).logits, int8_logits, atol=1e-6, rtol=0)


def test_parity_holds_for_other_batch_and_sequence_sizes(classifier_dir, dynamic_export):
    output, _, _ = dynamic_export
    session = _session(output / "model.onnx")
    # Batch and sequence are symbolic dimensions of the graph, named as optimum names them.
    assert {i.name: i.shape for i in session.get_inputs()} == {
        name: ["batch_size", "sequence_length"] for name in ("input_ids", "attention_mask", "token_type_ids")}
    assert [(o.name, o.shape) for o in session.get_outputs()] == [("logits", ["batch_size", 2])]
    reference = BertForSequenceClassification.from_pretrained(classifier_dir).eval()
    for batch, length in ((1, 3), (5, 17), (3, 128)):
        ids = torch.randint(5, 40, (batch, length))
        mask = torch.ones_like(ids)
        mask[0, length // 2:] = 0
        mask[-1, length - 1:] = 0  # another padding length in the same batch
        feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "token_type_ids": np.zeros_like(ids.numpy())}
        with torch.no_grad():
            expected = reference(input_ids=ids, attention_mask=mask).logits.numpy()
        np.testing.assert_allclose(session.run(None, feeds)[0], expected, atol=1e-4, rtol=0)


def test_benchmark_measures_an_existing_export_again(classifier_dir, dynamic_export, capsys):
    output, report, exporter = dynamic_export
    again = benchmark_export(output, latency_runs=1)
    assert set(again["latency_ms"]) == set(report["latency_ms"])
    assert set(again["latency_ms"]["batch_32_seq_128"]) == {"pytorch_fp32", "onnx_fp32", "onnx_int8"}
    assert not (classifier_dir / "benchmark_report.json").exists()  # one export timed again: its report only
    assert json.loads((output / "export_report.json").read_text())["latency_ms"] == again["latency_ms"]
    assert again["parity"] == report["parity"]
    assert "batch 32" in capsys.readouterr().out
    assert main(["benchmark", str(output), "--print_only"]) == 0
    table = capsys.readouterr().out
    assert "latency ms, b32 x 128" in table and "onnx_int8" in table and "passed" in table
    assert f"exporter {REPORTED_EXPORTER[exporter]}," in table


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_static_quantization_calibrates_on_the_task_and_reports_accuracy(classifier_dir, tmp_path, monkeypatch,
                                                                         exporter):
    data_dir = _sst2_dir(tmp_path / "glue", n_train=24, n_dev=10)
    output = tmp_path / "static"
    working_dir = tmp_path / "cwd"
    working_dir.mkdir()
    monkeypatch.chdir(working_dir)  # ONNX Runtime's tools can leave debug files in the working directory
    report = export_model(classifier_dir, output, quantize="static", task_name="sst2", data_dir=str(data_dir),
                          calibration_samples=16, exporter=exporter, latency=False, verbose=False)
    assert report["quantization"]["mode"] == "static" and report["quantization"]["calibration_examples"] == 16
    assert report["latency_ms"] is None and report["speedup_int8_vs_pytorch_batch_32"] is None
    accuracy = report["accuracy"]
    assert accuracy["metric"] == "accuracy" and accuracy["eval_examples"] == 10
    for variant in ("pytorch_fp32", "onnx_fp32", "onnx_int8"):
        assert 0.0 <= accuracy[variant] <= 1.0
    assert accuracy["onnx_fp32"] == accuracy["pytorch_fp32"]
    assert ("warning" in accuracy) == (100 * (accuracy["onnx_fp32"] - accuracy["onnx_int8"]) > 1.0)
    op_types = _op_types(output / "model_quantized.onnx")
    assert "QuantizeLinear" in op_types and "DequantizeLinear" in op_types
    assert os.listdir(working_dir) == []  # scratch files stay in a temporary folder
    quantization = json.loads((output / "ort_config.json").read_text())["quantization"]
    assert quantization["format"] == "QDQ" and quantization["operators_to_quantize"] == ["MatMul"]
    ids = torch.randint(5, 40, (2, 9))
    feeds = {"input_ids": ids.numpy(), "attention_mask": np.ones_like(ids.numpy()),
             "token_type_ids": np.zeros_like(ids.numpy())}
    assert _session(output / "model_quantized.onnx").run(["logits"], feeds)[0].shape == (2, 2)
    if OPTIMUM:
        from optimum.onnxruntime import ORTModelForSequenceClassification

        model = ORTModelForSequenceClassification.from_pretrained(output, file_name="model_quantized.onnx")
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids)).logits
        assert logits.shape == (2, 2)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_static_quantization_calibrates_on_a_given_file_from_the_command_line(classifier_dir, tmp_path, monkeypatch,
                                                                              exporter):
    calibration = tmp_path / "calibration.csv"
    rows = [f'"{(POSITIVE if i % 2 else NEGATIVE)[i % 5]}",{i % 2}' for i in range(12)]
    calibration.write_text("sentence,label\n" + "\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "static-from-file"
    assert main(["export", str(classifier_dir), "--output", str(output), "--quantize", "static", "--task_name", "sst2",
                 "--calibration-data", str(calibration), "--calibration_samples", "8", "--no_latency",
                 "--exporter", exporter]) == 0
    report = json.loads((output / "export_report.json").read_text())
    assert report["exporter"] == REPORTED_EXPORTER[exporter]
    assert report["quantization"]["mode"] == "static"
    assert report["quantization"]["calibration_examples"] == 8  # 8 of the file's 12 rows
    assert report["parity"]["passed"]


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_regression_masked_lm_and_encoder_exports_pass_parity(tmp_path, exporter):
    torch.manual_seed(0)
    cases = {  # name: (model, task, output names and shapes at batch 2 x 7, optimum's ORTModel class)
        "regression": (BertForSequenceClassification(_config(num_labels=1)), "text-classification",
                       {"logits": (2, 1)}, None),
        "mlm": (BertForMaskedLM(_config()), "fill-mask", {"logits": (2, 7, 40)}, "ORTModelForMaskedLM"),
        "encoder": (BertModel(_config()), "feature-extraction", {"last_hidden_state": (2, 7, 32)},
                    "ORTModelForFeatureExtraction"),
    }
    ids = torch.randint(5, 40, (2, 7))
    feeds = {"input_ids": ids.numpy(), "attention_mask": np.ones_like(ids.numpy()),
             "token_type_ids": np.zeros_like(ids.numpy())}
    for name, (model, task, outputs, ort_class) in cases.items():
        folder = _save(model.eval(), tmp_path / name)
        output = tmp_path / f"{name}-onnx"
        report = export_model(folder, output, quantize="dynamic", exporter=exporter, latency=False, verbose=False)
        assert report["task"] == task, name
        assert report["parity"]["passed"] and report["parity"]["max_abs_diff"] <= 1e-4, name
        session = _session(output / "model_quantized.onnx")
        assert {o.name: r.shape for o, r in zip(session.get_outputs(), session.run(None, feeds))} == outputs, name
        if OPTIMUM and ort_class is not None:
            import optimum.onnxruntime

            loaded = getattr(optimum.onnxruntime, ort_class).from_pretrained(output, file_name="model_quantized.onnx")
            assert loaded(input_ids=ids, attention_mask=torch.ones_like(ids),
                          token_type_ids=torch.zeros_like(ids))[0].shape[:2] == (2, 7)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_clip_text_and_vision_towers_export_with_parity(tmp_path, exporter):
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
        export_model(folder, tmp_path / "none", exporter=exporter, latency=False, verbose=False)

    text = export_model(folder, tmp_path / "text", tower="text", quantize="dynamic", exporter=exporter, latency=False,
                        verbose=False)
    assert text["task"] == "feature-extraction" and text["parity"]["passed"]
    assert text["optimization_level"] is None  # neither optimiser has fusion rules for clip_text_model
    session = _session(tmp_path / "text" / "model.onnx")
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    assert [(o.name, o.shape) for o in session.get_outputs()] == [
        ("text_embeds", ["batch_size", 16]), ("last_hidden_state", ["batch_size", "sequence_length", 32])]
    ids = torch.randint(5, 40, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    embeds = session.run(["text_embeds"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    with torch.no_grad():
        expected = _features(clip.get_text_features(input_ids=ids, attention_mask=mask)).numpy()
    np.testing.assert_allclose(embeds, expected, atol=1e-4, rtol=0)

    vision = export_model(folder, tmp_path / "vision", tower="vision", quantize="dynamic", exporter=exporter,
                          latency_runs=1, verbose=False)
    assert vision["parity"]["passed"]
    assert set(vision["latency_ms"]) == {"batch_1_image_32", "batch_32_image_32"}
    session = _session(tmp_path / "vision" / "model.onnx")
    assert [(o.name, o.shape[0]) for o in session.get_outputs()] == [
        ("image_embeds", "batch_size"), ("last_hidden_state", "batch_size")]
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = _features(clip.get_image_features(pixel_values=pixels)).numpy()
    np.testing.assert_allclose(session.run(["image_embeds"], {"pixel_values": pixels.numpy()})[0], expected,
                               atol=1e-4, rtol=0)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_a_parity_failure_stops_the_export_loudly(classifier_dir, tmp_path, monkeypatch, exporter):
    import hf_distill.export.exporter as exporter_module

    original = exporter_module.export_to_onnx

    def export_then_drift(model, *args, **kwargs):  # the PyTorch model changes after export: outputs differ
        path = original(model, *args, **kwargs)
        with torch.no_grad():
            model.classifier.bias += 0.01
        return path

    monkeypatch.setattr(exporter_module, "export_to_onnx", export_then_drift)
    with pytest.raises(ParityError, match="does not match PyTorch"):
        export_model(classifier_dir, tmp_path / "drift", quantize="dynamic", exporter=exporter, latency=False,
                     verbose=False)
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


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_per_tensor_and_per_channel_are_recorded(classifier_dir, tmp_path, exporter):
    import onnx

    report = export_model(classifier_dir, tmp_path / "pt", quantize="dynamic", per_channel=False, preset="avx512_vnni",
                          optimization_level=None, exporter=exporter, latency=False, verbose=False)
    assert report["quantization"]["per_channel"] is False and report["optimization_level"] is None
    model = onnx.load(str(tmp_path / "pt" / "model_quantized.onnx"))
    scales = {init.name: init for init in model.graph.initializer if init.name.endswith("_scale")}
    assert scales and all(len(init.dims) == 0 or np.prod(init.dims) == 1 for init in scales.values())
    assert "per-channel False" in format_table(report)


def test_optimum_onnxruntime_and_openvino_are_imported_lazily():
    """`import hf_distill` (and the CLI) must stay fast: no module-level import of the ONNX or OpenVINO stacks."""
    import ast
    import pathlib

    import hf_distill

    package = pathlib.Path(hf_distill.__file__).parent
    heavy = ("optimum", "onnxruntime", "onnx", "openvino", "nncf", "openvino_telemetry")
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


def test_exporter_option_picks_optimum_where_it_imports_and_says_how_to_fix_it_where_not(classifier_dir, tmp_path,
                                                                                        monkeypatch, capsys):
    import hf_distill.export.backend as backend

    assert backend.resolve_exporter("auto") == ("optimum" if OPTIMUM else "torch")
    assert backend.resolve_exporter("torch") == "torch"
    if OPTIMUM:
        assert backend.resolve_exporter("optimum") == "optimum"
    else:  # transformers 5.x: optimum-onnx cannot be installed
        with pytest.raises(ExportError, match="needs optimum-onnx"):
            backend.resolve_exporter("optimum")
    with pytest.raises(ExportError, match="choose one of auto, optimum, torch"):
        backend.resolve_exporter("onnx")

    # Where optimum-onnx does not import (transformers 5.x), auto falls back to torch and optimum is refused.
    monkeypatch.setattr(backend, "optimum_onnx_import_error", lambda: "ModuleNotFoundError: No module named 'x'")
    assert backend.resolve_exporter("auto") == "torch"
    with pytest.raises(ExportError) as error:
        export_model(classifier_dir, tmp_path / "out", exporter="optimum", latency=False, verbose=False)
    message = str(error.value)
    assert "\n" not in message and "optimum-onnx" in message and "transformers < 4.58" in message
    assert "--exporter torch" in message
    assert not (tmp_path / "out").exists()  # refused before any work
    assert main(["export", str(classifier_dir), "--output", str(tmp_path / "out"), "--exporter", "optimum"]) == 2
    assert "--exporter torch" in capsys.readouterr().err


def test_export_help_imports_neither_torch_nor_transformers():
    code = ("import sys\nfrom hf_distill.cli import main\n"
            "try:\n    main(['export', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('loaded:', sorted(m for m in ('torch', 'transformers', 'onnx', 'onnxruntime', 'optimum', "
            "'openvino', 'nncf') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "--exporter {auto,optimum,torch}" in result.stdout
    assert "--backend {onnxruntime,openvino}" in result.stdout
    assert "loaded: []" in result.stdout


def test_quantization_presets_hold_optimums_values_without_optimum():
    from hf_distill.export.quantization import PRESETS, STATIC_OPERATORS, quantization_config

    dynamic = quantization_config("dynamic", "avx512_vnni")
    assert (dynamic.format, dynamic.mode, dynamic.activations_dtype, dynamic.weights_dtype) == (
        "QOperator", "IntegerOps", "QUInt8", "QInt8")
    assert dynamic.weights_symmetric and not dynamic.activations_symmetric and not dynamic.reduce_range
    assert {"MatMul", "Gather", "Attention"} <= set(dynamic.operators_to_quantize)
    static = quantization_config("static", "arm64", per_channel=False)
    assert (static.format, static.mode, static.per_channel) == ("QDQ", "QLinearOps", False)
    assert list(static.operators_to_quantize) == STATIC_OPERATORS == ["MatMul"]
    avx2 = quantization_config("dynamic", "avx2")  # hf-distill's override: signed 7-bit weights
    assert avx2.weights_dtype == "QInt8" and avx2.reduce_range
    with pytest.raises(ValueError, match="preset"):
        quantization_config("dynamic", "sse4")

    if OPTIMUM:  # the transcription matches optimum's AutoQuantizationConfig, preset by preset
        from optimum.onnxruntime import AutoQuantizationConfig

        for preset in PRESETS:
            for is_static in (False, True):
                for per_channel in (False, True):
                    ours = quantization_config("static" if is_static else "dynamic", preset, per_channel)
                    theirs = getattr(AutoQuantizationConfig, preset)(is_static=is_static, per_channel=per_channel)
                    if preset == "avx2":
                        theirs.weights_dtype, theirs.reduce_range = type(theirs.weights_dtype).QInt8, True
                    if is_static:
                        theirs.operators_to_quantize = ["MatMul"]
                    for key in ("format", "mode", "activations_dtype", "weights_dtype"):
                        assert getattr(ours, key) == getattr(theirs, key).name, (preset, key)
                    for key in ("is_static", "activations_symmetric", "weights_symmetric", "per_channel",
                                "reduce_range"):
                        assert getattr(ours, key) == getattr(theirs, key), (preset, key)
                    assert list(ours.operators_to_quantize) == list(theirs.operators_to_quantize), preset


def test_ort_config_of_a_torch_export_says_what_optimum_would(tmp_path):
    from hf_distill.export.ort_config import save_ort_config
    from hf_distill.export.quantization import quantization_config

    settings = quantization_config("dynamic", "avx2")
    ours = json.loads(save_ort_config(tmp_path, "O3", settings, opset=17, exporter="torch").read_text())
    assert set(ours) == {"opset", "use_external_data_format", "one_external_file", "optimization", "quantization"}
    assert ours["opset"] == 17 and ours["optimization"]["enable_gelu_approximation"] is True
    assert ours["quantization"]["weights_dtype"] == "QInt8" and ours["quantization"]["format"] == "QOperator"
    plain = tmp_path / "plain"
    plain.mkdir()
    assert json.loads(save_ort_config(plain, None, None, opset=14, exporter="torch").read_text())["optimization"] == {}

    if OPTIMUM:  # optimum's ORTConfig writes the same keys and values, and reads ours as its own
        from optimum.onnxruntime import ORTConfig

        theirs_dir = tmp_path / "optimum"
        theirs_dir.mkdir()
        theirs = json.loads(save_ort_config(theirs_dir, "O3", settings, opset=17, exporter="optimum").read_text())
        assert set(theirs) - {"optimum_version"} == set(ours)
        assert ours["quantization"] == theirs["quantization"]
        assert {key: theirs["optimization"][key] for key in ours["optimization"]} == ours["optimization"]
        assert ORTConfig.from_pretrained(tmp_path).to_dict() == ORTConfig.from_pretrained(theirs_dir).to_dict()


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_optimization_levels_mean_the_same_on_both_exporters(classifier_dir, tmp_path, exporter):
    fused = {"Attention", "SkipLayerNormalization", "BiasGelu"}
    cases = (("O1", set(), fused | {"FastGelu"}),  # ONNX Runtime's basic optimisations only
             ("O3", {"Attention", "FastGelu"}, {"BiasGelu", "EmbedLayerNormalization"}))  # GELU approximated
    for level, present, absent in cases:
        output = tmp_path / level
        report = export_model(classifier_dir, output, optimization_level=level, exporter=exporter, latency=False,
                              verbose=False)
        assert report["optimization_level"] == level and report["parity"]["passed"], level
        op_types = _op_types(output / "model.onnx")
        assert present <= op_types and not absent & op_types, (level, op_types)


# --- OpenVINO (`--backend openvino`) and the benchmark of every runtime -------------------------------------------


def _ov_logits(path, feeds):
    import openvino

    compiled = openvino.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled({name: feeds[name] for name in (i.get_any_name() for i in compiled.inputs)})[0]


@pytest.fixture(scope="module")
def openvino_export(classifier_dir, tmp_path_factory):
    """The classifier exported to OpenVINO with NNCF's static INT8, calibrated and scored on a tiny SST-2."""
    root = tmp_path_factory.mktemp("openvino")
    data_dir = _sst2_dir(root / "glue", n_train=24, n_dev=10)
    output = root / "openvino"
    report = export_model(classifier_dir, output, quantize="auto", backend="openvino", task_name="sst2",
                          data_dir=str(data_dir), calibration_samples=16, latency_runs=1, verbose=False)
    return output, report, data_dir


def test_openvino_export_writes_ir_that_plain_openvino_loads_with_parity(classifier_dir, openvino_export):
    from transformers import AutoTokenizer

    output, report, _ = openvino_export
    assert set(report) == SCHEMA_KEYS
    assert json.loads((output / "export_report.json").read_text()) == report
    assert report["backend"] == "openvino" and report["optimization_level"] is None
    # optimum-intel's file names: OVModelFor*.from_pretrained(output) reads openvino_model.xml and its .bin;
    # file_name="openvino_model_int8.xml" the INT8 model. Config and tokenizer sit beside them.
    assert report["files"] == {"openvino_fp32": "openvino_model.xml", "openvino_int8": "openvino_model_int8.xml"}
    for name in ("openvino_model.xml", "openvino_model.bin", "openvino_model_int8.xml", "openvino_model_int8.bin",
                 "config.json", "tokenizer.json"):
        assert (output / name).is_file(), name
    assert not list(output.glob("*.onnx"))  # the ONNX trace stays in a scratch folder
    assert report["quantization"]["mode"] == "static" and report["quantization"]["method"] == "nncf"
    assert report["quantization"]["calibration_examples"] == 16
    assert report["quantization"]["nncf"]["model_type"] == "transformer"
    assert report["parity"]["passed"] and report["parity"]["max_abs_diff"] <= 1e-4
    # fp32 runs in f32 (parity); INT8's other operations in the CPU's default (bf16 where it has AMX or AVX512-BF16).
    assert report["inference_precision"]["openvino_fp32"] == "f32"
    assert report["inference_precision"]["openvino_int8"] in ("f32", "bf16")
    assert report["machine"]["openvino"] and report["machine"]["nncf"] and "onnxruntime" not in report["machine"]
    for row in report["latency_ms"].values():
        assert set(row) == {"pytorch_fp32", "openvino_fp32", "openvino_int8"} and all(v > 0 for v in row.values())
    assert report["speedup_int8_vs_pytorch_batch_32"] == pytest.approx(
        report["latency_ms"]["batch_32_seq_128"]["pytorch_fp32"]
        / report["latency_ms"]["batch_32_seq_128"]["openvino_int8"], abs=0.01)
    accuracy = report["accuracy"]
    assert accuracy["eval_examples"] == 10 and accuracy["openvino_fp32"] == accuracy["pytorch_fp32"]
    assert 0.0 <= accuracy["openvino_int8"] <= 1.0
    assert report["size_mb"]["openvino_int8"] <= report["size_mb"]["openvino_fp32"]
    assert os.path.getsize(output / "openvino_model_int8.bin") < 0.5 * os.path.getsize(output / "openvino_model.bin")

    # Plain OpenVINO, no hf-distill: the fp32 IR matches PyTorch on a padded batch, at other shapes too.
    tokenizer = AutoTokenizer.from_pretrained(output)
    inputs = tokenizer(POSITIVE + NEGATIVE, padding=True, return_tensors="np")
    assert not inputs["attention_mask"].all()
    feeds = {name: np.asarray(value, dtype=np.int64) for name, value in inputs.items()}
    reference = BertForSequenceClassification.from_pretrained(classifier_dir).eval()
    with torch.no_grad():
        expected = reference(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
    np.testing.assert_allclose(_ov_logits(output / "openvino_model.xml", feeds), expected, atol=1e-4, rtol=0)
    int8 = _ov_logits(output / "openvino_model_int8.xml", feeds)
    assert int8.shape == expected.shape and np.abs(int8 - expected).max() < 0.1  # close, not identical
    assert np.abs(int8 - expected).max() > 0
    ids = np.random.default_rng(0).integers(5, 40, (3, 77))
    long_feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    with torch.no_grad():
        expected = reference(**{k: torch.from_numpy(v) for k, v in long_feeds.items()}).logits.numpy()
    np.testing.assert_allclose(_ov_logits(output / "openvino_model.xml", long_feeds), expected, atol=1e-4, rtol=0)
    assert "OpenVINO inference precision" in format_table(report) and "nncf" in format_table(report)


def test_openvino_dynamic_int8_and_other_heads_from_the_command_line(tmp_path):
    torch.manual_seed(0)
    folder = _save(BertForMaskedLM(_config()).eval(), tmp_path / "mlm")
    output = tmp_path / "mlm-ov"
    assert main(["export", str(folder), "--backend", "openvino", "--quantize", "dynamic", "--output", str(output),
                 "--no_latency"]) == 0
    report = json.loads((output / "export_report.json").read_text())
    assert report["task"] == "fill-mask" and report["parity"]["passed"]
    assert report["quantization"]["mode"] == "dynamic" and report["quantization"]["calibration_examples"] is None
    ids = np.random.default_rng(1).integers(5, 40, (2, 7))
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    assert _ov_logits(output / "openvino_model_int8.xml", feeds).shape == (2, 7, 40)

    encoder = _save(BertModel(_config()).eval(), tmp_path / "encoder")
    report = export_model(encoder, backend="openvino", latency=False, verbose=False)  # fp32 only, default folder
    assert (encoder / "openvino" / "openvino_model.xml").is_file() and report["files"]["openvino_int8"] is None
    assert report["task"] == "feature-extraction" and report["parity"]["max_abs_diff"] <= 1e-4


def test_openvino_parity_failure_stops_the_export(classifier_dir, tmp_path, monkeypatch):
    import hf_distill.export.exporter as exporter_module

    original = exporter_module.export_to_onnx

    def export_then_drift(model, *args, **kwargs):
        path = original(model, *args, **kwargs)
        with torch.no_grad():
            model.classifier.bias += 0.01
        return path

    monkeypatch.setattr(exporter_module, "export_to_onnx", export_then_drift)
    with pytest.raises(ParityError, match="The OpenVINO export .* does not match PyTorch"):
        export_model(classifier_dir, tmp_path / "drift", quantize="dynamic", backend="openvino", latency=False,
                     verbose=False)
    report = json.loads((tmp_path / "drift" / "export_report.json").read_text())
    assert report["parity"]["passed"] is False and not (tmp_path / "drift" / "openvino_model_int8.xml").exists()


def test_missing_openvino_or_nncf_and_bad_folders_give_one_line_errors(classifier_dir, openvino_export, tmp_path,
                                                                       monkeypatch, capsys):
    import shutil

    import hf_distill.export.nncf_quantization as nncf_module
    import hf_distill.export.openvino_backend as ov_backend

    with pytest.raises(ExportError, match="no config.json"):
        export_model(tmp_path, tmp_path / "out", backend="openvino", latency=False, verbose=False)
    with pytest.raises(ExportError, match="backend='tensorrt': choose one of onnxruntime, openvino"):
        export_model(classifier_dir, tmp_path / "out", backend="tensorrt")

    # A corrupt or incomplete IR folder: the benchmark names the folder and the command that rewrites it.
    output, _, _ = openvino_export
    broken = tmp_path / "broken"
    shutil.copytree(output, broken)
    (broken / "openvino_model.xml").write_text("<net><layers>")
    with pytest.raises(ExportError) as error:
        ov_backend.read_ir(broken / "openvino_model.xml")
    assert "\n" not in str(error.value) and "corrupt" in str(error.value) and "--backend openvino" in str(error.value)
    (broken / "openvino_model_int8.bin").unlink()
    with pytest.raises(ExportError, match="openvino_model_int8.bin is missing"):
        ov_backend.read_ir(broken / "openvino_model_int8.xml")

    # Where openvino does not import, the export is refused before any work, naming the extra to install.
    monkeypatch.setattr(ov_backend, "openvino_import_error", lambda: "ModuleNotFoundError: No module named 'openvino'")
    with pytest.raises(ExportError) as error:
        export_model(classifier_dir, tmp_path / "no-ov", backend="openvino", latency=False, verbose=False)
    message = str(error.value)
    assert "\n" not in message and 'pip install "hf-distill[openvino]"' in message and "No module named" in message
    assert not (tmp_path / "no-ov").exists()
    assert main(["export", str(classifier_dir), "--backend", "openvino", "--output", str(tmp_path / "no-ov")]) == 2
    assert 'pip install "hf-distill[openvino]"' in capsys.readouterr().err
    monkeypatch.undo()

    monkeypatch.setattr(nncf_module, "nncf_import_error", lambda: "ModuleNotFoundError: No module named 'nncf'")
    with pytest.raises(ExportError) as error:
        export_model(classifier_dir, tmp_path / "no-nncf", backend="openvino", quantize="dynamic", latency=False,
                     verbose=False)
    assert "\n" not in str(error.value) and "needs NNCF" in str(error.value)
    assert 'pip install "hf-distill[openvino]"' in str(error.value)


def test_benchmark_times_every_runtime_and_the_teacher_in_one_run(classifier_dir, dynamic_export, openvino_export,
                                                                  tmp_path, capsys):
    import shutil

    model_dir = tmp_path / "student"
    shutil.copytree(classifier_dir, model_dir)
    onnx_dir, _, _ = dynamic_export
    openvino_dir, _, data_dir = openvino_export
    shutil.copytree(onnx_dir, model_dir / "onnx")
    shutil.copytree(openvino_dir, model_dir / "openvino")
    torch.manual_seed(1)
    teacher = _save(BertForSequenceClassification(_config(num_labels=2, num_hidden_layers=4)).eval(),
                    tmp_path / "teacher")
    (model_dir / "results.json").write_text(json.dumps({"teacher": {"path": str(teacher)}}))

    assert main(["benchmark", str(model_dir), "--task_name", "sst2", "--data_dir", str(data_dir), "--latency_runs",
                 "1", "--dataset_runs", "1"]) == 0
    table = capsys.readouterr().out
    assert "teacher fp32" in table and "OpenVINO INT8" in table and "x teacher fp32 at batch 32" in table
    result = json.loads((model_dir / "benchmark_report.json").read_text())
    variants = ["pytorch_fp32", "teacher_fp32", "onnx_fp32", "onnx_int8", "openvino_fp32", "openvino_int8"]
    assert result["variants"] == variants and result["teacher"]["path"] == str(teacher)
    assert set(result["latency_ms"]) == {"batch_1_seq_128", "batch_32_seq_128", "dev_sst2_batch_32"}
    for row in result["latency_ms"].values():
        assert set(row) == set(variants) and all(value > 0 for value in row.values())
    accuracy = result["accuracy"]
    assert accuracy["eval_examples"] == 10 and set(variants) <= set(accuracy)
    assert accuracy["onnx_fp32"] == accuracy["openvino_fp32"] == accuracy["pytorch_fp32"]
    assert result["machine"]["threads"] >= 1 and result["machine"]["cpu"]
    assert result["machine"]["onnxruntime"] and result["machine"]["openvino"]
    row = result["latency_ms"]["batch_32_seq_128"]
    assert result["speedups_batch_32"]["openvino_int8"]["vs_teacher_fp32"] == pytest.approx(
        row["teacher_fp32"] / row["openvino_int8"], abs=0.01)
    # Each export's report now holds the same run, the teacher and the INT8 speed-ups of its backend.
    for folder, int8 in (("onnx", "onnx_int8"), ("openvino", "openvino_int8")):
        report = json.loads((model_dir / folder / "export_report.json").read_text())
        assert report["latency_ms"] == result["latency_ms"] and report["teacher"] == result["teacher"]
        assert report["speedup_int8_vs_teacher_batch_32"] == pytest.approx(row["teacher_fp32"] / row[int8], abs=0.01)
    assert main(["benchmark", str(model_dir), "--print_only"]) == 0
    assert "x PyTorch fp32 at batch 32" in capsys.readouterr().out

    # A --teacher that is no model folder is a one-line error.
    assert main(["benchmark", str(model_dir), "--teacher", str(tmp_path)]) == 2
    assert "not a model folder" in capsys.readouterr().err


def test_openvino_and_nncf_send_no_telemetry(classifier_dir, tmp_path):
    """`import openvino` and each NNCF call report to Google Analytics unless the user opted out; hf-distill's export
    sends nothing. Checked outside pytest (which NNCF detects), with a fresh HOME (no opt-out file) and no CI
    variable, where a plain `import openvino` does send (the control)."""
    record = ("import sys\n"
              "import openvino_telemetry.utils.sender as sender\n"
              "calls = []\n"
              "sender.TelemetrySender.send = lambda self, *args, **kwargs: calls.append(args)\n")
    ours = record + ("from hf_distill.export import export_model\n"
                     "export_model(sys.argv[1], sys.argv[2], quantize='dynamic', backend='openvino', latency=False,"
                     " verbose=False)\n"
                     "print('telemetry calls:', len(calls))\n")
    plain = record + "import openvino\nprint('telemetry calls:', len(calls))\n"
    env = {key: value for key, value in os.environ.items() if key not in ("CI", "NNCF_CI", "NNCF_DEV")}
    env.update(HOME=str(tmp_path), HF_HUB_OFFLINE="1")
    results = [subprocess.run([sys.executable, "-c", code, str(classifier_dir), str(tmp_path / "out")], env=env,
                              capture_output=True, text=True, timeout=300) for code in (ours, plain)]
    for result in results:
        assert result.returncode == 0, result.stderr[-2000:]
    assert "telemetry calls: 0" in results[0].stdout
    assert (tmp_path / "out" / "openvino_model_int8.xml").is_file()
    assert "telemetry calls: 0" not in results[1].stdout  # the control: without hf-distill's import, it would send


def test_quantize_auto_is_static_with_calibration_data_and_dynamic_without():
    from hf_distill.export import resolve_quantization
    from hf_distill.export.commands import export_parser

    assert resolve_quantization("auto", "sst2") == "static" and resolve_quantization("auto", None) == "dynamic"
    assert resolve_quantization("dynamic", "sst2") == "dynamic" and resolve_quantization(None, "sst2") is None
    assert export_parser().parse_args(["m", "--quantize"]).quantize == "auto"
    assert export_parser().parse_args(["m"]).quantize is None


@pytest.mark.parametrize("accuracy, quantization, expected", [
    # MRPC, a pruned MiniLM quantized statically: 80.05 -> 69.06 (BENCHMARKS.md)
    ({"metric": "mean(accuracy,f1)", "onnx_fp32": 0.8005, "onnx_int8": 0.6906}, {"mode": "static"},
     "onnx_int8 scores 69.06 against 80.05 for onnx_fp32 (mean(accuracy,f1), 11.0 points lower): export again with "
     "dynamic quantization (`--quantize dynamic`), or keep the fp32 model."),
    ({"metric": "accuracy", "onnx_fp32": 0.8165, "onnx_int8": 0.8142}, {"mode": "static"}, None),  # 0.2 points
    ({"metric": "accuracy", "onnx_fp32": 0.80, "onnx_int8": 0.79}, {"mode": "static"}, None),  # 1.0 point: allowed
    ({"metric": "accuracy", "onnx_fp32": 0.80, "onnx_int8": None}, None, None),
    ({"metric": "accuracy", "onnx_fp32": 0.80, "onnx_int8": 0.70}, {"mode": "dynamic"},
     "onnx_int8 scores 70.00 against 80.00 for onnx_fp32 (accuracy, 10.0 points lower): keep the fp32 model, or try "
     "static quantization with the task's data (`--quantize static --task_name ...`)."),
])
def test_an_int8_variant_far_below_fp32_gets_a_one_line_warning_with_the_fix(accuracy, quantization, expected):
    from hf_distill.export.exporter import int8_accuracy_warning

    assert int8_accuracy_warning(accuracy, "onnx_fp32", "onnx_int8", quantization) == expected


@pytest.mark.parametrize("dynamic_wins", [True, False])
def test_auto_quantization_keeps_dynamic_int8_when_static_loses_accuracy(classifier_dir, tmp_path, monkeypatch,
                                                                        dynamic_wins):
    import hf_distill.export.exporter as exporter_module

    data_dir = _sst2_dir(tmp_path / "glue", n_train=24, n_dev=10)
    real = exporter_module.evaluate_variants
    calls, fp32 = [], []

    def scores_with_a_broken_static_model(predictors, *args, **kwargs):
        scores = real(predictors, *args, **kwargs)
        calls.append(sorted(scores))
        if len(calls) == 1:  # the first pass scores the static model: pretend it lost 30 points
            fp32.append(scores["onnx_fp32"])
            scores["onnx_int8"] = fp32[0] - 0.3
        elif not dynamic_wins:
            scores["onnx_int8"] = fp32[0] - 0.5
        return scores

    monkeypatch.setattr(exporter_module, "evaluate_variants", scores_with_a_broken_static_model)
    output = tmp_path / "auto"
    report = export_model(classifier_dir, output, quantize="auto", task_name="sst2", data_dir=str(data_dir),
                          calibration_samples=16, latency=False, verbose=False)
    assert calls[1] == ["onnx_int8"]  # the dynamic model, scored on the same data
    accuracy, quantization = report["accuracy"], report["quantization"]
    assert sorted(os.listdir(output)).count("dynamic_model_quantized.onnx") == 0
    op_types = _op_types(output / "model_quantized.onnx")
    config = json.loads((output / "ort_config.json").read_text())["quantization"]
    if dynamic_wins:
        assert quantization["mode"] == "dynamic" and quantization["instead_of"]["mode"] == "static"
        assert quantization["instead_of"]["score"] == pytest.approx(accuracy["onnx_fp32"] - 0.3)
        assert accuracy["onnx_int8"] > quantization["instead_of"]["score"]
        assert "DynamicQuantizeLinear" in op_types and config["format"] == "QOperator"
    else:
        assert quantization["mode"] == "static" and quantization["dynamic_score"] == pytest.approx(
            accuracy["onnx_fp32"] - 0.5)
        assert "QuantizeLinear" in op_types and config["format"] == "QDQ"
        assert "30.0 points lower" in accuracy["warning"]  # static kept, and the user told


def test_an_explicit_static_request_is_never_replaced(classifier_dir, tmp_path, monkeypatch):
    import hf_distill.export.exporter as exporter_module

    data_dir = _sst2_dir(tmp_path / "glue", n_train=24, n_dev=10)
    real = exporter_module.evaluate_variants

    def broken_static(predictors, *args, **kwargs):
        scores = real(predictors, *args, **kwargs)
        scores["onnx_int8"] = scores["onnx_fp32"] - 0.3
        return scores

    monkeypatch.setattr(exporter_module, "evaluate_variants", broken_static)
    report = export_model(classifier_dir, tmp_path / "static", quantize="static", task_name="sst2",
                          data_dir=str(data_dir), calibration_samples=16, latency=False, verbose=False)
    assert report["quantization"]["mode"] == "static" and "dynamic_score" not in report["quantization"]
    assert "`--quantize dynamic`" in report["accuracy"]["warning"]
