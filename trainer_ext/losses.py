"""Contrastive losses for seq2seq summarizers: small pure functions over token log-probabilities.

Every loss returns a :class:`LossParts`: **sums** (not means) of its terms plus the counts that normalize them.
The trainer divides the sums by the counts of the *whole* accumulated batch (all gradient-accumulation steps, all
ranks), which is what fairseq does in the paper's code, so 4 micro-batches of 1 give the same update as 1 batch of 4.

Conventions shared by all functions (``R`` summary rows, ``T`` target length, ``V`` vocabulary size):

+----------------+-------------------+----------------------------------------------------------------+
| name           | shape             | meaning                                                        |
+================+===================+================================================================+
| ``log_probs``  | ``[R, T, V]``     | float32 log-softmax of the decoder logits (teacher forcing)    |
+----------------+-------------------+----------------------------------------------------------------+
| ``labels``     | ``[R, T]``        | target token ids; ``-100`` marks padding (never counted)        |
+----------------+-------------------+----------------------------------------------------------------+
| ``is_negative``| ``[R]`` bool      | row belongs to S- (unlikelihood) instead of S+ (likelihood)     |
+----------------+-------------------+----------------------------------------------------------------+
| ``row_weight`` | ``[R]`` float     | 0 drops a row (placeholder rows keep every rank in lock-step)   |
+----------------+-------------------+----------------------------------------------------------------+

References: Nan et al. 2021 (CONSEQ, ``label_smoothed_cross_entropy_with_unlikelihood`` in
amazon-science/fact-check-summarization); Welleck et al. 2020 (unlikelihood training); Liu et al. 2022 (BRIO,
``RankingLoss``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


IGNORE_INDEX = -100
LOG_CLAMP = math.log(1e-20)  # the paper clamps 1 - p at 1e-20 before the log


@dataclass
class LossParts:
    """Un-normalized loss terms and their normalizers.

    ``terms`` maps a term name to ``(sum, normalizer name)``; ``counts`` maps normalizer names to local counts.
    ``combine(counts)`` divides each sum by its (possibly global) count and adds the terms up.
    """

    terms: dict[str, tuple[torch.Tensor, str]] = field(default_factory=dict)
    counts: dict[str, torch.Tensor] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)  # monitoring only (e.g. mean log-prob of S+ rows)

    def combine(self, counts: dict[str, torch.Tensor | float] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted sum of ``term_sum / count``; ``counts`` defaults to the local ones. Returns (loss, components)."""
        counts = counts or self.counts
        total, components = None, {}
        for name, (value, count_name) in self.terms.items():
            term = self.weights.get(name, 1.0) * value / max(float(counts[count_name]), 1.0)
            components[name] = float(term.detach())
            total = term if total is None else total + term
        return total, components


def log1mexp(log_p: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(log_p))`` computed stably for ``log_p <= 0`` (Maechler 2012), clamped like the paper."""
    log_p = log_p.clamp(max=-1e-30)  # p rounds to 1: 1 - p is treated as tiny (clamped below), as in the paper
    near_one = log_p > -math.log(2.0)
    # each branch sees only inputs where it is finite, so torch.where does not leak NaN gradients
    from_expm1 = torch.log(-torch.expm1(torch.where(near_one, log_p, -1.0)))
    from_log1p = torch.log1p(-torch.exp(torch.where(near_one, -1.0, log_p)))
    return torch.where(near_one, from_expm1, from_log1p).clamp(min=LOG_CLAMP)


def log1m_clamped(log_p: torch.Tensor) -> torch.Tensor:
    """The paper's ``log(max(1 - exp(log_p), 1e-20))`` exactly (parity; loses precision when p is close to 1)."""
    return torch.log(torch.clamp(1.0 - log_p.exp(), min=1e-20))


def label_smoothed_token_losses(log_probs: torch.Tensor, labels: torch.Tensor, epsilon: float = 0.1,
                                unlikelihood: bool = False, stable: bool = True) -> torch.Tensor:
    """Per-token label-smoothed NLL, or its unlikelihood twin, with zeros at padding.

    likelihood:    (1 - eps) * -log p(y_t)      + eps / V * sum_v -log p(v)
    unlikelihood:  (1 - eps) * -log(1 - p(y_t)) + eps / V * sum_v -log(1 - p(v))

    ``stable=True`` computes ``log(1 - p)`` with :func:`log1mexp`; ``False`` uses the paper's clamped formula. They
    agree except where float32 rounds ``1 - p`` (p within ~1e-7 of 1), where the paper's gradient vanishes.

    +---------------+------------+
    | input         | shape      |
    +===============+============+
    | ``log_probs`` | ``[R,T,V]``|
    | ``labels``    | ``[R,T]``  |
    | returns       | ``[R,T]``  |
    +---------------+------------+
    """
    mask = labels.ne(IGNORE_INDEX)  # [R, T]
    safe_labels = labels.masked_fill(~mask, 0).unsqueeze(-1)  # [R, T, 1]
    if unlikelihood:
        scores = log1mexp(log_probs) if stable else log1m_clamped(log_probs)  # [R, T, V]
    else:
        scores = log_probs
    target = -scores.gather(-1, safe_labels).squeeze(-1)  # [R, T]
    losses = (1.0 - epsilon) * target
    if epsilon > 0:
        losses = losses + epsilon / scores.size(-1) * -scores.sum(-1)  # [R, T]
    return losses * mask


