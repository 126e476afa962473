"""QAGenModel: one QA-generation model with its tokenizer and format, and the three operations QUALS needs.

- ``passage_windows``: turn a passage into model inputs (one, or overlapping windows for long sources);
- ``encode`` + ``token_logprobs``: teacher-forced per-token log-probabilities of target sequences, with
  each context encoded once and its encoder states reused for every target (expanded, not re-encoded);
- ``stepper``: incremental decoding with the KV cache, consumed by ``diverse_beam_search``.

Both encoder-decoder models (BART, T5, PEGASUS, ``EncoderDecoderModel``) and decoder-only causal LMs
are supported. For causal LMs the "context" is the prompt itself, and it is re-run with every target.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from quals.formats import QAFormat


@dataclass
class Context:
    """An encoded passage: encoder states ``[L, H]`` (encoder-decoder) or the prompt ids (causal LM)."""

    input_ids: torch.Tensor  # [L]
    hidden: torch.Tensor | None = None  # [L, H]

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[0])


@dataclass
class Target:
    """Token ids of one QA pair. The first ``num_unscored`` ids are fed but not counted (e.g. BART ``<s>``)."""

    ids: list[int]
    num_unscored: int = 0


class QAGenModel:
    """A QAGen model, its tokenizer and its format. Build it with ``quals.loading.load_qagen``."""

    def __init__(self, model, tokenizer, fmt: QAFormat):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.format = fmt
        self.is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError("QUALS needs a fast (Rust) tokenizer: it uses character offsets to build source windows")
        config, generation = model.config, getattr(model, "generation_config", None)
        self.eos_id = _first_id(getattr(generation, "eos_token_id", None), config.eos_token_id,
                                tokenizer.eos_token_id, tokenizer.sep_token_id)
        self.pad_id = _first_id(tokenizer.pad_token_id, config.pad_token_id, self.eos_id)
        self.decoder_start_id = _first_id(getattr(generation, "decoder_start_token_id", None),
                                          getattr(config, "decoder_start_token_id", None), tokenizer.bos_token_id,
                                          tokenizer.cls_token_id, self.pad_id)
        if self.eos_id is None:
            raise ValueError("Cannot find the end-of-sequence token id in the model or tokenizer config")
        self.max_input_tokens = fmt.max_source_tokens
        self._cache_kwarg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self._separator_is_token = fmt.qa_separator.strip() in tokenizer.get_vocab()
        self._special_strings = sorted((s for s in tokenizer.all_special_tokens if s != fmt.qa_separator.strip()),
                                       key=len, reverse=True)
        self.terminal_alternative_id = self._pair_delimiter_id() if fmt.terminator == "merged" else None
        # Exact speed-up, on by default: the keys/values computed from a context (an encoder-decoder's
        # cross-attention over the passage, a causal LM's prompt) are computed once and shared by every row that
        # reads it: the G beam groups of a summary, the scored pairs of a source. False: every row computes its
        # own, as the released code does (tests and the speed benchmark's naive port compare the two).
        self.share_context_cache = True

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ tokenization
    def passage_windows(self, text: str, max_tokens: int | None = None, overlap: float = 0.25) -> list[list[int]]:
        """Model inputs for ``text``: one if it fits, else overlapping windows of at most ``max_tokens``.

        Windows are cut at token boundaries of the passage, and each window's text is re-tokenized with the
        format's template, so every window looks like a normal model input.
        """
        max_tokens = max_tokens or self.max_input_tokens
        whole = self._tokenize_input(text)
        if len(whole) <= max_tokens:
            return [whole]
        body = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = body["offset_mapping"]
        overhead = len(self._tokenize_input("")) + 2  # template + special tokens, + a margin for re-tokenizing
        size = max(8, max_tokens - overhead)
        stride = max(1, int(size * (1 - overlap)))
        windows = []
        for start in range(0, len(offsets), stride):
            end = min(start + size, len(offsets))
            chunk = text[offsets[start][0]: offsets[end - 1][1]]
            windows.append(self._tokenize_input(chunk)[:max_tokens])
            if end == len(offsets):
                break
        return windows

    def _tokenize_input(self, passage: str) -> list[int]:
        return self.tokenizer(self.format.input_text(passage)).input_ids

    def target(self, question: str, answer: str) -> Target:
        """Render a pair in the model's format and tokenize it as a target (ends with eos)."""
        ids = self.tokenizer(text_target=self.format.render(question, answer)).input_ids
        return self.target_from_ids(ids)

    def target_from_ids(self, ids: list[int]) -> Target:
        """Normalize a tokenized or generated target: leading specials per format, exactly one final eos."""
        special = set(self.tokenizer.all_special_ids) - {self.eos_id}
        leading = 0
        while leading < len(ids) and ids[leading] in special:
            leading += 1
        if self.eos_id in ids[leading:]:
            ids = ids[: ids.index(self.eos_id, leading)]
        ids = list(ids) + [self.eos_id]
        if self.format.leading_label_tokens == "drop":
            return Target(ids[leading:], 0)
        return Target(ids, leading)

    def decode_pairs(self, ids: list[int]) -> tuple[str, list[tuple[str, str]]]:
        """Decode generated ids to text and parse it into (question, answer) pairs."""
        text = self.tokenizer.decode(ids, skip_special_tokens=not self._separator_is_token)
        for special in self._special_strings:
            text = text.replace(special, " ")
        text = " ".join(text.split())
        return text, self.format.parse(text)

    def _pair_delimiter_id(self) -> int:
        delimiter = self.format.pair_delimiter
        ids = self.tokenizer(f" {delimiter}", add_special_tokens=False).input_ids
        if not ids or self.tokenizer.decode(ids[:1]).strip() != delimiter:
            raise ValueError(f"format {self.format.name!r}: the pair delimiter {delimiter!r} is not a single token "
                             "of this tokenizer; use terminator='exclude' or 'eos'")
        return ids[0]

    # ------------------------------------------------------------------ forward passes
    @torch.inference_mode()
    def encode(self, inputs: list[list[int]]) -> list[Context]:
        """Encode passages once (encoder-decoder) so their states can be reused for many targets."""
        contexts = []
        for ids in inputs:
            contexts.append(Context(torch.tensor(ids, dtype=torch.long)))
        if not self.is_encoder_decoder or not contexts:
            return contexts
        input_ids, mask = _pad([c.input_ids for c in contexts], self.pad_id)  # [N, L]
        hidden = self.model.get_encoder()(input_ids=input_ids.to(self.device),
                                          attention_mask=mask.to(self.device)).last_hidden_state  # [N, L, H]
        for i, context in enumerate(contexts):
            context.hidden = hidden[i, : context.length]
        return contexts

    @torch.inference_mode()
    def token_logprobs(self, contexts: list[Context], targets: list[Target]) -> list[torch.Tensor]:
        """Teacher-forced log p(target_t | target_<t, context) for each (context, target) row, float32 on CPU.

        Returns one tensor per row with the *scored* positions only (``num_unscored`` leading ids dropped).
        With the ``merged`` terminator the last position holds log(p(eos) + p(pair delimiter)).
        """
        lengths = [len(t.ids) for t in targets]
        labels, _label_mask = _pad([torch.tensor(t.ids) for t in targets], self.pad_id)  # [B, T]
        labels = labels.to(self.device)
        if self.is_encoder_decoder:
            logits = self._seq2seq_logits(contexts, labels)  # [B, T, V]
        else:
            logits = self._causal_logits(contexts, labels)  # [B, T, V]
        logits = logits.float()
        log_norm = torch.logsumexp(logits, dim=-1)  # [B, T]
        logprobs = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - log_norm  # [B, T]
        if self.terminal_alternative_id is not None:
            last = torch.tensor(lengths, device=logits.device) - 1  # [B]
            rows = torch.arange(len(targets), device=logits.device)
            merged = torch.logaddexp(logits[rows, last, self.eos_id], logits[rows, last, self.terminal_alternative_id])
            logprobs[rows, last] = merged - log_norm[rows, last]
        logprobs = logprobs.cpu()
        return [logprobs[i, t.num_unscored: lengths[i]] for i, t in enumerate(targets)]

    def _seq2seq_logits(self, contexts: list[Context], labels: torch.Tensor) -> torch.Tensor:
        start = torch.full((labels.shape[0], 1), self.decoder_start_id, device=self.device)
        decoder_input_ids = torch.cat([start, labels[:, :-1]], dim=1)  # [B, T]: shift right
        if not self.share_context_cache:
            hidden, enc_mask = _pad_hidden([c.hidden for c in contexts])  # [B, L, H], [B, L]
            return self.model(encoder_outputs=(hidden.to(self.device),), attention_mask=enc_mask.to(self.device),
                              decoder_input_ids=decoder_input_ids, use_cache=False).logits
        rows_of: dict[int, list[int]] = {}  # rows that share one context (one Context object)
        for row, context in enumerate(contexts):
            rows_of.setdefault(id(context), []).append(row)
        logits = None
        for rows in rows_of.values():
            part = self._shared_context_logits(contexts[rows[0]], decoder_input_ids[rows])  # [k, T, V]
            if logits is None:
                logits = part.new_empty((len(contexts), *part.shape[1:]))  # [B, T, V]
            logits[rows] = part
        return logits

    def _shared_context_logits(self, context: Context, decoder_input_ids: torch.Tensor) -> torch.Tensor:
        """Decoder logits ``[k, T, V]`` for k targets of one context, its cross-attention keys/values computed once.

        The first position (the decoder start token, the same for every row) runs once on the unpadded
        context; its cache, whose cross-attention part holds the context's projected keys and values, is
        broadcast (a stride-0 view, no copy) to the k rows, which then run positions 1..T-1 in one call.
        """
        rows, width = decoder_input_ids.shape
        hidden = context.hidden[None].to(self.device)  # [1, L, H]
        mask = torch.ones((1, context.length), dtype=torch.long, device=self.device)  # [1, L]: no padding
        first = self.model(encoder_outputs=(hidden,), attention_mask=mask, decoder_input_ids=decoder_input_ids[:1, :1],
                           use_cache=True)
        first_logits = first.logits.expand(rows, -1, -1)  # [k, 1, V]
        cache = _output_cache(first)
        if width == 1:
            return first_logits
        if not _broadcast_cache(cache, rows):  # a model without an encoder-decoder cache: no sharing possible
            return self.model(encoder_outputs=(hidden.expand(rows, -1, -1),), attention_mask=mask.expand(rows, -1),
                              decoder_input_ids=decoder_input_ids, use_cache=False).logits
        rest = self.model(encoder_outputs=(hidden.expand(rows, -1, -1),), attention_mask=mask.expand(rows, -1),
                          decoder_input_ids=decoder_input_ids[:, 1:], use_cache=True,
                          **{self._cache_kwarg: cache}).logits  # [k, T-1, V]
        return torch.cat([first_logits, rest], dim=1)

    def _causal_logits(self, contexts: list[Context], labels: torch.Tensor) -> torch.Tensor:
        rows = [torch.cat([c.input_ids, labels[i].cpu()]) for i, c in enumerate(contexts)]
        input_ids, mask = _pad(rows, self.pad_id)  # [B, P + T], right padded: positions are unaffected
        logits = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                            use_cache=False).logits
        # the logit that predicts target token t sits at position (prompt length - 1 + t)
        starts = torch.tensor([c.length - 1 for c in contexts])
        index = (starts[:, None] + torch.arange(labels.shape[1])[None, :]).clamp(max=logits.shape[1] - 1)  # [B, T]
        return logits[torch.arange(len(contexts))[:, None], index.to(logits.device)]

    def stepper(self, contexts: list[Context], num_rows_per_context: int) -> Stepper:
        """An incremental decoder over ``len(contexts) * num_rows_per_context`` rows (row-major)."""
        return Stepper(self, contexts, num_rows_per_context)


