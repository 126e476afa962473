"""The ``quals`` command line: one subcommand per module, each with ``add_arguments(parser)`` and ``run(args)``.

    quals score --sources docs.txt --summaries sums.txt --out scores.jsonl
    quals train-qagen --help

Subcommand modules are imported only when used, so ``quals --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys


SUBCOMMANDS = {
    "score": ("quals.corpus.score", "Score summaries against their sources with QUALS."),
    "train-qagen": ("quals.recipe.train", "Fine-tune a QAGen model on SQuAD-format data."),
    "export-metric": ("quals.hub", "Write the evaluate metric folder (for evaluate.load('quals') or a Space)."),
    "merge": ("quals.corpus.sharding", "Merge the part files of a sharded 'quals score --out DIR/' run."),
    "calibrate": ("quals.corpus.calibrate", "Fit the map from QUALS to P(consistent) on labelled data."),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="quals", description="QUALS factual-consistency metric and tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv:  # no command: the usage, and the exit status of a usage error
        parser.print_help(sys.stderr)
        return 2
    if argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        parser.parse_args(argv)  # --help exits 0; an unknown command exits 2 with argparse's message
        return 2
    module_name, help_text = SUBCOMMANDS[argv[0]]
    module = importlib.import_module(module_name)
    command = argparse.ArgumentParser(prog=f"quals {argv[0]}", description=help_text,
                                      epilog=getattr(module, "EPILOG", None),
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(command)
    return int(module.run(command.parse_args(argv[1:])) or 0)


if __name__ == "__main__":
    sys.exit(main())
