"""Each loss against numbers worked out by hand (with `math`, not with the function under test)."""

import math

import pytest
import torch
from torch import nn

from hf_distill import losses


def softmax(values):
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def test_kl_matches_hand_computation_with_t_squared():
    z_s, z_t, T = [1.0, 0.0, -1.0], [0.0, 2.0, 0.0], 2.0
    p_s = softmax([v / T for v in z_s])
    p_t = softmax([v / T for v in z_t])
    expected = T**2 * sum(t * (math.log(t) - math.log(s)) for s, t in zip(p_s, p_t))
    value = losses.kl_divergence_loss(torch.tensor([z_s]), torch.tensor([z_t]), temperature=T)
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_kl_is_mean_over_rows_and_zero_for_equal_logits():
    z_s = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    z_t = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    p_t, p_s = softmax([0.0, 1.0]), softmax([1.0, 0.0])
    row0 = sum(t * (math.log(t) - math.log(s)) for s, t in zip(p_s, p_t))
    value = losses.kl_divergence_loss(z_s, z_t, temperature=1.0)
    assert value.item() == pytest.approx(row0 / 2, rel=1e-6)  # second row contributes 0
    assert losses.kl_divergence_loss(z_t, z_t, 3.0).item() == pytest.approx(0.0, abs=1e-7)


def test_kl_equals_distilbert_reference_batchmean():
    torch.manual_seed(0)
    z_s, z_t, T = torch.randn(5, 7), torch.randn(5, 7), 2.0
    reference = nn.KLDivLoss(reduction="batchmean")(
        torch.log_softmax(z_s / T, -1), torch.softmax(z_t / T, -1)
    ) * T**2
    assert losses.kl_divergence_loss(z_s, z_t, T).item() == pytest.approx(reference.item(), rel=1e-5)


def test_kl_token_rows_follow_the_mask():
    z_s = torch.tensor([[[2.0, 0.0], [5.0, -5.0]]])  # (batch 1, 2 tokens, 2 classes)
    z_t = torch.tensor([[[0.0, 2.0], [-5.0, 5.0]]])
    row_mask = torch.tensor([[True, False]])
    p_s, p_t = softmax([2.0, 0.0]), softmax([0.0, 2.0])
    expected = sum(t * (math.log(t) - math.log(s)) for s, t in zip(p_s, p_t))
    assert losses.kl_divergence_loss(z_s, z_t, 1.0, row_mask).item() == pytest.approx(expected, rel=1e-6)


def test_soft_cross_entropy_hand_value():
    z_s, z_t, T = [0.5, -0.5], [1.0, 3.0], 2.0
    p_t = softmax([v / T for v in z_t])
    log_p_s = [math.log(p) for p in softmax([v / T for v in z_s])]
    expected = T**2 * -sum(t * s for t, s in zip(p_t, log_p_s))
    value = losses.soft_cross_entropy_loss(torch.tensor([z_s]), torch.tensor([z_t]), T)
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_soft_ce_minus_kl_is_teacher_entropy():
    z_s, z_t = torch.tensor([[0.3, 1.2, -0.4]]), torch.tensor([[1.0, 0.0, 0.5]])
    p_t = softmax([1.0, 0.0, 0.5])
    entropy = -sum(p * math.log(p) for p in p_t)
    difference = losses.soft_cross_entropy_loss(z_s, z_t, 1.0) - losses.kl_divergence_loss(z_s, z_t, 1.0)
    assert difference.item() == pytest.approx(entropy, rel=1e-5)


def test_logit_mse_hand_value():
    value = losses.logit_mse_loss(torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [3.0, 1.0]]))
    assert value.item() == pytest.approx((1 + 4 + 9 + 1) / 4)


def test_regression_heads_use_mse_whatever_kd_loss_says():
    s, t = torch.tensor([[2.5], [1.0]]), torch.tensor([[2.0], [3.0]])
    for kd_loss in ("kl", "soft_ce", "mse"):
        value = losses.soft_target_loss(s, t, kd_loss=kd_loss, temperature=4.0)
        assert value.item() == pytest.approx((0.25 + 4.0) / 2)


def test_soft_target_loss_rejects_mismatched_label_spaces():
    with pytest.raises(ValueError, match="same label space"):
        losses.soft_target_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def test_cosine_loss_hand_value_skips_padding():
    h_s = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [9.0, 9.0]]])
    h_t = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [-9.0, 9.0]]])
    mask = torch.tensor([[1, 1, 0]])
    # token 1: cos = 0 -> 1; token 2: cos = 1/sqrt(2) -> 1 - 0.7071; token 3 is padding.
    expected = ((1 - 0.0) + (1 - 1 / math.sqrt(2))) / 2
    assert losses.cosine_hidden_loss(h_s, h_t, mask).item() == pytest.approx(expected, rel=1e-6)


def test_hidden_mse_mean_over_real_tokens_and_features():
    h_s = torch.tensor([[[1.0, 2.0], [0.0, 0.0]], [[4.0, 4.0], [100.0, 100.0]]])
    h_t = torch.zeros(2, 2, 2)
    mask = torch.tensor([[1, 1], [1, 0]])
    expected = (1 + 4 + 0 + 0 + 16 + 16) / 6  # three real tokens x two features
    assert losses.hidden_mse_loss(h_s, h_t, mask).item() == pytest.approx(expected)


