"""Build CONSEQ's positive set S+ and negative set S- from candidate and reference scores (a pure function).

The paper's rule (``make_unlikelihood_dataset`` in the released code), for N documents:

1. negatives: each document's lowest-scoring candidate; keep the ``round(negative_fraction * N)`` documents whose
   worst candidate scores lowest;
2. positives: the references of the ``round(positive_fraction * N)`` documents whose reference scores highest;
3. ``paired`` (the paper): keep only documents in both lists, so every document contributes one positive and one
   negative; ``unpaired`` (the code's ``--separate_target_untarget``): keep both lists as they are.

Ties are broken by dataset order (a stable sort, as in the released code); a fraction of 1.0 keeps every scored
document. A summary without a score (``None`` or not finite) never enters either set; the released code gives it a
sentinel that sorts it last, which has the same effect unless the fraction reaches past all scored documents.

>>> selection = select_contrastive_sets(
...     candidate_scores={"a": [0.1, -2.0], "b": [0.5, 0.4], "c": [None, -1.0]},
...     reference_scores={"a": 0.9, "b": 0.1, "c": 0.8}, negative_fraction=0.67, positive_fraction=0.67)
>>> selection.negatives, selection.positives
({'a': 1, 'c': 1}, ['a', 'c'])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal


@dataclass
class Selection:
    """The documents (by id) that train in this round.

    ``positives``: ids whose reference is in S+; ``negatives``: id -> index of the candidate in S-.
    In paired mode both hold the same ids in the same order.
    """

    positives: list[str] = field(default_factory=list)
    negatives: dict[str, int] = field(default_factory=dict)
    mode: Literal["paired", "unpaired"] = "paired"

    @cached_property
    def positive_set(self) -> frozenset[str]:
        """``positives`` as a set (membership tests per training row)."""
        return frozenset(self.positives)

    @property
    def document_ids(self) -> list[str]:
        """Every document that contributes at least one row, in dataset order of first appearance."""
        return list(dict.fromkeys([*self.positives, *self.negatives]))


def is_score(value: float | None) -> bool:
    """True for a usable score (a finite number)."""
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def worst_candidate(scores: Sequence[float | None]) -> tuple[int, float] | None:
    """(index, score) of the lowest-scoring scored candidate (the first on ties), or None if none is scored."""
    scored = [(value, index) for index, value in enumerate(scores) if is_score(value)]
    if not scored:
        return None
    value, index = min(scored)
    return index, float(value)


def select_contrastive_sets(candidate_scores: Mapping[str, Sequence[float | None]],
                            reference_scores: Mapping[str, float | None], negative_fraction: float = 0.3,
                            positive_fraction: float = 0.3, mode: Literal["paired", "unpaired"] = "paired"
                            ) -> Selection:
    """S+ and S- following the paper (see the module docstring); the mappings' order is the dataset order."""
    if mode not in ("paired", "unpaired"):
        raise ValueError(f"mode must be 'paired' or 'unpaired', got {mode!r}")
    for name, fraction in (("negative_fraction", negative_fraction), ("positive_fraction", positive_fraction)):
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"{name} must be in (0, 1], got {fraction}")
    order = {doc_id: position for position, doc_id in enumerate(candidate_scores)}
    num_documents = len(order)

    worst = {doc_id: worst_candidate(scores) for doc_id, scores in candidate_scores.items()}
    negative_pool = sorted((w[1], order[doc_id], doc_id) for doc_id, w in worst.items() if w is not None)
    negative_ids = [doc_id for _, _, doc_id in negative_pool[:_quota(negative_fraction, num_documents)]]

    positive_pool = sorted((-float(score), order[doc_id], doc_id) for doc_id, score in reference_scores.items()
                           if doc_id in order and is_score(score))
    positive_ids = [doc_id for _, _, doc_id in positive_pool[:_quota(positive_fraction, num_documents)]]

    if mode == "paired":
        keep = set(negative_ids) & set(positive_ids)
        negative_ids = positive_ids = sorted(keep, key=order.__getitem__)
    else:
        negative_ids, positive_ids = sorted(negative_ids, key=order.__getitem__), sorted(positive_ids,
                                                                                          key=order.__getitem__)
    return Selection(positives=list(positive_ids), negatives={doc_id: worst[doc_id][0] for doc_id in negative_ids},
                     mode=mode)


def _quota(fraction: float, num_documents: int) -> int:
    """How many documents a fraction selects: all of them at 1.0, else Python's ``round`` like the released code."""
    return num_documents if fraction == 1.0 else round(fraction * num_documents)


def score_statistics(candidate_scores: Mapping[str, Sequence[float | None]],
                     reference_scores: Mapping[str, float | None]) -> dict[str, float]:
    """Mean/min/max of candidate and reference scores and the share of unscored summaries (for logging)."""
    stats: dict[str, float] = {}
    for name, values in (("candidate", [v for scores in candidate_scores.values() for v in scores]),
                         ("reference", list(reference_scores.values()))):
        scored = [float(v) for v in values if is_score(v)]
        stats[f"{name}_unscored_share"] = 1.0 - len(scored) / len(values) if values else 0.0
        if scored:
            stats[f"{name}_score_mean"] = sum(scored) / len(scored)
            stats[f"{name}_score_min"] = min(scored)
            stats[f"{name}_score_max"] = max(scored)
    return stats
