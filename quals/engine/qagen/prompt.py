"""The prompt of a causal-LM QAGen: a fixed prefix, the passage, a fixed suffix; the reply is the QA pair.

With ``QAFormat.chat`` the prompt is the tokenizer's chat template over
``[system?] + [user: example passage, assistant: example pair] * k + [user: passage]`` and the generation prompt;
otherwise it is plain text, each example written as ``input_template`` directly followed by its pair and a blank
line (so a plain template should end where the reply starts, e.g. with a newline).
Either way the rendered prompt is cut at the passage into a prefix (system message, few-shot examples, the start
of the user turn: the same for every passage, so its KV cache is computed once per model) and a suffix (the
instruction after the passage and the start of the assistant turn). The three parts are tokenized apart and
concatenated, so a window of a long passage is just a slice of the passage's tokens; training
(``quals train-qagen``), generation and scoring all build prompts here.

>>> from quals.engine.formats import QAFormat
>>> fmt = QAFormat(name="x", model="m", input_template="Text: {passage}\\nQA:\\n", examples=(("A fox ran.",
...                "Who ran?", "a fox"),), question_prefix="question: ", qa_separator=" answer: ")
>>> plain_prompt_text(fmt)
('Text: A fox ran.\\nQA:\\nquestion: Who ran? answer: a fox\\n\\nText: ', '\\nQA:\\n')
"""

from __future__ import annotations

from dataclasses import dataclass

from quals.engine.formats import QAFormat


_PLACEHOLDER = "\u2063QUALS-PASSAGE\u2063"  # invisible separators around a word no passage contains
_REPLY = "\u2063QUALS-REPLY\u2063"


@dataclass(frozen=True)
class Prompt:
    """Token ids around the passage, and the id that ends a reply.

    The format's ``question_prefix`` (e.g. ``"question:"``) ends the prompt, so the reply (the target) starts at
    the question itself: diverse beam search then spreads its groups over questions, not over ways of writing
    the prefix (``"Question:"``, ``"Q:"``, ...), and the prefix is not scored.
    """

    prefix_ids: tuple[int, ...]  # system message, few-shot examples, start of the user turn
    suffix_ids: tuple[int, ...]  # instruction after the passage, start of the assistant turn, question prefix
    end_id: int | None  # what follows a reply (a chat model's end-of-turn token, or a newline); None: eos

    def wrap(self, passage_ids: list[int]) -> list[int]:
        return [*self.prefix_ids, *passage_ids, *self.suffix_ids]

    @classmethod
    def build(cls, tokenizer, fmt: QAFormat) -> Prompt:
        if fmt.chat:
            if not getattr(tokenizer, "chat_template", None):
                raise ValueError(f"format {fmt.name!r} asks for the chat template, but this tokenizer has none; "
                                 "use a chat (instruct) model or a format with chat=False")
            prefix, suffix = chat_prompt_text(tokenizer, fmt)
            lead: list[int] = []  # the template writes its own special tokens
            end_id = _first_token(tokenizer, _text_after_reply(tokenizer))
        else:
            prefix, suffix = plain_prompt_text(fmt)
            with_specials = tokenizer("x").input_ids
            bare = tokenizer("x", add_special_tokens=False).input_ids
            lead = with_specials[: with_specials.index(bare[0])] if bare and bare[0] in with_specials else []
            end_id = _first_token(tokenizer, "\n") if fmt.stop_at_newline else None
        suffix_ids = _ids(tokenizer, suffix) + split_reply(tokenizer, fmt.question_prefix, fmt.render("x", "y"))[0]
        return cls(tuple(lead + _ids(tokenizer, prefix)), tuple(suffix_ids), end_id)


def split_reply(tokenizer, question_prefix: str, reply: str) -> tuple[list[int], list[int]]:
    """A reply's tokens (tokenized as a whole, as in the examples) split into (question prefix, the rest).

    >>> from quals.testing import word_tokenizer
    >>> tokenizer = word_tokenizer(["question", ":"])
    >>> head, rest = split_reply(tokenizer, "question: ", "question: who visited paris ?")
    >>> tokenizer.decode(head), tokenizer.decode(rest)
    ('question :', 'who visited paris ?')
    """
    encoded = tokenizer(reply, add_special_tokens=False, return_offsets_mapping=True)
    cut = len(question_prefix.rstrip())
    head = sum(1 for _, end in encoded["offset_mapping"] if end <= cut) if cut else 0
    return encoded["input_ids"][:head], encoded["input_ids"][head:]


def chat_prompt_text(tokenizer, fmt: QAFormat) -> tuple[str, str]:
    """The chat-template prompt as text, cut at the passage: (prefix, suffix)."""
    messages = [] if fmt.system is None else [{"role": "system", "content": fmt.system}]
    for passage, question, answer in fmt.examples:
        messages += [{"role": "user", "content": fmt.input_text(passage)},
                     {"role": "assistant", "content": fmt.render(question, answer)}]
    messages.append({"role": "user", "content": fmt.input_text(_PLACEHOLDER)})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prefix, suffix = text.split(_PLACEHOLDER)
    return prefix, suffix


def plain_prompt_text(fmt: QAFormat) -> tuple[str, str]:
    """A plain-text few-shot prompt, cut at the passage: (prefix, suffix)."""
    shots = "".join(fmt.input_text(p) + fmt.render(q, a) + "\n\n" for p, q, a in fmt.examples)
    prefix, suffix = (shots + fmt.input_text(_PLACEHOLDER)).split(_PLACEHOLDER)
    return prefix, suffix


def _text_after_reply(tokenizer) -> str:
    """What the chat template writes right after an assistant message (e.g. ``<|im_end|>\\n``)."""
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": _REPLY}]
    return tokenizer.apply_chat_template(messages, tokenize=False).split(_REPLY, 1)[1]


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False).input_ids if text else []


def _first_token(tokenizer, text: str) -> int | None:
    ids = tokenizer(text, add_special_tokens=False).input_ids if text else []
    return ids[0] if ids else None