def test_attention_mse_counts_only_pairs_of_real_tokens():
    a_s = torch.zeros(1, 2, 3, 3)
    a_t = torch.zeros(1, 2, 3, 3)
    a_s[0, 0, 0, 1] = 2.0  # real pair (0, 1), head 0
    a_s[0, 1, 1, 1] = 1.0  # real pair (1, 1), head 1
    a_s[0, 0, 2, 0] = 50.0  # query is padding: ignored
    a_s[0, 1, 0, 2] = 50.0  # key is padding: ignored
    mask = torch.tensor([[1, 1, 0]])
    expected = (4.0 + 1.0) / (2 * 2 * 2)  # 2 heads x 4 valid pairs
    assert losses.attention_score_mse_loss(a_s, a_t, mask).item() == pytest.approx(expected)


def test_attention_mse_without_padding_equals_tinybert_reference():
    torch.manual_seed(1)
    a_s, a_t = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    reference = nn.MSELoss()(a_s, a_t)  # TinyBERT's att_loss per layer
    value = losses.attention_score_mse_loss(a_s, a_t, torch.ones(2, 5, dtype=torch.long))
    assert value.item() == pytest.approx(reference.item(), rel=1e-6)


def test_attention_loss_rejects_different_head_counts():
    with pytest.raises(ValueError, match="same number of heads"):
        losses.attention_score_mse_loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 4, 3, 3))


def test_losses_are_float32_and_finite_for_large_half_precision_logits():
    z_s = torch.tensor([[6.0e4, -6.0e4]], dtype=torch.float16)
    z_t = torch.tensor([[-6.0e4, 6.0e4]], dtype=torch.float16)
    value = losses.kl_divergence_loss(z_s, z_t, temperature=1.0)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    scores = torch.full((1, 1, 2, 2), 6.0e4, dtype=torch.bfloat16)
    assert torch.isfinite(losses.attention_score_mse_loss(scores, -scores))


def test_all_rows_masked_gives_zero_with_gradient():
    z_s = torch.randn(1, 3, 4, requires_grad=True)
    value = losses.kl_divergence_loss(z_s, torch.randn(1, 3, 4), 2.0, torch.zeros(1, 3, dtype=torch.bool))
    value.backward()
    assert value.item() == 0.0 and z_s.grad is not None


# --- the task loss over labelled examples only ---------------------------------------------------------------


def test_labelled_rows_reads_negative_classes_and_nan_scores_as_missing():
    assert losses.labelled_rows(torch.tensor([0, -100, 2, -1])).tolist() == [True, False, True, False]
    assert losses.labelled_rows(torch.tensor([1.5, math.nan, 0.0, -1.0])).tolist() == [True, False, True, True]


def test_sequence_task_loss_regression_averages_the_labelled_rows_by_hand():
    logits = torch.tensor([[1.0], [2.0], [5.0]])
    labels = torch.tensor([0.0, math.nan, 3.0])
    # ((1 - 0)² + (5 - 3)²) / 2: the unlabelled row neither adds an error nor counts in the mean.
    assert losses.sequence_task_loss(logits, labels, "regression").item() == pytest.approx(2.5)


def test_sequence_task_loss_classification_averages_the_labelled_rows_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)], [5.0, 5.0], [math.log(4.0), 0.0]])
    labels = torch.tensor([1, -100, 0])
    # Row 0: p(1) = 3/4; row 2: p(0) = 4/5; mean of -log p = -log(0.6) / 2.
    value = losses.sequence_task_loss(logits, labels, "single_label_classification")
    assert value.item() == pytest.approx(-math.log(0.6) / 2, rel=1e-6)
    # With every row labelled it is transformers' cross-entropy (mean over the batch).
    full = torch.tensor([1, 0, 0])
    assert losses.sequence_task_loss(logits, full, "single_label_classification").item() == pytest.approx(
        nn.CrossEntropyLoss()(logits, full).item(), rel=1e-6)


def test_sequence_task_loss_with_no_labelled_row_is_zero_with_gradient_and_other_problems_refused():
    logits = torch.randn(2, 3, requires_grad=True)
    value = losses.sequence_task_loss(logits, torch.tensor([-1, -100]), "single_label_classification")
    value.backward()
    assert value.item() == 0.0 and torch.equal(logits.grad, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="multi_label_classification.*give every example a label"):
        losses.sequence_task_loss(logits, torch.tensor([0, -1]), "multi_label_classification")


def test_pooled_mse_pools_each_side_over_its_own_tokens():
    """Mean over each model's real tokens, then MSE over examples and features; sequences of other lengths."""
    from hf_distill.losses import mean_pool, pooled_mse_loss

    student = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]],
                            [[0.0, 0.0], [2.0, 2.0], [4.0, 4.0]]])
    student_mask = torch.tensor([[1, 1, 0], [1, 1, 1]])  # pooled: [2, 3] and [2, 2]
    teacher = torch.tensor([[[2.0, 2.0], [2.0, 4.0], [9.0, 9.0], [9.0, 9.0]],
                            [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [4.0, 8.0]]])
    teacher_mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])  # pooled: [2, 3] and [1, 2]
    assert mean_pool(student, student_mask).tolist() == [[2.0, 3.0], [2.0, 2.0]]
    # differences [0, 0] and [1, 0]: (0 + 0 + 1 + 0) / 4
    assert pooled_mse_loss(student, teacher, student_mask, teacher_mask).item() == pytest.approx(0.25)
    assert pooled_mse_loss(student, teacher).item() == pytest.approx(
        ((student.mean(1) - teacher.mean(1)) ** 2).mean().item())
    with pytest.raises(ValueError, match="project the student"):
        pooled_mse_loss(student, teacher[..., :1])
