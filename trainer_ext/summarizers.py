"""The two kinds of summarizer ``ContrastiveTrainer`` trains: encoder-decoder (BART, T5, PEGASUS) and decoder-only
(a causal LM prompted with the document). Each kind is one class behind a small interface, so the trainer, the
collator and candidate generation never branch on the model type.

Dataset rows look the same for both: ``input_ids`` is the model's input (for a causal LM: the prompt, e.g. the chat
template with the document and an instruction, ending where the reply starts) and ``labels`` the summary's token ids
(for a causal LM: the reply, ending with the end-of-turn or eos token). The loss covers the summary tokens only.

+---------------------+-----------------------------------------+-------------------------------------------+
|                     | :class:`Seq2SeqSummarizer`              | :class:`CausalSummarizer`                 |
+=====================+=========================================+===========================================+
| sources padded      | on the tokenizer's side                 | on the left (the reply follows the prompt)|
| a row's logits      | encoder once per document, decoder per  | ``[prompt ; summary]`` per row, logits of |
|                     | row on the shared states                | the summary positions                     |
| generated sequence  | decoder start token, then the summary   | the prompt, then the summary              |
+---------------------+-----------------------------------------+-------------------------------------------+
"""

from __future__ import annotations

import torch
from transformers.modeling_outputs import BaseModelOutput


IGNORE_INDEX = -100


class SummarizerKind:
    """What differs between model kinds: source padding, row logits, and where a generated summary starts."""

    padding_side: str | None = None  # None: the tokenizer's own

    def row_logits(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor, row_document: torch.Tensor,
                   labels: torch.Tensor) -> torch.Tensor:
        """Logits ``[R,T,V]`` of each row's summary tokens (``labels [R,T]``, ``-100`` padding), the row's source
        being ``input_ids[row_document]`` (``[D,S]``)."""
        raise NotImplementedError

    def summary_start(self, input_width: int) -> int:
        """Index of a generated sequence's first summary token, for a batch of inputs ``input_width`` wide."""
        raise NotImplementedError


class Seq2SeqSummarizer(SummarizerKind):
    """Encoder-decoder: each source is encoded once and every row of its document decodes on the same states."""

    def row_logits(self, model, input_ids, attention_mask, row_document, labels):
        decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels=labels)  # [R, T]
        encoded = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        hidden = encoded.last_hidden_state.index_select(0, row_document)  # [D, S, H] -> [R, S, H]
        mask = attention_mask.index_select(0, row_document)  # [R, S]
        outputs = model(encoder_outputs=BaseModelOutput(last_hidden_state=hidden), attention_mask=mask,
                        decoder_input_ids=decoder_input_ids, use_cache=False)
        return outputs.logits  # [R, T, V]

    def summary_start(self, input_width: int) -> int:
        return 1  # after the decoder start token


class CausalSummarizer(SummarizerKind):
    """Decoder-only: each row is its document's left-padded prompt followed by the summary.

    Labels may be padded on either side (an evaluation collator pads them on the tokenizer's side): each row's
    summary tokens are packed right after the prompt, and the logits are returned in the labels' own layout.
    """

    padding_side = "left"

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def row_logits(self, model, input_ids, attention_mask, row_document, labels):
        prompt_width = input_ids.size(1)
        order = labels.eq(IGNORE_INDEX).long().argsort(dim=1, stable=True)  # [R, T]: summary tokens first
        packed = labels.gather(1, order)  # [R, T]
        summary_mask = packed.ne(IGNORE_INDEX)
        ids = torch.cat([input_ids.index_select(0, row_document), packed.masked_fill(~summary_mask,
                                                                                      self.pad_token_id)], 1)
        mask = torch.cat([attention_mask.index_select(0, row_document), summary_mask.long()], 1)  # [R, S + T]
        positions = (mask.cumsum(1) - 1).clamp(min=0)  # left padding does not shift the positions
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False).logits
        packed_logits = logits[:, prompt_width - 1: prompt_width - 1 + labels.size(1)]  # [R, T, V]
        unpack = order.argsort(dim=1).unsqueeze(-1).expand_as(packed_logits)  # back to the labels' layout
        return packed_logits.gather(1, unpack)

    def summary_start(self, input_width: int) -> int:
        return input_width  # after the prompt


def summarizer_kind(model, tokenizer) -> SummarizerKind:
    """The kind of ``model`` (a peft wrapper is looked through)."""
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        return Seq2SeqSummarizer()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("A decoder-only summarizer needs a tokenizer with a pad or eos token")
    return CausalSummarizer(pad)
