"""QUALS: QA-based factual-consistency scoring of summaries (Nan et al., ACL 2021).

>>> from quals import QualsScorer
>>> scorer = QualsScorer(preset="lmqg-t5-small", device="cpu")          # doctest: +SKIP
>>> [r.quals for r in scorer.score(summaries, sources)]                  # doctest: +SKIP
"""

from quals.config import QualsConfig
from quals.diverse_beam_search import DiverseBeamOutput, diverse_beam_search
from quals.filtering import Candidate, Rejection, filter_pairs
from quals.formats import DEFAULT_PRESET, PRESETS, QAFormat, get_preset
from quals.loading import load_qagen
from quals.qagen import QAGenModel
from quals.results import CorpusSummary, QAPair, SummaryScore
from quals.scorer import QualsScorer


__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "Candidate",
    "CorpusSummary",
    "DiverseBeamOutput",
    "QAFormat",
    "QAGenModel",
    "QAPair",
    "QualsConfig",
    "QualsScorer",
    "Rejection",
    "SummaryScore",
    "diverse_beam_search",
    "filter_pairs",
    "get_preset",
    "load_qagen",
]
