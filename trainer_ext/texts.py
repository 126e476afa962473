"""The texts the scorer reads: each training document's source and reference, by dataset position.

Three places can hold them, in this order of preference:

- a text column of the training rows (``conseq_source_column`` / ``conseq_summary_column``);
- the same column of ``conseq_text_dataset``, a dataset or data file whose row ``i`` is the untokenized training row
  ``i`` (for a script whose tokenization removed its text columns, as ``run_summarization.py`` does: pass the file or
  dataset the script read, and nothing in the script changes); checked at construction against the token ids;
- the training row's token ids, decoded (the fallback: truncated to the model's input, lower-cased by some
  tokenizers, and for a decoder-only summarizer the whole prompt, so it is refused there).
"""

from __future__ import annotations

import itertools
import os
import re

from trainer_ext.losses import IGNORE_INDEX


_DATA_FILE_BUILDERS = {"json": "json", "jsonl": "json", "csv": "csv", "tsv": "csv", "parquet": "parquet",
                       "txt": "text", "arrow": "arrow"}
_ALIGNMENT_SAMPLE = 64     # rows of conseq_text_dataset checked against the training rows at construction
_ALIGNMENT_BIGRAMS = 30    # leading word bigrams of a text looked up in its row's decoded token ids
_ALIGNMENT_MIN_SHARE = 0.6  # same document: ~1.0 (tokenizer artefacts aside); another document: far lower


def load_text_dataset(name_or_file: str, config: str | None = None, split: str = "train"):
    """``datasets.load_dataset`` of a data file (by its extension) or of a dataset name or folder."""
    from datasets import load_dataset

    builder = _DATA_FILE_BUILDERS.get(os.path.splitext(name_or_file)[1].lower().lstrip("."))
    if builder is not None and os.path.isfile(name_or_file):
        return load_dataset(builder, data_files=name_or_file, split="train")
    return load_dataset(name_or_file, config, split=split)


def column_names(dataset) -> list[str]:
    """The columns of a ``datasets.Dataset`` or of the first item of another map-style dataset."""
    if hasattr(dataset, "column_names"):
        return list(dataset.column_names)
    return list(dataset[0]) if len(dataset) else []


def check_text_columns(dataset, columns: dict[str, str | None], where: str = "train_dataset") -> None:
    """Refuse, at construction, a ``conseq_*_column`` that ``dataset`` does not have.

    ``columns`` maps each argument's name to the column it names (``None``: decode the token ids instead). A script
    shaped like ``run_summarization.py`` removes its text columns in ``.map(remove_columns=...)``; the message says
    how to get them back without editing it, or by keeping the column.
    """
    available = column_names(dataset)
    for argument, column in columns.items():
        if column is not None and column not in available:
            raise ValueError(
                f"{argument}={column!r} is not a column of {where} (it has {available}). If the script's "
                "tokenization removed it (.map(..., remove_columns=column_names)), either pass the untokenized data "
                "it read as conseq_text_dataset (a data file or dataset name; row i = training row i; no script "
                f"change), or keep the column: remove_columns=[c for c in column_names if c != {column!r}]; or set "
                f"{argument}=None to give the scorer the decoded token ids (lower-cased, truncated text for some "
                "tokenizers).")


def _leading_bigrams(text: str) -> list[tuple[str, str]]:
    words = re.findall(r"\w+", text.lower())[: _ALIGNMENT_BIGRAMS + 1]
    return list(itertools.pairwise(words))


def _decoded(tokenizer, token_ids) -> str:
    """The text of token ids, label padding (``IGNORE_INDEX``) and special tokens left out."""
    return tokenizer.decode([t for t in token_ids if t != IGNORE_INDEX], skip_special_tokens=True)


class DocumentTexts:
    """Source and reference text of training rows, by position (see the module docstring for where they come from).

    Args:
        train_dataset: the tokenized training rows (``input_ids``, ``labels``).
        tokenizer: decodes the token ids when a text has no column.
        source_column / summary_column: the text columns (``None``: decode ``input_ids`` / ``labels``).
        text_dataset: optional untokenized rows aligned with ``train_dataset`` that hold the named columns.
    """

    def __init__(self, train_dataset, tokenizer, source_column: str | None, summary_column: str | None,
                 text_dataset=None):
        self.train_dataset, self.tokenizer = train_dataset, tokenizer
        self.columns = {"input_ids": source_column, "labels": summary_column}
        self.text_dataset = None
        own = column_names(train_dataset)
        if text_dataset is None or all(c is None or c in own for c in self.columns.values()):
            check_text_columns(train_dataset, {"conseq_source_column": source_column,
                                               "conseq_summary_column": summary_column})
            return
        external = {ids: c for ids, c in self.columns.items() if c is not None and c not in own}
        check_text_columns(text_dataset, {f"column {c!r}": c for c in external.values()}, "conseq_text_dataset")
        if len(text_dataset) < len(train_dataset):
            raise ValueError(f"conseq_text_dataset has {len(text_dataset)} rows, fewer than the {len(train_dataset)} "
                             "training rows it must align with (row i = training row i)")
        self.text_dataset = text_dataset.select_columns(sorted(set(external.values())))
        self._check_alignment(external)

    def _check_alignment(self, external: dict[str, str]) -> None:
        """Each text of a sample of rows must begin with words its training row's token ids hold."""
        n = len(self.train_dataset)
        step = (n - 1) / (_ALIGNMENT_SAMPLE - 1)
        positions = sorted({round(i * step) for i in range(_ALIGNMENT_SAMPLE)}) if n else []
        for position in positions:
            row, texts = self.train_dataset[position], self.text_dataset[position]
            for ids_key, column in external.items():
                expected = _leading_bigrams(texts[column] or "")
                if not expected:
                    continue
                decoded = _decoded(self.tokenizer, row[ids_key])
                found = set(itertools.pairwise(re.findall(r"\w+", decoded.lower())))
                share = sum(b in found for b in expected) / len(expected)
                if share < _ALIGNMENT_MIN_SHARE:
                    raise ValueError(
                        f"conseq_text_dataset row {position} does not match training row {position}: its {column!r} "
                        f"begins {texts[column][:80]!r}, but the row's {ids_key} decode to {decoded[:80]!r} (only "
                        f"{share:.0%} of its leading word pairs found). Row i of conseq_text_dataset must be the "
                        "untokenized training row i: same split, same order, no rows filtered or shuffled before "
                        "tokenization (else keep the column in the training rows).")

    def text(self, row: dict, position: int, ids_key: str) -> str:
        column = self.columns[ids_key]
        if column is None:
            return _decoded(self.tokenizer, row[ids_key])
        if column in row:
            return row[column]
        return self.text_dataset[position][column]

    def __call__(self, positions: list[int]) -> tuple[list[list[int]], list[str], list[str]]:
        """(input ids, source text, reference text) of the training rows at ``positions``."""
        inputs, sources, references = [], [], []
        for position in positions:
            row = self.train_dataset[position]
            inputs.append(list(row["input_ids"]))
            sources.append(self.text(row, position, "input_ids"))
            references.append(self.text(row, position, "labels"))
        return inputs, sources, references
