"""MiniLM relation losses against the papers' formulas written out with loops, and the Q/K/V capture."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import BertModel, DistilBertConfig, DistilBertModel

from hf_distill import DistillationConfig, DistillationTrainer, create_student
from hf_distill.relations import QKVCapture, relation_kl_loss
from tests.conftest import (
    offline_config,
    pad_collator,
    padded_batch,
    random_classification_dataset,
    tiny_bert_config,
    tiny_teacher,
)


def minilm_relation_by_hand(x_s, y_s, x_t, y_t, heads):
    """MiniLM eq. (5)-(8) / MiniLMv2 eq. (4)-(6) for ONE unpadded sequence, with Python loops:
    1/(A·|x|) Σ_a Σ_t KL(R^T_{a,t} ‖ R^S_{a,t}),  R_{a,t} = softmax(X_{a,t} · Y_aᵀ / √d_r)."""
    length = x_s.shape[0]

    def rows(x, y, a, t):
        d_r = x.shape[1] // heads
        xa, ya = x[:, a * d_r:(a + 1) * d_r], y[:, a * d_r:(a + 1) * d_r]
        logits = [float(xa[t] @ ya[j]) / math.sqrt(d_r) for j in range(length)]
        top = max(logits)
        weights = [math.exp(v - top) for v in logits]
        return [w / sum(weights) for w in weights]

    total = 0.0
    for a in range(heads):
        for t in range(length):
            p_t, p_s = rows(x_t, y_t, a, t), rows(x_s, y_s, a, t)
            total += sum(p * math.log(p / q) for p, q in zip(p_t, p_s))
    return total / (heads * length)


def test_relation_kl_equals_the_papers_formula_on_one_sequence():
    torch.manual_seed(0)
    x_s, y_s = torch.randn(5, 8), torch.randn(5, 8)  # student width 8
    x_t, y_t = torch.randn(5, 12), torch.randn(5, 12)  # teacher width 12: relations need no equal widths
    for heads in (1, 2, 4):
        expected = minilm_relation_by_hand(x_s, y_s, x_t, y_t, heads)
        value = relation_kl_loss(x_s[None], y_s[None], x_t[None], y_t[None], num_heads=heads)
        assert value.item() == pytest.approx(expected, abs=1e-6)
    # the same vectors on both sides: no loss
    assert relation_kl_loss(x_t[None], y_t[None], x_t[None], y_t[None], num_heads=4).item() == pytest.approx(0, abs=1e-7)


def test_a_padded_batch_averages_over_its_real_tokens_and_ignores_the_padding():
    torch.manual_seed(1)
    lengths = (6, 3, 4)
    x_s, y_s, x_t, y_t = torch.randn(3, 6, 8), torch.randn(3, 6, 8), torch.randn(3, 6, 4), torch.randn(3, 6, 4)
    mask = torch.tensor([[1] * n + [0] * (6 - n) for n in lengths])
    value = relation_kl_loss(x_s, y_s, x_t, y_t, num_heads=2, attention_mask=mask)
    # mean over every real token of the batch = token-weighted mean of the per-sequence losses
    by_hand = sum(n * minilm_relation_by_hand(x_s[b, :n], y_s[b, :n], x_t[b, :n], y_t[b, :n], 2)
                  for b, n in enumerate(lengths)) / sum(lengths)
    assert value.item() == pytest.approx(by_hand, abs=1e-6)
    # whatever the padded positions hold
    noisy = [t.clone() for t in (x_s, y_s, x_t, y_t)]
    for t in noisy:
        t[mask == 0] = 100.0
    assert relation_kl_loss(*noisy, num_heads=2, attention_mask=mask).item() == pytest.approx(value.item(), abs=1e-6)
    # and its gradient is finite
    x = x_s.clone().requires_grad_(True)
    relation_kl_loss(x, y_s, x_t, y_t, num_heads=2, attention_mask=mask).backward()
    assert torch.isfinite(x.grad).all() and (x.grad[mask == 0] == 0).all()


def test_head_counts_and_widths_that_do_not_split_are_refused():
    x = torch.randn(1, 3, 8)
    with pytest.raises(ValueError, match="as many heads in the teacher"):
        relation_kl_loss(x, x, x, x, num_heads=2, teacher_num_heads=4)
    with pytest.raises(ValueError, match="does not split into 3 relation heads"):
        relation_kl_loss(x, x, x, x, num_heads=3)


def test_capture_records_one_layers_query_key_value():
    torch.manual_seed(0)
    model = BertModel(tiny_bert_config()).eval()
    capture = QKVCapture(model, layer=-1)
    ids = torch.tensor([[2, 7, 8, 3]])
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    vectors = capture.vectors()
    attention = model.encoder.layer[-1].attention.self
    hidden_in = out.hidden_states[-2]
    for name, module in (("query", attention.query), ("key", attention.key), ("value", attention.value)):
        torch.testing.assert_close(vectors[name], module(hidden_in))
    capture.remove()

    distil = DistilBertModel(DistilBertConfig(vocab_size=50, dim=16, n_layers=2, n_heads=2, hidden_dim=32)).eval()
    capture = QKVCapture(distil, layer=0)
    distil(input_ids=ids)
    assert set(capture.vectors()) == {"query", "key", "value"} and capture.vectors()["value"].shape == (1, 4, 16)


# ----------------------------------------------------------------------------- as terms of DistillationTrainer

ZEROS = dict(task_weight=0.0, kd_weight=0.0)


def kl_rows_by_hand(p_t, p_s, mask):
    """mean over real query rows of the head-mean KL(p_t ‖ p_s) over real keys; p_* of shape (B, H, L, L)."""
    total, rows = 0.0, 0
    for b in range(p_t.shape[0]):
        n = int(mask[b].sum())
        for i in range(n):
            per_head = []
            for a in range(p_t.shape[1]):
                per_head.append(sum(float(p_t[b, a, i, j]) * math.log(float(p_t[b, a, i, j]) / float(p_s[b, a, i, j]))
                                    for j in range(n)))
            total += sum(per_head) / len(per_head)
            rows += 1
    return total / rows


def test_minilm_v1_attention_transfer_is_the_kl_of_the_models_attention_probabilities(tmp_path):
    teacher = tiny_teacher()
    torch.manual_seed(1)
    student = create_student(teacher, num_layers=2, hidden_size=16)  # narrower, the teacher's 4 heads
    batch = padded_batch(seed=3)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=offline_config(
        tmp_path, **ZEROS, attention_relation_weight=1.0, relation_teacher_layer=3))
    student.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(student, dict(batch)).item()
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        p_s = student(**inputs, output_attentions=True).attentions[-1]
        p_t = teacher(**inputs, output_attentions=True).attentions[2]  # teacher layer 3, 1-based
    assert loss == pytest.approx(kl_rows_by_hand(p_t, p_s, batch["attention_mask"]), abs=1e-5)
    assert loss > 0


def test_minilm_v2_relations_with_relation_heads_across_widths_and_head_counts(tmp_path):
    teacher = tiny_teacher()  # 32 wide, 4 heads
    torch.manual_seed(1)
    student = create_student(teacher, num_layers=2, hidden_size=24, num_attention_heads=3)  # 24 wide, 3 heads
    batch = padded_batch(seed=3)
    args = DistillationConfig.minilm(version=2, relation_heads=8, output_dir=str(tmp_path), report_to=[],
                                     use_cpu=True, logging_steps=1)
    assert args.loss_weights["query_relation"] == args.loss_weights["key_relation"] == 1.0
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args)
    vectors = {}
    hooks = []
    for role, attention in (("s", student.bert.encoder.layer[-1].attention.self),
                            ("t", teacher.bert.encoder.layer[-1].attention.self)):
        for name in ("query", "key", "value"):
            hooks.append(getattr(attention, name).register_forward_hook(
                lambda m, a, out, key=f"{role}_{name}": vectors.__setitem__(key, out)))
    student.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(student, dict(batch)).item()
    for hook in hooks:
        hook.remove()
    mask = batch["attention_mask"]
    expected = 0.0
    for name in ("query", "key", "value"):
        by_hand = sum(int(mask[b].sum()) * minilm_relation_by_hand(
            vectors[f"s_{name}"][b, :int(mask[b].sum())], vectors[f"s_{name}"][b, :int(mask[b].sum())],
            vectors[f"t_{name}"][b, :int(mask[b].sum())], vectors[f"t_{name}"][b, :int(mask[b].sum())], 8)
            for b in range(mask.shape[0])) / int(mask.sum())
        expected += by_hand
    assert loss == pytest.approx(expected, abs=1e-5)


def test_relation_terms_train_log_and_stay_exact_under_gradient_accumulation(tmp_path):
    teacher = tiny_teacher()
    dataset = random_classification_dataset(16, length=10, variable_length=True, seed=4)

    def train(folder, **overrides):
        torch.manual_seed(1)
        student = create_student(teacher, num_layers=2, hidden_size=24, num_attention_heads=3)
        args = offline_config(folder, task_weight=0.0, kd_weight=0.5, value_relation_weight=1.0,
                              query_relation_weight=1.0, key_relation_weight=1.0, relation_heads=4, max_steps=2,
                              optim="sgd", learning_rate=0.5, lr_scheduler_type="constant", max_grad_norm=0.0,
                              **overrides)
        trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=dataset,
                                      data_collator=pad_collator)
        trainer.train()
        logged = [entry for entry in trainer.state.log_history if "loss_value_relation" in entry]
        assert len(logged) == 2 and all(math.isfinite(e["loss_query_relation"]) for e in logged)
        return {name: p.detach().clone() for name, p in student.named_parameters()}

    full = train(tmp_path / "a", per_device_train_batch_size=8)
    split = train(tmp_path / "b", per_device_train_batch_size=4, gradient_accumulation_steps=2)
    for name in full:
        torch.testing.assert_close(split[name], full[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("weights, student_kwargs, match", [
    (dict(value_relation_weight=1.0), dict(hidden_size=24, num_attention_heads=3),
     r"relation_heads unset uses each model's own attention heads.*student has 3 and the teacher 4.*e\.g\. 8"),
    (dict(value_relation_weight=1.0, relation_heads=5), dict(hidden_size=24, num_attention_heads=3),
     r"relation_heads=5 does not divide"),
    (dict(attention_relation_weight=1.0), dict(hidden_size=24, num_attention_heads=3),
     r"attention_relation_weight > 0 compares the attention distributions head by head"),
    (dict(value_relation_weight=1.0, relation_teacher_layer=9), dict(hidden_size=16),
     r"relation_teacher_layer=9 is outside the teacher's 4 layers"),
])
def test_bad_relation_setups_are_refused_before_training(tmp_path, weights, student_kwargs, match):
    teacher = tiny_teacher()
    student = create_student(teacher, num_layers=2, **student_kwargs)
    with pytest.raises(ValueError, match=match):
        DistillationTrainer(model=student, teacher_model=teacher, args=offline_config(tmp_path, **ZEROS, **weights))


def test_relation_options_are_checked():
    with pytest.raises(ValueError, match="relation_heads must be a positive"):
        DistillationConfig(output_dir="x", relation_heads=0)
    with pytest.raises(ValueError, match="relation_teacher_layer is a 1-based"):
        DistillationConfig(output_dir="x", relation_teacher_layer=0)
    with pytest.raises(ValueError, match="version must be 1"):
        DistillationConfig.minilm(version=3, output_dir="x")
    v1 = DistillationConfig.minilm(version=1, output_dir="x")
    assert {k for k, v in v1.loss_weights.items() if v > 0} == {"attention_relation", "value_relation"}
    assert v1.relation_heads is None


def test_relation_recipes_run_in_the_task_and_the_general_family(tmp_path):
    import json
    import os

    from transformers import AutoModelForSequenceClassification, BertModel

    from hf_distill.cli import main
    from tests.test_cli import RECIPES, tiny_tokenizer, write
    from tests.conftest import tiny_bert_config as config_of

    tokenizer = tiny_tokenizer(tmp_path / "tok")
    teacher_dir = tmp_path / "teacher"
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config_of(vocab_size=len(tokenizer), hidden_size=48,
                                                             num_attention_heads=4)).save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)
    rows = [("good w1 w2", 1), ("bad w3", 0), ("w4 good", 1), ("bad bad w5", 0)] * 4
    body = "sentence\tlabel\n" + "".join(f"{s} \t{label}\n" for s, label in rows)
    write(tmp_path / "glue" / "SST-2" / "train.tsv", body)
    write(tmp_path / "glue" / "SST-2" / "dev.tsv", body)
    common = ["--max_steps", "2", "--per_device_train_batch_size", "4", "--use_cpu", "true", "--save_strategy", "no",
              "--disable_tqdm", "true", "--relation_heads", "12", "--student_num_layers", "2",
              "--student_hidden_size", "24", "--student_intermediate_size", "48", "--student_num_attention_heads", "3"]
    task_dir = tmp_path / "task"
    assert main(["train", os.path.join(RECIPES, "glue", "minilm_v2.yaml"), *common, "--task_name", "sst2",
                 "--data_dir", str(tmp_path / "glue"), "--teacher_model_name_or_path", str(teacher_dir),
                 "--output_dir", str(task_dir)]) == 0
    results = json.load(open(task_dir / "results.json"))
    assert results["recipe"]["loss_weights"] == {"value_relation": 1.0, "query_relation": 1.0, "key_relation": 1.0}
    assert results["recipe"]["relation_heads"] == 12 and results["recipe"]["relation_teacher_layer"] == 4
    assert AutoModelForSequenceClassification.from_pretrained(task_dir).config.num_attention_heads == 3

    base_dir = tmp_path / "base"
    BertModel(config_of(vocab_size=len(tokenizer), hidden_size=48)).save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    text = write(tmp_path / "t.txt", "\n".join(" ".join(f"w{(i * 7 + j) % 30}" for j in range(14)) for i in range(24)))
    general_dir = tmp_path / "general"
    assert main(["train", os.path.join(RECIPES, "general", "minilm_v2.yaml"), *common,
                 "--teacher_model_name_or_path", str(base_dir), "--dataset_name", "", "--train_file", text,
                 "--validation_ratio", "0.2", "--max_seq_length", "16", "--gradient_accumulation_steps", "1", "--logging_steps", "1",
                 "--output_dir", str(general_dir)]) == 0
    results = json.load(open(general_dir / "results.json"))
    assert set(results["loss_terms"]["first"]) >= {"loss_query_relation", "loss_key_relation", "loss_value_relation"}


@pytest.mark.parametrize("name", ["bert", "roberta", "electra", "distilbert", "deberta-v2", "deberta-v3", "modernbert"])
def test_relation_terms_train_every_architecture_with_other_widths_and_heads(tmp_path, name):
    from tests.test_architectures import build, one_step

    teacher = build(name)  # 32 wide, 4 heads
    torch.manual_seed(1)
    student = create_student(teacher, num_layers=2, hidden_size=16, num_attention_heads=2)
    logged = one_step(tmp_path / "v2", student, teacher, **ZEROS, query_relation_weight=1.0, key_relation_weight=1.0,
                      value_relation_weight=1.0, relation_heads=4)
    for term in ("query_relation", "key_relation", "value_relation"):
        assert math.isfinite(logged[f"loss_{term}"]) and logged[f"loss_{term}"] > 0, (term, logged)
    torch.manual_seed(1)
    student = create_student(teacher, num_layers=2, hidden_size=16)  # the teacher's 4 heads
    logged = one_step(tmp_path / "v1", student, teacher, **ZEROS, attention_relation_weight=1.0,
                      value_relation_weight=1.0)
    assert logged["loss_attention_relation"] > 0 and logged["loss_value_relation"] > 0, logged


def test_albert_relations_are_refused_with_the_reason(tmp_path):
    from tests.test_architectures import build

    teacher = build("albert")
    student = create_student(teacher, num_layers=2, hidden_size=16)
    with pytest.raises(ValueError, match=r"value_relation_weight > 0: .*(shares|shared)"):
        DistillationTrainer(model=student, teacher_model=teacher,
                            args=offline_config(tmp_path, **ZEROS, value_relation_weight=1.0))


def test_deberta_v3_relations_read_the_content_vectors_not_the_position_embeddings():
    from tests.test_architectures import batch, build

    model = build("deberta-v3")
    capture = QKVCapture(model, layer=-1)
    ids, mask = batch()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    attention = model.deberta.encoder.layer[-1].attention.self
    torch.testing.assert_close(capture.vectors()["query"], attention.query_proj(out.hidden_states[-2]))


def test_a_fused_in_proj_without_known_projections_is_refused():
    from transformers import DebertaConfig, DebertaForSequenceClassification

    model = DebertaForSequenceClassification(DebertaConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
                                                           num_attention_heads=4, intermediate_size=64))
    with pytest.raises(ValueError, match=r"no query/key/value projections hf-distill knows.*set their weights to 0"):
        QKVCapture(model, -1)
