"""The QAGen interface: what QUALS needs from a question-answer generation model, whatever its architecture.

A ``QAGenModel`` is a model, its fast tokenizer and a ``QAFormat``. Each model kind (``Seq2SeqQAGen``,
``CausalQAGen``) is its own class behind this small interface, the way peft puts each tuner in its own class:

- ``passage_windows(text)``: model inputs for a passage, overlapping windows when it is too long;
- ``encode(inputs)``: what can be computed once per input and reused by every target (an encoder's states, a
  causal LM's prompt cache), as ``Context`` objects;
- ``token_logprobs(contexts, targets)``: teacher-forced per-token log-probabilities of QA targets;
- ``stepper(contexts, repeats)``: incremental decoding with the KV cache, consumed by ``diverse_beam_search``.

Tokenization of targets, parsing of generated text, the stop tokens and the scoring of the final position are
shared here, so both kinds score the same way:

- *stop tokens*: every id that ends a generated sequence (eos, a chat model's end-of-turn token, newlines for
  one-line formats). The search merges their probability into ``eos_id`` (so a sequence always ends with it) and
  teacher forcing scores the final position as ``log sum_s p(s)``: both mean "the pair ends here".
- ``terminator="merged"`` adds the pair delimiter to that sum; ``"exclude"`` leaves the final position unscored.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from quals.engine.formats import QAFormat


@dataclass
class Context:
    """One model input (a passage window in the format's template) and what was computed once for it."""

    input_ids: torch.Tensor  # [L]
    state: Any = None  # kind-specific: encoder states [L, H] (seq2seq) or a prompt cache (causal LM)

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory held by this context (for caches bounded in bytes)."""
        state = self.state
        held = state.numel() * state.element_size() if isinstance(state, torch.Tensor) else getattr(state, "nbytes", 0)
        return self.input_ids.numel() * self.input_ids.element_size() + held


@dataclass
class Target:
    """Token ids of one QA pair, ending with ``eos_id``. The first ``num_unscored`` ids are fed but not counted."""

    ids: list[int]
    num_unscored: int = 0


class QAGenModel(ABC):
    """A QAGen model, its tokenizer and its format. Build one with ``build_qagen`` or ``load_qagen``."""

    kind: str = ""

    def __init__(self, model, tokenizer, fmt: QAFormat):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.format = fmt
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError("QUALS needs a fast (Rust) tokenizer: it uses character offsets to build source windows")
        tokenizer.model_max_length = int(1e12)  # windows handle long passages: no "longer than the maximum" warning
        self.max_input_tokens = fmt.max_source_tokens
        self.eos_id = self._end_id()
        self.stop_ids = sorted({self.eos_id, *self._extra_stop_ids()})  # every id that ends a generated sequence
        config = model.config
        self.pad_id = _first_id(tokenizer.pad_token_id, getattr(config, "pad_token_id", None), self.eos_id)
        separator = fmt.qa_separator.strip()
        self._separator_is_token = separator in tokenizer.get_vocab()
        self._special_strings = sorted((s for s in tokenizer.all_special_tokens if s != separator), key=len,
                                       reverse=True)
        # the ids whose probabilities the final position sums (stop tokens, plus the pair delimiter if merged)
        self.terminal_ids = self.stop_ids + ([self._pair_delimiter_id()] if fmt.terminator == "merged" else [])
        self._terminal_index = torch.tensor(self.terminal_ids)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def is_encoder_decoder(self) -> bool:
        return self.kind == "seq2seq"

    # ------------------------------------------------------------------ tokenization (kind-specific parts)
    @abstractmethod
    def _end_id(self) -> int:
        """The id that ends a target (the model's eos, or a chat model's end-of-turn token)."""

    def _extra_stop_ids(self) -> list[int]:
        """Ids that also end generation (merged into ``eos_id``)."""
        return []

    @abstractmethod
    def _wrap(self, passage: str, passage_ids: list[int] | None = None) -> list[int]:
        """The model input for a passage (``passage_ids``: its tokens when already cut from a longer text)."""

    @abstractmethod
    def target(self, question: str, answer: str) -> Target:
        """Render a pair in the model's format and tokenize it as a target (ends with ``eos_id``)."""

    # ------------------------------------------------------------------ tokenization (shared)
    def passage_windows(self, text: str, max_tokens: int | None = None, overlap: float = 0.25) -> list[list[int]]:
        """Model inputs for ``text``: one if it fits in ``max_tokens``, else overlapping windows of at most that.

        Windows are cut at token boundaries of the passage, and each is wrapped in the format's template (and
        examples), so every window looks like a normal model input.
        """
        max_tokens = max_tokens or self.max_input_tokens
        whole = self._wrap(text)
        if len(whole) <= max_tokens:
            return [whole]
        body = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = body["input_ids"], body["offset_mapping"]
        size = max(8, max_tokens - len(self._wrap("")) - self._window_margin)
        stride = max(1, int(size * (1 - overlap)))
        windows = []
        for start in range(0, len(offsets), stride):
            end = min(start + size, len(offsets))
            windows.append(self._wrap(text[offsets[start][0]: offsets[end - 1][1]], ids[start:end])[:max_tokens])
            if end == len(offsets):
                break
        return windows

    _window_margin = 0  # spare tokens per window (a kind that re-tokenizes window text needs a few)

    def training_input(self, passage: str, max_tokens: int) -> list[int]:
        """The model input ``quals train-qagen`` uses for a passage (cut to ``max_tokens``)."""
        return self.passage_windows(passage, max_tokens, 0.0)[0]

    def target_from_ids(self, ids: list[int]) -> Target:
        """Normalize a tokenized or generated target: leading specials per format, exactly one final ``eos_id``.

        Leading specials are markers such as ``<s>``; an unknown-word token (``<unk>``) is text and is always scored.
        """
        special = set(self.tokenizer.all_special_ids) - {self.eos_id, self.tokenizer.unk_token_id}
        leading = 0
        while leading < len(ids) and ids[leading] in special:
            leading += 1
        ends = [k for k in range(leading, len(ids)) if ids[k] in self.stop_ids]
        ids = list(ids[: ends[0]] if ends else ids) + [self.eos_id]
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

    def answer_start(self, target: Target) -> int:
        """Index, among the scored positions of ``target``, of its first answer token (after the separator)."""
        scored = target.ids[target.num_unscored:]
        separator = self.format.qa_separator.strip()
        for k in range(1, len(scored)):
            if separator in self.tokenizer.decode(scored[:k], skip_special_tokens=not self._separator_is_token):
                return k
        return 0

    def _pair_delimiter_id(self) -> int:
        delimiter = self.format.pair_delimiter
        ids = self.tokenizer(f" {delimiter}", add_special_tokens=False).input_ids
        if not ids or self.tokenizer.decode(ids[:1]).strip() != delimiter:
            raise ValueError(f"format {self.format.name!r}: the pair delimiter {delimiter!r} is not a single token "
                             "of this tokenizer; use terminator='exclude' or 'eos'")
        return ids[0]

    # ------------------------------------------------------------------ forward passes
    @abstractmethod
    def encode(self, inputs: list[list[int]]) -> list[Context]:
        """Compute once per input what every target and every beam of that input reuses."""

    @abstractmethod
    def _target_logits(self, contexts: list[Context], labels: torch.Tensor, share_context_cache: bool
                       ) -> Iterator[tuple[list[int], torch.Tensor]]:
        """Teacher-forced logits ``[k, T, V]`` predicting ``labels[rows]`` ``[k, T]``, yielded as (rows, logits)."""

    @abstractmethod
    def stepper(self, contexts: list[Context], repeats: int, share_context_cache: bool = True):
        """An incremental decoder over ``len(contexts) * repeats`` rows (row-major), for ``diverse_beam_search``.

        With ``share_context_cache`` the G rows of a context share its first step (``start()`` returns one row per
        context, ``[N, V]``); otherwise every row computes its own (``[N*G, V]``), as the released code does.
        """

    @torch.inference_mode()
    def token_logprobs(self, contexts: list[Context], targets: list[Target], share_context_cache: bool = True
                       ) -> list[torch.Tensor]:
        """Teacher-forced log p(target_t | target_<t, context) for each (context, target) row, float32 on CPU.

        Returns one tensor per row with the *scored* positions only: ``num_unscored`` leading ids dropped, the
        final position scored as ``log sum p(terminal_ids)`` (or dropped with ``terminator="exclude"``).
        ``share_context_cache=False`` recomputes each row's context (the released code's cost; same numbers).
        """
        lengths = [len(t.ids) for t in targets]
        labels = _pad([torch.tensor(t.ids) for t in targets], self.pad_id)[0].to(self.device)  # [B, T]
        out: list[torch.Tensor | None] = [None] * len(targets)
        for rows, logits in self._target_logits(contexts, labels, share_context_cache):
            logprobs = self._gather(logits.float(), labels[rows], [lengths[r] for r in rows])  # [k, T]
            for i, row in enumerate(rows):
                out[row] = logprobs[i, targets[row].num_unscored: lengths[row] - self._dropped_final()]
        return out

    def _gather(self, logits: torch.Tensor, labels: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """log p of each label ``[k, T]`` from logits ``[k, T, V]``; the final position sums the terminal ids."""
        log_norm = torch.logsumexp(logits, dim=-1)  # [k, T]
        logprobs = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - log_norm  # [k, T]
        rows = torch.arange(len(lengths), device=logits.device)
        last = torch.tensor(lengths, device=logits.device) - 1  # [k]
        terminal = logits[rows, last][:, self._terminal_index.to(logits.device)]  # [k, S]
        logprobs[rows, last] = torch.logsumexp(terminal, dim=-1) - log_norm[rows, last]
        return logprobs.cpu()

    def _dropped_final(self) -> int:
        return 1 if self.format.terminator == "exclude" else 0

    def merge_stops(self, logprobs: torch.Tensor) -> torch.Tensor:
        """Next-token log-probs ``[R, V]`` with the stop tokens' probability summed into ``eos_id`` (others -inf)."""
        if len(self.stop_ids) == 1:
            return logprobs
        stops = self._terminal_index[: len(self.stop_ids)].to(logprobs.device)
        merged = torch.logsumexp(logprobs[:, stops], dim=-1)  # [R]
        logprobs = logprobs.index_fill(-1, stops, float("-inf"))
        logprobs[:, self.eos_id] = merged
        return logprobs


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


def output_cache(out):
    """The cache of a model output (``cache`` in recent transformers, ``past_key_values`` before)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


def cache_kwarg(model) -> str:
    """The name under which ``model.forward`` takes a cache."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
