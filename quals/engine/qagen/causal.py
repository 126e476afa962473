"""CausalQAGen: a decoder-only QAGen (any causal LM: SmolLM2, Qwen2.5, Llama, GPT-2, ...).

The passage sits in a prompt (``quals.engine.qagen.prompt``: chat template or plain text, optional few-shot examples);
the QA pair is the reply, scored by teacher forcing over the reply tokens only. What is computed once:

- the shared prompt prefix (system message, few-shot examples): its KV cache once per model;
- each passage's prompt (``encode``): its KV cache, extended from the prefix's, and the logits of its last
  position (which predict the first reply token), computed once, unpadded;
- teacher forcing: the k targets of one context run as k rows on a stride-0 view of that cache (``[k, T]``
  tokens, not ``k x (prompt + T)``); generation: the G beam groups of a passage start from one copy of its
  cache (left-padded across passages) and the search copies rows only as groups part ways.

No row ever computes a prompt with padding in it, and padding in the cache is masked, so scores do not depend
on batch size or padding (tested to 1e-5).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from quals.engine.qagen.base import Context, QAGenModel, Target, _first_id, _pad, cache_kwarg, output_cache
from quals.engine.qagen.prompt import Prompt, split_reply


@dataclass
class PromptCache:
    """The KV cache of one prompt (per layer ``[1, H, P, D]``) and the logits ``[V]`` at its last position."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    last_logits: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return int(self.keys[0].shape[-2]) if self.keys else 0

    @property
    def nbytes(self) -> int:
        tensors = [*self.keys, *self.values] + ([self.last_logits] if self.last_logits is not None else [])
        return sum(t.numel() * t.element_size() for t in tensors)


