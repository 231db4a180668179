"""TinyBERT's data augmentation: masked-LM candidates, replacement rate p, copies written for the task recipes.

Reference mode follows the authors' `TinyBERT/data_augmentation.py`: its masked-LM input, candidate rules, stop
words, GloVe neighbours and sentence pairs.
"""

import csv
import json
import math
import random

import pytest
import torch
from datasets import Dataset
from transformers import BertForMaskedLM, BertTokenizerFast

from hf_distill.tasks import augmentation
from hf_distill.tasks.augmentation import (
    STOP_WORDS,
    GloveNeighbours,
    augment_dataset,
    augment_text,
    load_glove,
    reference_word_candidates,
    run_augment,
    split_words,
    word_candidates,
)

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


# ------------------------------------------------------------------ reference mode

REF_WORDS = ["the", "on", "a", "is", "cat", "dog", "sat", "ran", "mat", "rug", "##s", ".", "big", "small", "red",
             "blue", "ate", "fish", "bird", "slept"]
SENTENCE = "The cat sat on the mats."  # the | cat | sat | on | the | mat ##s | .


@pytest.fixture(scope="module")
def ref_tokenizer(tmp_path_factory):
    vocab = tmp_path_factory.mktemp("ref_vocab") / "vocab.txt"
    vocab.write_text("\n".join(SPECIALS + REF_WORDS) + "\n")
    return BertTokenizerFast(str(vocab))


@pytest.fixture(scope="module")
def ref_model(ref_tokenizer):
    """A tiny BERT masked LM whose output bias ranks [SEP], ##s and cat first at every position (then its own)."""
    torch.manual_seed(0)
    model = BertForMaskedLM(tiny_bert_config(vocab_size=len(SPECIALS + REF_WORDS))).eval()
    with torch.no_grad():
        for token, boost in (("[SEP]", 300.0), ("##s", 200.0), ("cat", 100.0)):
            model.get_output_embeddings().bias[ref_tokenizer.convert_tokens_to_ids(token)] += boost
    return model


@pytest.fixture
def recorded_inputs(ref_model):
    """The keyword inputs of every forward pass of `ref_model` while the test runs."""
    calls = []
    handle = ref_model.register_forward_pre_hook(lambda module, args, kwargs: calls.append(kwargs), with_kwargs=True)
    yield calls
    handle.remove()


def test_reference_mode_feeds_masked_then_original_sentence_with_segment_ids(ref_model, ref_tokenizer,
                                                                             recorded_inputs):
    words = split_words(SENTENCE, ref_tokenizer)
    assert words == ["the", "cat", "sat", "on", "the", "mats", "."]
    candidates = reference_word_candidates(words, ref_model, ref_tokenizer, top_k=5)
    # one pass, one row per masked word: cat and sat; not the stop words, not "mats" (two pieces), not "."
    assert len(recorded_inputs) == 1
    input_ids, token_type_ids = recorded_inputs[0]["input_ids"], recorded_inputs[0]["token_type_ids"]
    assert recorded_inputs[0].get("attention_mask") is None  # the reference passes none: one length, no padding
    assert input_ids.shape == (2, 19)
    cat_row = ["[CLS]", "the", "[MASK]", "sat", "on", "the", "mat", "##s", ".", "[SEP]",
               "the", "cat", "sat", "on", "the", "mat", "##s", ".", "[SEP]"]
    assert input_ids[0].tolist() == ref_tokenizer.convert_tokens_to_ids(cat_row)
    assert token_type_ids[0].tolist() == [0] * 10 + [1] * 9
    sat_row = list(cat_row)
    sat_row[2:4] = ["cat", "[MASK]"]
    assert input_ids[1].tolist() == ref_tokenizer.convert_tokens_to_ids(sat_row)
    assert token_type_ids[1].tolist() == [0] * 10 + [1] * 9
    # the candidates are the top 5 pieces at the mask of that input, read alone as the reference reads it
    logits = ref_model(input_ids=torch.tensor([input_ids[0].tolist()]),
                       token_type_ids=torch.tensor([[0] * 10 + [1] * 9]))
    top5 = ref_tokenizer.convert_ids_to_tokens(logits.logits[0, 2].argsort(descending=True)[:5].tolist())
    assert top5[:3] == ["[SEP]", "##s", "cat"]
    assert candidates[1] == [token for token in top5 if token not in ("[SEP]", "##s")] == top5[2:]
    assert set(candidates) == {1, 2, 5}  # mats is considered but has no GloVe file: it keeps itself
    assert candidates[5] == ["mats"]


