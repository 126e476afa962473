"""Presets for QAGen models shipped inside the package (``quals/models/<name>/``) or saved by our recipe.

A model folder written by ``quals train-qagen`` holds ``quals_format.json`` next to its weights, so a
path is enough to load it with the right format: ``QualsScorer(model="./my-qagen")``.
"""

from __future__ import annotations

import json
from pathlib import Path

from quals.engine.formats import QAFormat


FORMAT_FILE = "quals_format.json"
BUNDLED_DIR = Path(__file__).resolve().parents[1] / "models"  # quals/models


def format_from_folder(path: str | Path) -> QAFormat | None:
    """The format saved in a model folder, or ``None`` when the folder has none.

    A folder of full weights becomes the format's ``model``; a LoRA adapter folder (``adapter_config.json``)
    becomes its ``adapter``, on top of the base weights the saved format names.
    """
    file = Path(path) / FORMAT_FILE
    if not file.is_file():
        return None
    fields = json.loads(file.read_text())
    fields["adapter" if is_adapter_folder(path) else "model"] = str(Path(path))
    return QAFormat(**fields)


def save_format(fmt: QAFormat, path: str | Path) -> None:
    """Write ``fmt`` next to a saved model (or adapter) so the folder loads as a preset."""
    from dataclasses import asdict

    fields = asdict(fmt)
    fields.pop("adapter")
    if not is_adapter_folder(path):
        fields.pop("model")
    (Path(path) / FORMAT_FILE).write_text(json.dumps(fields, indent=2) + "\n")


def is_adapter_folder(path: str | Path) -> bool:
    """True for a folder holding a peft adapter (its base model is loaded separately)."""
    return (Path(path) / "adapter_config.json").is_file()


def save_qagen(model, tokenizer, path: str | Path, fmt: QAFormat) -> Path:
    """Save model, tokenizer and format so ``QualsScorer(model=path)`` loads it with no preset."""
    path = Path(path)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    save_format(fmt.replace(model=str(path)), path)
    return path


def bundled_presets() -> dict[str, QAFormat]:
    """Presets for the model folders bundled with the package (e.g. ``mini``)."""
    if not BUNDLED_DIR.is_dir():
        return {}
    presets = {}
    for folder in sorted(p for p in BUNDLED_DIR.iterdir() if p.is_dir()):
        fmt = format_from_folder(folder)
        if fmt is not None:
            presets[fmt.name] = fmt
    return presets
