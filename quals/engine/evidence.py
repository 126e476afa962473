"""Evidence passages: the few source sentences a QA pair is about, the passage ``evidence_sentences`` scores it on.

The paper scores every pair given the whole source. With a long source and a small QAGen, LL_source then reflects
the passage (its length, its other topics) as much as the pair's facts: a pair the source supports in one sentence
is diluted by thirty others. ``QualsConfig.evidence_sentences = K`` scores each pair given the K source sentences
that share the most content words with it (question and answer), in source order; ties go to the earlier sentence.
A pair about a fact the source lacks still gets the K sentences nearest to it, which do not support it.

>>> source = "Ann lives in Leeds. The weather was bad. Ann works at a bakery in York. It rained."
>>> evidence_passage(source, "Where does Ann work?", "a bakery", 2)
'Ann lives in Leeds. Ann works at a bakery in York.'
>>> evidence_passage(source, "Who?", "nobody", 1)  # nothing in common: the first sentence
'Ann lives in Leeds.'
"""

from __future__ import annotations

from functools import lru_cache

from quals.engine.explain import WORD, split_sentences


STOPWORDS = frozenset([
    "a", "an", "the", "of", "in", "on", "at", "to", "for", "by", "with", "from", "and", "or", "but", "is", "was",
    "were", "are", "be", "been", "being", "has", "have", "had", "it", "its", "he", "she", "they", "them", "his", "her",
    "their", "this", "that", "these", "those", "as", "than", "into", "after", "before", "about", "also", "not", "no",
    "will", "would", "could", "should", "can", "may", "said", "says", "who", "which", "what", "when", "where", "while",
    "there", "here", "i", "we", "you", "our", "your", "my", "me", "us", "how", "why", "did", "does", "do", "whom",
    "whose"])


def content_words(text: str) -> set[str]:
    """Lower-cased words of ``text`` that are not stop words."""
    return {w for w in (m.group().lower() for m in WORD.finditer(text)) if w not in STOPWORDS}


def evidence_passage(source: str, question: str, answer: str, num_sentences: int) -> str:
    """The ``num_sentences`` sentences of ``source`` sharing the most content words with the pair, in source order.

    A source of at most ``num_sentences`` sentences is returned whole.
    """
    sentences = source_sentences(source)
    if len(sentences) <= num_sentences:
        return source
    query = content_words(f"{question} {answer}")
    overlap = [len(query & words) for _, words in sentences]
    best = sorted(range(len(sentences)), key=lambda k: (-overlap[k], k))[:num_sentences]
    return " ".join(sentences[k][0] for k in sorted(best))


@lru_cache(maxsize=64)
def source_sentences(source: str) -> tuple[tuple[str, frozenset[str]], ...]:
    """The sentences of ``source`` with their content words (split once per source, not once per pair)."""
    return tuple((source[a:b], frozenset(content_words(source[a:b]))) for a, b in split_sentences(source))
