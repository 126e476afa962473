"""A DPO-style pairwise objective on (S+, S-) pairs, reference-free as in SimPO (Meng et al., 2024).

For each document in both S+ and S- (paired selection), with ``s`` the mean token log-probability of a summary:
``-log sigmoid(beta * (s(reference) - s(worst candidate)) - gamma)``. DPO (Rafailov et al., 2023) compares the same
two log-probabilities after subtracting a frozen reference model's; the length-normalized, reference-free form
needs no second model and no extra forward passes, which matters when the policy is a LoRA-wrapped summarizer on
a CPU. Unlike the paper's unlikelihood term, it moves the pair's *difference*, not each token of the negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from trainer_ext.candidates import CandidateStore
from trainer_ext.losses import LossParts, sequence_log_likelihood, side_logps
from trainer_ext.objectives.base import Row, SelectedSetsObjective


@dataclass
class PairwiseLogistic(SelectedSetsObjective):
    """``sum over pairs of -log sigmoid(beta * (s+ - s-) - gamma) / pairs`` (``s``: mean token log-prob).

    Rows per paired document: its reference (S+), then its worst candidate (S-).

    +-----------------+---------+------------------------------------------+
    | batch key       | shape   | meaning                                  |
    +=================+=========+==========================================+
    | ``is_negative`` | ``[R]`` | row is the pair's S- side                |
    +-----------------+---------+------------------------------------------+
    """

    name: ClassVar[str] = "pairwise"
    stat_names: ClassVar[tuple[str, ...]] = ("logps_negative", "logps_positive")
    beta: float = 2.0
    gamma: float = 0.5

    def __post_init__(self):
        if self.selection_mode != "paired":
            raise ValueError("conseq_loss_type='pairwise' trains on (S+, S-) pairs of one document: use "
                             "conseq_selection_mode='paired'")
        if self.beta <= 0:
            raise ValueError(f"conseq_beta must be > 0, got {self.beta}")

    @classmethod
    def from_args(cls, args) -> PairwiseLogistic:
        return cls(**cls.selection_args(args), beta=args.conseq_beta, gamma=args.conseq_gamma)

    def rows(self, doc_id: str, reference: list[int], store: CandidateStore, position: int) -> list[Row]:
        return self.selected_rows(doc_id, reference, store, position)

    def batch_fields(self, documents: list[dict], rows: list[Row], width: int) -> dict[str, torch.Tensor]:
        return {"is_negative": torch.tensor([row.negative for row in rows])}

    @staticmethod
    def _sides(batch: dict[str, torch.Tensor], values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                               torch.Tensor]:
        """Per document: (value of its S+ row, value of its S- row, whether it has both): ``[D]`` each."""
        documents = batch["input_ids"].size(0)
        active, negative, document = batch["row_weight"].bool(), batch["is_negative"].bool(), batch["row_document"]
        sides = []
        for rows in (active & ~negative, active & negative):
            value = values.new_zeros(documents).index_put((document[rows],), values[rows])  # [D]
            present = torch.zeros(documents, dtype=torch.bool, device=values.device)
            sides.append((value, present.index_fill(0, document[rows], True)))
        (positive, has_positive), (negative_value, has_negative) = sides
        return positive, negative_value, has_positive & has_negative

    def counts(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        _, _, paired = self._sides(batch, batch["row_weight"].float())
        return {"pairs": paired.sum()}

    def loss(self, log_probs: torch.Tensor, batch: dict[str, torch.Tensor]) -> LossParts:
        mean_logp = sequence_log_likelihood(log_probs, batch["labels"], length_penalty=1.0)  # [R]
        positive, negative, paired = self._sides(batch, mean_logp)  # [D] x 3
        losses = -F.logsigmoid(self.beta * (positive - negative) - self.gamma) * paired  # [D]
        return LossParts(terms={"pairwise": (losses.sum(), "pairs")}, counts=self.counts(batch),
                         stats=side_logps(log_probs, batch["labels"], batch["is_negative"], batch["row_weight"]))
