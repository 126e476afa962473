"""Seq2SeqQAGen: an encoder-decoder QAGen (BART, T5, PEGASUS, ``EncoderDecoderModel``), the paper's kind.

The passage is the encoder input (the format's ``input_template``); a QA pair is the decoder target, started
from ``decoder_start_token_id``. Each passage is encoded once (``encode``) and its states are reused by every
target and every beam; the cross-attention keys/values over it are computed once per context too.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from quals.engine.qagen.base import Context, QAGenModel, Target, _first_id, _pad, cache_kwarg, output_cache


class Seq2SeqQAGen(QAGenModel):
    """An encoder-decoder QAGen: ``Context.state`` holds the passage's encoder states ``[L, H]``."""

    kind = "seq2seq"
    _window_margin = 2  # each window's text is re-tokenized with the template: a margin for boundary effects

    def __init__(self, model, tokenizer, fmt):
        super().__init__(model, tokenizer, fmt)
        config, generation = model.config, getattr(model, "generation_config", None)
        self.decoder_start_id = _first_id(getattr(generation, "decoder_start_token_id", None),
                                          getattr(config, "decoder_start_token_id", None), tokenizer.bos_token_id,
                                          tokenizer.cls_token_id, self.pad_id)
        self._cache_kwarg = cache_kwarg(model)

    def _end_id(self) -> int:
        generation = getattr(self.model, "generation_config", None)
        eos = _first_id(getattr(generation, "eos_token_id", None), self.model.config.eos_token_id,
                        self.tokenizer.eos_token_id, self.tokenizer.sep_token_id)
        if eos is None:
            raise ValueError("Cannot find the end-of-sequence token id in the model or tokenizer config")
        return eos

    def _wrap(self, passage: str, passage_ids: list[int] | None = None) -> list[int]:
        return self.tokenizer(self.format.input_text(passage)).input_ids

    def training_input(self, passage: str, max_tokens: int) -> list[int]:
        """The passage in the template, truncated (as the bundled ``mini`` was trained)."""
        return self.tokenizer(self.format.input_text(passage), truncation=True, max_length=max_tokens).input_ids

    def target(self, question: str, answer: str) -> Target:
        ids = self.tokenizer(text_target=self.format.render(question, answer)).input_ids
        return self.target_from_ids(ids)

    # ------------------------------------------------------------------ forward passes
    @torch.inference_mode()
    def encode(self, inputs: list[list[int]]) -> list[Context]:
        contexts = [Context(torch.tensor(ids, dtype=torch.long)) for ids in inputs]
        if not contexts:
            return contexts
        input_ids, mask = _pad([c.input_ids for c in contexts], self.pad_id)  # [N, L]
        hidden = self.model.get_encoder()(input_ids=input_ids.to(self.device),
                                          attention_mask=mask.to(self.device)).last_hidden_state  # [N, L, H]
        for i, context in enumerate(contexts):
            context.state = hidden[i, : context.length]
        return contexts

    def _target_logits(self, contexts: list[Context], labels: torch.Tensor, share_context_cache: bool
                       ) -> Iterator[tuple[list[int], torch.Tensor]]:
        start = torch.full((labels.shape[0], 1), self.decoder_start_id, device=self.device)
        decoder_input_ids = torch.cat([start, labels[:, :-1]], dim=1)  # [B, T]: shift right
        if not share_context_cache:
            hidden, enc_mask = _pad_hidden([c.state for c in contexts])  # [B, L, H], [B, L]
            yield list(range(len(contexts))), self.model(
                encoder_outputs=(hidden.to(self.device),), attention_mask=enc_mask.to(self.device),
                decoder_input_ids=decoder_input_ids, use_cache=False).logits
            return
        rows_of: dict[int, list[int]] = {}  # rows that share one context (one Context object)
        for row, context in enumerate(contexts):
            rows_of.setdefault(id(context), []).append(row)
        for rows in rows_of.values():
            yield rows, self._shared_context_logits(contexts[rows[0]], decoder_input_ids[rows])  # [k, T, V]

    def _shared_context_logits(self, context: Context, decoder_input_ids: torch.Tensor) -> torch.Tensor:
        """Decoder logits ``[k, T, V]`` for k targets of one context, its cross-attention keys/values computed once.

        The first position (the decoder start token, the same for every row) runs once on the unpadded
        context; its cache, whose cross-attention part holds the context's projected keys and values, is
        broadcast (a stride-0 view, no copy) to the k rows, which then run positions 1..T-1 in one call.
        """
        rows, width = decoder_input_ids.shape
        hidden = context.state[None].to(self.device)  # [1, L, H]
        mask = torch.ones((1, context.length), dtype=torch.long, device=self.device)  # [1, L]: no padding
        first = self.model(encoder_outputs=(hidden,), attention_mask=mask, decoder_input_ids=decoder_input_ids[:1, :1],
                           use_cache=True)
        first_logits = first.logits.expand(rows, -1, -1)  # [k, 1, V]
        cache = output_cache(first)
        if width == 1:
            return first_logits
        if not _broadcast_cache(cache, rows):  # a model without an encoder-decoder cache: no sharing possible
            return self.model(encoder_outputs=(hidden.expand(rows, -1, -1),), attention_mask=mask.expand(rows, -1),
                              decoder_input_ids=decoder_input_ids, use_cache=False).logits
        rest = self.model(encoder_outputs=(hidden.expand(rows, -1, -1),), attention_mask=mask.expand(rows, -1),
                          decoder_input_ids=decoder_input_ids[:, 1:], use_cache=True,
                          **{self._cache_kwarg: cache}).logits  # [k, T-1, V]
        return torch.cat([first_logits, rest], dim=1)

    def stepper(self, contexts: list[Context], repeats: int, share_context_cache: bool = True) -> Seq2SeqStepper:
        return Seq2SeqStepper(self, contexts, repeats, share_context_cache)


