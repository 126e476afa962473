"""benchmarks/human_correlation.py computes every named variant from one recorded pass: each reading must equal what
the scorer returns with that setting, and the cache must not depend on settings that only read the records."""

import json
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


def test_runs_on_the_same_rows_are_compared_paired_across_invocations(trained_qagen_path, tmp_path):
    data = tmp_path / "toy.jsonl"
    labelled = [{**row, "score": float(i % 2), "label": i % 2} for i, row in enumerate(ROWS + ROWS[:1])]
    data.write_text("".join(json.dumps(row) + "\n" for row in labelled))
    common = ["--data", str(data), "--preset", "mini", "--model", trained_qagen_path,
              "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "report.json"), "--bootstrap", "20"]
    human_correlation.main(common + ["--label", "a"])
    human_correlation.main(common + ["--label", "b", "--set", "sentence_pairs=false"])
    entry = json.loads((tmp_path / "report.json").read_text())["datasets"]["toy"]
    a, b = "a: QUALS pair / summary", "b: QUALS pair / summary"
    assert list(entry["values"]["readings"]) == [a, b]  # the first run's readings were kept for the second
    assert set(entry["paired"]) == {f"{a} - bigram precision", f"{a} - unigram precision", f"{b} - bigram precision",
                                    f"{b} - unigram precision", f"{a} - {b}"}
    assert entry["paired"][f"{a} - {b}"]["pearson"] == pytest.approx(
        entry["metrics"][a]["pearson"] - entry["metrics"][b]["pearson"])
    human_correlation.main(common + ["--label", "c", "--limit", "3"])  # other rows: earlier readings do not pair
    entry = json.loads((tmp_path / "report.json").read_text())["datasets"]["toy"]
    assert list(entry["values"]["readings"]) == ["c: QUALS pair / summary"]


def test_a_calibration_is_not_fitted_on_one_label_and_the_report_says_why(trained_qagen_path, tmp_path):
    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps({**row, "score": 1.0, "label": 1}) + "\n" for row in ROWS))
    human_correlation.main(["--data", str(data), "--preset", "mini", "--model", trained_qagen_path, "--label", "a",
                            "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "report.json"),
                            "--bootstrap", "20"])
    calibration = json.loads((tmp_path / "report.json").read_text())["calibration"]["a"]
    assert calibration == {"fitted": False, "reason": "its scored summaries all have the same label"}
