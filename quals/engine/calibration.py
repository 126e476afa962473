"""From QUALS (nats per token) to a probability that the summary is consistent with its source, and a decision.

A ``Calibration`` is a logistic curve ``P(consistent) = 1 / (1 + exp(-(slope * quals + intercept)))`` and a
threshold on that probability. Bundled presets carry one fitted on human judgments (QAGS-C and QAGS-X, by
``benchmarks/human_correlation.py``; docs/calibration.md); ``quals calibrate`` fits one on a user's own labelled
data. The raw QUALS stays the primary value: the probability is a monotone map of it, so it
ranks summaries exactly as QUALS does.

>>> calibration = Calibration.fit([-2.0, -1.5, -1.2, -0.4, -0.2, -0.1], [0, 0, 1, 0, 1, 1])
>>> 0 < calibration.probability(-2.0) < calibration.probability(-0.1) < 1
True
>>> calibration.decide(-0.1), calibration.decide(-2.0)
(True, False)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Calibration:
    """``slope`` and ``intercept`` of the logistic curve; ``threshold`` on the probability (consistent if >=)."""

    slope: float
    intercept: float
    threshold: float = 0.5

    def probability(self, quals: float | None) -> float | None:
        if quals is None:
            return None
        z = self.slope * quals + self.intercept
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def decide(self, quals: float | None) -> bool | None:
        """True (consistent) when the probability reaches the threshold; ``None`` when nothing was scored."""
        probability = self.probability(quals)
        return None if probability is None else probability >= self.threshold

    @classmethod
    def fit(cls, values: list[float], labels: list[int], l2: float = 1e-3, steps: int = 50) -> Calibration:
        """Logistic regression of ``labels`` (1: consistent) on QUALS ``values`` (Newton's method, a little L2 on
        the slope), and the threshold with the best balanced accuracy on these data."""
        if len(set(labels)) != 2:
            raise ValueError("calibration needs both consistent (1) and inconsistent (0) examples")
        mean = sum(values) / len(values)
        scale = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 or 1.0
        xs = [(v - mean) / scale for v in values]  # standardized, so the step sizes are well behaved
        w = b = 0.0
        for _ in range(steps):
            ps = [1.0 / (1.0 + math.exp(-(w * x + b))) for x in xs]
            gw = sum((p - y) * x for p, y, x in zip(ps, labels, xs, strict=True)) + l2 * w
            gb = sum(p - y for p, y in zip(ps, labels, strict=True))
            hww = sum(p * (1 - p) * x * x for p, x in zip(ps, xs, strict=True)) + l2
            hwb = sum(p * (1 - p) * x for p, x in zip(ps, xs, strict=True))
            hbb = sum(p * (1 - p) for p in ps) + 1e-9
            det = hww * hbb - hwb * hwb
            w, b = w - (hbb * gw - hwb * gb) / det, b - (hww * gb - hwb * gw) / det
        curve = cls(float(w / scale), float(b - w * mean / scale))
        probabilities = [curve.probability(v) for v in values]
        threshold = max(sorted(set(probabilities)), key=lambda t: balanced_accuracy(
            [p >= t for p in probabilities], labels))
        return cls(curve.slope, curve.intercept, float(threshold))

    def to_dict(self) -> dict:
        return {"slope": self.slope, "intercept": self.intercept, "threshold": self.threshold}

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """A calibration JSON written by ``quals calibrate`` (its ``fitted_on`` notes are ignored here)."""
        fields = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(float(fields["slope"]), float(fields["intercept"]), float(fields["threshold"]))


def balanced_accuracy(predicted: list[bool], labels: list[int]) -> float:
    """Mean of the recall of each class."""
    positives = [p for p, y in zip(predicted, labels, strict=True) if y == 1]
    negatives = [not p for p, y in zip(predicted, labels, strict=True) if y == 0]
    return (sum(positives) / len(positives) + sum(negatives) / len(negatives)) / 2
