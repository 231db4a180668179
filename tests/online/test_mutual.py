import logging
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification, BertForSequenceClassification, EvalPrediction

from hf_distill.online import MutualLearningConfig, MutualLearningModel, MutualLearningTrainer
from hf_distill.online.losses import mutual_learning_losses
from hf_distill.online.mutual import MUTUAL_CONFIG_NAME, ensemble_logits, peer_metrics
from hf_distill.recipes import RECIPE_FAMILIES, parse_recipe
from tests.conftest import StopAfter, pad_collator, random_classification_dataset, tiny_bert_config


def kl(p, q):
    return sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q))


def softmax(z, t):
    e = [math.exp(v / t) for v in z]
    return [v / sum(e) for v in e]


def dml_args(output_dir, **overrides):
    values = dict(output_dir=str(output_dir), report_to=[], use_cpu=True, save_strategy="no", logging_steps=1,
                  seed=0, disable_tqdm=True, per_device_train_batch_size=4, learning_rate=1e-3)
    values.update(overrides)
    return MutualLearningConfig(**values)


def tiny_peers(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    config = dict(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return [BertForSequenceClassification(tiny_bert_config(**config)),
            BertForSequenceClassification(tiny_bert_config(num_hidden_layers=2, hidden_size=16, **config))]


def test_mutual_learning_losses_against_hand_values():
    z = [[1.0, -1.0, 0.5], [0.2, 0.3, -0.4], [-1.0, 2.0, 0.0]]
    t = 2.0
    p = [softmax(row, t) for row in z]
    two = mutual_learning_losses([torch.tensor([z[0]]), torch.tensor([z[1]])], temperature=t)
    assert two[0].item() == pytest.approx(t * t * kl(p[1], p[0]), rel=1e-5)
    assert two[1].item() == pytest.approx(t * t * kl(p[0], p[1]), rel=1e-5)
    three = mutual_learning_losses([torch.tensor([row]) for row in z], temperature=t)
    for i in range(3):
        expected = t * t * sum(kl(p[j], p[i]) for j in range(3) if j != i) / 2
        assert three[i].item() == pytest.approx(expected, rel=1e-5)
    # Mean over rows: a batch of two rows is the mean of the two single-row values.
    batch = mutual_learning_losses([torch.tensor([z[0], z[2]]), torch.tensor([z[1], z[1]])], temperature=1.0)
    single = (kl(softmax(z[1], 1), softmax(z[0], 1)) + kl(softmax(z[1], 1), softmax(z[2], 1))) / 2
    assert batch[0].item() == pytest.approx(single, rel=1e-5)


def test_mutual_learning_losses_refuse_one_peer_or_different_label_spaces():
    with pytest.raises(ValueError, match="at least two peers"):
        mutual_learning_losses([torch.zeros(2, 3)])
    with pytest.raises(ValueError, match="share a label space"):
        mutual_learning_losses([torch.zeros(2, 3), torch.zeros(2, 4)])


def test_a_peers_mimicry_term_sends_no_gradient_into_the_other_peers():
    model = MutualLearningModel(tiny_peers())
    ids = torch.randint(5, 99, (4, 7))
    logits = model(input_ids=ids)["logits"]
    terms = mutual_learning_losses(logits, temperature=2.0)
    terms[0].backward()
    assert all(p.grad is None for p in model.peers[1].parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.peers[0].parameters())
    # Peer 0's gradient is that of KL against a constant target: the same with the target given as data.
    target = logits[1].detach().clone()
    model.zero_grad()
    logits = model(input_ids=ids)["logits"]
    reference = 4.0 * F.kl_div(F.log_softmax(logits[0] / 2, -1), F.softmax(target / 2, -1), reduction="batchmean")
    torch.testing.assert_close(mutual_learning_losses(logits, 2.0)[0], reference)


def test_total_loss_is_the_sum_over_peers_of_task_and_mimicry_terms(tmp_path):
    peers = tiny_peers()
    trainer = MutualLearningTrainer(model=peers, args=dml_args(tmp_path, task_weight=0.3, kd_weight=0.7,
                                                                 temperature=2.0),
                                    train_dataset=random_classification_dataset(8), data_collator=pad_collator)
    batch = pad_collator([random_classification_dataset(4)[i] for i in range(4)])
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, dict(batch))
    logits = [peer(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits for peer in peers]
    ce = [F.cross_entropy(z, batch["labels"]) for z in logits]
    kd = [4.0 * F.kl_div(F.log_softmax(logits[i] / 2, -1), F.softmax(logits[1 - i] / 2, -1), reduction="batchmean")
          for i in range(2)]
    expected = sum(0.3 * ce[i] + 0.7 * kd[i] for i in range(2))
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def run_dml(output_dir, max_steps, resume=None, stop_after=None):
    peers = tiny_peers(seed=7 if resume else 1, dropout=0.1)  # resume must overwrite this different init
    args = dml_args(output_dir, max_steps=max_steps, save_strategy="steps", save_steps=2, learning_rate=1e-2,
                    temperature=2.0, schedule={"kd_weight": {"type": "linear", "start": 0.0, "end": 1.0}})
    trainer = MutualLearningTrainer(model=peers, args=args,
                                    train_dataset=random_classification_dataset(40, variable_length=True),
                                    data_collator=pad_collator,
                                    callbacks=[StopAfter(stop_after)] if stop_after else None)
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def test_resume_of_a_mutual_learning_run_equals_an_uninterrupted_one(tmp_path):
    """Mid-epoch, shuffled data, dropout, LR and kd_weight schedules: every peer ends exactly the same."""
    full = run_dml(tmp_path / "full", 4)
    run_dml(tmp_path / "part", 4, stop_after=2)
    assert not (tmp_path / "part" / "checkpoint-4").exists()
    assert (tmp_path / "part" / "checkpoint-2" / "peer_1" / "model.safetensors").exists()
    resumed = run_dml(tmp_path / "part", 4, resume=str(tmp_path / "part" / "checkpoint-2"))
    assert resumed.state.global_step == 4
    assert resumed.lr_scheduler.get_last_lr() == full.lr_scheduler.get_last_lr()
    names = [name for name, _ in full.model.named_parameters()]
    assert any(n.startswith("peers.0.") for n in names) and any(n.startswith("peers.1.") for n in names)
    for (name, a), (_, b) in zip(full.model.named_parameters(), resumed.model.named_parameters()):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0, msg=name)
    logged = [entry for entry in full.state.log_history if "loss_kd_peer1" in entry]
    assert logged and "kd_weight" in logged[-1]


def test_resume_from_a_checkpoint_without_a_peer_is_an_error(tmp_path):
    run_dml(tmp_path, 4, stop_after=2)
    os.rename(tmp_path / "checkpoint-2" / "peer_1", tmp_path / "checkpoint-2" / "moved")
    with pytest.raises(FileNotFoundError, match="No peer_1"):
        run_dml(tmp_path, 4, resume=str(tmp_path / "checkpoint-2"))


def test_each_peer_saved_alone_loads_with_plain_from_pretrained(tmp_path, caplog):
    peers = tiny_peers()
    trainer = MutualLearningTrainer(model=peers, args=dml_args(tmp_path, max_steps=2),
                                    train_dataset=random_classification_dataset(8), data_collator=pad_collator)
    trainer.train()
    trainer.save_model()
    assert (tmp_path / MUTUAL_CONFIG_NAME).exists()
    ids = torch.tensor([[3, 4, 5, 6]])
    for index, peer in enumerate(peers):
        with caplog.at_level(logging.WARNING):
            loaded, info = AutoModelForSequenceClassification.from_pretrained(
                str(tmp_path / f"peer_{index}"), output_loading_info=True)
        assert all(not v for v in info.values()), info
        assert loaded.config.num_hidden_layers == peer.config.num_hidden_layers
        torch.testing.assert_close(loaded.eval()(input_ids=ids).logits, peer.eval()(input_ids=ids).logits)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "peer_" in r.getMessage()]


