"""Which generated QA pairs QUALS keeps for a summary. Two named modes (see docs/parity.md):

``reference``: the released code exactly (evaluate_hypo.py:566-651)
    1. the lower-cased answer must be a *substring* of the lower-cased summary (an empty answer passes);
    2. survivors are ranked by the penalized, unnormalized generation score (best first, stable);
    3. they are grouped by lower-cased answer and taken round-robin, one per answer per round, skipping a
       question already kept for that answer;
    4. rounds repeat while fewer than ``max_pairs`` are kept and the last round added something: the cap is
       checked only between rounds, so 12 distinct answers keep 12 pairs, and 9 answers with 2 questions
       each keep 18.

``strict`` (default): the same round-robin over answers, with four fixes
    1. empty questions and answers are rejected;
    2. the answer must match on word boundaries after normalization (lower case, punctuation to spaces),
       so "a" does not match inside "Obama";
    3. identical (normalized) pairs are de-duplicated;
    4. ranking uses the *raw* mean token log-probability (no length or diversity-penalty bias), and
       ``max_pairs`` is a hard cap.

Every rejected pair carries its reason, so results can be explained.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal


FilterMode = Literal["strict", "reference"]


@dataclass
class Candidate:
    """One generated QA pair before filtering."""

    question: str
    answer: str
    search_score: float  # penalized cumulative generation score (the reference ranking key)
    mean_logprob: float  # raw mean token log-probability given the summary (the strict ranking key)
    payload: Any = None  # whatever the caller needs back (token ids, ...)


@dataclass
class Rejection:
    """A generated pair that was not kept, and why."""

    question: str
    answer: str
    reason: str


def filter_pairs(
    candidates: list[Candidate], summary: str, mode: FilterMode = "strict", max_pairs: int = 10
) -> tuple[list[Candidate], list[Rejection]]:
    """Keep the QA pairs QUALS scores for ``summary``. Returns (kept in selection order, rejected)."""
    if mode == "reference":
        return _filter(candidates, summary, max_pairs, answer_ok=_reference_answer_check,
                       rank_key=lambda c: c.search_score, key=str.lower, hard_cap=False, fixes=False)
    if mode == "strict":
        return _filter(candidates, summary, max_pairs, answer_ok=_word_boundary_check,
                       rank_key=lambda c: c.mean_logprob, key=normalize, hard_cap=True, fixes=True)
    raise ValueError(f"Unknown filter mode {mode!r}; use 'strict' or 'reference'")


def normalize(text: str) -> str:
    """Lower case, punctuation to spaces, single spaces: ``"Obama's  Plan!"`` -> ``"obama s plan"``."""
    return " ".join(re.sub(r"[\W_]+", " ", text.lower()).split())


def _reference_answer_check(answer: str, summary: str) -> str | None:
    return None if answer.lower() in summary.lower() else "answer not in summary"


def _word_boundary_check(answer: str, summary: str) -> str | None:
    if not normalize(answer):
        return "empty answer"
    return None if f" {normalize(answer)} " in f" {normalize(summary)} " else "answer not in summary"


def _filter(
    candidates: list[Candidate],
    summary: str,
    max_pairs: int,
    answer_ok: Callable[[str, str], str | None],
    rank_key: Callable[[Candidate], float],
    key: Callable[[str], str],
    hard_cap: bool,
    fixes: bool,
) -> tuple[list[Candidate], list[Rejection]]:
    rejected: list[Rejection] = []
    survivors: list[Candidate] = []
    seen_pairs: set[tuple[str, str]] = set()
    for cand in candidates:
        reason = "empty question" if fixes and not cand.question.strip() else answer_ok(cand.answer, summary)
        if reason is None and fixes:  # strict mode: reject empty questions and duplicate pairs
            pair_key = (key(cand.question), key(cand.answer))
            reason = "duplicate pair" if pair_key in seen_pairs else None
            seen_pairs.add(pair_key)
        if reason is None:
            survivors.append(cand)
        else:
            rejected.append(Rejection(cand.question, cand.answer, reason))

    ranked = sorted(survivors, key=rank_key, reverse=True)  # stable: ties keep generation order
    groups: dict[str, list[Candidate]] = {}
    for cand in ranked:
        groups.setdefault(key(cand.answer), []).append(cand)

    kept: list[Candidate] = []
    questions_kept: dict[str, set[str]] = {}
    added = True
    while len(kept) < max_pairs and added:
        added = False
        for answer_key, queue in groups.items():
            if not queue or (hard_cap and len(kept) >= max_pairs):
                continue
            cand = queue.pop(0)
            asked = questions_kept.setdefault(answer_key, set())
            if key(cand.question) in asked:
                rejected.append(Rejection(cand.question, cand.answer, "question already kept for this answer"))
                continue
            asked.add(key(cand.question))
            kept.append(cand)
            added = True
    for queue in groups.values():
        rejected.extend(Rejection(c.question, c.answer, f"not selected (cap of {max_pairs} pairs)") for c in queue)
    return kept, rejected
