import json
import math
import os

import pytest
import safetensors.torch
import torch
from torch import nn
from transformers import (
    AutoModelForSequenceClassification,
    BertForMaskedLM,
    BertForSequenceClassification,
)

from hf_distill import DistillationTrainer, NonFiniteLossError, create_student, losses
from hf_distill.runs import HEADS_WEIGHTS_NAME
from tests.conftest import (
    ALL_TERMS,
    StopAfter,
    offline_config,
    pad_collator,
    random_classification_dataset,
    save_pickle_only,
    tiny_bert_config,
    tiny_teacher,
)

def make_args(tmp_path, **overrides):
    return offline_config(tmp_path, **{"per_device_train_batch_size": 8, "learning_rate": 1e-3, **overrides})


def narrow_student(teacher, seed=1):
    torch.manual_seed(seed)
    return create_student(teacher, num_layers=2, hidden_size=16)


def manual_scores(layer, hidden, heads):
    """Pre-softmax scores of one BERT layer computed from its weights, independently of the hooks."""
    attn = layer.attention.self
    q, k = attn.query(hidden), attn.key(hidden)
    b, n, d = q.shape
    q = q.view(b, n, heads, d // heads).transpose(1, 2)
    k = k.view(b, n, heads, d // heads).transpose(1, 2)
    return q @ k.transpose(-1, -2) / math.sqrt(d // heads)


def test_total_loss_is_the_documented_weighted_sum(tmp_path):
    teacher = tiny_teacher()
    student = narrow_student(teacher)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=make_args(tmp_path, **ALL_TERMS))
    batch = pad_collator([random_classification_dataset(4, variable_length=True)[i] for i in range(4)])
    student.eval()
    with torch.no_grad():
        total = trainer.compute_loss(student, batch)
        s = student(**batch, output_hidden_states=True)
        t = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
    heads, mask = trainer.distillation_heads, batch["attention_mask"]
    g = [2, 4]  # uniform map, 4 teacher layers -> 2 student layers
    with torch.no_grad():
        expected = {
            "task": s.loss,
            "kd": losses.kl_divergence_loss(s.logits, t.logits, 2.0),
            "cosine": losses.cosine_hidden_loss(heads.cosine(s.hidden_states[-1]), t.hidden_states[-1], mask),
            "embedding": losses.hidden_mse_loss(heads.embedding(s.hidden_states[0]), t.hidden_states[0], mask),
            "hidden": sum(losses.hidden_mse_loss(heads.hidden[0](s.hidden_states[m]), t.hidden_states[g[m - 1]], mask)
                          for m in (1, 2)),
            "attention": sum(
                losses.attention_score_mse_loss(
                    manual_scores(student.bert.encoder.layer[m - 1], s.hidden_states[m - 1], 4),
                    manual_scores(teacher.bert.encoder.layer[g[m - 1] - 1], t.hidden_states[g[m - 1] - 1], 4),
                    mask,
                )
                for m in (1, 2)
            ),
        }
    weights = {"task": 0.3, "kd": 0.7, "cosine": 1.1, "hidden": 1.3, "embedding": 1.7, "attention": 0.9}
    manual = sum(weights[k] * v for k, v in expected.items())
    assert all(v > 0 for v in expected.values())
    assert total.item() == pytest.approx(manual.item(), rel=1e-5)


def test_only_needed_teacher_outputs_are_requested(tmp_path):
    teacher = tiny_teacher()
    calls = []
    teacher.register_forward_pre_hook(lambda module, args, kwargs: calls.append(dict(kwargs)), with_kwargs=True)
    student = create_student(teacher, layers=[0, 2])
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=make_args(tmp_path))
    assert trainer.distillation_heads is None and trainer._teacher_scores is None
    batch = pad_collator([random_classification_dataset(2)[i] for i in range(2)])
    trainer.compute_loss(student, batch)
    assert "output_hidden_states" not in calls[-1] and "labels" not in calls[-1]


def train_and_params(tmp_path, dataset, **overrides):
    teacher = tiny_teacher()
    student = narrow_student(teacher)
    args = make_args(tmp_path, **{**ALL_TERMS, "optim": "sgd", "learning_rate": 0.5, "lr_scheduler_type": "constant",
                                  "max_grad_norm": 0.0, **overrides})
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=dataset,
                                  data_collator=pad_collator)
    trainer.train()
    params = {k: v.detach().clone() for k, v in student.named_parameters()}
    return params, trainer.state.log_history


