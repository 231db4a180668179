"""Cached teacher outputs, teacher ensembles, the EMA teacher and schedules."""

import math
import os

import pytest
import torch

from hf_distill import DistillationConfig, DistillationTrainer, create_student, losses
from hf_distill.schedules import LossSchedule
from hf_distill.teachers import EMA_WEIGHTS_NAME, TEACHER_LOGITS_COLUMN, precompute_teacher_outputs
from tests.conftest import StopAfter, offline_config, pad_collator, random_classification_dataset, tiny_teacher


def collate(features):
    """`pad_collator` that also stacks cached teacher logits."""
    batch = pad_collator(features)
    if TEACHER_LOGITS_COLUMN in features[0]:
        batch[TEACHER_LOGITS_COLUMN] = torch.tensor([f[TEACHER_LOGITS_COLUMN] for f in features])
    return batch


def make_args(tmp_path, **overrides):
    defaults = dict(per_device_train_batch_size=4, learning_rate=1e-2, task_weight=0.4, kd_weight=0.6, temperature=3.0)
    return offline_config(tmp_path, **{**defaults, **overrides})


# ---------------------------------------------------------------- ensembles (pure function)


def test_ensemble_averages_probabilities_at_the_temperature():
    # Teacher 1: p = (1/2, 1/2); teacher 2 at T=1: logits (ln 3, 0) -> p = (3/4, 1/4). Mean: (5/8, 3/8).
    z1 = torch.tensor([[0.0, 0.0]])
    z2 = torch.tensor([[math.log(3.0), 0.0]])
    combined = losses.ensemble_teacher_logits([z1, z2], temperature=1.0)
    torch.testing.assert_close(combined.softmax(-1), torch.tensor([[5 / 8, 3 / 8]]))
    # At T=2 teacher 2 gives softmax((ln 3)/2, 0) = (√3/(√3+1), 1/(√3+1)); the soft targets are the
    # mean at T, read back through softmax(z/T).
    combined = losses.ensemble_teacher_logits([z1, 2 * z2], temperature=2.0)
    expected_first = (0.5 + 3 / 4) / 2  # 2·z2 at T=2 is z2 at T=1
    torch.testing.assert_close((combined / 2.0).softmax(-1), torch.tensor([[expected_first, 1 - expected_first]]))


def test_ensemble_of_regression_heads_is_the_mean_prediction():
    combined = losses.ensemble_teacher_logits([torch.tensor([[1.0], [4.0]]), torch.tensor([[3.0], [0.0]])],
                                              average="logits")
    torch.testing.assert_close(combined, torch.tensor([[2.0], [2.0]]))


def test_ensemble_of_one_teacher_keeps_its_distribution_and_no_log_zero():
    z = torch.tensor([[1000.0, 0.0, -1000.0]])
    combined = losses.ensemble_teacher_logits([z], temperature=1.0)
    assert torch.isfinite(combined).all()
    torch.testing.assert_close(combined.softmax(-1), z.softmax(-1))


# ---------------------------------------------------------------- cached teacher outputs


def confident_teacher(seed=0, **overrides):
    """A tiny teacher whose logits are far apart, so that the soft-target loss is not near 0."""
    teacher = tiny_teacher(seed, **overrides)
    with torch.no_grad():
        teacher.classifier.weight.mul_(200)
    return teacher


def train_steps(tmp_path, teacher_model, dataset, steps=3, **overrides):
    torch.manual_seed(0)
    student = create_student(tiny_teacher(), layers=[0, 2])
    trainer = DistillationTrainer(model=student, teacher_model=teacher_model,
                                  args=make_args(tmp_path, max_steps=steps, **overrides),
                                  train_dataset=dataset, data_collator=collate)
    trainer.train()
    return trainer


def test_cached_logits_give_the_live_teachers_losses_without_a_teacher(tmp_path):
    teacher = confident_teacher()
    data = random_classification_dataset(24, variable_length=True)
    cached = precompute_teacher_outputs(teacher, data, batch_size=5)
    assert cached[TEACHER_LOGITS_COLUMN][0] == pytest.approx(
        teacher(input_ids=torch.tensor([data[0]["input_ids"]])).logits[0].tolist(), rel=1e-5)

    live = train_steps(tmp_path / "live", teacher, data)
    offline = train_steps(tmp_path / "cached", None, cached)
    assert offline.teacher is None and offline.teachers == []
    for a, b in zip(live.state.log_history[:3], offline.state.log_history[:3]):
        assert a["loss_kd"] > 0.01
        assert b["loss_kd"] == pytest.approx(a["loss_kd"], rel=1e-5)
        assert b["loss_task"] == pytest.approx(a["loss_task"], rel=1e-5)
    # Logits precomputed in other batches (other padding) differ by float32 round-off (~1e-7), which
    # Adam's normalised steps carry into the weights at about 1e-6.
    for (name, p), (_, q) in zip(live.model.named_parameters(), offline.model.named_parameters()):
        torch.testing.assert_close(q, p, atol=2e-5, rtol=0, msg=name)