def test_reference_mode_cuts_the_input_at_the_position_table(ref_model, ref_tokenizer, recorded_inputs):
    assert ref_model.config.max_position_embeddings == 64  # the reference cuts at 512, BERT-base's table
    reference_word_candidates(["cat", "sat"] * 20, ref_model, ref_tokenizer)  # 40 + 40 pieces and 3 specials
    assert recorded_inputs[-1]["input_ids"].shape == (40, 64)
    assert recorded_inputs[-1]["token_type_ids"][0].tolist() == [0] * 42 + [1] * 22
    words = ["cat", "sat"] * 35  # the words past position 63 are not masked and keep themselves
    candidates = reference_word_candidates(words, ref_model, ref_tokenizer, top_k=5)
    assert recorded_inputs[-1]["input_ids"].shape == (63, 64)
    assert recorded_inputs[-1]["token_type_ids"].sum() == 0  # [CLS] and 63 pieces: no [SEP], no second segment
    assert (recorded_inputs[-1]["input_ids"] != ref_tokenizer.sep_token_id).all()
    assert all("cat" in candidates[i] for i in range(63)) and all(candidates[i] == [words[i]] for i in range(63, 70))


def test_reference_candidates_keep_the_original_word_and_drop_pieces_and_specials(ref_model, ref_tokenizer):
    words = split_words(SENTENCE, ref_tokenizer)
    vocabulary = len(SPECIALS + REF_WORDS)
    candidates = reference_word_candidates(words, ref_model, ref_tokenizer, top_k=5)
    assert "cat" in candidates[1] and len(candidates[1]) == 3  # the original word kept; 2 of the top 5 dropped
    everything = reference_word_candidates(words, ref_model, ref_tokenizer, top_k=vocabulary)
    for index in (1, 2):  # with K the whole vocabulary: every whole word, no ## piece, no special token
        assert sorted(everything[index]) == sorted(word for word in REF_WORDS if not word.startswith("##"))
    # the default mode drops the original word and refills to K
    default = word_candidates(words, ref_model, ref_tokenizer, top_k=5)
    assert "cat" not in default[1] and len(default[1]) == 5 and not set(default[1]) & {"##s", *SPECIALS}


def test_reference_mode_never_replaces_stop_words(ref_model, ref_tokenizer):
    assert len(STOP_WORDS) == 173 and {"the", "on", "a", "is", "wouldn't", "'s", "'re"} <= STOP_WORDS
    variants = augment_text(SENTENCE, ref_model, ref_tokenizer, probability=1.0, top_k=8, num_copies=40,
                            rng=random.Random(0), mode="reference")
    assert len(variants) > 5
    for variant in variants:
        new = variant.split()
        assert [new[i] for i in (0, 3, 4, 5, 6)] == ["the", "on", "the", "mats", "."]  # stop words, "mats", "."
    assert {v.split()[1] for v in variants} > {"cat"} and len({v.split()[2] for v in variants}) > 1
    # in the default mode the same stop words are candidates like any other word
    default = augment_text(SENTENCE, ref_model, ref_tokenizer, probability=1.0, top_k=8, num_copies=40)
    assert any(v.split()[0] != "the" for v in default)


def cosine(u, v):
    return sum(a * b for a, b in zip(u, v)) / math.sqrt(sum(a * a for a in u) * sum(b * b for b in v))


GLOVE = {"mats": [1.0, 0.2, 0.0], "rugs": [0.9, 0.3, 0.1], "carpets": [0.5, 0.5, 0.5], "cats": [0.0, 1.0, 0.0],
         "dogs": [-1.0, 0.0, 0.2], "<unk>": [0.0, 0.0, 0.0]}