def test_gradient_accumulation_is_exact_with_uneven_padding(tmp_path):
    dataset = random_classification_dataset(8, length=12, variable_length=True, seed=3)
    full, full_log = train_and_params(tmp_path / "a", dataset, per_device_train_batch_size=8, max_steps=1)
    accumulated, acc_log = train_and_params(tmp_path / "b", dataset, per_device_train_batch_size=4,
                                            gradient_accumulation_steps=2, max_steps=1)
    assert any("distillation_heads" in k for k in full)
    for name in full:
        torch.testing.assert_close(accumulated[name], full[name], atol=1e-6, rtol=1e-5, msg=name)
    for key in ("loss", "loss_kd", "loss_hidden", "loss_attention", "loss_embedding", "loss_cosine", "loss_task"):
        assert acc_log[0][key] == pytest.approx(full_log[0][key], rel=1e-4), key


def test_terms_are_logged_and_teacher_stays_frozen_in_eval_mode(tmp_path):
    teacher = tiny_teacher()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    modes = []
    teacher.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    student = narrow_student(teacher)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=make_args(tmp_path, **ALL_TERMS,
                                  max_steps=3, learning_rate=1e-2), train_dataset=random_classification_dataset(24),
                                  data_collator=pad_collator)
    heads_before = {k: v.clone() for k, v in trainer.distillation_heads.state_dict().items()}
    trainer.train()
    assert modes and not any(modes)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not any(p.requires_grad for p in teacher.parameters())
    optimizer_params = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not optimizer_params & {id(p) for p in teacher.parameters()}
    assert all(id(p) in optimizer_params for p in trainer.distillation_heads.parameters())
    changed = [not torch.equal(heads_before[k], v) for k, v in trainer.distillation_heads.state_dict().items()]
    assert all(changed)  # the projections are trained
    log = trainer.state.log_history[0]
    for term in ("loss_task", "loss_kd", "loss_cosine", "loss_hidden", "loss_embedding", "loss_attention"):
        assert term in log and log[term] > 0


def test_saved_student_loads_with_plain_from_pretrained_and_heads_beside_it(tmp_path, caplog):
    teacher = tiny_teacher()
    student = narrow_student(teacher)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=make_args(tmp_path, **ALL_TERMS,
                                  max_steps=2), train_dataset=random_classification_dataset(16),
                                  data_collator=pad_collator)
    trainer.train()
    trainer.save_model()
    files = os.listdir(tmp_path)
    assert HEADS_WEIGHTS_NAME in files and "model.safetensors" in files
    saved = safetensors.torch.load_file(str(tmp_path / "model.safetensors"))
    assert not any("distillation_heads" in k for k in saved)
    heads = safetensors.torch.load_file(str(tmp_path / HEADS_WEIGHTS_NAME))
    torch.testing.assert_close(heads["hidden.0.weight"], trainer.distillation_heads.hidden[0].weight.detach())
    loaded, info = AutoModelForSequenceClassification.from_pretrained(str(tmp_path), output_loading_info=True)
    assert all(not v for v in info.values()), info
    ids = torch.tensor([[3, 4, 5]])
    torch.testing.assert_close(loaded.eval()(input_ids=ids).logits, student.eval()(input_ids=ids).logits)
    assert json.load(open(tmp_path / "distillation_heads.json"))["teacher_hidden_size"] == 32


def run_steps(output_dir, max_steps, resume=None, stop_after=None, accumulation=1):
    teacher = tiny_teacher()
    student = narrow_student(teacher, seed=7 if resume else 1)  # resume must overwrite this different init
    args = make_args(output_dir, **ALL_TERMS, max_steps=max_steps, save_strategy="steps", save_steps=2,
                     per_device_train_batch_size=4 // accumulation, gradient_accumulation_steps=accumulation,
                     learning_rate=1e-2, schedule={"temperature": {"type": "linear", "start": 4.0, "end": 1.0}})
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args,
                                  train_dataset=random_classification_dataset(40, variable_length=True),
                                  data_collator=pad_collator,
                                  callbacks=[StopAfter(stop_after)] if stop_after else None)
    trainer.train(resume_from_checkpoint=resume)
    return trainer


