"""The evaluate module: every offline spelling of evaluate.load, its doctests, and upstream conventions."""

import doctest
import inspect
import shutil
import sys
import uuid
from pathlib import Path

import evaluate
import pytest

from quals.hub import export_metric, metric_dir


REPO = Path(__file__).resolve().parent.parent
SOURCE = "alice visited paris on monday . the weather was warm ."


@pytest.fixture
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def metric_module(metric):
    return sys.modules[type(metric).__module__]


def test_load_from_checkout_honours_load_kwargs(in_repo, trained_qagen_path):
    metric = evaluate.load("metrics/quals", model=trained_qagen_path, device="cpu", dtype="float32")
    assert metric.name == "quals"
    assert metric.quals_config.model == trained_qagen_path and metric.quals_config.device == "cpu"
    out = metric.compute(predictions=["alice visited paris on monday .", "bob visited paris on monday ."],
                         sources=[SOURCE, SOURCE])
    assert set(out) == {"quals", "mean_quals", "num_scored", "num_unscored", "num_qa_pairs", "errors", "probability",
                        "consistent"}
    assert all(type(v) is float for v in out["quals"]) and type(out["mean_quals"]) is float
    assert out["quals"][0] > out["quals"][1]


def test_a_calibration_file_gives_probability_and_decision(in_repo, trained_qagen_path, tmp_path):
    import json
    import math

    (tmp_path / "cal.json").write_text(json.dumps({"slope": 2.0, "intercept": 1.0, "threshold": 0.5}))
    metric = evaluate.load("metrics/quals", model=trained_qagen_path, device="cpu",
                           calibration=str(tmp_path / "cal.json"))
    out = metric.compute(predictions=["alice visited paris on monday .", ""], sources=[SOURCE, SOURCE])
    expected = 1 / (1 + math.exp(-(2.0 * out["quals"][0] + 1.0)))
    assert out["probability"][0] == pytest.approx(expected) and out["consistent"][0] == (expected >= 0.5)
    assert out["probability"][1] is None and out["consistent"][1] is None  # nothing scored: no probability


def test_config_name_selects_a_preset_and_unknown_names_fail(in_repo):
    assert evaluate.load("metrics/quals", config_name="lmqg-t5-small").quals_config.preset == "lmqg-t5-small"
    with pytest.raises(ValueError, match="Unknown QUALS preset 'no-such-preset'. Valid presets"):
        evaluate.load("metrics/quals", config_name="no-such-preset")


def test_parity_flag_selects_the_released_code_settings(in_repo):
    config = evaluate.load("metrics/quals", model="unused", parity=True).quals_config
    assert (config.filter_mode, config.ll_summary, config.long_source, config.penalty_candidates) == (
        "reference", "search", "truncate", 2)
    assert (config.num_beam_groups, config.diversity_penalty, config.min_new_tokens, config.max_new_tokens) == (
        60, 0.5, 8, 60)


def test_return_qa_pairs_explains_each_summary(in_repo, trained_qagen_path):
    metric = evaluate.load("metrics/quals", model=trained_qagen_path, device="cpu")
    out = metric.compute(predictions=["bob visited paris on monday ."], sources=[SOURCE], return_qa_pairs=True,
                         filter_mode="reference", max_pairs=2)
    kept, rejected = out["qa_pairs"][0]["kept"], out["qa_pairs"][0]["rejected"]
    assert kept and {"question", "answer", "ll_source", "ll_summary", "quals", "source_logprobs"} <= set(kept[0])
    assert kept[0]["quals"] == min(p["quals"] for p in kept) and all(r["reason"] for r in rejected)


def test_doctests_in_the_kwargs_description_pass(in_repo, trained_qagen_path):
    metric = evaluate.load("metrics/quals", model=trained_qagen_path, device="cpu")
    module = metric_module(metric)
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(verbose=False)
    test = parser.get_doctest(module._KWARGS_DESCRIPTION, {"evaluate": evaluate}, "quals", None, 0)
    result = runner.run(test)
    assert result.attempted > 1 and result.failed == 0


def test_compute_has_no_var_kwargs(in_repo):
    metric = evaluate.load("metrics/quals")
    parameters = inspect.signature(metric._compute).parameters.values()
    assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in parameters)


def test_bare_name_loads_from_an_exported_folder(tmp_path, monkeypatch, trained_qagen_path):
    export_metric(tmp_path)
    assert {"quals.py", "requirements.txt"} <= {p.name for p in (tmp_path / "quals").iterdir()}
    monkeypatch.chdir(tmp_path)
    metric = evaluate.load("quals", model=trained_qagen_path, device="cpu")
    assert metric.compute(predictions=["alice visited paris ."], sources=[SOURCE])["num_scored"] == 1


