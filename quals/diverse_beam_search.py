"""Diverse beam search with G groups of one beam each (Vijayakumar et al. 2018, Hamming diversity).

transformers 5 no longer ships group beam search offline, so QUALS carries its own, specialised to the
case QUALS uses (one beam per group, as the paper's ``--beam 60 --diverse_beam_groups 60``):

At every step the G groups of an input choose their next token in order g = 0 .. G-1. Group g adds to its
log-probabilities a penalty of ``-lambda * c(v)``, where c(v) counts how many earlier groups picked token v
*at this step* (with ``penalty_candidates=2``, fairseq's count: each earlier group's top-2 candidates), and
takes the best token. The penalized value is the group's search score; the raw log-probability of the
chosen token is kept apart, so QUALS can use either. With lambda = 0 and G = 1 this is greedy decoding.

Vectorisation: only the top ``G * penalty_candidates + 1`` raw candidates of each row can win once at most
``(G - 1) * penalty_candidates`` tokens are penalized, so the sequential loop over groups runs on those
``[N, K]`` candidates, not on the vocabulary. All inputs of a batch decode together with the KV cache, and a
group that has finished leaves the batch (its rows are dropped from the cache), so later steps only pay for
the groups still writing. fairseq keeps decoding all beams until every hypothesis is finalized.

Differences from fairseq (documented in docs/parity.md): a finished group stops and no longer penalizes
others, and groups keep their slot (fairseq repacks surviving hypotheses into freed beam slots).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch


class StepDecoder(Protocol):
    """What the search needs from a model.

    ``start()`` returns ``[N*G, V]`` log-probs; ``keep(rows)`` drops every row not in ``rows`` (positions among
    the rows still decoding); ``step(tokens)`` feeds one token per remaining row and returns their log-probs.
    """

    def start(self) -> torch.Tensor: ...

    def keep(self, rows: torch.Tensor) -> None: ...

    def step(self, tokens: torch.Tensor) -> torch.Tensor: ...


@dataclass
class DiverseBeamOutput:
    """G sequences per input. Padded positions hold ``pad_token_id`` and log-prob 0."""

    sequences: torch.Tensor  # [N, G, T] generated ids, eos included
    token_logprobs: torch.Tensor  # [N, G, T] raw model log-probs of the chosen tokens
    penalized_logprobs: torch.Tensor  # [N, G, T] log-probs minus the diversity penalty (the search scores)
    lengths: torch.Tensor  # [N, G] number of tokens, eos included

    def search_scores(self) -> torch.Tensor:
        """Penalized cumulative log-score of each sequence ``[N, G]`` (fairseq's unnormalized score)."""
        return self.penalized_logprobs.sum(-1)


@torch.inference_mode()
def diverse_beam_search(
    decoder: StepDecoder,
    batch_size: int,
    num_groups: int = 60,
    diversity_penalty: float = 0.5,
    min_new_tokens: int = 8,
    max_new_tokens: int = 60,
    eos_token_id: int = 2,
    pad_token_id: int = 1,
    penalty_candidates: int = 1,
) -> DiverseBeamOutput:
    """Decode ``num_groups`` diverse sequences for each of ``batch_size`` inputs.

    Args:
        decoder: rows ordered ``[input 0 x G, input 1 x G, ...]``.
        min_new_tokens: eos is masked until this many tokens are generated.
        max_new_tokens: content tokens at most; then eos is forced (fairseq's ``max_len_b``), so a sequence
            holds at most ``max_new_tokens + 1`` tokens.
        penalty_candidates: how many candidate tokens of each earlier group are counted in the penalty
            (1: the chosen one, as in transformers; 2: fairseq, whose inner search returns 2 per beam).
    """
    if min_new_tokens > max_new_tokens:
        raise ValueError(f"min_new_tokens ({min_new_tokens}) > max_new_tokens ({max_new_tokens})")
    n, g = batch_size, num_groups
    logprobs = decoder.start()  # [N*G, V]
    vocab = logprobs.shape[-1]
    k = min(vocab, g * penalty_candidates + 1)
    device = logprobs.device

    decoding = torch.arange(n * g, device=device)  # flat ids of the rows still in the decoder
    finished = torch.zeros(n, g, dtype=torch.bool, device=device)  # [N, G]
    lengths = torch.zeros(n, g, dtype=torch.long, device=device)  # [N, G] tokens so far, eos included
    tokens, raw, penalized = [], [], []
    for step in range(max_new_tokens + 1):
        # logprobs: [R, V] for the R rows still decoding; only their top-K candidates enter the group loop
        if step < min_new_tokens:
            logprobs = logprobs.index_fill(-1, torch.tensor([eos_token_id], device=device), float("-inf"))
        elif step == max_new_tokens:
            only_eos = torch.full_like(logprobs, float("-inf"))
            only_eos[:, eos_token_id] = logprobs[:, eos_token_id]
            logprobs = only_eos
        top_values, top_ids = logprobs.topk(k, dim=-1)  # [R, K] raw candidates, best first
        cand_values = top_values.new_full((n * g, k), float("-inf"))  # finished rows: never chosen (inactive)
        cand_ids = top_ids.new_full((n * g, k), pad_token_id)
        cand_values[decoding], cand_ids[decoding] = top_values, top_ids
        cand_values, cand_ids = cand_values.view(n, g, k), cand_ids.view(n, g, k)  # [N, G, K]

        active = ~finished  # [N, G]
        weights = active[:, :, None].float().expand(n, g, penalty_candidates)  # [N, G, P] an inactive group counts 0
        counts = torch.zeros(n, vocab, device=device)  # [N, V] picks of earlier groups at this step
        choices, choice_scores = [], []
        for ids, values, weight in zip(cand_ids.unbind(1), cand_values.unbind(1), weights.unbind(1), strict=True):
            scores = torch.add(values, counts.gather(1, ids), alpha=-diversity_penalty)  # [N, K] penalized
            best_scores, best = scores.topk(penalty_candidates, dim=-1)  # [N, P]
            counts.scatter_add_(1, ids.gather(1, best), weight)
            choices.append(best[:, 0])
            choice_scores.append(best_scores[:, 0])
        choice = torch.stack(choices, dim=1)[:, :, None]  # [N, G, 1] position among the K candidates
        step_tokens = torch.where(active, cand_ids.gather(2, choice).squeeze(-1), pad_token_id)  # [N, G]
        step_raw = torch.where(active, cand_values.gather(2, choice).squeeze(-1), 0.0)  # [N, G]
        step_penalized = torch.where(active, torch.stack(choice_scores, dim=1), 0.0)  # [N, G]

        lengths += active.long()
        tokens.append(step_tokens)
        raw.append(step_raw)
        penalized.append(step_penalized)
        finished = finished | (step_tokens == eos_token_id)
        if bool(finished.all()):
            break
        still = ~finished.view(-1)[decoding]  # [R]
        if not bool(still.all()):
            decoder.keep(still.nonzero().squeeze(1))
            decoding = decoding[still]
        logprobs = decoder.step(step_tokens.view(-1)[decoding])  # [R', V]

    sequences = torch.stack(tokens, dim=-1)  # [N, G, T]
    return DiverseBeamOutput(sequences, torch.stack(raw, -1), torch.stack(penalized, -1), lengths)



class KeepAllRows:
    """Wraps a step decoder so it keeps decoding finished rows (fairseq's behaviour); results are identical.

    Used by the naive reference pipeline in ``benchmarks/speed.py`` and by the tests that check compaction.
    """

    def __init__(self, inner: StepDecoder, rows: int, pad_token_id: int):
        self.inner, self.rows, self.pad_token_id = inner, rows, pad_token_id
        self.active = torch.arange(rows)

    def start(self) -> torch.Tensor:
        return self.inner.start()

    def keep(self, rows: torch.Tensor) -> None:
        self.active = self.active[rows.cpu()]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        full = torch.full((self.rows,), self.pad_token_id, dtype=torch.long, device=tokens.device)
        full[self.active.to(tokens.device)] = tokens
        return self.inner.step(full)[self.active.to(tokens.device)]
