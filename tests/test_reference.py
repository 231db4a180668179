"""Reference modes: each term against the authors' code, transcribed here, on padded batches.

The `reference_*` functions below are written out from the authors' code (not imported):
TinyBERT's `task_distill.py` (attention and representation losses, `soft_cross_entropy`) and its model's
extended attention mask; DistilBERT's `distiller.py` (`step`) and `run_squad_w_distillation.py`.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertForMaskedLM, BertForMultipleChoice, BertForQuestionAnswering

from hf_distill import DistillationTrainer, create_student, losses
from tests.conftest import (
    offline_config,
    pad_collator,
    padded_batch,
    random_classification_dataset,
    tiny_bert_config,
    tiny_teacher,
)


# ----------------------------------------------------------------------------- the authors' functions


def reference_tinybert_model_scores(layer, hidden, heads, attention_mask):
    """TinyBERT's BertSelfAttention: Q·Kᵀ/√d plus the extended mask (1 − mask)·−10000, as its model returns them."""
    attn = layer.attention.self
    q, k = attn.query(hidden), attn.key(hidden)
    b, n, d = q.shape
    q = q.view(b, n, heads, d // heads).transpose(1, 2)
    k = k.view(b, n, heads, d // heads).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
    extended = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
    return scores + extended


def reference_tinybert_att_loss(student_atts, new_teacher_atts):
    """task_distill.py: zero every score <= -1e2, then MSELoss() per layer, summed."""
    loss_mse = nn.MSELoss()
    att_loss = 0.0
    for student_att, teacher_att in zip(student_atts, new_teacher_atts):
        student_att = torch.where(student_att <= -1e2, torch.zeros_like(student_att), student_att)
        teacher_att = torch.where(teacher_att <= -1e2, torch.zeros_like(teacher_att), teacher_att)
        att_loss += loss_mse(student_att, teacher_att)
    return att_loss


def reference_tinybert_rep_loss(new_student_reps, new_teacher_reps):
    """task_distill.py: MSELoss() between fit_dense(student rep) and teacher rep, embeddings included, summed."""
    loss_mse = nn.MSELoss()
    return sum(loss_mse(s, t) for s, t in zip(new_student_reps, new_teacher_reps))


def reference_soft_cross_entropy(predicts, targets):
    """task_distill.py's soft_cross_entropy (called with logits already divided by T)."""
    student_likelihood = F.log_softmax(predicts, dim=-1)
    targets_prob = F.softmax(targets, dim=-1)
    return (-targets_prob * student_likelihood).mean()


def reference_distiller_loss_ce(s_logits, t_logits, attention_mask, temperature):
    """distiller.py `step` with restrict_ce_to_mask off: every real token, KLDivLoss(batchmean) · T²."""
    mask = attention_mask.bool().unsqueeze(-1).expand_as(s_logits)
    s_slct = torch.masked_select(s_logits, mask).view(-1, s_logits.size(-1))
    t_slct = torch.masked_select(t_logits, mask).view(-1, s_logits.size(-1))
    ce = nn.KLDivLoss(reduction="batchmean")
    return ce(F.log_softmax(s_slct / temperature, dim=-1), F.softmax(t_slct / temperature, dim=-1)) * temperature**2


def reference_squad_loss_ce(start_s, end_s, start_t, end_t, temperature):
    """run_squad_w_distillation.py: KLDivLoss(batchmean) on start and on end logits, times T², averaged."""
    loss_fct = nn.KLDivLoss(reduction="batchmean")
    loss_start = loss_fct(F.log_softmax(start_s / temperature, dim=-1), F.softmax(start_t / temperature, dim=-1)) * (
        temperature**2
    )
    loss_end = loss_fct(F.log_softmax(end_s / temperature, dim=-1), F.softmax(end_t / temperature, dim=-1)) * (
        temperature**2
    )
    return (loss_start + loss_end) / 2.0


# ----------------------------------------------------------------------------- pure functions


def padded(batch=3, length=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = [length, length - 3, 2][:batch]
    mask = torch.tensor([[1] * n + [0] * (length - n) for n in lengths])
    return g, mask


def test_tinybert_attention_loss_equals_the_reference_on_padded_scores():
    g, mask = padded()
    a_s, a_t = torch.randn(3, 2, 7, 7, generator=g) * 3, torch.randn(3, 2, 7, 7, generator=g) * 3
    extended = (1.0 - mask[:, None, None, :].float()) * -10000.0
    expected = reference_tinybert_att_loss([a_s + extended], [a_t + extended])
    assert losses.tinybert_attention_loss(a_s, a_t, mask).item() == pytest.approx(expected.item(), abs=1e-6)
    # The default averages over real pairs only: a different number on padded inputs, the same without padding.
    assert losses.attention_score_mse_loss(a_s, a_t, mask).item() != pytest.approx(expected.item(), rel=1e-3)
    full = torch.ones_like(mask)
    assert losses.tinybert_attention_loss(a_s, a_t, full).item() == pytest.approx(
        losses.attention_score_mse_loss(a_s, a_t, full).item(), rel=1e-6)


def test_tinybert_soft_cross_entropy_equals_the_reference_and_ours_is_c_t2_times_it():
    g = torch.Generator().manual_seed(1)
    for classes, temperature in ((2, 1.0), (3, 1.0), (5, 2.0)):
        z_s, z_t = torch.randn(6, classes, generator=g), torch.randn(6, classes, generator=g)
        reference = reference_soft_cross_entropy(z_s / temperature, z_t / temperature)
        ours_reference = losses.tinybert_soft_cross_entropy_loss(z_s, z_t, temperature)
        assert ours_reference.item() == pytest.approx(reference.item(), abs=1e-6)
        default = losses.soft_cross_entropy_loss(z_s, z_t, temperature)
        assert default.item() / ours_reference.item() == pytest.approx(classes * temperature**2, rel=1e-6)


def test_span_kl_equals_run_squad_w_distillation_and_masks_padding_by_default():
    g, mask = padded(length=6)
    s, t = torch.randn(3, 2, 6, generator=g), torch.randn(3, 2, 6, generator=g)
    expected = reference_squad_loss_ce(s[:, 0], s[:, 1], t[:, 0], t[:, 1], 2.0)
    assert losses.span_kl_divergence_loss(s, t, 2.0).item() == pytest.approx(expected.item(), abs=1e-6)
    # Default: each example's distributions over its real positions only, i.e. the reference on the cut rows.
    rows = []
    for b in range(3):
        n = int(mask[b].sum())
        rows.append(reference_squad_loss_ce(s[b:b + 1, 0, :n], s[b:b + 1, 1, :n], t[b:b + 1, 0, :n], t[b:b + 1, 1, :n], 2.0))
    assert losses.span_kl_divergence_loss(s, t, 2.0, mask).item() == pytest.approx(torch.stack(rows).mean().item(), abs=1e-6)


def test_span_kl_by_hand():
    # One example, two positions, T=1; start logits student (0, 0), teacher (ln 3, 0) -> p_t = (3/4, 1/4), p_s = (1/2, 1/2).
    s = torch.zeros(1, 2, 2)
    t = torch.tensor([[[math.log(3.0), 0.0], [0.0, 0.0]]])
    kl_start = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert losses.span_kl_divergence_loss(s, t, 1.0).item() == pytest.approx(kl_start / 2, abs=1e-7)  # end KL is 0


# ----------------------------------------------------------------------------- trainer terms


def config(tmp_path, **weights):
    zeros = dict(task_weight=0.0, kd_weight=0.0, cosine_weight=0.0, hidden_weight=0.0, embedding_weight=0.0,
                 attention_weight=0.0)
    return offline_config(tmp_path, **{**zeros, **weights})


def term(trainer, model, batch):
    model.eval()
    with torch.no_grad():
        return trainer.compute_loss(model, batch).item()


@pytest.fixture
def narrow_pair():
    teacher = tiny_teacher()
    torch.manual_seed(1)
    return teacher, create_student(teacher, num_layers=2, hidden_size=16)


def test_tinybert_reference_terms_equal_task_distill_py(tmp_path, narrow_pair):
    teacher, student = narrow_pair
    batch = padded_batch(seed=5)
    mask = batch["attention_mask"]
    rep = DistillationTrainer(model=student, teacher_model=teacher,
                              args=config(tmp_path, hidden_weight=1.0, embedding_weight=1.0, reference="tinybert"))
    heads = rep.distillation_heads
    assert heads.embedding is None and len(heads.hidden) == 1  # one fit_dense for the embeddings and every layer
    fit_dense = heads.hidden[0]
    with torch.no_grad():
        s = student(**batch, output_hidden_states=True)
        t = teacher(input_ids=batch["input_ids"], attention_mask=mask, output_hidden_states=True)
        layers_per_block = 2
        expected_rep = reference_tinybert_rep_loss([fit_dense(h) for h in s.hidden_states],
                                                   [t.hidden_states[i * layers_per_block] for i in range(3)])
    assert term(rep, student, batch) == pytest.approx(expected_rep.item(), abs=1e-6)

    att = DistillationTrainer(model=student, teacher_model=teacher,
                              args=config(tmp_path, attention_weight=1.0, reference="tinybert"))
    with torch.no_grad():
        student_atts = [reference_tinybert_model_scores(student.bert.encoder.layer[m], s.hidden_states[m], 4, mask)
                        for m in range(2)]
        teacher_atts = [reference_tinybert_model_scores(teacher.bert.encoder.layer[i], t.hidden_states[i], 4, mask)
                        for i in range(4)]
        new_teacher_atts = [teacher_atts[i * layers_per_block + layers_per_block - 1] for i in range(2)]
        expected_att = reference_tinybert_att_loss(student_atts, new_teacher_atts)
    assert term(att, student, batch) == pytest.approx(expected_att.item(), abs=1e-6)
    default = DistillationTrainer(model=student, teacher_model=teacher, args=config(tmp_path, attention_weight=1.0))
    assert term(default, student, batch) != pytest.approx(expected_att.item(), rel=1e-3)


def test_tinybert_reference_prediction_term_equals_soft_cross_entropy(tmp_path):
    teacher = tiny_teacher(num_labels=3)
    student = create_student(teacher, layers=[1, 3])
    batch = padded_batch(seed=5)
    batch["labels"] = batch["labels"] % 3
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=config(
        tmp_path, kd_weight=1.0, kd_loss="soft_ce", temperature=1.0, reference="tinybert"))
    with torch.no_grad():
        z_s = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        z_t = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        expected = reference_soft_cross_entropy(z_s / 1.0, z_t / 1.0)
    assert term(trainer, student, batch) == pytest.approx(expected.item(), abs=1e-6)
    ours = DistillationTrainer(model=student, teacher_model=teacher, args=config(
        tmp_path, kd_weight=1.0, kd_loss="soft_ce", temperature=1.0))
    assert term(ours, student, batch) / expected.item() == pytest.approx(3.0, rel=1e-5)  # C = 3


def masked_lm_pair():
    torch.manual_seed(0)
    teacher = BertForMaskedLM(tiny_bert_config()).eval()
    return teacher, create_student(teacher, layers=[1, 3])


def test_distilbert_reference_soft_targets_cover_every_real_token(tmp_path):
    teacher, student = masked_lm_pair()
    ids = torch.tensor([[2, 10, 11, 12, 13, 3], [2, 20, 21, 3, 0, 0]])
    mask = (ids != 0).long()
    labels = torch.full_like(ids, -100)
    labels[0, 2], labels[1, 1] = 11, 20
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    with torch.no_grad():
        s = student(input_ids=ids, attention_mask=mask).logits
        t = teacher(input_ids=ids, attention_mask=mask).logits
        expected_all = reference_distiller_loss_ce(s, t, mask, 2.0)
        expected_masked = reference_distiller_loss_ce(s, t, (labels > -1).long(), 2.0)  # --restrict_ce_to_mask
    for extra, expected in ((dict(reference="distilbert"), expected_all), (dict(kd_positions="all"), expected_all),
                            ({}, expected_masked), (dict(reference="distilbert", kd_positions="masked"), expected_masked)):
        trainer = DistillationTrainer(model=student, teacher_model=teacher, args=config(tmp_path, kd_weight=1.0, **extra))
        assert term(trainer, student, batch) == pytest.approx(expected.item(), abs=1e-6), extra


@pytest.mark.parametrize("reference", [None, "tinybert"])
def test_gradient_accumulation_stays_exact_in_reference_mode(tmp_path, reference):
    # TinyBERT pads every input to max_seq_length: with fixed-length batches its means over every position are
    # the same whether a window is one batch or two micro-batches.
    dataset = random_classification_dataset(8, length=10, variable_length=True, seed=3)

    def fixed_length(features):
        batch = pad_collator(features)
        pad = 12 - batch["input_ids"].shape[1]
        return {**batch, "input_ids": F.pad(batch["input_ids"], (0, pad)),
                "attention_mask": F.pad(batch["attention_mask"], (0, pad))}

    def train(folder, **overrides):
        teacher = tiny_teacher()
        torch.manual_seed(1)
        student = create_student(teacher, num_layers=2, hidden_size=16)
        args = offline_config(folder, **{"task_weight": 0.3, "kd_weight": 0.7, "hidden_weight": 1.3,
                                         "embedding_weight": 1.7, "attention_weight": 0.9, "kd_loss": "soft_ce",
                                         "reference": reference, "optim": "sgd", "learning_rate": 0.5,
                                         "lr_scheduler_type": "constant", "max_grad_norm": 0.0, "max_steps": 1,
                                         **overrides})
        DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=dataset,
                            data_collator=fixed_length).train()
        return {k: v.detach().clone() for k, v in student.named_parameters()}

    full = train(tmp_path / "a", per_device_train_batch_size=8)
    split = train(tmp_path / "b", per_device_train_batch_size=4, gradient_accumulation_steps=2)
    for name in full:
        torch.testing.assert_close(split[name], full[name], rtol=1e-5, atol=1e-6, msg=name)


# ----------------------------------------------------------------------------- question answering


def qa_pair():
    torch.manual_seed(0)
    teacher = BertForQuestionAnswering(tiny_bert_config()).eval()
    return teacher, create_student(teacher, layers=[1, 3])


def qa_batch():
    ids = torch.tensor([[2, 10, 11, 3, 20, 21, 22, 3], [2, 12, 3, 30, 31, 3, 0, 0]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "token_type_ids": torch.tensor(
        [[0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1, 0, 0]]),
        "start_positions": torch.tensor([4, 3]), "end_positions": torch.tensor([5, 4])}


def test_question_answering_step_distils_start_and_end_logits(tmp_path):
    teacher, student = qa_pair()
    batch = qa_batch()
    mask = batch["attention_mask"]
    with torch.no_grad():
        s = student(**{k: v for k, v in batch.items() if "positions" not in k})
        t = teacher(**{k: v for k, v in batch.items() if "positions" not in k})
        task = student(**batch).loss

    def kl_by_hand(z_s, z_t, n, temperature):
        # KL(p_t || p_s) over the first n positions, written with explicit sums.
        p_t = [math.exp(z_t[j] / temperature) for j in range(n)]
        p_s = [math.exp(z_s[j] / temperature) for j in range(n)]
        zt, zs = sum(p_t), sum(p_s)
        return sum((p_t[j] / zt) * math.log((p_t[j] / zt) / (p_s[j] / zs)) for j in range(n))

    temperature = 2.0
    by_hand = 0.0
    for b in range(2):
        n = int(mask[b].sum())
        for z_s, z_t in ((s.start_logits[b], t.start_logits[b]), (s.end_logits[b], t.end_logits[b])):
            by_hand += kl_by_hand(z_s.tolist(), z_t.tolist(), n, temperature)
    by_hand = temperature**2 * by_hand / 4  # mean over 2 examples x (start, end)

    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=config(tmp_path, kd_weight=0.5, task_weight=0.5))
    assert term(trainer, student, batch) == pytest.approx(0.5 * by_hand + 0.5 * task.item(), abs=1e-5)
    reference = DistillationTrainer(model=student, teacher_model=teacher,
                                    args=config(tmp_path, kd_weight=1.0, reference="distilbert"))
    expected = reference_squad_loss_ce(s.start_logits, s.end_logits, t.start_logits, t.end_logits, temperature)
    assert term(reference, student, batch) == pytest.approx(expected.item(), abs=1e-6)


def test_question_answering_trains_with_hidden_and_attention_terms(tmp_path):
    teacher, student = qa_pair()
    rows = [qa_batch() for _ in range(4)]
    features = [{k: v[i].tolist() for k, v in rows[0].items()} for i in range(2)] * 4
    from datasets import Dataset

    dataset = Dataset.from_list(features)
    args = config(tmp_path, kd_weight=1.0, task_weight=1.0, hidden_weight=1.0, attention_weight=1.0,
                  per_device_train_batch_size=4, max_steps=3, learning_rate=1e-3)
    from transformers import default_data_collator

    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=dataset,
                                  data_collator=default_data_collator)
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss_kd" in entry]
    assert len(logged) == 3 and all(key in logged[0] for key in ("loss_task", "loss_hidden", "loss_attention"))
    assert all(math.isfinite(entry["loss"]) for entry in logged)


