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

With `--faults N` it is a fault soak instead: the same run, in a child process killed with SIGKILL N times at
seeded random points, half of them during a step and half in the middle of writing a checkpoint (after the model
file, before the optimizer state), each time resumed with `resume_from_checkpoint=True` (the latest complete
checkpoint). It passes when the run finishes and its final weights equal those of an uninterrupted run (max |diff|
<= 1e-6), and no partial checkpoint is left.

    python benchmarks/soak.py --faults 10      # about 3 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import psutil
import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification, TrainerCallback

from hf_distill import DistillationConfig, DistillationTrainer, create_student
from hf_distill.export.report import cpu_name
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


FAULT_STEP = "HF_DISTILL_SOAK_KILL_AT_STEP"
FAULT_SAVE = "HF_DISTILL_SOAK_KILL_IN_SAVE"


def fault_run(output_dir: str, steps: int, save_steps: int, resume: bool) -> None:
    """One child process of the fault soak: trains (or resumes) and kills itself where the environment says."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=64, attn_implementation="eager")
    teacher = BertForSequenceClassification(config).eval()
    student = create_student(teacher, num_layers=2, hidden_size=32, intermediate_size=64)
    kill_step, kill_save = int(os.environ.get(FAULT_STEP, 0)), int(os.environ.get(FAULT_SAVE, 0))

    class KillAtStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == kill_step:
                os.kill(os.getpid(), signal.SIGKILL)

    real_save = DistillationTrainer._save_optimizer_and_scheduler

    def save_then_maybe_die(self, folder):
        if self.state.global_step == kill_save:  # the model file is written, the optimizer state is not
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(self, folder)

    DistillationTrainer._save_optimizer_and_scheduler = save_then_maybe_die
    training_args = DistillationConfig(
        output_dir=output_dir, max_steps=steps, per_device_train_batch_size=8, learning_rate=1e-3,
        save_strategy="steps", save_steps=save_steps, save_total_limit=3, logging_steps=10, report_to=[],
        use_cpu=True, disable_tqdm=True, seed=0, task_weight=0.5, kd_weight=0.5, cosine_weight=1.0,
        hidden_weight=1.0, attention_weight=1.0,
        schedule={"temperature": {"type": "linear", "start": 4.0, "end": 1.0}},
    )
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=training_args,
                                  train_dataset=random_dataset(400, 32, config.vocab_size, seed=0),
                                  data_collator=pad, callbacks=[KillAtStep()])
    trainer.train(resume_from_checkpoint=True if resume else None)
    trainer.save_model()


def _child(output_dir: str, steps: int, save_steps: int, resume: bool, env: dict) -> int:
    command = [sys.executable, __file__, "--_fault_child", output_dir, "--steps", str(steps),
               "--save_steps", str(save_steps)] + (["--_resume"] if resume else [])
    return subprocess.run(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode


def fault_soak(faults: int, steps: int, save_steps: int, seed: int) -> int:
    """Kills a run `faults` times at random points and resumes it; compares with an uninterrupted run."""
    import safetensors.torch

    rng = random.Random(seed)
    saves = list(range(save_steps, steps, save_steps))
    points = sorted(rng.sample(range(1, steps), faults // 2 + faults % 2))  # during a step
    in_save = sorted(rng.sample(saves, faults // 2))  # in the middle of writing a checkpoint
    plan = sorted([("step", step) for step in points] + [("save", step) for step in in_save], key=lambda p: p[1])
    start = time.time()
    with tempfile.TemporaryDirectory() as root:
        reference, faulted = os.path.join(root, "uninterrupted"), os.path.join(root, "faulted")
        assert _child(reference, steps, save_steps, False, {}) == 0, "the uninterrupted run failed"
        kills, resume = [], False
        for kind, step in plan:
            code = _child(faulted, steps, save_steps, resume, {FAULT_STEP if kind == "step" else FAULT_SAVE: str(step)})
            kills.append((kind, step, code))
            resume = resume or any(name.startswith("checkpoint-") for name in os.listdir(faulted))
        final_code = _child(faulted, steps, save_steps, resume, {})
        a = safetensors.torch.load_file(os.path.join(reference, "model.safetensors"))
        b = safetensors.torch.load_file(os.path.join(faulted, "model.safetensors"))
        max_diff = max(float((a[key] - b[key]).abs().max()) for key in a)
        partial = [name for name in os.listdir(faulted) if name.startswith(".partial-")]
        state = json.load(open(os.path.join(faulted, sorted(
            (n for n in os.listdir(faulted) if n.startswith("checkpoint-")), key=lambda n: int(n.split("-")[1]))[-1],
            "trainer_state.json")))
    killed = sum(1 for _, _, code in kills if code == -signal.SIGKILL)
    print(f"Machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(f"{steps} steps, a checkpoint every {save_steps}; {len(plan)} kills planned, {killed} happened "
          f"({sum(1 for k, _, _ in kills if k == 'step')} during steps, {sum(1 for k, _, _ in kills if k == 'save')} "
          f"in the middle of a save), at steps {[step for _, step, _ in kills]}; {(time.time() - start) / 60:.1f} min")
    print(f"final run exit code {final_code}, last checkpoint at step {state['global_step']}, partial checkpoints "
          f"left: {partial}, max |weight diff| vs the uninterrupted run: {max_diff:.2e}")
    ok = final_code == 0 and killed == len(plan) and not partial and max_diff <= 1e-6
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="Optimizer steps (2000; 200 with --faults).")
    parser.add_argument("--save_steps", type=int, default=None, help="Steps between checkpoints (100; 10 with --faults).")
    parser.add_argument("--save_total_limit", type=int, default=2)
    parser.add_argument("--max_growth_mb", type=float, default=64.0)
    parser.add_argument("--faults", type=int, default=0, help="Kill and resume the run this many times instead.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the kill points.")
    parser.add_argument("--_fault_child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_resume", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._fault_child:
        fault_run(args._fault_child, args.steps, args.save_steps, args._resume)
        return 0
    if args.faults:
        return fault_soak(args.faults, args.steps or 200, args.save_steps or 10, args.seed)
    args.steps, args.save_steps = args.steps or 2000, args.save_steps or 100

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
    print(f"Machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}")
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
