"""Hostile input: every row gets a defined result or an error naming it, and never costs other rows theirs."""

from __future__ import annotations

import csv
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quals.cli import main
from quals.corpus.blocks import score_block
from quals.corpus.io import InputError, Row, count_rows, read_rows
from quals.engine.results import SummaryScore
from quals.engine.scorer import QualsScorer
from quals.testing import SyntheticWorld, tiny_qagen


WORLD = SyntheticWorld(3)
FACT = WORLD.fact()
GOOD_SUMMARY, GOOD_SOURCE = WORLD.sentence(FACT), WORLD.document(FACT)
HOSTILE_TEXTS = ["", " ", "\n\t \u00a0", "\x00\x01\x1b[31m\x7f", "\u202eevil\u202c", "👩‍👩‍👧 🎉🔥" * 20,
                 "<script>alert('x')</script><b>alice</b> visited &amp; paris", "東京 に 行った", "مرحبا بالعالم",
                 "\ud7ff\ue000\U0010ffff", GOOD_SUMMARY * 50, "alice " * 2000]
texts = st.one_of(st.sampled_from(HOSTILE_TEXTS), st.text(max_size=200), st.text(alphabet=" .?<>", max_size=5))
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def scorer() -> QualsScorer:
    return QualsScorer(model=str(tiny_qagen()), device="cpu", show_progress=False, num_beam_groups=2,
                       max_new_tokens=8)


@pytest.fixture(scope="module")
def good_score(scorer) -> float:
    return scorer.score([GOOD_SUMMARY], [GOOD_SOURCE])[0].quals


# ---------------------------------------------------------------------- engine
@pytest.mark.slow
@settings(SETTINGS, max_examples=8)
@given(st.lists(st.tuples(st.one_of(texts, st.none(), st.integers()), st.one_of(texts, st.none())), max_size=4))
def test_engine_gives_every_item_a_defined_result_and_leaves_other_items_alone(scorer, good_score, items):
    summaries = [summary for summary, _ in items] + [GOOD_SUMMARY]
    sources = [source for _, source in items] + [GOOD_SOURCE]
    results = scorer.score(summaries, sources)
    assert len(results) == len(summaries)
    for i, (result, summary, source) in enumerate(zip(results, summaries, sources, strict=True)):
        assert result.index == i
        if result.quals is None:
            assert result.error
        else:
            assert math.isfinite(result.quals) and result.error is None and result.num_pairs > 0
        valid = all(isinstance(text, str) and text.strip() for text in (summary, source))
        assert valid or f" {i} " in result.error  # invalid items are named by their position
    assert results[-1].quals == pytest.approx(good_score, abs=1e-5)


