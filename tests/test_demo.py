"""The Space demo's logic (metrics/quals/app.py): tables, chart data, messages. The browser test drives the UI."""

import importlib.util
import math
from pathlib import Path

import gradio as gr
import pytest

from quals import DEFAULT_PRESET, PRESETS


APP_FILE = Path(__file__).resolve().parent.parent / "metrics" / "quals" / "app.py"


@pytest.fixture(scope="module")
def app():
    spec = importlib.util.spec_from_file_location("quals_demo_app", APP_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_pair(question, answer, ll_source, ll_summary, tokens=("▁who", "▁visited", "?", "</s>"), **per_token):
    """A kept pair as the metric returns it with ``return_qa_pairs=True``."""
    tokens = list(tokens)
    return {"question": question, "answer": answer, "quals": ll_source - ll_summary, "ll_source": ll_source,
            "ll_summary": ll_summary, "tokens": tokens, "source_logprobs": [ll_source] * len(tokens),
            "summary_logprobs": [ll_summary] * len(tokens), **per_token}


def metric_output(*summaries):
    """The metric's output for (quals, kept pairs, error) per summary."""
    return {"quals": [q for q, _, _ in summaries], "num_qa_pairs": [len(p) for _, p, _ in summaries],
            "errors": [e for _, _, e in summaries], "qa_pairs": [{"kept": p, "rejected": []} for _, p, _ in summaries]}


def test_pair_table_lists_the_least_supported_fact_first(app):
    scores = metric_output((-0.2, [make_pair("q1", "a1", -0.5, -0.2), make_pair("q2", "a2", -0.3, -0.4)], None),
                           (-2.0, [make_pair("q3", "bob", -2.3, -0.3)], None),
                           (None, [], "no QA pair survived filtering"))
    table = app.pair_rows(app.ranked_pairs(scores))
    assert list(table.columns) == app.PAIR_COLUMNS
    assert table["question"].tolist() == ["q3", "q1", "q2"]
    assert table["#"].tolist() == [2, 1, 1]  # which summary each pair belongs to (1-based)
    assert table["QUALS (difference)"].tolist() == pytest.approx([-2.0, -0.3, 0.1])
    assert table["LL_source"].tolist() == pytest.approx([-2.3, -0.5, -0.3])
    assert table["LL_summary"].tolist() == pytest.approx([-0.3, -0.2, -0.4])

    summaries = app.summary_rows(scores, ["s one", "s two", "s three"])
    assert summaries["QUALS"].tolist() == ["-0.200", "-2.000", "–"]
    assert summaries["note"].tolist() == ["", "", "no QA pair survived filtering"]
    assert summaries["summary"].tolist() == ["s one", "s two", "s three"]


def test_scores_that_round_to_zero_are_not_shown_as_negative_zero(app):
    scores = metric_output((-4e-5, [make_pair("q", "a", -0.10004, -0.1)], None))
    assert app.summary_rows(scores, ["s"])["QUALS"].tolist() == ["0.000"]
    assert str(app.pair_rows(app.ranked_pairs(scores))["QUALS (difference)"][0]) == "0.0"


def test_token_chart_has_both_series_in_token_order(app):
    pair = make_pair("who visited paris ?", "bob", -1.0, -0.1, ["▁who", "▁visited", "▁the", "▁the", "</s>"],
                     source_logprobs=[-0.1, -0.2, -9.0, -0.3, -0.01],
                     summary_logprobs=[-0.1, -0.2, -0.05, -0.3, -0.01])
    data = app.token_chart_data(pair)
    assert set(data["given"]) == {"source", "summary"}
    source = data[data["given"] == "source"]
    assert source["token"].tolist() == ["1 who", "2 visited", "3 the", "4 the", "5 </s>"]  # repeats stay distinct
    assert source["probability"].tolist() == pytest.approx([math.exp(v) for v in pair["source_logprobs"]])
    summary = data[data["given"] == "summary"]
    assert summary["probability"].tolist() == pytest.approx([math.exp(v) for v in pair["summary_logprobs"]])
    assert summary["token"].tolist() == source["token"].tolist()


def test_token_labels_sort_in_pair_order_beyond_nine_tokens(app):
    tokens = [f"t{i}" for i in range(12)]
    pair = make_pair("q", "a", -1.0, -1.0, tokens)
    labels = app.token_chart_data(pair)["token"].tolist()[:12]
    assert labels[0] == "01 t0" and labels[-1] == "12 t11"
    assert sorted(labels) == labels  # the chart sorts its x axis by label
    assert app.chart_update([], None) is None and app.chart_update([(1, pair)], 3) is None


def test_empty_input_gets_a_clear_message_and_empty_tables(app):
    options = {"any": {"preset": DEFAULT_PRESET}}  # never loaded: the inputs are checked first
    for source, summaries in [("", "a summary"), ("   ", "a summary"), ("a source", ""), ("a source", "\n  \n")]:
        status, _, summary_table, pair_table, _, _, ranked = app.run_scoring(options, source, summaries, "any", 10,
                                                                          "strict")
        assert status.startswith("⚠️")
        assert ("source" in status) if not source.strip() else ("summary" in status)
        assert summary_table.empty and pair_table.empty and ranked == []


def test_a_model_that_cannot_load_gets_a_message_not_a_traceback(app, tmp_path):
    options = {"broken": {"model": str(tmp_path)}}  # an empty folder: no config, no weights
    status, _, summary_table, pair_table, _, chart, ranked = app.run_scoring(
        options, "alice visited paris .", "alice visited paris .", "broken", 10, "strict")
    assert status.startswith("⚠️ Could not load the QAGen model")
    assert str(tmp_path) in status
    assert "Traceback" not in status
    assert summary_table.empty and pair_table.empty and ranked == []
    assert chart is None


def test_model_options_prefer_the_given_folder_and_hide_the_untrained_paper_checkpoint(app, tmp_path):
    options = app.model_options(str(tmp_path))
    labels = list(options)
    assert options[labels[0]] == {"model": str(tmp_path)}
    presets = [args["preset"] for args in options.values() if "preset" in args]
    assert "paper" not in presets
    hub = [name for name in presets if name in PRESETS]
    assert hub[0] == DEFAULT_PRESET
    assert next(iter(app.model_options(None).values()))["preset"] in {"mini", "smollm2-qagen", DEFAULT_PRESET}


def test_one_summary_per_line(app):
    assert app.parse_summaries(" first summary. \n\n second summary.\n") == ["first summary.", "second summary."]
    assert app.parse_summaries(None) == []


def test_build_demo_has_the_inputs_the_browser_test_uses(app, tmp_path):
    demo = app.build_demo(str(tmp_path))
    assert isinstance(demo, gr.Blocks)
    elem_ids = {block.elem_id for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    assert {"source", "summaries", "score-button", "status", "summary-table", "pairs-table", "pair-choice",
            "token-chart", "preset"} <= elem_ids


@pytest.mark.slow
def test_scoring_with_a_trained_tiny_model_ranks_the_hallucination_last(app, trained_qagen_path):
    options = app.model_options(trained_qagen_path)
    source, summaries = app.EXAMPLES[1]
    status, highlights, summary_table, pair_table, choice, chart, ranked = app.run_scoring(
        options, source, summaries, next(iter(options)), 10, "strict")
    assert "summary 1" in status and "summary 2" in status and "⚠️" not in status
    values = [float(v) for v in summary_table["QUALS"]]
    assert values[0] > values[1]  # "bob visited paris" swaps the person
    table = pair_table.data  # a pandas Styler (3 decimals) over the table
    assert table["QUALS (difference)"].tolist() == sorted(table["QUALS (difference)"].tolist())
    assert table["#"].iloc[0] == 2 and "bob" in table["question"].iloc[0] + table["answer"].iloc[0]
    assert len(ranked) == len(table) and choice.value == 0
    assert chart.equals(app.token_chart_data(ranked[0][1]))  # the least supported pair is plotted first
    assert 'data-summary="2"' in highlights and "<mark" in highlights.split('data-summary="2"')[1]


def test_highlights_mark_each_span_and_escape_the_rest(app):
    summaries = ["Bob <b>visited</b> Rome & left.", "nothing asked"]
    out = metric_output((-1.0, [], None), (None, [], "no QA pair survived filtering"))
    out["qa_pairs"][0]["spans"] = [{"start": 0, "end": 3, "text": "Bob", "quals": -2.5, "questions": ["Who?"]},
                                   {"start": 19, "end": 23, "text": "Rome", "quals": -0.1, "questions": ["Where?"]}]
    out["probability"] = [0.2, None]
    html = app.highlight_html(summaries, out)
    assert '<mark data-quals="-2.500"' in html and ">Bob</mark>" in html and ">Rome</mark>" in html
    assert "&lt;b&gt;visited&lt;/b&gt;" in html and "&amp; left." in html  # the summary's own text is escaped
    assert "P(consistent) 0.20" in html and 'data-summary="2"' in html and "<mark" not in html.split('"2"')[1]