class Stepper:
    """Incremental decoding with the KV cache, rows ``[context 0 x G, context 1 x G, ...]``; ``keep`` shrinks them.

    The first step is the same for the G rows of a context (same input, same start token), so with
    ``share_context_cache`` it runs once per context and its cache (an encoder-decoder's cross-attention
    keys/values, a causal LM's prompt) is copied to rows only as the search's groups part ways.
    """

    def __init__(self, qagen: QAGenModel, contexts: list[Context], repeats: int):
        self.qagen, self.model, self.device = qagen, qagen.model, qagen.device
        self.cache = None
        self.first_rows = torch.arange(len(contexts), device=self.device).repeat_interleave(repeats)  # N -> N*G
        if qagen.is_encoder_decoder:
            hidden, mask = _pad_hidden([c.hidden for c in contexts])  # [N, L, H], [N, L]
            self.encoder_hidden, self.attention_mask = hidden.to(self.device), mask.to(self.device)
        else:
            ids, mask = _pad([c.input_ids for c in contexts], qagen.pad_id, left=True)  # [N, P], left padded
            self.prompt_ids, self.attention_mask = ids.to(self.device), mask.to(self.device)
        self.num_rows = len(contexts) * repeats

    @torch.inference_mode()
    def start(self) -> torch.Tensor:
        """Log-probs of the first generated token: ``[N, V]`` float32, one row per context, with
        ``share_context_cache`` (the search then copies rows as its groups part ways), else ``[N*G, V]``."""
        shared = self.qagen.share_context_cache
        if not shared:
            self.keep(self.first_rows)  # every row runs its own first step
        if self.qagen.is_encoder_decoder:
            first = torch.full((self.encoder_hidden.shape[0], 1), self.qagen.decoder_start_id, device=self.device)
            logprobs = self._seq2seq(first)  # [N or N*G, V]
        else:
            positions = (self.attention_mask.cumsum(-1) - 1).clamp(min=0)  # [N or N*G, P]: left padding aware
            logprobs = self._causal(self.prompt_ids, positions)  # [N or N*G, V]
            self.prompt_ids = None
        return logprobs

    def keep(self, rows: torch.Tensor) -> None:
        """Keep (or repeat) ``rows``, positions among the current rows, in the cache and inputs; drop the others."""
        rows = rows.to(self.device)
        if self.cache is not None:
            self.cache.reorder_cache(rows)
        self.attention_mask = self.attention_mask[rows]
        if self.qagen.is_encoder_decoder:
            self.encoder_hidden = self.encoder_hidden[rows]
        elif self.prompt_ids is not None:
            self.prompt_ids = self.prompt_ids[rows]

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one chosen token per current row ``[R]`` and return the next log-probs ``[R, V]``."""
        tokens = tokens.to(self.device)[:, None]  # [R, 1]
        if self.qagen.is_encoder_decoder:
            return self._seq2seq(tokens)
        positions = self.attention_mask.sum(-1, keepdim=True)  # [R, 1]: next position of each row
        self.attention_mask = torch.cat([self.attention_mask, torch.ones_like(tokens)], dim=1)
        return self._causal(tokens, positions)

    def _seq2seq(self, decoder_input_ids: torch.Tensor) -> torch.Tensor:
        out = self.model(encoder_outputs=(self.encoder_hidden,), attention_mask=self.attention_mask,
                         decoder_input_ids=decoder_input_ids, use_cache=True,
                         **{self.qagen._cache_kwarg: self.cache})
        self.cache = _output_cache(out)
        return F.log_softmax(out.logits[:, -1].float(), dim=-1)

    def _causal(self, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=self.attention_mask, position_ids=position_ids,
                         use_cache=True, **{self.qagen._cache_kwarg: self.cache})
        self.cache = _output_cache(out)
        return F.log_softmax(out.logits[:, -1].float(), dim=-1)


def _output_cache(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


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


def _first_id(*candidates) -> int | None:
    for candidate in candidates:
        if isinstance(candidate, (list, tuple)):
            candidate = candidate[0] if candidate else None
        if candidate is not None:
            return int(candidate)
    return None


def _pad(rows: list[torch.Tensor], pad_id: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack 1-D id tensors into ``[B, Lmax]`` ids and a 0/1 attention mask."""
    width = max(int(r.shape[0]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span], mask[i, span] = row, 1
    return ids, mask


def _pad_hidden(states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack encoder states ``[L_i, H]`` into ``[B, Lmax, H]`` (zeros after each end) and a mask ``[B, Lmax]``."""
    width = max(int(s.shape[0]) for s in states)
    hidden = states[0].new_zeros((len(states), width, states[0].shape[-1]))
    mask = torch.zeros((len(states), width), dtype=torch.long, device=states[0].device)
    for i, state in enumerate(states):
        hidden[i, : state.shape[0]], mask[i, : state.shape[0]] = state, 1
    return hidden, mask
