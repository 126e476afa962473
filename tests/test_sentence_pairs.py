"""sentence_pairs: every summary sentence also scored as one pair (a fixed question, the sentence as its answer), and
QUALS as the mean over sentences; the QA pairs themselves unchanged."""

import pytest

from quals import QAFormat, QAPair, QualsConfig, QualsScorer, get_preset, prior_share, reference_ll, summary_quals
from quals.engine.sentence_pairs import SENTENCE_QUESTION, asks_sentence_question


# in the tiny world's templates (one fact and filler sentences): its QAGen has read nothing else
SOURCE = "alice visited paris on monday . the weather was warm . crowds gathered in the square ."
SUMMARY = "alice visited paris on monday . the weather was warm ."


def scorer(path, **settings):
    return QualsScorer(model=path, device="cpu", show_progress=False, **settings)


def test_each_sentence_is_one_pair_scored_on_its_answer_tokens_and_qa_pairs_are_unchanged(trained_qagen_path):
    plain = scorer(trained_qagen_path, sentence_pairs=False).score([SUMMARY], [SOURCE], return_qa_pairs=True)[0]
    both = scorer(trained_qagen_path).score([SUMMARY], [SOURCE], return_qa_pairs=True)[0]  # on by default
    sentences = [p for p in both.pairs if p.sentence_pair]
    assert sorted(p.answer for p in sentences) == ["alice visited paris on monday .", "the weather was warm ."]
    assert all(p.question == SENTENCE_QUESTION for p in sentences)
    for p in sentences:  # the fixed question is not the summary's: only the answer tokens are compared
        answer = slice(p.answer_start, None)
        assert p.ll_source == pytest.approx(sum(p.source_logprobs[answer]) / len(p.source_logprobs[answer]))
        assert p.quals == pytest.approx(p.ll_source - p.ll_summary)
    qa = sorted((p.question, p.answer, round(p.quals, 5)) for p in both.pairs if not p.sentence_pair)
    own = [p for p in plain.pairs if asks_sentence_question(p.question)]  # set aside when on
    assert qa == sorted((p.question, p.answer, round(p.quals, 5)) for p in plain.pairs if p not in own)
    assert both.num_pairs == plain.num_pairs - len(own) + 2
    assert both.quals == pytest.approx(summary_quals(SUMMARY, both.pairs))
    assert [s.from_summary for s in both.sentences] == [False, False]  # every sentence checked on its own
    assert both.spans and all(SENTENCE_QUESTION not in span.questions for span in both.spans)  # QA answers only
    changed = ["alice visited paris on monday .", "alice visited oslo on monday .", "bob visited paris on monday ."]
    faithful, *unsupported = [next(p.quals for p in r.pairs if p.sentence_pair)  # a changed entity is less likely
                              for r in scorer(trained_qagen_path).score(changed, [SOURCE] * 3, return_qa_pairs=True)]
    assert all(quals < faithful - 0.5 for quals in unsupported)


def test_quals_is_the_mean_over_sentences_of_their_qa_mean_and_sentence_pair():
    def pair(question, answer, quals, sentence_pair=False):
        return QAPair(question, answer, quals, 0.0, 0.0, [], [], [], sentence_pair=sentence_pair)

    summary = "Smith won the race. It rained in Leeds."
    qa = [pair("Who won?", "Smith", -1.0), pair("What did Smith win?", "the race", -3.0),
          pair("Where did it rain?", "Leeds", -0.5)]
    whole = [pair(SENTENCE_QUESTION, "Smith won the race.", -4.0, True),
             pair(SENTENCE_QUESTION, "It rained in Leeds.", -1.5, True)]
    assert summary_quals(summary, qa) == pytest.approx(-1.5)  # the paper: the mean over QA pairs
    assert summary_quals(summary, qa + whole) == pytest.approx(((-2.0 - 4.0) / 2 + (-0.5 - 1.5) / 2) / 2)
    assert summary_quals(summary, whole[:1]) == pytest.approx(-4.0)  # a sentence with no pair does not count
    assert summary_quals(summary, []) is None


def test_sentence_pair_scores_do_not_depend_on_batching(trained_qagen_path):
    sources = [SOURCE, SOURCE + " " + SOURCE, SOURCE]
    summaries = ["alice visited paris . bob stayed in rome .", "bob visited rome on monday .", "crowds gathered ."]
    runs = [scorer(trained_qagen_path, evidence_sentences=2, sentence_prior_weight=0.25, max_batch_tokens=budget)
            .score(summaries, sources, True) for budget in (1, 10**6)]
    assert all(r.quals is not None for r in runs[0])
    for x, y in zip(*runs, strict=True):
        assert x.quals == pytest.approx(y.quals, abs=1e-5)


def test_setting_is_checked_on_by_default_off_in_parity_and_left_out_of_earlier_fingerprints():
    with pytest.raises(ValueError, match="needs ll_summary='teacher_forced'.*sentence_pairs=False"):
        QualsConfig(ll_summary="search")
    assert QualsConfig(ll_summary="search", sentence_pairs=False).ll_summary == "search"
    assert QualsConfig().sentence_pairs and not QualsConfig.paper_parity().sentence_pairs
    # left out of a fingerprint when off (as every run before the setting existed), in when on (the default)
    assert "sentence_pairs" not in QualsConfig(sentence_pairs=False).fingerprint()
    assert QualsConfig().fingerprint()["sentence_pairs"] is True
    assert QualsConfig().scores_as_calibrated() and not QualsConfig(sentence_pairs=False).scores_as_calibrated()


