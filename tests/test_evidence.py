"""evidence_sentences: each pair scored on the source sentences nearest to it instead of the whole source; a
preset's stored calibration kept to the settings it was fitted with."""

import json

import pytest

from quals import Calibration, QualsConfig, QualsScorer
from quals.engine.evidence import content_words, evidence_passage
from quals.testing import FILLER


SOURCE = "alice visited paris on monday . the weather was warm . bob stayed in rome . crowds gathered ."


def test_evidence_is_the_sentences_sharing_most_content_words_in_source_order():
    assert evidence_passage(SOURCE, "where did bob stay ?", "rome", 1) == "bob stayed in rome ."
    assert evidence_passage(SOURCE, "who visited paris ?", "alice", 2) == \
        "alice visited paris on monday . the weather was warm ."  # the tie goes to the earlier sentence
    assert evidence_passage(SOURCE, "when was bob in rome ?", "monday", 2) == \
        "alice visited paris on monday . bob stayed in rome ."  # in source order, not by overlap
    assert evidence_passage("alice visited paris .", "who ?", "bob", 3) == "alice visited paris ."
    assert content_words("Where did Bob go, and when?") == {"bob", "go"}


def test_each_pair_is_scored_on_its_own_evidence(trained_qagen_path):
    scorer = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False, evidence_sentences=2)
    result = scorer.score(["bob visited paris on monday ."], [SOURCE], return_qa_pairs=True)[0]
    qagen = scorer.load()
    assert result.source_handling == "evidence" and result.pairs
    assert result.num_source_windows == len({p.evidence for p in result.pairs})
    for pair in result.pairs:
        assert pair.evidence == evidence_passage(SOURCE, pair.question, pair.answer, 2)
        context = qagen.encode([qagen.passage_windows(pair.evidence)[0]])
        expected = qagen.token_logprobs(context, [qagen.target(pair.question, pair.answer)])[0]
        assert pair.source_logprobs == pytest.approx(expected.tolist(), abs=1e-5)
        assert pair.quals == pytest.approx(pair.ll_source - pair.ll_summary)


def test_evidence_finds_a_supporting_sentence_far_into_a_long_source(trained_qagen_path):
    source = " ".join(FILLER * 6) + " alice visited paris on monday ."
    qa_pairs = {"sentence_pairs": False}  # the pairs' evidence alone
    evidence = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False, evidence_sentences=2,
                           **qa_pairs)
    truncate = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False, long_source="truncate",
                           evidence_sentences=0, **qa_pairs)
    e, t = evidence.score(["alice visited paris on monday ."], [source], return_qa_pairs=True)[0], \
        truncate.score(["alice visited paris on monday ."], [source])[0]
    assert all("alice visited paris on monday ." in p.evidence for p in e.pairs)
    assert e.quals > t.quals + 0.5


def test_evidence_scores_do_not_depend_on_batching(trained_qagen_path):
    sources = [SOURCE, SOURCE + " " + SOURCE, "bob .", SOURCE]
    summaries = ["alice visited paris .", "bob visited rome on monday .", "alice .", "crowds gathered in rome ."]
    runs = [QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False, evidence_sentences=2,
                        max_batch_tokens=budget).score(summaries, sources, True) for budget in (1, 10**6)]
    assert sum(r.quals is not None for r in runs[0]) >= 3
    for x, y in zip(*runs, strict=True):
        assert (x.quals is None) == (y.quals is None)
        if x.quals is not None:
            assert x.quals == pytest.approx(y.quals, abs=1e-5)
            assert [p.evidence for p in x.pairs] == [p.evidence for p in y.pairs]


def test_setting_is_checked_on_by_default_and_off_in_parity_mode():
    with pytest.raises(ValueError, match="evidence_sentences"):
        QualsConfig(evidence_sentences=-1)
    assert QualsConfig().evidence_sentences == 4 and QualsConfig.paper_parity().evidence_sentences == 0
    assert QualsConfig(evidence_sentences=None).evidence_sentences == 0  # the earlier spelling of "whole source"
    # fingerprints stored before the setting existed stay valid: it is left out at the value that scores as they
    # did (the whole source), and in at any other, the default included
    assert "evidence_sentences" not in QualsConfig(evidence_sentences=0).fingerprint()
    assert QualsConfig().fingerprint()["evidence_sentences"] == 4


def test_a_preset_calibration_applies_only_to_the_settings_it_was_fitted_with(tmp_path):
    assert QualsScorer(preset="mini", show_progress=False).calibration is not None
    for setting in ({"evidence_sentences": 0}, {"evidence_sentences": 2}, {"sentence_pairs": False},
                    {"score_tokens": "answer"}, {"max_pairs": 5}):
        assert QualsScorer(preset="mini", show_progress=False, **setting).calibration is None, setting
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(Calibration(2.0, 1.0, 0.5).to_dict()))
    fitted = QualsScorer(preset="mini", show_progress=False, evidence_sentences=2, calibration=str(path))
    assert fitted.calibration.slope == 2.0  # a curve fitted with these settings is the user's to give
