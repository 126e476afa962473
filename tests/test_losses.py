"""Losses and S+/S- selection against hand computations (tensor-only, fast)."""

import math

import pytest
import torch

from trainer_ext.losses import (
    label_smoothed_token_losses,
    log1m_clamped,
    log1mexp,
    margin_rank_loss,
    margin_rank_mle_loss,
    sequence_log_likelihood,
    unlikelihood_loss,
)
from trainer_ext.selection import select_contrastive_sets, worst_candidate


def _log_probs(rows):
    """[R, T, V] log-probs from nested lists of probabilities."""
    return torch.tensor(rows, dtype=torch.float32).log()


# ---------------------------------------------------------------- unlikelihood (the paper's loss)
def test_unlikelihood_matches_hand_computation_with_label_smoothing():
    probs = [[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]],  # positive row, 2 tokens
             [[0.5, 0.4, 0.1], [0.3, 0.3, 0.4]]]  # negative row, second token is padding
    labels = torch.tensor([[0, 2], [1, -100]])
    eps, vocab = 0.1, 3
    parts = unlikelihood_loss(_log_probs(probs), labels, torch.tensor([False, True]), epsilon=eps)
    loss, components = parts.combine()

    def nll(p, y):
        return (1 - eps) * -math.log(p[y]) + eps / vocab * sum(-math.log(v) for v in p)

    def ul(p, y):
        return (1 - eps) * -math.log(1 - p[y]) + eps / vocab * sum(-math.log(1 - v) for v in p)

    positive = nll(probs[0][0], 0) + nll(probs[0][1], 2)
    negative = ul(probs[1][0], 1)
    assert int(parts.counts["tokens"]) == 3  # N+ + N-: padding is not counted
    assert components["positive"] == pytest.approx(positive / 3, rel=1e-5)
    assert components["negative"] == pytest.approx(negative / 3, rel=1e-5)
    assert loss.item() == pytest.approx((positive + negative) / 3, rel=1e-5)


def test_unlikelihood_gradient_lowers_negative_and_raises_positive_token_probability():
    logits = torch.zeros(2, 1, 4, requires_grad=True)
    labels = torch.tensor([[1], [2]])
    loss, _ = unlikelihood_loss(logits.log_softmax(-1), labels, torch.tensor([False, True]), epsilon=0.0).combine()
    loss.backward()
    # gradient descent moves the logit by -grad: the positive token's logit rises, the negative token's falls
    assert logits.grad[0, 0, 1] < 0
    assert logits.grad[1, 0, 2] > 0
    stepped = (logits - 1.0 * logits.grad).softmax(-1)
    assert stepped[1, 0, 2] < 0.25 < stepped[0, 0, 1]


def test_zero_weight_rows_contribute_nothing_but_keep_the_graph():
    logits = torch.randn(2, 3, 5, requires_grad=True)
    labels = torch.tensor([[1, 2, 3], [4, 0, -100]])
    parts = unlikelihood_loss(logits.log_softmax(-1), labels, torch.tensor([False, True]),
                              row_weight=torch.tensor([0.0, 0.0]))
    loss, _ = parts.combine()
    loss.backward()
    assert loss.item() == 0.0 and int(parts.counts["tokens"]) == 0
    assert torch.count_nonzero(logits.grad) == 0


def test_stable_log1m_agrees_with_the_paper_formula_and_keeps_a_gradient_near_one():
    log_p = torch.tensor([-30.0, -5.0, -0.7, -0.1, -1e-3])
    assert torch.allclose(log1mexp(log_p), log1m_clamped(log_p), rtol=1e-4, atol=1e-6)
    near_one = torch.tensor([-1e-9], requires_grad=True)  # p = 1 - 1e-9: float32 rounds 1 - p to 0
    log1mexp(near_one).sum().backward()
    assert log1mexp(near_one.detach()).item() == pytest.approx(math.log(1e-9), rel=1e-3)
    assert log1m_clamped(near_one.detach()).item() == pytest.approx(math.log(1e-20))  # the paper's clamp
    assert near_one.grad.abs().item() > 1e8  # still pushes p down


def test_label_smoothing_zero_is_plain_nll():
    probs = [[[0.25, 0.75]]]
    losses = label_smoothed_token_losses(_log_probs(probs), torch.tensor([[1]]), epsilon=0.0)
    assert losses.item() == pytest.approx(-math.log(0.75))


