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
