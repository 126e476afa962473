"""Sentence pairs (``QualsConfig.sentence_pairs``): every summary sentence also read as one QA pair, a fixed question
(``SENTENCE_QUESTION``) with the sentence as its answer, so each sentence is checked, not only the facts the QAGen
asked about. The scorer scores them like any pair, on their answer tokens; ``explain.summary_quals`` averages per
sentence.

>>> from quals.engine.sentence_pairs import claim_sentences
>>> claim_sentences("Smith won. . It rained in Leeds.")
['Smith won.', 'It rained in Leeds.']
"""

from __future__ import annotations

from collections.abc import Callable

from quals.engine.explain import split_sentences
from quals.engine.filtering import Candidate, Rejection, normalize
from quals.engine.qagen import Target


SENTENCE_QUESTION = "What does the passage say?"


def claim_sentences(summary: str, budget: int | None = None, length: Callable[[str], int] = len) -> list[str]:
    """The sentences of ``summary`` that say something (a letter or digit; "." is no claim). With a ``budget``
    (tokens, for a summary longer than the QAGen's input), only the leading sentences whose ``length`` fits in it,
    as the QA pairs come from that part only (this also bounds the cost of a huge summary)."""
    sentences = [s for s in (summary[a:b] for a, b in split_sentences(summary)) if any(c.isalnum() for c in s)]
    if budget is None:
        return sentences
    read = []
    for sentence in sentences:
        budget -= length(sentence)
        if budget < 0:
            break
        read.append(sentence)
    return read


def asks_sentence_question(question: str) -> bool:
    """Whether ``question`` is ``SENTENCE_QUESTION`` (up to case, spacing and punctuation, as filtering compares)."""
    return normalize(question) == normalize(SENTENCE_QUESTION)


def set_aside_own_question(candidates: list[Candidate]) -> tuple[list[Candidate], list[Rejection]]:
    """The generated pairs that do not ask ``SENTENCE_QUESTION``, and those that do, rejected: the sentence pairs
    ask it already, so with them a sentence would count twice. Set aside before filtering, so ``max_pairs`` goes
    to other questions."""
    kept, set_aside = [], []
    for c in candidates:
        if asks_sentence_question(c.question):
            set_aside.append(Rejection(c.question, c.answer, "the sentence pairs' question"))
        else:
            kept.append(c)
    return kept, set_aside


def sentence_pairs(sentences: list[str], target: Callable[[str, str], Target]) -> list[Candidate]:
    """One pair per sentence: ``SENTENCE_QUESTION`` answered by the sentence (not filtered)."""
    return [Candidate(SENTENCE_QUESTION, s, 0.0, 0.0, {"target": target(SENTENCE_QUESTION, s), "sentence_pair": True})
            for s in sentences]
