"""Recall@K with 5 captions per image on a hand-made similarity matrix, and two-stage re-ranking."""

import math

import pytest
import torch

from hf_distill.retrieval.evaluation import chance_recall, recall_at_k, rerank_similarity

OWNER = [0] * 5 + [1] * 5 + [2] * 5  # captions 0-4 describe image 0, 5-9 image 1, 10-14 image 2


def hand_made_similarity():
    rows = [[0.9, 0.1, 0.0],  # caption 0: its image first
            [0.5, 0.9, 0.0]]  # caption 1: its image second
    rows += [[0.1, 0.5, 0.9]] * 3  # captions 2-4: their image third
    rows += [[0.0, 1.0, 0.0]] * 5  # image 1's captions: first
    rows += [[0.3, 0.2, 0.1]] * 5  # image 2's captions: third
    return torch.tensor(rows)


def test_recall_at_k_standard_protocol_by_hand():
    recall = recall_at_k(hand_made_similarity(), OWNER, ks=(1, 2, 4))
    # text→image: hits at 1 = caption 0 + image 1's five = 6 / 15; at 2 add caption 1; K=4 > 3 images: all.
    assert recall["text_to_image_R@1"] == pytest.approx(100 * 6 / 15)
    assert recall["text_to_image_R@2"] == pytest.approx(100 * 7 / 15)
    assert recall["text_to_image_R@4"] == pytest.approx(100.0)
    # image→text: image 0's best caption is caption 0 (hit), image 1's are captions 5-9 (hit); image 2's
    # first three are captions 2-4 (0.9), its own (0.1) come 4th: a hit only from K = 4.
    assert recall["image_to_text_R@1"] == pytest.approx(100 * 2 / 3)
    assert recall["image_to_text_R@2"] == pytest.approx(100 * 2 / 3)
    assert recall["image_to_text_R@4"] == pytest.approx(100.0)
    expected_mean = (600 / 15 + 700 / 15 + 100 + 200 / 3 + 200 / 3 + 100) / 6
    assert recall["mean_recall"] == pytest.approx(expected_mean)


def test_recall_defaults_and_input_checks():
    recall = recall_at_k(hand_made_similarity(), OWNER)
    assert set(recall) == {f"{d}_R@{k}" for d in ("text_to_image", "image_to_text") for k in (1, 5, 10)} | {"mean_recall"}
    with pytest.raises(ValueError, match="15 captions"):
        recall_at_k(hand_made_similarity(), OWNER[:-1])
    with pytest.raises(ValueError, match="index the 3 images"):
        recall_at_k(hand_made_similarity(), OWNER[:-1] + [3])


def test_chance_recall_formula():
    chance = chance_recall(num_images=1000, captions_per_image=5)
    assert chance["text_to_image_R@10"] == pytest.approx(1.0)
    # image→text R@1 by chance: 5 of 5,000 captions are right
    assert chance["image_to_text_R@1"] == pytest.approx(0.1)
    assert chance["image_to_text_R@10"] == pytest.approx(100 * (1 - math.comb(4995, 10) / math.comb(5000, 10)))


def test_two_stage_reranking_orders_the_student_shortlist_by_the_teacher():
    # 2 images, 1 caption each. The student ranks both captions' images wrongly; the teacher is right.
    student = torch.tensor([[0.1, 0.9], [0.8, 0.2]])
    teacher = torch.tensor([[0.9, 0.0], [0.0, 0.9]])
    text_to_image, image_to_text = rerank_similarity(student, teacher, top_k=2)
    assert recall_at_k(student, [0, 1], ks=(1,))["text_to_image_R@1"] == 0.0
    assert recall_at_k(text_to_image, [0, 1], ks=(1,))["text_to_image_R@1"] == 100.0
    assert recall_at_k(image_to_text.T, [0, 1], ks=(1,))["image_to_text_R@1"] == 100.0
    # A shortlist of 1 is the student's own top-1: the teacher cannot fix it.
    text_to_image, _ = rerank_similarity(student, teacher, top_k=1)
    assert recall_at_k(text_to_image, [0, 1], ks=(1,))["text_to_image_R@1"] == 0.0
    with pytest.raises(ValueError, match="top_k"):
        rerank_similarity(student, teacher, top_k=0)
