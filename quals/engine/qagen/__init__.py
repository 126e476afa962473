"""QAGen model kinds behind one interface: ``QAGenModel`` (base), ``Seq2SeqQAGen`` and ``CausalQAGen``.

>>> from quals.testing import RANDOM_FORMAT, tiny_gpt2, word_tokenizer
>>> tokenizer = word_tokenizer()
>>> qagen = build_qagen(tiny_gpt2(len(tokenizer)), tokenizer, RANDOM_FORMAT)
>>> type(qagen).__name__, qagen.kind
('CausalQAGen', 'causal')
"""

from __future__ import annotations

from quals.engine.formats import QAFormat
from quals.engine.qagen.base import Context, QAGenModel, Target
from quals.engine.qagen.causal import CausalQAGen
from quals.engine.qagen.seq2seq import Seq2SeqQAGen


__all__ = ["CausalQAGen", "Context", "QAGenModel", "Seq2SeqQAGen", "Target", "build_qagen"]


def build_qagen(model, tokenizer, fmt: QAFormat) -> QAGenModel:
    """The QAGen class for ``model``: ``Seq2SeqQAGen`` for an encoder-decoder, else ``CausalQAGen``."""
    kind = Seq2SeqQAGen if getattr(model.config, "is_encoder_decoder", False) else CausalQAGen
    return kind(model, tokenizer, fmt)
