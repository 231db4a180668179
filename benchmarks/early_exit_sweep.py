"""Re-measures the early-exit curve of a saved self-distillation run with other thresholds.

    python benchmarks/early_exit_sweep.py MODEL_DIR --criterion max_prob --thresholds 0.95,0.9,0.8,0.7,0.6 \
        [--task_name imdb --max_eval_samples 500 --sweep_samples 200 --seed 42]

Loads `EarlyExitModel.from_pretrained(MODEL_DIR)` (backbone + `early_exit_heads.safetensors`), the
task's evaluation split as the run saw it, and prints the per-exit accuracy (full forward, all
evaluation examples) and the sweep table (one example at a time, 1 thread, on the first
`--sweep_samples`). Writes `early_exit_curve_<criterion>.json` and `.png` into MODEL_DIR.
"""

import argparse
import json
import os

import torch
from transformers import AutoTokenizer, DataCollatorWithPadding

from hf_distill.tasks.arguments import DataArguments
from hf_distill.online.early_exit import EarlyExitModel, early_exit_sweep, format_sweep_table, plot_sweep
from hf_distill.tasks.data import load_task_data


def per_exit_accuracy(model, dataset, tokenizer, batch_size=64):
    collate = DataCollatorWithPadding(tokenizer)
    correct = torch.zeros(len(model.all_exit_layers))
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            labels = batch.pop("labels")
            logits = model(**batch)["exit_logits"]
            correct += torch.tensor([float((z.argmax(-1) == labels).sum()) for z in logits])
    return {layer: float(c) / len(dataset) for layer, c in zip(model.all_exit_layers, correct)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--criterion", default="max_prob", choices=["entropy", "max_prob"])
    parser.add_argument("--thresholds", default="0.95,0.9,0.85,0.8,0.7,0.6")
    parser.add_argument("--task_name", default="imdb")
    parser.add_argument("--max_eval_samples", type=int, default=500)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--sweep_samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    data_args = DataArguments(task_name=args.task_name, max_eval_samples=args.max_eval_samples,
                              max_train_samples=1, max_seq_length=args.max_seq_length)
    dev = next(iter(load_task_data(data_args, tokenizer, seed=args.seed).evaluation.values()))
    model = EarlyExitModel.from_pretrained(args.model_dir).eval()
    accuracy = per_exit_accuracy(model, dev, tokenizer)
    print(f"Per-exit accuracy ({len(dev)} examples): "
          + ", ".join(f"layer {layer}: {100 * value:.2f}" for layer, value in accuracy.items()))
    sweep_set = dev.select(range(min(args.sweep_samples, len(dev))))
    thresholds = [float(value) for value in args.thresholds.split(",")]
    rows = early_exit_sweep(model, sweep_set, thresholds, args.criterion)
    print(f"\nEarly-exit sweep ({len(sweep_set)} examples, one at a time, 1 thread):\n"
          + format_sweep_table(rows, args.criterion))
    stem = os.path.join(args.model_dir, f"early_exit_curve_{args.criterion}")
    with open(stem + ".json", "w") as file:
        json.dump({"criterion": args.criterion, "examples": len(sweep_set), "per_exit_accuracy": accuracy,
                   "rows": rows}, file, indent=2)
    print("Plot:", plot_sweep(rows, stem + ".png", title=f"{args.model_dir}: early exit ({args.criterion})"))


if __name__ == "__main__":
    main()
