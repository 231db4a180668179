"""Soft targets across vocabularies: a MiniLM-L6 teacher (WordPiece, 30,522 tokens) and a student with a
vocabulary of its own, built here, on real SST-2 data.

1. Teacher: all-MiniLM-L6-v2 (pip-installed weights) fine-tuned on SST-2 with `recipes/glue/teacher.yaml`
   (`--max_train_samples`, default 4,000 labelled sentences), or a fine-tuned folder given as `--teacher`.
2. The student's tokenizer: a WordPiece vocabulary of `--student_vocab` tokens (default 8,000) trained here
   (`tokenizers`) on SST-2's training sentences. It shares no ids with the teacher's: the two tokenize
   the same text into different tokens, and mostly into different numbers of tokens (printed).
3. The student: a randomly initialised BERT of 4 layers × 192 wide, 6 heads, with that vocabulary.
   Three arms, `--seeds` each, the same optimiser and epochs:
   - `no teacher`: the task loss on the labelled sentences;
   - `no teacher, same steps`: the same, for as many optimizer steps as the distilled arms take (more epochs);
   - `soft targets (cached)`: 0.5·task + 0.5·T²·KL at T=2 on the labelled sentences plus `--transfer`
     (default 8,000) more SST-2 training sentences without their labels; the teacher's logits were
     computed once from the teacher's own tokens (`precompute_teacher_outputs` on `add_teacher_inputs`'s
     columns), so the student never sees a teacher token;
   - `soft targets + pooled (live)`: the same, with the teacher run live on its own tokens and the pooled
     representation term (`pooled_weight=1`, through a 192 → 384 projection). It runs the teacher at every
     step, so it runs for the first `--live_seeds` seeds only (default 1).

Printed: dev accuracy per seed, mean ± std, retention (student / teacher), and the student's agreement
with the teacher's predictions on the dev set; the first and last logged `loss_kd` of each distilled run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/teacher_tokenizer.py --output_dir runs/teacher_tokenizer
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch
import transformers
from datasets import Dataset
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    DataCollatorWithPadding,
    PreTrainedTokenizerFast,
)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hf_distill import DistillationConfig, DistillationTrainer, add_teacher_inputs, precompute_teacher_outputs  # noqa: E402
from hf_distill.assets import minilm_l6_v2_path  # noqa: E402
from hf_distill.cli import main as hf_distill  # noqa: E402
from hf_distill.tasks.glue import read_glue_tsv  # noqa: E402
from hf_distill.teacher_inputs import teacher_dataset  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "glue")
ARMS = ("no teacher", "no teacher, same steps", "soft targets (cached)", "soft targets + pooled (live)")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    flags = open("/proc/cpuinfo").read()
                    vnni = "avx512_vnni" in flags
                    return line.split(":", 1)[1].strip() + (" (AVX512-VNNI)" if vnni else " (no AVX512-VNNI)")
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def train_student_tokenizer(sentences: list[str], vocab_size: int, folder: str) -> PreTrainedTokenizerFast:
    """A lower-cased WordPiece tokenizer with BERT's special tokens, trained on `sentences`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(sentences, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tokenizer.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def student_model(vocab_size: int, seed: int, id2label: dict[int, str]) -> BertForSequenceClassification:
    """4 layers x 192, 6 heads, randomly initialised, with the teacher's label order."""
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size, hidden_size=192, num_hidden_layers=4, num_attention_heads=6,
                        intermediate_size=768, max_position_embeddings=128, num_labels=len(id2label),
                        id2label=id2label, label2id={label: index for index, label in id2label.items()})
    return BertForSequenceClassification(config)