def test_unsupported_heads_are_refused_before_the_first_step(tmp_path):
    torch.manual_seed(0)
    teacher = BertForMultipleChoice(tiny_bert_config()).eval()
    student = create_student(teacher, layers=[1, 3])
    with pytest.raises(ValueError, match=r"BertForMultipleChoice.*Supported: \*ForSequenceClassification"):
        DistillationTrainer(model=student, teacher_model=teacher, args=config(tmp_path, kd_weight=1.0))
    from transformers import BertModel

    encoder = BertModel(tiny_bert_config())
    with pytest.raises(ValueError, match="no task head"):
        DistillationTrainer(model=create_student(encoder, layers=[1, 3]), teacher_model=encoder,
                            args=config(tmp_path, kd_weight=1.0))
    # A bare encoder still trains the hidden-state terms.
    DistillationTrainer(model=create_student(encoder, layers=[1, 3]), teacher_model=encoder,
                        args=config(tmp_path, hidden_weight=1.0))


def test_a_bert_teacher_keeps_its_token_type_ids_beside_a_distilbert_student(tmp_path):
    """Trainer drops the columns the student's forward does not take; the teacher's inputs must survive."""
    from datasets import Dataset
    from transformers import DistilBertConfig, DistilBertForQuestionAnswering, default_data_collator

    torch.manual_seed(0)
    teacher = BertForQuestionAnswering(tiny_bert_config()).eval()
    student = DistilBertForQuestionAnswering(DistilBertConfig(
        vocab_size=teacher.config.vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
        max_position_embeddings=64))
    seen = {}
    teacher.register_forward_pre_hook(lambda module, args, kwargs: seen.update(teacher=set(kwargs)), with_kwargs=True)
    student.register_forward_pre_hook(lambda module, args, kwargs: seen.update(student=set(kwargs)), with_kwargs=True)
    batch = qa_batch()
    dataset = Dataset.from_list([{k: v[i].tolist() for k, v in batch.items()} for i in range(2)] * 2)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, data_collator=default_data_collator,
                                  train_dataset=dataset, args=config(tmp_path, kd_weight=1.0, task_weight=1.0,
                                                                     per_device_train_batch_size=2, max_steps=1))
    trainer.train()
    assert "token_type_ids" in seen["teacher"] and "token_type_ids" not in seen["student"]
    assert {"start_positions", "end_positions"} <= seen["student"]