# ---------------------------------------------------------------- margin ranking (BRIO)
def test_margin_rank_loss_hand_computation():
    scores = torch.tensor([[-1.0, -0.5, -2.0]])  # model scores of candidates sorted best-first by the metric
    mask = torch.ones(1, 3, dtype=torch.bool)
    total, documents = margin_rank_loss(scores, mask, margin=0.1)
    gap1 = (max(0, -0.5 - -1.0 + 0.1) + max(0, -2.0 - -0.5 + 0.1)) / 2  # pairs (0,1), (1,2)
    gap2 = max(0, -2.0 - -1.0 + 0.2)  # pair (0,2)
    assert total.item() == pytest.approx(gap1 + gap2)
    assert int(documents) == 1


def test_margin_rank_gradient_raises_the_better_candidate():
    scores = torch.tensor([[-1.0, -0.5]], requires_grad=True)
    total, _ = margin_rank_loss(scores, torch.ones(1, 2, dtype=torch.bool), margin=0.1)
    total.backward()
    assert scores.grad[0, 0] < 0 < scores.grad[0, 1]  # descent raises the metric-best, lowers the worse


def test_margin_rank_masks_missing_candidates():
    scores = torch.tensor([[-1.0, -0.5, 5.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    total, documents = margin_rank_loss(scores, mask, margin=0.0)
    assert total.item() == pytest.approx(0.5) and int(documents) == 1  # only doc 0's pair (0, 1) counts


def test_margin_rank_mle_loss_combines_rank_and_mle_terms():
    torch.manual_seed(0)
    log_probs = torch.randn(3, 2, 4).log_softmax(-1)
    labels = torch.tensor([[1, 2], [3, -100], [0, 1]])
    is_reference = torch.tensor([True, False, False])
    candidate_index = torch.tensor([-1, 0, 1])  # rows 1 and 2 are candidates ranked 0 and 1 of document 0
    mask = torch.tensor([[True, True]])
    parts = margin_rank_mle_loss(log_probs, labels, is_reference, candidate_index, mask, margin=0.01,
                                 length_penalty=1.0, rank_weight=2.0, mle_weight=0.5, epsilon=0.0)
    loss, components = parts.combine()
    scores = sequence_log_likelihood(log_probs, labels, 1.0)
    rank = torch.relu(scores[2] - scores[1] + 0.01)
    mle = -(log_probs[0, 0, 1] + log_probs[0, 1, 2]) / 2
    assert components["rank"] == pytest.approx(2.0 * rank.item(), rel=1e-5)
    assert components["mle"] == pytest.approx(0.5 * mle.item(), rel=1e-5)
    assert loss.item() == pytest.approx(2.0 * rank.item() + 0.5 * mle.item(), rel=1e-5)


def test_sequence_log_likelihood_length_penalty():
    log_probs = torch.full((1, 3, 2), math.log(0.5))
    score = sequence_log_likelihood(log_probs, torch.tensor([[0, 1, -100]]), length_penalty=2.0)
    assert score.item() == pytest.approx(2 * math.log(0.5) / 4)


# ---------------------------------------------------------------- S+ / S- selection
def test_selection_paper_rule_paired():
    candidates = {"a": [0.1, -2.0], "b": [0.5, 0.4], "c": [-1.0, 0.3], "d": [0.9, 0.8]}
    references = {"a": 0.9, "b": 0.1, "c": 0.2, "d": 0.95}
    sel = select_contrastive_sets(candidates, references, negative_fraction=0.5, positive_fraction=0.5)
    # bottom 2 by worst candidate: a (-2.0), c (-1.0); top 2 references: d, a -> intersection {a}
    assert sel.positives == ["a"] and sel.negatives == {"a": 1}


def test_selection_unpaired_keeps_both_lists():
    candidates = {"a": [0.1, -2.0], "b": [0.5, 0.4], "c": [-1.0, 0.3], "d": [0.9, 0.8]}
    references = {"a": 0.9, "b": 0.1, "c": 0.2, "d": 0.95}
    sel = select_contrastive_sets(candidates, references, 0.5, 0.5, mode="unpaired")
    assert sel.positives == ["a", "d"] and sel.negatives == {"a": 1, "c": 0}


def test_selection_ties_break_by_dataset_order():
    candidates = {"x": [0.0], "y": [0.0], "z": [0.0]}
    references = {"x": 1.0, "y": 1.0, "z": 1.0}
    sel = select_contrastive_sets(candidates, references, 0.67, 0.67)  # round(2.01) = 2 of 3
    assert sel.positives == ["x", "y"] and sel.negatives == {"x": 0, "y": 0}
    assert worst_candidate([0.3, -1.0, -1.0]) == (1, -1.0)  # first lowest on ties


def test_selection_never_uses_unscored_summaries():
    candidates = {"a": [None, float("nan")], "b": [None, 0.2], "c": [0.5, 0.6]}
    references = {"a": 1.0, "b": None, "c": 0.1}
    sel = select_contrastive_sets(candidates, references, 1.0, 1.0, mode="unpaired")
    assert sel.negatives == {"b": 1, "c": 0}  # a has no scored candidate; b's None candidate is skipped
    assert sel.positives == ["a", "c"]  # b's reference is unscored
    paired = select_contrastive_sets(candidates, references, 1.0, 1.0)
    assert paired.positives == ["c"] and paired.negatives == {"c": 0}


def test_selection_empty_sets():
    assert select_contrastive_sets({}, {}).positives == []
    sel = select_contrastive_sets({"a": [None]}, {"a": None}, 1.0, 1.0)
    assert sel.positives == [] and sel.negatives == {}
    tiny = select_contrastive_sets({"a": [0.1]}, {"a": 0.1}, 0.3, 0.3)  # round(0.3) = 0 documents
    assert tiny.document_ids == []


def test_selection_rejects_bad_arguments():
    with pytest.raises(ValueError, match="negative_fraction"):
        select_contrastive_sets({"a": [0.1]}, {"a": 0.1}, negative_fraction=0.0)
    with pytest.raises(ValueError, match="mode"):
        select_contrastive_sets({"a": [0.1]}, {"a": 0.1}, mode="both")


def test_negative_token_mask_limits_the_penalty_but_not_the_normalizer():
    probs = [[[0.5, 0.4, 0.1], [0.3, 0.1, 0.6]]]  # one negative row, 2 tokens
    labels, negative = torch.tensor([[1, 2]]), torch.tensor([True])
    everything = unlikelihood_loss(_log_probs(probs), labels, negative, epsilon=0.0)
    novel_only = unlikelihood_loss(_log_probs(probs), labels, negative, epsilon=0.0,
                                   negative_token_mask=torch.tensor([[False, True]]))
    assert int(novel_only.counts["tokens"]) == int(everything.counts["tokens"]) == 2
    assert novel_only.combine()[0].item() == pytest.approx(-math.log(1 - 0.6) / 2, rel=1e-5)
    assert everything.combine()[0].item() == pytest.approx((-math.log(1 - 0.4) - math.log(1 - 0.6)) / 2, rel=1e-5)


def test_pairwise_loss_is_the_logistic_loss_of_the_mean_log_prob_gap():
    from trainer_ext.objectives import PairwiseLogistic

    probs = [[[0.6, 0.4], [0.7, 0.3]], [[0.2, 0.8], [0.5, 0.5]]]  # row 0: S+ of document 0, row 1: its S-
    log_probs = torch.log(torch.tensor(probs))
    batch = {"input_ids": torch.zeros(1, 3, dtype=torch.long), "labels": torch.tensor([[0, 0], [0, 1]]),
             "row_document": torch.tensor([0, 0]), "row_weight": torch.tensor([1.0, 1.0]),
             "is_negative": torch.tensor([False, True])}
    objective = PairwiseLogistic(beta=2.0, gamma=0.5)
    loss, _ = objective.loss(log_probs, batch).combine()
    positive, negative = (math.log(0.6) + math.log(0.7)) / 2, (math.log(0.2) + math.log(0.5)) / 2
    assert loss.item() == pytest.approx(math.log1p(math.exp(-(2.0 * (positive - negative) - 0.5))), rel=1e-5)
    assert objective.counts(batch) == {"pairs": 1}
    batch["row_weight"] = torch.tensor([1.0, 0.0])  # an unpaired document contributes nothing
    assert objective.counts(batch) == {"pairs": 0} and objective.loss(log_probs, batch).combine()[0].item() == 0
