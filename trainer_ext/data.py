"""Dataset plumbing: stable example ids for the candidate store, and a collator that hides CONSEQ's columns.

``with_example_ids`` adds the row index as the id column when a ``datasets.Dataset`` has none (and wraps other
map-style datasets likewise); ids must be unique, since candidates are looked up by id.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class _IndexedDataset(torch.utils.data.Dataset):
    """A map-style dataset whose items gain ``{id_column: index}``."""

    def __init__(self, dataset, id_column: str):
        self.dataset, self.id_column = dataset, id_column

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return {**self.dataset[index], self.id_column: index}


def with_example_ids(dataset, id_column: str):
    """``dataset`` with a unique id per example (the row index when it has no ``id_column``)."""
    if isinstance(dataset, torch.utils.data.IterableDataset) or not hasattr(dataset, "__len__"):
        raise TypeError("ContrastiveTrainer needs a map-style train_dataset (candidates are generated per example); "
                        "iterable datasets are not supported")
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        datasets = None
    if datasets is not None and isinstance(dataset, datasets.Dataset):
        if id_column not in dataset.column_names:
            dataset = dataset.add_column(id_column, list(range(len(dataset))))
    elif len(dataset) and id_column not in dataset[0]:
        dataset = _IndexedDataset(dataset, id_column)
    ids = example_ids(dataset, id_column)
    if len(set(ids)) != len(ids):
        seen, duplicates = set(), []
        for i in ids:
            if i in seen:
                duplicates.append(i)
            seen.add(i)
        raise ValueError(f"Column {id_column!r} must hold unique ids; duplicated: {duplicates[:5]}")
    return dataset


def check_text_columns(dataset, columns: dict[str, str | None]) -> None:
    """Refuse, at construction, a ``conseq_*_column`` that the training rows do not have.

    ``columns`` maps each argument's name to the column it names (``None``: decode the token ids instead). A script
    shaped like ``run_summarization.py`` removes its text columns in ``.map(remove_columns=...)``; the message says
    how to keep one.
    """
    available = list(dataset.column_names) if hasattr(dataset, "column_names") else (
        list(dataset[0]) if len(dataset) else [])
    for argument, column in columns.items():
        if column is not None and column not in available:
            raise ValueError(
                f"{argument}={column!r} is not a column of train_dataset (it has {available}). If the script's "
                f"tokenization removed it (.map(..., remove_columns=column_names)), keep it: remove_columns="
                f"[c for c in column_names if c != {column!r}]; or set {argument}=None to give the scorer the decoded "
                "token ids (lower-cased, truncated text for some tokenizers).")


def example_ids(dataset, id_column: str) -> list[str]:
    """The ids of all examples, as strings, in dataset order."""
    if hasattr(dataset, "column_names"):
        return [str(i) for i in dataset[id_column]]
    return [str(dataset[i][id_column]) for i in range(len(dataset))]


class DropColumnsCollator:
    """Wrap a collator so that CONSEQ's extra columns (id, raw texts) never reach it or the model."""

    def __init__(self, collator: Callable, columns: set[str]):
        self.collator, self.columns = collator, set(columns)
        self.pad_to_multiple_of = getattr(collator, "pad_to_multiple_of", None)

    def __call__(self, features: list[dict]):
        return self.collator([{k: v for k, v in f.items() if k not in self.columns} for f in features])