def test_cached_logits_evaluation_with_and_without_the_column(tmp_path):
    teacher = confident_teacher()
    data = random_classification_dataset(12)
    cached = precompute_teacher_outputs(teacher, data)
    trainer = train_steps(tmp_path, None, cached, steps=1)
    with_kd = trainer.evaluate(cached)["eval_loss"]
    task_only = trainer.evaluate(data)["eval_loss"]
    student = trainer.model.eval()
    batch = collate([cached[i] for i in range(12)])
    with torch.no_grad():
        out = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        kd = losses.kl_divergence_loss(out.logits, batch[TEACHER_LOGITS_COLUMN], 3.0)
    # Without the column and without a teacher, the teacher terms are left out of eval_loss.
    assert task_only == pytest.approx(0.4 * out.loss.item(), rel=1e-5)
    assert kd.item() > 0.01
    assert with_kd == pytest.approx(0.4 * out.loss.item() + 0.6 * kd.item(), rel=1e-5)


def test_cached_logits_errors_name_the_fix(tmp_path):
    teacher = tiny_teacher()
    data = random_classification_dataset(8)
    cached = precompute_teacher_outputs(teacher, data)
    with pytest.raises(ValueError, match="already has"):
        precompute_teacher_outputs(teacher, cached)
    three_labels = precompute_teacher_outputs(tiny_teacher(num_labels=3), data)
    with pytest.raises(ValueError, match="num_labels=2"):
        DistillationTrainer(model=create_student(teacher, layers=[0]), args=make_args(tmp_path),
                            train_dataset=three_labels, data_collator=collate)
    with pytest.raises(ValueError, match="serves kd_weight only"):
        DistillationTrainer(model=create_student(teacher, layers=[0]), args=make_args(tmp_path, hidden_weight=1.0),
                            train_dataset=cached, data_collator=collate)


# ---------------------------------------------------------------- ensembles in the trainer


def test_ensemble_trainer_uses_mean_probabilities_and_the_first_teacher_for_hidden_states(tmp_path):
    t1, t2 = confident_teacher(seed=0), confident_teacher(seed=5)
    student = create_student(t1, layers=[1, 3])
    trainer = DistillationTrainer(model=student, teacher_model=[t1, t2],
                                  args=make_args(tmp_path, hidden_weight=1.0, layer_map="uniform"))
    batch = collate(random_classification_dataset(4, seed=3).to_list())
    student.eval()
    with torch.no_grad():
        total = trainer.compute_loss(student, batch)
        s = student(**batch, output_hidden_states=True)
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
        o1, o2 = t1(**inputs, output_hidden_states=True), t2(**inputs)
        soft = losses.ensemble_teacher_logits([o1.logits, o2.logits], 3.0)
        kd = losses.kl_divergence_loss(s.logits, soft, 3.0)
        hidden = sum(losses.hidden_mse_loss(s.hidden_states[m], o1.hidden_states[2 * m], batch["attention_mask"])
                     for m in (1, 2))
    assert total.item() == pytest.approx(0.4 * s.loss.item() + 0.6 * kd.item() + hidden.item(), rel=1e-5)


def test_ensemble_members_are_checked_and_frozen(tmp_path):
    t1 = tiny_teacher()
    with pytest.raises(ValueError, match="num_labels"):
        DistillationTrainer(model=create_student(t1, layers=[0]), teacher_model=[t1, tiny_teacher(num_labels=3)],
                            args=make_args(tmp_path))
    trainer = DistillationTrainer(model=create_student(t1, layers=[0]), teacher_model=[t1, tiny_teacher(seed=2)],
                                  args=make_args(tmp_path))
    assert all(not t.training and not any(p.requires_grad for p in t.parameters()) for t in trainer.teachers)


# ---------------------------------------------------------------- EMA teacher


def test_ema_teacher_follows_the_student_after_each_optimizer_step(tmp_path):
    torch.manual_seed(0)
    student = create_student(tiny_teacher(), layers=[0, 2])
    initial = {k: v.clone() for k, v in student.state_dict().items()}
    trainer = DistillationTrainer(model=student, teacher_model="ema",
                                  args=make_args(tmp_path, max_steps=1, ema_momentum=0.25),
                                  train_dataset=random_classification_dataset(8), data_collator=collate)
    assert trainer.teacher is not student
    trainer.train()
    for name, value in trainer.teacher.named_parameters():
        expected = 0.25 * initial[name] + 0.75 * student.state_dict()[name]
        torch.testing.assert_close(value, expected, msg=name)
    assert not any(p.requires_grad for p in trainer.teacher.parameters())


