"""Where in a summary QUALS finds trouble: answer spans, the least supported spans, and a score per sentence.

Every kept QA pair has an answer that occurs in the summary (the filter checked it) and its own QUALS gap. So:

- ``answer_span``: the answer's character span in the summary: its words in order on word boundaries,
  case-insensitive, with any punctuation or spaces between them (the strict filter's test, located). When the
  answer occurs more than once, the occurrence in the sentence that shares the most words with the question.
- ``merge_spans``: overlapping answer spans merged; a merged span carries the lowest gap of its pairs (its least
  supported claim), and the list is least supported first.
- ``split_sentences`` and ``sentence_scores``: a score per sentence, the mean gap of the pairs whose answer lies in
  it. A sentence no kept pair asked about gets the summary's QUALS, marked ``from_summary`` (it was not checked on
  its own). With ``QualsConfig.sentence_pairs`` a sentence also has its own sentence pair (its whole text as an
  answer), and its score is the mean of (the mean of its QA pairs, its sentence pair).
- ``summary_quals``: the summary's QUALS from its pairs: their mean (the paper), or with sentence pairs the mean
  over the sentences that have a pair of their scores (each sentence counts once, as in per-sentence human labels).

Offsets are Python string indices into the summary exactly as given, so ``summary[start:end]`` is the span's text
(any Unicode included).

>>> summary = "Mr. Smith won 3.5 million dollars. He lives in Leeds."
>>> [summary[a:b] for a, b in split_sentences(summary)]
['Mr. Smith won 3.5 million dollars.', 'He lives in Leeds.']
>>> span = answer_span(summary, "leeds", "Where does he live?")
>>> summary[span[0]:span[1]]
'Leeds'
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from quals.engine.results import QAPair


ABBREVIATIONS = frozenset((
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "inc", "ltd", "co", "corp", "gen",
    "gov", "sen", "rep", "rev", "col", "lt", "sgt", "capt", "al", "jan", "feb", "mar", "apr", "jun", "jul", "aug",
    "sep", "sept", "oct", "nov", "dec", "u.s", "u.k", "u.n", "a.m", "p.m"))
NUMBER_ABBREVIATIONS = frozenset(("no", "nos", "fig", "vol", "pp"))  # abbreviations only before a number: "No. 5"
_END = re.compile(r"(?:[.!?]+|\u2026)[\"'\u201d\u2019)\]]*(?=\s|$)")
WORD = re.compile(r"[^\W_]+")  # a word: letters and digits of any script


@dataclass
class Span:
    """Characters ``start:end`` of the summary, the QA pairs whose answers cover them, and their lowest gap (sentence
    pairs, whose answer is a whole sentence, are not spans)."""

    start: int
    end: int
    text: str
    quals: float
    questions: list[str]


@dataclass
class SentenceScore:
    """One sentence (characters ``start:end``) and its QUALS: the mean gap of the QA pairs answered in it (averaged
    with its sentence pair's, when there is one), or the summary's QUALS when it has no pair (``from_summary``)."""

    start: int
    end: int
    text: str
    quals: float | None
    num_pairs: int
    from_summary: bool


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans: a sentence ends at ``.``, ``!``, ``?`` or ``…`` (closing quotes and brackets included)
    before a space or the end, except after an abbreviation (``Mr.``, ``U.S.``, ``e.g.``) or a single-letter
    initial (``J. K. Rowling``) or ``No.``/``Fig.`` before a number, and except a ``?``, ``!`` or ellipsis
    followed by a lower-case word (``"Why?" she asked``); a number's decimal point is not an end. A period before
    a lower-case word does end a sentence, so lower-cased text (as in QAGS) splits too."""
    spans, start = [], 0
    for match in _END.finditer(text):
        before = text[start: match.start()].split()
        last = before[-1].lower().strip("\"'(\u201c\u2018[") if before else ""
        mark = match.group().rstrip("\"'\u201d\u2019)]")
        if mark == "." and (last in ABBREVIATIONS or last.rstrip(".") in ABBREVIATIONS
                            or (len(last) == 1 and last.isalpha())):
            continue
        following = text[match.end():].lstrip()
        if mark == "." and last.rstrip(".") in NUMBER_ABBREVIATIONS and following[:1].isdigit():
            continue
        if mark != "." and following[:1].islower():
            continue
        spans.append(_trimmed(text, start, match.end()))
        start = match.end()
    if text[start:].strip():
        spans.append(_trimmed(text, start, len(text)))
    return [span for span in spans if span[1] > span[0]]


def answer_span(summary: str, answer: str, question: str = "", sentences: list[tuple[int, int]] | None = None
                ) -> tuple[int, int] | None:
    """The answer's characters in the summary (see the module docstring), or ``None`` if its words are not there;
    ``sentences``: the summary's ``split_sentences``, when the caller has them."""
    words = WORD.findall(answer)
    if not words:
        return None
    pattern = re.compile(r"(?<![^\W_])" + r"[\W_]+".join(map(re.escape, words)) + r"(?![^\W_])", re.IGNORECASE)
    found = [(m.start(), m.end()) for m in pattern.finditer(summary)]
    if len(found) <= 1:
        return found[0] if found else None
    asked = {w.lower() for w in WORD.findall(question)}
    sentences = split_sentences(summary) if sentences is None else sentences
    starts = [a for a, _ in sentences]  # in order: the sentence holding a position is found by bisection

    def overlap(span: tuple[int, int]) -> int:
        k = bisect.bisect_right(starts, span[0]) - 1
        a, b = sentences[k] if k >= 0 and span[0] < sentences[k][1] else span
        return len(asked & {w.lower() for w in WORD.findall(summary[a:b])})

    return max(found, key=overlap)  # max keeps the first of equals


def merge_spans(summary: str, pairs: list[QAPair]) -> list[Span]:
    """The summary's spans that kept pairs asked about, overlapping ones merged, least supported first."""
    located = sorted(((span, pair) for pair in pairs
                      if not pair.sentence_pair and (span := answer_span(summary, pair.answer, pair.question))),
                     key=lambda item: item[0])
    merged: list[Span] = []
    for (start, end), pair in located:
        if merged and start < merged[-1].end:
            last = merged[-1]
            last.end = max(last.end, end)
            last.text, last.quals = summary[last.start: last.end], min(last.quals, pair.quals)
            last.questions.append(pair.question)
        else:
            merged.append(Span(start, end, summary[start:end], pair.quals, [pair.question]))
    return sorted(merged, key=lambda span: span.quals)


def sentence_scores(summary: str, pairs: list[QAPair], summary_quals: float | None,
                    sentences: list[tuple[int, int]] | None = None) -> list[SentenceScore]:
    """A score per sentence of the summary (see the module docstring); ``sentences``: given sentence spans
    instead of ``split_sentences``."""
    gaps: dict[int, list[float]] = {}  # QA pairs answered in sentence k
    own: dict[int, list[float]] = {}  # sentence pairs of sentence k
    sentences = split_sentences(summary) if sentences is None else sentences
    for pair in pairs:
        span = answer_span(summary, pair.answer, pair.question, sentences)
        if span is not None:
            k = next((k for k, (a, b) in enumerate(sentences) if a <= span[0] < b), None)
            if k is not None:
                (own if pair.sentence_pair else gaps).setdefault(k, []).append(pair.quals)
    out = []
    for k, (a, b) in enumerate(sentences):
        parts = [sum(v) / len(v) for v in (gaps.get(k), own.get(k)) if v]
        out.append(SentenceScore(a, b, summary[a:b], sum(parts) / len(parts) if parts else summary_quals,
                                 len(gaps.get(k, [])) + len(own.get(k, [])), not parts))
    return out


def summary_quals(summary: str, pairs: list[QAPair]) -> float | None:
    """The summary's QUALS: the mean over its pairs (the paper), or, when it has sentence pairs
    (``QualsConfig.sentence_pairs``), the mean over its sentences that have a pair of their ``sentence_scores`` (a
    pair is placed by its answer's span, so a QA pair whose answer is not found in a sentence does not count);
    ``None`` without pairs.

    >>> qa = QAPair("Who won?", "Smith", -1.0, 0.0, 0.0, [], [], [])
    >>> whole = QAPair("What does the passage say?", "Smith won.", -3.0, 0.0, 0.0, [], [], [], sentence_pair=True)
    >>> summary_quals("Smith won. It rained.", [qa])
    -1.0
    >>> summary_quals("Smith won. It rained.", [qa, whole])   # one sentence with pairs: (-1 + -3) / 2
    -2.0
    """
    if not pairs:
        return None
    if not any(pair.sentence_pair for pair in pairs):
        return sum(pair.quals for pair in pairs) / len(pairs)
    scored = [s.quals for s in sentence_scores(summary, pairs, None) if not s.from_summary]
    return sum(scored) / len(scored) if scored else None


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