def test_reference_mode_gives_words_of_several_pieces_their_glove_neighbours(tmp_path, ref_model, ref_tokenizer):
    path = tmp_path / "glove.txt"
    path.write_text("".join(f"{word} {' '.join(map(str, vector))}\n" for word, vector in GLOVE.items()))
    by_hand = sorted((w for w in GLOVE if w not in ("mats", "<unk>")), key=lambda w: -cosine(GLOVE["mats"], GLOVE[w]))
    assert by_hand[:3] == ["rugs", "carpets", "cats"]  # 0.987, 0.679, 0.196; dogs -0.96; <unk> has no direction
    glove = load_glove(path)
    assert glove("mats", 3) == by_hand[:3] and glove("mats", 10) == by_hand and glove("rug", 3) == []
    words = split_words(SENTENCE, ref_tokenizer)
    assert reference_word_candidates(words, ref_model, ref_tokenizer, top_k=3, glove=glove)[5] == by_hand[:3]
    variants = augment_text(SENTENCE, ref_model, ref_tokenizer, probability=1.0, top_k=3, num_copies=30,
                            rng=random.Random(0), mode="reference", glove=glove)
    assert {v.split()[5] for v in variants} == {"rugs", "carpets", "cats"}
    # a title-cased word gets title-cased neighbours, as in the reference
    assert GloveNeighbours(["Rome", "Paris", "london"], [[1, 0], [0.9, 0.1], [0, 1]])("Rome", 2) == ["Paris", "London"]
    # a word given twice counts with its last vector only, and <unk> is never a neighbour, as in the reference
    assert GloveNeighbours(["x", "y", "<unk>", "y"], [[1, 0], [1, 0], [1, 0.1], [0, 1]])("x", 3) == ["y"]


def test_reference_mode_augments_both_sentences_of_a_pair_as_the_reference_writes_them(ref_model, ref_tokenizer):
    first, second = SENTENCE, "A dog ran."
    pairs = Dataset.from_dict({"sentence1": [first], "sentence2": [second], "label": [1]})
    out = augment_dataset(pairs, ref_model, ref_tokenizer, "sentence1,sentence2", probability=0.5, top_k=5,
                          num_copies=6, seed=3, mode="reference")
    rng = random.Random(3)
    copies1 = augment_text(first, ref_model, ref_tokenizer, 0.5, 5, 6, rng, mode="reference")
    copies2 = augment_text(second, ref_model, ref_tokenizer, 0.5, 5, 6, rng, mode="reference")
    assert copies1 and copies2 and all(c.split()[0] == "a" for c in copies2)  # "a" is a stop word
    # the row is rewritten in place: the second sentence's rows carry the first sentence's last copy
    expected = [(first, second)] + [(c, second) for c in copies1]
    expected += [(copies1[-1], second)] + [(copies1[-1], c) for c in copies2]
    assert list(zip(out["sentence1"], out["sentence2"])) == expected and set(out["label"]) == {1}
    again = augment_dataset(pairs, ref_model, ref_tokenizer, ["sentence1", "sentence2"], probability=0.5, top_k=5,
                            num_copies=6, seed=3, mode="reference")
    assert again.to_dict() == out.to_dict()  # the seed fixes every draw
    with pytest.raises(ValueError, match="named twice"):
        augment_dataset(pairs, ref_model, ref_tokenizer, "sentence1,sentence1", mode="reference")
    # the default mode changes one sentence per copy and keeps the other as it was
    default = augment_dataset(pairs, ref_model, ref_tokenizer, "sentence1,sentence2", probability=0.5, top_k=5,
                              num_copies=6, seed=3)
    rng = random.Random(3)
    copies1 = augment_text(first, ref_model, ref_tokenizer, 0.5, 5, 6, rng)
    copies2 = augment_text(second, ref_model, ref_tokenizer, 0.5, 5, 6, rng)
    assert list(zip(default["sentence1"], default["sentence2"])) == (
        [(first, second)] + [(c, second) for c in copies1] + [(first, c) for c in copies2])


@pytest.fixture(scope="module")
def ref_model_dir(tmp_path_factory, ref_model, ref_tokenizer):
    folder = tmp_path_factory.mktemp("ref_mlm")
    ref_model.save_pretrained(folder)
    ref_tokenizer.save_pretrained(folder)
    return folder


def test_augment_command_in_reference_mode(tmp_path, ref_model_dir):
    from hf_distill.cli import main

    (tmp_path / "train.csv").write_text(f"sentence1,sentence2,label\n{SENTENCE},A dog ran.,1\n")
    (tmp_path / "glove.txt").write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in GLOVE.items()))
    assert main(["augment", "--mode", "reference", "--model_name_or_path", str(ref_model_dir),
                 "--input", str(tmp_path / "train.csv"), "--output", str(tmp_path / "aug.csv"),
                 "--task_name", "mrpc", "--glove_file", str(tmp_path / "glove.txt"), "--num_copies", "8"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "aug.csv")))
    assert rows[0] == {"sentence1": SENTENCE, "sentence2": "A dog ran.", "label": "1"}
    assert len({row["sentence1"] for row in rows}) > 2 and len({row["sentence2"] for row in rows}) > 2
    assert {row["sentence1"].split()[5] for row in rows[1:]} <= {"mats", "rugs", "carpets", "cats"}


