"""What QUALS refuses to score, and the error each refusal carries (the item keeps ``quals=None``; the others are
scored as usual).

- *invalid input*: ``None``, a non-string, an empty or whitespace-only text (``input_error``);
- *unreadable input*: a text the QAGen model cannot read (``unreadable_reason``), by two cheap checks, each a
  ``QualsConfig`` setting (0 or 1 turns it off):

- *script*: the share of a text's letters written in the scripts its model reads (``QAFormat.scripts``, Latin for
  the English presets) must reach ``min_script_share``. A Chinese, Russian or Arabic summary scored by an English
  QAGen would otherwise get a number that means nothing.
- *unknown tokens*: the share of the text's tokens that the tokenizer maps to its unknown token must not exceed
  ``max_unknown_share`` (a WordPiece model shown a script it has no pieces for). Byte-level tokenizers never do.

>>> script_share("The cat sat.", ("Latin",))
1.0
>>> round(script_share("Кот сидел на ковре (a cat).", ("Latin",)), 2)
0.21
"""

from __future__ import annotations

import unicodedata


def as_list(texts, name: str) -> list:
    """``texts`` as a list; a bare string (a common slip) or a non-iterable is a ``TypeError``."""
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a list of strings, not a single string; wrap it in a list: [text]")
    try:
        return list(texts)
    except TypeError:
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}") from None


def script_share(text: str, scripts: tuple[str, ...]) -> float:
    """The share of the letters of ``text`` whose Unicode name starts with one of ``scripts`` (1.0 with no letters)."""
    wanted = tuple(script.upper() for script in scripts)
    letters = [char for char in text if char.isalpha()]
    if not letters:
        return 1.0
    return sum(unicodedata.name(char, "").startswith(wanted) for char in letters) / len(letters)


def unreadable_reason(text: str, what: str, index: int, scripts: tuple[str, ...], min_script_share: float,
                      tokenizer=None, max_unknown_share: float = 1.0) -> str | None:
    """Why the model cannot read ``text`` (the ``what`` of item ``index``), or ``None``."""
    if min_script_share > 0 and scripts:
        share = script_share(text, scripts)
        if share < min_script_share:
            return (f"unreadable input: {what} {index} has {share:.0%} of its letters in the {'/'.join(scripts)} "
                    f"script this QAGen reads (min_script_share={min_script_share})")
    unk = getattr(tokenizer, "unk_token_id", None)
    if tokenizer is not None and unk is not None and max_unknown_share < 1:
        ids = tokenizer(text[:20_000], add_special_tokens=False).input_ids
        share = ids.count(unk) / len(ids) if ids else 0.0
        if share > max_unknown_share:
            return (f"unreadable input: {what} {index} is {share:.0%} unknown tokens for this QAGen's tokenizer "
                    f"(max_unknown_share={max_unknown_share})")
    return None


def input_error(text, what: str, index: int) -> str | None:
    """Why ``text`` (the summary or source of item ``index``) cannot be scored, or ``None``.

    >>> input_error("   ", "summary", 3)
    'empty input: summary 3 is empty or whitespace only'
    """
    if text is None:
        return f"invalid input: {what} {index} is None"
    if not isinstance(text, str):
        return f"invalid input: {what} {index} is {type(text).__name__}, expected str"
    if not text.strip():
        return f"empty input: {what} {index} is empty or whitespace only"
    return None
