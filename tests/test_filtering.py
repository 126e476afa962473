"""The QA-pair filter in both modes, against the reference code's edge cases (quals-algorithm.md §3.3)."""

import pytest

from quals.engine.filtering import Candidate, filter_pairs, normalize


def cand(question, answer, score=0.0, mean=None):
    return Candidate(question, answer, search_score=score, mean_logprob=score if mean is None else mean)


def test_reference_accepts_empty_answer_and_subword_match():
    summary = "Obama visited Paris."
    kept, rejected = filter_pairs([cand("Who?", ""), cand("What?", "a"), cand("Where?", "London")], summary,
                                  mode="reference")
    assert [c.answer for c in kept] == ["", "a"]  # '' and 'a' (inside 'Obama') are substrings
    assert [(r.answer, r.reason) for r in rejected] == [("London", "answer not in summary")]


def test_reference_is_case_insensitive_substring_only():
    kept, _ = filter_pairs([cand("Who?", "OBAMA"), cand("Where?", "paris .")], "Obama visited Paris.", "reference")
    assert [c.answer for c in kept] == ["OBAMA"]  # no punctuation/whitespace normalization


def test_reference_soft_cap_keeps_every_distinct_answer():
    summary = " ".join(f"w{i}" for i in range(12))
    candidates = [cand(f"q{i}?", f"w{i}", score=-i) for i in range(12)]
    kept, rejected = filter_pairs(candidates, summary, "reference", max_pairs=10)
    assert len(kept) == 12 and not rejected  # the cap is checked only between rounds


def test_reference_soft_cap_three_answers_reaches_twelve():
    summary = "alpha beta gamma"
    candidates = [cand(f"question {k} about {a}?", a, score=-k) for k in range(6) for a in ("alpha", "beta", "gamma")]
    kept, rejected = filter_pairs(candidates, summary, "reference", max_pairs=10)
    assert len(kept) == 12  # four whole rounds of three
    assert sum(r.reason.startswith("not selected") for r in rejected) == 6


def test_reference_soft_cap_nine_answers_two_questions_reaches_eighteen():
    summary = " ".join(f"a{i}" for i in range(9))
    candidates = [cand(f"q{k}-{i}?", f"a{i}", score=-(10 * k + i)) for k in range(2) for i in range(9)]
    kept, _ = filter_pairs(candidates, summary, "reference", max_pairs=10)
    assert len(kept) == 18


def test_reference_round_of_duplicates_ends_selection():
    summary = "alpha"
    candidates = [cand("Who?", "alpha", -1), cand("who?", "alpha", -2), cand("WHO?", "alpha", -3)]
    kept, rejected = filter_pairs(candidates, summary, "reference")
    assert len(kept) == 1  # round 2 pops a duplicate question, adds nothing, and selection stops
    assert [r.reason for r in rejected] == ["question already kept for this answer", "not selected (cap of 10 pairs)"]


def test_reference_ranks_by_unnormalized_search_score():
    summary = "alpha beta"
    kept, _ = filter_pairs([cand("q1?", "alpha", -5.0), cand("q2?", "beta", -1.0)], summary, "reference")
    assert [c.answer for c in kept] == ["beta", "alpha"]


def test_strict_rejects_empty_and_subword_answers_with_reasons():
    summary = "Obama visited Paris."
    candidates = [cand("Who?", ""), cand("What?", "a"), cand("", "Paris"), cand("Where?", "paris"),
                  cand("Who?", "...")]
    kept, rejected = filter_pairs(candidates, summary, "strict")
    assert [(c.question, c.answer) for c in kept] == [("Where?", "paris")]
    assert sorted(r.reason for r in rejected) == ["answer not in summary", "empty answer", "empty answer",
                                                  "empty question"]


def test_strict_deduplicates_and_hard_caps():
    summary = " ".join(f"w{i}" for i in range(12))
    candidates = [cand(f"q{i}?", f"w{i}", mean=-i) for i in range(12)] + [cand("Q0 ?", "W0!")]
    kept, rejected = filter_pairs(candidates, summary, "strict", max_pairs=10)
    assert len(kept) == 10
    assert [c.answer for c in kept] == [f"w{i}" for i in range(10)]  # ranked by mean log-prob
    reasons = [r.reason for r in rejected]
    assert reasons.count("duplicate pair") == 1 and reasons.count("not selected (cap of 10 pairs)") == 2


def test_strict_ranks_by_raw_mean_logprob_not_search_score():
    kept, _ = filter_pairs([cand("q1?", "alpha", score=-1.0, mean=-3.0), cand("q2?", "beta", score=-9.0, mean=-0.5)],
                           "alpha beta", "strict")
    assert [c.answer for c in kept] == ["beta", "alpha"]


def test_normalize_and_unknown_mode():
    assert normalize("Obama's  Plan!") == "obama s plan"
    with pytest.raises(ValueError, match="strict"):
        filter_pairs([], "x", mode="lenient")
