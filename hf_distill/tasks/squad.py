"""SQuAD v1.1 and v2.0: loading, features with offsets, post-processing and the official metric.

DistilBERT's only task-distillation script is SQuAD v1.1 (`run_squad_w_distillation.py`); this module
gives the task family the same task. `load_squad_task(data_args, tokenizer, seed)` returns a `TaskData` for
`*ForQuestionAnswering` models:

- **data** from the Hub (`rajpurkar/squad`, `rajpurkar/squad_v2`) or local SQuAD-format JSON (the official
  `{"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}` layout, or one flat record per question:
  `id`, `context`, `question`, `answers` with `text` and `answer_start` lists);
- **features**: question and context tokenized together, long contexts split into windows of
  `max_seq_length` tokens that overlap by `doc_stride`, each window labelled with the answer's token
  span (or the `[CLS]` position when the answer is not inside it, and for unanswerable questions);
- **post-processing**: for each question, the best span over all its windows among the `n_best_size` top
  start and end logits, no longer than `max_answer_length` tokens and inside the context; for SQuAD v2.0 the
  empty answer when the null score (start and end on `[CLS]`) beats the best span by more than
  `null_score_diff_threshold`;
- **metric**: the official evaluation, shipped as `hf_distill/metrics/squad` (keys `exact_match`, `f1`;
  v2.0: `exact`, `f1`, `HasAns_*`, `NoAns_*`, `best_*`). The retention score is F1.
"""

from __future__ import annotations

import collections
import json
import logging
import os
from typing import Any, Callable, Optional

import numpy as np
from datasets import Dataset, DatasetDict
from transformers import EvalPrediction, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

SQUAD_HUB_IDS = {"squad": "rajpurkar/squad", "squad_v2": "rajpurkar/squad_v2"}
"""Task name → the dataset on the Hub."""
SQUAD_LOCAL_FILES = {"squad": ("train-v1.1.json", "dev-v1.1.json"), "squad_v2": ("train-v2.0.json", "dev-v2.0.json")}
"""Task name → the official file names looked for in `data_dir`."""
METRIC_SCRIPT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "metrics", "squad")


def is_squad_task(name: str) -> bool:
    """Whether `name` is a question-answering task of this module (`squad`, `squad_v2`)."""
    return name.lower() in SQUAD_HUB_IDS


def _answers(raw: Any, where: str) -> dict[str, list]:
    """Answers as `{"text": [...], "answer_start": [...]}`, from that layout or a list of `{"text", "answer_start"}`."""
    if isinstance(raw, dict) and "text" in raw and "answer_start" in raw:
        texts, starts = list(raw["text"]), [int(s) for s in raw["answer_start"]]
    elif isinstance(raw, list):
        texts, starts = [a["text"] for a in raw], [int(a["answer_start"]) for a in raw]
    else:
        raise ValueError(f"{where}: 'answers' must be {{'text': [...], 'answer_start': [...]}} or a list of them.")
    if len(texts) != len(starts):
        raise ValueError(f"{where}: 'answers' has {len(texts)} texts but {len(starts)} answer_start values.")
    return {"text": texts, "answer_start": starts}


