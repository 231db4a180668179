"""Structured pruning (`hf_distill.pruning`): exactness, reloading, importance against hand computations, refusals."""

import copy
import json
import logging
import math

import pytest
import torch
import torch.nn.functional as F
import transformers
from torch import nn
from torch.func import functional_call

from hf_distill.pruning import PruningImportance, compute_importance, prune_model
from tests.conftest import pad_collator, random_classification_dataset, tiny_bert_config, tiny_teacher


def calibration(n: int = 12, seed: int = 0) -> list[dict]:
    """Padded batches of 4 examples of random lengths (labels included)."""
    dataset = random_classification_dataset(n, length=9, variable_length=True, seed=seed)
    return [pad_collator([dataset[i] for i in range(start, start + 4)]) for start in range(0, n, 4)]


def logits_of(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def original_with_parts_removed(model, layers, neurons):
    """The original model with the layers not in `layers` skipped and the FFN neurons not in `neurons` zeroed."""
    reference = copy.deepcopy(model)
    reference.bert.encoder.layer = nn.ModuleList(reference.bert.encoder.layer[i] for i in layers)
    for layer, kept in zip(reference.bert.encoder.layer, neurons):
        mask = torch.zeros(model.config.intermediate_size)
        mask[kept] = 1
        layer.intermediate.register_forward_hook(lambda module, args, output, mask=mask: output * mask)
    return reference


def reference_forward(model, batch, layers, heads, neurons, channels, units) -> dict:
    """BERT-for-sequence-classification written out from the original's weights, keeping the given indices only.

    Independent of `prune_model`: it indexes the original weights directly. Also returns what the importance
    scores are made of (FFN activations, LayerNorm outputs, each layer's input and output).
    """
    p = {name: value.detach() for name, value in model.named_parameters()}
    config = model.config
    eps, d = config.layer_norm_eps, config.hidden_size // config.num_attention_heads
    ids, mask = batch["input_ids"], batch["attention_mask"]
    size, length = ids.shape
    c, u = torch.tensor(channels), torch.tensor(units)

    def norm(x, prefix):
        return F.layer_norm(x, (x.shape[-1],), p[f"{prefix}.weight"][c], p[f"{prefix}.bias"][c], eps)

    x = (p["bert.embeddings.word_embeddings.weight"][ids][..., c]
         + p["bert.embeddings.position_embeddings.weight"][:length, c]
         + p["bert.embeddings.token_type_embeddings.weight"][0, c])
    x = norm(x, "bert.embeddings.LayerNorm")
    trace = {"norms": [x], "ffn": [], "blocks": []}
    for layer, kept_heads, kept_neurons in zip(layers, heads, neurons):
        pre = f"bert.encoder.layer.{layer}."
        rows = torch.tensor([h * d + i for h in kept_heads for i in range(d)])
        n = torch.tensor(kept_neurons)

        def project(name):
            weight, bias = p[f"{pre}attention.self.{name}.weight"], p[f"{pre}attention.self.{name}.bias"]
            out = x @ weight[rows][:, c].T + bias[rows]
            return out.view(size, length, len(kept_heads), d).transpose(1, 2)

        scores = project("query") @ project("key").transpose(-1, -2) / math.sqrt(d)
        scores = scores.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
        context = (scores.softmax(-1) @ project("value")).transpose(1, 2).reshape(size, length, -1)
        attended = norm(context @ p[f"{pre}attention.output.dense.weight"][c][:, rows].T
                        + p[f"{pre}attention.output.dense.bias"][c] + x, f"{pre}attention.output.LayerNorm")
        act = F.gelu(attended @ p[f"{pre}intermediate.dense.weight"][n][:, c].T + p[f"{pre}intermediate.dense.bias"][n])
        out = norm(act @ p[f"{pre}output.dense.weight"][c][:, n].T + p[f"{pre}output.dense.bias"][c] + attended,
                   f"{pre}output.LayerNorm")
        trace["norms"] += [attended, out]
        trace["ffn"].append(act)
        trace["blocks"].append((x, out))
        x = out
    pooled = torch.tanh(x[:, 0] @ p["bert.pooler.dense.weight"][u][:, c].T + p["bert.pooler.dense.bias"][u])
    trace["pooled"] = pooled
    trace["logits"] = pooled @ p["classifier.weight"][:, u].T + p["classifier.bias"]
    return trace


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum over the real tokens of ``values [B, T, ...]``, divided by their count."""
    weights = mask.float()
    return torch.einsum("bt,bt...->...", weights, values) / weights.sum()


# -- exactness ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_ffn_and_layer_pruning_equal_the_original_with_those_neurons_zeroed_and_layers_skipped(attn_implementation):
    model = tiny_teacher(attn_implementation=attn_implementation)
    batches = calibration()
    importance = compute_importance(model, batches)
    pruned, report = prune_model(model, importance, intermediate_size=24, num_layers=3)
    assert (pruned.config.intermediate_size, pruned.config.num_hidden_layers) == (24, 3)
    assert report.exact and report.pruned["hidden_size"] == 32
    assert len(report.layers) == 3 and all(len(kept) == 24 for kept in report.neurons)
    # The most important layers and, in each layer, its own most important neurons.
    assert report.layers == sorted(importance.layers.argsort(descending=True)[:3].tolist())
    for layer, kept in zip(report.layers, report.neurons):
        assert kept == sorted(importance.neurons[layer].argsort(descending=True)[:24].tolist())
    assert len({tuple(kept) for kept in report.neurons}) > 1  # not one choice for every layer
    reference = original_with_parts_removed(model, report.layers, report.neurons)
    for batch in batches:
        torch.testing.assert_close(logits_of(pruned, batch), logits_of(reference, batch), rtol=0, atol=1e-5)
        # And pruning really changed the function: the unpruned model gives other logits.
        assert not torch.allclose(logits_of(pruned, batch), logits_of(model, batch), atol=1e-4)


def test_neurons_whose_output_columns_are_zero_are_removed_without_changing_the_outputs():
    model = tiny_teacher()
    removed = torch.arange(0, 64, 2)  # every other neuron, in every layer
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            layer.output.dense.weight[:, removed] = 0
    importance = compute_importance(model, calibration())
    scores = importance.neurons.clone()
    scores[:, removed] = -1  # the importance says: these are the least important
    importance.neurons = scores
    pruned, report = prune_model(model, importance, intermediate_size=32)
    assert all(kept == list(range(1, 64, 2)) for kept in report.neurons)
    for batch in calibration(seed=1):
        torch.testing.assert_close(logits_of(pruned, batch), logits_of(model, batch), rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", ["bert", "roberta", "electra", "electra_factorised"])
def test_keeping_everything_reproduces_the_model_exactly(family):
    model = build(family, "ForSequenceClassification")
    importance = compute_importance(model, calibration())
    pruned, report = prune_model(model, importance, num_attention_heads=4, intermediate_size=64, num_layers=4)
    assert report.parameters_after == report.parameters_before and report.exact
    batch = calibration()[0]
    assert torch.equal(logits_of(pruned, batch), logits_of(model, batch))


def test_head_and_width_pruning_equals_a_reference_forward_of_the_sliced_weights():
    """Shrinking the width is not exact (LayerNorms see fewer channels), so the test is against a forward pass
    written out from the original weights at the reported indices: every weight must be sliced consistently."""
    model = tiny_teacher()
    batches = calibration()
    importance = compute_importance(model, batches)
    pruned, report = prune_model(model, importance, num_attention_heads=2, intermediate_size=40, layers=[0, 2, 3])
    config = pruned.config
    assert (config.num_attention_heads, config.hidden_size, config.intermediate_size, config.num_hidden_layers) == (
        2, 16, 40, 3)
    assert not report.exact and report.notes
    assert report.channels == sorted(importance.channels.argsort(descending=True)[:16].tolist())
    assert report.head_units == sorted(importance.head_units.argsort(descending=True)[:16].tolist())
    for layer, kept in zip(report.layers, report.heads):
        assert kept == sorted(importance.heads[layer].argsort(descending=True)[:2].tolist())
    assert len({tuple(kept) for kept in report.heads}) > 1  # each layer picks its own heads
    for batch in batches:
        expected = reference_forward(model, batch, report.layers, report.heads, report.neurons, report.channels,
                                     report.head_units)["logits"]
        torch.testing.assert_close(logits_of(pruned, batch), expected, rtol=0, atol=1e-5)
    # The reference is not trivially satisfied: other channels give other logits.
    other = reference_forward(model, batches[0], report.layers, report.heads, report.neurons, list(range(16)),
                              report.head_units)["logits"]
    assert not torch.allclose(other, logits_of(pruned, batches[0]), atol=1e-4)


# -- saving and reloading ----------------------------------------------------------------------------------------


def build(family: str, head: str, **overrides):
    values = dict(vocab_size=99, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    values.update(overrides)
    torch.manual_seed(0)
    if family == "bert":
        return getattr(transformers, f"Bert{head}")(tiny_bert_config(**overrides)).eval()
    if family == "roberta":
        values["max_position_embeddings"] = 66
        return getattr(transformers, f"Roberta{head}")(transformers.RobertaConfig(**values)).eval()
    values["embedding_size"] = 16 if family == "electra_factorised" else 32
    return getattr(transformers, f"Electra{head}")(transformers.ElectraConfig(**values)).eval()


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def load_quietly(auto_class, folder):
    """Loads with `from_pretrained`, returning the model, its loading info and transformers' warnings."""
    handler = _Records()
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        model, info = auto_class.from_pretrained(str(folder), output_loading_info=True)
    finally:
        logger.removeHandler(handler)
    return model, info, [record.getMessage() for record in handler.records]


CASES = [
    ("bert", "ForSequenceClassification", transformers.AutoModelForSequenceClassification),
    ("roberta", "ForSequenceClassification", transformers.AutoModelForSequenceClassification),
    ("electra", "ForSequenceClassification", transformers.AutoModelForSequenceClassification),
    ("electra_factorised", "ForSequenceClassification", transformers.AutoModelForSequenceClassification),
    ("bert", "ForMaskedLM", transformers.AutoModelForMaskedLM),
    ("roberta", "ForTokenClassification", transformers.AutoModelForTokenClassification),
    ("electra_factorised", "ForQuestionAnswering", transformers.AutoModelForQuestionAnswering),
    ("bert", "Model", transformers.AutoModel),
]


@pytest.mark.parametrize("family,head,auto_class", CASES)
def test_pruned_model_saves_and_reloads_with_plain_from_pretrained_without_warnings(tmp_path, family, head, auto_class):
    model = build(family, head)
    batches = calibration()
    if head == "ForTokenClassification":
        batches = [{**batch, "labels": batch["attention_mask"].clone()} for batch in batches]
    if head in ("ForQuestionAnswering", "ForMaskedLM", "Model"):  # no labels: the entropy of the predictions
        batches = [{key: value for key, value in batch.items() if key != "labels"} for batch in batches]
    importance = compute_importance(model, batches, head_importance="activation" if head == "Model" else "gradient")
    assert importance.head_loss == {"Model": None, "ForQuestionAnswering": "entropy", "ForMaskedLM": "entropy"}.get(
        head, "task")
    pruned, report = prune_model(model, importance, num_attention_heads=3, intermediate_size=48, num_layers=2)
    assert report.pruned == {"num_hidden_layers": 2, "num_attention_heads": 3, "hidden_size": 24,
                             "intermediate_size": 48}
    assert report.parameters_after < report.parameters_before
    assert report.parameters_after == sum(p.numel() for p in pruned.parameters())
    pruned.save_pretrained(tmp_path)
    report.save(tmp_path)
    assert json.loads((tmp_path / "pruning.json").read_text())["heads"] == report.heads
    loaded, info, warnings = load_quietly(auto_class, tmp_path)
    assert type(loaded) is type(model)
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    assert warnings == []
    assert (loaded.config.hidden_size, loaded.config.num_attention_heads) == (24, 3)
    for name, value in pruned.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, rtol=0, atol=0)


