"""GLUE tasks: release-layout parsing for all nine tasks, CSV/JSON files, tokenization and metrics.

Every file is a few rows built here in the exact layout of the original GLUE release; one test reads the
real release files in `<repo>/../shared/data/glue`.
"""

import json
import math
import os
from pathlib import Path

import evaluate
import numpy as np
import pytest
from datasets import ClassLabel, Value
from transformers import BertTokenizerFast, EvalPrediction

from hf_distill.tasks import glue as glue_module
from hf_distill.tasks.glue import (
    GLUE_TASKS,
    METRIC_SCRIPT_DIR,
    GlueTask,
    build_compute_metrics,
    get_glue_task,
    glue_metric,
    load_glue,
    primary_score,
    read_glue_tsv,
    tokenize_glue,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_GLUE = REPO_ROOT.parent / "shared" / "data" / "glue"

MNLI_TRAIN_HEADER = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                     "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n")
MNLI_DEV_HEADER = MNLI_TRAIN_HEADER.replace("label1\t", "label1\tlabel2\tlabel3\tlabel4\tlabel5\t")
STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
MRPC_HEADER = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"

# task -> file name -> contents, in the layout of the original GLUE release.
FILES = {
    "cola": {  # no header: source, label, original judgement, sentence
        "train.tsv": "gj04\t1\t\tOur friends won't buy this analysis.\nclc95\t0\t*\tThey drank the pub \"dry .\n",
        "dev.tsv": "gj04\t1\t\tThe sailors rode the breeze clear of the rocks.\n",
    },
    "sst2": {  # sentences keep a trailing space before the tab
        "train.tsv": "sentence\tlabel\nit 's a \"charming journey . \t1\ndull , dull , dull . \t0\n",
        "dev.tsv": "sentence\tlabel\nunflinchingly bleak . \t0\n",
    },
    "mrpc": {  # header starts with a UTF-8 byte-order mark
        "train.tsv": MRPC_HEADER + "1\t702876\t702977\tAmrozi accused his brother .\tReferring to him , Amrozi "
                                   "accused his brother .\n0\t2108705\t2108831\tYucaipa owned Dominick 's .\t"
                                   "Yucaipa sold Dominick 's .\n",
        "dev.tsv": MRPC_HEADER + "1\t1355540\t1355592\tHe said the pie business doesn 't fit .\t\" The pie "
                                 "business does not fit .\n",
    },
    "stsb": {
        "train.tsv": STSB_HEADER + "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off."
                                   "\tAn air plane is taking off.\t5.000\n1\tmain-news\theadlines\t2013\t0002\t"
                                   "none\tnone\tA man plays.\tA cat sleeps.\t0.500\n",
        "dev.tsv": STSB_HEADER + "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man with a hard hat is "
                                 "dancing.\tA man wearing a hard hat is dancing.\t3.750\n",
    },
    "qqp": {
        "train.tsv": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n133273\t213221\t213222\tHow do I learn "
                     "\"Python?\tHow to learn Python?\t1\n",
        "dev.tsv": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n201359\t303345\t303346\tWhy?\tWhat?\t0\n",
    },
    "mnli": {  # train has one annotator label column, dev five; gold_label is last
        "train.tsv": MNLI_TRAIN_HEADER + "0\t31193\t31193n\tgovernment\t( ( a ) )\t( b )\t(ROOT a)\t(ROOT b)\t"
                                         "Conceptually cream skimming has two basic dimensions.\tProduct and "
                                         "geography are what make cream skimming work.\tneutral\tneutral\n",
        "dev_matched.tsv": MNLI_DEV_HEADER + "0\t63735\t63735n\tslate\t( a )\t( b )\t(ROOT a)\t(ROOT b)\tThe new "
                                             "rights are nice enough\tEveryone likes the \"newest benefits\t"
                                             "entailment\tneutral\tneutral\tcontradiction\tneutral\tneutral\n",
        "dev_mismatched.tsv": MNLI_DEV_HEADER + "0\t75290\t75290c\tletters\t( a )\t( b )\t(ROOT a)\t(ROOT b)\t"
                                                "Your gift is appreciated.\tHundreds of students will benefit."
                                                "\tcontradiction\tcontradiction\tneutral\tcontradiction\t"
                                                "contradiction\tcontradiction\n",
    },
    "qnli": {  # dev only
        "dev.tsv": "index\tquestion\tsentence\tlabel\n0\tWhat came into force?\tThe new constitution came into "
                   "force.\tentailment\n1\tWho?\tNobody knows.\tnot_entailment\n",
    },
    "rte": {
        "train.tsv": "index\tsentence1\tsentence2\tlabel\n0\tNo weapons were found.\tWeapons were found.\t"
                     "not_entailment\n1\tDana Reeve died.\tReeve is dead.\tentailment\n",
        "dev.tsv": "index\tsentence1\tsentence2\tlabel\n0\tDana Reeve died.\tChristopher Reeve had an accident."
                   "\tnot_entailment\n",
    },
    "wnli": {
        "train.tsv": "index\tsentence1\tsentence2\tlabel\n0\tI stuck a pin through a carrot.\tThe carrot had a "
                     "hole.\t1\n",
        "dev.tsv": "index\tsentence1\tsentence2\tlabel\n0\tThe drain is clogged with hair.\tThe hair has to be "
                   "cleaned.\t0\n",
    },
}