def test_evaluation_reports_every_peer_and_the_ensemble(tmp_path):
    peers = tiny_peers()

    def accuracy(prediction):
        return {"accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())}

    dev = random_classification_dataset(12, seed=3)
    trainer = MutualLearningTrainer(model=peers, args=dml_args(tmp_path, per_device_eval_batch_size=5),
                                    train_dataset=random_classification_dataset(8), eval_dataset=dev,
                                    data_collator=pad_collator, compute_metrics=accuracy)
    metrics = trainer.evaluate()
    batch = pad_collator([dev[i] for i in range(len(dev))])
    with torch.no_grad():
        logits = [peer.eval()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                  for peer in peers]
    labels = batch["labels"]
    for index, z in enumerate(logits):
        assert metrics[f"eval_peer{index}_accuracy"] == pytest.approx(float((z.argmax(-1) == labels).float().mean()))
    mean_probs = (F.softmax(logits[0], -1) + F.softmax(logits[1], -1)) / 2
    assert metrics["eval_ensemble_accuracy"] == pytest.approx(float((mean_probs.argmax(-1) == labels).float().mean()))


def test_ensemble_is_the_mean_probability_or_the_mean_prediction():
    a, b = np.array([[2.0, 0.0]]), np.array([[0.0, 1.0]])
    pa, pb = np.exp(a) / np.exp(a).sum(), np.exp(b) / np.exp(b).sum()
    np.testing.assert_allclose(np.exp(ensemble_logits([a, b])), (pa + pb) / 2)
    np.testing.assert_allclose(ensemble_logits([np.array([[1.0]]), np.array([[3.0]])]), [[2.0]])
    metrics = peer_metrics(lambda p: {"first": float(p.predictions[0, 0])})(
        EvalPrediction(predictions=(a, b), label_ids=np.array([0])))
    assert metrics["peer0_first"] == 2.0 and metrics["peer1_first"] == 0.0
    assert metrics["ensemble_first"] == pytest.approx(math.log((pa[0, 0] + pb[0, 0]) / 2))


@pytest.mark.parametrize(
    "peers, message",
    [
        (lambda: tiny_peers()[:1], "at least two peers"),
        (lambda: [tiny_peers()[0], BertForSequenceClassification(tiny_bert_config(num_labels=3))], "same labels"),
        (lambda: [tiny_peers()[0], BertForSequenceClassification(tiny_bert_config(vocab_size=120))], "tokenizer"),
    ],
)
def test_bad_peers_fail_with_the_fix(peers, message):
    with pytest.raises(ValueError, match=message):
        MutualLearningModel(peers())


def test_bad_config_and_unlabelled_data_fail_before_training(tmp_path):
    with pytest.raises(ValueError, match="nothing to train"):
        dml_args(tmp_path, task_weight=0.0, kd_weight=0.0)
    with pytest.raises(ValueError, match="do not apply"):
        dml_args(tmp_path, schedule={"hidden_weight": 1.0})
    unlabelled = random_classification_dataset(8).remove_columns("labels")
    with pytest.raises(ValueError, match="no labels column"):
        MutualLearningTrainer(model=tiny_peers(), args=dml_args(tmp_path), train_dataset=unlabelled)


def test_mutual_recipe_parses_into_its_family():
    assert "mutual" in RECIPE_FAMILIES
    peer_args, data_args, config = parse_recipe("recipes/online/mutual_imdb.yaml", ["--output_dir", "/tmp/x"])
    assert isinstance(config, MutualLearningConfig) and config.kd_weight == 1.0
    assert data_args.task_name == "imdb"
    models = peer_args.peer_model_arguments()
    assert [m.layer_list for m in models] == [[0, 2, 4], [1, 3, 5]]
    assert models[0].model_name_or_path == models[1].model_name_or_path
    assert not models[0].model_name_or_path.startswith("~")
