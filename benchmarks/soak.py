"""Soak run: many steps with frequent checkpoints, memory measured from start to end.

A small BERT teacher (4 layers, width 128) is distilled into a narrower 2-layer student (width 64,
so it has projection heads) with every loss on, for 2,000 optimizer steps, a checkpoint every 100
steps and `save_total_limit=2`. The resident memory of the process (RSS) is sampled at every
checkpoint. The run passes when:

- RSS at the end exceeds RSS after the first checkpoint by no more than `--max_growth_mb`
  (default 64 MiB: allocator noise, not a leak that grows with steps);
- exactly `save_total_limit` checkpoints are left, each with the student and its heads file, and the
  last one loads with plain `from_pretrained`.

    python benchmarks/soak.py                  # about 2 minutes on 2 CPU cores
    python benchmarks/soak.py --steps 300      # a quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

import psutil
import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification, TrainerCallback

from hf_distill import DistillationConfig, DistillationTrainer, create_student
from hf_distill.runs import HEADS_WEIGHTS_NAME


class MemorySampler(TrainerCallback):
    """Records (step, RSS in MiB) after every checkpoint save."""

    def __init__(self):
        self.samples: list[tuple[int, float]] = []
        self.process = psutil.Process()

    def on_save(self, args, state, control, **kwargs):
        self.samples.append((state.global_step, self.process.memory_info().rss / 2**20))


def random_dataset(n: int, length: int, vocab_size: int, seed: int) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(length // 2, length + 1, (n,), generator=g).tolist()
    return Dataset.from_dict({
        "input_ids": [torch.randint(5, vocab_size, (size,), generator=g).tolist() for size in sizes],
        "attention_mask": [[1] * size for size in sizes],
        "labels": torch.randint(0, 2, (n,), generator=g).tolist(),
    })


def pad(features):
    length = max(len(f["input_ids"]) for f in features)
    batch = {key: torch.tensor([f[key] + [0] * (length - len(f[key])) for f in features])
             for key in ("input_ids", "attention_mask")}
    batch["labels"] = torch.tensor([f["labels"] for f in features])
    return batch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--save_steps", type=int, default=100)
    parser.add_argument("--save_total_limit", type=int, default=2)
    parser.add_argument("--max_growth_mb", type=float, default=64.0)
    args = parser.parse_args()

    torch.manual_seed(0)
    config = BertConfig(vocab_size=1000, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=256, max_position_embeddings=64, attn_implementation="eager")
    teacher = BertForSequenceClassification(config).eval()
    student = create_student(teacher, num_layers=2, hidden_size=64, intermediate_size=128)
    sampler = MemorySampler()
    start = time.time()
    with tempfile.TemporaryDirectory() as output_dir:
        training_args = DistillationConfig(
            output_dir=output_dir, max_steps=args.steps, per_device_train_batch_size=16, learning_rate=1e-4,
            save_strategy="steps", save_steps=args.save_steps, save_total_limit=args.save_total_limit,
            logging_steps=50, report_to=[], use_cpu=True, disable_tqdm=True, seed=0,
            task_weight=0.5, kd_weight=0.5, cosine_weight=1.0, hidden_weight=1.0, embedding_weight=1.0,
            attention_weight=1.0,
        )
        trainer = DistillationTrainer(model=student, teacher_model=teacher, args=training_args,
                                      train_dataset=random_dataset(4000, 48, config.vocab_size, seed=0),
                                      data_collator=pad, callbacks=[sampler])
        trainer.train()
        checkpoints = sorted(name for name in os.listdir(output_dir) if name.startswith("checkpoint-"))
        with_heads = [name for name in checkpoints if os.path.isfile(os.path.join(output_dir, name, HEADS_WEIGHTS_NAME))]
        last = os.path.join(output_dir, f"checkpoint-{args.steps}")
        reloaded = AutoModelForSequenceClassification.from_pretrained(last)
        finite = all(torch.isfinite(p).all() for p in reloaded.parameters())
    minutes = (time.time() - start) / 60

    first_step, first_rss = sampler.samples[0]
    last_step, last_rss = sampler.samples[-1]
    growth = last_rss - first_rss
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(f"{args.steps} steps, checkpoint every {args.save_steps}, save_total_limit={args.save_total_limit}, "
          f"{minutes:.1f} min")
    print("RSS (MiB) at checkpoints: " + ", ".join(f"{step}: {rss:.0f}" for step, rss in sampler.samples))
    print(f"RSS after step {first_step}: {first_rss:.0f} MiB; after step {last_step}: {last_rss:.0f} MiB; "
          f"growth {growth:+.1f} MiB (bound {args.max_growth_mb:.0f} MiB)")
    print(f"checkpoints left: {checkpoints} ({len(with_heads)} with heads); last loads with from_pretrained, "
          f"finite weights: {finite}")
    ok = growth <= args.max_growth_mb and len(checkpoints) == args.save_total_limit == len(with_heads) and finite
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
