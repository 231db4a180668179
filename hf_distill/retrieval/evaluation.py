"""Retrieval evaluation: Recall@K both ways with several captions per image, and two-stage re-ranking.

The standard protocol of Flickr30k / COCO retrieval (Karpathy & Fei-Fei, 2015; CLIP; ALBEF):

- text→image: every caption is a query; it hits at K when its own image is among the K images
  most similar to it. ``R@K = hits / number of captions``.
- image→text: every image is a query; it hits at K when any of its captions (5 on Flickr30k) is
  among the K captions most similar to it. ``R@K = hits / number of images``.
- ``mean_recall`` = the mean of the six numbers (R@1/5/10 both ways; "RSUM / 6").

Recalls are percentages. Ties are broken by index order (`torch.topk`), which only matters for
degenerate, e.g. untrained, models.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from ..compat import pooled_features

RECALL_KS = (1, 5, 10)


def recall_at_k(
    similarity: torch.Tensor, caption_image_ids: Sequence[int], ks: Sequence[int] = RECALL_KS
) -> dict[str, float]:
    """Text→image and image→text Recall@K from a caption×image similarity matrix.

    Args:
        similarity (`torch.Tensor` of shape `(num_captions, num_images)`): Higher is more similar.
        caption_image_ids (`Sequence[int]`): For each caption, the index of its image (column).
        ks (`Sequence[int]`, defaults to `(1, 5, 10)`): The K's. A K larger than the number of
            candidates counts every candidate.

    Returns:
        `dict[str, float]`: `text_to_image_R@K` and `image_to_text_R@K` (percent) for each K, and
        `mean_recall`, their mean.
    """
    similarity = similarity.float()
    num_captions, num_images = similarity.shape
    owner = torch.as_tensor(list(caption_image_ids), dtype=torch.long)
    if owner.shape != (num_captions,):
        raise ValueError(f"caption_image_ids has {owner.numel()} entries for {num_captions} captions.")
    if num_captions and (owner.min() < 0 or owner.max() >= num_images):
        raise ValueError(f"caption_image_ids must index the {num_images} images (0..{num_images - 1}).")
    results: dict[str, float] = {}
    max_k = max(ks)
    # text→image: the rank-ordered images of each caption.
    top_images = similarity.topk(min(max_k, num_images), dim=1).indices
    image_hit = top_images == owner.unsqueeze(1)
    # image→text: the rank-ordered captions of each image; a hit is any caption of that image.
    top_captions = similarity.T.topk(min(max_k, num_captions), dim=1).indices
    caption_hit = owner[top_captions] == torch.arange(num_images).unsqueeze(1)
    for k in ks:
        results[f"text_to_image_R@{k}"] = 100.0 * int(image_hit[:, :k].any(1).sum()) / num_captions
    for k in ks:
        results[f"image_to_text_R@{k}"] = 100.0 * int(caption_hit[:, :k].any(1).sum()) / num_images
    results["mean_recall"] = sum(results.values()) / len(results)
    return results


def chance_recall(num_images: int, captions_per_image: int, ks: Sequence[int] = RECALL_KS) -> dict[str, float]:
    """Expected Recall@K of a random ranking, for reference (percent).

    text→image: ``K / N``. image→text: ``1 − C(M − c, K) / C(M, K)`` with ``M = N·c`` captions, ``c``
    of them the image's own.
    """
    import math

    num_captions = num_images * captions_per_image
    results = {f"text_to_image_R@{k}": 100.0 * min(k, num_images) / num_images for k in ks}
    for k in ks:
        k = min(k, num_captions)
        miss = math.comb(num_captions - captions_per_image, k) / math.comb(num_captions, k)
        results[f"image_to_text_R@{k}"] = 100.0 * (1 - miss)
    results["mean_recall"] = sum(results.values()) / len(results)
    return results


@torch.no_grad()
def encode(
    model: torch.nn.Module,
    images: Sequence[Any],
    captions: Sequence[str],
    collator: Callable[[list[dict]], dict[str, torch.Tensor]],
    batch_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised image and text embeddings of a dual encoder (`get_image_features` / `get_text_features`).

    Args:
        model (`torch.nn.Module`): A `CLIPModel`, `VisionTextDualEncoderModel` or any model with
            `get_image_features(pixel_values)` and `get_text_features(input_ids, attention_mask)`.
        images (`Sequence`): Images the collator understands (PIL images, tensors or paths).
        captions (`Sequence[str]`): Captions.
        collator: A `RetrievalCollator` (turns ``[{"image": ...}]`` / ``[{"caption": ...}]`` into tensors).
        batch_size (`int`, defaults to 64): Encoding batch size.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: `(num_images, D)` and `(num_captions, D)` float32 on CPU.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    image_chunks, text_chunks = [], []
    for start in range(0, len(images), batch_size):
        batch = collator.images([*images[start : start + batch_size]])
        image_chunks.append(pooled_features(model.get_image_features(pixel_values=batch.to(device))).float().cpu())
    for start in range(0, len(captions), batch_size):
        batch = collator.texts([*captions[start : start + batch_size]])
        features = pooled_features(model.get_text_features(**{k: v.to(device) for k, v in batch.items()}))
        text_chunks.append(features.float().cpu())
    model.train(was_training)
    return F.normalize(torch.cat(image_chunks), dim=-1), F.normalize(torch.cat(text_chunks), dim=-1)


def evaluate_retrieval(
    model: torch.nn.Module,
    images: Sequence[Any],
    captions: Sequence[Sequence[str]],
    collator,
    batch_size: int = 64,
) -> dict[str, float]:
    """Recall@1/5/10 both ways of `model` on images and their caption groups (standard protocol).

    Args:
        model (`torch.nn.Module`): The dual encoder.
        images (`Sequence`): ``N`` images.
        captions (`Sequence[Sequence[str]]`): For each image, its captions (5 on Flickr30k).
        collator: The `RetrievalCollator` of the model.
        batch_size (`int`, defaults to 64): Encoding batch size.

    Returns:
        `dict[str, float]`: See `recall_at_k`.
    """
    flat, owner = flatten_captions(captions)
    image_embeds, text_embeds = encode(model, images, flat, collator, batch_size)
    return recall_at_k(text_embeds @ image_embeds.T, owner)


def flatten_captions(captions: Sequence[Sequence[str]]) -> tuple[list[str], list[int]]:
    """The captions of every image in one list, and the image index of each."""
    flat, owner = [], []
    for index, group in enumerate(captions):
        flat.extend(group)
        owner.extend([index] * len(group))
    return flat, owner


def rerank_similarity(
    student_similarity: torch.Tensor, teacher_similarity: torch.Tensor, top_k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-stage retrieval scores: the student shortlists, the teacher orders the shortlist.

    For each caption row (text→image) the student's top-`top_k` images, and for each image column
    (image→text) the student's top-`top_k` captions, get the teacher's similarity plus an offset
    that puts them above every other candidate; the rest keep the student's order below them. So
    R@K for K ≤ `top_k` is that of the teacher restricted to the student's shortlist.

    Args:
        student_similarity (`torch.Tensor` of shape `(num_captions, num_images)`): Student cosines.
        teacher_similarity (`torch.Tensor` of shape `(num_captions, num_images)`): Teacher cosines;
            only the shortlisted entries are read (see `two_stage_retrieval` for what that costs).
        top_k (`int`): Shortlist length.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: Text→image scores `(num_captions, num_images)` and
        image→text scores `(num_images, num_captions)`.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}.")
    offset = 10.0  # cosines lie in [-1, 1]: shortlisted scores (≥ 9) beat every other one (≤ 1)

    def rerank(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        shortlist = student.topk(min(top_k, student.shape[1]), dim=1).indices
        scores = student.clone()
        scores.scatter_(1, shortlist, teacher.gather(1, shortlist) + offset)
        return scores

    return rerank(student_similarity, teacher_similarity), rerank(student_similarity.T, teacher_similarity.T)


def two_stage_retrieval(
    student: torch.nn.Module,
    teacher: torch.nn.Module,
    images: Sequence[Any],
    captions: Sequence[Sequence[str]],
    student_collator,
    teacher_collator,
    top_k: int = 16,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Recall of two-stage retrieval (student shortlist, teacher re-ranking) and what it costs.

    The student embeds the whole gallery and every query; for each query the teacher scores only
    the student's top-`top_k` candidates. The cost is counted in encoder passes, which is what
    differs between the two set-ups:

    - per query: the teacher embeds the query and its `top_k` candidates (``1 + k`` passes) instead
      of the query alone against a gallery the teacher indexed beforehand (``N`` gallery passes,
      ``N`` = 1,000 images or 5,000 captions on the Flickr30k test split);
    - in this evaluation: the gallery items that appear in at least one shortlist
      (`*_gallery_encodings`), next to the whole gallery (`full_*_gallery_encodings`).

    In this offline protocol every image and caption is also a query, so the teacher embeds
    everything once here (`teacher_seconds`) and the shortlists are read from its similarity
    matrix; `student_seconds` is the student's full encoding, both measured in this call.

    Returns:
        `dict`: `recall` (as `recall_at_k`: text→image from the re-ranked caption rows, image→text
        from the re-ranked image rows), `top_k`, the encoding counts above, and the seconds.
    """
    flat, owner = flatten_captions(captions)
    start = time.perf_counter()
    s_images, s_texts = encode(student, images, flat, student_collator, batch_size)
    student_seconds = time.perf_counter() - start
    start = time.perf_counter()
    t_images, t_texts = encode(teacher, images, flat, teacher_collator, batch_size)
    teacher_seconds = time.perf_counter() - start
    student_similarity = s_texts @ s_images.T
    text_to_image, image_to_text = rerank_similarity(student_similarity, t_texts @ t_images.T, top_k)
    forward = recall_at_k(text_to_image, owner)
    backward = recall_at_k(image_to_text.T, owner)
    recall = {k: v for k, v in forward.items() if k.startswith("text_to_image")}
    recall.update({k: v for k, v in backward.items() if k.startswith("image_to_text")})
    recall["mean_recall"] = sum(recall.values()) / len(recall)
    k_images, k_captions = min(top_k, len(images)), min(top_k, len(flat))
    return {
        "recall": recall,
        "top_k": top_k,
        "teacher_encodings_per_query": {"text_to_image": 1 + k_images, "image_to_text": 1 + k_captions},
        "image_gallery_encodings": len(student_similarity.topk(k_images, dim=1).indices.unique()),
        "full_image_gallery_encodings": len(images),
        "caption_gallery_encodings": len(student_similarity.T.topk(k_captions, dim=1).indices.unique()),
        "full_caption_gallery_encodings": len(flat),
        "student_seconds": round(student_seconds, 3),
        "teacher_seconds": round(teacher_seconds, 3),
    }
