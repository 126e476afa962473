"""Training data for QAGen: SQuAD / NewsQA examples, cloze pairs from raw articles, article-level splits.

One ``QAExample`` is one (passage, question, answer) triple, the paper's unit (algorithm doc §2):

- SQuAD v1.1 JSON: one example per *distinct* answer string of each question (dev has up to 3);
- NewsQA-style stories (``{"data": [{"text": story, "questions": [{"q": ..., "consensus": {"s": 3, "e": 9}}]}]}``,
  the combined-newsqa JSON): the consensus character span is the answer; questions without one are skipped;
- cloze pairs (``cloze_examples``): a sentence of an article with one name or number replaced by a wh-word is
  the question, the replaced span the answer. Self-supervised data that forces the decoder to copy from the
  passage, used to warm up a freshly initialised cross-attention (docs/qagen.md).

>>> data = {"data": [{"title": "t", "paragraphs": [{"context": "Paris is in France.", "qas": [
...     {"question": "Where is Paris?", "answers": [{"text": "France", "answer_start": 12},
...                                                {"text": "France ", "answer_start": 12}]}]}]}]}
>>> [(e.question, e.answer) for e in squad_examples(data)]
[('Where is Paris?', 'France')]
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class QAExample:
    """One training example: ``passage`` -> ``question`` and ``answer``; ``article`` names its document."""

    passage: str
    question: str
    answer: str
    article: str


def load_examples(path: str | Path, newsqa_split: str | None = None) -> list[QAExample]:
    """Examples from a SQuAD-format JSON file, a NewsQA-style story JSON file, or a QA JSONL file.

    JSONL rows need ``passage``, ``question``, ``answer`` (``article`` optional).
    """
    path = Path(path)
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [QAExample(r["passage"], r["question"], r["answer"], r.get("article", path.stem)) for r in rows]
    data = json.loads(path.read_text())
    records = data.get("data", data) if isinstance(data, dict) else data
    if records and "questions" in records[0]:
        return newsqa_examples(records, split=newsqa_split)
    return squad_examples(data)


def squad_examples(data: dict) -> list[QAExample]:
    """SQuAD v1.1 layout -> one example per distinct (stripped) answer string of each question, in file order."""
    examples = []
    for article in data["data"]:
        title = article.get("title", "")
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                question = qa["question"].strip()
                answers = dict.fromkeys(a["text"].strip() for a in qa.get("answers", []))
                examples.extend(QAExample(paragraph["context"], question, a, title) for a in answers if a)
    return examples


def newsqa_examples(stories: list[dict], split: str | None = None) -> list[QAExample]:
    """NewsQA stories -> one example per question with a consensus answer span.

    ``split`` keeps stories whose ``type`` is that split (``train``/``dev``/``test``). The span indexes the story
    as stored; the reference code indexed the *stripped* story (algorithm doc §7.1 R5), which shifts answers of
    stories with leading whitespace, so we do not reproduce that.
    """
    examples = []
    for story in stories:
        if split is not None and story.get("type") != split:
            continue
        text = story["text"]
        for question in story["questions"]:
            span = question.get("consensus", {})
            if "s" not in span or "e" not in span:
                continue  # bad question or no answer
            answer = text[span["s"]: span["e"]].strip()
            if answer:
                examples.append(QAExample(text.strip(), question["q"].strip(), answer, story.get("storyId", "")))
    return examples


def split_by_article(examples: list[QAExample], num_heldout: int, seed: int = 0
                     ) -> tuple[list[QAExample], list[QAExample]]:
    """(train, heldout): ``num_heldout`` whole articles, drawn with ``random.Random(seed)``, are held out."""
    articles = sorted({e.article for e in examples})
    if num_heldout >= len(articles):
        raise ValueError(f"Cannot hold out {num_heldout} of {len(articles)} articles")
    heldout = set(random.Random(seed).sample(articles, num_heldout))
    return [e for e in examples if e.article not in heldout], [e for e in examples if e.article in heldout]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])|\n+")
# a run of capitalised words (optionally joined by "of"/"and"/"the") or a number with an optional unit word
_ANSWER_SPAN = re.compile(
    r"\b(?:[A-Z][\w'’-]*(?:\s+(?:of|and|the|de|for)?\s*[A-Z][\w'’-]*)*|\d[\d,.]*(?:\s*(?:%|per cent|million|"
    r"billion|years?|months?|days?|people|miles|km|metres|points|goals))?)(?![\w$£€])")
_NOT_ANSWERS = {"It", "The", "He", "She", "They", "We", "I", "This", "That", "A", "An", "In", "But", "And", "His",
                "Her", "Their", "Our", "You", "Mr", "Mrs", "Ms", "Dr", "On", "At", "As", "If", "For", "There"}


def split_sentences(text: str) -> list[str]:
    """A light sentence splitter (ends at . ! ? before a capital or digit, or at a newline)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def crop_to_answer(example: QAExample, context_sentences: int = 1) -> QAExample:
    """The example with its passage cut to the first sentence holding the answer and ``context_sentences``
    sentences on each side (unchanged if no single sentence holds it).

    >>> e = QAExample("Rain fell. Paris is in France. It is big. Dogs bark.", "Where is Paris?", "France", "t")
    >>> crop_to_answer(e, 1).passage
    'Rain fell. Paris is in France. It is big.'
    """
    sentences = split_sentences(example.passage)
    for i, sentence in enumerate(sentences):
        if example.answer in sentence:
            window = sentences[max(0, i - context_sentences): i + context_sentences + 1]
            return QAExample(" ".join(window), example.question, example.answer, example.article)
    return example


