"""QUALS demo (the Space's app): score summaries against a source and see which of their facts it does not support.

    python metrics/quals/app.py [--model FOLDER] [--host 127.0.0.1] [--port 7860]

The demo is built on the metric itself: it loads this folder's ``quals.py`` with ``evaluate.load`` (one metric
instance per chosen model) and shows what ``compute(..., return_qa_pairs=True)`` returns; it never imports the
engine. The QAGen model, first found: ``--model`` or ``$QUALS_MODEL`` (a local folder), a bundled preset, else the
default Hub preset. Other presets can be picked in the UI. The UI is built by ``build_demo``; everything it shows
is computed by the small pure functions above it, which the tests call directly.
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import os
from html import escape
from pathlib import Path

import evaluate
import gradio as gr
import pandas as pd


logger = logging.getLogger("quals.demo")
METRIC_FILE = str(Path(__file__).resolve().with_name("quals.py"))  # the evaluate module beside this file

MODEL_ENV = "QUALS_MODEL"
# Checkpoint download sizes (hub_card.md, "Presets"). "paper" is not offered: its default checkpoint is the untrained
# facebook/bart-large, so it only makes sense with a QAGen folder you trained (pass that with --model).
PRESET_SIZES = {"lmqg-t5-small": "242 MB", "lmqg-t5-base": "892 MB", "lmqg-t5-large": "2.95 GB",
                "lmqg-bart-large": "1.6 GB", "mqag-t5-large": "2.95 GB"}
SYNTHETIC_SOURCE = "alice visited paris on monday . the weather was warm . local media covered the event ."
NEWS_SOURCE = (
    "Anthony Joshua will defend his IBF heavyweight title against Wladimir Klitschko at Wembley Stadium on 29 "
    "April, with the vacant WBA belt also at stake. The 27-year-old Briton is unbeaten in 18 professional fights. "
    "Klitschko, 40, has not boxed since losing his titles to Tyson Fury in November 2015. Promoter Eddie Hearn "
    "said more than 80,000 tickets had already been sold.")
EXAMPLES = [  # [source, summaries (one per line)]; written for this demo, not quoted from a data set
    [NEWS_SOURCE, ("Anthony Joshua will fight Wladimir Klitschko at Wembley Stadium in April.\n"
                   "Anthony Joshua will fight Lennox Lewis at Old Trafford in May.")],
    [SYNTHETIC_SOURCE, "alice visited paris on monday .\nbob visited paris on monday ."],
    ["carol visited oslo on friday . crowds gathered in the square .",
     "carol visited oslo on friday .\ncarol visited oslo on sunday ."],
]
EXAMPLE_LABELS = ["News: faithful vs. hallucinated (real QAGen models)", "Synthetic: swapped person",
                  "Synthetic: wrong day"]
SUMMARY_COLUMNS = ["#", "summary", "QUALS", "QA pairs", "note"]
CHART_COLUMNS = ["token", "given", "probability"]
PAIR_COLUMNS = ["#", "question", "answer", "LL_source", "LL_summary", "QUALS (difference)"]


# ---------------------------------------------------------------------------------------------- pure functions
@functools.lru_cache(maxsize=8)
def load_metric(preset: str | None = None, model: str | None = None) -> evaluate.EvaluationModule:
    """The QUALS metric for one model choice (the QAGen model itself loads on the first ``compute``)."""
    return evaluate.load(METRIC_FILE, config_name=preset or "default", model=model, device="cpu")


def model_options(model_folder: str | None = None) -> dict[str, dict[str, str]]:
    """Dropdown label -> metric arguments, the default first: the given folder, the bundled presets, the Hub ones."""
    options = {}
    if model_folder:
        options[f"model folder: {Path(model_folder).name}"] = {"model": str(model_folder)}
    metric = load_metric()
    for name in metric.bundled_presets:
        options[f"{name} (bundled, offline)"] = {"preset": name}
    others = sorted(set(metric.presets) - set(metric.bundled_presets) - {"paper"},
                    key=lambda name: (name != metric.default_preset, name))
    for name in others:
        options[f"{name} ({PRESET_SIZES.get(name, 'size not listed')} download)"] = {"preset": name}
    return options


def parse_summaries(text: str | None) -> list[str]:
    """One summary per non-empty line."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def input_problem(source: str | None, summaries: list[str]) -> str | None:
    """A message for the user when there is nothing to score, else ``None``."""
    if not (source or "").strip():
        return "Paste a source document first (or pick one of the examples below)."
    if not summaries:
        return "Enter at least one summary (one per line) to score against the source."
    return None


def score_summaries(source: str, summaries: list[str], model_args: dict[str, str], max_pairs: int,
                    filter_mode: str) -> dict:
    """The metric's output for the summaries (QA pairs included). Raises the engine's ``ModelLoadError`` (an
    ``OSError``) when the model cannot load."""
    metric = load_metric(model_args.get("preset"), model_args.get("model"))
    return metric.compute(predictions=summaries, sources=[source] * len(summaries), max_pairs=int(max_pairs),
                          filter_mode=filter_mode, return_qa_pairs=True)


