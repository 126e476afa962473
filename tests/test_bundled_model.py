"""The QAGen model shipped inside the package (``quals/models/mini``): offline, small, and it reads its input."""

from __future__ import annotations

import pytest
from safetensors import safe_open

from quals import QualsScorer
from quals.engine.filtering import normalize
from quals.engine.model_folders import BUNDLED_DIR, bundled_presets


MINI = BUNDLED_DIR / "mini"
pytestmark = pytest.mark.skipif(not (MINI / "quals_format.json").is_file(),
                                reason="no bundled QAGen model in quals/models/mini (docs/qagen.md)")

SOURCE = ("The council met in Leeds on Tuesday to discuss the budget. Mayor Jane Brown said 42 new buses would be "
          "bought next year, and the old depot in Bradford would close in March.")
FAITHFUL = "Mayor Jane Brown said 42 new buses would be bought next year."
SWAPPED = "Mayor Jane Brown said 42 new trains would be bought next year."


@pytest.fixture(scope="module")
def mini():
    return QualsScorer(preset="mini", device="cpu", show_progress=False)


def test_bundled_mini_is_small_fp16_and_a_preset():
    assert "mini" in bundled_presets()
    weights = MINI / "model.safetensors"
    assert weights.stat().st_size <= 62 * 1024 * 1024
    with safe_open(weights, "pt") as f:
        assert {str(f.get_slice(name).get_dtype()) for name in f.keys()} == {"F16"}  # noqa: SIM118


def test_bundled_mini_loads_without_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    scorer = QualsScorer(preset="mini", device="cpu", num_beam_groups=4, show_progress=False)
    assert scorer.score([FAITHFUL], [SOURCE])[0].num_generated == 4


def test_bundled_mini_asks_about_its_input(mini):
    result = mini.score([FAITHFUL], [SOURCE], return_qa_pairs=True)[0]
    assert result.num_pairs >= 3
    summary_words = set(normalize(FAITHFUL).split()) - {"the", "a", "would", "be", "said"}
    asking = [p for p in result.pairs if set(normalize(p.question).split()) & summary_words]
    assert len(asking) >= len(result.pairs) // 2  # questions mention the summary's content


def test_bundled_mini_scores_a_swapped_fact_lower(mini):
    faithful, swapped = mini.score([FAITHFUL, SWAPPED], [SOURCE, SOURCE], return_qa_pairs=True)
    assert faithful.quals > swapped.quals
    least_supported = swapped.pairs[0]  # pairs are sorted least supported first
    assert "trains" in normalize(least_supported.question + " " + least_supported.answer).split()


def test_evaluate_loads_the_bundled_preset_by_config_name(monkeypatch):
    import evaluate

    monkeypatch.chdir(BUNDLED_DIR.parent.parent)  # the checkout's root, where metrics/quals lives
    metric = evaluate.load("metrics/quals", config_name="mini", device="cpu")
    out = metric.compute(predictions=[FAITHFUL, SWAPPED], sources=[SOURCE, SOURCE])
    assert out["num_scored"] == 2 and out["quals"][0] > out["quals"][1]
