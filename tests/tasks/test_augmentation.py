"""TinyBERT's data augmentation: masked-LM candidates, replacement rate p, copies written for the task recipes."""

import csv
import json

import pytest
import torch
from datasets import Dataset
from transformers import BertForMaskedLM, BertTokenizerFast

from hf_distill.tasks.augmentation import augment_dataset, augment_text, run_augment, split_words, word_candidates

from tests.conftest import tiny_bert_config

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [f"w{i}" for i in range(93)] + ["."]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(SPECIALS + WORDS) + "\n")
    return BertTokenizerFast(str(vocab))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return BertForMaskedLM(tiny_bert_config()).eval()


def test_candidates_are_top_k_whole_words(model, tokenizer):
    words = split_words("w1 w2 zzz w3 .", tokenizer)
    assert words == ["w1", "w2", "zzz", "w3", "."]
    candidates = word_candidates(words, model, tokenizer, top_k=5)
    assert set(candidates) == {0, 1, 3}  # not the [UNK] word, not punctuation
    for index, options in candidates.items():
        assert len(options) == 5 and words[index] not in options
        assert not set(options) & set(SPECIALS)
    # the candidates of w2 are the masked LM's top predictions with w2 masked
    batch = tokenizer("w1 [MASK] zzz w3 .", return_tensors="pt")
    logits = model(**batch).logits[0, 2]
    special = torch.tensor(tokenizer.all_special_ids)
    logits[special] = -float("inf")
    logits[tokenizer.convert_tokens_to_ids("w2")] = -float("inf")
    assert candidates[1] == tokenizer.convert_ids_to_tokens(logits.topk(5).indices.tolist())


def test_replacement_rate_is_p(model, tokenizer):
    text = " ".join(f"w{i}" for i in range(30))
    variants = augment_text(text, model, tokenizer, probability=0.4, top_k=15, num_copies=60)
    assert 55 <= len(variants) <= 60 and len(set(variants)) == len(variants) and text not in variants
    original = text.split()
    changed = sum(a != b for v in variants for a, b in zip(v.split(), original))
    assert abs(changed / (len(variants) * 30) - 0.4) < 0.05
    assert augment_text(text, model, tokenizer, probability=0.0, num_copies=5) == []


def test_augmented_file_feeds_the_task_recipes(tmp_path, model, tokenizer):
    model_dir = tmp_path / "mlm"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    source = tmp_path / "train.csv"
    source.write_text("sentence,label\nw1 w2 w3 w4,1\nw5 w6 .,0\n")
    out = tmp_path / "aug.csv"
    run_augment(str(model_dir), str(source), str(out), "sentence", probability=0.5, top_k=4, num_copies=3)
    rows = list(csv.DictReader(open(out)))
    assert rows[0] == {"sentence": "w1 w2 w3 w4", "label": "1"}
    assert 2 < len(rows) <= 2 * (1 + 3)
    assert {row["label"] for row in rows} == {"0", "1"}
    # every copy keeps its source's label: copies of row 1 have 4 words, copies of row 2 end with "."
    assert all((row["label"] == "1") == (len(row["sentence"].split()) == 4) for row in rows)
    with pytest.raises(ValueError, match="No column 'text'"):
        augment_dataset(Dataset.from_dict({"sentence": ["w1"]}), model, tokenizer, "text")


def test_augment_command(tmp_path, model, tokenizer):
    from hf_distill.cli import main

    model_dir = tmp_path / "mlm"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    (tmp_path / "train.jsonl").write_text('{"text": "w1 w2 w3", "label": 0}\n')
    assert main(["augment", "--model_name_or_path", str(model_dir), "--input", str(tmp_path / "train.jsonl"),
                 "--output", str(tmp_path / "out.jsonl"), "--text_column", "text", "--num_copies", "4"]) == 0
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert 2 <= len(lines) <= 5 and json.loads(lines[0]) == {"text": "w1 w2 w3", "label": 0}
