"""QUALS: QA-based factual-consistency scoring of summaries (Nan et al., ACL 2021).

The package has three rooms (docs/architecture.md): ``quals.engine`` (the metric), ``quals.corpus`` (the
``quals`` command line and corpus-scale runs, built on the engine) and ``quals.recipe`` (training QAGen models,
beside it). The engine's public API is re-exported here.

>>> from quals import QualsScorer
>>> scorer = QualsScorer(preset="lmqg-t5-small", device="cpu")          # doctest: +SKIP
>>> [r.quals for r in scorer.score(summaries, sources)]                  # doctest: +SKIP
"""

from quals.engine import *  # noqa: F403 - the engine's public API, listed in quals.engine.__all__
from quals.engine import __all__ as __all__  # the same public names


__version__ = "0.1.0"