def test_the_warning_capture_sees_a_missing_weight(tmp_path):
    """The control for the test above: a checkpoint without the classifier does warn."""
    build("bert", "Model").save_pretrained(tmp_path)
    _, info, warnings = load_quietly(transformers.AutoModelForSequenceClassification, tmp_path)
    assert info["missing_keys"] and warnings


# -- importance against hand computations ------------------------------------------------------------------------


def example_head_gradients(model, ids, label) -> torch.Tensor:
    """``∂L/∂ξ_h`` for one unpadded example: scaling head h's value rows and bias by ξ scales its context."""
    value = model.bert.encoder.layer[0].attention.self.value
    heads, size = model.config.num_attention_heads, model.config.hidden_size // model.config.num_attention_heads
    params = dict(model.named_parameters())
    grads = []
    for head in range(heads):
        xi = torch.ones((), requires_grad=True)
        rows = torch.zeros(heads * size)
        rows[head * size:(head + 1) * size] = 1
        scale = 1 + (xi - 1) * rows
        weights = {**params, "bert.encoder.layer.0.attention.self.value.weight": value.weight * scale[:, None],
                   "bert.encoder.layer.0.attention.self.value.bias": value.bias * scale}
        if label is None:
            logits = functional_call(model, weights, (), {"input_ids": ids[None]}).logits
            loss = -(logits.softmax(-1) * logits.log_softmax(-1)).sum()
        else:
            loss = functional_call(model, weights, (), {"input_ids": ids[None], "labels": torch.tensor([label])}).loss
        grads.append(torch.autograd.grad(loss, xi)[0])
    return torch.stack(grads)


