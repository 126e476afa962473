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

from quals import Calibration, balanced_accuracy


def correlations(metric: list[float | None], rows: list[dict], bootstrap: int, seed: int) -> dict:
    """Pearson / Spearman vs human score, ROC AUC vs label (bootstrap 95% intervals), balanced accuracy."""
    values, unscored = filled(metric)
    human, label = _targets(rows)
    point = _stats(values, human, label, np.arange(len(rows)))
    samples = [_stats(values, human, label, index) for index in resamples(len(rows), bootstrap, seed)]
    for key in list(point):
        point[f"{key}_ci95"] = _interval([s.get(key, math.nan) for s in samples])
    accuracy = None if label is None else heldout_balanced_accuracy(values, label, [r.get("split") for r in rows],
                                                                      seed)
    if accuracy is not None:
        point["balanced_accuracy"] = accuracy
    point["unscored"] = unscored
    return point


def paired_difference(metric_a: list[float | None], metric_b: list[float | None], rows: list[dict],
                      bootstrap: int, seed: int) -> dict:
    """Metric a minus metric b in Pearson / Spearman / ROC AUC, on the same rows and the same bootstrap resamples
    (those of ``correlations`` with this seed): the difference, its 95 % interval and the share of resamples in
    which a is ahead. An interval that holds 0 means the two metrics tie on these rows."""
    (a, _), (b, _) = filled(metric_a), filled(metric_b)
    human, label = _targets(rows)

    def difference(index: np.ndarray) -> dict:
        first, second = _stats(a, human, label, index), _stats(b, human, label, index)
        return {key: first[key] - second[key] for key in first if key in second}

    point = difference(np.arange(len(rows)))
    samples = [difference(index) for index in resamples(len(rows), bootstrap, seed)]
    for key in list(point):
        draws = [d for s in samples if not math.isnan(d := s.get(key, math.nan))]
        point[f"{key}_ci95"] = _interval(draws)
        point[f"{key}_ahead"] = float(np.mean([d > 0 for d in draws])) if draws else None
    return point


def paired_table(readings: dict[str, list], baselines: dict[str, list], rows: list[dict], bootstrap: int,
                 seed: int) -> dict[str, dict]:
    """``paired_difference`` of each reading minus each baseline and minus each reading after it, keyed
    ``"a - b"``."""
    names = list(readings)
    comparisons = [(a, b, baselines[b]) for a in names for b in baselines]
    comparisons += [(a, b, readings[b]) for i, a in enumerate(names) for b in names[i + 1:]]
    return {f"{a} - {b}": paired_difference(readings[a], other, rows, bootstrap, seed) for a, b, other in comparisons}


def filled(metric: list[float | None]) -> tuple[np.ndarray, int]:
    """The metric as an array, unscored rows (None) given the lowest value scored; and how many were unscored."""
    values = np.array([np.nan if v is None else v for v in metric], dtype=float)
    unscored = int(np.isnan(values).sum())
    if unscored:
        values[np.isnan(values)] = np.nanmin(values) if unscored < len(values) else 0.0
    return values, unscored


def resamples(n: int, bootstrap: int, seed: int) -> list[np.ndarray]:
    """The bootstrap's row indexes: ``bootstrap`` draws of n rows with replacement, the same for every metric."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n, n) for _ in range(bootstrap)]


def _targets(rows: list[dict]) -> tuple[np.ndarray, np.ndarray | None]:
    """Human scores, and binary labels when every row has one and both classes occur."""
    human = np.array([r["score"] for r in rows], dtype=float)
    labels = [r["label"] for r in rows]
    has_labels = all(label is not None for label in labels) and len(set(labels)) == 2
    return human, np.array(labels, dtype=float) if has_labels else None


def _stats(values: np.ndarray, human: np.ndarray, label: np.ndarray | None, index: np.ndarray) -> dict:
    x, y = values[index], human[index]
    result = {"pearson": _safe(lambda: pearsonr(x, y)[0]), "spearman": _safe(lambda: spearmanr(x, y)[0])}
    if label is not None and len(set(label[index])) == 2:
        result["roc_auc"] = float(roc_auc_score(label[index], x))
    return result


def _interval(draws: list[float]) -> list[float] | None:
    draws = [d for d in draws if not math.isnan(d)]
    return [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))] if draws else None


def best_threshold(values: np.ndarray, label: np.ndarray) -> float:
    """The threshold (predict consistent when value >= it) with the highest balanced accuracy on these rows."""
    candidates = np.unique(values)
    return float(max(candidates, key=lambda t: balanced_accuracy(values >= t, label)))


def heldout_balanced_accuracy(values: np.ndarray, label: np.ndarray, splits: list, seed: int) -> float | None:
    """Balanced accuracy with a threshold tuned apart from the rows it is measured on: on the ``val`` split if
    the data has one (measured on the rest), else 5-fold cross-validation (stratified by label). None when either
    part lacks a label (or, without a split, either label has fewer than 5 rows)."""
    val = np.array([s == "val" for s in splits])
    if val.any() and (~val).any():
        if len(set(label[val])) < 2 or len(set(label[~val])) < 2:
            return None
        return balanced_accuracy(values[~val] >= best_threshold(values[val], label[val]), label[~val])
    if not can_fold(label, 5):
        return None
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


def can_fold(label: np.ndarray, k: int) -> bool:
    """Whether every one of k label-stratified folds can hold both labels (each label has at least k rows)."""
    return min(np.bincount(label.astype(int), minlength=2)) >= k


def folds(label: np.ndarray, k: int, seed: int) -> np.ndarray:
    """A fold number per row, stratified by label."""
    out = np.zeros(len(label), dtype=int)
    rng = np.random.default_rng(seed)
    for cls in (0, 1):
        index = rng.permutation(np.flatnonzero(label == cls))
        out[index] = np.arange(len(index)) % k
    return out


def calibration_cv(values: np.ndarray, label: np.ndarray, groups: np.ndarray, seed: int,
                   k: int = 5) -> dict | None:
    """Cross-validated calibration: for each fold, ``Calibration.fit`` on the other folds, probabilities and
    decisions on this one. Returns, per group (data set), the balanced accuracy of those held-out decisions and the
    expected calibration error (10 equal-width bins) of the held-out probabilities. None when a label has fewer
    than k rows (``can_fold``)."""
    if not can_fold(label, k):
        return None
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
        report[str(group)] = {"balanced_accuracy": float(balanced_accuracy(decision[rows], label[rows])),
                              "ece": expected_calibration_error(probability[rows], label[rows])}
    return report


def expected_calibration_error(probability: np.ndarray, label: np.ndarray, bins: int = 10) -> float:
    """Sum over equal-width probability bins of (share of rows in the bin) x |mean probability - share positive|."""
    index = np.minimum((probability * bins).astype(int), bins - 1)
    return float(sum((index == b).mean() * abs(probability[index == b].mean() - label[index == b].mean())
                     for b in range(bins) if (index == b).any()))
