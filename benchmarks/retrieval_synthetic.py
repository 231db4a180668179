"""Offline functional check of the retrieval recipes: teacher, distilled student, student alone, chance.

    python benchmarks/retrieval_synthetic.py [--output_root runs/retrieval_synthetic] [--threads 1] [--seeds 42,1,2]

Runs the three recipes of `recipes/retrieval_synthetic/` in order, exactly as `hf-distill train`
does: a tiny CLIP teacher trained with the contrastive loss on coloured shapes drawn in code
(`teacher.yaml`), then, for each student seed, a smaller student distilled from it (`distill.yaml`)
and the same student trained without a teacher (`alone.yaml`); the seed changes the students'
initialisation, the data stay those of seed 42 (`--data_seed 42`). Prints the recalls on the
synthetic evaluation set (200 images, 5 captions each), their means over the seeds, two-stage
re-ranking and the chance level. A functional check of the code path, not a Flickr30k result.

One thread by default: on the project's 2 shared cores, two PyTorch threads were many times slower
than one for these tiny models while other jobs were running.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from hf_distill.recipes import parse_recipe, recipe_family_of, run_parsed  # noqa: E402

RECIPES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes", "retrieval_synthetic")
KEYS = ("text_to_image_R@1", "text_to_image_R@5", "text_to_image_R@10",
        "image_to_text_R@1", "image_to_text_R@5", "image_to_text_R@10", "mean_recall")


def run(name: str, overrides: list[str]) -> tuple[dict, float]:
    path = os.path.join(RECIPES, f"{name}.yaml")
    start = time.perf_counter()
    results = run_parsed(recipe_family_of(path, overrides), parse_recipe(path, overrides))
    return results, time.perf_counter() - start


def table_row(name: str, params, recall: dict) -> str:
    return f"| {name} | {params or ''} | " + " | ".join(f"{recall[k]:.1f}" for k in KEYS) + " |"


def mean_recall(runs: list[dict]) -> dict:
    return {k: sum(r[k] for r in runs) / len(runs) for k in KEYS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_root", default="runs/retrieval_synthetic")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", default="42,1,2", help="Student seeds (initialisation); the data stay those of seed 42.")
    parser.add_argument("--skip_teacher", action="store_true", help="Reuse OUTPUT_ROOT/teacher from an earlier run.")
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    root = options.output_root
    teacher_dir = os.path.join(root, "teacher")
    common = ["--disable_tqdm", "true", "--data_seed", "42"]
    seconds: dict[str, float] = {}
    if not options.skip_teacher:
        _, seconds["teacher"] = run("teacher", ["--output_dir", teacher_dir, *common])
    seeds = [int(seed) for seed in options.seeds.split(",")]
    distilled, alone = [], []
    for seed in seeds:
        result, seconds[f"distill seed {seed}"] = run("distill", [
            "--output_dir", os.path.join(root, f"distill_seed{seed}"), "--teacher_model_name_or_path", teacher_dir,
            "--seed", str(seed), *common])
        distilled.append(result)
        result, seconds[f"alone seed {seed}"] = run("alone", [
            "--output_dir", os.path.join(root, f"alone_seed{seed}"), "--model_name_or_path", teacher_dir,
            "--seed", str(seed), *common])
        alone.append(result)
    first = distilled[0]
    print(f"\nSynthetic shapes retrieval, {first['data']['eval_images']} evaluation images x 5 captions; students "
          f"trained on {first['data']['train_images']} images; torch threads: {options.threads}")
    print("| model | params | " + " | ".join(k.replace("text_to_image_", "t2i ").replace("image_to_text_", "i2t ")
                                            .replace("mean_recall", "mean") for k in KEYS) + " |")
    print("|" + "---|" * (len(KEYS) + 2))
    print(table_row("teacher (tiny CLIP, contrastive only)", first["teacher"]["parameters"], first["teacher"]["recall"]))
    for seed, d, a in zip(seeds, distilled, alone):
        print(table_row(f"student distilled, seed {seed}", d["student"]["parameters"], d["student"]["recall"]))
        print(table_row(f"student alone, seed {seed}", a["student"]["parameters"], a["student"]["recall"]))
    if len(seeds) > 1:
        print(table_row(f"student distilled, mean of {len(seeds)} seeds", None, mean_recall([d["student"]["recall"] for d in distilled])))
        print(table_row(f"student alone, mean of {len(seeds)} seeds", None, mean_recall([a["student"]["recall"] for a in alone])))
    if "two_stage" in first:
        print(table_row(f"distilled student (seed {seeds[0]}) top-{first['two_stage']['top_k']} + teacher re-rank",
                        None, first["two_stage"]["recall"]))
    print(table_row("chance", None, first["chance"]))
    gains = [d["student"]["recall"]["mean_recall"] - a["student"]["recall"]["mean_recall"] for d, a in zip(distilled, alone)]
    print("\nmean-recall gain of distillation per seed: " + ", ".join(f"{g:+.1f}" for g in gains))
    print("wall-clock seconds per recipe (training + evaluation): "
          + ", ".join(f"{name} {value:.0f}" for name, value in seconds.items()))
    if "two_stage" in first:
        two = first["two_stage"]
        print(f"two-stage cost: teacher encodings per query {two['teacher_encodings_per_query']}; shortlisted "
              f"gallery {two['image_gallery_encodings']}/{two['full_image_gallery_encodings']} images, "
              f"{two['caption_gallery_encodings']}/{two['full_caption_gallery_encodings']} captions; "
              f"student encoding {two['student_seconds']} s, teacher {two['teacher_seconds']} s")


if __name__ == "__main__":
    main()