def unlikelihood_loss(log_probs: torch.Tensor, labels: torch.Tensor, is_negative: torch.Tensor,
                      row_weight: torch.Tensor | None = None, epsilon: float = 0.1, stable: bool = True,
                      negative_token_mask: torch.Tensor | None = None) -> LossParts:
    """CONSEQ (the paper): label-smoothed NLL on S+ rows, token-level unlikelihood on S- rows.

    The total is ``(sum of positive token losses + sum of negative token losses) / (N+ + N-)``, with ``N+``/``N-``
    the non-pad target tokens of the positive/negative rows (``</s>`` included): one normalizer for both terms.

    +-----------------+-------------+--------------------------------------+
    | input           | shape       | notes                                |
    +=================+=============+======================================+
    | ``log_probs``   | ``[R,T,V]`` | float32                              |
    | ``labels``      | ``[R,T]``   | ``-100`` = padding                   |
    | ``is_negative`` | ``[R]``     | bool                                 |
    | ``row_weight``  | ``[R]``     | optional, 0 removes a row entirely   |
    | ``negative_     | ``[R,T]``   | optional, bool: which tokens of S-   |
    | token_mask``    |             | rows get the unlikelihood term (all  |
    |                 |             | by default, as in the paper)         |
    +-----------------+-------------+--------------------------------------+

    Returns ``LossParts`` with terms ``positive`` and ``negative`` both normalized by count ``tokens``.

    >>> lp = torch.log(torch.tensor([[[0.5, 0.5]], [[0.5, 0.5]]]))           # 2 rows, 1 token, V=2
    >>> parts = unlikelihood_loss(lp, torch.tensor([[0], [1]]), torch.tensor([False, True]), epsilon=0.0)
    >>> round(parts.combine()[0].item(), 4)                                  # (-log .5 + -log(1 - .5)) / 2
    0.6931
    """
    if row_weight is None:
        row_weight = torch.ones(labels.size(0), device=labels.device)
    negative = is_negative.bool()
    weight = row_weight.to(log_probs.dtype).unsqueeze(-1)  # [R, 1]
    labels_pos = labels.masked_fill(negative.unsqueeze(-1), IGNORE_INDEX)  # [R, T]
    labels_neg = labels.masked_fill(~negative.unsqueeze(-1), IGNORE_INDEX)  # [R, T]
    if negative_token_mask is not None:  # the normalizer still counts every token, so only the penalty changes
        labels_neg = labels_neg.masked_fill(~negative_token_mask.bool(), IGNORE_INDEX)
    positive_sum = (label_smoothed_token_losses(log_probs, labels_pos, epsilon) * weight).sum()
    negative_sum = (label_smoothed_token_losses(log_probs, labels_neg, epsilon, True, stable) * weight).sum()
    return LossParts(terms={"positive": (positive_sum, "tokens"), "negative": (negative_sum, "tokens")},
                     counts=unlikelihood_counts(labels, row_weight),
                     stats=side_logps(log_probs, labels, negative, row_weight))


def side_logps(log_probs: torch.Tensor, labels: torch.Tensor, is_negative: torch.Tensor, row_weight: torch.Tensor
               ) -> dict[str, float]:
    """``logps_positive`` / ``logps_negative``: mean summed log-prob of the active S+ / S- rows (monitoring only;
    a side with no active row is left out)."""
    logps, active, negative = sequence_logps(log_probs, labels), row_weight.bool(), is_negative.bool()  # [R] x 3
    return {f"logps_{name}": float(logps[rows & active].mean()) for name, rows in
            (("positive", ~negative), ("negative", negative)) if bool((rows & active).any())}


