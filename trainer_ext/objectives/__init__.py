"""CONSEQ objectives: each one object that owns its hyperparameters, selection, rows, counts and loss.

| name | class | trains on |
|---|---|---|
| ``unlikelihood`` (the paper) | :class:`Unlikelihood` | S+ references (NLL), S- candidates (token unlikelihood) |
| ``margin_rank`` | :class:`MarginRank` | every scored candidate, ranked (BRIO), plus the reference's NLL |
| ``pairwise`` | :class:`PairwiseLogistic` | (S+, S-) pairs: DPO-style logistic loss on their log-prob gap |

``ContrastiveTrainingArguments.conseq_loss_type`` names one of ``OBJECTIVES``; ``ContrastiveTrainer(objective=...)``
takes any :class:`ConseqObjective` instance instead, so a new objective is one file.
"""

from trainer_ext.objectives.base import ConseqObjective, Row, SelectedSetsObjective
from trainer_ext.objectives.margin_rank import MarginRank
from trainer_ext.objectives.pairwise import PairwiseLogistic
from trainer_ext.objectives.unlikelihood import Unlikelihood


OBJECTIVES: dict[str, type[ConseqObjective]] = {cls.name: cls for cls in (Unlikelihood, MarginRank, PairwiseLogistic)}


def objective_from_args(args) -> ConseqObjective:
    """The objective ``args.conseq_loss_type`` names, configured by the other ``conseq_*`` arguments."""
    return OBJECTIVES[args.conseq_loss_type].from_args(args)


__all__ = ["OBJECTIVES", "ConseqObjective", "MarginRank", "PairwiseLogistic", "Row", "SelectedSetsObjective",
           "Unlikelihood", "objective_from_args"]
