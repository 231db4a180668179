"""SQuAD metrics as an `evaluate` module, shipped with hf-distill so that they load offline.

Two configurations with the inputs and result keys of the Hub's canonical modules:

- `"squad"` (SQuAD v1.1, the official `evaluate-v1.1.py`): `exact_match` and `f1`, in percent;
- `"squad_v2"` (SQuAD v2.0, the official `evaluate-v2.0.py`): `exact`, `f1`, `total`, `HasAns_exact`,
  `HasAns_f1`, `HasAns_total`, `NoAns_exact`, `NoAns_f1`, `NoAns_total` (when those questions exist),
  `best_exact`, `best_exact_thresh`, `best_f1`, `best_f1_thresh`.

Answers are compared after the official normalisation: lower case, punctuation removed, the articles
"a", "an" and "the" removed, whitespace collapsed; F1 is over the bags of normalised tokens, the best
over the gold answers. Load it by path: `evaluate.load("<site-packages>/hf_distill/metrics/squad", "squad")`.

`evaluate` scans this file's imports before loading it, so keep one import per line.
"""

import collections
import re
import string

import datasets
import evaluate

_CITATION = """\
@inproceedings{rajpurkar-etal-2016-squad,
    title = "{SQ}u{AD}: 100,000+ Questions for Machine Comprehension of Text",
    author = "Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy",
    booktitle = "Proceedings of EMNLP",
    year = "2016",
}
"""

_DESCRIPTION = """\
The official SQuAD v1.1 and v2.0 evaluation: exact match and token F1 of the predicted answer against the
gold answers, after normalisation (and, for v2.0, the no-answer questions and the best no-answer threshold).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of {"id": str, "prediction_text": str} (v2.0 also "no_answer_probability": float).
    references: list of {"id": str, "answers": {"text": [str], "answer_start": [int]}}; v2.0 questions with no
        answer have empty lists.
Returns:
    squad: {"exact_match": float, "f1": float}, in percent.
    squad_v2: {"exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total", "NoAns_exact", "NoAns_f1",
        "NoAns_total", "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"}.
Examples:
    >>> squad = evaluate.load("path/to/hf_distill/metrics/squad", "squad")
    >>> squad.compute(predictions=[{"id": "1", "prediction_text": "the Denver Broncos"}],
    ...               references=[{"id": "1", "answers": {"text": ["Denver Broncos"], "answer_start": [177]}}])
    {'exact_match': 100.0, 'f1': 100.0}
"""

CONFIGS = ["squad", "squad_v2"]


def normalize_answer(text):
    """Lower case, no punctuation, no articles (a, an, the), single spaces: the official normalisation."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match_score(prediction, gold):
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction, gold):
    """Token F1 of two answers (evaluate-v1.1.py): 0 when they share no token."""
    prediction_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(prediction_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_score_v2(prediction, gold):
    """Token F1 of evaluate-v2.0.py: when either answer normalises to nothing, 1 if both do, else 0."""
    if not normalize_answer(prediction) or not normalize_answer(gold):
        return float(normalize_answer(prediction) == normalize_answer(gold))
    return f1_score(prediction, gold)


def best_over_golds(score, prediction, golds):
    return max(score(prediction, gold) for gold in golds)


def squad_v1(predictions, references):
    """evaluate-v1.1.py: mean exact match and F1 over the questions, in percent."""
    texts = {p["id"]: p["prediction_text"] for p in predictions}
    exact, f1 = 0.0, 0.0
    for reference in references:
        golds = list(reference["answers"]["text"])
        prediction = texts.get(reference["id"], "")
        exact += best_over_golds(exact_match_score, prediction, golds)
        f1 += best_over_golds(f1_score, prediction, golds)
    total = len(references)
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total}


def best_threshold(scores, na_probs, has_answer, texts):
    """evaluate-v2.0.py's find_best_thresh: the no-answer threshold that maximises the score, and that score."""
    num_no_answer = sum(1 for qid in has_answer if not has_answer[qid])
    current = best = float(num_no_answer)
    threshold = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if has_answer[qid]:
            difference = scores[qid]
        elif texts[qid]:
            difference = -1.0
        else:
            difference = 0.0
        current += difference
        if current > best:
            best, threshold = current, na_probs[qid]
    return 100.0 * best / len(scores), threshold


def squad_v2(predictions, references, na_prob_threshold=1.0):
    """evaluate-v2.0.py: exact and F1 overall, on answerable and on unanswerable questions, and the best threshold."""
    texts = {p["id"]: p["prediction_text"] for p in predictions}
    na_probs = {p["id"]: float(p.get("no_answer_probability", 0.0)) for p in predictions}
    has_answer, exact, f1 = {}, {}, {}
    for reference in references:
        qid = reference["id"]
        golds = [text for text in reference["answers"]["text"] if normalize_answer(text)] or [""]
        has_answer[qid] = golds != [""]
        prediction = texts.get(qid, "")
        exact[qid] = best_over_golds(exact_match_score, prediction, golds)
        f1[qid] = best_over_golds(f1_score_v2, prediction, golds)
        na_probs.setdefault(qid, 0.0)
        texts.setdefault(qid, "")

    def thresholded(scores):
        return {qid: float(not has_answer[qid]) if na_probs[qid] > na_prob_threshold else score
                for qid, score in scores.items()}

    exact_t, f1_t = thresholded(exact), thresholded(f1)
    result = {"exact": 100.0 * sum(exact_t.values()) / len(exact_t), "f1": 100.0 * sum(f1_t.values()) / len(f1_t),
              "total": len(exact_t)}
    for name, keep in (("HasAns", True), ("NoAns", False)):
        ids = [qid for qid in has_answer if has_answer[qid] == keep]
        if ids:
            result[f"{name}_exact"] = 100.0 * sum(exact_t[q] for q in ids) / len(ids)
            result[f"{name}_f1"] = 100.0 * sum(f1_t[q] for q in ids) / len(ids)
            result[f"{name}_total"] = len(ids)
    result["best_exact"], result["best_exact_thresh"] = best_threshold(exact, na_probs, has_answer, texts)
    result["best_f1"], result["best_f1_thresh"] = best_threshold(f1, na_probs, has_answer, texts)
    return result


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Squad(evaluate.Metric):
    def _info(self):
        if self.config_name not in CONFIGS:
            raise KeyError(f"Unknown SQuAD configuration {self.config_name!r}: choose one of {CONFIGS}.")
        prediction = {"id": datasets.Value("string"), "prediction_text": datasets.Value("string")}
        if self.config_name == "squad_v2":
            prediction["no_answer_probability"] = datasets.Value("float32")
        reference = {
            "id": datasets.Value("string"),
            "answers": datasets.features.Sequence(
                {"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}
            ),
        }
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": prediction, "references": reference}),
            codebase_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
            reference_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
        )

    def _compute(self, predictions, references, no_answer_threshold=1.0):
        if self.config_name == "squad_v2":
            return squad_v2(predictions, references, no_answer_threshold)
        return squad_v1(predictions, references)
