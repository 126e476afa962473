"""The paper's objective: likelihood on S+ (references), token-level unlikelihood on S- (bad candidates)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from trainer_ext.candidates import CandidateStore
from trainer_ext.losses import LossParts, unlikelihood_counts, unlikelihood_loss
from trainer_ext.objectives.base import Row, SelectedSetsObjective


@dataclass
class Unlikelihood(SelectedSetsObjective):
    """CONSEQ as released (Nan et al., ACL 2021): ``(NLL of S+ tokens + unlikelihood of S- tokens) / all tokens``.

    Rows per document: its reference if it is in S+, its worst candidate if it is in S- (paired mode: both).

    +-------------------------+-----------+-------------------------------------------------------+
    | batch key               | shape     | meaning                                               |
    +=========================+===========+=======================================================+
    | ``is_negative``         | ``[R]``   | row is in S-                                          |
    | ``negative_token_mask`` | ``[R,T]`` | ``tokens="novel"`` only: S- tokens absent from the    |
    |                         |           | source (the only ones penalized)                      |
    +-------------------------+-----------+-------------------------------------------------------+

    Hyperparameters: ``label_smoothing`` (the paper: 0.1), ``stable`` (log(1 - p) via log1mexp; False: the paper's
    clamp), ``tokens`` (``"all"``: the paper; ``"novel"``: spare the S- tokens the source contains), and the
    selection's fractions and mode.
    """

    name: ClassVar[str] = "unlikelihood"
    stat_names: ClassVar[tuple[str, ...]] = ("logps_negative", "logps_positive")
    label_smoothing: float = 0.1
    stable: bool = True
    tokens: str = "all"

    def __post_init__(self):
        if self.tokens not in ("all", "novel"):
            raise ValueError(f"conseq_unlikelihood_tokens must be 'all' or 'novel', got {self.tokens!r}")

    @classmethod
    def from_args(cls, args) -> Unlikelihood:
        return cls(**cls.selection_args(args), label_smoothing=args.conseq_loss_label_smoothing,
                   stable=args.conseq_stable_unlikelihood, tokens=args.conseq_unlikelihood_tokens)

    def rows(self, doc_id: str, reference: list[int], store: CandidateStore, position: int) -> list[Row]:
        return self.selected_rows(doc_id, reference, store, position)

    def batch_fields(self, documents: list[dict], rows: list[Row], width: int) -> dict[str, torch.Tensor]:
        fields = {"is_negative": torch.tensor([row.negative for row in rows])}
        if self.tokens == "novel":  # penalize only S- tokens that the source does not contain
            source_tokens = [set(d["input_ids"]) for d in documents]
            fields["negative_token_mask"] = torch.tensor(
                [[row.negative and t not in source_tokens[row.document] for t in row.labels]
                 + [False] * (width - len(row.labels)) for row in rows])  # [R, T]
        return fields

    def counts(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return unlikelihood_counts(batch["labels"], batch["row_weight"])

    def loss(self, log_probs: torch.Tensor, batch: dict[str, torch.Tensor]) -> LossParts:
        return unlikelihood_loss(log_probs, batch["labels"], batch["is_negative"], batch["row_weight"],
                                 self.label_smoothing, self.stable, batch.get("negative_token_mask"))