@pytest.mark.parametrize("accumulation", [1, 2])
def test_resume_restores_student_and_projections_exactly(tmp_path, accumulation):
    """Mid-epoch (10 steps an epoch), shuffled data, LR and temperature schedules: resuming loses nothing."""
    full = run_steps(tmp_path / "full", 4, accumulation=accumulation)
    run_steps(tmp_path / "part", 4, stop_after=2, accumulation=accumulation)
    assert not (tmp_path / "part" / "checkpoint-4").exists()
    resumed = run_steps(tmp_path / "part", 4, resume=str(tmp_path / "part" / "checkpoint-2"),
                        accumulation=accumulation)
    assert resumed.state.global_step == 4
    assert resumed.lr_scheduler.get_last_lr() == full.lr_scheduler.get_last_lr()
    assert resumed._temperature == full._temperature < 4.0
    names = [name for name, _ in full.model.named_parameters()]
    assert any(name.startswith("distillation_heads.") for name in names)
    for (name, a), (_, b) in zip(full.model.named_parameters(), resumed.model.named_parameters()):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0, msg=name)


def test_checkpoint_without_heads_file_is_an_error_not_a_reinitialisation(tmp_path):
    run_steps(tmp_path, 4, stop_after=2)
    os.remove(tmp_path / "checkpoint-2" / HEADS_WEIGHTS_NAME)
    with pytest.raises(FileNotFoundError, match="No projection heads"):
        run_steps(tmp_path, 4, resume=str(tmp_path / "checkpoint-2"))


def test_nan_loss_stops_with_term_and_step_and_keeps_checkpoint(tmp_path):
    teacher = tiny_teacher()
    calls = {"n": 0}

    def poison(module, args, output):
        calls["n"] += 1
        if calls["n"] > 2:
            output.logits = output.logits * float("nan")
        return output

    teacher.register_forward_hook(poison)
    student = create_student(teacher, layers=[0, 2])
    args = make_args(tmp_path, max_steps=5, save_strategy="steps", save_steps=1)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args,
                                  train_dataset=random_classification_dataset(40), data_collator=pad_collator)
    with pytest.raises(NonFiniteLossError, match=r"kd loss .* at step 3"):
        trainer.train()
    reloaded = BertForSequenceClassification.from_pretrained(str(tmp_path / "checkpoint-2"))
    assert all(torch.isfinite(p).all() for p in reloaded.parameters())


def test_evaluation_returns_logits_only_to_compute_metrics(tmp_path):
    teacher = tiny_teacher()
    seen = {}

    def metrics(prediction):
        seen["shape"] = getattr(prediction.predictions, "shape", None)
        return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}

    trainer = DistillationTrainer(model=narrow_student(teacher), teacher_model=teacher,
                                  args=make_args(tmp_path, **ALL_TERMS), eval_dataset=random_classification_dataset(12),
                                  data_collator=pad_collator, compute_metrics=metrics)
    result = trainer.evaluate()
    assert seen["shape"] == (12, 2) and "eval_accuracy" in result and result["eval_loss"] > 0


def test_masked_lm_kd_uses_only_labelled_tokens(tmp_path):
    torch.manual_seed(0)
    teacher = BertForMaskedLM(tiny_bert_config()).eval()
    student = create_student(teacher, layers=[1, 3])
    trainer = DistillationTrainer(model=student, teacher_model=teacher,
                                  args=make_args(tmp_path, task_weight=0, mlm_weight=2.0, kd_weight=5.0))
    ids = torch.tensor([[2, 10, 11, 12, 13]])
    labels = torch.tensor([[-100, 10, -100, -100, 13]])
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    student.eval()
    with torch.no_grad():
        total = trainer.compute_loss(student, batch)
        s, t = student(**batch), teacher(input_ids=ids)
        kd = losses.kl_divergence_loss(s.logits[0, [1, 4]], t.logits[0, [1, 4]], 2.0)
    assert total.item() == pytest.approx(2.0 * s.loss.item() + 5.0 * kd.item(), rel=1e-5)


def test_regression_head_distils_predictions_with_mse(tmp_path):
    teacher = tiny_teacher(num_labels=1)
    student = create_student(teacher, layers=[0, 3])
    trainer = DistillationTrainer(model=student, teacher_model=teacher,
                                  args=make_args(tmp_path, task_weight=0, kd_weight=1.0, temperature=5.0))
    batch = {"input_ids": torch.tensor([[3, 4, 5], [6, 7, 8]]), "attention_mask": torch.ones(2, 3, dtype=torch.long)}
    student.eval()
    with torch.no_grad():
        total = trainer.compute_loss(student, batch)
        expected = (student(**batch).logits - teacher(**batch).logits).pow(2).mean()
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)