def ema_run(output_dir, steps, resume=None, stop_after=None):
    torch.manual_seed(0)
    student = create_student(tiny_teacher(), layers=[0, 2])
    trainer = DistillationTrainer(model=student, teacher_model="ema",
                                  args=make_args(output_dir, max_steps=steps, ema_momentum=0.5, save_strategy="steps",
                                                 save_steps=2),
                                  train_dataset=random_classification_dataset(40, variable_length=True),
                                  data_collator=collate, callbacks=[StopAfter(stop_after)] if stop_after else None)
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def test_ema_teacher_is_checkpointed_and_resumed_exactly(tmp_path):
    full = ema_run(tmp_path / "full", 4)
    ema_run(tmp_path / "part", 4, stop_after=2)
    assert (tmp_path / "part" / "checkpoint-2" / EMA_WEIGHTS_NAME).exists()
    resumed = ema_run(tmp_path / "part", 4, resume=str(tmp_path / "part" / "checkpoint-2"))
    for (name, a), (_, b) in zip(full.teacher.named_parameters(), resumed.teacher.named_parameters()):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0, msg=name)
    os.remove(tmp_path / "part" / "checkpoint-2" / EMA_WEIGHTS_NAME)
    with pytest.raises(FileNotFoundError, match="No EMA teacher"):
        ema_run(tmp_path / "part", 4, resume=str(tmp_path / "part" / "checkpoint-2"))


# ---------------------------------------------------------------- schedules

BASE = {"temperature": 2.0, "task_weight": 0.5, "kd_weight": 0.5, "mlm_weight": 0.0, "cosine_weight": 0.0,
        "hidden_weight": 0.0, "embedding_weight": 0.0, "attention_weight": 0.0}
THREE_STAGES = {"stages": [{"epochs": 2, "temperature": 2, "kd_weight": 0.7},
                           {"epochs": 2, "temperature": 4, "kd_weight": 0.5},
                           {"epochs": 1, "temperature": 6, "kd_weight": 0.3}]}


def test_linear_and_constant_schedules():
    schedule = LossSchedule({"temperature": {"type": "linear", "start": 4.0, "end": 1.0}, "kd_weight": 0.9}, BASE)
    assert schedule.values_at(0, 0, 10)["temperature"] == 4.0
    assert schedule.values_at(0, 5, 10)["temperature"] == pytest.approx(2.5)
    assert schedule.values_at(0, 10, 10)["temperature"] == 1.0
    assert schedule.values_at(0, 5, 10)["kd_weight"] == 0.9
    assert schedule.values_at(0, 5, 10)["task_weight"] == 0.5  # not scheduled: the config's value
    assert schedule.max_values()["temperature"] == 4.0


def test_three_stage_plan_by_epoch():
    schedule = LossSchedule(THREE_STAGES, BASE)
    at = {epoch: schedule.values_at(epoch, 0, 1) for epoch in (0, 1.9, 2.0, 3.5, 4.0, 4.99, 6)}
    assert [at[e]["temperature"] for e in at] == [2, 2, 4, 4, 6, 6, 6]
    assert [at[e]["kd_weight"] for e in at] == [0.7, 0.7, 0.5, 0.5, 0.3, 0.3, 0.3]
    assert schedule.names == ["kd_weight", "temperature"]


@pytest.mark.parametrize("spec, message", [
    ({"temprature": 2.0}, "unknown value 'temprature'"),
    ({"temperature": {"type": "cosine"}}, "use 'constant' or 'linear'"),
    ({"temperature": {"type": "linear", "start": 1}}, "takes exactly"),
    ({"temperature": 0}, "temperature must be > 0"),
    ({"kd_weight": -1}, "kd_weight must be >= 0"),
    ({"stages": [{"temperature": 2}]}, "stage 1: must be a mapping with 'epochs'"),
    ({"stages": [{"epochs": 1, "kd_wieght": 2}]}, "stage 1: unknown value 'kd_wieght'"),
    ({"stages": [{"epochs": 1}], "kd_weight": 1}, "not both"),
])
def test_bad_schedules_name_the_key(spec, message):
    with pytest.raises(ValueError, match=message):
        DistillationConfig(output_dir="unused", schedule=spec)


def test_schedule_changes_the_loss_and_is_logged(tmp_path):
    teacher = tiny_teacher()
    spec = {"stages": [{"epochs": 1, "temperature": 2, "kd_weight": 0.7},
                       {"epochs": 1, "temperature": 4, "kd_weight": 0.5}]}
    trainer = DistillationTrainer(model=create_student(teacher, layers=[0, 2]), teacher_model=teacher,
                                  args=make_args(tmp_path, num_train_epochs=2, schedule=spec),
                                  train_dataset=random_classification_dataset(8), data_collator=collate)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [(e["temperature"], e["kd_weight"]) for e in logs] == [(2.0, 0.7), (2.0, 0.7), (4.0, 0.5), (4.0, 0.5)]
    # The logged total is the weighted sum with the scheduled weight.
    last = logs[-1]
    assert last["loss"] == pytest.approx(0.4 * last["loss_task"] + 0.5 * last["loss_kd"], abs=2e-4)


def test_schedule_from_a_recipe_and_the_command_line(tmp_path):
    from hf_distill.recipes import parse_recipe

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("output_dir: out\ntask_name: sst2\nschedule:\n  temperature: {type: linear, start: 4, end: 1}\n")
    _, _, config = parse_recipe(str(recipe), [])
    assert config.schedule == {"temperature": {"type": "linear", "start": 4, "end": 1}}
    _, _, config = parse_recipe(str(recipe), ["--schedule", '{"kd_weight": 0.2}'])
    assert config.schedule == {"kd_weight": 0.2}