def cloze_question(sentence: str, start: int, end: int) -> str:
    """The sentence with ``sentence[start:end]`` replaced by a wh-word, ending in "?"."""
    answer = sentence[start:end]
    if re.fullmatch(r"(1[0-9]|20)\d\d", answer):
        wh = "when"
    elif answer[0].isdigit():
        wh = "how many"
    else:
        wh = "what"
    question = f"{sentence[:start]}{wh}{sentence[end:]}".strip().rstrip(".!?\"' ")
    return question[0].lower() + question[1:] + "?" if start == 0 else question + "?"


def cloze_examples(texts: list[tuple[str, str]], per_text: int = 4, seed: int = 0, max_words: int = 30,
                   max_passage_chars: int = 1500) -> list[QAExample]:
    """Cloze QA pairs from ``(article_id, text)`` pairs: up to ``per_text`` per text, from its first
    ``max_passage_chars`` characters (so the answer survives input truncation). The passage is that prefix.

    >>> [(e.question, e.answer) for e in cloze_examples([("a", "The team was founded by Anna Smith last week.")])]
    [('The team was founded by what last week?', 'Anna Smith')]
    """
    rng = random.Random(seed)
    examples = []
    for article, text in texts:
        passage = text[:max_passage_chars].rsplit(" ", 1)[0] if len(text) > max_passage_chars else text
        candidates = []
        for sentence in split_sentences(passage):
            words = sentence.split()
            if not 5 <= len(words) <= max_words:
                continue
            for match in _ANSWER_SPAN.finditer(sentence):
                start, span = match.start(), match.group()
                if span.startswith("The "):
                    start, span = start + 4, span[4:]
                if span in _NOT_ANSWERS or (start == 0 and " " not in span and not span[0].isdigit()):
                    continue  # pronouns, titles alone, and a lone sentence-initial capital are not names
                if len(span) < 2 or len(span.split()) > 5:
                    continue
                candidates.append((sentence, start, start + len(span)))
        for sentence, start, end in rng.sample(candidates, min(per_text, len(candidates))):
            examples.append(QAExample(passage, cloze_question(sentence, start, end), sentence[start:end], article))
    return examples
