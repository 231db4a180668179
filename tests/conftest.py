"""Tiny models and data built in code; every test runs offline."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")
# Help texts cached by the command line go to a folder of this test session, not the user's cache.
if "HF_DISTILL_CACHE" not in os.environ:
    import tempfile

    os.environ["HF_DISTILL_CACHE"] = tempfile.mkdtemp(prefix="hf-distill-test-cache-")

import pytest
import torch
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, TrainerCallback

from hf_distill import DistillationConfig


# Every loss term on, with distinct weights, so a wrong weight or a missing term shows in the total.
ALL_TERMS = dict(task_weight=0.3, kd_weight=0.7, cosine_weight=1.1, hidden_weight=1.3, embedding_weight=1.7,
                 attention_weight=0.9)


def offline_config(output_dir, **overrides) -> DistillationConfig:
    """A `DistillationConfig` for tests: CPU, seed 0, log every step, no saving, reporting or progress bar."""
    values = dict(output_dir=str(output_dir), report_to=[], use_cpu=True, save_strategy="no", logging_steps=1,
                  seed=0, disable_tqdm=True)
    values.update(overrides)
    return DistillationConfig(**values)


def tiny_bert_config(**overrides) -> BertConfig:
    values = dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        attn_implementation="eager",
    )
    values.update(overrides)
    return BertConfig(**values)


def tiny_teacher(seed: int = 0, **overrides) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(tiny_bert_config(**overrides)).eval()


def save_pickle_only(model, folder) -> None:
    """Saves `model` with its weights as a pickle (`pytorch_model.bin`) and no safetensors file.

    transformers 5 writes safetensors whatever `safe_serialization` says, so the pickle file is written here.
    """
    model.save_pretrained(folder)
    os.remove(os.path.join(folder, "model.safetensors"))
    torch.save(model.state_dict(), os.path.join(folder, "pytorch_model.bin"))


def random_classification_dataset(n: int = 32, length: int = 10, seed: int = 0, variable_length: bool = False,
                                  num_labels: int = 2, vocab_size: int = 99) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    rows = {"input_ids": [], "attention_mask": [], "labels": []}
    for _ in range(n):
        size = int(torch.randint(3, length + 1, (1,), generator=g)) if variable_length else length
        rows["input_ids"].append(torch.randint(5, vocab_size, (size,), generator=g).tolist())
        rows["attention_mask"].append([1] * size)
        rows["labels"].append(int(torch.randint(0, num_labels, (1,), generator=g)))
    return Dataset.from_dict(rows)


def padded_batch(n: int = 4, length: int = 9, seed: int = 0) -> dict:
    """`n` examples of random lengths up to `length`, padded by `pad_collator`; at least one is padded."""
    dataset = random_classification_dataset(n, length=length, variable_length=True, seed=seed)
    batch = pad_collator([dataset[i] for i in range(n)])
    assert (batch["attention_mask"] == 0).any()
    return batch


def pad_collator(features):
    """Pads to the longest sequence of the batch with token 0."""
    length = max(len(f["input_ids"]) for f in features)
    batch = {
        key: torch.tensor([f[key] + [0] * (length - len(f[key])) for f in features])
        for key in ("input_ids", "attention_mask")
    }
    batch["labels"] = torch.tensor([f["labels"] for f in features])
    return batch


class StopAfter(TrainerCallback):
    """Simulates an interruption: training stops after `step` optimizer steps (after their checkpoint)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


@pytest.fixture
def teacher():
    return tiny_teacher()
