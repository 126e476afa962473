"""Adapt any scorer to one call: ``scores = scorer(summaries, sources, references) -> list[float | None]``.

Accepted scorers (:func:`as_score_function`):

- an object with a batch ``score(summaries, sources)`` method, e.g. ``quals.QualsScorer``; items may be floats,
  ``None`` or objects with a ``.quals`` (or ``.score``) attribute. A ``references=`` parameter, if the method has
  one, receives the reference summaries;
- a callable ``f(summaries, sources)`` (same return convention, same optional ``references=``);
- an ``evaluate`` module: ``compute()`` is called with ``predictions=`` (the summaries) plus, for each input feature
  the module declares, ``references=`` (reference summaries) and ``sources=``/``documents=`` (the sources). The
  per-summary scores are read from ``metric_key`` in the result, or from the only list of the right length.

:class:`RougeScorer` (the paper's ROUGE-contrastive baseline) scores a summary by ROUGE against its reference.

>>> score = as_score_function(lambda summaries, sources: [float(len(s)) for s in summaries])
>>> score(["ab", "abc"], ["doc", "doc"], ["r", "r"])
[2.0, 3.0]
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence


ScoreFunction = Callable[[list[str], list[str], list[str]], list[float | None]]


def to_score(item) -> float | None:
    """A float, or None when the item carries no usable score (None, NaN, infinite, or an unscored result)."""
    if item is None:
        return None
    for attribute in ("quals", "score"):
        if not isinstance(item, (int, float)) and hasattr(item, attribute):
            item = getattr(item, attribute)
            break
    if item is None:
        return None
    try:
        value = float(item)
    except (TypeError, ValueError):
        raise TypeError(f"A scorer returned {item!r} ({type(item).__name__}); expected a float, None, or an object "
                        "with a .quals attribute") from None
    return value if math.isfinite(value) else None


def _accepts(function: Callable, name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters)


def _is_evaluate_module(scorer) -> bool:
    try:
        import evaluate
    except ImportError:
        return False
    return isinstance(scorer, evaluate.EvaluationModule)


def as_score_function(scorer, metric_key: str | None = None, metric_kwargs: dict | None = None) -> ScoreFunction:
    """Wrap ``scorer`` (see the module docstring) as ``f(summaries, sources, references) -> list[float | None]``."""
    if scorer is None:
        raise ValueError("ContrastiveTrainer needs a scorer: a QualsScorer, an evaluate metric, or a callable "
                         "f(summaries, sources) -> list[float | None]")
    if _is_evaluate_module(scorer):
        return _EvaluateModuleScorer(scorer, metric_key, metric_kwargs or {})
    function = scorer.score if hasattr(scorer, "score") and callable(scorer.score) else scorer
    if not callable(function):
        raise TypeError(f"{type(scorer).__name__} is not a scorer: give it a score(summaries, sources) method, make "
                        "it callable, or pass an evaluate module")
    pass_references = _accepts(function, "references")

    def score(summaries: list[str], sources: list[str], references: list[str]) -> list[float | None]:
        kwargs = {"references": references} if pass_references else {}
        return _checked([to_score(item) for item in function(summaries, sources, **kwargs)], len(summaries))

    return score


class _EvaluateModuleScorer:
    """Calls ``module.compute`` with the inputs the module declares; reads one per-summary list from the result."""

    _SOURCE_NAMES = ("sources", "documents", "source", "document")

    def __init__(self, module, metric_key: str | None, metric_kwargs: dict):
        self.module, self.metric_key, self.metric_kwargs = module, metric_key, metric_kwargs
        features = module.features if not isinstance(module.features, list) else module.features[0]
        self.feature_names = set(features) if features is not None else {"predictions", "references"}

    def __call__(self, summaries: list[str], sources: list[str], references: list[str]) -> list[float | None]:
        inputs = {"predictions": summaries}
        if "references" in self.feature_names:
            inputs["references"] = references
        for name in self._SOURCE_NAMES:
            if name in self.feature_names:
                inputs[name] = sources
        result = self.module.compute(**inputs, **self.metric_kwargs)
        return _checked([to_score(v) for v in self._per_summary(result, len(summaries))], len(summaries))

    def _per_summary(self, result: dict, count: int) -> list:
        if self.metric_key is not None:
            if self.metric_key not in result:
                raise KeyError(f"metric_key {self.metric_key!r} is not in the metric's result keys {sorted(result)}")
            return list(result[self.metric_key])
        lists = [key for key, value in result.items() if isinstance(value, (list, tuple)) and len(value) == count]
        if len(lists) != 1:
            raise ValueError(f"Cannot tell which result entry holds per-summary scores (candidates: {lists}; all "
                             f"keys: {sorted(result)}); set metric_key (e.g. 'quals' or 'rougeL', and pass "
                             "use_aggregator=False through metric_kwargs for evaluate's rouge)")
        return list(result[lists[0]])


def _checked(scores: list[float | None], expected: int) -> list[float | None]:
    if len(scores) != expected:
        raise ValueError(f"The scorer returned {len(scores)} scores for {expected} summaries")
    return scores


class RougeScorer:
    """ROUGE F1 of each summary against its reference (``against="reference"``, the paper's ROUGE baseline) or
    against its source. Uses the ``rouge-score`` package (``pip install rouge-score``), not the Hub.

    >>> [round(x, 2) for x in RougeScorer().score(["alice visited rome"], ["doc"], ["alice visited rome on monday"])]
    [0.75]
    """

    def __init__(self, rouge_type: str = "rougeL", against: str = "reference", use_stemmer: bool = True):
        try:
            from rouge_score import rouge_scorer
        except ImportError as err:
            raise ImportError("RougeScorer needs the rouge-score package: pip install rouge-score "
                              "(or pip install 'quals[train]')") from err
        if against not in ("reference", "source"):
            raise ValueError(f"against must be 'reference' or 'source', got {against!r}")
        self.rouge_type, self.against = rouge_type, against
        self._scorer = rouge_scorer.RougeScorer([rouge_type], use_stemmer=use_stemmer)

    def score(self, summaries: Sequence[str], sources: Sequence[str], references: Sequence[str] | None = None
              ) -> list[float]:
        targets = sources if self.against == "source" else references
        if targets is None:
            raise ValueError("RougeScorer(against='reference') needs references=")
        return [self._scorer.score(target, summary)[self.rouge_type].fmeasure
                for summary, target in zip(summaries, targets, strict=True)]