def read_squad_json(path: str) -> list[dict[str, Any]]:
    """Reads a SQuAD-format JSON file (official layout, a list of flat records, or JSON lines) into flat records.

    Returns:
        `list[dict]`: One `{"id", "title", "context", "question", "answers"}` per question.

    Raises:
        ValueError: For a file in neither layout, or a question without `id`, `question`, `context` or answers,
            naming the file and the question.
    """
    with open(path, encoding="utf-8") as file:
        text = file.read()
    try:
        content = json.loads(text)
    except json.JSONDecodeError:
        try:
            content = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not SQuAD-format JSON (nor JSON lines): {error}.") from None
    records = []
    if isinstance(content, dict) and isinstance(content.get("data"), list):
        for article in content["data"]:
            for paragraph in article.get("paragraphs", []):
                for qa in paragraph.get("qas", []):
                    records.append({"id": qa.get("id"), "title": article.get("title", ""), "context": paragraph.get("context"),
                                    "question": qa.get("question"), "answers": qa.get("answers", [])})
    elif isinstance(content, list):
        records = [dict(record) for record in content]
    else:
        raise ValueError(
            f"{path} is not SQuAD-format JSON: expected {{'data': [{{'paragraphs': [{{'context', 'qas'}}]}}]}}, a list "
            "of records or JSON lines with id, context, question and answers."
        )
    for index, record in enumerate(records):
        where = f"{path}, question {record.get('id', index)!r}"
        missing = [key for key in ("id", "context", "question", "answers") if record.get(key) is None]
        if missing:
            raise ValueError(f"{where} has no {', '.join(missing)}: every question needs id, context, question and answers.")
        record["id"] = str(record["id"])
        record.setdefault("title", "")
        record["answers"] = _answers(record["answers"], where)
    if not records:
        raise ValueError(f"{path} holds no question: give a SQuAD-format file with at least one.")
    seen: set[str] = set()
    for record in records:
        if record["id"] in seen:
            raise ValueError(f"{path}: question id {record['id']!r} appears twice; the metric matches answers to "
                             "questions by id, so every id must be unique.")
        seen.add(record["id"])
    return records


def load_squad(
    name: str,
    data_dir: Optional[str] = None,
    data_files: Optional[dict[str, str]] = None,
    max_train_samples: Optional[int] = None,
    max_eval_samples: Optional[int] = None,
    seed: int = 42,
) -> DatasetDict:
    """Loads SQuAD (`name` `"squad"` or `"squad_v2"`) as `train` and `validation` splits of flat records.

    Args:
        name (`str`): `"squad"` (v1.1) or `"squad_v2"`.
        data_dir (`str`, *optional*): A folder with the official files (`train-v1.1.json`, `dev-v1.1.json`, or the
            v2.0 names).
        data_files (`dict[str, str]`, *optional*): `{"train": path, "validation": path}` (either may be missing
            when `data_dir` gives it).
        max_train_samples (`int`, *optional*): A seeded random subset of the training questions.
        max_eval_samples (`int`, *optional*): A seeded random subset of the evaluation questions.
        seed (`int`, defaults to 42): Seed of the subsets.

    Returns:
        `DatasetDict` with columns `id`, `title`, `context`, `question`, `answers`.
    """
    name = name.lower()
    files = dict(data_files or {})
    if data_dir:
        for split, file_name in zip(("train", "validation"), SQUAD_LOCAL_FILES[name]):
            path = os.path.join(os.path.expanduser(data_dir), file_name)
            if split not in files and os.path.isfile(path):
                files[split] = path
        if not files:
            raise FileNotFoundError(
                f"No SQuAD files in {data_dir}: expected {' and '.join(SQUAD_LOCAL_FILES[name])}, or give --train_file "
                "and --validation_file."
            )
    if files:
        splits = {split: Dataset.from_list(read_squad_json(os.path.expanduser(path))) for split, path in files.items()}
        raw = DatasetDict(splits)
    else:
        from datasets import load_dataset

        try:
            raw = load_dataset(SQUAD_HUB_IDS[name])
        except Exception as error:  # noqa: BLE001 - offline or missing dataset: say what to give instead
            raise ValueError(
                f"Could not load {SQUAD_HUB_IDS[name]} from the Hub ({type(error).__name__}): offline, give the SQuAD "
                "JSON files with --data_dir (official file names) or --train_file/--validation_file."
            ) from None
    for split, size in (("train", max_train_samples), ("validation", max_eval_samples)):
        if split in raw and size is not None and size < len(raw[split]):
            raw[split] = raw[split].shuffle(seed=seed).select(range(size))
    return raw