def _round(value: float) -> float:
    return round(value, 3) + 0.0  # + 0.0 turns -0.0 into 0.0


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{_round(value):.3f}"


def summary_rows(out: dict, summaries: list[str]) -> pd.DataFrame:
    """One row per summary: its QUALS, how many QA pairs were kept, and why it has no score when it has none."""
    rows = [[i + 1, text, _fmt(value), pairs, error or ""] for i, (text, value, pairs, error) in
            enumerate(zip(summaries, out["quals"], out["num_qa_pairs"], out["errors"], strict=True))]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def ranked_pairs(out: dict) -> list[tuple[int, dict]]:
    """(summary number, kept pair) for every kept pair, least supported (most negative QUALS) first."""
    pairs = [(i + 1, pair) for i, explained in enumerate(out.get("qa_pairs", [])) for pair in explained["kept"]]
    return sorted(pairs, key=lambda item: item[1]["quals"])


def pair_rows(ranked: list[tuple[int, dict]]) -> pd.DataFrame:
    """The QA-pair table: LL_source, LL_summary and their difference, in ``ranked`` order."""
    rows = [[n, p["question"], p["answer"], _round(p["ll_source"]), _round(p["ll_summary"]), _round(p["quals"])]
            for n, p in ranked]
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def pair_label(number: int, pair: dict) -> str:
    return f"summary {number}: {pair['question']} → {pair['answer']} (QUALS {pair['quals']:.2f})"


def token_chart_data(pair: dict) -> pd.DataFrame:
    """Per-token probabilities of one QA pair given the source and given the summary, one row per (token, given).

    Tokens are labelled with their zero-padded position ("03 paris"), so repeated tokens stay distinct and sorting
    the labels keeps the pair's order.
    """
    width = len(str(len(pair["tokens"])))
    labels = [f"{i + 1:0{width}d} {token.lstrip('▁Ġ') or token}" for i, token in enumerate(pair["tokens"])]
    rows = [(label, given, math.exp(logprob))
            for given, logprobs in (("source", pair["source_logprobs"]), ("summary", pair["summary_logprobs"]))
            for label, logprob in zip(labels, logprobs, strict=True)]
    return pd.DataFrame(rows, columns=CHART_COLUMNS)


def highlight_html(summaries: list[str], out: dict) -> str:
    """Each summary with the spans its QA pairs asked about marked, the less supported the redder (``<mark>`` with
    the span's QUALS in ``title`` and ``data-quals``), and P(consistent) when the preset is calibrated."""
    blocks = []
    for i, text in enumerate(summaries):
        explained = out.get("qa_pairs", [{}] * len(summaries))[i]
        spans = sorted(explained.get("spans", []), key=lambda span: span["start"])
        html, at = [], 0
        for span in spans:
            strength = min(1.0, max(0.0, -span["quals"] / 2.0))  # 0 nats: no colour; -2 nats or less: full red
            html.append(escape(text[at: span["start"]]))
            html.append(f'<mark data-quals="{span["quals"]:.3f}" title="QUALS {span["quals"]:.3f}: '
                        f'{escape("; ".join(span["questions"]))}" style="background: rgba(220, 38, 38, '
                        f'{0.12 + 0.6 * strength:.2f})">{escape(text[span["start"]: span["end"]])}</mark>')
            at = span["end"]
        html.append(escape(text[at:]))
        probability = (out.get("probability") or [None] * len(summaries))[i]
        note = f" <small>P(consistent) {probability:.2f}</small>" if probability is not None else ""
        blocks.append(f'<p class="summary-highlight" data-summary="{i + 1}"><b>{i + 1}.</b> {"".join(html)}{note}</p>')
    return "\n".join(blocks)


def status_markdown(out: dict, model_label: str) -> str:
    header = (f"**QUALS** with `{model_label}` (closer to 0 = better supported by the source; compare summaries "
              "of the same source):")
    lines = [header]
    probabilities = out.get("probability") or [None] * len(out["quals"])
    for i, (value, pairs, error, probability) in enumerate(zip(out["quals"], out["num_qa_pairs"], out["errors"],
                                                               probabilities, strict=True)):
        shown = f"**{value:.3f}** from {pairs} QA pairs" if value is not None else f"no score ({error})"
        if probability is not None:
            shown += f", P(consistent) {probability:.2f}"
        lines.append(f"- summary {i + 1}: {shown}")
    return "\n".join(lines)


def warning(message: str) -> str:
    return f"⚠️ {message}"


# ---------------------------------------------------------------------------------------------- UI
def chart_update(ranked: list, index: int | None) -> pd.DataFrame | None:
    """The chart's data for the pair chosen in the dropdown; ``None`` (no chart) when there is none. Never an empty
    frame: gradio's plot would keep the empty frame's axis types and colours for every later update."""
    if not ranked or index is None or not 0 <= index < len(ranked):
        return None
    return token_chart_data(ranked[index][1])


def selected_row(event: gr.SelectData) -> int:
    """The row clicked in the QA-pair table (= the index of the pair to plot)."""
    return event.index[0]


