"""The interface of a CONSEQ objective: one object owns its hyperparameters, its selection of what trains, the rows
it needs per document, the normalizers it counts over the accumulated batch, and its loss.

The trainer, the collator and the regeneration callback only call these methods, so a new objective is one file
(a subclass registered in ``trainer_ext.objectives.OBJECTIVES``, or an instance passed as
``ContrastiveTrainer(objective=...)``) and nothing branches on an objective's name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

from trainer_ext.candidates import CandidateStore
from trainer_ext.losses import LossParts
from trainer_ext.selection import Selection, select_contrastive_sets


@dataclass
class Row:
    """One training row: a target summary of document ``document`` (its index in the batch's sources)."""

    document: int
    labels: list[int]
    weight: float = 1.0  # 0: a placeholder row that keeps ranks in lock-step and trains nothing
    negative: bool = False  # in S-
    reference: bool = False  # the document's reference summary
    candidate_index: int = -1  # place in a [documents, candidates] grid, for ranking objectives


class ConseqObjective(ABC):
    """Base class of CONSEQ objectives (see the module docstring)."""

    name: ClassVar[str]
    stat_names: ClassVar[tuple[str, ...]] = ()  # monitoring statistics its loss reports (``LossParts.stats``)
    uses_selection: ClassVar[bool] = True  # an empty selection trains nothing (the callback then warns)

    @classmethod
    @abstractmethod
    def from_args(cls, args) -> ConseqObjective:
        """The objective configured by ``ContrastiveTrainingArguments`` (its ``conseq_*`` fields)."""

    @abstractmethod
    def select(self, store: CandidateStore) -> Selection:
        """Which documents (and candidates) train in this round."""

    @abstractmethod
    def rows(self, doc_id: str, reference: list[int], store: CandidateStore, position: int) -> list[Row]:
        """The rows of one document (``reference``: its label ids; ``position``: its index among the sources)."""

    def batch_fields(self, documents: list[dict], rows: list[Row], width: int) -> dict[str, torch.Tensor]:
        """Extra tensors of a batch beside ``input_ids``, ``attention_mask``, ``labels [R,T]``, ``row_document [R]``
        and ``row_weight [R]`` (``width`` = T)."""
        return {}

    @abstractmethod
    def counts(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The normalizers of one micro-batch, summed by the trainer over accumulation steps and ranks."""

    @abstractmethod
    def loss(self, log_probs: torch.Tensor, batch: dict[str, torch.Tensor]) -> LossParts:
        """The un-normalized terms of one micro-batch (``log_probs [R,T,V]``, float32)."""


@dataclass
class SelectedSetsObjective(ConseqObjective, ABC):
    """An objective that trains on the paper's S+ (top references) and S- (worst candidates)."""

    negative_fraction: float = 0.3
    positive_fraction: float = 0.3
    selection_mode: str = "paired"

    def select(self, store: CandidateStore) -> Selection:
        return select_contrastive_sets(*store.scores(), negative_fraction=self.negative_fraction,
                                       positive_fraction=self.positive_fraction, mode=self.selection_mode)

    def selected_rows(self, doc_id: str, reference: list[int], store: CandidateStore, position: int) -> list[Row]:
        """The reference if the document is in S+, then its selected candidate if it is in S-."""
        selection, rows = store.selection, []
        if doc_id in selection.positive_set:
            rows.append(Row(position, reference, reference=True))
        if doc_id in selection.negatives:
            rows.append(Row(position, store[doc_id].token_ids[selection.negatives[doc_id]], negative=True))
        return rows

    @staticmethod
    def selection_args(args) -> dict:
        return {"negative_fraction": args.conseq_negative_fraction,
                "positive_fraction": args.conseq_positive_fraction, "selection_mode": args.conseq_selection_mode}
