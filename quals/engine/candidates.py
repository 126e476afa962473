"""The sequences a QAGen wrote for one summary, parsed into candidate QA pairs (what ``filter_pairs`` selects from).

A one-pair format's candidate keeps its generated ids as its target, with the search's log-probabilities (raw and
penalized) of the positions a score counts; a multi-pair format re-renders each pair on its own, since its span in
the sequence saw the other pairs.
"""

from __future__ import annotations

import torch

from quals.engine.filtering import Candidate, Rejection
from quals.engine.qagen import QAGenModel


Generated = tuple[list[int], torch.Tensor, torch.Tensor]  # generated ids, raw and penalized log-probs [T]


def parse_sequences(qagen: QAGenModel, generated: list[Generated]) -> tuple[list[Candidate], list[Rejection]]:
    """The candidate pairs of one summary's G generated sequences, and the sequences that hold no pair."""
    candidates, rejected = [], []
    for ids, raw, penalized in generated:
        text, pairs = qagen.decode_pairs(ids)
        if not pairs or (not qagen.format.multi_pair and len(pairs) != 1):
            rejected.append(Rejection(text, "", "unparseable (no single question-separator-answer)"))
            continue
        if qagen.format.multi_pair:
            candidates += [Candidate(question, answer, float(penalized.sum()), float(raw.mean()),
                                     {"target": qagen.target(question, answer)}) for question, answer in pairs]
        else:
            candidates.append(sequence_candidate(qagen, *pairs[0], ids, raw, penalized))
    return candidates, rejected


def sequence_candidate(qagen: QAGenModel, question: str, answer: str, ids: list[int], raw: torch.Tensor,
                       penalized: torch.Tensor) -> Candidate:
    """The candidate whose target is one whole generated sequence ``ids`` (raw/penalized log-probs ``[T]``)."""
    target = qagen.target_from_ids(ids)
    leading = len(ids) - len(target.ids) + target.num_unscored  # generated ids that are not scored
    scored = slice(leading, len(ids) - (qagen.format.terminator == "exclude"))  # positions a score counts
    search_score = float(penalized.sum())
    payload = {"target": target, "penalized": penalized[scored], "search_score": search_score}
    if target.ids == ids and qagen.format.terminator != "merged":  # the search already teacher-forced it
        payload["generated_logprobs"] = raw[scored]  # (a merged terminator scores its last token differently)
    return Candidate(question, answer, search_score, float(raw[leading:].mean()), payload)
