"""``quals calibrate``: fit the map from QUALS to P(consistent), and its decision threshold, on your labelled data.

    quals calibrate --input labelled.jsonl --source-column document --preset smollm2-qagen --out calibration.json
    quals calibrate --input labelled.jsonl --scores scores.jsonl --out calibration.json   # reuse a scoring run
    quals score --input new.jsonl --calibration calibration.json --out scored.jsonl   # probability + decision

The input is a JSONL or CSV file with a summary, a source and a ``label`` column (1/true: consistent, 0/false:
not), as ``quals score`` reads it. Rows are scored with the given settings (or their QUALS is read from an earlier
``quals score`` output of the same file, ``--scores``), rows without a score are left out, and a logistic curve
with the threshold of best balanced accuracy is fitted (``quals.engine.calibration.Calibration.fit``). The JSON
written holds the curve, the threshold, and what it was fitted on; the settings used to score must be the ones
you calibrate for (the file records them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from quals.corpus.io import InputError, read_rows
from quals.engine import QualsConfig, QualsScorer
from quals.engine.calibration import Calibration, balanced_accuracy
from quals.flags import add_dataclass_arguments, dataclass_kwargs
from quals.outputs import OutputError, atomic_output, check_not_an_input, check_single_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="JSONL or CSV with summary, source and label columns.")
    parser.add_argument("--summary-column", default="summary")
    parser.add_argument("--source-column", default="source")
    parser.add_argument("--label-column", default="label", help="1/true: consistent; 0/false: not (default: label).")
    parser.add_argument("--scores", default=None, help="Output of 'quals score' on --input: read QUALS from it "
                                                      "instead of scoring again.")
    parser.add_argument("--out", required=True, help="Calibration JSON to write.")
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing --out file.")
    add_dataclass_arguments(parser.add_argument_group("QUALS settings (see QualsConfig)"), QualsConfig,
                            exclude=("calibration",))


def run(args: argparse.Namespace) -> int:
    try:
        check_not_an_input(args.out, [args.input, args.scores])
        check_single_file(args.out, args.overwrite)
        labels = read_labels(args.input, args.label_column)
        rows = list(read_rows(args.input, summary_column=args.summary_column, source_column=args.source_column))
        config = QualsConfig(**dataclass_kwargs(QualsConfig, args))
        values = read_scores(args.scores, len(rows)) if args.scores else QualsScorer(config).quals(
            [r.summary for r in rows], [r.source for r in rows])
        calibration, report = fit(values, labels)
    except (InputError, OutputError, ValueError) as err:
        print(f"quals calibrate: error: {err}", file=sys.stderr)
        return 2
    report.update({"input": str(args.input), "scores": args.scores, "settings": config.fingerprint()})
    with atomic_output(args.out) as out:
        out.write(json.dumps({**calibration.to_dict(), "fitted_on": report}, indent=2) + "\n")
    print(f"quals calibrate: P(consistent) = 1 / (1 + exp(-({calibration.slope:.3f} * QUALS + "
          f"{calibration.intercept:.3f}))), threshold {calibration.threshold:.3f}; balanced accuracy "
          f"{report['balanced_accuracy']:.3f} on {report['rows']} rows. Wrote {args.out}", file=sys.stderr)
    return 0


def fit(values: list[float | None], labels: list[int]) -> tuple[Calibration, dict]:
    """The calibration of the scored rows, and what it was fitted on."""
    if len(values) != len(labels):
        raise InputError(f"{len(values)} scores for {len(labels)} labelled rows")
    pairs = [(v, y) for v, y in zip(values, labels, strict=True) if v is not None]
    calibration = Calibration.fit([v for v, _ in pairs], [y for _, y in pairs])
    decided = [calibration.decide(v) for v, _ in pairs]
    return calibration, {"rows": len(pairs), "unscored": len(values) - len(pairs),
                         "positives": sum(y for _, y in pairs),
                         "balanced_accuracy": balanced_accuracy(decided, [y for _, y in pairs])}


def read_labels(path: str, column: str) -> list[int]:
    """The label of each row (JSONL or CSV), 1 for true/1/yes/consistent, 0 for false/0/no."""
    import csv

    if Path(path).suffix.lower() in (".csv", ".tsv"):
        with open(path, encoding="utf-8-sig", newline="") as handle:
            raw = [row.get(column) for row in csv.DictReader(handle, delimiter="\t" if path.endswith(".tsv") else ",")]
    else:
        raw = [json.loads(line).get(column) for line in Path(path).read_text(encoding="utf-8").splitlines()
               if line.strip()]
    labels = []
    for number, value in enumerate(raw, start=1):
        text = str(value).strip().lower()
        if text not in ("1", "true", "yes", "consistent", "0", "false", "no", "inconsistent"):
            raise InputError(f"row {number} of {path}: {column} is {value!r}; use 1/true (consistent) or 0/false")
        labels.append(int(text in ("1", "true", "yes", "consistent")))
    return labels


def read_scores(path: str, rows: int) -> list[float | None]:
    records = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(records) != rows:
        raise InputError(f"{path} holds {len(records)} records for {rows} rows; score the same --input file")
    return [record.get("quals") for record in records]