@pytest.mark.parametrize("labels", [True, False])
def test_head_importance_is_the_mean_absolute_gate_gradient_over_examples(labels):
    model = tiny_teacher(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    batches = calibration(8)
    if not labels:
        batches = [{key: value for key, value in batch.items() if key != "labels"} for batch in batches]
    raw = compute_importance(model, batches, normalize_heads=False)
    normalised = compute_importance(model, batches)
    expected = torch.zeros(2)
    for batch in batches:
        for ids, mask, label in zip(batch["input_ids"], batch["attention_mask"], batch.get("labels", [None] * 4)):
            expected += example_head_gradients(model, ids[mask.bool()], None if label is None else int(label)).abs()
    expected /= 8
    assert raw.head_loss == ("task" if labels else "entropy") and raw.num_examples == 8
    torch.testing.assert_close(raw.heads[0], expected, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(normalised.heads[0], expected / expected.norm(), rtol=1e-4, atol=1e-7)
    assert not torch.allclose(expected[0], expected[1])  # the heads are told apart


def test_neuron_channel_layer_and_unit_importance_match_a_hand_computation():
    model = tiny_teacher(num_hidden_layers=2)
    batches = calibration()
    importance = compute_importance(model, batches)
    everything = dict(layers=[0, 1], heads=[list(range(4))] * 2, neurons=[list(range(64))] * 2,
                      channels=list(range(32)), units=list(range(32)))
    traces = [reference_forward(model, batch, **everything) for batch in batches]
    mask = torch.cat([torch.cat([b["attention_mask"], torch.zeros(4, 9 - b["attention_mask"].shape[1])], 1)
                      for b in batches])

    def pooled_over_batches(values):  # [B, T, ...] per batch -> one padded [3·B, 9, ...]
        return torch.cat([F.pad(v, (0, 0) * (v.dim() - 2) + (0, 9 - v.shape[1])) for v in values])

    neurons = torch.stack([masked_mean(pooled_over_batches([t["ffn"][i].abs() for t in traces]), mask)
                           for i in range(2)])
    channels = sum(masked_mean(pooled_over_batches([t["norms"][k].abs() for t in traces]), mask) for k in range(5))
    layers = torch.stack([masked_mean(pooled_over_batches(
        [1 - F.cosine_similarity(*t["blocks"][i], dim=-1) for t in traces]), mask) for i in range(2)])
    units = torch.cat([t["pooled"] for t in traces]).abs().mean(0) * model.classifier.weight.detach().norm(dim=0)
    torch.testing.assert_close(importance.neurons, neurons, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(importance.channels, channels, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(importance.layers, layers, rtol=1e-3, atol=1e-7)
    torch.testing.assert_close(importance.head_units, units, rtol=1e-4, atol=1e-6)
    assert importance.num_tokens == int(mask.sum()) and importance.num_examples == 12


def test_importance_is_the_same_for_sdpa_and_eager_and_for_a_dataset_or_batches():
    eager = tiny_teacher()
    sdpa = tiny_teacher(attn_implementation="sdpa")
    dataset = random_classification_dataset(12, length=9, variable_length=True)
    from_batches = compute_importance(eager, calibration())
    from_dataset = compute_importance(sdpa, dataset, batch_size=4, data_collator=pad_collator)
    for name in ("heads", "neurons", "channels", "layers", "head_units"):
        torch.testing.assert_close(getattr(from_dataset, name), getattr(from_batches, name), rtol=1e-4, atol=1e-6)
    one_batch = compute_importance(eager, calibration(), num_batches=1)
    assert one_batch.num_examples == 4


def test_importance_leaves_the_model_unchanged_and_round_trips_through_json():
    model = tiny_teacher().train()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    importance = compute_importance(model, calibration())
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())
    restored = PruningImportance.from_dict(json.loads(json.dumps(importance.to_dict())))
    torch.testing.assert_close(restored.heads, importance.heads)
    assert restored.head_loss == "task" and restored.describe()["heads"] == "michel2019_gradient"


def test_only_given_layers_needs_no_importance_and_equals_create_student():
    from hf_distill import create_student

    model = tiny_teacher()
    pruned, report = prune_model(model, layers=[3, 1])
    assert report.layers == [1, 3] and report.importance is None
    batch = calibration()[0]
    torch.testing.assert_close(logits_of(pruned, batch), logits_of(create_student(model, layers=[1, 3]).eval(), batch),
                               rtol=0, atol=0)


# -- refusals ----------------------------------------------------------------------------------------------------


def tiny(config_class, model_class, **values):
    base = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                max_position_embeddings=64)
    base.update(values)
    return getattr(transformers, model_class)(getattr(transformers, config_class)(**base))


@pytest.mark.parametrize("model,message", [
    (lambda: tiny("AlbertConfig", "AlbertForSequenceClassification", embedding_size=16),
     "shares its layer weights.*create_student"),
    (lambda: tiny("DistilBertConfig", "DistilBertForSequenceClassification", dim=32, n_layers=2, n_heads=4,
                  hidden_dim=64), "supports BERT, RoBERTa.*not DistilBertForSequenceClassification.*create_student"),
    (lambda: tiny("DebertaV2Config", "DebertaV2ForSequenceClassification"), "not DebertaV2ForSequenceClassification"),
    (lambda: tiny("BertConfig", "BertForPreTraining"), "BertForPreTraining has a head pruning does not slice.*"
                                                       "AutoModelForSequenceClassification"),
], ids=["albert", "distilbert", "deberta-v2", "bert-pretraining"])
def test_unsupported_models_are_refused_before_any_work(model, message):
    model = model()
    with pytest.raises(ValueError, match=message):
        compute_importance(model, calibration())
    with pytest.raises(ValueError, match=message):
        prune_model(model, layers=[0])


@pytest.mark.parametrize("kwargs,message", [
    (dict(num_attention_heads=0), "num_attention_heads=0 must be between 1 and the model's 4 heads"),
    (dict(num_attention_heads=5), "num_attention_heads=5 must be between 1 and the model's 4 heads"),
    (dict(intermediate_size=65), "intermediate_size=65 must be between 1 and the model's 64"),
    (dict(intermediate_size=0), "intermediate_size=0 must be between 1"),
    (dict(layers=[0, 0]), r"layers=\[0, 0\] must be distinct 0-based indices of the model's 4 layers"),
    (dict(layers=[4]), r"layers=\[4\] must be distinct"),
    (dict(num_layers=5), "num_layers=5 must be between 1 and the model's 4 layers"),
    (dict(layers=[0, 1], num_layers=3), "layers has 2 entries but num_layers=3"),
])
def test_bad_sizes_are_refused(kwargs, message):
    model = tiny_teacher()
    importance = compute_importance(model, calibration()[:1])
    with pytest.raises(ValueError, match=message):
        prune_model(model, importance, **kwargs)


def test_missing_or_foreign_importance_and_bad_calibration_are_refused():
    model = tiny_teacher()
    with pytest.raises(ValueError, match=r"needs scores: pass importance=compute_importance"):
        prune_model(model, intermediate_size=32)
    other = compute_importance(tiny_teacher(intermediate_size=48), calibration()[:1])
    with pytest.raises(ValueError, match=r"neurons has shape \(4, 48\), not \(4, 64\).*run compute_importance"):
        prune_model(model, other, intermediate_size=32)
    with pytest.raises(ValueError, match="has no task head.*head_importance='activation'"):
        compute_importance(build("bert", "Model"), calibration())
    with pytest.raises(ValueError, match="head_importance='fisher': choose one of gradient, activation"):
        compute_importance(model, calibration(), head_importance="fisher")
    with pytest.raises(ValueError, match="num_batches=0 must be at least 1"):
        compute_importance(model, calibration(), num_batches=0)
    with pytest.raises(ValueError, match="got no calibration batch"):
        compute_importance(model, [])
    with pytest.raises(ValueError, match="one batch.*list of batches"):
        compute_importance(model, calibration()[0])
    regression = tiny_teacher(num_labels=1)
    unlabeled = [{key: value for key, value in batch.items() if key != "labels"} for batch in calibration()]
    with pytest.raises(ValueError, match="regression head.*labels or pass head_importance='activation'"):
        compute_importance(regression, unlabeled)


def test_factorised_electra_whose_width_would_equal_its_embedding_size_is_refused():
    model = build("electra_factorised", "ForSequenceClassification")  # embedding_size 16, head_dim 8
    importance = compute_importance(model, calibration()[:1])
    with pytest.raises(ValueError, match="hidden_size=16, equal to embedding_size.*pick another head count"):
        prune_model(model, importance, num_attention_heads=2)
