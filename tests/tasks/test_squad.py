"""SQuAD: reading the JSON layouts, windows and answer spans, post-processing, the official metric, and a
distillation run through the shipped recipe on tiny question-answering models."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from datasets import Dataset, DatasetDict
from transformers import (
    AutoModelForQuestionAnswering,
    BertForQuestionAnswering,
    DistilBertConfig,
    DistilBertForQuestionAnswering,
)

from hf_distill.cli import main
from hf_distill.tasks.squad import (
    load_squad,
    postprocess_predictions,
    read_squad_json,
    squad_metric,
    tokenize_squad,
)
from tests.conftest import tiny_bert_config
from tests.test_cli import RECIPES, tiny_tokenizer

CONTEXT = "w1 w2 good w3 w4 w5 bad w6 w7 w8 w9 w10 w11 w12 w13 w14"
QUESTIONS = [
    {"id": "q1", "title": "t", "context": CONTEXT, "question": "w20 w21",
     "answers": {"text": ["good w3"], "answer_start": [CONTEXT.index("good")]}},
    {"id": "q2", "title": "t", "context": CONTEXT, "question": "w22",
     "answers": {"text": ["w12 w13"], "answer_start": [CONTEXT.index("w12")]}},
    {"id": "q3", "title": "t", "context": CONTEXT, "question": "w23",
     "answers": {"text": [], "answer_start": []}},  # SQuAD v2.0: no answer
]


def official_layout(records):
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": CONTEXT, "qas": [
        {"id": r["id"], "question": r["question"],
         "answers": [{"text": t, "answer_start": s} for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"])]}
        for r in records]}]}]}


# ----------------------------------------------------------------------------- reading


def test_the_official_layout_a_list_and_json_lines_read_the_same(tmp_path):
    official, flat, lines = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.jsonl"
    official.write_text(json.dumps(official_layout(QUESTIONS)))
    flat.write_text(json.dumps(QUESTIONS))
    lines.write_text("\n".join(json.dumps(r) for r in QUESTIONS))
    expected = [{**r, "answers": dict(r["answers"])} for r in QUESTIONS]
    assert read_squad_json(str(official)) == expected
    assert read_squad_json(str(flat)) == expected
    assert read_squad_json(str(lines)) == expected


def test_a_question_without_its_context_is_named(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps([{"id": "x7", "question": "w1", "answers": []}]))
    with pytest.raises(ValueError, match=r"question 'x7' has no context"):
        read_squad_json(str(broken))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match="not SQuAD-format JSON"):
        read_squad_json(str(other))
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps(QUESTIONS[:1] * 2))
    with pytest.raises(ValueError, match="question id 'q1' appears twice"):
        read_squad_json(str(twice))


def test_offline_without_files_names_the_local_options(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-v1\.1\.json and dev-v1\.1\.json"):
        load_squad("squad", data_dir=str(tmp_path))


# ----------------------------------------------------------------------------- windows and spans


def test_windows_label_the_answer_tokens_or_cls(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path / "tok")
    raw = DatasetDict({"train": Dataset.from_list(QUESTIONS[:2]), "validation": Dataset.from_list(QUESTIONS[:2])})
    features = tokenize_squad(raw, tokenizer, max_length=16, doc_stride=4)
    train = features["train"]
    windows_per_question = {}
    for row, question in zip(train, [QUESTIONS[i] for i in _sample_map(train, raw["train"], tokenizer)]):
        windows_per_question[question["id"]] = windows_per_question.get(question["id"], 0) + 1
        start, end = row["start_positions"], row["end_positions"]
        if start == 0:  # [CLS]: the answer is not inside this window
            assert end == 0
            continue
        answer = tokenizer.decode(row["input_ids"][start:end + 1])
        assert answer == question["answers"]["text"][0]
    # 16 context words do not fit in one window of 16 tokens: every question has overlapping windows.
    assert all(count >= 2 for count in windows_per_question.values())
    answered = [row for row in train if row["start_positions"] != 0]
    assert len(answered) >= 2  # each answer lies fully inside at least one window
    # Evaluation windows keep the question id and offsets only for context tokens.
    validation = features["validation"]
    row = validation[0]
    assert row["example_id"] == "q1"
    assert row["offset_mapping"][0] is None  # [CLS]
    context_offsets = [o for o in row["offset_mapping"] if o is not None]
    assert CONTEXT[context_offsets[0][0]:context_offsets[0][1]] == "w1"


def _sample_map(features, questions, tokenizer):
    """Which question each training window came from (re-tokenizing: training windows drop example_id)."""
    encoded = tokenizer([q["question"] for q in questions], [q["context"] for q in questions], truncation="only_second",
                        max_length=16, stride=4, return_overflowing_tokens=True, padding="max_length")
    mapping = list(encoded["overflow_to_sample_mapping"])
    assert len(mapping) == len(features)
    return mapping


def test_a_stride_too_close_to_the_length_is_refused(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path / "tok")
    raw = DatasetDict({"train": Dataset.from_list(QUESTIONS[:1])})
    with pytest.raises(ValueError, match="doc_stride=12 must be well below max_seq_length=16"):
        tokenize_squad(raw, tokenizer, max_length=16, doc_stride=12)


# ----------------------------------------------------------------------------- post-processing


def one_window(offsets, example_id="q"):
    return Dataset.from_list([{"example_id": example_id, "offset_mapping": offsets}])


def test_postprocessing_picks_the_best_valid_span_by_hand():
    context = "aa bb cc dd"
    examples = Dataset.from_list([{"id": "q", "context": context, "answers": {"text": ["bb"], "answer_start": [3]}}])
    #           [CLS]  q     [SEP]  aa      bb      cc      dd       [SEP]
    offsets = [None, None, None, [0, 2], [3, 5], [6, 8], [9, 11], None]
    starts = np.array([[0.0, 9.0, 0.0, 1.0, 4.0, 2.0, 0.0, 0.0]])  # 9.0 on the question: not a context token
    ends = np.array([[0.0, 0.0, 0.0, 0.0, 1.0, 3.0, 2.5, 9.0]])  # 9.0 on [SEP]: not a context token
    # Candidates: (bb, cc) = 4 + 3 = 7 beats (bb, dd) = 6.5, (bb, bb) = 5, (cc, cc) = 5; end before start excluded.
    answers, _ = postprocess_predictions(examples, one_window(offsets), starts, ends)
    assert answers == {"q": "bb cc"}
    # At most one token: (bb, bb) = 5 ties (cc, cc) = 5; the first found in start order, bb, is kept.
    answers, _ = postprocess_predictions(examples, one_window(offsets), starts, ends, max_answer_length=1)
    assert answers == {"q": "bb"}


def test_squad_v2_answers_nothing_when_the_null_score_wins():
    context = "aa bb"
    examples = Dataset.from_list([{"id": "q", "context": context, "answers": {"text": [], "answer_start": []}}])
    offsets = [None, None, [0, 2], [3, 5], None]
    starts = np.array([[3.0, 0.0, 1.0, 0.5, 0.0]])
    ends = np.array([[3.0, 0.0, 0.5, 1.0, 0.0]])
    # null = 3 + 3 = 6; best span (aa, bb) = 1 + 1 = 2.
    answers, no_answer = postprocess_predictions(examples, one_window(offsets), starts, ends, version_2=True)
    assert answers == {"q": ""}
    # softmax weight of the null score among [6, 2 (aa,bb), 1.5 (aa,aa), 1.5 (bb,bb)]
    pool = np.array([6.0, 2.0, 1.5, 1.5])
    assert no_answer["q"] == pytest.approx(np.exp(6.0) / np.exp(pool).sum())
    # A threshold above the gap (6 - 2 = 4) answers the span; v1.1 always answers one.
    answers, _ = postprocess_predictions(examples, one_window(offsets), starts, ends, version_2=True,
                                         null_score_diff_threshold=4.5)
    assert answers == {"q": "aa bb"}
    assert postprocess_predictions(examples, one_window(offsets), starts, ends)[0] == {"q": "aa bb"}


def test_the_best_span_over_several_windows_wins():
    context = "aa bb cc"
    examples = Dataset.from_list([{"id": "q", "context": context, "answers": {"text": ["cc"], "answer_start": [6]}}])
    features = Dataset.from_list([
        {"example_id": "q", "offset_mapping": [None, [0, 2], [3, 5], None]},
        {"example_id": "q", "offset_mapping": [None, [3, 5], [6, 8], None]},
    ])
    starts = np.array([[0.0, 2.0, 1.0, 0.0], [0.0, 1.0, 5.0, 0.0]])
    ends = np.array([[0.0, 2.0, 1.0, 0.0], [0.0, 1.0, 5.0, 0.0]])
    answers, _ = postprocess_predictions(examples, features, starts, ends)
    assert answers == {"q": "cc"}  # 5 + 5 in the second window beats 2 + 2 in the first


# ----------------------------------------------------------------------------- metric


def test_squad_metric_exact_match_and_f1_by_hand():
    metric = squad_metric("squad")
    references = [{"id": "a", "answers": {"text": ["The cat"], "answer_start": [0]}},
                  {"id": "b", "answers": {"text": ["red blue"], "answer_start": [0]}}]
    predictions = [{"id": "a", "prediction_text": "cat"},  # articles dropped: exact
                   {"id": "b", "prediction_text": "blue green"}]  # 1 shared token of 2 and 2: P = R = 1/2, F1 = 1/2
    values = metric.compute(predictions=predictions, references=references)
    assert values == pytest.approx({"exact_match": 50.0, "f1": 75.0})


def test_squad_v2_metric_has_the_official_keys_by_hand():
    metric = squad_metric("squad_v2")
    references = [{"id": "a", "answers": {"text": ["cat"], "answer_start": [0]}},
                  {"id": "b", "answers": {"text": [], "answer_start": []}}]
    predictions = [{"id": "a", "prediction_text": "cat", "no_answer_probability": 0.1},
                   {"id": "b", "prediction_text": "dog", "no_answer_probability": 0.9}]
    values = metric.compute(predictions=predictions, references=references)
    assert values["exact"] == pytest.approx(50.0) and values["f1"] == pytest.approx(50.0)
    assert values["HasAns_exact"] == pytest.approx(100.0) and values["NoAns_exact"] == pytest.approx(0.0)
    assert values["HasAns_total"] == 1 and values["NoAns_total"] == 1
    # Best threshold: answering nothing when P(no answer) > 0.1 gets both right.
    assert values["best_exact"] == pytest.approx(100.0) and values["best_f1"] == pytest.approx(100.0)


# ----------------------------------------------------------------------------- end to end


def test_squad_recipe_distils_a_distilbert_student_from_a_bert_teacher(tmp_path, capsys):
    tokenizer = tiny_tokenizer(tmp_path / "tok")
    teacher_dir, student_base = tmp_path / "teacher", tmp_path / "student_base"
    BertForQuestionAnswering(tiny_bert_config(vocab_size=len(tokenizer))).save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)
    DistilBertForQuestionAnswering(DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2,
                                                    hidden_dim=64, max_position_embeddings=64)).save_pretrained(student_base)
    tokenizer.save_pretrained(student_base)
    data = tmp_path / "squad.json"
    data.write_text(json.dumps(official_layout([{**q, "id": f"{q['id']}-{i}"} for i in range(4) for q in QUESTIONS[:2]])))
    output = tmp_path / "student"
    code = main(["train", os.path.join(RECIPES, "squad", "distilbert.yaml"),
                 "--teacher_model_name_or_path", str(teacher_dir), "--model_name_or_path", str(student_base),
                 "--train_file", str(data), "--validation_file", str(data), "--max_seq_length", "24",
                 "--doc_stride", "8", "--max_steps", "2", "--per_device_train_batch_size", "4", "--use_cpu", "true",
                 "--save_strategy", "no", "--disable_tqdm", "true", "--output_dir", str(output)])
    assert code == 0, capsys.readouterr().err
    results = json.load(open(output / "results.json"))
    assert results["task"] == "squad"
    metrics = results["student"]["metrics"]["validation"]
    assert {"eval_exact_match", "eval_f1"} <= set(metrics)
    assert results["student"]["score"] == pytest.approx(metrics["eval_f1"])
    assert results["recipe"]["loss_weights"] == {"task": 0.5, "kd": 0.5}
    student = AutoModelForQuestionAnswering.from_pretrained(output)
    assert type(student).__name__ == "DistilBertForQuestionAnswering"
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    from hf_distill.hub.card import write_model_card

    card = ModelCard.load(output / "README.md")
    assert card.data.pipeline_tag == "question-answering" and card.data.datasets == ["rajpurkar/squad"]
    assert 'pipeline("question-answering"' in card.text
    write_model_card(str(output), repo_id="me/tiny-qa")
    _, entries = model_index_to_eval_results(ModelCard.load(output / "README.md").data.to_dict()["model-index"])
    assert {(e.task_type, e.metric_type) for e in entries} == {("question-answering", "exact_match"),
                                                              ("question-answering", "f1")}