def test_a_sentence_with_no_word_is_not_a_pair_and_an_unscored_summary_says_why(trained_qagen_path):
    result = scorer(trained_qagen_path).score([". !", "alice visited paris . !"], [SOURCE] * 2, True)
    assert result[0].quals is None and result[0].error == "no QA pair survived filtering"  # found by hypothesis
    assert [p.answer for p in result[1].pairs if p.sentence_pair] == ["alice visited paris ."]


def test_a_generated_copy_of_the_sentence_question_is_set_aside_not_counted_twice(trained_qagen_path):
    source = "alice visited paris on monday . local media covered the event ."
    summary = "bob visited paris on monday ."

    asks = asks_sentence_question
    plain = scorer(trained_qagen_path, sentence_pairs=False).score([summary], [source], return_qa_pairs=True)[0]
    copies = {(p.question, p.answer) for p in plain.pairs if asks(p.question)}
    assert copies, "the tiny QAGen (trained on sentence pairs too) writes the sentence question for this summary"
    both = scorer(trained_qagen_path).score([summary], [source], return_qa_pairs=True)[0]
    assert [p.sentence_pair for p in both.pairs if asks(p.question)] == [True]  # only the summary's sentence pair
    set_aside = {(r.question, r.answer) for r in both.rejected if r.reason == "the sentence pairs' question"}
    assert copies <= set_aside and all(asks(question) for question, _ in set_aside)
    others = sorted((p.question, p.answer) for p in plain.pairs if not asks(p.question))  # the rest kept as before
    assert sorted((p.question, p.answer) for p in both.pairs if not p.sentence_pair) == others


@pytest.mark.parametrize("weight", [0.0, 0.25, 1.0])
def test_sentence_prior_weight_mixes_a_sentence_pairs_reference_and_leaves_qa_pairs_alone(trained_qagen_path, weight):
    result = scorer(trained_qagen_path, sentence_prior_weight=weight).score([SUMMARY], [SOURCE], True)[0]
    close = {"abs": 1e-5}  # the engine averages in float32
    for p in result.pairs:
        if not p.sentence_pair or weight == 0:  # the summary alone: no pass with an empty passage is needed
            assert p.ll_prior is None and p.quals == pytest.approx(p.ll_source - p.ll_summary, **close)
            continue
        answer = slice(p.answer_start, None)
        ll_prior = sum(p.prior_logprobs[answer]) / len(p.prior_logprobs[answer])
        assert p.ll_prior == pytest.approx(ll_prior, **close)
        assert p.quals == pytest.approx(p.ll_source - (1 - weight) * p.ll_summary - weight * ll_prior, **close)
    assert sum(p.sentence_pair for p in result.pairs) == 2
    assert result.quals == pytest.approx(summary_quals(SUMMARY, result.pairs))
    no_passage = scorer(trained_qagen_path, sentence_prior_weight=weight, ll_reference="no_passage")
    for p in no_passage.score([SUMMARY], [SOURCE], True)[0].pairs:  # every pair against no passage, whatever w
        assert p.quals == pytest.approx(p.ll_source - p.ll_prior, **close)


def test_sentence_prior_weight_defaults_to_the_presets_is_checked_and_left_out_of_earlier_fingerprints():
    assert get_preset("smollm2-qagen").sentence_prior_weight == 0.25  # measured: docs/human_correlation.md
    assert get_preset("mini").sentence_prior_weight == 0.0
    assert QualsScorer(preset="smollm2-qagen").settings.sentence_prior_weight == 0.25  # no model loaded
    assert QualsScorer(preset="smollm2-qagen", sentence_prior_weight=0.0).settings.sentence_prior_weight == 0.0
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="sentence_prior_weight must be in"):
            QualsConfig(sentence_prior_weight=bad)
        with pytest.raises(ValueError, match="sentence_prior_weight must be in"):
            QAFormat(name="x", model="x", sentence_prior_weight=bad)
    assert "sentence_prior_weight" not in QualsConfig().fingerprint()  # fingerprints stored before it stay valid
    assert QualsConfig(sentence_prior_weight=0.5).fingerprint()["sentence_prior_weight"] == 0.5
    assert not QualsConfig(sentence_prior_weight=0.5).scores_as_calibrated()


def test_a_setting_passed_at_the_presets_own_value_keeps_its_calibration():
    assert QualsScorer(preset="smollm2-qagen").calibration is not None  # no model loaded
    for same in ({"sentence_prior_weight": 0.25}, {"num_beam_groups": get_preset("smollm2-qagen").num_beam_groups}):
        assert QualsScorer(preset="smollm2-qagen", **same).calibration is not None, same
    for other in ({"sentence_prior_weight": 0.0}, {"num_beam_groups": 7}, {"sentence_pairs": False}):
        assert QualsScorer(preset="smollm2-qagen", **other).calibration is None, other
    assert QualsScorer(preset="mini", sentence_prior_weight=0.0).calibration is not None  # mini's own weight
    with pytest.raises(ValueError, match="num_beam_groups must be positive or None"):
        QualsConfig(num_beam_groups=0)


def test_reference_ll_is_the_summary_the_prior_or_their_mix():
    assert [prior_share("summary", False, 0.25), prior_share("summary", True, 0.25)] == [0.0, 0.25]
    assert prior_share("no_passage", False, 0.25) == prior_share("no_passage", True, 0.0) == 1.0
    assert reference_ll(-1.0, None, 0.0) == -1.0
    assert reference_ll(-1.0, -3.0, 1.0) == -3.0
    assert reference_ll(-1.0, -3.0, 0.25) == pytest.approx(-1.5)
    with pytest.raises(ValueError, match="needs the pair's LL given no passage"):
        reference_ll(-1.0, None, 0.25)
