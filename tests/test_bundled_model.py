"""The QAGen model shipped inside the package (``quals/models/mini``), when there is one: offline, small, usable."""

from __future__ import annotations

import pytest
from safetensors import safe_open

from quals import QualsScorer
from quals.bundled import BUNDLED_DIR, bundled_presets


MINI = BUNDLED_DIR / "mini"
pytestmark = pytest.mark.skipif(
    not (MINI / "quals_format.json").is_file(),
    reason="no bundled QAGen model in quals/models/mini (docs/qagen.md explains why none ships yet)")


def test_bundled_mini_is_small_fp16_and_a_preset():
    assert "mini" in bundled_presets()
    weights = MINI / "model.safetensors"
    assert weights.stat().st_size <= 62 * 1024 * 1024
    with safe_open(weights, "pt") as f:
        assert {str(f.get_slice(name).get_dtype()) for name in f.keys()} == {"F16"}  # noqa: SIM118


@pytest.mark.slow
def test_bundled_mini_scores_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    scorer = QualsScorer(preset="mini", device="cpu", num_beam_groups=4, show_progress=False)
    result = scorer.score(["The council met in Leeds on Tuesday."],
                          ["The council met in Leeds on Tuesday to discuss the budget."], return_qa_pairs=True)[0]
    assert result.num_generated == 4
    assert result.quals is not None or result.error == "no QA pair survived filtering"
