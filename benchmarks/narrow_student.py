"""A narrow student on SST-2: MiniLMv2 relations against TinyBERT's hidden terms and against no teacher (#23).

One teacher, all-MiniLM-L6-v2 (pip-installed weights: 6 layers x 384, 12 heads) fine-tuned with
`recipes/glue/teacher.yaml` and its `per_task:` entry for SST-2 (3 epochs, lr 3e-5, batch 32, 64 tokens),
is reused by every student. The student is the same in every arm: 4 layers x 192 hidden, 6 heads,
feed-forward 768, randomly initialised (`--student_hidden_size` builds a new, narrower model from the
teacher's config: no teacher layer can be copied into it). Three arms, each with `--seeds` (42 43 44):

1. no teacher: `recipes/glue/baseline.yaml`, task loss only, `--baseline_epochs` (default: stage 1's
   epochs + stage 2's, so as many optimizer steps as a distilled arm when both stages read as many
   examples);
2. MiniLMv2: stage 1 `recipes/glue/minilm_v2.yaml` (query-query, key-key and value-value relations of the
   teacher's last layer, 48 relation heads, which divide 384 and 192; no labels), then stage 2
   `recipes/glue/tinybert_prediction.yaml` (soft cross-entropy on the teacher's logits, T=1) from the
   stage-1 student;
3. TinyBERT hidden terms: stage 1 `recipes/glue/tinybert_intermediate.yaml` with `--attention_weight 0`
   (embedding + hidden-state MSE through a learned 192 -> 384 projection; layer map 2,3,5,6, since the
   recipe's uniform map g(m) = m*N/M needs N a multiple of M and is refused for 6 -> 4), then the same
   stage 2. TinyBERT's attention term needs equal head counts: the script first runs that stage with the
   recipe's attention_weight 1 and prints the refusal.

The defaults fit 2 CPU cores shared with other jobs (there: 2.6 s per teacher training step, 1.45 s per
no-teacher student step): the teacher trains on 4,000 labelled examples (`--teacher_train_samples`), the
students on 1,000 (`--max_train_samples`) for 1 epoch per stage, a short run: raise them where CPU time
allows. Stage 1 uses no labels, so it may read more sentences (`--stage1_train_samples`) than stage 2
and the baseline; the step counts are printed. Every student
stage trains at `--student_learning_rate` (default 5e-4: the student starts from random weights, and at
1e-4, benchmarks/glue.py's rate for copied layers, the no-teacher student stayed at the majority class
after 126 steps; `recipe` keeps each recipe's own). All stages use 64 tokens and the full SST-2 dev set (872 sentences). The seed sets the
student's initialisation, the data order and the seeded subset of training examples.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/narrow_student.py --output_dir runs/narrow_student

Stages with a results.json in --output_dir are kept with --reuse, so a rerun with --reuse only prints
the tables.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Optional

import torch
import transformers

from hf_distill.assets import minilm_l6_v2_path
from hf_distill.cli import main as hf_distill
from hf_distill.runs import RESULTS_NAME
from hf_distill.runs import read_results as load_results
from reference_modes import train  # one `hf-distill train` stage, reused when its results.json exists

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = os.path.join(ROOT, "recipes", "glue")
DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "glue")
TASK = "sst2"
ARMS = {
    "baseline": "no teacher (task loss)",
    "minilm_v2": "MiniLMv2 relations, then soft targets",
    "tinybert_hidden": "TinyBERT hidden + embedding, then soft targets",
}


def show_attention_refusal(common: list[str], student: list[str], teacher: str, layer_map: str) -> str:
    """Runs TinyBERT's intermediate stage with the recipe's attention_weight 1 on the narrow student; returns
    the error line hf-distill prints (it must refuse: 6 student heads, 12 teacher heads)."""
    with tempfile.TemporaryDirectory() as scratch:
        command = ["train", os.path.join(RECIPES, "tinybert_intermediate.yaml"), *common, *student,
                   "--teacher_model_name_or_path", teacher, "--max_train_samples", "32", "--num_train_epochs", "1",
                   "--layer_map", layer_map,
                   "--output_dir", os.path.join(scratch, "refused")]
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            try:
                code = hf_distill(command)
            except Exception as error:  # noqa: BLE001 - shown, not hidden
                code = f"exception {type(error).__name__}: {error}"
    lines = [line for line in stderr.getvalue().splitlines() if "error" in line.lower()]
    return f"exit status {code}: " + (lines[-1] if lines else stderr.getvalue().strip()[-500:])


def mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f}" if values else "-"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=DEFAULT_DATA)
    parser.add_argument("--output_dir", default="runs/narrow_student")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--teacher_train_samples", type=int, default=4000,
                        help="Labelled examples of the teacher (default: %(default)s, as benchmarks/glue.py).")
    parser.add_argument("--max_train_samples", type=int, default=1000,
                        help="Labelled examples of the baseline and stage 2 (default: %(default)s).")
    parser.add_argument("--stage1_train_samples", type=int, default=1000,
                        help="Training sentences of stage 1, labels unused (default: %(default)s).")
    parser.add_argument("--max_seq_length", type=int, default=64)
    parser.add_argument("--stage1_epochs", type=float, default=1.0)
    parser.add_argument("--stage2_epochs", type=float, default=1.0)
    parser.add_argument("--baseline_epochs", type=float,
                        help="Default: --stage1_epochs + --stage2_epochs (the distilled arms' optimizer steps when "
                             "both stages read as many examples).")
    parser.add_argument("--student_learning_rate", default="5e-4",
                        help="Learning rate of every student stage; 'recipe' keeps each recipe's (default: %(default)s).")
    parser.add_argument("--hidden_size", type=int, default=192)
    parser.add_argument("--num_layers", type=int, default=4)
    parser.add_argument("--num_heads", type=int, default=6)
    parser.add_argument("--intermediate_size", type=int, default=768)
    parser.add_argument("--tinybert_layer_map", default="2,3,5,6",
                        help="Teacher layer (1-based) of each student layer in the TinyBERT arm: the recipe's uniform "
                             "map needs 6 to be a multiple of 4; this rounds g(m) = 1.5m up (default: %(default)s).")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s).")
    parser.add_argument("--reuse", action="store_true", help="Keep the stages that already have a results.json.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    baseline_epochs = (args.baseline_epochs if args.baseline_epochs is not None
                       else args.stage1_epochs + args.stage2_epochs)

    def common(seed: int, samples: int) -> list[str]:
        return ["--task_name", TASK, "--data_dir", args.data_dir, "--seed", str(seed), "--max_seq_length",
                str(args.max_seq_length), "--max_train_samples", str(samples), "--disable_tqdm", "true",
                "--save_strategy", "no", "--eval_strategy", "no", "--logging_steps", "50"]

    student = ["--student_num_layers", str(args.num_layers), "--student_hidden_size", str(args.hidden_size),
               "--student_intermediate_size", str(args.intermediate_size),
               "--student_num_attention_heads", str(args.num_heads)]
    student_lr = [] if args.student_learning_rate == "recipe" else ["--learning_rate", args.student_learning_rate]
    out = lambda *parts: os.path.join(args.output_dir, TASK, *parts)  # noqa: E731
    teacher = out("teacher")
    minutes: dict[str, Optional[float]] = {}
    # The teacher: its recipe's per-task settings only (64 tokens for SST-2 come from the recipe too).
    minutes["teacher"] = train("teacher.yaml", teacher,
                               ["--task_name", TASK, "--data_dir", args.data_dir, "--seed", "42",
                                "--max_train_samples", str(args.teacher_train_samples), "--disable_tqdm", "true",
                                "--save_strategy", "no", "--eval_strategy", "no", "--logging_steps", "50",
                                "--model_name_or_path", minilm_l6_v2_path()], args.reuse)
    refusal = None
    if "tinybert_hidden" in args.arms:
        refusal = show_attention_refusal(common(args.seeds[0], args.max_train_samples), student, teacher,
                                         args.tinybert_layer_map)
        print(f"\nTinyBERT's attention term on the narrow student (recipe's attention_weight 1): {refusal}\n",
              flush=True)
    for seed in args.seeds:
        labelled, unlabelled = common(seed, args.max_train_samples), common(seed, args.stage1_train_samples)
        for arm in args.arms:
            if arm == "baseline":
                minutes[f"{arm}/{seed}"] = train(
                    "baseline.yaml", out(f"{arm}-{seed}"),
                    [*labelled, "--model_name_or_path", teacher, *student, *student_lr,
                     "--num_train_epochs", str(baseline_epochs)], args.reuse)
                continue
            recipe, extra = (("minilm_v2.yaml", []) if arm == "minilm_v2"
                             else ("tinybert_intermediate.yaml", ["--attention_weight", "0",
                                                                  "--layer_map", args.tinybert_layer_map]))
            stage1 = out(f"{arm}-stage1-{seed}")
            minutes[f"{arm}-stage1/{seed}"] = train(
                recipe, stage1, [*unlabelled, "--teacher_model_name_or_path", teacher, *student, *student_lr,
                                 "--num_train_epochs", str(args.stage1_epochs), *extra], args.reuse)
            minutes[f"{arm}-stage2/{seed}"] = train(
                "tinybert_prediction.yaml", out(f"{arm}-{seed}"),
                [*labelled, "--teacher_model_name_or_path", teacher, "--student_model_name_or_path", stage1,
                 *student_lr, "--num_train_epochs", str(args.stage2_epochs)], args.reuse)
    ran = {key: value for key, value in minutes.items() if value is not None}
    print(f"\nwall minutes of the stages run now: {json.dumps(ran)}")
    print(f"wall minutes of this command: {(time.time() - started) / 60:.1f}")
    report(args, out, refusal)


def report(args, out, refusal: Optional[str]) -> None:
    model = platform.processor()
    if os.path.exists("/proc/cpuinfo"):
        model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                      if line.startswith("model name")), model)
    print(f"\nMachine: {model}, {os.cpu_count()} cores, torch {torch.__version__}, transformers "
          f"{transformers.__version__}, python {sys.version.split()[0]}, {args.threads} torch threads. "
          "SST-2 dev accuracy x100 (872 sentences).\n")
    teacher_result = load_results(out("teacher"))
    teacher = teacher_result["student"]["score"]
    if teacher is None:  # a results.json without the final evaluation: the distilled stages score the teacher too
        teacher = next(load_results(out(f"{arm}-{seed}"))["teacher"]["score"] for arm in args.arms if arm != "baseline"
                       for seed in args.seeds if os.path.isfile(os.path.join(out(f"{arm}-{seed}"), RESULTS_NAME)))
    recipe = teacher_result["recipe"]
    print(f"Teacher: all-MiniLM-L6-v2 fine-tuned, {teacher_result['data']['train_examples']:,} examples, "
          f"{recipe['num_train_epochs']:g} epochs, lr {recipe['learning_rate']:g}, batch "
          f"{recipe['per_device_train_batch_size']}, {teacher_result['data'].get('max_seq_length', 64)} tokens, "
          f"{teacher_result['train'].get('global_step')} steps, "
          f"{teacher_result['train']['train_runtime'] / 60:.1f} min of training: accuracy {100 * teacher:.2f}; "
          f"{teacher_result['student'].get('parameters', 0):,} parameters.\n")
    if refusal:
        print(f"TinyBERT's attention term (attention_weight 1), 6 student heads vs 12: {refusal}\n")
    summary = {"teacher": teacher, "arms": {}}
    settings = ["| arm | stage 1: examples, epochs, steps, lr | stage 2 / baseline: examples, epochs, steps, lr | "
                "student parameters | train minutes per seed (stage 1 + stage 2) |", "|---|---|---|---|---|"]
    header = ["| arm | " + " | ".join(f"seed {seed}" for seed in args.seeds) + " | mean ± std | retention |",
              "|---|" + "---|" * len(args.seeds) + "---|---|"]
    for arm in args.arms:
        scores, steps, times, params, last = [], [], [], None, None
        for seed in args.seeds:
            final = out(f"{arm}-{seed}")
            if not os.path.isfile(os.path.join(final, RESULTS_NAME)):
                scores.append(None)
                continue
            result = load_results(final)
            scores.append(100 * result["student"]["score"])
            params = result["student"].get("parameters")
            stage_minutes = [result["train"]["train_runtime"] / 60]
            first = None
            if arm != "baseline":
                first = load_results(out(f"{arm}-stage1-{seed}"))
                stage_minutes.insert(0, first["train"]["train_runtime"] / 60)
            steps.append((first["train"].get("global_step") if first else None, result["train"].get("global_step")))
            times.append(" + ".join(f"{m:.1f}" for m in stage_minutes))
            last = (first, result)
        done = [score for score in scores if score is not None]
        cells = [f"{score:.2f}" if score is not None else "not run" for score in scores]
        retention = f"{statistics.mean(done) / (100 * teacher):.1%}" if done else "-"
        header.append(f"| {ARMS[arm]} | " + " | ".join(cells) + f" | {mean_std(done)} | {retention} |")
        summary["arms"][arm] = {"scores": dict(zip(map(str, args.seeds), scores)), "retention":
                                (statistics.mean(done) / (100 * teacher) if done else None), "steps": steps,
                                "train_minutes": times}
        if last:
            first, result = last

            def describe(res) -> str:
                rec, data = res["recipe"], res["data"]
                return (f"{data['train_examples']:,}, {rec['num_train_epochs']:g}, {res['train'].get('global_step')}, "
                        f"{rec['learning_rate']:g}")
            settings.append(f"| {ARMS[arm]} | {describe(first) if first else '-'} | {describe(result)} | "
                            f"{params:,} | {'; '.join(times)} |" if params else "")
    print("Settings (the last seed's; every seed has the same counts):\n")
    print("\n".join(settings))
    print(f"\nNarrow student ({args.num_layers} layers x {args.hidden_size}, {args.num_heads} heads, "
          f"feed-forward {args.intermediate_size}, random init); teacher {100 * teacher:.2f}; "
          "mean ± sample std over seeds; retention = mean / teacher:\n")
    print("\n".join(header))
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "summary.json"), "w") as file:
        json.dump(summary, file, indent=2)


if __name__ == "__main__":
    main()
