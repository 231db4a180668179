import json
import logging
import math
import os

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification, BertForSequenceClassification

from hf_distill.online import (
    EarlyExitModel,
    SelfDistillationConfig,
    SelfDistillationTrainer,
    early_exit_predict,
    early_exit_sweep,
    exit_decisions,
    plot_sweep,
)
from hf_distill.online.early_exit import (
    EXIT_CONFIG_NAME,
    EXIT_HEADS_WEIGHTS_NAME,
    ExitHead,
    exit_confidence,
    format_sweep_table,
)
from hf_distill.online.losses import exit_distillation_losses, exit_hidden_losses
from hf_distill.recipes import RECIPE_FAMILIES, parse_recipe
from tests.conftest import StopAfter, pad_collator, random_classification_dataset, tiny_bert_config


def sd_args(output_dir, **overrides):
    values = dict(output_dir=str(output_dir), report_to=[], use_cpu=True, save_strategy="no", logging_steps=1,
                  seed=0, disable_tqdm=True, per_device_train_batch_size=4, learning_rate=1e-3, exit_layers="1,2")
    values.update(overrides)
    return SelfDistillationConfig(**values)


def tiny_backbone(seed=0, **overrides):
    torch.manual_seed(seed)
    return BertForSequenceClassification(tiny_bert_config(num_hidden_layers=3, num_labels=3, **overrides))


def softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def test_exit_distillation_loss_against_hand_values():
    shallow, deep = [0.5, -0.5, 1.0], [2.0, 0.0, -1.0]
    t = 3.0
    p_deep = softmax([v / t for v in deep])
    p_shallow = softmax([v / t for v in shallow])
    expected = t * t * sum(a * (math.log(a) - math.log(b)) for a, b in zip(p_deep, p_shallow))
    deep_logits = torch.tensor([deep], requires_grad=True)
    terms = exit_distillation_losses([torch.tensor([shallow], requires_grad=True), deep_logits], temperature=t)
    assert len(terms) == 1 and terms[0].item() == pytest.approx(expected, rel=1e-5)
    terms[0].backward()
    assert deep_logits.grad is None  # the deep exit is a target: no gradient from the shallow exits


def test_exit_hidden_loss_against_hand_values():
    shallow = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]])
    deep = torch.tensor([[[0.0, 2.0], [1.0, 1.0], [0.0, 0.0]]], requires_grad=True)
    mask = torch.tensor([[1, 1, 0]])
    (term,) = exit_hidden_losses([shallow], deep, mask)
    assert term.item() == pytest.approx((1 + 0 + 4 + 9) / 4)  # padding left out, mean over tokens and features
    assert not term.requires_grad  # the deep layer is detached


def test_exit_rule_agrees_with_probabilities_computed_by_hand():
    exits = [torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.1, 0.0], [1.0, 0.9, 0.0]]),
             torch.tensor([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0], [0.0, 1.5, 0.0]]),
             torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])]
    for criterion, threshold in (("entropy", 0.5), ("entropy", 0.2), ("max_prob", 0.6), ("max_prob", 0.95)):
        expected = []
        for row in range(3):
            choice = 2
            for index in range(2):
                p = softmax(exits[index][row].tolist())
                if criterion == "entropy":
                    passes = -sum(v * math.log(v) for v in p) / math.log(3) <= threshold
                else:
                    passes = max(p) >= threshold
                if passes:
                    choice = index
                    break
            expected.append(choice)
        assert exit_decisions(exits, threshold, criterion).tolist() == expected, (criterion, threshold)
    # Row 0 leaves at once (p = 0.965), row 1 at the second exit (p = 0.987), row 2 never (p <= 0.63).
    assert exit_decisions(exits, 0.9, "max_prob").tolist() == [0, 1, 2]
    assert exit_decisions(exits, None, "max_prob").tolist() == [2, 2, 2]
    assert exit_confidence(torch.zeros(1, 4), "entropy").item() == pytest.approx(1.0)


def test_mean_pooled_exit_head_against_hand_values():
    head = ExitHead(hidden_size=2, num_labels=2, dropout=0.0, pooling="mean").eval()
    with torch.no_grad():
        head.dense.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        head.dense.bias.copy_(torch.tensor([0.0, -1.0]))
        head.classifier.weight.copy_(torch.tensor([[1.0, 1.0], [-1.0, 0.5]]))
        head.classifier.bias.copy_(torch.tensor([0.5, 0.0]))
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 0.0], [100.0, 100.0]]])  # the third token is padding
    mask = torch.tensor([[1, 1, 0]])
    # pool = mean of the two real tokens = (2, 1); dense -> (2, 2·1 − 1) = (2, 1); tanh -> (t2, t1)
    t2, t1 = math.tanh(2.0), math.tanh(1.0)
    expected = torch.tensor([[t2 + t1 + 0.5, -t2 + 0.5 * t1]])
    torch.testing.assert_close(head(hidden, mask), expected)
    # "first" pools the first token only: (1, 2) -> dense (1, 3)
    head.pooling = "first"
    t1b, t3 = math.tanh(1.0), math.tanh(3.0)
    torch.testing.assert_close(head(hidden, mask), torch.tensor([[t1b + t3 + 0.5, -t1b + 0.5 * t3]]))


