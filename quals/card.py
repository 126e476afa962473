"""The metric card has one source, ``hub_card.md`` at the repository root; the Space's ``metrics/quals/README.md``
is generated from it (the same text plus a "generated" note after the YAML header).

    python -m quals.card          # rewrite metrics/quals/README.md from hub_card.md
    python -m quals.card --check  # exit 1 if metrics/quals/README.md is out of date (for CI)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


ROOT = Path(__file__).resolve().parent.parent
CARD = ROOT / "hub_card.md"
README = ROOT / "metrics" / "quals" / "README.md"
GENERATED_NOTE = ("<!-- Generated from hub_card.md by `python -m quals.card`: edit hub_card.md, then rerun it. "
                  "-->\n")


def split_front_matter(text: str) -> tuple[dict, str]:
    """The YAML header (between the leading ``---`` lines) as a dict, and the Markdown body after it."""
    if not text.startswith("---\n"):
        raise ValueError("A metric card must start with a YAML header between two '---' lines")
    end = text.find("\n---\n", 4)
    if end < 0:
        raise ValueError("The metric card's YAML header is not closed by a '---' line")
    header = yaml.safe_load(text[4:end])
    if not isinstance(header, dict):
        raise TypeError("The metric card's YAML header must be a mapping of keys to values")
    return header, text[end + len("\n---\n"):]


def render_readme(card_text: str) -> str:
    """The Space README for a card: the card itself with the generated note after the header (the Hub reads the
    header only at the very top of the file)."""
    split_front_matter(card_text)  # refuse to publish a card whose header does not parse
    end = card_text.find("\n---\n", 4) + len("\n---\n")
    return card_text[:end] + GENERATED_NOTE + card_text[end:]


def sync_card(card: Path = CARD, readme: Path = README, check: bool = False) -> bool:
    """Write ``readme`` from ``card`` (or, with ``check``, only compare). Returns whether it was already current."""
    expected = render_readme(card.read_text(encoding="utf-8"))
    current = readme.read_text(encoding="utf-8") if readme.is_file() else None
    if current != expected and not check:
        readme.write_text(expected, encoding="utf-8")
    return current == expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quals.card", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the README is up to date")
    args = parser.parse_args(argv)
    current = sync_card(check=args.check)
    if args.check and not current:
        print(f"{README.relative_to(ROOT)} is out of date: run `python -m quals.card`", file=sys.stderr)
        return 1
    print(f"{README.relative_to(ROOT)} is up to date" if current else f"Wrote {README.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
