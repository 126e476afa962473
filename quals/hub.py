"""Where the ``evaluate`` metric folder lives, and ``quals export-metric`` to copy it for other spellings.

The metric module has one source, ``metrics/quals/`` in the repository; wheels ship the same files as
``quals/hub_metric/``. Supported ways to load it (docs/evaluate_loading.md):

- ``evaluate.load("metrics/quals")`` from a checkout, or ``evaluate.load(quals.hub.metric_dir())`` anywhere;
- ``evaluate.load("quals")`` from a folder that holds ``quals/quals.py``: ``quals export-metric DIR`` writes it;
- ``evaluate.load("<namespace>/quals")`` from a published Space (then offline from evaluate's module cache).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from quals.outputs import OutputError, atomic_output, check_folder


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


def export_metric(destination: str | Path, overwrite: bool = False, force: bool = False) -> Path:
    """Copy the metric folder to ``destination/quals`` so ``evaluate.load("quals")`` works from ``destination``.

    An earlier export there is replaced only with ``overwrite``; a ``quals/`` folder holding other files is used
    only with ``force``, and none of its other files is replaced. Each file is written whole or not at all.
    """
    target = Path(destination) / "quals"
    if (target / "__init__.py").exists():
        raise OutputError(f"{target} is a Python package (the QUALS engine?), not a metric folder; "
                          "choose another destination")
    check_folder(target, list(METRIC_FILES), force, "quals.py", "QUALS metric folder")
    if (target / "quals.py").exists() and not overwrite:
        raise OutputError(f"{target} holds an exported QUALS metric already; pass --overwrite to replace it")
    target.mkdir(parents=True, exist_ok=True)
    for name in METRIC_FILES:
        if (metric_dir() / name).is_file():
            with atomic_output(target / name) as out:
                out.write((metric_dir() / name).read_text(encoding="utf-8"))
    return target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("destination", nargs="?", default=".", help="Folder to write quals/ into (default: .).")
    parser.add_argument("--overwrite", action="store_true", help="Replace an earlier export in DESTINATION/quals.")
    parser.add_argument("--force", action="store_true", help="Use a DESTINATION/quals folder that holds other files "
                        "(none of them is replaced).")


def run(args: argparse.Namespace) -> int:
    try:
        target = export_metric(args.destination, args.overwrite, args.force)
    except (OutputError, FileNotFoundError) as err:
        print(f"quals export-metric: error: {err}", file=sys.stderr)
        return 2
    print(f"Wrote {target}. From {target.parent}: python -c 'import evaluate; evaluate.load(\"quals\")'")
    return 0
