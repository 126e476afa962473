"""The QUALS engine: texts -> QAGen generation -> filtering -> teacher-forced scoring -> scores.

Nothing here imports from ``quals.corpus`` (the command line and corpus runs) or ``quals.recipe`` (QAGen
training); docs/architecture.md draws the rooms and the direction of their imports.
"""

from quals.engine.calibration import Calibration, balanced_accuracy
from quals.engine.candidates import parse_sequences, sequence_candidate
from quals.engine.config import QualsConfig
from quals.engine.diverse_beam_search import DiverseBeamOutput, KeepAllRows, diverse_beam_search
from quals.engine.explain import (
    SentenceScore,
    Span,
    answer_span,
    merge_spans,
    sentence_scores,
    split_sentences,
    summary_quals,
)
from quals.engine.filtering import Candidate, Rejection, filter_pairs, normalize
from quals.engine.formats import PRESETS, QAFormat
from quals.engine.inputs import input_error
from quals.engine.loading import load_qagen, resolve_format
from quals.engine.model_folders import save_qagen
from quals.engine.presets import DEFAULT_PRESET, UnknownPresetError, all_presets, get_preset
from quals.engine.qagen import CausalQAGen, QAGenModel, Seq2SeqQAGen, build_qagen
from quals.engine.results import CorpusSummary, QAPair, SummaryScore, prior_share, reference_ll
from quals.engine.scorer import Generation, QualsScorer
from quals.engine.weights import ModelLoadError


__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "Calibration",
    "Candidate",
    "CausalQAGen",
    "CorpusSummary",
    "DiverseBeamOutput",
    "Generation",
    "KeepAllRows",
    "ModelLoadError",
    "QAFormat",
    "QAGenModel",
    "QAPair",
    "QualsConfig",
    "QualsScorer",
    "Rejection",
    "SentenceScore",
    "Seq2SeqQAGen",
    "Span",
    "SummaryScore",
    "UnknownPresetError",
    "all_presets",
    "answer_span",
    "balanced_accuracy",
    "build_qagen",
    "diverse_beam_search",
    "filter_pairs",
    "get_preset",
    "input_error",
    "load_qagen",
    "merge_spans",
    "normalize",
    "parse_sequences",
    "prior_share",
    "reference_ll",
    "resolve_format",
    "save_qagen",
    "sentence_scores",
    "sequence_candidate",
    "split_sentences",
    "summary_quals",
]
