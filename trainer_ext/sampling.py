"""Sampling whose draws belong to the document, not to the batch: candidates do not depend on batch size.

``model.generate(do_sample=True)`` draws every row of a batch from one random stream, so the candidates of a
document change with the documents batched beside it (the generation batch size, the number of ranks). Here each
(document, candidate) row has its own generator, seeded from the run's seed, the round and the document id, and
sampling is the Gumbel-max trick: adding Gumbel noise to the (temperature-scaled, top-k / top-p filtered)
log-probabilities and taking the argmax draws exactly from that distribution. ``generate`` runs greedy on the
noised scores, one row per (document, candidate).

>>> seeds = [row_seed(0, 1, "doc-7", k) for k in range(2)]
>>> seeds[0] != seeds[1] and row_seed(0, 1, "doc-7", 0) == seeds[0]
True
"""

from __future__ import annotations

import zlib

import torch
from transformers import LogitsProcessor


def row_seed(seed: int, round_number: int, document_id: str, candidate: int) -> int:
    """A stable 63-bit seed for one candidate of one document in one round (``hash()`` varies between runs)."""
    key = f"{seed}/{round_number}/{document_id}/{candidate}".encode()
    return (zlib.crc32(key) << 31) ^ zlib.crc32(key[::-1]) ^ seed


def seedable(generation_kwargs: dict) -> bool:
    """Whether these ``generate`` kwargs are plain ancestral sampling (what the Gumbel-max path reproduces)."""
    return bool(generation_kwargs.get("do_sample")) and generation_kwargs.get("num_beams", 1) == 1


class GumbelSampler(LogitsProcessor):
    """Turns greedy search into sampling with one generator per batch row.

    Input ``scores``: ``[rows, vocab]`` next-token logits; output: filtered log-probabilities plus Gumbel noise, whose
    argmax is a sample from ``softmax(filtered logits / temperature)``.
    """

    def __init__(self, seeds: list[int], temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0):
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        logits = scores.float() / self.temperature  # [R, V]
        if self.top_k:
            kth = logits.topk(min(self.top_k, logits.shape[-1]), dim=-1).values[:, -1:]  # [R, 1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.top_p < 1.0:
            ordered, order = logits.sort(dim=-1, descending=True)
            before = ordered.softmax(-1).cumsum(-1) - ordered.softmax(-1)  # mass of the tokens ranked above
            logits = logits.masked_fill(torch.zeros_like(logits, dtype=torch.bool).scatter(
                -1, order, before > self.top_p), float("-inf"))
        uniform = torch.stack([torch.rand(logits.shape[-1], generator=g) for g in self.generators])  # [R, V]
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-20, 1.0 - 1e-7)))
        return logits.log_softmax(-1) + gumbel.to(logits.device)


def seeded_sampling_kwargs(generation_kwargs: dict, seeds: list[int]) -> dict:
    """``generate`` kwargs for the rows seeded by ``seeds``: greedy on Gumbel-noised scores, one sequence per row."""
    kwargs = {k: v for k, v in generation_kwargs.items()
              if k not in ("do_sample", "top_k", "top_p", "temperature", "num_return_sequences", "num_beams")}
    sampler = GumbelSampler(seeds, generation_kwargs.get("temperature", 1.0), generation_kwargs.get("top_k"),
                            generation_kwargs.get("top_p", 1.0))
    return {**kwargs, "do_sample": False, "num_beams": 1, "num_return_sequences": 1,
            "logits_processor": [*kwargs.get("logits_processor", []), sampler]}
