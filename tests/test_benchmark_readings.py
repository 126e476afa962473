"""benchmarks/human_correlation.py computes every named variant from one recorded pass: each reading must equal what
the scorer returns with that setting, and the cache must not depend on settings that only read the records."""

import sys
from pathlib import Path

import pytest

from quals import QualsScorer


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
human_correlation = pytest.importorskip("human_correlation")  # needs the bench extra (scipy, scikit-learn)

SOURCE = "alice visited paris on monday . the weather was warm . crowds gathered in the square ."
ROWS = [{"document": SOURCE, "summary": summary} for summary in
        ["alice visited paris on monday . the weather was warm .", "bob visited paris on monday .",
         "crowds gathered in the square ."]]


@pytest.mark.parametrize("weight", [0.0, 0.25])
def test_recorded_readings_equal_the_scorer_and_the_cache_ignores_the_prior_weight(trained_qagen_path, tmp_path,
                                                                                  weight):
    config = human_correlation.scorer_config(None, trained_qagen_path, None, {"sentence_prior_weight": weight})
    path = human_correlation.cache_file(tmp_path, "toy", config)
    other = human_correlation.scorer_config(None, trained_qagen_path, None, {"sentence_prior_weight": 0.5})
    assert human_correlation.cache_file(tmp_path, "toy", other) == path  # the pass records what any weight reads
    records, stats = human_correlation.score_cached(ROWS, config, path, batch=2)
    assert stats["scored_now"] == 3 and human_correlation.score_cached(ROWS, other, path, 2)[1]["scored_now"] == 0
    readings = human_correlation.variant_scores(records, ROWS, weight)
    for name, settings in [("pair / summary", {}), ("answer / no passage",
                                                   {"score_tokens": "answer", "ll_reference": "no_passage"})]:
        scorer = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False,
                             sentence_prior_weight=weight, **settings)
        expected = scorer.quals([r["summary"] for r in ROWS], [r["document"] for r in ROWS])
        assert readings[f"QUALS {name}"] == pytest.approx(expected, abs=1e-5)
    assert ("QUALS pair / summary, sentence_prior_weight=0" in readings) == (weight != 0)
