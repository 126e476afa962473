"""CONSEQ training for Hugging Face summarizers (seq2seq or decoder-only): ``ContrastiveTrainer`` is a drop-in
``Seq2SeqTrainer``.

>>> from trainer_ext import ContrastiveTrainer, ContrastiveTrainingArguments          # doctest: +SKIP
>>> args = ContrastiveTrainingArguments(output_dir="out", conseq_num_candidates=6)            # doctest: +SKIP
>>> ContrastiveTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer,
...                    scorer=QualsScorer(model="qagen-folder")).train()                # doctest: +SKIP
"""

from trainer_ext.callback import CandidateRegenerationCallback
from trainer_ext.candidates import CandidateStore, DocumentCandidates
from trainer_ext.collator import ContrastiveCollator
from trainer_ext.config import ContrastiveTrainingArguments
from trainer_ext.losses import margin_rank_loss, margin_rank_mle_loss, unlikelihood_loss
from trainer_ext.objectives import OBJECTIVES, ConseqObjective, MarginRank, PairwiseLogistic, Unlikelihood
from trainer_ext.scorers import RougeScorer, as_score_function
from trainer_ext.selection import Selection, select_contrastive_sets
from trainer_ext.trainer import ContrastiveTrainer


__all__ = [
    "OBJECTIVES",
    "CandidateRegenerationCallback",
    "CandidateStore",
    "ConseqObjective",
    "ContrastiveCollator",
    "ContrastiveTrainer",
    "ContrastiveTrainingArguments",
    "DocumentCandidates",
    "MarginRank",
    "PairwiseLogistic",
    "RougeScorer",
    "Selection",
    "Unlikelihood",
    "as_score_function",
    "margin_rank_loss",
    "margin_rank_mle_loss",
    "select_contrastive_sets",
    "unlikelihood_loss",
]