@pytest.mark.slow
def test_a_100k_word_source_is_scored_over_windows_and_can_be_capped(scorer):
    words = (GOOD_SOURCE + " ").split()
    huge = " ".join((words * (100_000 // len(words) + 1))[:100_000])
    whole = QualsScorer(scorer.config, qagen=scorer.qagen, evidence_sentences=0)  # the paper's whole source
    full = whole.score([GOOD_SUMMARY], [huge])[0]
    assert full.quals is not None and full.source_handling == "windows" and full.num_source_windows > 1000
    evidence = scorer.score([GOOD_SUMMARY], [huge])[0]  # the default: each pair reads its nearest sentences
    assert evidence.quals is not None and evidence.source_handling == "evidence"
    capped = QualsScorer(whole.config, qagen=scorer.qagen, max_source_windows=4).score([GOOD_SUMMARY], [huge])[0]
    assert capped.source_handling == "truncated" and capped.num_source_windows == 4 and capped.quals is not None
    long_summary = scorer.score([huge], [GOOD_SOURCE])[0]  # generation reads the first window of the summary
    assert long_summary.summary_truncated and long_summary.error in (None, "no QA pair survived filtering")
    assert long_summary.num_pairs < 100  # sentence pairs for the sentences the QAGen read, not all 100k words


def test_an_engine_failure_costs_only_the_row_that_causes_it():
    class FailsOnBoom:
        def score(self, summaries, sources, return_qa_pairs=False, show_progress=None, ids=None):
            if "boom" in summaries:
                raise RuntimeError("CUDA out of memory")
            return [SummaryScore(i, 0.5, num_pairs=1) for i in range(len(summaries))]

    rows = [Row(i, text, "a source") for i, text in enumerate(["fine", "boom", "also fine"])]
    records = [r for part in score_block(FailsOnBoom(), rows, explain=False, chunk_size=8) for r in part]
    assert [r["quals"] for r in records] == [0.5, None, 0.5]
    assert records[1]["error"] == "scoring failed: RuntimeError: CUDA out of memory" and records[1]["index"] == 1


# ---------------------------------------------------------------------- readers
@SETTINGS
@given(st.lists(st.binary(max_size=60).map(lambda b: b.replace(b"\n", b" ")), min_size=1, max_size=8))
def test_text_files_with_any_bytes_give_one_row_per_line(tmp_path_factory, lines):
    folder = tmp_path_factory.mktemp("txt")
    (folder / "sums.txt").write_bytes(b"\n".join(lines) + b"\n")
    (folder / "docs.txt").write_bytes(b"a document\n" * len(lines))
    rows = list(read_rows(summaries_path=str(folder / "sums.txt"), sources_path=str(folder / "docs.txt")))
    assert [row.index for row in rows] == list(range(len(lines)))
    for number, (row, raw) in enumerate(zip(rows, lines, strict=True), start=1):
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            assert row.summary is None and f"line {number} of " in row.error and "not valid UTF-8" in row.error
        else:
            assert row.error is None and row.summary == text.rstrip("\r")


json_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30),
                        st.lists(st.text(max_size=5), max_size=2))
records = st.dictionaries(st.sampled_from(["summary", "source", "id", "extra", "Summary"]), json_values, max_size=5)
jsonl_lines = st.one_of(records.map(json.dumps), st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
                        st.sampled_from(['"just a string"', "[1, 2]", "[" * 5000, '{"summary": "x", "source":',
                                         "\ufeff" + json.dumps({"summary": "s", "source": "d"})]))


@SETTINGS
@given(st.lists(jsonl_lines, min_size=1, max_size=8))
def test_jsonl_rows_are_read_or_named_never_crash_the_reader(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("jsonl") / "rows.jsonl"
    encoded = [line if isinstance(line, bytes) else line.encode("utf-8") for line in lines]
    path.write_bytes(b"\n".join(encoded) + b"\n")
    rows = list(read_rows(str(path)))
    kept = [number for number, line in enumerate(encoded, start=1) if line.strip()]  # blank lines are skipped
    assert [row.index for row in rows] == list(range(len(kept)))
    for row, number in zip(rows, kept, strict=True):
        if row.error is None:
            assert isinstance(row.summary, str) and isinstance(row.source, str)
        else:
            assert row.error.startswith(f"line {number} of {path}")


@SETTINGS
@given(st.lists(st.tuples(st.text(max_size=40), st.text(max_size=40)), min_size=1, max_size=6))
def test_csv_fields_with_quotes_commas_newlines_and_nul_round_trip(tmp_path_factory, pairs):
    path = tmp_path_factory.mktemp("csv") / "rows.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["summary", "source", "id"])
        writer.writerows([summary, source, str(i)] for i, (summary, source) in enumerate(pairs))
    rows = list(read_rows(str(path)))
    assert len(rows) == len(pairs)
    for row, (summary, source) in zip(rows, pairs, strict=True):  # a genuine U+FFFD is text like any other
        assert (row.summary, row.source, row.error) == (summary, source, None)


def test_csv_bytes_that_are_not_utf8_are_reported_but_a_genuine_replacement_character_is_kept(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_bytes("summary,source\nok \ufffd,fine\n".encode() + b"bad \xff byte,fine\n")
    good, bad = read_rows(str(path))
    assert (good.summary, good.error) == ("ok \ufffd", None)
    assert bad.error == f"row 2 of {path}: not valid UTF-8"


def test_an_empty_csv_is_refused_with_a_clear_message(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="is empty: a CSV file needs a header row"):
        read_rows(str(tmp_path / "empty.csv"))
    assert count_rows(tmp_path / "empty.csv") == 0


def test_mismatched_line_counts_are_refused_naming_both_files(tmp_path):
    (tmp_path / "sums.txt").write_text("a\nb\n")
    (tmp_path / "docs.txt").write_text("a\n")
    with pytest.raises(InputError, match=r"sums.txt has 2 rows but .*docs.txt has 1"):
        read_rows(summaries_path=str(tmp_path / "sums.txt"), sources_path=str(tmp_path / "docs.txt"))


def test_a_csv_field_over_the_default_csv_limit_is_read(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text(f'summary,source\nalice visited paris .,"{"word " * 100_000}"\n', encoding="utf-8")
    (row,) = read_rows(str(path))
    assert row.error is None and len(row.source.split()) == 100_000


# ---------------------------------------------------------------------- the CLI, end to end
@pytest.mark.slow
def test_cli_on_a_hostile_file_scores_every_good_row_and_reports_every_bad_one(tmp_path, capsys):
    good = json.dumps({"id": "good", "summary": GOOD_SUMMARY, "source": GOOD_SOURCE}).encode()
    lines = [
        good,
        json.dumps({"summary": "", "source": GOOD_SOURCE}).encode(),  # empty: defined result
        json.dumps({"summary": "   \t", "source": GOOD_SOURCE}).encode(),  # whitespace only
        json.dumps({"summary": "\x00\x07 alice \x1b[0m", "source": GOOD_SOURCE}).encode(),  # control characters
        json.dumps({"summary": "🎉 alice visited paris 🔥", "source": "<p>alice <b>visited</b> paris</p>"}).encode(),
        json.dumps({"summary": "アリスはパリを訪れた", "source": "مرحبا " * 50}, ensure_ascii=False).encode(),
        good,  # a duplicated row
        json.dumps({"summary": GOOD_SUMMARY}).encode(),  # missing field
        json.dumps({"summary": GOOD_SUMMARY, "source": GOOD_SOURCE, "x": [1], "y": None}).encode(),  # extra fields
        b'{"summary": "caf\xe9", "source": "bad bytes"}',  # not UTF-8
        json.dumps({"summary": 42, "source": None}).encode(),  # wrong types
        b"[" * 3000,  # nesting the JSON parser refuses
        good,
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "scores.jsonl"
    assert main(["score", "--input", str(path), "--out", str(out), "--model", str(tiny_qagen()), "--device", "cpu",
                 "--num-beam-groups", "2", "--max-new-tokens", "8", "--block-size", "5"]) == 1
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["index"] for r in records] == list(range(len(lines)))
    unreadable = {7: "missing field(s) source", 9: "can't decode byte 0xe9", 10: "summary is int",
                  11: "RecursionError"}
    errors = [json.loads(line) for line in (tmp_path / "scores.jsonl.errors.jsonl").read_text().splitlines()]
    assert [e["index"] for e in errors] == sorted(unreadable)
    for error in errors:
        assert error["error"].startswith(f"line {error['index'] + 1} of {path}")
        assert unreadable[error["index"]] in error["error"]
    for index in (1, 2):
        assert records[index]["quals"] is None and f"summary {index} is empty" in records[index]["error"]
    # the tiny tokenizer knows only the synthetic world's words: control characters, HTML and another script are
    # texts it cannot read, refused with a reason that names the row (a real QAGen reads the emoji and HTML rows)
    refused = {3: "summary 3 is 80% unknown tokens", 4: "source 4 is 82% unknown tokens",
               5: "summary 5 has 0% of its letters in the Latin script"}
    for index, reason in refused.items():
        assert records[index]["quals"] is None and reason in records[index]["error"], records[index]
    for index in (0, 8, 12):
        assert records[index]["error"] in (None, "no QA pair survived filtering")
    assert records[0]["quals"] is not None  # the same row three times, in different batches: the same score
    for copy in (6, 12):
        assert records[copy]["quals"] == pytest.approx(records[0]["quals"], abs=1e-6)
    assert records[0]["id"] == "good" and "x" not in records[8]
    assert "unreadable row" in capsys.readouterr().err
