"""The architecture × loss-term table of docs/architectures.md, from real one-step runs on tiny random models.

For every architecture (a tiny random config built here, no Hub) and every setup, one training step
of `DistillationTrainer`; a cell says

- `works`: the step ran and every term that is on was logged under `loss_<name>`, finite;
- `refused: <reason>`: `create_student` or the trainer refused the setup before the first step;
- `CRASH: <error>`: anything else (the script then exits with status 1).

    HF_HUB_OFFLINE=1 python benchmarks/architecture_table.py

prints the Markdown table and the versions it ran on. `--quiet` hides transformers' warnings.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import math
import os
import sys
import tempfile
import warnings
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import transformers  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import (  # noqa: E402
    AlbertConfig,
    AlbertForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    DebertaConfig,
    DebertaForSequenceClassification,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    ElectraConfig,
    ElectraForSequenceClassification,
    ModernBertConfig,
    ModernBertForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
)

from hf_distill import DistillationConfig, DistillationTrainer, create_student  # noqa: E402

VOCAB, LAYERS, HEADS, WIDTH, FFN, NARROW = 99, 4, 4, 32, 64, 16
NARROW_HEADS, RELATION_HEADS = 2, 4  # MiniLMv2: another head count than the teacher's; 4 divides 16 and 32
TOKENS = dict(pad_token_id=1, bos_token_id=2, eos_token_id=3)
COMMON = dict(vocab_size=VOCAB, num_hidden_layers=LAYERS, num_attention_heads=HEADS, hidden_size=WIDTH,
              intermediate_size=FFN, max_position_embeddings=64, attn_implementation="eager", **TOKENS)


def tiny_models() -> dict[str, Callable[[], torch.nn.Module]]:
    """Architecture name -> a function building a tiny random sequence classifier of it (2 labels)."""
    return {
        "BERT": lambda: BertForSequenceClassification(BertConfig(**COMMON)),
        "RoBERTa": lambda: RobertaForSequenceClassification(RobertaConfig(**COMMON)),
        "XLM-R": lambda: XLMRobertaForSequenceClassification(XLMRobertaConfig(**COMMON)),
        "ELECTRA": lambda: ElectraForSequenceClassification(ElectraConfig(embedding_size=24, **COMMON)),
        "DistilBERT": lambda: DistilBertForSequenceClassification(DistilBertConfig(
            vocab_size=VOCAB, n_layers=LAYERS, n_heads=HEADS, dim=WIDTH, hidden_dim=FFN, max_position_embeddings=64,
            attn_implementation="eager", pad_token_id=1)),
        "DeBERTa-v2": lambda: DebertaV2ForSequenceClassification(DebertaV2Config(
            relative_attention=True, pos_att_type=["p2c", "c2p"], max_relative_positions=8, conv_kernel_size=3,
            norm_rel_ebd="layer_norm", **COMMON)),
        "DeBERTa-v3": lambda: DebertaV2ForSequenceClassification(DebertaV2Config(
            relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=8, max_relative_positions=32,
            share_att_key=True, position_biased_input=False, norm_rel_ebd="layer_norm", type_vocab_size=0,
            **COMMON)),
        "DeBERTa (v1)": lambda: DebertaForSequenceClassification(DebertaConfig(
            relative_attention=True, pos_att_type=["p2c", "c2p"], max_relative_positions=8, **COMMON)),
        "ModernBERT": lambda: ModernBertForSequenceClassification(ModernBertConfig(
            local_attention=4, global_attn_every_n_layers=3, cls_token_id=2, sep_token_id=3, **COMMON)),
        "ALBERT": lambda: AlbertForSequenceClassification(AlbertConfig(embedding_size=24, **COMMON)),
    }


# Column -> (how the student is built (`build_student`), the DistillationConfig options of the step: its loss
# weights, and `relation_heads` for MiniLMv2). The terms that are on are the `<name>_weight` options above 0.
SETUPS = {
    "copy layers: kd + hidden + embedding + cosine": (
        "copy", dict(kd_weight=1.0, hidden_weight=1.0, embedding_weight=1.0, cosine_weight=1.0)),
    "narrow student: kd + hidden + embedding + cosine": (
        "narrow", dict(kd_weight=1.0, hidden_weight=1.0, embedding_weight=1.0, cosine_weight=1.0)),
    "attention (copied layers)": ("copy", dict(attention_weight=1.0)),
    "attention (narrow student)": ("narrow", dict(attention_weight=1.0)),
    "MiniLM v1 relations (attention + value relation), narrow student": (
        "narrow", dict(attention_relation_weight=1.0, value_relation_weight=1.0)),
    f"MiniLMv2 relations (query/key/value, relation_heads={RELATION_HEADS}), "
    f"narrow student with {NARROW_HEADS} heads": (
        "narrow, other heads", dict(query_relation_weight=1.0, key_relation_weight=1.0, value_relation_weight=1.0,
                                    relation_heads=RELATION_HEADS)),
}


def build_student(teacher: torch.nn.Module, kind: str) -> torch.nn.Module:
    """Layers 1 and 3 of the 4 (TinyBERT's uniform map targets them), or a 2-layer student of width 16 with the
    teacher's 4 heads (`"narrow"`) or 2 (`"narrow, other heads"`)."""
    if kind == "copy":
        return create_student(teacher, layers=[1, 3])
    heads = NARROW_HEADS if kind == "narrow, other heads" else None
    return create_student(teacher, num_layers=2, hidden_size=NARROW, num_attention_heads=heads)


def dataset(pad_token_id: int) -> tuple[Dataset, Callable]:
    """8 random examples of 6 to 12 tokens (padding included in every batch), and a padding collator."""
    generator = torch.Generator().manual_seed(0)
    rows = {"input_ids": [], "labels": []}
    for _ in range(8):
        length = int(torch.randint(6, 13, (1,), generator=generator))
        rows["input_ids"].append(torch.randint(5, VOCAB, (length,), generator=generator).tolist())
        rows["labels"].append(int(torch.randint(0, 2, (1,), generator=generator)))

    def collate(features):
        longest = max(len(f["input_ids"]) for f in features)
        ids = [f["input_ids"] + [pad_token_id] * (longest - len(f["input_ids"])) for f in features]
        mask = [[1] * len(f["input_ids"]) + [0] * (longest - len(f["input_ids"])) for f in features]
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask),
                "labels": torch.tensor([f["labels"] for f in features])}

    return Dataset.from_dict(rows), collate