@pytest.mark.parametrize("exit_pooling", ["first", "mean"])
def test_layer_by_layer_inference_skips_layers_and_matches_the_full_forward(exit_pooling):
    model = EarlyExitModel(tiny_backbone(), [1, 2], exit_pooling=exit_pooling).eval()
    batch = pad_collator([random_classification_dataset(6, variable_length=True, num_labels=3, seed=4)[i]
                          for i in range(6)])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask)["exit_logits"]
    logits, used = early_exit_predict(model, ids, mask, threshold=None)
    torch.testing.assert_close(logits, full[-1], atol=1e-5, rtol=1e-5)
    assert used.tolist() == [3] * 6
    # A threshold that sends some rows out early, some not: each row gets its exit's logits.
    confidence = exit_confidence(full[0], "max_prob")
    threshold = float(confidence.median())
    choice = exit_decisions(full, threshold, "max_prob")
    assert 0 < int((choice == 0).sum()) < 6
    logits, used = early_exit_predict(model, ids, mask, threshold=threshold, criterion="max_prob")
    for row in range(6):
        torch.testing.assert_close(logits[row], full[int(choice[row])][row], atol=1e-5, rtol=1e-5)
    assert used.tolist() == [model.all_exit_layers[int(c)] for c in choice]
    # Layers after the exit are really skipped: count the calls of the last layer.
    calls = []
    handle = model.backbone.bert.encoder.layer[2].register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    early_exit_predict(model, ids, mask, threshold=threshold, criterion="max_prob")
    handle.remove()
    assert calls == [int((choice == 2).sum())] or (calls == [] and int((choice == 2).sum()) == 0)


def test_total_loss_is_the_documented_sum_and_the_deep_exit_learns_from_labels_only(tmp_path):
    args = sd_args(tmp_path, task_weight=0.4, kd_weight=0.7, hidden_weight=1.3, temperature=2.0)
    trainer = SelfDistillationTrainer(model=tiny_backbone(), args=args, data_collator=pad_collator,
                                      train_dataset=random_classification_dataset(8, num_labels=3))
    model = trainer.model.train()
    batch = pad_collator([random_classification_dataset(4, num_labels=3, variable_length=True)[i] for i in range(4)])
    loss = trainer.compute_loss(model, dict(batch))
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    hidden = model.backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            output_hidden_states=True).hidden_states
    z, y, m = out["exit_logits"], batch["labels"], batch["attention_mask"].bool()
    expected = 0.4 * sum(F.cross_entropy(logits, y) for logits in z)
    expected += 0.7 * sum(4.0 * F.kl_div(F.log_softmax(z[k] / 2, -1), F.softmax(z[-1] / 2, -1), reduction="batchmean")
                          for k in range(2))
    expected += 1.3 * sum(((model.projections[str(layer)](hidden[layer]) - hidden[-1])[m] ** 2).mean()
                          for layer in (1, 2))
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    # Only the label term reaches the backbone's classifier (the deep exit).
    model.zero_grad()
    trainer.args.task_weight = 0.0
    trainer.compute_loss(model, dict(batch)).backward()
    assert model.backbone.classifier.weight.grad is None or not model.backbone.classifier.weight.grad.any()
    assert model.exit_heads["1"].classifier.weight.grad.abs().sum() > 0


def test_saved_backbone_loads_as_a_plain_model_and_heads_reload(tmp_path, caplog):
    trainer = SelfDistillationTrainer(model=tiny_backbone(),
                                      args=sd_args(tmp_path, max_steps=2, hidden_weight=0.5, exit_pooling="mean"),
                                      train_dataset=random_classification_dataset(8, num_labels=3),
                                      data_collator=pad_collator)
    trainer.train()
    trainer.save_model()
    assert {EXIT_HEADS_WEIGHTS_NAME, EXIT_CONFIG_NAME, "model.safetensors"} <= set(os.listdir(tmp_path))
    with caplog.at_level(logging.WARNING):
        plain, info = AutoModelForSequenceClassification.from_pretrained(str(tmp_path), output_loading_info=True)
    assert all(not v for v in info.values()), info
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "weights" in r.getMessage()]
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    model = trainer.model.eval()
    torch.testing.assert_close(plain.eval()(input_ids=ids, attention_mask=mask).logits,
                               model(input_ids=ids, attention_mask=mask)["exit_logits"][-1])
    reloaded = EarlyExitModel.from_pretrained(str(tmp_path)).eval()
    assert reloaded.exit_pooling == "mean"
    for a, b in zip(reloaded(input_ids=ids, attention_mask=mask)["exit_logits"],
                    model(input_ids=ids, attention_mask=mask)["exit_logits"]):
        torch.testing.assert_close(a, b)
    saved = json.load(open(tmp_path / EXIT_CONFIG_NAME))
    assert saved["exit_layers"] == [1, 2] and saved["exit_pooling"] == "mean"
    os.remove(tmp_path / EXIT_HEADS_WEIGHTS_NAME)
    with pytest.raises(FileNotFoundError, match="No exit heads"):
        EarlyExitModel.from_pretrained(str(tmp_path))


