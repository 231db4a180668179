"""GLUE metrics as an `evaluate` module, shipped with hf-distill so that they load offline.

Same configuration names and result keys as the Hub's canonical `glue` metric: `accuracy` (every
classification task), `f1` (MRPC, QQP), `matthews_correlation` (CoLA), `pearson` and `spearmanr` (STS-B).
Load it by path: `evaluate.load("<site-packages>/hf_distill/metrics/glue", "mrpc")`.

The four statistics are written here in numpy (no scipy or scikit-learn to install), each the formula of
the function the Hub's module calls: `sklearn.metrics.f1_score` (binary, positive class 1, 0 when
ill-defined), `sklearn.metrics.matthews_corrcoef` (0 when a marginal is constant),
`scipy.stats.pearsonr` and `scipy.stats.spearmanr` (average ranks for ties; NaN for a constant input).
The test suite checks them against those functions.

`evaluate` scans this file's imports before loading it, so keep one import per line.
"""

import datasets
import evaluate
import numpy as np

_CITATION = """\
@inproceedings{wang2019glue,
  title={{GLUE}: A Multi-Task Benchmark and Analysis Platform for Natural Language Understanding},
  author={Wang, Alex and Singh, Amanpreet and Michael, Julian and Hill, Felix and Levy, Omer and Bowman, Samuel R.},
  note={In the Proceedings of ICLR.},
  year={2019}
}
"""

_DESCRIPTION = """\
GLUE, the General Language Understanding Evaluation benchmark (https://gluebenchmark.com/), is a collection of
resources for training, evaluating, and analyzing natural language understanding systems. This module computes
the official metric(s) of each task.
"""

_KWARGS_DESCRIPTION = """
Compute GLUE evaluation metric associated to each GLUE dataset.
Args:
    predictions: list of predictions to score: class indices, or similarity scores for stsb.
    references: list of references, one per prediction: class indices, or similarity scores for stsb.
Returns: depending on the GLUE subset, one or several of:
    "accuracy": Accuracy
    "f1": F1 score (binary, positive class 1)
    "pearson": Pearson Correlation
    "spearmanr": Spearman Correlation
    "matthews_correlation": Matthews Correlation
Examples:
    >>> glue_metric = evaluate.load("path/to/hf_distill/metrics/glue", "mrpc")
    >>> glue_metric.compute(predictions=[0, 1], references=[0, 1])
    {'accuracy': 1.0, 'f1': 1.0}
"""

CONFIGS = [
    "sst2",
    "mnli",
    "mnli_mismatched",
    "mnli_matched",
    "cola",
    "stsb",
    "mrpc",
    "qqp",
    "qnli",
    "rte",
    "wnli",
    "hans",
]


def simple_accuracy(preds, labels):
    return float((np.asarray(preds) == np.asarray(labels)).mean())


def f1_positive_class(preds, labels):
    """F1 of class 1: ``2·TP / (2·TP + FP + FN)``, 0 when there is no positive prediction nor label."""
    preds, labels = np.asarray(preds) == 1, np.asarray(labels) == 1
    true_positives = float(np.sum(preds & labels))
    denominator = 2 * true_positives + float(np.sum(preds & ~labels)) + float(np.sum(~preds & labels))
    return 2 * true_positives / denominator if denominator else 0.0


def matthews_correlation(preds, labels):
    """Matthews correlation over K classes from the confusion counts (Gorodkin's form, as scikit-learn):

    ``(c·s − Σ_k p_k·t_k) / sqrt((s² − Σ_k p_k²)·(s² − Σ_k t_k²))`` with ``c`` correct, ``s`` examples, ``p_k`` /
    ``t_k`` predicted / true counts of class k; 0 when the denominator is 0.
    """
    preds, labels = np.asarray(preds), np.asarray(labels)
    classes = np.union1d(preds, labels)
    predicted = np.array([np.sum(preds == k) for k in classes], dtype=np.float64)
    true = np.array([np.sum(labels == k) for k in classes], dtype=np.float64)
    correct, total = float(np.sum(preds == labels)), float(len(labels))
    denominator = np.sqrt((total**2 - np.sum(predicted**2)) * (total**2 - np.sum(true**2)))
    return float((correct * total - np.sum(predicted * true)) / denominator) if denominator else 0.0


def pearson_correlation(x, y):
    """Pearson's r; NaN when either input is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    dx, dy = x - x.mean(), y - y.mean()
    denominator = np.sqrt(np.sum(dx * dx) * np.sum(dy * dy))
    return float(np.sum(dx * dy) / denominator) if denominator else float("nan")


def average_ranks(values):
    """1-based ranks, tied values sharing the mean of their ranks (`scipy.stats.rankdata`'s "average")."""
    values = np.asarray(values)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse = np.unique(values, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    counts = np.bincount(inverse)
    return (sums / counts)[inverse]


def acc_and_f1(preds, labels):
    return {"accuracy": simple_accuracy(preds, labels), "f1": f1_positive_class(preds, labels)}


def pearson_and_spearman(preds, labels):
    return {
        "pearson": pearson_correlation(preds, labels),
        "spearmanr": pearson_correlation(average_ranks(preds), average_ranks(labels)),
    }


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Glue(evaluate.Metric):
    def _info(self):
        if self.config_name not in CONFIGS:
            raise KeyError(f"Unknown GLUE configuration {self.config_name!r}: choose one of {CONFIGS}.")
        dtype = "float32" if self.config_name == "stsb" else "int64"
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value(dtype), "references": datasets.Value(dtype)}),
            codebase_urls=[],
            reference_urls=[],
            format="numpy",
        )

    def _compute(self, predictions, references):
        if self.config_name == "cola":
            return {"matthews_correlation": matthews_correlation(predictions, references)}
        if self.config_name == "stsb":
            return pearson_and_spearman(predictions, references)
        if self.config_name in ("mrpc", "qqp"):
            return acc_and_f1(predictions, references)
        return {"accuracy": simple_accuracy(predictions, references)}