class Seq2SeqStepper:
    """Incremental decoding with the KV cache, rows ``[context 0 x G, context 1 x G, ...]``; ``keep`` shrinks them.

    The first step is the same for the G rows of a context (same encoder states, same start token), so with
    ``share_context_cache`` it runs once per context and its cache (holding the cross-attention keys/values) is
    copied to rows only as the search's groups part ways.
    """

    def __init__(self, qagen: Seq2SeqQAGen, contexts: list[Context], repeats: int, share_context_cache: bool):
        self.qagen, self.model, self.device = qagen, qagen.model, qagen.device
        self.cache = None
        hidden, mask = _pad_hidden([c.state for c in contexts])  # [N, L, H], [N, L]
        self.encoder_hidden, self.attention_mask = hidden.to(self.device), mask.to(self.device)
        self.first_rows = torch.arange(len(contexts), device=self.device).repeat_interleave(repeats)  # N -> N*G
        self.share = share_context_cache

    @torch.inference_mode()
    def start(self) -> torch.Tensor:
        """Log-probs of the first generated token: ``[N, V]`` float32 with a shared first step, else ``[N*G, V]``."""
        if not self.share:
            self.keep(self.first_rows)  # every row runs its own first step
        first = torch.full((self.encoder_hidden.shape[0], 1), self.qagen.decoder_start_id, device=self.device)
        return self._decode(first)

    def keep(self, rows: torch.Tensor) -> None:
        """Keep (or repeat) ``rows``, positions among the current rows, in the cache and inputs; drop the others."""
        rows = rows.to(self.device)
        if self.cache is not None:
            self.cache.reorder_cache(rows)
        self.attention_mask = self.attention_mask[rows]
        self.encoder_hidden = self.encoder_hidden[rows]

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one chosen token per current row ``[R]`` and return the next log-probs ``[R, V]``."""
        return self._decode(tokens.to(self.device)[:, None])

    def _decode(self, decoder_input_ids: torch.Tensor) -> torch.Tensor:
        out = self.model(encoder_outputs=(self.encoder_hidden,), attention_mask=self.attention_mask,
                         decoder_input_ids=decoder_input_ids, use_cache=True,
                         **{self.qagen._cache_kwarg: self.cache})
        self.cache = output_cache(out)
        return self.qagen.merge_stops(F.log_softmax(out.logits[:, -1].float(), dim=-1))


def _broadcast_cache(cache, rows: int) -> bool:
    """View every layer of a one-row encoder-decoder cache as ``rows`` rows (stride 0); False if not possible."""
    parts = [getattr(cache, "self_attention_cache", None), getattr(cache, "cross_attention_cache", None)]
    layers = [layer for part in parts if part is not None for layer in getattr(part, "layers", [])]
    if None in parts or not layers or not all(hasattr(layer, "keys") for layer in layers):
        return False
    for layer in layers:  # keys/values: [1, heads, length, head dim] -> [rows, heads, length, head dim]
        layer.keys = layer.keys.expand(rows, -1, -1, -1)
        layer.values = layer.values.expand(rows, -1, -1, -1)
    return True


def _pad_hidden(states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack encoder states ``[L_i, H]`` into ``[B, Lmax, H]`` (zeros after each end) and a mask ``[B, Lmax]``."""
    width = max(int(s.shape[0]) for s in states)
    hidden = states[0].new_zeros((len(states), width, states[0].shape[-1]))
    mask = torch.zeros((len(states), width), dtype=torch.long, device=states[0].device)
    for i, state in enumerate(states):
        hidden[i, : state.shape[0]], mask[i, : state.shape[0]] = state, 1
    return hidden, mask
