"""QualsConfig: every QUALS setting in one dataclass, with help text (also the CLI's flags).

``QualsConfig()`` is the improved default; ``QualsConfig.paper_parity()`` reproduces the released code
(docs/parity.md lists each switch and what it changes).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Literal


if TYPE_CHECKING:
    from quals.engine.formats import QAFormat


@dataclass
class QualsConfig:
    """Settings of the QUALS metric.

    > Model
    preset, model, gguf_file, device, dtype, allow_pickle, qa_separator
    > Question-answer generation (diverse beam search)
    num_beam_groups, diversity_penalty, penalty_candidates, min_new_tokens, max_new_tokens
    > Filtering and scoring
    filter_mode, max_pairs, ll_summary, score_tokens, ll_reference, evidence_sentences, sentence_pairs,
    sentence_prior_weight, long_source, window_overlap, max_source_tokens, max_source_windows
    > Refusals and calibration
    min_script_share, max_unknown_share, calibration
    > Throughput
    max_batch_tokens, share_context_cache, share_prefixes, reuse_search_logprobs, show_progress
    """

    preset: str | None = field(default=None, metadata={"help": "QAGen preset (None: the model folder's own format, "
                                                               "else the default preset lmqg-t5-base)."})
    model: str | None = field(default=None, metadata={"help": "Hub id or local folder overriding the preset's model."})
    gguf_file: str | None = field(default=None, metadata={"help": "GGUF file inside the --model folder or repo "
                                                                  "(dequantized once, cached as safetensors)."})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1, mps; None picks cuda/mps/cpu."})
    dtype: str = field(default="float32", metadata={"help": "float32, bfloat16 or float16 weights; log-softmax "
                                                            "is always float32."})
    allow_pickle: bool = field(default=False, metadata={
        "help": "Also load PyTorch pickle weights (*.bin), which can run code when loaded (warns); default: "
                "safetensors or GGUF only."})
    qa_separator: str | None = field(default=None, metadata={"help": "Override the preset's question/answer "
                                                                     "separator."})
    num_beam_groups: int | None = field(default=None, metadata={"help": "QA pairs generated per summary (groups of "
                                                                        "one beam); None: preset (60 for paper)."})
    diversity_penalty: float | None = field(default=None, metadata={"help": "Hamming diversity penalty lambda."})
    penalty_candidates: int = field(default=1, metadata={"help": "Tokens of each earlier group counted in the "
                                                                 "penalty: 1 (transformers) or 2 (fairseq)."})
    min_new_tokens: int | None = field(default=None, metadata={"help": "eos forbidden before this many tokens."})
    max_new_tokens: int | None = field(default=None, metadata={"help": "Tokens per generated sequence before eos "
                                                                       "is forced."})
    filter_mode: Literal["strict", "reference"] = field(default="strict", metadata={
        "help": "strict (default; word-boundary answers, hard cap) or reference (the released code exactly)."})
    max_pairs: int = field(default=10, metadata={"help": "QA pairs kept per summary (a soft cap in reference mode)."})
    ll_summary: Literal["teacher_forced", "search"] = field(default="teacher_forced", metadata={
        "help": "LL_summary by teacher forcing (default) or from the penalized search score (parity, W1)."})
    score_tokens: Literal["pair", "answer"] = field(default="pair", metadata={
        "help": "Tokens whose mean log-likelihood is compared: the whole pair (question, separator, answer, end; the "
                "paper) or the answer and end only (the question is given: does the source support the answer?)."})
    ll_reference: Literal["summary", "no_passage"] = field(default="summary", metadata={
        "help": "What LL_source is compared with: LL given the summary (the paper) or LL given an empty passage "
                "(how much the source raises the pair's likelihood; one more cheap pass per pair)."})
    evidence_sentences: int = field(default=4, metadata={
        "help": "Score each pair given the K source sentences that share the most content words with it (question "
                "and answer), in source order (default 4): LL_source then reflects the pair's facts, not the "
                "source's length and other topics (quals.engine.evidence); 0 (or None): the whole source, as the "
                "paper."})
    sentence_pairs: bool = field(default=True, metadata={
        "help": "Also score each summary sentence as one pair (a fixed question, the sentence as its answer; its "
                "answer tokens compared), so every sentence is checked, not only the facts the QAGen asked about. "
                "QUALS is then the mean over sentences of (the mean of the sentence's QA pairs + its sentence pair) "
                "/ 2 (quals.engine.explain.summary_quals; default); --no-sentence-pairs: the paper's mean over QA "
                "pairs."})
    sentence_prior_weight: float | None = field(default=None, metadata={
        "help": "With sentence_pairs and ll_reference='summary': the share w of a sentence pair's reference that is "
                "its log-likelihood with no passage, reference = (1 - w) LL_summary + w LL_no_passage. A sentence "
                "copied from the summary is near-certain given the summary whatever it says, so w > 0 discounts how "
                "predictable its wording is without any passage (a rare name the source states is still unlikely); "
                "one more cheap pass per sentence. None: the preset's (0.25 for smollm2-qagen, 0 for the others); "
                "0: the summary alone."})
    long_source: Literal["windows", "truncate"] = field(default="windows", metadata={
        "help": "Sources over the input limit: best of overlapping windows (default) or truncation (parity)."})
    window_overlap: float = field(default=0.25, metadata={"help": "Overlap between consecutive source windows."})
    max_source_tokens: int | None = field(default=None, metadata={"help": "Input limit; None: the preset's."})
    max_source_windows: int | None = field(default=None, metadata={
        "help": "Windows scored per long source (the first ones; bounds time and memory on huge documents, "
                "which are then marked 'truncated'); None: all."})
    max_batch_tokens: int = field(default=32768, metadata={"help": "Token budget of one forward batch "
                                                                   "(rows x padded length)."})
    share_context_cache: bool = field(default=True, metadata={
        "help": "Compute what a context gives every row that reads it once (an encoder's cross-attention keys and "
                "values, a causal LM's prompt cache) and share it across beam groups and scored pairs (exact, same "
                "scores; False: every row computes its own, as the released code does)."})
    share_prefixes: bool = field(default=True, metadata={
        "help": "Beam groups that wrote the same tokens so far share one decoder row (exact, same scores; False: "
                "one row per group, as the released code)."})
    reuse_search_logprobs: bool = field(default=True, metadata={
        "help": "LL_summary of a pair that is exactly a generated sequence is read from the search's raw "
                "log-probabilities, the numbers a teacher-forced pass on the summary gives (exact, same scores; "
                "False: a second forward pass for every pair)."})
    min_script_share: float = field(default=0.5, metadata={
        "help": "Refuse (quals=None, an 'unreadable input' error) a summary or source whose letters are less than "
                "this share in the scripts the QAGen reads (QAFormat.scripts); 0 turns the check off."})
    max_unknown_share: float = field(default=0.5, metadata={
        "help": "Refuse a text whose tokens are more than this share unknown to the tokenizer; 1 turns it off."})
    calibration: str | None = field(default=None, metadata={
        "help": "A calibration JSON written by 'quals calibrate' (slope, intercept, threshold) replacing the "
                "preset's, for the probability and decision returned beside QUALS."})
    show_progress: bool = field(default=True, metadata={"help": "Show a progress bar."})

    def __post_init__(self) -> None:
        check_literal_fields(self)
        if self.penalty_candidates not in (1, 2):
            raise ValueError(f"penalty_candidates must be 1 or 2, got {self.penalty_candidates!r}")
        if self.max_pairs < 1 or self.max_batch_tokens < 1:
            raise ValueError("max_pairs and max_batch_tokens must be positive")
        for name in ("num_beam_groups", "max_new_tokens", "max_source_tokens"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive or None (the preset's), got {getattr(self, name)}")
        if self.max_source_windows is not None and self.max_source_windows < 1:
            raise ValueError(f"max_source_windows must be positive or None, got {self.max_source_windows}")
        if self.evidence_sentences is None:  # the spelling of "whole source" before 0 was
            self.evidence_sentences = 0
        if self.evidence_sentences < 0:
            raise ValueError(f"evidence_sentences must be 0 (the whole source) or positive, got "
                             f"{self.evidence_sentences}")
        if self.sentence_pairs and self.ll_summary != "teacher_forced":
            raise ValueError("sentence_pairs (on by default) needs ll_summary='teacher_forced' (a sentence pair has "
                             "no search score); set sentence_pairs=False (--no-sentence-pairs) to use 'search'")
        if self.sentence_prior_weight is not None and not 0 <= self.sentence_prior_weight <= 1:
            raise ValueError(f"sentence_prior_weight must be in [0, 1] or None, got {self.sentence_prior_weight}")
        if not (0 <= self.min_script_share <= 1 and 0 <= self.max_unknown_share <= 1):
            raise ValueError("min_script_share and max_unknown_share must be in [0, 1]")
        if not 0 <= self.window_overlap < 1:
            raise ValueError(f"window_overlap must be in [0, 1), got {self.window_overlap}")

    @classmethod
    def paper_parity(cls, **overrides) -> QualsConfig:
        """The released code's choices: reference filter, penalized LL_summary, truncation, fairseq penalty."""
        settings = {"filter_mode": "reference", "ll_summary": "search", "score_tokens": "pair",
                    "ll_reference": "summary", "evidence_sentences": 0, "sentence_pairs": False,
                    "long_source": "truncate",
                    "penalty_candidates": 2, "num_beam_groups": 60, "diversity_penalty": 0.5, "min_new_tokens": 8,
                    "max_new_tokens": 60, "max_pairs": 10}
        return cls(**{**settings, **overrides})

    def with_format(self, fmt: QAFormat) -> QualsConfig:
        """This config with every setting left to the preset (``None``: PRESET_SETTINGS) read from the QAGen's
        format: the values a scorer of this format runs with."""
        return dataclasses.replace(self, **{name: getattr(fmt, name) for name in PRESET_SETTINGS
                                            if getattr(self, name) is None})

    def scores_as_calibrated(self, fmt: QAFormat | None = None) -> bool:
        """True when QUALS values are on the scale a preset's stored calibration was fitted on: every setting that
        changes scores at its default (a named variant, another filter or number of pairs gets ``probability=None``
        unless ``calibration`` names a curve fitted with those settings). Given the preset's ``fmt``, a setting
        passed explicitly at the preset's own value counts as its default."""
        mine, defaults = self, QualsConfig()
        if fmt is not None:
            mine, defaults = self.with_format(fmt), defaults.with_format(fmt)
        return all(getattr(mine, name) == getattr(defaults, name) for name in CALIBRATED_SETTINGS)

    def fingerprint(self) -> dict:
        """The settings that change scores (used to refuse mixing results of different configurations)."""
        ignored = {"device", "show_progress", "allow_pickle", "calibration", "max_batch_tokens", "share_context_cache",
                   "share_prefixes", "reuse_search_logprobs"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ignored
                and not (f.name in ADDED_SETTINGS and getattr(self, f.name) == ADDED_SETTINGS[f.name])}


