"""benchmarks/agreement.py: paired differences between two metrics use the same bootstrap resamples, so a small,
consistent lead is seen as one even when each metric's own interval is wide."""

import sys
from pathlib import Path

import numpy as np
import pytest


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
agreement = pytest.importorskip("agreement")  # needs the bench extra (scipy, scikit-learn)


def _rows(n: int = 80, seed: int = 0) -> tuple[list[dict], np.random.Generator]:
    rng = np.random.default_rng(seed)
    scores = rng.random(n)
    return [{"score": float(s), "label": int(s > 0.5)} for s in scores], rng


def test_the_difference_is_the_difference_of_the_points_and_zero_against_itself():
    rows, rng = _rows()
    a = [r["score"] + rng.normal(0, 0.5) for r in rows]
    b = [None if i % 9 == 0 else r["score"] + rng.normal(0, 0.8) for i, r in enumerate(rows)]
    difference = agreement.paired_difference(a, b, rows, 200, seed=3)
    first, second = agreement.correlations(a, rows, 200, 3), agreement.correlations(b, rows, 200, 3)
    for key in ("pearson", "spearman", "roc_auc"):
        assert difference[key] == pytest.approx(first[key] - second[key])
    same = agreement.paired_difference(a, a, rows, 50, seed=0)
    assert same["pearson"] == 0 and same["pearson_ci95"] == [0, 0] and same["roc_auc_ahead"] == 0


def test_a_small_consistent_lead_is_resolved_by_pairing_not_by_separate_intervals():
    rows, rng = _rows(120)
    noise = rng.normal(0, 1.0, len(rows))
    weaker = [r["score"] + e for r, e in zip(rows, noise, strict=True)]
    stronger = [r["score"] + 0.8 * e for r, e in zip(rows, noise, strict=True)]  # the same errors, smaller
    difference = agreement.paired_difference(stronger, weaker, rows, 300, seed=0)
    assert difference["pearson"] > 0 and difference["pearson_ci95"][0] > 0 and difference["pearson_ahead"] == 1.0
    separate = [agreement.correlations(m, rows, 300, 0)["pearson_ci95"] for m in (stronger, weaker)]
    assert separate[0][0] < separate[1][1]  # the two intervals overlap: unpaired, this would read as a tie
    assert difference["pearson_ci95"][1] - difference["pearson_ci95"][0] < separate[0][1] - separate[0][0]


def test_the_table_compares_each_reading_with_each_baseline_and_each_later_reading():
    rows, rng = _rows(30)
    metric = {name: list(rng.random(len(rows))) for name in ("a", "b", "c", "bigram", "unigram")}
    table = agreement.paired_table({k: metric[k] for k in "abc"}, {k: metric[k] for k in ("bigram", "unigram")},
                                   rows, 20, 0)
    assert list(table) == ["a - bigram", "a - unigram", "b - bigram", "b - unigram", "c - bigram", "c - unigram",
                           "a - b", "a - c", "b - c"]