def test_teacher_loaded_from_a_path_and_bad_path_error(tmp_path):
    teacher = tiny_teacher()
    teacher.save_pretrained(tmp_path / "teacher")
    trainer = DistillationTrainer(model=create_student(teacher, layers=[0, 1]),
                                  teacher_model=str(tmp_path / "teacher"), args=make_args(tmp_path / "out"))
    assert not trainer.teacher.training
    torch.testing.assert_close(trainer.teacher.classifier.weight, teacher.classifier.weight)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DistillationTrainer(model=create_student(teacher, layers=[0, 1]), teacher_model=str(tmp_path / "missing"),
                            args=make_args(tmp_path / "out"))


def test_pickle_only_teacher_is_refused_by_default(tmp_path):
    teacher = tiny_teacher()
    save_pickle_only(teacher, tmp_path / "teacher")
    with pytest.raises(OSError, match="use_safetensors"):
        DistillationTrainer(model=create_student(teacher, layers=[0, 1]), teacher_model=str(tmp_path / "teacher"),
                            args=make_args(tmp_path / "out"))


@pytest.mark.parametrize(
    "make, overrides, message",
    [
        (lambda t: BertForSequenceClassification(tiny_bert_config(vocab_size=50)), {}, "vocabularies differ"),
        (lambda t: BertForSequenceClassification(tiny_bert_config(num_labels=3)), {}, "num_labels=2, student 3"),
        (lambda t: BertForSequenceClassification(tiny_bert_config(id2label={0: "pos", 1: "neg"})), {},
         "label orders differ"),
        (lambda t: create_student(t, num_layers=2, hidden_size=16, num_attention_heads=2), {"attention_weight": 1},
         "equal head counts"),
        (lambda t: create_student(t, num_layers=3, hidden_size=16), {"hidden_weight": 1}, "multiple"),
        (lambda t: create_student(t, layers=[0, 1]), {"hidden_weight": 1, "layer_map": [2, 5]}, "out of range"),
        (lambda t: create_student(t, layers=[0, 1]), {"mlm_weight": 1}, "ForMaskedLM"),
        (lambda t: create_student(t, layers=[0, 1]), {"task_weight": 1, "kd_weight": 0}, "drop the teacher"),
    ],
    ids=["vocab", "num_labels", "id2label", "heads", "map-divisible", "map-range", "mlm", "unused-teacher"],
)
def test_bad_setups_fail_before_training_with_the_fix(tmp_path, make, overrides, message):
    teacher = tiny_teacher()
    with pytest.raises(ValueError, match=message):
        DistillationTrainer(model=make(teacher), teacher_model=teacher, args=make_args(tmp_path, **overrides))


def test_missing_teacher_is_an_error_but_a_no_teacher_baseline_trains(tmp_path):
    student = create_student(tiny_teacher(), layers=[0, 1])
    with pytest.raises(ValueError, match="needs a teacher"):
        DistillationTrainer(model=student, args=make_args(tmp_path))
    trainer = DistillationTrainer(model=student, args=make_args(tmp_path, kd_weight=0, task_weight=1, max_steps=2),
                                  train_dataset=random_classification_dataset(16), data_collator=pad_collator)
    trainer.train()
    assert trainer.state.log_history[0]["loss_task"] > 0


@pytest.fixture
def fresh_accelerator_state(monkeypatch):
    """`TrainingArguments(bf16=True)` writes ACCELERATE_MIXED_PRECISION=bf16 into os.environ, and every
    later Trainer of the process would autocast to bf16: restore the variable and accelerate's state."""
    from accelerate.state import AcceleratorState

    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)  # undone, i.e. restored, at teardown
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_bf16_autocast_with_huge_logits_stays_finite(tmp_path, fresh_accelerator_state):
    teacher = tiny_teacher()
    with torch.no_grad():
        teacher.classifier.weight.mul_(1e4)  # logits in the thousands
        for layer in teacher.bert.encoder.layer:
            layer.attention.self.query.weight.mul_(1e3)  # pre-softmax scores in the thousands: their
            layer.attention.self.key.weight.mul_(1e3)  # squared errors are far beyond the fp16 range
    dtypes = []
    teacher.register_forward_hook(lambda module, args, output: dtypes.append(output.logits.dtype))
    student = narrow_student(teacher)
    args = make_args(tmp_path, **ALL_TERMS, bf16=True, max_steps=2)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args,
                                  train_dataset=random_classification_dataset(16), data_collator=pad_collator)
    trainer.train()  # NonFiniteLossError would stop it
    assert dtypes and all(d == torch.bfloat16 for d in dtypes)  # the teacher ran under the same autocast
    log = trainer.state.log_history[0]
    assert log["loss_kd"] > 1.0 and log["loss_attention"] > 1e6 and math.isfinite(log["loss"])