def check_fast_tokenizer(tokenizer: PreTrainedTokenizerBase) -> None:
    """SQuAD features need character offsets, which only fast tokenizers give."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"SQuAD needs a fast tokenizer (character offsets), got {type(tokenizer).__name__}: save the model's "
            "tokenizer with its tokenizer.json, or load it with use_fast=True."
        )


def _answer_span(offsets: list, sequence_ids: list, context_index: int, answers: dict, cls_index: int) -> tuple[int, int]:
    """The token span of the first answer inside this window, or `(cls_index, cls_index)` when it is not inside it."""
    if not answers["answer_start"]:
        return cls_index, cls_index
    start_char = answers["answer_start"][0]
    end_char = start_char + len(answers["text"][0])
    context = [k for k, sid in enumerate(sequence_ids) if sid == context_index]
    first, last = context[0], context[-1]
    if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
        return cls_index, cls_index
    start = first
    while start <= last and offsets[start][0] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end][1] >= end_char:
        end -= 1
    return start - 1, end + 1


def squad_features(
    examples: dict[str, list],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    doc_stride: int,
    keep_offsets: bool,
) -> dict[str, list]:
    """Tokenizes a batch of questions into windows with their answer spans (a `Dataset.map(batched=True)` function).

    Each window gets `start_positions`/`end_positions` (the `[CLS]` index when its context does not hold the
    answer). With `keep_offsets` (evaluation) it also keeps `example_id` and `offset_mapping`, with `None` for
    the tokens outside the context, for `postprocess_predictions`.
    """
    pad_on_right = tokenizer.padding_side == "right"
    questions = [question.lstrip() for question in examples["question"]]
    contexts = examples["context"]
    encoded = tokenizer(
        questions if pad_on_right else contexts,
        contexts if pad_on_right else questions,
        truncation="only_second" if pad_on_right else "only_first",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )
    sample_map = encoded.pop("overflow_to_sample_mapping")
    context_index = 1 if pad_on_right else 0
    starts, ends, example_ids, kept_offsets = [], [], [], []
    for index, offsets in enumerate(encoded["offset_mapping"]):
        input_ids = encoded["input_ids"][index]
        cls_index = input_ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in input_ids else 0
        sequence_ids = encoded.sequence_ids(index)
        sample = sample_map[index]
        start, end = _answer_span(offsets, sequence_ids, context_index, examples["answers"][sample], cls_index)
        starts.append(start)
        ends.append(end)
        if keep_offsets:
            example_ids.append(examples["id"][sample])
            kept_offsets.append([o if sequence_ids[k] == context_index else None for k, o in enumerate(offsets)])
    encoded["start_positions"], encoded["end_positions"] = starts, ends
    if keep_offsets:
        encoded["example_id"], encoded["offset_mapping"] = example_ids, kept_offsets
    else:
        encoded.pop("offset_mapping")
    return dict(encoded)


def tokenize_squad(raw: DatasetDict, tokenizer: PreTrainedTokenizerBase, max_length: int, doc_stride: int) -> DatasetDict:
    """`squad_features` over every split; evaluation splits keep `example_id` and `offset_mapping`."""
    check_fast_tokenizer(tokenizer)
    if doc_stride >= max_length - 8:
        raise ValueError(
            f"doc_stride={doc_stride} must be well below max_seq_length={max_length} (the question takes part of the "
            "window too): use e.g. doc_stride 128 with max_seq_length 384."
        )
    features = {}
    for split, dataset in raw.items():
        features[split] = dataset.map(
            squad_features, batched=True, remove_columns=dataset.column_names,
            fn_kwargs={"tokenizer": tokenizer, "max_length": max_length, "doc_stride": doc_stride,
                       "keep_offsets": split != "train"},
        )
    return DatasetDict(features)


def postprocess_predictions(
    examples: Dataset,
    features: Dataset,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    version_2: bool = False,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    null_score_diff_threshold: float = 0.0,
) -> tuple[dict[str, str], dict[str, float]]:
    """Turns window logits into one answer text per question.

    For each question, over all its windows: the candidate spans pair one of the `n_best_size` highest start
    logits with one of the `n_best_size` highest end logits, both inside the context, end not before start, at
    most `max_answer_length` tokens; the best candidate maximises ``start_logit + end_logit``. The null score
    is the smallest ``start_logit[CLS] + end_logit[CLS]`` over the windows. SQuAD v2.0 answers the empty string
    when ``null score > best score + null_score_diff_threshold``.

    Returns:
        `tuple[dict[str, str], dict[str, float]]`: The answer text by question id, and the probability of no
        answer (the softmax weight of the null score among the null score and the candidates' scores).
    """
    windows = collections.defaultdict(list)
    for index, example_id in enumerate(features["example_id"]):
        windows[example_id].append(index)
    all_offsets = features["offset_mapping"]
    answers, no_answer = {}, {}
    for example in examples:
        best_score, best_text, null_score, scores = None, "", None, []
        for index in windows.get(example["id"], []):
            offsets, starts, ends = all_offsets[index], start_logits[index], end_logits[index]
            length = min(len(offsets), len(starts))
            window_null = float(starts[0] + ends[0])  # [CLS] opens every window (right padding)
            null_score = window_null if null_score is None else min(null_score, window_null)
            top_starts = np.argsort(starts[:length])[::-1][:n_best_size]
            top_ends = np.argsort(ends[:length])[::-1][:n_best_size]
            for s in top_starts:
                for e in top_ends:
                    if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                        continue
                    score = float(starts[s] + ends[e])
                    scores.append(score)
                    if best_score is None or score > best_score:
                        best_score = score
                        best_text = example["context"][offsets[s][0]:offsets[e][1]]
        if null_score is None:
            null_score = 0.0
        pool = np.array([null_score, *scores], dtype=np.float64)
        weights = np.exp(pool - pool.max())
        no_answer[example["id"]] = float(weights[0] / weights.sum())
        if version_2 and (best_score is None or null_score > best_score + null_score_diff_threshold):
            answers[example["id"]] = ""
        else:
            answers[example["id"]] = best_text
    return answers, no_answer


def squad_metric(name: str):
    """The SQuAD `evaluate` module: the Hub's `squad`/`squad_v2` when reachable, else the shipped copy."""
    import evaluate

    from .glue import _env_true

    if not (_env_true("HF_HUB_OFFLINE") or _env_true("HF_EVALUATE_OFFLINE")):
        try:
            return evaluate.load(name)
        except Exception:  # noqa: BLE001 - an unreachable or failing Hub falls back to the shipped copy
            pass
    return evaluate.load(METRIC_SCRIPT_DIR, name)


def build_squad_metrics(
    name: str,
    examples: Dataset,
    features: Dataset,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    null_score_diff_threshold: float = 0.0,
) -> Callable[[EvalPrediction], dict[str, float]]:
    """`compute_metrics` for `Trainer` on the evaluation windows `features` of the questions `examples`."""
    version_2 = name == "squad_v2"
    metric = squad_metric(name)
    references = [{"id": example["id"], "answers": example["answers"]} for example in examples]

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        start_logits, end_logits = prediction.predictions[:2]
        if len(start_logits) != len(features):
            raise ValueError(
                f"Got logits for {len(start_logits)} windows but the evaluation set has {len(features)}: evaluate on "
                "the TaskData's evaluation set, whose windows the metric maps back to questions."
            )
        answers, no_answer = postprocess_predictions(
            examples, features, np.asarray(start_logits), np.asarray(end_logits), version_2, n_best_size,
            max_answer_length, null_score_diff_threshold,
        )
        predictions = [{"id": qid, "prediction_text": text, **({"no_answer_probability": no_answer[qid]} if version_2 else {})}
                       for qid, text in answers.items()]
        values = metric.compute(predictions=predictions, references=references)
        return {key: float(value) for key, value in values.items()}

    return compute_metrics
