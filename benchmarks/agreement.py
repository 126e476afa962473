"""Agreement statistics for benchmarks/human_correlation.py: correlations with bootstrap intervals, balanced
accuracy at a held-out threshold, and the cross-validated calibration of QUALS into a probability.

Run as part of that script (its folder is on ``sys.path``); nothing here reads data or scores anything.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.stats import ConstantInputWarning, pearsonr, spearmanr
from sklearn.metrics import roc_auc_score

from quals import Calibration


def correlations(metric: list[float | None], rows: list[dict], bootstrap: int, seed: int) -> dict:
    """Pearson / Spearman vs human score, ROC AUC vs label (bootstrap 95% intervals), balanced accuracy."""
    values = np.array([np.nan if v is None else v for v in metric], dtype=float)
    unscored = int(np.isnan(values).sum())
    if unscored:
        values[np.isnan(values)] = np.nanmin(values) if unscored < len(values) else 0.0
    human = np.array([r["score"] for r in rows], dtype=float)
    labels = [r["label"] for r in rows]
    has_labels = all(label is not None for label in labels) and len(set(labels)) == 2
    label = np.array(labels, dtype=float) if has_labels else None

    def stats(index: np.ndarray) -> dict:
        x, y = values[index], human[index]
        result = {"pearson": _safe(lambda: pearsonr(x, y)[0]), "spearman": _safe(lambda: spearmanr(x, y)[0])}
        if has_labels and len(set(label[index])) == 2:
            result["roc_auc"] = float(roc_auc_score(label[index], x))
        return result

    point = stats(np.arange(len(rows)))
    rng = np.random.default_rng(seed)
    samples = [stats(rng.integers(0, len(rows), len(rows))) for _ in range(bootstrap)]
    for key in list(point):
        draws = [s[key] for s in samples if key in s and not math.isnan(s[key])]
        point[f"{key}_ci95"] = [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))] if draws else None
    if has_labels:
        point["balanced_accuracy"] = heldout_balanced_accuracy(values, label, [r.get("split") for r in rows], seed)
    point["unscored"] = unscored
    return point


def best_threshold(values: np.ndarray, label: np.ndarray) -> float:
    """The threshold (predict consistent when value >= it) with the highest balanced accuracy on these rows."""
    candidates = np.unique(values)
    return float(max(candidates, key=lambda t: balanced_accuracy(values >= t, label)))


def balanced_accuracy(predicted: np.ndarray, label: np.ndarray) -> float:
    positive, negative = label == 1, label == 0
    return float((predicted[positive].mean() + (~predicted[negative]).mean()) / 2)


def heldout_balanced_accuracy(values: np.ndarray, label: np.ndarray, splits: list, seed: int) -> float:
    """Balanced accuracy with a threshold tuned apart from the rows it is measured on: on the ``val`` split if
    the data has one (measured on the rest), else 5-fold cross-validation (stratified by label)."""
    val = np.array([s == "val" for s in splits])
    if val.any() and (~val).any():
        return balanced_accuracy(values[~val] >= best_threshold(values[val], label[val]), label[~val])
    fold = folds(label, 5, seed)
    predicted = np.zeros(len(values), dtype=bool)
    for k in range(5):
        test = fold == k
        predicted[test] = values[test] >= best_threshold(values[~test], label[~test])
    return balanced_accuracy(predicted, label)


def _safe(fn) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)  # a bootstrap sample can be constant: nan, skipped
        try:
            return float(fn())
        except ValueError:
            return float("nan")




def folds(label: np.ndarray, k: int, seed: int) -> np.ndarray:
    """A fold number per row, stratified by label."""
    out = np.zeros(len(label), dtype=int)
    rng = np.random.default_rng(seed)
    for cls in (0, 1):
        index = rng.permutation(np.flatnonzero(label == cls))
        out[index] = np.arange(len(index)) % k
    return out


def calibration_cv(values: np.ndarray, label: np.ndarray, groups: np.ndarray, seed: int, k: int = 5) -> dict:
    """Cross-validated calibration: for each fold, ``Calibration.fit`` on the other folds, probabilities and
    decisions on this one. Returns the held-out probability and decision of every row and, per group (data set),
    the balanced accuracy of the decisions and the expected calibration error (10 equal-width bins) of the
    probabilities."""
    fold = folds(label, k, seed)
    probability, decision = np.zeros(len(values)), np.zeros(len(values), dtype=bool)
    for f in range(k):
        test = fold == f
        calibration = Calibration.fit(list(values[~test]), list(label[~test].astype(int)))
        probability[test] = [calibration.probability(v) for v in values[test]]
        decision[test] = [calibration.decide(v) for v in values[test]]
    report = {}
    for group in dict.fromkeys(groups):
        rows = groups == group
        report[str(group)] = {"balanced_accuracy": balanced_accuracy(decision[rows], label[rows]),
                              "ece": expected_calibration_error(probability[rows], label[rows])}
    return report


def expected_calibration_error(probability: np.ndarray, label: np.ndarray, bins: int = 10) -> float:
    """Sum over equal-width probability bins of (share of rows in the bin) x |mean probability - share positive|."""
    index = np.minimum((probability * bins).astype(int), bins - 1)
    return float(sum((index == b).mean() * abs(probability[index == b].mean() - label[index == b].mean())
                     for b in range(bins) if (index == b).any()))