# task -> split -> rows load_glue must return (labels as Hub class indices, or scores for STS-B).
EXPECTED = {
    "cola": {
        "train": [{"sentence": "Our friends won't buy this analysis.", "label": 1, "idx": 0},
                  {"sentence": "They drank the pub \"dry .", "label": 0, "idx": 1}],
        "validation": [{"sentence": "The sailors rode the breeze clear of the rocks.", "label": 1, "idx": 0}],
    },
    "sst2": {
        "train": [{"sentence": "it 's a \"charming journey .", "label": 1, "idx": 0},
                  {"sentence": "dull , dull , dull .", "label": 0, "idx": 1}],
        "validation": [{"sentence": "unflinchingly bleak .", "label": 0, "idx": 0}],
    },
    "mrpc": {
        "train": [{"sentence1": "Amrozi accused his brother .",
                   "sentence2": "Referring to him , Amrozi accused his brother .", "label": 1, "idx": 0},
                  {"sentence1": "Yucaipa owned Dominick 's .", "sentence2": "Yucaipa sold Dominick 's .",
                   "label": 0, "idx": 1}],
        "validation": [{"sentence1": "He said the pie business doesn 't fit .",
                        "sentence2": "\" The pie business does not fit .", "label": 1, "idx": 0}],
    },
    "stsb": {  # scores chosen to be exact in float32
        "train": [{"sentence1": "A plane is taking off.", "sentence2": "An air plane is taking off.", "label": 5.0,
                   "idx": 0},
                  {"sentence1": "A man plays.", "sentence2": "A cat sleeps.", "label": 0.5, "idx": 1}],
        "validation": [{"sentence1": "A man with a hard hat is dancing.",
                        "sentence2": "A man wearing a hard hat is dancing.", "label": 3.75, "idx": 0}],
    },
    "qqp": {
        "train": [{"question1": "How do I learn \"Python?", "question2": "How to learn Python?", "label": 1,
                   "idx": 0}],
        "validation": [{"question1": "Why?", "question2": "What?", "label": 0, "idx": 0}],
    },
    "mnli": {
        "train": [{"premise": "Conceptually cream skimming has two basic dimensions.",
                   "hypothesis": "Product and geography are what make cream skimming work.", "label": 1,
                   "idx": 0}],
        "validation_matched": [{"premise": "The new rights are nice enough",
                                "hypothesis": "Everyone likes the \"newest benefits", "label": 1, "idx": 0}],
        "validation_mismatched": [{"premise": "Your gift is appreciated.",
                                   "hypothesis": "Hundreds of students will benefit.", "label": 2, "idx": 0}],
    },
    "qnli": {
        "validation": [{"question": "What came into force?", "sentence": "The new constitution came into force.",
                        "label": 0, "idx": 0},
                       {"question": "Who?", "sentence": "Nobody knows.", "label": 1, "idx": 1}],
    },
    "rte": {
        "train": [{"sentence1": "No weapons were found.", "sentence2": "Weapons were found.", "label": 1, "idx": 0},
                  {"sentence1": "Dana Reeve died.", "sentence2": "Reeve is dead.", "label": 0, "idx": 1}],
        "validation": [{"sentence1": "Dana Reeve died.", "sentence2": "Christopher Reeve had an accident.",
                        "label": 1, "idx": 0}],
    },
    "wnli": {
        "train": [{"sentence1": "I stuck a pin through a carrot.", "sentence2": "The carrot had a hole.",
                   "label": 1, "idx": 0}],
        "validation": [{"sentence1": "The drain is clogged with hair.", "sentence2": "The hair has to be cleaned.",
                        "label": 0, "idx": 0}],
    },
}

