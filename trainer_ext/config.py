"""ContrastiveTrainingArguments: ``Seq2SeqTrainingArguments`` plus the CONSEQ settings (each field has help text,
so ``HfArgumentParser`` turns them into command-line flags).

Defaults follow the paper (Nan et al., ACL 2021): 6 top-k(50) samples per document, S- = worst sample of the
bottom 30 % of documents, S+ = references of the top 30 %, paired; label-smoothed (0.1) NLL + unlikelihood. The paper
generates candidates once (``conseq_regenerate_every_epochs=0``); the default regenerates them every epoch
(on-policy).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from transformers import Seq2SeqTrainingArguments

from trainer_ext.objectives import OBJECTIVES, objective_from_args


PAPER_SAMPLING = {"do_sample": True, "top_k": 50, "top_p": 1.0, "temperature": 1.0, "num_beams": 1}


@dataclass
class ContrastiveTrainingArguments(Seq2SeqTrainingArguments):
    """Arguments of :class:`~trainer_ext.ContrastiveTrainer` (all ``Seq2SeqTrainingArguments`` work as usual).

    Every CONSEQ field starts with ``conseq_``, so that none collides with the arguments of an existing script
    (``run_summarization.py`` has its own ``summary_column`` and ``text_column``) when ``HfArgumentParser`` parses
    both; the rest of the name says what it sets:

    > Candidates
    conseq_num_candidates, conseq_regenerate_every_epochs, conseq_candidates_file, conseq_generation_kwargs,
    conseq_generation_batch_size, conseq_scoring_batch_size
    > Dataset columns
    conseq_id_column, conseq_source_column, conseq_summary_column, conseq_text_dataset, conseq_text_dataset_config,
    conseq_text_dataset_split
    > Selection of S+ and S-
    conseq_selection_mode, conseq_negative_fraction, conseq_positive_fraction
    > Loss
    conseq_loss_type, conseq_loss_label_smoothing, conseq_stable_unlikelihood, conseq_unlikelihood_tokens,
    conseq_margin, conseq_length_penalty, conseq_rank_weight, conseq_mle_weight, conseq_beta, conseq_gamma,
    conseq_skip_empty_steps
    > Scorer
    conseq_metric_key, conseq_metric_kwargs
    """

    # > Candidates
    conseq_num_candidates: int = field(default=6, metadata={
        "help": "Candidate summaries sampled per training document (the paper: 6)."})
    conseq_regenerate_every_epochs: int = field(default=1, metadata={
        "help": "Regenerate and rescore candidates at the start of every N-th epoch; 0 = once before training (the "
                "paper's offline mode)."})
    conseq_candidates_file: str | None = field(default=None, metadata={
        "help": "JSON-lines file of candidates to use for the first round instead of generating them (one object per "
                "document: id, candidates, optional candidate_scores / reference_score; what a checkpoint saves)."})
    conseq_generation_kwargs: dict[str, Any] | str | None = field(default=None, metadata={
        "help": "generate() kwargs for candidates (a dict or JSON string), merged over the paper's sampling "
                f"{PAPER_SAMPLING}; max_new_tokens defaults to generation_max_length when set."})
    conseq_generation_batch_size: int | None = field(default=None, metadata={
        "help": "Documents per generate() call (None: per_device_eval_batch_size)."})
    conseq_scoring_batch_size: int = field(default=256, metadata={"help": "Summaries per scorer call."})

    # > Dataset columns
    conseq_id_column: str = field(default="id", metadata={
        "help": "Column with a unique example id; added as the row index when a datasets.Dataset lacks it."})
    conseq_source_column: str | None = field(default=None, metadata={
        "help": "Text column of the source document given to the scorer (None: decode input_ids)."})
    conseq_summary_column: str | None = field(default=None, metadata={
        "help": "Text column of the reference summary given to the scorer (None: decode labels)."})
    conseq_text_dataset: str | None = field(default=None, metadata={
        "help": "Untokenized training data holding conseq_source_column / conseq_summary_column when the training "
                "rows lost them in tokenization: a data file (json, jsonl, csv, parquet, txt) or a dataset name or "
                "folder for datasets.load_dataset. Row i must be training row i (checked on a sample of rows)."})
    conseq_text_dataset_config: str | None = field(default=None, metadata={
        "help": "Configuration name of conseq_text_dataset (a dataset name only)."})
    conseq_text_dataset_split: str = field(default="train", metadata={
        "help": "Split of conseq_text_dataset (a dataset name only; a data file is its own split)."})

    # > Selection
    conseq_selection_mode: Literal["paired", "unpaired"] = field(default="paired", metadata={
        "help": "paired: documents in both S+ and S- (the paper); unpaired: S+ and S- as selected."})
    conseq_negative_fraction: float = field(default=0.3, metadata={
        "help": "Share of documents whose worst candidate enters S- (lowest worst-candidate scores)."})
    conseq_positive_fraction: float = field(default=0.3, metadata={
        "help": "Share of documents whose reference enters S+ (highest reference scores)."})

    # > Loss
    conseq_loss_type: str = field(default="unlikelihood", metadata={
        "help": "The CONSEQ objective (trainer_ext.objectives): unlikelihood (the paper: NLL on S+, token "
                "unlikelihood on S-), margin_rank (BRIO-style ranking of all scored candidates plus an MLE term on "
                "the reference) or pairwise (DPO-style logistic loss on the (S+, S-) pair's log-prob gap, "
                "reference-free as in SimPO)."})
    conseq_loss_label_smoothing: float = field(default=0.1, metadata={
        "help": "Label smoothing epsilon of the NLL and unlikelihood terms (the paper: 0.1)."})
    conseq_stable_unlikelihood: bool = field(default=True, metadata={
        "help": "Compute log(1 - p) stably (log1mexp); False uses the paper's log(clamp(1 - p, 1e-20))."})
    conseq_unlikelihood_tokens: Literal["all", "novel"] = field(default="all", metadata={
        "help": "S- tokens that get the unlikelihood term: all (the paper) or novel, i.e. only tokens absent from "
                "the source (spares the correct tokens a negative shares with its reference)."})
    conseq_margin: float = field(default=0.001, metadata={"help": "margin_rank: margin per rank gap (BRIO: 0.001)."})
    conseq_length_penalty: float = field(default=2.0, metadata={
        "help": "margin_rank: sequence score = sum log p / length ** length_penalty (BRIO: 2.0)."})
    conseq_rank_weight: float = field(default=10.0, metadata={"help": "margin_rank: weight of the ranking term."})
    conseq_mle_weight: float = field(default=0.1, metadata={"help": "margin_rank: weight of the reference NLL term."})

    conseq_beta: float = field(default=2.0, metadata={
        "help": "pairwise: scale of the gap of mean token log-probs, s(S+) - s(S-) (SimPO: 2.0)."})
    conseq_gamma: float = field(default=0.5, metadata={"help": "pairwise: target margin of the scaled gap."})

    conseq_skip_empty_steps: bool = field(default=True, metadata={
        "help": "Skip the optimizer step when no document of the accumulated batch is in S+/S- (AdamW would still "
                "move the weights through momentum and weight decay)."})

    # > Scorer
    conseq_metric_key: str | None = field(default=None, metadata={
        "help": "For an evaluate-module scorer: the result key holding per-summary scores (e.g. 'quals')."})
    conseq_metric_kwargs: dict[str, Any] | str | None = field(default=None, metadata={
        "help": "Extra compute() kwargs for an evaluate-module scorer (a dict or JSON string)."})

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.conseq_generation_kwargs, str):
            self.conseq_generation_kwargs = json.loads(self.conseq_generation_kwargs)
        if isinstance(self.conseq_metric_kwargs, str):
            self.conseq_metric_kwargs = json.loads(self.conseq_metric_kwargs)
        if self.conseq_num_candidates < 1:
            raise ValueError(f"conseq_num_candidates must be >= 1, got {self.conseq_num_candidates}")
        for name, allowed in (("conseq_loss_type", tuple(OBJECTIVES)),
                              ("conseq_selection_mode", ("paired", "unpaired"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {getattr(self, name)!r}")
        if self.conseq_text_dataset is not None and self.conseq_source_column is None and \
                self.conseq_summary_column is None:
            raise ValueError("conseq_text_dataset needs conseq_source_column and/or conseq_summary_column: the "
                             "columns to read from it")
        if self.conseq_regenerate_every_epochs < 0:
            raise ValueError("conseq_regenerate_every_epochs must be >= 0 (0 = generate once)")
        for name in ("conseq_negative_fraction", "conseq_positive_fraction"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.conseq_loss_label_smoothing < 1.0:
            raise ValueError(f"conseq_loss_label_smoothing must be in [0, 1), got {self.conseq_loss_label_smoothing}")
        objective_from_args(self)  # each objective checks its own settings (e.g. margin_rank needs 2 candidates)
        if self.dataloader_persistent_workers and self.dataloader_num_workers > 0:
            raise ValueError("dataloader_persistent_workers=True would keep workers holding stale candidates after "
                             "each regeneration; use dataloader_persistent_workers=False (workers then re-fork each "
                             "epoch and see the new candidates)")

    def candidate_generation_kwargs(self) -> dict[str, Any]:
        """The generate() kwargs for candidates: paper sampling < generation_max_length < generation_kwargs."""
        kwargs = dict(PAPER_SAMPLING)
        if self.generation_max_length is not None:
            kwargs["max_new_tokens"] = self.generation_max_length
        kwargs.update(self.conseq_generation_kwargs or {})
        kwargs["num_return_sequences"] = self.conseq_num_candidates
        return kwargs
