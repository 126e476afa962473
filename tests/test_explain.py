"""Scores a person can act on: calibrated probability and decision, unsupported spans, per-sentence scores,
honest refusals (quals/engine/{calibration,explain,inputs}.py, quals calibrate)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quals import CorpusSummary, QAPair, QualsScorer
from quals.cli import main
from quals.engine.calibration import Calibration
from quals.engine.explain import answer_span, merge_spans, sentence_scores, split_sentences
from quals.engine.inputs import script_share
from quals.testing import SyntheticWorld


SOURCE = "alice visited paris on monday . the weather was warm ."


def pair(question: str, answer: str, quals: float) -> QAPair:
    return QAPair(question, answer, quals, quals, 0.0, ["x"], [quals], [0.0])


# ---------------------------------------------------------------------- calibration
@settings(max_examples=50, deadline=None)
@given(st.floats(0.01, 20), st.floats(-20, 20), st.lists(st.floats(-50, 50), min_size=2, max_size=20))
def test_calibrated_probabilities_are_monotone_and_within_0_and_1(slope, intercept, values):
    calibration = Calibration(slope, intercept)
    ordered = sorted(values)
    probabilities = [calibration.probability(v) for v in ordered]
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    assert probabilities == sorted(probabilities)  # never reorders summaries
    assert calibration.probability(None) is None and calibration.decide(None) is None


def test_a_fitted_calibration_separates_the_classes():
    values = [-3.0, -2.5, -2.2, -1.9, -0.9, -0.6, -0.3, -0.2, -0.1, 0.0]
    labels = [0, 0, 0, 1, 0, 1, 1, 1, 1, 1]
    calibration = Calibration.fit(values, labels)
    assert calibration.slope > 0 and 0 < calibration.threshold < 1
    assert [calibration.decide(v) for v in (-3.0, 0.0)] == [False, True]
    with pytest.raises(ValueError, match="both consistent"):
        Calibration.fit([1.0, 2.0], [1, 1])


# ---------------------------------------------------------------------- spans and sentences
def test_answer_spans_map_back_to_the_exact_summary_text_unicode_included():
    summary = "Zoë Ångström (née Müller) met 東京 officials in São Paulo on 3 May 2021 — 💡 twice. São paulo agreed."
    for answer, question, expected in [("zoë ångström", "Who met them?", "Zoë Ångström"),
                                       ("3 may 2021", "When?", "3 May 2021"),
                                       ("sao", "?", None),  # no accent folding: not the same word
                                       ("née müller", "?", "née Müller"),
                                       ("São Paulo", "Which city agreed?", "São paulo")]:  # the asked sentence
        span = answer_span(summary, answer, question)
        assert (summary[span[0]: span[1]] if span else None) == expected
    assert answer_span("Obama spoke.", "a", "?") is None  # word boundaries: "a" is not inside "Obama"
    assert answer_span("A U.S.-led plan.", "u s led", "?") == (2, 10)  # punctuation between words is free


def test_spans_merge_and_carry_their_least_supported_pair():
    summary = "Bob visited Rome on Friday. The weather was warm."
    spans = merge_spans(summary, [pair("Who visited Rome?", "Bob", -2.0), pair("Where did Bob go?", "Rome", -0.1),
                                  pair("Who went to Rome on Friday?", "Bob visited Rome", -0.5),
                                  pair("What was the weather?", "warm", 0.0)])
    assert [(s.text, s.quals) for s in spans] == [("Bob visited Rome", -2.0), ("warm", 0.0)]
    assert all(summary[s.start: s.end] == s.text for s in spans)


@pytest.mark.parametrize(("text", "sentences"), [
    ("Mr. Smith paid $3.50 at 9 a.m. on Jan. 5. He left.", ["Mr. Smith paid $3.50 at 9 a.m. on Jan. 5.", "He left."]),
    ("J. K. Rowling wrote it. the u.s. agreed.", ["J. K. Rowling wrote it.", "the u.s. agreed."]),
    ('"Why?" she asked. "Because!" He ran...', ['"Why?" she asked.', '"Because!"', "He ran..."]),
    ("Wait... what? No. Yes!! See No. 10 Downing St. now.", ["Wait... what?", "No.", "Yes!!",
                                                             "See No. 10 Downing St. now."]),
    ("It rose 2.5%.Then fell", ["It rose 2.5%.Then fell"]),  # no space: not an end
    ("one sentence with no end", ["one sentence with no end"]),
    ("  ", []),
])
def test_sentence_splitting_on_tricky_punctuation(text, sentences):
    assert [text[a:b] for a, b in split_sentences(text)] == sentences


def test_each_sentence_gets_the_mean_of_its_pairs_or_the_summary_score():
    summary = "Alice visited Paris. Bob stayed home. It rained."
    scores = sentence_scores(summary, [pair("Who visited Paris?", "Alice", -0.2), pair("Where?", "Paris", 0.0),
                                       pair("Who stayed home?", "Bob", -3.0)], summary_quals=-1.1)
    assert [(s.text, s.quals, s.num_pairs, s.from_summary) for s in scores] == [
        ("Alice visited Paris.", -0.1, 2, False), ("Bob stayed home.", -3.0, 1, False), ("It rained.", -1.1, 0, True)]


# ---------------------------------------------------------------------- refusals
def test_text_in_a_script_the_model_does_not_read_is_refused_and_counted_apart(trained_qagen_path):
    scorer = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False)
    results = scorer.score(["alice visited paris on monday .", "Алиса посетила Париж в понедельник.",
                            "alice visited paris on monday ."], [SOURCE, SOURCE, "東京で月曜日に会った。"])
    assert results[0].quals is not None
    assert results[1].quals is None and results[1].error.startswith("unreadable input: summary 1 has 0% of its")
    assert results[2].quals is None and results[2].error.startswith("unreadable input: source 2")
    assert CorpusSummary.of(results).errors == {"unreadable input": 2}
    lenient = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False, min_script_share=0,
                          max_unknown_share=1)
    assert lenient.score(["Алиса посетила Париж."], [SOURCE])[0].error != results[1].error
    assert script_share("abc", ("Latin",)) == 1.0 and script_share("123 ...", ("Latin",)) == 1.0


def test_mostly_unknown_tokens_are_refused(trained_qagen_path):
    scorer = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False)  # a word-level vocabulary
    result = scorer.score(["zebras juggle quantum marmalade fiercely"], [SOURCE])[0]
    assert result.quals is None and "unknown tokens" in result.error


# ---------------------------------------------------------------------- end to end
@pytest.mark.parametrize("sentence_pairs", [False, True])
def test_explained_results_point_at_the_hallucinated_sentence(trained_qagen_path, sentence_pairs):
    scorer = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False, sentence_pairs=sentence_pairs)
    summary = "bob visited rome on friday . the weather was warm ."  # the source says alice, paris, monday
    result = scorer.score([summary], [SOURCE], return_qa_pairs=True)[0]
    if sentence_pairs:  # every sentence is checked by its own sentence pair: the hallucinated one scores lowest
        first, second = result.sentences
        assert not first.from_summary and not second.from_summary and first.quals < second.quals - 0.5
        assert first.num_pairs + second.num_pairs == result.num_pairs and second.num_pairs == 1
        return
    first, second = result.sentences
    assert (first.text, second.text) == ("bob visited rome on friday .", "the weather was warm .")
    assert first.num_pairs == result.num_pairs and first.quals < -0.5  # the tiny model asks about the fact only
    assert second.from_summary and second.quals == result.quals  # no pair asked about the filler sentence
    assert result.spans and all(summary[s.start: s.end] == s.text for s in result.spans)
    assert all(span.end <= first.end for span in result.spans)
    record = result.to_dict()
    assert {"spans", "sentences"} <= set(record) and record["sentences"][1]["text"] == second.text


@pytest.mark.slow
def test_quals_calibrate_fits_on_labelled_data_and_score_returns_the_probability(tmp_path, trained_qagen_path):
    world, rows = SyntheticWorld(3), []
    for _ in range(12):
        fact = world.fact()
        source = world.document(fact)
        rows.append({"summary": world.sentence(fact), "source": source, "label": 1})
        rows.append({"summary": world.sentence(world.corrupt(fact)), "source": source, "label": 0})
    (tmp_path / "labelled.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ["--device", "cpu", "--model", trained_qagen_path, "--num-beam-groups", "3", "--max-new-tokens", "10"]
    assert main(["calibrate", "--input", str(tmp_path / "labelled.jsonl"), "--out", str(tmp_path / "cal.json"),
                 *common]) == 0
    fitted = json.loads((tmp_path / "cal.json").read_text())
    assert fitted["slope"] > 0 and fitted["fitted_on"]["rows"] == 24 and fitted["fitted_on"]["balanced_accuracy"] > 0.8
    assert main(["score", "--input", str(tmp_path / "labelled.jsonl"), "--out", str(tmp_path / "s.jsonl"),
                 "--calibration", str(tmp_path / "cal.json"), *common]) == 0
    records = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert all(0 <= r["probability"] <= 1 and isinstance(r["consistent"], bool) for r in records)
    decided = [r["consistent"] == bool(row["label"]) for r, row in zip(records, rows, strict=True)]
    assert sum(decided) / len(decided) > 0.8