class CausalQAGen(QAGenModel):
    """A decoder-only QAGen: ``Context.state`` holds the prompt's ``PromptCache``."""

    kind = "causal"

    def __init__(self, model, tokenizer, fmt):
        self.prompt = Prompt.build(tokenizer, fmt)
        super().__init__(model, tokenizer, fmt)
        self._cache_kwarg = cache_kwarg(model)
        self._prefix: PromptCache | None = None  # KV cache of the shared prompt prefix, computed on first use

    def _end_id(self) -> int:
        generation = getattr(self.model, "generation_config", None)
        end = _first_id(self.prompt.end_id, self.tokenizer.eos_token_id, getattr(generation, "eos_token_id", None),
                        self.model.config.eos_token_id)
        if end is None:
            raise ValueError("Cannot find the token that ends a reply (eos) in the model or tokenizer config")
        return end

    def _extra_stop_ids(self) -> list[int]:
        generation = getattr(self.model, "generation_config", None)
        eos = getattr(generation, "eos_token_id", None)
        ids = [*(eos if isinstance(eos, (list, tuple)) else [eos]), self.tokenizer.eos_token_id]
        vocab = self.tokenizer.get_vocab()
        ids += [vocab[token] for token in self.format.stop_tokens if token in vocab]
        if self.format.stop_at_newline:
            ids += _newline_ids(self.tokenizer)
        return [int(i) for i in ids if i is not None]

    def _wrap(self, passage: str, passage_ids: list[int] | None = None) -> list[int]:
        if passage_ids is None:
            passage_ids = self.tokenizer(passage, add_special_tokens=False).input_ids if passage else []
        return self.prompt.wrap(passage_ids)

    def target(self, question: str, answer: str) -> Target:
        """The reply after the prompt's question prefix, and ``eos_id``."""
        _, ids = split_reply(self.tokenizer, self.format.question_prefix, self.format.render(question, answer))
        return Target([*ids, self.eos_id])

    def decode_pairs(self, ids: list[int]) -> tuple[str, list[tuple[str, str]]]:
        """Generated reply ids (after the prompt's question prefix) to text and pairs."""
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        text = " ".join((self.format.question_prefix + text).split())
        return text, self.format.parse(text)

    # ------------------------------------------------------------------ prompt caches
    @torch.inference_mode()
    def encode(self, inputs: list[list[int]]) -> list[Context]:
        """Each prompt's cache, extended from the shared prefix's when the prompt starts with it."""
        prefix = self._prefix_cache()
        contexts = []
        for ids in inputs:
            shared = prefix.length if prefix.length and tuple(ids[: prefix.length]) == self.prompt.prefix_ids else 0
            shared = min(shared, len(ids) - 1)  # at least one token runs, to give the last position's logits
            start = _cache(self.model, [k[..., :shared, :] for k in prefix.keys],
                           [v[..., :shared, :] for v in prefix.values]) if shared else None
            state = self._run_prompt(ids[shared:], shared, start, keep_logits=True)
            contexts.append(Context(torch.tensor(ids, dtype=torch.long), state))
        return contexts

    def _prefix_cache(self) -> PromptCache:
        if self._prefix is None:
            ids = list(self.prompt.prefix_ids)
            self._prefix = self._run_prompt(ids, 0, None, keep_logits=False) if ids else PromptCache([], [])
        return self._prefix

    def _run_prompt(self, ids: list[int], offset: int, cache, keep_logits: bool) -> PromptCache:
        """Run ``ids`` (one unpadded row) after ``offset`` cached positions; return the whole prompt's cache."""
        input_ids = torch.tensor([ids], device=self.device)  # [1, P']
        positions = torch.arange(offset, offset + len(ids), device=self.device)[None]  # [1, P']
        out = self.model(input_ids=input_ids, position_ids=positions, use_cache=True, logits_to_keep=1,
                         **{self._cache_kwarg: cache if cache is not None else DynamicCache(config=self.model.config)})
        layers = _layers(output_cache(out))
        return PromptCache([layer.keys for layer in layers], [layer.values for layer in layers],
                           out.logits[0, -1].float() if keep_logits else None)

    # ------------------------------------------------------------------ teacher forcing
    def _target_logits(self, contexts: list[Context], labels: torch.Tensor, share_context_cache: bool
                       ) -> Iterator[tuple[list[int], torch.Tensor]]:
        if not share_context_cache:  # the whole prompt and target on every row (right padded), as a naive port does
            yield list(range(len(contexts))), self._full_logits(contexts, labels)
            return
        rows_of: dict[int, list[int]] = {}  # rows that share one context (one Context object)
        for row, context in enumerate(contexts):
            rows_of.setdefault(id(context), []).append(row)
        for rows in rows_of.values():
            yield rows, self._shared_prompt_logits(contexts[rows[0]].state, labels[rows])  # [k, T, V]

    def _shared_prompt_logits(self, prompt: PromptCache, labels: torch.Tensor) -> torch.Tensor:
        """Logits ``[k, T, V]`` predicting k targets ``[k, T]`` after one prompt, its cache viewed as k rows."""
        rows, width = labels.shape
        first = prompt.last_logits.to(self.device)[None, None].expand(rows, 1, -1)  # [k, 1, V]
        if width == 1:
            return first
        cache = _cache(self.model, [k.expand(rows, -1, -1, -1) for k in prompt.keys],
                       [v.expand(rows, -1, -1, -1) for v in prompt.values])  # stride-0 views, no copy
        positions = torch.arange(prompt.length, prompt.length + width - 1, device=self.device)[None].expand(rows, -1)
        rest = self.model(input_ids=labels[:, :-1], position_ids=positions, use_cache=True,
                          **{self._cache_kwarg: cache}).logits  # [k, T-1, V]; right padding cannot reach back
        return torch.cat([first, rest.float()], dim=1)

    def _full_logits(self, contexts: list[Context], labels: torch.Tensor) -> torch.Tensor:
        rows = [torch.cat([c.input_ids, labels[i, :-1].cpu()]) for i, c in enumerate(contexts)]
        input_ids, mask = _pad(rows, self.pad_id)  # [B, P + T - 1], right padded: positions are unaffected
        logits = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                            use_cache=False).logits
        # the logit that predicts target token t sits at position (prompt length - 1 + t)
        starts = torch.tensor([c.length - 1 for c in contexts])
        index = (starts[:, None] + torch.arange(labels.shape[1])[None, :]).clamp(max=logits.shape[1] - 1)  # [B, T]
        return logits[torch.arange(len(contexts))[:, None], index.to(logits.device)]

    def stepper(self, contexts: list[Context], repeats: int, share_context_cache: bool = True) -> CausalStepper:
        return CausalStepper(self, contexts, repeats, share_context_cache)