def test_namespace_spelling_loads_offline_from_the_module_cache(tmp_path, monkeypatch, trained_qagen_path):
    """After one online ``evaluate.load("<org>/quals")`` the module sits in the cache; offline, it loads from there."""
    namespace = f"quals-test-{uuid.uuid4().hex[:8]}"
    cached = Path(evaluate.loading.init_dynamic_modules()) / "metrics" / f"{namespace}--quals"
    hashed = cached / ("0" * 64)  # what the Hub download would have written
    try:
        hashed.mkdir(parents=True)
        for folder in (cached, hashed):
            (folder / "__init__.py").touch()
        shutil.copy2(metric_dir() / "quals.py", hashed / "quals.py")
        monkeypatch.chdir(tmp_path)
        metric = evaluate.load(f"{namespace}/quals", model=trained_qagen_path, device="cpu")
        assert metric.compute(predictions=["alice visited paris ."], sources=[SOURCE])["num_scored"] == 1
    finally:
        shutil.rmtree(cached, ignore_errors=True)


def test_wrong_input_types_get_evaluate_s_clear_error(in_repo):
    metric = evaluate.load("metrics/quals")
    with pytest.raises(ValueError, match="Evaluation module inputs are missing"):
        metric.compute(predictions=["a"])
    with pytest.raises(ValueError, match="don't match the expected format"):
        metric.compute(predictions=[1], sources=["x"])
    with pytest.raises(ValueError, match="don't match the expected format"):  # as docs/evaluate_loading.md says
        metric.compute(predictions=[None, "a"], sources=["x", "x"])


def test_evidence_sentences_is_a_load_time_setting_and_equals_the_engine(in_repo, trained_qagen_path):
    from quals import QualsScorer

    summaries = ["alice visited paris on monday .", "bob visited paris on monday ."]
    long_source = "the weather was warm . crowds gathered in the square . " + SOURCE
    metric = evaluate.load("metrics/quals", model=trained_qagen_path, device="cpu", evidence_sentences=1)
    out = metric.compute(predictions=summaries, sources=[long_source] * 2, return_qa_pairs=True)
    engine = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False, evidence_sentences=1)
    assert out["quals"] == pytest.approx(engine.quals(summaries, [long_source] * 2), abs=1e-6)
    kept = [pair for summary in out["qa_pairs"] for pair in summary["kept"]]
    assert kept and all(pair["evidence"] in long_source for pair in kept)  # what each pair was checked against
    whole = evaluate.load("metrics/quals", model=trained_qagen_path, device="cpu")
    assert out["quals"] != pytest.approx(whole.compute(predictions=summaries, sources=[long_source] * 2)["quals"])


def test_sentence_pairs_is_a_load_time_setting_and_equals_the_engine(in_repo, trained_qagen_path):
    from quals import QualsScorer

    summaries = ["alice visited paris on monday . bob stayed in oslo .", "bob visited paris on monday ."]
    metric = evaluate.load("metrics/quals", model=trained_qagen_path, device="cpu", sentence_pairs=True)
    out = metric.compute(predictions=summaries, sources=[SOURCE] * 2, return_qa_pairs=True)
    engine = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False, sentence_pairs=True)
    assert out["quals"] == pytest.approx(engine.quals(summaries, [SOURCE] * 2), abs=1e-6)
    assert [sum(p["sentence_pair"] for p in summary["kept"]) for summary in out["qa_pairs"]] == [2, 1]


def test_sentence_prior_weight_is_a_load_time_setting_and_equals_the_engine(in_repo, trained_qagen_path):
    from quals import QualsScorer

    summaries = ["alice visited paris on monday . bob stayed in oslo .", "bob visited paris on monday ."]
    metric = evaluate.load("metrics/quals", model=trained_qagen_path, device="cpu", sentence_prior_weight=0.5)
    out = metric.compute(predictions=summaries, sources=[SOURCE] * 2, return_qa_pairs=True)
    engine = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False, sentence_prior_weight=0.5)
    assert out["quals"] == pytest.approx(engine.quals(summaries, [SOURCE] * 2), abs=1e-6)
    assert all((p["ll_prior"] is not None) == p["sentence_pair"] for s in out["qa_pairs"] for p in s["kept"])
    plain = evaluate.load("metrics/quals", model=trained_qagen_path, device="cpu")  # the folder's own: 0
    assert out["quals"] != pytest.approx(plain.compute(predictions=summaries, sources=[SOURCE] * 2)["quals"])
