"""QA formats: rendering, parsing (one and several pairs per sequence), presets and saved formats."""

import pytest

from quals.engine.formats import PRESETS, QAFormat
from quals.engine.loading import load_qagen, resolve_format
from quals.engine.model_folders import format_from_folder, save_format
from quals.engine.presets import DEFAULT_PRESET, get_preset


def test_paper_format_round_trip_and_malformed_outputs():
    fmt = get_preset("paper")
    assert fmt.render(" Who fought? ", " Joshua ") == "Who fought? <sep> Joshua"
    assert fmt.parse("Who fought? <sep> Joshua") == [("Who fought?", "Joshua")]
    assert fmt.parse("Who fought? Joshua") == []  # no separator
    assert fmt.parse("a <sep> b <sep> c") == []  # more than one separator: dropped, as the reference does
    assert fmt.parse("Who? <sep> ") == [("Who?", "")]  # empty answers parse; the filter decides


def test_lmqg_multi_pair_parsing_follows_the_lmqg_parser():
    fmt = get_preset("lmqg-t5-base")
    text = ("question: Who will fight Klitschko?, answer: Anthony Joshua | question: Where?, answer: Wembley | "
            "garbage without answer | question: When?, answer: 29 April, answer: extra")
    assert fmt.parse(text) == [("Who will fight Klitschko?", "Anthony Joshua"), ("Where?", "Wembley")]
    assert fmt.render("Who?", "Joshua") == "question: Who?, answer: Joshua"
    assert fmt.input_text("Some text.") == "generate question and answer: Some text."
    assert fmt.multi_pair and fmt.terminator == "merged"


def test_presets_and_errors():
    assert get_preset("default") == PRESETS[DEFAULT_PRESET]
    assert {"paper", "lmqg-t5-small", "lmqg-t5-base", "lmqg-t5-large", "lmqg-bart-large",
            "mqag-t5-large"} <= set(PRESETS)
    assert get_preset("lmqg-bart-large").leading_label_tokens == "unscored"
    with pytest.raises(ValueError, match="^Unknown QUALS preset 'nope'. Valid presets: .*lmqg-t5-base"):
        get_preset("nope")
    with pytest.raises(ValueError, match="passage"):
        QAFormat(name="x", model="m", input_template="no placeholder")
    with pytest.raises(ValueError, match="pair_delimiter"):
        QAFormat(name="x", model="m", terminator="merged")


def test_a_saved_format_makes_the_folder_a_preset(tmp_path, random_models):
    fmt = QAFormat(name="custom", model="ignored", qa_separator=" <sep> ", max_source_tokens=77)
    save_format(fmt, tmp_path)
    loaded = format_from_folder(tmp_path)
    assert loaded == fmt.replace(model=str(tmp_path))
    assert format_from_folder(tmp_path / "missing") is None
    resolved = resolve_format(None, random_models["bart"])  # folder with a saved format, no preset named
    assert resolved.name == "random-tiny" and resolved.model == random_models["bart"]
    assert resolve_format("paper", random_models["bart"]).name == "paper"  # an explicit preset wins
    assert resolve_format("paper", None, qa_separator=" || ").qa_separator == " || "


def test_decode_pairs_keeps_a_special_token_separator(random_models):
    qagen = load_qagen(resolve_format(None, random_models["bart"]), "cpu")
    ids = qagen.target("who visited paris ?", "alice").ids
    text, pairs = qagen.decode_pairs(ids)
    assert "<sep>" in text and "</s>" not in text
    assert pairs == [("who visited paris ?", "alice")]


def test_unloadable_model_gives_a_clear_error():
    from quals.engine.loading import ModelLoadError

    with pytest.raises(ModelLoadError, match="Could not load the QAGen model '/no/such/folder'"):
        load_qagen(resolve_format("paper", "/no/such/folder"), "cpu")