def sequence_logps(log_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed log-probability of each row's target (``[R,T,V]``, ``[R,T]`` -> ``[R]``, detached; pads skipped)."""
    mask = labels.ne(IGNORE_INDEX)
    picked = log_probs.detach().gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # [R, T]
    return (picked * mask).sum(-1)


def unlikelihood_counts(labels: torch.Tensor, row_weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """Normalizer of :func:`unlikelihood_loss`: non-pad target tokens of the rows with non-zero weight."""
    return {"tokens": (labels.ne(IGNORE_INDEX) & row_weight.bool().unsqueeze(-1)).sum()}


def sequence_log_likelihood(log_probs: torch.Tensor, labels: torch.Tensor, length_penalty: float = 1.0
                            ) -> torch.Tensor:
    """Length-normalized sequence score ``sum_t log p(y_t) / len ** length_penalty`` (BRIO's candidate score).

    ``log_probs [R,T,V]``, ``labels [R,T]`` -> ``[R]``; rows with no target token score 0.
    """
    mask = labels.ne(IGNORE_INDEX)  # [R, T]
    token_lp = log_probs.gather(-1, labels.masked_fill(~mask, 0).unsqueeze(-1)).squeeze(-1) * mask  # [R, T]
    lengths = mask.sum(-1).clamp(min=1).to(log_probs.dtype)  # [R]
    return token_lp.sum(-1) / lengths.pow(length_penalty)


def margin_rank_loss(candidate_scores: torch.Tensor, candidate_mask: torch.Tensor, margin: float = 0.001
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """BRIO's pairwise ranking loss for candidates sorted best-first by the metric.

    For every rank gap ``i >= 1`` and valid pair (better ``j``, worse ``j + i``) of a document:
    ``max(0, s_worse - s_better + margin * i)``; the pairs of each gap are averaged per document and the gaps summed
    (with all candidates valid this equals BRIO's batch-mean ``RankingLoss`` times B).

    +----------------------+-----------+-----------------------------------------------+
    | input                | shape     | notes                                         |
    +======================+===========+===============================================+
    | ``candidate_scores`` | ``[B,C]`` | model's sequence scores, metric-sorted best   |
    |                      |           | first                                         |
    | ``candidate_mask``   | ``[B,C]`` | bool, False = padding / unscored candidate    |
    +----------------------+-----------+-----------------------------------------------+

    Returns ``(sum over documents, number of documents with at least one valid pair)``.
    """
    num_candidates = candidate_scores.size(1)
    per_document = candidate_scores.new_zeros(candidate_scores.size(0))  # [B]
    for gap in range(1, num_candidates):
        better, worse = candidate_scores[:, :-gap], candidate_scores[:, gap:]  # [B, C - gap]
        valid = candidate_mask[:, :-gap] & candidate_mask[:, gap:]  # [B, C - gap]
        hinge = torch.relu(worse - better + margin * gap) * valid
        per_document = per_document + hinge.sum(-1) / valid.sum(-1).clamp(min=1)
    documents = (candidate_mask.sum(-1) >= 2).sum()
    return per_document.sum(), documents


def margin_rank_mle_loss(log_probs: torch.Tensor, labels: torch.Tensor, is_reference: torch.Tensor,
                         candidate_index: torch.Tensor, candidate_mask: torch.Tensor, margin: float = 0.001,
                         length_penalty: float = 2.0, rank_weight: float = 10.0, mle_weight: float = 0.1,
                         epsilon: float = 0.1) -> LossParts:
    """BRIO-style objective: ``rank_weight * ranking / documents + mle_weight * label-smoothed NLL / tokens``.

    Rows hold each document's reference (MLE term) and its candidates (ranking term); ``candidate_index`` places
    each row in the ``[B, C]`` score grid (``-1`` for reference rows).

    +---------------------+-------------+------------------------------------------+
    | input               | shape       | notes                                    |
    +=====================+=============+==========================================+
    | ``log_probs``       | ``[R,T,V]`` | float32                                  |
    | ``labels``          | ``[R,T]``   | ``-100`` = padding                       |
    | ``is_reference``    | ``[R]``     | bool, rows that get the MLE term         |
    | ``candidate_index`` | ``[R]``     | flat index ``b * C + c`` or ``-1``       |
    | ``candidate_mask``  | ``[B,C]``   | bool, metric-sorted best first           |
    +---------------------+-------------+------------------------------------------+
    """
    reference_labels = labels.masked_fill(~is_reference.bool().unsqueeze(-1), IGNORE_INDEX)  # [R, T]
    mle_sum = label_smoothed_token_losses(log_probs, reference_labels, epsilon).sum()

    row_scores = sequence_log_likelihood(log_probs, labels, length_penalty)  # [R]
    is_candidate = candidate_index.ge(0)
    grid = row_scores.new_zeros(candidate_mask.numel())  # [B * C]
    grid = grid.index_put((candidate_index[is_candidate],), row_scores[is_candidate])
    rank_sum, _ = margin_rank_loss(grid.view_as(candidate_mask), candidate_mask, margin)  # [B, C] grid
    return LossParts(terms={"rank": (rank_sum, "documents"), "mle": (mle_sum, "reference_tokens")},
                     counts=margin_rank_counts(labels, is_reference, candidate_mask),
                     weights={"rank": rank_weight, "mle": mle_weight})


def margin_rank_counts(labels: torch.Tensor, is_reference: torch.Tensor, candidate_mask: torch.Tensor
                       ) -> dict[str, torch.Tensor]:
    """Normalizers of :func:`margin_rank_mle_loss`: ranked documents and reference tokens."""
    return {"documents": (candidate_mask.sum(-1) >= 2).sum(),
            "reference_tokens": (labels.ne(IGNORE_INDEX) & is_reference.bool().unsqueeze(-1)).sum()}
