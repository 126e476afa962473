"""BRIO-style ranking of every scored candidate by the scorer, plus an MLE term on the reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from trainer_ext.candidates import CandidateStore
from trainer_ext.losses import LossParts, margin_rank_counts, margin_rank_mle_loss
from trainer_ext.objectives.base import ConseqObjective, Row
from trainer_ext.selection import Selection, is_score


@dataclass
class MarginRank(ConseqObjective):
    """``rank_weight * ranking / documents + mle_weight * NLL(reference) / tokens`` (Liu et al. 2022, BRIO).

    Rows per document with at least two scored candidates: its reference (MLE term), then its candidates sorted
    best-first by the scorer (ranking term). No S+/S- selection: every such document trains.

    +---------------------+-----------+--------------------------------------------------------+
    | batch key           | shape     | meaning                                                |
    +=====================+===========+========================================================+
    | ``is_reference``    | ``[R]``   | reference row (MLE term)                               |
    | ``candidate_index`` | ``[R]``   | ``d * C + rank`` in the score grid, or -1              |
    | ``candidate_mask``  | ``[D,C]`` | which grid cells hold a candidate                      |
    +---------------------+-----------+--------------------------------------------------------+
    """

    name: ClassVar[str] = "margin_rank"
    uses_selection: ClassVar[bool] = False
    num_candidates: int = 6
    margin: float = 0.001
    length_penalty: float = 2.0
    rank_weight: float = 10.0
    mle_weight: float = 0.1
    label_smoothing: float = 0.1

    def __post_init__(self):
        if self.num_candidates < 2:
            raise ValueError("conseq_loss_type='margin_rank' ranks candidates: conseq_num_candidates must be >= 2")

    @classmethod
    def from_args(cls, args) -> MarginRank:
        return cls(num_candidates=args.conseq_num_candidates, margin=args.conseq_margin,
                   length_penalty=args.conseq_length_penalty, rank_weight=args.conseq_rank_weight,
                   mle_weight=args.conseq_mle_weight, label_smoothing=args.conseq_loss_label_smoothing)

    def select(self, store: CandidateStore) -> Selection:
        return Selection()

    def rows(self, doc_id: str, reference: list[int], store: CandidateStore, position: int) -> list[Row]:
        if doc_id not in store:
            return []
        doc = store[doc_id]
        ranked = sorted((i for i, s in enumerate(doc.scores) if is_score(s)), key=lambda i: -doc.scores[i])
        ranked = ranked[: self.num_candidates]
        if len(ranked) < 2:
            return []
        return [Row(position, reference, reference=True)] + [
            Row(position, doc.token_ids[i], candidate_index=position * self.num_candidates + rank)
            for rank, i in enumerate(ranked)]

    def batch_fields(self, documents: list[dict], rows: list[Row], width: int) -> dict[str, torch.Tensor]:
        candidate_index = torch.tensor([row.candidate_index for row in rows])
        mask = torch.zeros(len(documents) * self.num_candidates, dtype=torch.bool)
        mask[candidate_index[candidate_index >= 0]] = True
        return {"is_reference": torch.tensor([row.reference for row in rows]), "candidate_index": candidate_index,
                "candidate_mask": mask.view(len(documents), self.num_candidates)}  # [D, C]

    def counts(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return margin_rank_counts(batch["labels"], batch["is_reference"], batch["candidate_mask"])

    def loss(self, log_probs: torch.Tensor, batch: dict[str, torch.Tensor]) -> LossParts:
        return margin_rank_mle_loss(log_probs, batch["labels"], batch["is_reference"], batch["candidate_index"],
                                    batch["candidate_mask"], self.margin, self.length_penalty, self.rank_weight,
                                    self.mle_weight, self.label_smoothing)