def test_task_name_sets_the_columns_and_the_references_number_of_copies(tmp_path, monkeypatch, ref_model_dir):
    seen = []
    monkeypatch.setattr(augmentation, "augment_dataset", lambda dataset, model, tokenizer, column, p, k, n, seed,
                        **kwargs: seen.append((column, n, kwargs["mode"])) or dataset)
    (tmp_path / "train.csv").write_text("question1,question2,sentence,label\ncat,dog,cat,1\n")
    for task, mode in (("qqp", "reference"), ("SST-2", "reference"), ("wnli", "reference"), ("qqp", "default")):
        run_augment(str(ref_model_dir), str(tmp_path / "train.csv"), str(tmp_path / "out.csv"), task_name=task,
                    mode=mode)
    assert seen == [("question1,question2", 10, "reference"), ("sentence", 20, "reference"),
                    ("sentence1,sentence2", 30, "reference"), ("question1,question2", None, "default")]
    with pytest.raises(ValueError, match="Unknown GLUE task 'sst'"):
        run_augment(str(ref_model_dir), str(tmp_path / "train.csv"), str(tmp_path / "out.csv"), task_name="sst")
    with pytest.raises(ValueError, match="Name the column"):
        run_augment(str(ref_model_dir), str(tmp_path / "train.csv"), str(tmp_path / "out.csv"))


def test_a_glove_file_not_in_the_text_format_is_refused_with_its_line(tmp_path, capsys, ref_model_dir):
    from hf_distill.cli import main

    bad = {
        "short.txt": ("mats 1 0 0\nrugs 1 0 0\ncats 1 0\n", "line 3: expected a word and 3 numbers, got 2"),
        "text.txt": ("mats 1 0 0\nrugs 1 x 0\n", "line 2: 'x' is not a number"),
        "word2vec.txt": ("2 3\nmats 1 0 0\nrugs 1 0 0\n", "looks like a word2vec header"),
        "empty.txt": ("\n", "holds no vectors"),
    }
    for name, (text, message) in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=message):
            load_glove(tmp_path / name)
    (tmp_path / "train.csv").write_text("sentence,label\nThe cat sat.,1\n")
    assert main(["augment", "--mode", "reference", "--model_name_or_path", str(ref_model_dir), "--input",
                 str(tmp_path / "train.csv"), "--output", str(tmp_path / "aug.csv"), "--text_column", "sentence",
                 "--glove_file", str(tmp_path / "short.txt")]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("hf-distill augment: error: ") and "short.txt, line 3: expected a word" in error
    assert not (tmp_path / "aug.csv").exists()


def test_a_glove_file_in_default_mode_is_refused(tmp_path, ref_model, ref_tokenizer, ref_model_dir):
    (tmp_path / "glove.txt").write_text("mats 1 0 0\n")
    data = Dataset.from_dict({"sentence": [SENTENCE]})
    with pytest.raises(ValueError, match="reference mode only: pass mode='reference'"):
        augment_dataset(data, ref_model, ref_tokenizer, "sentence", glove=str(tmp_path / "glove.txt"))
    (tmp_path / "train.csv").write_text("sentence\nThe cat.\n")
    with pytest.raises(ValueError, match="reference mode only: add --mode reference"):
        run_augment(str(ref_model_dir), str(tmp_path / "train.csv"), str(tmp_path / "out.csv"), "sentence",
                    glove_file=str(tmp_path / "glove.txt"))


def test_reference_mode_refuses_a_masked_lm_without_two_segments(ref_tokenizer):
    model = BertForMaskedLM(tiny_bert_config(vocab_size=len(SPECIALS + REF_WORDS), type_vocab_size=1)).eval()
    data = Dataset.from_dict({"sentence": [SENTENCE]})
    with pytest.raises(ValueError, match="lacks two segment types: use a BERT masked LM"):
        augment_dataset(data, model, ref_tokenizer, "sentence", mode="reference")
    assert len(augment_dataset(data, model, ref_tokenizer, "sentence", num_copies=2)) >= 1  # the default mode runs