def predictions(model, dataset: Dataset, tokenizer, batch_size: int = 128) -> list[int]:
    from torch.utils.data import DataLoader

    model.eval()
    collate = DataCollatorWithPadding(tokenizer)
    out = []
    with torch.no_grad():
        for batch in DataLoader(dataset.select_columns(["input_ids", "attention_mask"]), batch_size=batch_size,
                                collate_fn=collate):
            out.extend(model(**batch).logits.argmax(-1).tolist())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=DEFAULT_DATA)
    parser.add_argument("--output_dir", default="runs/teacher_tokenizer")
    parser.add_argument("--teacher", help="A fine-tuned SST-2 teacher folder to reuse (default: fine-tune MiniLM-L6).")
    parser.add_argument("--max_train_samples", type=int, default=4000, help="Labelled sentences (default: %(default)s).")
    parser.add_argument("--transfer", type=int, default=8000,
                        help="More SST-2 sentences, without labels, for the distilled arms (default: %(default)s).")
    parser.add_argument("--student_vocab", type=int, default=8000)
    parser.add_argument("--max_seq_length", type=int, default=64)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--learning_rate", type=float, default=5e-4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--live_seeds", type=int, default=1, help="Seeds of the live arm (default: %(default)s).")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.output_dir, exist_ok=True)
    started = time.time()

    rows = read_glue_tsv(os.path.join(args.data_dir, "SST-2", "train.tsv"), "sst2")
    dev_rows = read_glue_tsv(os.path.join(args.data_dir, "SST-2", "dev.tsv"), "sst2")
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0)).tolist()
    labelled = [rows[i] for i in order[:args.max_train_samples]]
    transfer = [rows[i] for i in order[args.max_train_samples:args.max_train_samples + args.transfer]]

    teacher_dir = args.teacher or os.path.join(args.output_dir, "teacher")
    if not os.path.isfile(os.path.join(teacher_dir, "results.json")) and not args.teacher:
        start = time.time()
        code = hf_distill(["train", os.path.join(ROOT, "recipes", "glue", "teacher.yaml"), "--task_name", "sst2",
                           "--data_dir", args.data_dir, "--max_train_samples", str(args.max_train_samples),
                           "--model_name_or_path", minilm_l6_v2_path(), "--output_dir", teacher_dir,
                           "--save_strategy", "no", "--eval_strategy", "no", "--report_to", "none"])
        if code != 0:
            raise SystemExit("teacher fine-tuning failed")
        print(f"teacher: {(time.time() - start) / 60:.1f} min", flush=True)
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir).eval()
    teacher_tokenizer = AutoTokenizer.from_pretrained(teacher_dir)

    student_tokenizer = train_student_tokenizer([r["sentence"] for r in rows], args.student_vocab,
                                                os.path.join(args.output_dir, "student_tokenizer"))
    sample = dev_rows[0]["sentence"]
    shared = set(student_tokenizer.get_vocab().items()) & set(teacher_tokenizer.get_vocab().items())
    print(f"student vocabulary {len(student_tokenizer)}, teacher {len(teacher_tokenizer)}; "
          f"(token, id) pairs in common: {len(shared)}")
    print("student:", student_tokenizer.tokenize(sample))
    print("teacher:", teacher_tokenizer.tokenize(sample))

    def tokenized(items: list[dict], with_labels: bool) -> Dataset:
        data = Dataset.from_dict({"sentence": [r["sentence"] for r in items],
                                  "labels": [r["label"] if with_labels else -100 for r in items]})
        data = data.map(lambda b: student_tokenizer(b["sentence"], truncation=True, max_length=args.max_seq_length),
                        batched=True)
        return add_teacher_inputs(data, teacher_tokenizer, ["sentence"], max_length=args.max_seq_length)

    train_labelled, train_transfer = tokenized(labelled, True), tokenized(transfer, False)
    dev = tokenized(dev_rows, True)
    lengths = [(len(a), len(b)) for a, b in zip(train_labelled["input_ids"], train_labelled["teacher_input_ids"])]
    print(f"training sentences whose two tokenizations differ in length: "
          f"{sum(a != b for a, b in lengths) / len(lengths):.1%}; mean tokens student "
          f"{statistics.mean(a for a, _ in lengths):.1f}, teacher {statistics.mean(b for _, b in lengths):.1f}")

    from datasets import concatenate_datasets

    distil_train = concatenate_datasets([train_labelled, train_transfer]).remove_columns(["sentence"])
    start = time.time()
    cached_train = precompute_teacher_outputs(teacher, distil_train, tokenizer=teacher_tokenizer)
    print(f"teacher logits of {len(cached_train)} sentences from its own tokens: {time.time() - start:.0f} s")
    gold = dev["labels"]
    teacher_pred = predictions(teacher, teacher_dataset(dev), teacher_tokenizer)
    teacher_accuracy = 100 * sum(p == g for p, g in zip(teacher_pred, gold)) / len(gold)
    print(f"teacher dev accuracy: {teacher_accuracy:.2f}", flush=True)

    results: dict[str, dict[int, dict]] = {arm: {} for arm in args.arms}
    for position, seed in enumerate(args.seeds):
        for arm in args.arms:
            if arm.endswith("(live)") and position >= args.live_seeds:
                continue
            start = time.time()
            student = student_model(len(student_tokenizer), seed, dict(teacher.config.id2label))
            folder = arm.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "").replace("+", "and")
            common = dict(output_dir=os.path.join(args.output_dir, f"{folder}-{seed}"), report_to=[],
                          save_strategy="no", eval_strategy="no", logging_steps=50, seed=seed, disable_tqdm=True,
                          num_train_epochs=args.epochs, learning_rate=args.learning_rate, warmup_ratio=0.1,
                          weight_decay=0.01, per_device_train_batch_size=32, overwrite_output_dir=True)
            if arm.startswith("no teacher"):
                if arm.endswith("same steps"):
                    common["num_train_epochs"] = args.epochs * len(distil_train) / len(train_labelled)
                config = DistillationConfig(task_weight=1.0, kd_weight=0.0, **common)
                trainer = DistillationTrainer(model=student, args=config, processing_class=student_tokenizer,
                                              train_dataset=train_labelled.remove_columns(["sentence"]))
            elif arm == "soft targets (cached)":
                config = DistillationConfig(task_weight=0.5, kd_weight=0.5, temperature=2.0, **common)
                trainer = DistillationTrainer(model=student, args=config, processing_class=student_tokenizer,
                                              train_dataset=cached_train)
            else:
                config = DistillationConfig(task_weight=0.5, kd_weight=0.5, pooled_weight=1.0, temperature=2.0,
                                            **common)
                trainer = DistillationTrainer(model=student, teacher_model=teacher, args=config,
                                              processing_class=student_tokenizer, train_dataset=distil_train,
                                              teacher_processing_class=teacher_tokenizer)
            trainer.train()
            pred = predictions(student, dev, student_tokenizer)
            accuracy = 100 * sum(p == g for p, g in zip(pred, gold)) / len(gold)
            agreement = 100 * sum(p == t for p, t in zip(pred, teacher_pred)) / len(gold)
            kd = [entry["loss_kd"] for entry in trainer.state.log_history if "loss_kd" in entry]
            results[arm][seed] = {"accuracy": accuracy, "agreement": agreement, "steps": trainer.state.global_step,
                                  "kd_first": kd[0] if kd else None, "kd_last": kd[-1] if kd else None,
                                  "minutes": round((time.time() - start) / 60, 1)}
            print(arm, seed, results[arm][seed], flush=True)
            with open(os.path.join(args.output_dir, "results.json"), "w") as file:
                json.dump({"teacher_accuracy": teacher_accuracy, "results": results}, file, indent=2)

    print(f"\nMachine: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}, transformers "
          f"{transformers.__version__}; {(time.time() - started) / 60:.0f} min in all.")
    print(f"SST-2 dev (872 sentences); teacher all-MiniLM-L6-v2 fine-tuned: {teacher_accuracy:.2f}. Student 4L x 192, "
          f"vocabulary of {len(student_tokenizer)} trained here; {args.epochs:g} epochs, lr {args.learning_rate:g}.\n")
    header = "| arm | train sentences (labelled) | steps | " + " | ".join(f"seed {s}" for s in args.seeds)
    print(header + " | mean ± std | retention | agreement with the teacher | loss_kd first → last |")
    print("|---" * (len(args.seeds) + 7) + "|")
    for arm in args.arms:
        runs = [results[arm][s] for s in args.seeds if s in results[arm]]
        seeds_run = [s for s in args.seeds if s in results[arm]]
        scores = [r["accuracy"] for r in runs]
        mean, std = statistics.mean(scores), statistics.stdev(scores) if len(scores) > 1 else 0.0
        size = len(train_labelled) if arm.startswith("no teacher") else len(distil_train)
        kd = ", ".join(f"{r['kd_first']:.3f} → {r['kd_last']:.3f}" for r in runs if r["kd_first"] is not None) or "-"
        print(f"| {arm} | {size:,} ({len(train_labelled):,}) | {runs[0]['steps']} | "
              + " | ".join(f"{results[arm][s]['accuracy']:.2f}" if s in seeds_run else "-" for s in args.seeds)
              + f" | {mean:.2f} ± {std:.2f} | {100 * mean / teacher_accuracy:.1f}% | "
              f"{statistics.mean(r['agreement'] for r in runs):.1f}% | {kd} |")


if __name__ == "__main__":
    main()
