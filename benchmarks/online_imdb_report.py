"""Prints the tables of the online benchmarks from their runs' results.json, with standard errors.

    python benchmarks/online_imdb_report.py [DML_OUT_DIR [SD_OUT_DIR]]
    python benchmarks/online_imdb_report.py --sd_dir runs/online_exits

The first form reads `online_imdb.sh` (DML, default runs/online_bench) and `online_imdb_sd_longer.sh`
(default runs/online_bench_sd). `--sd_dir` prints the self-distillation tables of every run in a folder
written by `online_imdb_exits.sh` (each subfolder with a results.json), labelled by its recipe.
`--dml_dir` prints the DML table of a folder written by `online_imdb_dml.sh`.

The standard error of an accuracy p on n examples is sqrt(p·(1 − p)/n) (binomial); a difference
between two runs on the same examples has a standard error of at most about √2 times that.
"""

import json
import math
import os
import sys


def load(folder: str) -> dict:
    with open(os.path.join(folder, "results.json")) as file:
        return json.load(file)


def cell(p: float, n: int) -> str:
    return f"{100 * p:.2f} ± {100 * math.sqrt(p * (1 - p) / n):.2f}"


def print_dml(out: str) -> None:
    """The DML table of a folder with `dml`, `alone_024` and `alone_135` runs."""
    dml = load(os.path.join(out, "dml"))
    split, metrics = next(iter(dml["metrics"].items()))
    n = dml["data"]["eval_examples"][split]
    print(f"Deep mutual learning, IMDB {split}, {n} reviews, accuracy % ± standard error\n")
    print("| model | trained alone | trained with deep mutual learning |\n|---|---|---|")
    for index, name in enumerate(("alone_024", "alone_135")):
        alone = load(os.path.join(out, name))
        layers = ",".join(map(str, dml["peers"][index]["layers"]))
        print(f"| peer {index} (MiniLM layers {layers}) | {cell(alone['student']['score'], n)} | "
              f"{cell(metrics[f'{split}_peer{index}_accuracy'], n)} |")
    print(f"| ensemble of the two peers | - | {cell(metrics[f'{split}_ensemble_accuracy'], n)} |")
    print(f"\nDML train time {dml['train']['train_runtime']:.0f} s; alone: "
          + ", ".join(f"{load(os.path.join(out, name))['train']['train_runtime']:.0f} s" for name in ("alone_024", "alone_135")))


def main(out: str, sd_out: str) -> None:
    print_dml(out)
    print("\nSelf-distillation, per-exit accuracy % ± standard error\n")
    runs = {"taught by the deep exit (kd 1, hint 0.1)": "sd_taught", "labels only (kd 0, hint 0)": "sd_labels_only"}
    results = {label: load(os.path.join(sd_out, name)) for label, name in runs.items()}
    first = next(iter(results.values()))
    layers = list(first["per_exit_accuracy"])
    n = first["data"]["eval_examples"]
    print("| run | " + " | ".join(f"exit @ layer {layer}" for layer in layers) + " |")
    print("|---|" + "---|" * len(layers))
    for label, result in results.items():
        print(f"| {label} | " + " | ".join(cell(result["per_exit_accuracy"][layer], n) for layer in layers) + " |")
    for label, name in runs.items():
        with open(os.path.join(sd_out, name, "early_exit_curve.json")) as file:
            curve = json.load(file)
        print(f"\nEarly-exit sweep, {label}: {curve['examples']} {curve['split']} reviews, one at a time, 1 thread\n")
        exits = list(curve["rows"][0]["exit_fractions"])
        print(f"| {curve['criterion']} threshold | accuracy | mean layers | ms / example (mean) | median ms | "
              + " | ".join(f"exit @{layer}" for layer in exits) + " |")
        print("|---|" + "---|" * (4 + len(exits)))
        for row in curve["rows"]:
            name = "full" if row["threshold"] is None else f"{row['threshold']:g}"
            print(f"| {name} | {cell(row['accuracy'], curve['examples'])} | {row['mean_layers']:.2f} | "
                  f"{row['ms_per_example']:.1f} | {row['median_ms']:.1f} | "
                  + " | ".join(f"{100 * row['exit_fractions'][layer]:.0f}%" for layer in exits) + " |")


def describe(result: dict) -> str:
    recipe = result["recipe"]
    teaching = (f"taught by the deep exit (kd {recipe.get('kd_weight'):g}, hint {recipe.get('hidden_weight'):g})"
                if recipe.get("kd_weight") or recipe.get("hidden_weight") else "labels only")
    return f"{recipe.get('exit_pooling', 'first')} pooling, {teaching}"


def print_sd_folder(folder: str) -> None:
    names = sorted(name for name in os.listdir(folder) if os.path.isfile(os.path.join(folder, name, "results.json")))
    results = {name: load(os.path.join(folder, name)) for name in names}
    first = next(iter(results.values()))
    layers = list(first["per_exit_accuracy"])
    n = first["data"]["eval_examples"]
    print(f"Self-distillation, per-exit accuracy % ± standard error ({n} validation reviews)\n")
    print("| run | exits | " + " | ".join(f"exit @ layer {layer}" for layer in layers) + " | train s |")
    print("|---|---|" + "---|" * len(layers) + "---|")
    for name, result in results.items():
        print(f"| {name} | {describe(result)} | "
              + " | ".join(cell(result["per_exit_accuracy"][layer], n) for layer in layers)
              + f" | {result['train']['train_runtime']:.0f} |")
    for name in names:
        with open(os.path.join(folder, name, "early_exit_curve.json")) as file:
            curve = json.load(file)
        print(f"\nEarly-exit sweep, {name} ({describe(results[name])}): {curve['examples']} {curve['split']} "
              "reviews, one at a time, 1 thread\n")
        exits = list(curve["rows"][0]["exit_fractions"])
        full = curve["rows"][0]
        print(f"| {curve['criterion']} threshold | accuracy | mean layers | ms / example (mean) | median ms | "
              "time vs full | " + " | ".join(f"exit @{layer}" for layer in exits) + " |")
        print("|---|" + "---|" * (5 + len(exits)))
        for row in curve["rows"]:
            label = "full" if row["threshold"] is None else f"{row['threshold']:g}"
            print(f"| {label} | {cell(row['accuracy'], curve['examples'])} | {row['mean_layers']:.2f} | "
                  f"{row['ms_per_example']:.1f} | {row['median_ms']:.1f} | "
                  f"{row['ms_per_example'] / full['ms_per_example']:.2f} | "
                  + " | ".join(f"{100 * row['exit_fractions'][layer]:.0f}%" for layer in exits) + " |")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--sd_dir":
        print_sd_folder(sys.argv[2])
        sys.exit(0)
    if len(sys.argv) == 3 and sys.argv[1] == "--dml_dir":
        print_dml(sys.argv[2])
        sys.exit(0)
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/online_bench",
         sys.argv[2] if len(sys.argv) > 2 else "runs/online_bench_sd")
