"""The metric card (hub_card.md) is the one source of the Space's README, and its header and examples work."""

import os
import re
import runpy
from pathlib import Path

import pytest

from quals import card


ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ["# Metric Card for QUALS", "## Metric Description", "## How to Use", "### Inputs", "### Output Values",
            "### Presets and what they cost", "### Values from Popular Papers", "## Examples",
            "## Limitations and Bias", "## Citation", "## Further References", "## Publishing or updating the Space"]


def test_published_readme_is_generated_from_the_card():
    card_text = (ROOT / "hub_card.md").read_text(encoding="utf-8")
    readme = (ROOT / "metrics" / "quals" / "README.md").read_text(encoding="utf-8")
    assert readme == card.render_readme(card_text), "run `python -m quals.card` after editing hub_card.md"
    assert card.sync_card(check=True)


def test_card_header_is_a_gradio_space_for_an_evaluate_metric():
    header, body = card.split_front_matter((ROOT / "hub_card.md").read_text(encoding="utf-8"))
    for key in ["title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "app_file", "pinned", "tags",
                "description"]:
        assert key in header, key
    assert header["sdk"] == "gradio"
    assert isinstance(header["sdk_version"], str) and re.fullmatch(r"\d+\.\d+\.\d+", header["sdk_version"])
    assert int(header["sdk_version"].split(".")[0]) >= 5  # app.py uses the Gradio 5+ API (gr.Blocks, native plots)
    assert (ROOT / "metrics" / "quals" / header["app_file"]).is_file()
    assert {"evaluate", "metric"} <= set(header["tags"])
    assert header["pinned"] is False and len(header["description"]) > 50
    positions = [body.find(section + "\n") for section in SECTIONS]
    assert -1 not in positions, [s for s, p in zip(SECTIONS, positions, strict=True) if p < 0]
    assert positions == sorted(positions)
    assert "nan-etal-2021-improving" in body and "wang-etal-2020-asking" in body  # QUALS and QAGS citations


def test_sync_rewrites_a_stale_readme_and_check_reports_it(tmp_path):
    source, readme = tmp_path / "card.md", tmp_path / "README.md"
    source.write_text("---\ntitle: X\nsdk: gradio\n---\n# Card\n", encoding="utf-8")
    readme.write_text("old\n", encoding="utf-8")
    assert not card.sync_card(source, readme, check=True)
    assert readme.read_text(encoding="utf-8") == "old\n"  # --check never writes
    assert not card.sync_card(source, readme)
    assert readme.read_text(encoding="utf-8") == f"---\ntitle: X\nsdk: gradio\n---\n{card.GENERATED_NOTE}# Card\n"
    assert card.sync_card(source, readme, check=True)


@pytest.mark.parametrize("text", ["# no header\n", "---\ntitle: X\n", "---\n- a list\n---\n"])
def test_a_card_without_a_valid_header_is_refused(text):
    with pytest.raises((ValueError, TypeError)):
        card.render_readme(text)


@pytest.mark.slow
def test_card_examples_run(monkeypatch, tmp_path, trained_qagen_path):
    """Every Python block of the card's Examples section runs and its assertions hold (tiny offline model)."""
    text = (ROOT / "hub_card.md").read_text(encoding="utf-8")
    examples = text[text.index("## Examples\n"):text.index("## Limitations and Bias\n")]
    blocks = re.findall(r"```python\n(.*?)```", examples, flags=re.DOTALL)
    assert len(blocks) >= 3
    monkeypatch.chdir(ROOT)  # the examples load the metric as evaluate.load("metrics/quals")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", os.environ.get("HF_EVALUATE_OFFLINE", "1"))
    for i, block in enumerate(blocks):
        script = tmp_path / f"hub_card_example_{i + 1}.py"
        script.write_text(block, encoding="utf-8")
        runpy.run_path(str(script), run_name="__main__")