def first_sentence(message: str) -> str:
    """The reason of a refusal: its text up to the first sentence end, on one line."""
    text = " ".join(str(message).split())
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def run_cell(make_teacher: Callable[[], torch.nn.Module], kind: str, options: dict[str, float]) -> str:
    """One training step of one setup: `works`, `refused: <reason>` or `CRASH: <error>`."""
    torch.manual_seed(0)
    teacher = make_teacher().eval()
    with tempfile.TemporaryDirectory() as folder:
        try:
            student = build_student(teacher, kind)
            args = DistillationConfig(
                output_dir=folder, report_to=[], use_cpu=True, save_strategy="no", logging_steps=1, max_steps=1,
                per_device_train_batch_size=4, seed=0, disable_tqdm=True, learning_rate=1e-3, task_weight=0.0,
                **{"kd_weight": 0.0, **options})
            data, collate = dataset(teacher.config.pad_token_id)
            trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=data,
                                          data_collator=collate)
        except ValueError as error:
            return f"refused: {first_sentence(error)}"
        except Exception as error:  # noqa: BLE001 (a crash is a result of this table)
            return f"CRASH: {type(error).__name__}: {first_sentence(error)}"
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # Trainer prints its metrics
                trainer.train()
        except Exception as error:  # noqa: BLE001
            return f"CRASH: {type(error).__name__}: {first_sentence(error)}"
    logged = next((entry for entry in trainer.state.log_history if "loss" in entry), {})
    missing = [name for name, value in options.items() if name.endswith("_weight") and value > 0
               and not math.isfinite(logged.get(f"loss_{name[: -len('_weight')]}", float("nan")))]
    return f"CRASH: no finite {', '.join(missing)} logged" if missing else "works"


def table(quiet: bool = False) -> tuple[str, bool]:
    """The Markdown table, and whether any cell crashed."""
    lines = ["| architecture | " + " | ".join(SETUPS) + " |", "|---" * (len(SETUPS) + 1) + "|"]
    crashed = False
    for name, make in tiny_models().items():
        cells = []
        for kind, options in SETUPS.values():
            with warnings.catch_warnings():
                if quiet:
                    warnings.simplefilter("ignore")
                cell = run_cell(make, kind, options)
            crashed |= cell.startswith("CRASH")
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines), crashed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quiet", action="store_true", help="hide transformers' warnings")
    quiet = parser.parse_args().quiet
    if quiet:
        transformers.logging.set_verbosity_error()
        logging.getLogger("hf_distill").setLevel(logging.ERROR)
    text, crashed = table(quiet)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}\n")
    print(text)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