def run_sd(output_dir, max_steps, resume=None, stop_after=None):
    backbone = tiny_backbone(seed=7 if resume else 1, hidden_dropout_prob=0.1)
    args = sd_args(output_dir, max_steps=max_steps, save_strategy="steps", save_steps=2, learning_rate=1e-2,
                   hidden_weight=0.5, schedule={"temperature": {"type": "linear", "start": 4.0, "end": 1.0}})
    trainer = SelfDistillationTrainer(model=backbone, args=args, data_collator=pad_collator,
                                      train_dataset=random_classification_dataset(40, num_labels=3,
                                                                                  variable_length=True),
                                      callbacks=[StopAfter(stop_after)] if stop_after else None)
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def test_resume_restores_backbone_exits_and_projections_exactly(tmp_path):
    full = run_sd(tmp_path / "full", 4)
    run_sd(tmp_path / "part", 4, stop_after=2)
    resumed = run_sd(tmp_path / "part", 4, resume=str(tmp_path / "part" / "checkpoint-2"))
    assert resumed.state.global_step == 4
    for (name, a), (_, b) in zip(full.model.named_parameters(), resumed.model.named_parameters()):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0, msg=name)


def test_sweep_table_and_plot(tmp_path):
    model = EarlyExitModel(tiny_backbone(), [1, 2])
    dev = random_classification_dataset(10, num_labels=3, variable_length=True, seed=5)
    rows = early_exit_sweep(model, dev, [0.0, 0.999], criterion="entropy")
    assert [row["threshold"] for row in rows] == [None, 0.0, 0.999]
    assert rows[0]["mean_layers"] == 3 and rows[0]["exit_fractions"]["3"] == 1.0
    # Threshold 0.999 lets nearly everything leave at layer 1 (an untrained head is close to uniform, but not exactly).
    with torch.no_grad():
        full = [model.eval()(input_ids=torch.tensor([dev[i]["input_ids"]]))["exit_logits"] for i in range(10)]
    layers = [model.all_exit_layers[int(exit_decisions(z, 0.999, "entropy")[0])] for z in full]
    assert rows[2]["mean_layers"] == pytest.approx(sum(layers) / 10)
    predictions = [int(z[model.all_exit_layers.index(layer)].argmax()) for z, layer in zip(full, layers)]
    assert rows[2]["accuracy"] == pytest.approx(sum(p == dev[i]["labels"] for i, p in enumerate(predictions)) / 10)
    table = format_sweep_table(rows)
    assert table.splitlines()[2].startswith("| full |") and "exit @1" in table
    path = plot_sweep(rows, str(tmp_path / "curve.png"))
    with open(path, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: EarlyExitModel(tiny_backbone(), [3]), "between 1 and 2"),
        (lambda: EarlyExitModel(tiny_backbone(), [0, 1]), "between 1 and 2"),
        (lambda: EarlyExitModel(BertForSequenceClassification(tiny_bert_config(num_labels=1)), [1]), "regression"),
        (lambda: sd_args("/tmp/x", exit_layers="a,b"), "integers"),
        (lambda: sd_args("/tmp/x", exit_criterion="margin"), "exit_criterion"),
        (lambda: sd_args("/tmp/x", task_weight=0, kd_weight=0), "nothing to train"),
        (lambda: sd_args("/tmp/x", exit_pooling="max"), "exit_pooling must be one of"),
        (lambda: SelfDistillationTrainer(model=EarlyExitModel(tiny_backbone(), [1, 2]),
                                         args=sd_args("/tmp/x", exit_pooling="mean")), "exit_pooling='mean'"),
    ],
)
def test_bad_input_fails_with_the_fix(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_self_distillation_recipe_parses_into_its_family():
    assert "self_distillation" in RECIPE_FAMILIES
    model_args, data_args, config = parse_recipe("recipes/online/self_distillation_imdb.yaml",
                                                 ["--kd_weight", "0", "--hidden_weight", "0"])
    assert isinstance(config, SelfDistillationConfig)
    assert config.exit_layers == [2, 4] and config.kd_weight == 0.0 and config.task_weight == 1.0
    assert config.sweep_thresholds[0] == 0.05 and data_args.task_name == "imdb"
