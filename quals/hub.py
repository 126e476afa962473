"""Where the ``evaluate`` metric folder lives, and ``quals export-metric`` to copy it for other spellings.

The metric module has one source, ``metrics/quals/`` in the repository; wheels ship the same files as
``quals/hub_metric/``. Supported ways to load it (docs/evaluate_loading.md):

- ``evaluate.load("metrics/quals")`` from a checkout, or ``evaluate.load(quals.hub.metric_dir())`` anywhere;
- ``evaluate.load("quals")`` from a folder that holds ``quals/quals.py``: ``quals export-metric DIR`` writes it;
- ``evaluate.load("<namespace>/quals")`` from a published Space (then offline from evaluate's module cache).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


METRIC_FILES = ("quals.py", "app.py", "requirements.txt", "README.md")


def metric_dir() -> Path:
    """The folder holding ``quals.py`` (the checkout's ``metrics/quals``, else the installed copy)."""
    checkout = Path(__file__).resolve().parent.parent / "metrics" / "quals"
    if (checkout / "quals.py").is_file():
        return checkout
    installed = Path(__file__).resolve().parent / "hub_metric"  # wheels map metrics/quals here (pyproject.toml)
    if (installed / "quals.py").is_file():
        return installed
    raise FileNotFoundError("The QUALS evaluate module is not installed with this copy of the package")


def export_metric(destination: str | Path) -> Path:
    """Copy the metric folder to ``destination/quals`` so ``evaluate.load("quals")`` works from ``destination``."""
    target = Path(destination) / "quals"
    if (target / "__init__.py").exists():
        raise FileExistsError(f"{target} is a Python package (the QUALS engine?), not a metric folder; "
                              "choose another destination")
    target.mkdir(parents=True, exist_ok=True)
    for name in METRIC_FILES:
        if (metric_dir() / name).is_file():
            shutil.copy2(metric_dir() / name, target / name)
    return target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("destination", nargs="?", default=".", help="Folder to write quals/ into (default: .).")


def run(args: argparse.Namespace) -> int:
    try:
        target = export_metric(args.destination)
    except (FileExistsError, FileNotFoundError) as err:
        print(f"quals export-metric: error: {err}")
        return 2
    print(f"Wrote {target}. From {target.parent}: python -c 'import evaluate; evaluate.load(\"quals\")'")
    return 0
