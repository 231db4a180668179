"""Retrieval loss terms against values worked out by hand on tiny tensors."""

import math

import pytest
import torch
import torch.nn.functional as F

from hf_distill.retrieval import losses


def clip_loss(similarity):
    """transformers' CLIP loss (`clip_loss` in 4.57, `image_text_contrastive_loss` in 5.x), transcribed."""
    caption_loss = F.cross_entropy(similarity, torch.arange(len(similarity)))
    image_loss = F.cross_entropy(similarity.T, torch.arange(len(similarity.T)))
    return (caption_loss + image_loss) / 2.0


def log1pexp(x):
    return math.log(1 + math.exp(x))


def kl_two_classes(teacher, student):
    """KL(softmax(teacher) || softmax(student)) for two logits each, written out."""
    p = 1 / (1 + math.exp(teacher[1] - teacher[0]))
    q = 1 / (1 + math.exp(student[1] - student[0]))
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def test_contrastive_loss_by_hand_and_equal_to_hf_clip_loss():
    z = torch.tensor([[2.0, 0.0], [1.0, 1.0]])  # rows: captions, columns: images
    # text→image: −log softmax([2,0])_0 = log(1+e^−2); −log softmax([1,1])_1 = log 2
    # image→text (Zᵀ = [[2,1],[0,1]]): log(1+e^−1) twice
    expected = ((log1pexp(-2) + math.log(2)) / 2 + log1pexp(-1)) / 2
    assert losses.contrastive_loss(z).item() == pytest.approx(expected, rel=1e-6)
    assert losses.contrastive_loss(z).item() == pytest.approx(clip_loss(z).item(), rel=1e-6)


def test_contrastive_loss_with_two_captions_of_one_image_shares_the_target():
    z = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    # Both pairs show image 0: each row's target is ½ on both columns.
    # t→i row 0: −½(log p0 + log p1) with log softmax([2,0]) = (−log(1+e^−2), −2 − log(1+e^−2)) → 1 + log(1+e^−2)
    # t→i row 1: log 2.  i→t rows [2,1] and [0,1]: ½ + log(1+e^−1) each.
    expected = ((1 + log1pexp(-2) + math.log(2)) / 2 + (0.5 + log1pexp(-1))) / 2
    loss = losses.contrastive_loss(z, pair_ids=torch.tensor([7, 7]))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # Distinct ids give the plain InfoNCE.
    assert losses.contrastive_loss(z, torch.tensor([0, 1])).item() == pytest.approx(losses.contrastive_loss(z).item())


def test_contrastive_loss_rejects_a_non_square_matrix():
    with pytest.raises(ValueError, match="square"):
        losses.contrastive_loss(torch.zeros(2, 3))


def test_similarity_logits_scale_cosines():
    image = torch.tensor([[3.0, 0.0], [0.0, 2.0]])
    text = torch.tensor([[1.0, 1.0]])
    z = losses.similarity_logits(image, text, logit_scale=10.0)
    torch.testing.assert_close(z, torch.tensor([[10 / math.sqrt(2), 10 / math.sqrt(2)]]))


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_similarity_distillation_both_directions_by_hand(temperature):
    z_s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z_t = torch.tensor([[2.0, 0.0], [1.0, 0.0]])
    t = temperature

    def rows(teacher, student):
        return sum(kl_two_classes([a / t for a in tr], [b / t for b in sr]) for tr, sr in zip(teacher, student)) / 2

    text_to_image = rows([[2, 0], [1, 0]], [[1, 0], [0, 1]])
    image_to_text = rows([[2, 1], [0, 0]], [[1, 0], [0, 1]])  # the transposes
    expected = t**2 * (text_to_image + image_to_text) / 2
    loss = losses.similarity_distillation_loss(z_s, z_t, temperature)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert losses.similarity_distillation_loss(z_t, z_t, temperature).item() == pytest.approx(0.0, abs=1e-7)


def test_similarity_distillation_rejects_different_batches():
    with pytest.raises(ValueError, match="same batch"):
        losses.similarity_distillation_loss(torch.zeros(2, 2), torch.zeros(3, 3))


def test_embedding_matching_cosine_and_mse_by_hand():
    student = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    teacher = torch.tensor([[0.0, 1.0], [2.0, 2.0]])
    # cosines 0 and 1: mean(1 − cos) = (1 + 0) / 2
    assert losses.embedding_matching_loss(student, teacher, "cosine").item() == pytest.approx(0.5)
    # squared differences 1, 1, 1, 1 → mean 1
    assert losses.embedding_matching_loss(student, teacher, "mse").item() == pytest.approx(1.0)
    assert losses.embedding_matching_loss(torch.tensor([[1.0, 2.0]]), torch.zeros(1, 2), "mse").item() == 2.5
    with pytest.raises(ValueError, match="Project"):
        losses.embedding_matching_loss(torch.zeros(2, 3), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="cosine"):
        losses.embedding_matching_loss(student, teacher, "l1")


def huber(x):
    return 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5


TEACHER_TRIANGLE = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
STUDENT_TRIANGLE = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])


def test_rkd_distance_by_hand():
    mu_t = (1 + 1 + math.sqrt(2)) / 3
    mu_s = (1 + 2 + math.sqrt(5)) / 3
    differences = [1 / mu_s - 1 / mu_t, 2 / mu_s - 1 / mu_t, math.sqrt(5) / mu_s - math.sqrt(2) / mu_t]
    expected = 2 * sum(huber(d) for d in differences) / 9  # 9 entries, zero diagonal, symmetric
    assert losses.rkd_distance_loss(STUDENT_TRIANGLE, TEACHER_TRIANGLE).item() == pytest.approx(expected, rel=1e-5)
    # Scale-invariant: a scaled copy of the teacher, even in another width, costs nothing.
    scaled = torch.cat([3 * TEACHER_TRIANGLE, torch.zeros(3, 2)], dim=1)
    assert losses.rkd_distance_loss(scaled, TEACHER_TRIANGLE).item() == pytest.approx(0.0, abs=1e-6)


def test_rkd_angle_by_hand():
    # Only the angles at the vertices (1, 0) and (0, 2|1) differ: cos 1/√5 vs 1/√2 at x_1, 2/√5 vs 1/√2 at x_2,
    # each appearing twice among the 27 (a, b, c) entries.
    d1 = 1 / math.sqrt(5) - 1 / math.sqrt(2)
    d2 = 2 / math.sqrt(5) - 1 / math.sqrt(2)
    expected = (2 * huber(d1) + 2 * huber(d2)) / 27
    assert losses.rkd_angle_loss(STUDENT_TRIANGLE, TEACHER_TRIANGLE).item() == pytest.approx(expected, rel=1e-5)
    assert losses.rkd_angle_loss(5 * TEACHER_TRIANGLE, TEACHER_TRIANGLE).item() == pytest.approx(0.0, abs=1e-6)


def test_rkd_needs_the_same_inputs():
    with pytest.raises(ValueError, match="same B"):
        losses.rkd_angle_loss(torch.zeros(3, 2), torch.zeros(4, 2))