# Settings added after fingerprints were first stored, with the value that scores as before they existed: left out
# at that value, so the fingerprints of earlier runs and shards stay valid (and a run with them on never matches).
ADDED_SETTINGS = {"evidence_sentences": 0, "sentence_pairs": False, "sentence_prior_weight": None}
# Settings whose None means "the QAGen format's value" (QAFormat fields of the same names).
PRESET_SETTINGS = ("num_beam_groups", "diversity_penalty", "min_new_tokens", "max_new_tokens", "max_source_tokens",
                   "sentence_prior_weight")
CALIBRATED_SETTINGS = ("num_beam_groups", "diversity_penalty", "penalty_candidates", "min_new_tokens",
                       "max_new_tokens", "filter_mode", "max_pairs", "ll_summary", "score_tokens", "ll_reference",
                       "evidence_sentences", "sentence_pairs", "sentence_prior_weight", "long_source",
                       "window_overlap", "max_source_tokens", "max_source_windows")


def check_literal_fields(settings) -> None:
    """Raise ``ValueError`` naming the field and its choices when a ``Literal[...]`` field holds another value.

    >>> QualsConfig(filter_mode="loose")
    Traceback (most recent call last):
    ...
    ValueError: filter_mode must be one of 'strict', 'reference'; got 'loose'
    """
    for name, kind in typing.get_type_hints(type(settings)).items():
        choices = typing.get_args(kind) if typing.get_origin(kind) is Literal else None
        if choices and getattr(settings, name) not in choices:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {getattr(settings, name)!r}")