class CausalStepper:
    """Incremental decoding of rows ``[context 0 x G, context 1 x G, ...]`` after their prompts.

    Shared (default): the prompts' caches, left-padded to one ``[N, H, Pmax, D]`` cache with the pads masked;
    ``start()`` returns their stored last-position log-probs ``[N, V]`` without running the model. Not shared:
    every row runs its whole (left-padded) prompt, ``[N*G, V]``. Positions always count real tokens only.
    """

    def __init__(self, qagen: CausalQAGen, contexts: list[Context], repeats: int, share_context_cache: bool):
        self.qagen, self.model, self.device = qagen, qagen.model, qagen.device
        self.share = share_context_cache
        self.contexts, self.repeats = contexts, repeats
        width = max(c.length for c in contexts)
        self.attention_mask = torch.zeros((len(contexts), width), dtype=torch.long, device=self.device)  # [N, Pmax]
        for i, context in enumerate(contexts):
            self.attention_mask[i, width - context.length:] = 1
        self.cache = None

    @torch.inference_mode()
    def start(self) -> torch.Tensor:
        if self.share:
            states, width = [c.state for c in self.contexts], self.attention_mask.shape[1]
            layers = range(len(states[0].keys))
            self.cache = _cache(self.model, [_left_pad([s.keys[i] for s in states], width) for i in layers],
                                [_left_pad([s.values[i] for s in states], width) for i in layers])
            logits = torch.stack([s.last_logits for s in states]).to(self.device)  # [N, V]
            return self.qagen.merge_stops(F.log_softmax(logits, dim=-1))
        rows = torch.arange(len(self.contexts), device=self.device).repeat_interleave(self.repeats)  # N -> N*G
        ids = _pad([c.input_ids for c in self.contexts], self.qagen.pad_id, left=True)[0].to(self.device)[rows]
        self.attention_mask = self.attention_mask[rows]
        positions = (self.attention_mask.cumsum(-1) - 1).clamp(min=0)  # [N*G, Pmax]
        return self._run(ids, positions)

    def keep(self, rows: torch.Tensor) -> None:
        """Keep (or repeat) ``rows``, positions among the current rows, in the cache and mask; drop the others."""
        rows = rows.to(self.device)
        if self.cache is not None:
            self.cache.reorder_cache(rows)
        self.attention_mask = self.attention_mask[rows]

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one chosen token per current row ``[R]`` and return the next log-probs ``[R, V]``."""
        tokens = tokens.to(self.device)[:, None]  # [R, 1]
        positions = self.attention_mask.sum(-1, keepdim=True)  # [R, 1]: real tokens so far = the next position
        self.attention_mask = torch.cat([self.attention_mask, torch.ones_like(tokens)], dim=1)
        return self._run(tokens, positions)

    def _run(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=self.attention_mask, position_ids=positions,
                         use_cache=True, logits_to_keep=1, **{self.qagen._cache_kwarg: self.cache})
        self.cache = output_cache(out)
        return self.qagen.merge_stops(F.log_softmax(out.logits[:, -1].float(), dim=-1))


def _cache(model, keys: list[torch.Tensor], values: list[torch.Tensor]) -> DynamicCache:
    """A ``DynamicCache`` holding the given per-layer tensors (no copy; the model's updates replace, not mutate)."""
    cache = DynamicCache(config=model.config)
    layers = _layers(cache, len(keys))
    for layer, k, v in zip(layers, keys, values, strict=True):
        layer.lazy_initialization(k, v)
        layer.keys, layer.values = k, v
    return cache


def _layers(cache, count: int | None = None) -> list:
    layers = list(getattr(cache, "layers", []))
    if count is not None and not layers:  # a cache without a config fills its layers lazily
        cache.layers = layers = [DynamicLayer() for _ in range(count)]
    if any(type(layer) is not DynamicLayer for layer in layers):
        raise NotImplementedError("QUALS shares prompt caches of full-attention layers only; this model uses "
                                  f"{sorted({type(layer).__name__ for layer in layers})}")
    return layers


def _left_pad(tensors: list[torch.Tensor], width: int) -> torch.Tensor:
    """Stack ``[1, H, P_i, D]`` caches into ``[N, H, width, D]``, each right-aligned (zeros on the left, masked)."""
    first = tensors[0]
    out = first.new_zeros((len(tensors), first.shape[1], width, first.shape[-1]))
    for i, t in enumerate(tensors):
        out[i, :, width - t.shape[-2]:] = t[0]
    return out


def _newline_ids(tokenizer) -> list[int]:
    """Ids of the (non-special) tokens whose text contains a line break."""
    special = set(tokenizer.all_special_ids)
    ids = [i for i in range(len(tokenizer)) if i not in special]
    texts = tokenizer.batch_decode([[i] for i in ids])
    return [i for i, text in zip(ids, texts, strict=True) if "\n" in text]
