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

Prefix sharing (exact, on by default): the decoder's next-token distribution depends only on the input and the
tokens written so far, so groups of one input that have written the same prefix share one decoder row. The
search keeps, per group, the row that holds its prefix; after each step it feeds one row per distinct
(prefix, token), copying a row's cache when its groups part ways. A peaked QAGen keeps many groups together
while they copy a span (a token worth more than ``lambda * count`` over the runner-up is re-chosen by later
groups), so the decoder runs far fewer rows than groups. Its results equal one row per group (tested).

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
    decoder_rows: int = 0  # rows fed to the decoder, summed over steps (the search's cost)

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
    share_prefixes: bool = True,
) -> DiverseBeamOutput:
    """Decode ``num_groups`` diverse sequences for each of ``batch_size`` inputs.

    Args:
        decoder: rows ordered ``[input 0 x G, input 1 x G, ...]``; ``start()`` may return one row per input
            (``[N, V]``: the G groups of an input share their first step) or one per group (``[N*G, V]``).
        min_new_tokens: eos is masked until this many tokens are generated.
        max_new_tokens: content tokens at most; then eos is forced (fairseq's ``max_len_b``), so a sequence
            holds at most ``max_new_tokens + 1`` tokens.
        penalty_candidates: how many candidate tokens of each earlier group are counted in the penalty
            (1: the chosen one, as in transformers; 2: fairseq, whose inner search returns 2 per beam).
        share_prefixes: groups of one input that have written the same tokens so far get the same next-token
            distribution, so the decoder runs once per distinct prefix, not once per group (exact; the
            released code runs every beam). Peaked models keep many groups on one prefix for several steps.
    """
    if min_new_tokens > max_new_tokens:
        raise ValueError(f"min_new_tokens ({min_new_tokens}) > max_new_tokens ({max_new_tokens})")
    n, g = batch_size, num_groups
    logprobs = decoder.start()  # [U, V]: U = N (shared first step) or N*G decoder rows
    vocab = logprobs.shape[-1]
    k = min(vocab, g * penalty_candidates + 1)
    device = logprobs.device
    eos = torch.tensor([eos_token_id], device=device)

    flat = torch.arange(n * g, device=device)  # [N*G] one id per (input, group)
    if logprobs.shape[0] == n:
        row_of = flat // g  # [N*G] the decoder row that holds each group's prefix
    else:
        row_of = (flat // g) * g if share_prefixes else flat  # all G rows of an input hold the same first step
    finished = torch.zeros(n * g, dtype=torch.bool, device=device)  # [N*G]
    lengths = torch.zeros(n * g, dtype=torch.long, device=device)  # [N*G] tokens so far, eos included
    decoder_rows = logprobs.shape[0]
    tokens, raw, penalized = [], [], []
    for step in range(max_new_tokens + 1):
        # logprobs: [U, V] for the U decoder rows; only their top-K candidates enter the group loop
        if step < min_new_tokens:
            logprobs = logprobs.index_fill(-1, eos, float("-inf"))
        elif step == max_new_tokens:
            only_eos = torch.full_like(logprobs, float("-inf"))
            only_eos[:, eos_token_id] = logprobs[:, eos_token_id]
            logprobs = only_eos
        top_values, top_ids = logprobs.topk(k, dim=-1)  # [U, K] raw candidates, best first
        done = finished[:, None]  # [N*G, 1] finished groups: never chosen (inactive)
        cand_values = top_values[row_of].masked_fill(done, float("-inf")).view(n, g, k)  # [N, G, K]
        cand_ids = top_ids[row_of].masked_fill(done, pad_token_id).view(n, g, k)  # [N, G, K]

        active = ~finished.view(n, g)  # [N, G]
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

        lengths += active.view(-1).long()
        tokens.append(step_tokens)
        raw.append(step_raw)
        penalized.append(step_penalized)
        finished = finished | (step_tokens.view(-1) == eos_token_id)
        if bool(finished.all()):
            break
        # next decoder rows: one per distinct (prefix row, token) of the live groups (per group without sharing)
        live = (~finished).nonzero().squeeze(1)  # [L] flat ids
        live_tokens = step_tokens.view(-1)[live]  # [L]
        keys = row_of[live] * vocab + live_tokens if share_prefixes else live
        unique_keys, inverse = torch.unique(keys, sorted=True, return_inverse=True)  # [U'], [L]
        parents = unique_keys // vocab if share_prefixes else row_of[unique_keys]  # [U'] rows to continue
        next_tokens = unique_keys % vocab if share_prefixes else step_tokens.view(-1)[unique_keys]  # [U']
        same_rows = torch.arange(logprobs.shape[0], device=device)  # [U]
        if parents.shape != same_rows.shape or not bool((parents == same_rows).all()):
            decoder.keep(parents)  # some rows ended or parted ways: gather (or copy) the rows that continue
        row_of = torch.zeros_like(row_of).index_put_((live,), inverse)
        logprobs = decoder.step(next_tokens)  # [U', V]
        decoder_rows += int(next_tokens.shape[0])

    sequences = torch.stack(tokens, dim=-1)  # [N, G, T]
    return DiverseBeamOutput(sequences, torch.stack(raw, -1), torch.stack(penalized, -1), lengths.view(n, g),
                             decoder_rows)


class KeepAllRows:
    """Wraps a step decoder so it keeps decoding finished rows (fairseq's behaviour); results are identical.

    One row per group from the start, never shared: search with ``share_prefixes=False``. Used by the naive
    reference pipeline in ``benchmarks/speed.py`` and by the tests that check compaction.
    """

    def __init__(self, inner: StepDecoder, rows: int, pad_token_id: int):
        self.inner, self.rows, self.pad_token_id = inner, rows, pad_token_id
        self.active = torch.arange(rows)
        self.decoder_rows = 0  # rows the inner decoder ran, summed over steps (the search counts only live ones)

    def start(self) -> torch.Tensor:
        logprobs = self.inner.start()  # [N or N*G, V]
        self.decoder_rows += logprobs.shape[0]
        if logprobs.shape[0] != self.rows:  # one row per input: give every group its own copy
            each = torch.arange(self.rows, device=logprobs.device) // (self.rows // logprobs.shape[0])
            self.inner.keep(each)
            logprobs = logprobs[each]
        return logprobs  # [N*G, V]

    def keep(self, rows: torch.Tensor) -> None:
        self.active = self.active[rows.cpu()]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        full = torch.full((self.rows,), self.pad_token_id, dtype=torch.long, device=tokens.device)
        full[self.active.to(tokens.device)] = tokens
        self.decoder_rows += self.rows
        return self.inner.step(full)[self.active.to(tokens.device)]