HUB_LABELS = {
    "cola": ["unacceptable", "acceptable"],
    "sst2": ["negative", "positive"],
    "mrpc": ["not_equivalent", "equivalent"],
    "stsb": None,
    "qqp": ["not_duplicate", "duplicate"],
    "mnli": ["entailment", "neutral", "contradiction"],
    "qnli": ["entailment", "not_entailment"],
    "rte": ["entailment", "not_entailment"],
    "wnli": ["not_entailment", "entailment"],
}
HUB_KEYS = {
    "cola": {"matthews_correlation"},
    "stsb": {"pearson", "spearmanr"},
    "mrpc": {"accuracy", "f1"},
    "qqp": {"accuracy", "f1"},
}


def write_task(root: Path, task: str) -> str:
    folder = root / GLUE_TASKS[task].tsv_dir
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in FILES[task].items():
        (folder / name).write_bytes(text.encode("utf-8"))  # bytes: no newline translation, BOM kept as written
    return str(root)


def write_tsv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def tiny_tokenizer(folder: Path) -> BertTokenizerFast:
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "man", "plane", "is", "taking", "off", "an", "air", "."]
    (folder / "vocab.txt").write_text("\n".join(words))
    return BertTokenizerFast(str(folder / "vocab.txt"))


# --- the task table ------------------------------------------------------------------------------------------


def test_task_table_matches_the_hub():
    assert sorted(GLUE_TASKS) == sorted(HUB_LABELS)
    for name, labels in HUB_LABELS.items():
        task = GLUE_TASKS[name]
        assert task.name == name
        assert task.label_names == (None if labels is None else tuple(labels))
        assert set(task.metric_names) == HUB_KEYS.get(name, {"accuracy"})
        assert task.num_labels == (1 if labels is None else len(labels))
        assert task.is_regression == (labels is None)
    assert all(isinstance(task, GlueTask) for task in GLUE_TASKS.values())
    assert GLUE_TASKS["mrpc"].metric_names == ("accuracy", "f1")
    assert GLUE_TASKS["stsb"].metric_names == ("pearson", "spearmanr")
    assert GLUE_TASKS["mnli"].eval_splits == ("validation_matched", "validation_mismatched")
    assert GLUE_TASKS["mnli"].text_columns == ("premise", "hypothesis")
    assert GLUE_TASKS["qqp"].text_columns == ("question1", "question2")
    assert GLUE_TASKS["qnli"].text_columns == ("question", "sentence")
    assert {t.tsv_dir for t in GLUE_TASKS.values()} == {"CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI",
                                                         "RTE", "WNLI"}
    with pytest.raises(Exception):  # frozen
        GLUE_TASKS["sst2"].name = "x"


@pytest.mark.parametrize("alias, name", [("sst2", "sst2"), ("SST-2", "sst2"), ("sst-2", "sst2"), ("STS-B", "stsb"),
                                         ("sts-b", "stsb"), ("CoLA", "cola"), ("MNLI", "mnli"), ("Qqp", "qqp")])
def test_get_glue_task_accepts_release_and_hub_spellings(alias, name):
    assert get_glue_task(alias) is GLUE_TASKS[name]


def test_get_glue_task_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="Unknown GLUE task 'sst5'") as info:
        get_glue_task("sst5")
    for name in GLUE_TASKS:
        assert name in str(info.value)


# --- the original release layout ---------------------------------------------------------------------------