def run_scoring(options: dict[str, dict[str, str]], source: str, summaries_text: str, model_label: str,
                max_pairs: int, filter_mode: str) -> tuple:
    """The Score button: (status, highlights, summary table, pair table, pair choice, chart, ranked pairs). Never
    raises: empty input, a model that cannot load and unexpected errors become a message in the status box."""
    summaries = parse_summaries(summaries_text)
    nothing = ("", pd.DataFrame(columns=SUMMARY_COLUMNS), pd.DataFrame(columns=PAIR_COLUMNS),
               gr.Dropdown(choices=[], value=None), chart_update([], None), [])
    problem = input_problem(source, summaries)
    if problem:
        return (warning(problem), *nothing)
    try:
        out = score_summaries(source, summaries, options[model_label], max_pairs, filter_mode)
    except OSError as err:  # the engine's ModelLoadError: "Could not load the QAGen model ...: <why>. <what to do>"
        return (warning(str(err)), *nothing)
    except Exception as err:  # the UI shows a message; the traceback goes to the server log
        logger.exception("QUALS scoring failed")
        return (warning(f"Scoring failed: {type(err).__name__}: {err}"), *nothing)
    ranked = ranked_pairs(out)
    choices = [(pair_label(n, p), i) for i, (n, p) in enumerate(ranked)]
    return (status_markdown(out, model_label), highlight_html(summaries, out), summary_rows(out, summaries),
            pair_rows(ranked).style.format(precision=3), gr.Dropdown(choices=choices, value=0 if ranked else None),
            chart_update(ranked, 0), ranked)


def build_demo(model_folder: str | None = None) -> gr.Blocks:
    """The demo's UI. ``model_folder`` (default ``$QUALS_MODEL``) is a local QAGen folder offered first."""
    options = model_options(model_folder or os.environ.get(MODEL_ENV) or None)
    labels = list(options)

    with gr.Blocks(title="QUALS: is this summary supported by its source?", analytics_enabled=False) as demo:
        gr.Markdown("# QUALS: is this summary supported by its source?\n"
                    "A question-generation model writes question–answer pairs from each summary; QUALS compares "
                    "how likely each pair is given the **source** (LL_source) and given the **summary** "
                    "(LL_summary). A fact the source does not support gets a strongly negative difference.")
        ranked_state = gr.State([])
        with gr.Row():
            with gr.Column():
                source = gr.Textbox(label="Source document", lines=7, elem_id="source")
                summaries = gr.Textbox(label="Summaries (one per line)", lines=3, elem_id="summaries")
                with gr.Accordion("Options", open=False):
                    model = gr.Dropdown(labels, value=labels[0], label="QAGen preset", elem_id="preset")
                    max_pairs = gr.Slider(1, 30, value=10, step=1, label="QA pairs kept per summary (max_pairs)")
                    filter_mode = gr.Radio(["strict", "reference"], value="strict", label="Filter mode",
                                           info="strict: whole-word answers, hard cap; reference: the released "
                                                "code's substring check")
                button = gr.Button("Score", variant="primary", elem_id="score-button")
                gr.Examples(EXAMPLES, [source, summaries], example_labels=EXAMPLE_LABELS, label="Examples")
            with gr.Column():
                status = gr.Markdown("Scores appear here.", elem_id="status")
                highlights = gr.HTML("", label="Least supported spans", elem_id="highlights")
                summary_table = gr.Dataframe(headers=SUMMARY_COLUMNS, label="QUALS per summary",
                                             interactive=False, wrap=True, elem_id="summary-table")
        pair_table = gr.Dataframe(headers=PAIR_COLUMNS, label="Kept QA pairs, least supported first (click a row "
                                  "to plot it)", interactive=False, wrap=True, elem_id="pairs-table")
        pair_choice = gr.Dropdown([], label="QA pair to plot", type="value", elem_id="pair-choice")
        chart = gr.LinePlot(x="token", y="probability", color="given", sort="x", y_lim=[0, 1], height=320,
                            color_map={"source": "#1f77b4", "summary": "#ff7f0e"},
                            title="Probability of each token of the chosen QA pair, given the source vs. the summary",
                            x_label_angle=-45, x_title="token of the QA pair", y_title="probability",
                            elem_id="token-chart")
        button.click(functools.partial(run_scoring, options), [source, summaries, model, max_pairs, filter_mode],
                     [status, highlights, summary_table, pair_table, pair_choice, chart, ranked_state],
                     api_name="score")
        pair_table.select(selected_row, None, pair_choice, api_visibility="private")
        pair_choice.change(chart_update, [ranked_state, pair_choice], chart, api_visibility="private")
    return demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="QUALS demo")
    parser.add_argument("--model", help=f"local QAGen folder (default: ${MODEL_ENV}, else a bundled preset, else Hub)")
    parser.add_argument("--host", default=None, help="default: $GRADIO_SERVER_NAME or 127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: $GRADIO_SERVER_PORT or 7860")
    args = parser.parse_args(argv)
    theme = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    build_demo(args.model).launch(server_name=args.host, server_port=args.port, theme=theme)


if __name__ == "__main__":
    main()