def with_unlabelled(dataset, every=3, missing=-1):
    """`dataset` with the label of every `every`-th example removed (`missing`: -1, -100 or NaN)."""
    return dataset.map(lambda row, i: {"labels": missing if i % every == 0 else row["labels"]}, with_indices=True)


def test_unlabelled_examples_train_the_teacher_terms_and_not_the_task_term(tmp_path):
    teacher = tiny_teacher()
    student = narrow_student(teacher)
    trainer = DistillationTrainer(model=student, teacher_model=teacher,
                                  args=make_args(tmp_path, task_weight=0.3, kd_weight=0.7))
    batch = pad_collator([random_classification_dataset(4, seed=5)[i] for i in range(4)])
    batch["labels"] = torch.tensor([1, -1, 0, -100])
    student.eval()
    with torch.no_grad():
        total = trainer.compute_loss(student, batch)
        logits = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        t_logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    task = nn.functional.cross_entropy(logits[[0, 2]], torch.tensor([1, 0]))  # labelled rows only
    kd = losses.kl_divergence_loss(logits, t_logits, 2.0)  # every row
    assert total.item() == pytest.approx((0.3 * task + 0.7 * kd).item(), rel=1e-5)


def test_unlabelled_regression_scores_are_left_out_of_the_mse(tmp_path):
    teacher = tiny_teacher(num_labels=1)
    student = create_student(teacher, layers=[0, 3])
    trainer = DistillationTrainer(model=student, teacher_model=teacher,
                                  args=make_args(tmp_path, task_weight=1.0, kd_weight=0.5))
    batch = {"input_ids": torch.tensor([[3, 4, 5], [6, 7, 8], [9, 10, 11]]),
             "attention_mask": torch.ones(3, 3, dtype=torch.long), "labels": torch.tensor([2.0, math.nan, 4.5])}
    student.eval()
    with torch.no_grad():
        total = trainer.compute_loss(student, batch)
        z = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
        z_t = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
    expected = ((z[0] - 2.0) ** 2 + (z[2] - 4.5) ** 2) / 2 + 0.5 * (z - z_t).pow(2).mean()
    assert math.isfinite(total.item()) and total.item() == pytest.approx(expected.item(), rel=1e-5)


def test_gradient_accumulation_is_exact_with_unlabelled_examples(tmp_path):
    """The task term averages over the labelled examples of the whole window, whatever the micro-batches hold."""
    dataset = with_unlabelled(random_classification_dataset(8, length=12, variable_length=True, seed=3), every=3)
    assert sum(label < 0 for label in dataset["labels"]) == 3  # examples 0, 3, 6: 2 and 1 per micro-batch
    full, full_log = train_and_params(tmp_path / "a", dataset, per_device_train_batch_size=8, max_steps=1)
    accumulated, acc_log = train_and_params(tmp_path / "b", dataset, per_device_train_batch_size=4,
                                            gradient_accumulation_steps=2, max_steps=1)
    for name in full:
        torch.testing.assert_close(accumulated[name], full[name], atol=1e-6, rtol=1e-5, msg=name)
    assert acc_log[0]["loss_task"] == pytest.approx(full_log[0]["loss_task"], rel=1e-4)
    assert math.isfinite(full_log[0]["loss"])


def test_a_batch_without_any_label_trains_on_the_teacher_terms(tmp_path):
    dataset = with_unlabelled(random_classification_dataset(8, seed=4), every=1, missing=-100)
    params, log = train_and_params(tmp_path, dataset, per_device_train_batch_size=8, max_steps=1)
    assert log[0]["loss_task"] == 0.0 and log[0]["loss_kd"] > 0 and math.isfinite(log[0]["loss"])