@pytest.mark.parametrize("task", sorted(GLUE_TASKS))
def test_every_task_loads_from_the_release_layout(tmp_path, task):
    spec = GLUE_TASKS[task]
    data = load_glue(task, data_dir=write_task(tmp_path, task))
    assert set(data) == set(EXPECTED[task])
    for split, rows in EXPECTED[task].items():
        part = data[split]
        assert part.column_names == [*spec.text_columns, "label", "idx"]
        assert part.to_list() == rows
        assert part.features["idx"] == Value("int32")
        if spec.is_regression:
            assert part.features["label"] == Value("float32")
        else:
            assert part.features["label"] == ClassLabel(names=HUB_LABELS[task])


def test_qnli_dev_only_has_no_train_split(tmp_path):
    data = load_glue("qnli", data_dir=write_task(tmp_path, "qnli"))
    assert list(data) == ["validation"]
    assert data["validation"].features["label"].int2str(list(data["validation"]["label"])) == [
        "entailment", "not_entailment"]


def test_bare_quotes_do_not_swallow_lines(tmp_path):
    # With csv's default quoting the opening quote would join the next lines into one field.
    path = write_tsv(tmp_path / "SST-2" / "dev.tsv",
                     'sentence\tlabel\nhe said " wow . \t1\nsecond line . \t0\n" quoted start \t1\n')
    rows = read_glue_tsv(str(path), "sst2")
    assert [row["sentence"] for row in rows] == ['he said " wow .', "second line .", '" quoted start']
    assert [row["label"] for row in rows] == [1, 0, 1]


def test_mrpc_byte_order_mark_is_removed(tmp_path):
    data_dir = write_task(tmp_path, "mrpc")
    assert (tmp_path / "MRPC" / "dev.tsv").read_bytes().startswith(b"\xef\xbb\xbfQuality")
    assert read_glue_tsv(os.path.join(data_dir, "MRPC", "dev.tsv"), "mrpc")[0]["label"] == 1


@pytest.mark.parametrize("body, line, message", [
    ("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tonly two fields\n", 3,
     "2 tab-separated fields, expected 4"),
    ("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\textra\n", 2, "5 tab-separated fields, expected 4"),
    ("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tc\td\tentailed\n", 3, "unknown label 'entailed'"),
])
def test_malformed_rows_raise_with_file_and_line(tmp_path, body, line, message):
    path = write_tsv(tmp_path / "RTE" / "dev.tsv", body)
    with pytest.raises(ValueError) as info:
        load_glue("rte", data_dir=str(tmp_path))
    assert f"{path}, line {line}: {message}" in str(info.value)


def test_out_of_range_numeric_label_and_bad_score_raise(tmp_path):
    sst = write_tsv(tmp_path / "SST-2" / "train.tsv", "sentence\tlabel\nfine . \t1\nodd . \t2\n")
    with pytest.raises(ValueError, match=r"train.tsv, line 3: unknown label '2' for sst2"):
        read_glue_tsv(str(sst), "sst2")
    cola = write_tsv(tmp_path / "CoLA" / "train.tsv", "gj04\t1\t\tGood.\ngj04\t1\t\tToo\tmany.\n")
    with pytest.raises(ValueError, match=r"train.tsv, line 2: 5 tab-separated fields, expected 4"):
        read_glue_tsv(str(cola), "cola")
    stsb = write_tsv(tmp_path / "STS-B" / "dev.tsv", STSB_HEADER + "0\tg\tf\ty\t0\tn\tn\ta\tb\tfive\n")
    with pytest.raises(ValueError, match=r"dev.tsv, line 2: score 'five' is not a number"):
        read_glue_tsv(str(stsb), "stsb")


def test_wrong_header_names_the_missing_column(tmp_path):
    path = write_tsv(tmp_path / "SST-2" / "dev.tsv", "text\tlabel\nfine . \t1\n")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['sentence'\]"):
        read_glue_tsv(str(path), "sst2")


def test_missing_files_name_the_expected_paths(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_glue("mnli", data_dir=str(tmp_path))
    for name in ("train.tsv", "dev_matched.tsv", "dev_mismatched.tsv"):
        assert os.path.join(str(tmp_path), "MNLI", name) in str(info.value)


def test_subsets_are_seeded_random_and_sized(tmp_path):
    body = "sentence\tlabel\n" + "".join(f"s{i} \t{i % 2}\n" for i in range(40))
    write_tsv(tmp_path / "SST-2" / "train.tsv", body)
    write_tsv(tmp_path / "SST-2" / "dev.tsv", body)
    first = load_glue("sst2", data_dir=str(tmp_path), max_train_samples=8, max_eval_samples=5, seed=1)
    again = load_glue("sst2", data_dir=str(tmp_path), max_train_samples=8, max_eval_samples=5, seed=1)
    other = load_glue("sst2", data_dir=str(tmp_path), max_train_samples=8, seed=2)
    assert (len(first["train"]), len(first["validation"]), len(other["validation"])) == (8, 5, 40)
    assert list(first["train"]["sentence"]) == list(again["train"]["sentence"])
    assert list(first["train"]["sentence"]) != list(other["train"]["sentence"])
    assert list(first["train"]["sentence"]) != [f"s{i}" for i in range(8)]  # shuffled, not the head


# --- CSV / JSON files --------------------------------------------------------------------------------------


def test_csv_and_jsonl_files_get_the_hub_label_feature(tmp_path):
    (tmp_path / "train.csv").write_text('sentence1,sentence2,label\n"a, b",c,1\nd,e,0\n')
    data = load_glue("mrpc", data_files={"train": str(tmp_path / "train.csv")})
    assert data["train"][0] == {"sentence1": "a, b", "sentence2": "c", "label": 1}
    assert data["train"].features["label"] == ClassLabel(names=HUB_LABELS["mrpc"])

    rows = [{"premise": "p", "hypothesis": "h", "label": "contradiction"},
            {"premise": "q", "hypothesis": "i", "label": "entailment"}]
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    data = load_glue("mnli", data_files={"validation_matched": str(tmp_path / "dev.jsonl")})
    assert list(data["validation_matched"]["label"]) == [2, 0]


def test_a_train_file_replaces_the_folders_train_split_and_keeps_its_dev_set(tmp_path):
    """`--data_dir` with `--train_file` (e.g. augmented data): the file is trained on, the folder evaluated on."""
    root = write_task(tmp_path / "glue", "mrpc")
    (tmp_path / "aug.csv").write_text('sentence1,sentence2,label\nnew a,new b,1\nnew c,new d,0\nnew e,new f,1\n')
    data = load_glue("mrpc", data_dir=root, data_files={"train": str(tmp_path / "aug.csv")})
    assert list(data["train"]["sentence1"]) == ["new a", "new c", "new e"]
    assert list(data["validation"]["sentence1"]) == [row["sentence1"] for row in EXPECTED["mrpc"]["validation"]]
    assert data["train"].features["label"] == data["validation"].features["label"]


def test_data_files_errors_name_the_problem(tmp_path):
    (tmp_path / "bad.csv").write_text("text,label\nx,1\n")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['sentence1', 'sentence2'\].*found \['text', "
                                         r"'label'\]"):
        load_glue("mrpc", data_files={"train": str(tmp_path / "bad.csv")})
    (tmp_path / "labels.csv").write_text("sentence,label\nx,1\ny,7\n")
    with pytest.raises(ValueError, match=r"unknown label\(s\) \['7'\] for sst2"):
        load_glue("sst2", data_files={"train": str(tmp_path / "labels.csv")})
    with pytest.raises(ValueError, match="pass `data_dir` instead"):
        load_glue("sst2", data_files={"train": str(tmp_path / "train.tsv")})


def test_a_train_file_may_leave_labels_out_and_an_evaluation_file_may_not(tmp_path):
    """Unlabelled training examples (empty, null, -1, -100) become ClassLabel's -1, or NaN for a score."""
    (tmp_path / "names.csv").write_text("sentence,label\na,positive\nb,\nc,negative\n")
    (tmp_path / "indices.csv").write_text("sentence,label\na,1\nb,\nc,-1\nd,-100\ne,0\n")
    names = load_glue("sst2", data_files={"train": str(tmp_path / "names.csv")})["train"]
    indices = load_glue("sst2", data_files={"train": str(tmp_path / "indices.csv")})["train"]
    assert list(names["label"]) == [1, -1, 0] and list(indices["label"]) == [1, -1, -1, -1, 0]
    assert names.features["label"] == indices.features["label"] == ClassLabel(names=HUB_LABELS["sst2"])
    rows = [{"sentence1": "a", "sentence2": "b", "label": 4.5}, {"sentence1": "c", "sentence2": "d", "label": None}]
    (tmp_path / "scores.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    scores = load_glue("stsb", data_files={"train": str(tmp_path / "scores.jsonl")})["train"]
    assert scores[0]["label"] == 4.5 and math.isnan(scores[1]["label"])
    with pytest.raises(ValueError, match=r"indices.csv: 3 example\(s\) have no label.*An evaluation split needs"):
        load_glue("sst2", data_files={"validation": str(tmp_path / "indices.csv")})
    (tmp_path / "bad.csv").write_text("sentence,label\na,-3\nb,\n")
    with pytest.raises(ValueError, match=r"unknown label\(s\) \['-3.0'\].*or leave the label empty"):
        load_glue("sst2", data_files={"train": str(tmp_path / "bad.csv")})


def test_load_task_data_counts_the_unlabelled_training_examples(tmp_path):
    from types import SimpleNamespace

    from hf_distill.tasks.data import load_task_data

    root = write_task(tmp_path / "glue", "stsb")
    (tmp_path / "train.csv").write_text("sentence1,sentence2,label\na man,a plane,3.0\nan air,plane,\nis,off,\n")
    args = SimpleNamespace(task_name="stsb", data_dir=root, train_file=str(tmp_path / "train.csv"),
                           validation_file=None, max_train_samples=None, max_eval_samples=None, max_seq_length=16)
    task = load_task_data(args, tiny_tokenizer(tmp_path), seed=0)
    assert task.unlabelled_train_examples == 2 and len(task.train) == 3
    assert sum(math.isnan(label) for label in task.train["labels"]) == 2


# --- tokenization ------------------------------------------------------------------------------------------


def test_tokenize_pairs_and_regression_labels(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path)
    data = load_glue("stsb", data_dir=write_task(tmp_path, "stsb"))
    encoded = tokenize_glue(data, "stsb", tokenizer, max_length=7)
    row = encoded["train"][0]
    assert set(encoded["train"].column_names) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert encoded["train"].features["labels"] == Value("float32")
    assert row["labels"] == 5.0 and encoded["train"][1]["labels"] == 0.5
    # "a plane is taking off ." + "an air plane ...", truncated to 7 tokens with both segments kept.
    assert len(row["input_ids"]) == 7 and row["token_type_ids"].count(1) >= 2
    assert row["input_ids"][0] == tokenizer.cls_token_id and row["input_ids"][-1] == tokenizer.sep_token_id


def test_tokenize_single_sentence_keeps_class_labels(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path)
    data = load_glue("sst2", data_dir=write_task(tmp_path, "sst2"))
    encoded = tokenize_glue(data, GLUE_TASKS["sst2"], tokenizer, padding="max_length", max_length=12)
    assert set(encoded) == {"train", "validation"}
    assert list(encoded["train"]["labels"]) == [1, 0]
    assert encoded["train"].features["labels"] == ClassLabel(names=HUB_LABELS["sst2"])
    assert all(len(ids) == 12 for ids in encoded["train"]["input_ids"])
    assert set(encoded["train"][0]["token_type_ids"]) == {0}


# --- metrics -----------------------------------------------------------------------------------------------


def confusion(predictions, labels):
    tp = sum(p == 1 and y == 1 for p, y in zip(predictions, labels))
    tn = sum(p == 0 and y == 0 for p, y in zip(predictions, labels))
    fp = sum(p == 1 and y == 0 for p, y in zip(predictions, labels))
    fn = sum(p == 0 and y == 1 for p, y in zip(predictions, labels))
    return tp, tn, fp, fn


def pearson(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return cov / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


def one_hot_logits(predictions, num_labels=2):
    return np.eye(num_labels)[predictions] * 3.0 - 1.0


def test_matthews_correlation_matches_the_formula():
    predictions, labels = [1, 1, 0, 1, 0, 0, 1], [1, 0, 0, 1, 1, 0, 1]
    tp, tn, fp, fn = confusion(predictions, labels)
    assert (tp, tn, fp, fn) == (3, 2, 1, 1)
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))  # = 5/12
    got = build_compute_metrics("cola")(EvalPrediction(predictions=one_hot_logits(predictions),
                                                       label_ids=np.array(labels)))
    assert got == {"matthews_correlation": pytest.approx(expected)}
    assert expected == pytest.approx(5 / 12)
    assert all(type(value) is float for value in got.values())


def test_accuracy_and_f1_match_the_counts_and_tuple_logits_work():
    predictions, labels = [1, 1, 0, 1, 0], [1, 0, 0, 1, 1]
    tp, tn, fp, fn = confusion(predictions, labels)
    compute = build_compute_metrics("mrpc")
    logits = one_hot_logits(predictions)
    got = compute(EvalPrediction(predictions=(logits, np.zeros((5, 4, 8))), label_ids=np.array(labels)))
    assert got == {"accuracy": pytest.approx((tp + tn) / 5), "f1": pytest.approx(2 * tp / (2 * tp + fp + fn))}
    assert got == {"accuracy": pytest.approx(0.6), "f1": pytest.approx(2 / 3)}
    assert primary_score("mrpc", got) == pytest.approx((0.6 + 2 / 3) / 2)


def test_three_way_accuracy_uses_argmax():
    logits = np.array([[2.0, 0.1, 0.3], [0.0, 0.2, 1.5], [0.1, 0.9, 0.0], [1.0, 0.0, 3.0]])
    got = build_compute_metrics("mnli")(EvalPrediction(predictions=logits, label_ids=np.array([0, 2, 1, 1])))
    assert got == {"accuracy": pytest.approx(3 / 4)}


def test_pearson_and_spearman_match_the_formula():
    outputs, scores = [1.0, 2.0, 3.0, 4.5], [1.0, 2.0, 4.0, 3.5]
    expected_pearson = pearson(outputs, scores)
    expected_spearman = pearson([1, 2, 3, 4], [1, 2, 4, 3])  # Pearson of the ranks (no ties) = 0.8
    compute = build_compute_metrics("stsb")
    got = compute(EvalPrediction(predictions=np.array(outputs, dtype=np.float32)[:, None],
                                 label_ids=np.array(scores, dtype=np.float32)))
    assert got == {"pearson": pytest.approx(expected_pearson, rel=1e-5),
                   "spearmanr": pytest.approx(expected_spearman, rel=1e-5)}
    assert expected_spearman == pytest.approx(0.8)
    assert primary_score("stsb", {"eval_pearson": 0.9, "eval_spearmanr": 0.8}) == pytest.approx(0.85)


def test_primary_score_reads_plain_and_eval_keys():
    assert primary_score("cola", {"matthews_correlation": 0.5}) == pytest.approx(0.5)
    assert primary_score("sst2", {"eval_accuracy": 0.9, "eval_loss": 0.3}) == pytest.approx(0.9)
    assert primary_score(GLUE_TASKS["qqp"], {"eval_accuracy": 0.8, "f1": 0.7}) == pytest.approx(0.75)
    with pytest.raises(KeyError, match="'f1'"):
        primary_score("mrpc", {"eval_accuracy": 0.7})


@pytest.mark.parametrize("config", [*sorted(GLUE_TASKS), "mnli_matched", "mnli_mismatched"])
def test_shipped_metric_loads_by_path_offline_with_hub_keys(config):
    metric = evaluate.load(METRIC_SCRIPT_DIR, config)
    if config == "stsb":
        result = metric.compute(predictions=[0.5, 2.0, 3.0], references=[1.0, 2.0, 4.0])
    else:
        result = metric.compute(predictions=[1, 0, 1, 1], references=[1, 0, 0, 1])
    assert set(result) == HUB_KEYS.get(config, {"accuracy"})
    assert all(type(value) is float for value in result.values())


def test_shipped_metric_rejects_unknown_configuration():
    with pytest.raises(KeyError, match="Unknown GLUE configuration 'sst5'"):
        evaluate.load(METRIC_SCRIPT_DIR, "sst5")


def test_glue_metric_skips_the_hub_offline_and_falls_back_on_errors(monkeypatch):
    real_load, calls = evaluate.load, []

    def load(path, *args, **kwargs):
        calls.append(path)
        if path == "glue":
            raise ConnectionError("Hub unreachable")
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(evaluate, "load", load)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    glue_metric("cola")
    assert calls == [METRIC_SCRIPT_DIR]

    calls.clear()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_EVALUATE_OFFLINE", raising=False)
    metric = glue_metric("cola")
    assert calls == ["glue", METRIC_SCRIPT_DIR]
    assert set(metric.compute(predictions=[0, 1], references=[0, 1])) == {"matthews_correlation"}

    calls.clear()
    glue_metric("cola", prefer_hub=False)
    assert calls == [METRIC_SCRIPT_DIR]


def test_metric_script_is_next_to_the_package():
    assert os.path.isfile(os.path.join(METRIC_SCRIPT_DIR, "glue.py"))
    assert Path(METRIC_SCRIPT_DIR).parent == Path(glue_module.__file__).resolve().parents[1] / "metrics"


# --- the real release files --------------------------------------------------------------------------------


def test_real_glue_release_files_parse():
    assert SHARED_GLUE.is_dir(), (
        f"The GLUE release files are expected in {SHARED_GLUE} (`../shared/data/glue` beside the repository). "
        "Check out the shared data folder next to the clone; the files are not copied into the repository."
    )
    sst = read_glue_tsv(str(SHARED_GLUE / "SST-2" / "dev.tsv"), "sst2")
    assert len(sst) == 872 and sum(row["label"] for row in sst) == 444
    assert sst[0] == {"sentence": "it 's a charming and often affecting journey .", "label": 1, "idx": 0}

    mrpc = load_glue("mrpc", data_dir=str(SHARED_GLUE))
    assert (len(mrpc["train"]), len(mrpc["validation"])) == (3668, 408)
    assert sum(mrpc["validation"]["label"]) == 279
    with open(SHARED_GLUE / "MRPC" / "dev.tsv", encoding="utf-8-sig") as file:
        first = file.read().split("\n")[1].split("\t")
    assert first[:3] == ["1", "1355540", "1355592"]  # the first pair of the dev set
    assert mrpc["validation"][0] == {"sentence1": first[3], "sentence2": first[4], "label": 1, "idx": 0}
    assert mrpc["validation"][0]["sentence2"].startswith('" The foodservice pie business')  # bare quote kept

    stsb = load_glue("stsb", data_dir=str(SHARED_GLUE))
    assert (len(stsb["train"]), len(stsb["validation"])) == (5749, 1500)
    assert stsb["validation"][0]["label"] == 5.0 and stsb["validation"][1]["label"] == 4.75

    qnli = load_glue("qnli", data_dir=str(SHARED_GLUE))
    assert list(qnli) == ["validation"] and len(qnli["validation"]) == 5463
    assert sum(qnli["validation"]["label"]) == 2761  # not_entailment
    wnli = read_glue_tsv(str(SHARED_GLUE / "WNLI" / "dev.tsv"), "wnli")
    assert len(wnli) == 71 and sum(row["label"] for row in wnli) == 31


def test_shipped_statistics_equal_scipy_and_scikit_learn():
    """The metric script's numpy statistics against the functions the Hub's `glue` module calls (dev extra)."""
    import importlib.util

    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import f1_score, matthews_corrcoef

    spec = importlib.util.spec_from_file_location("shipped_glue", os.path.join(METRIC_SCRIPT_DIR, "glue.py"))
    shipped = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shipped)
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels, preds = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
        assert shipped.f1_positive_class(preds, labels) == pytest.approx(f1_score(labels, preds))
        assert shipped.matthews_correlation(preds, labels) == pytest.approx(matthews_corrcoef(labels, preds))
        three_way = rng.integers(0, 3, 50)
        assert shipped.matthews_correlation(three_way, labels) == pytest.approx(matthews_corrcoef(labels, three_way))
        x, y = rng.normal(size=40), rng.normal(size=40)
        ties = np.round(x * 2) / 2  # many tied values
        assert shipped.pearson_correlation(x, y) == pytest.approx(pearsonr(x, y)[0])
        assert shipped.pearson_and_spearman(ties, y)["spearmanr"] == pytest.approx(spearmanr(ties, y)[0])
    # Degenerate inputs: no positive class, a constant prediction, a constant score.
    assert shipped.f1_positive_class([0, 0], [0, 0]) == 0.0
    assert shipped.matthews_correlation([1, 1, 1], [0, 1, 0]) == 0.0
    assert math.isnan(shipped.pearson_correlation([1.0, 1.0, 1.0], [0.0, 1.0, 2.0]))
