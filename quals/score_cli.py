"""``quals score``: score a file of summaries against their sources, streaming, with a summary table at the end.

    quals score --summaries sums.txt --sources docs.txt --out scores.jsonl
    quals score --input pairs.jsonl --summary-column summary --source-column document --out scores.jsonl
    quals score --input pairs.csv --out scores.jsonl --preset mini --explain      # keep the QA pairs

Exit status: 0 when every row was read; 1 when some rows could not be read (they are listed in
``<out>.errors.jsonl`` and the other rows are scored); 2 when the input as a whole is unusable.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import types
import typing
from dataclasses import fields
from itertools import islice
from pathlib import Path

from tqdm.auto import tqdm

from quals.config import QualsConfig
from quals.io import InputError, Row, count_rows, read_rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("input and output")
    data.add_argument("--input", help="JSONL or CSV file with a summary and a source column per row.")
    data.add_argument("--summaries", help="Text (one per line), JSONL or CSV file of summaries.")
    data.add_argument("--sources", help="Text (one per line), JSONL or CSV file of sources, parallel to --summaries.")
    data.add_argument("--summary-column", default="summary", help="Column/field of the summary (default: summary).")
    data.add_argument("--source-column", default="source", help="Column/field of the source (default: source).")
    data.add_argument("--out", required=True, help="Output JSONL, one row per input row in input order ('-': stdout).")
    data.add_argument("--explain", action="store_true", help="Write the kept and rejected QA pairs of each summary.")
    data.add_argument("--chunk-size", type=int, default=64, help="Rows scored per engine call (default: 64).")
    data.add_argument("--parity", action="store_true", help="Reproduce the released code (QualsConfig.paper_parity).")
    add_config_arguments(parser.add_argument_group("QUALS settings (see QualsConfig)"))


def add_config_arguments(group, config_cls=QualsConfig) -> None:
    """One ``--flag`` per config field, typed from the dataclass and documented by its help metadata."""
    hints = typing.get_type_hints(config_cls)
    for f in fields(config_cls):
        flag, kind = "--" + f.name.replace("_", "-"), hints[f.name]
        options = {"help": f.metadata.get("help", ""), "default": None, "dest": f.name}
        if typing.get_origin(kind) in (typing.Union, types.UnionType):  # "int | None" -> int
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        if typing.get_origin(kind) is typing.Literal:
            options["choices"] = typing.get_args(kind)
        elif kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = kind
        group.add_argument(flag, **options)


def config_from_args(args: argparse.Namespace, parity: bool = False) -> QualsConfig:
    given = {f.name: getattr(args, f.name) for f in fields(QualsConfig) if getattr(args, f.name, None) is not None}
    return QualsConfig.paper_parity(**given) if parity else QualsConfig(**given)


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args, args.parity)
        rows = read_rows(args.input, args.summaries, args.sources, args.summary_column, args.source_column)
        total = count_rows(args.input or args.summaries)
    except (InputError, ValueError, KeyError) as err:
        print(f"quals score: error: {err}", file=sys.stderr)
        return 2
    from quals.loading import ModelLoadError
    from quals.scorer import QualsScorer  # heavy import after argument checks

    scorer = QualsScorer(config, show_progress=False)
    try:
        scorer.load()  # now, so a missing model fails before any output is written
    except ModelLoadError as err:
        print(f"quals score: error: {err}", file=sys.stderr)
        return 2
    started, results, bad_rows = time.perf_counter(), [], []
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
    try:
        with tqdm(total=total, desc="QUALS", unit="summary", file=sys.stderr) as bar:
            while chunk := list(islice(rows, args.chunk_size)):
                for record in score_rows(scorer, chunk, args.explain):
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    results.append(record)
                bad_rows.extend({"index": r.index, "error": r.error} for r in chunk if r.error)
                out.flush()
                bar.update(len(chunk))
    finally:
        if out is not sys.stdout:
            out.close()
    if bad_rows and args.out != "-":
        write_error_report(Path(args.out), bad_rows)
    print(summary_table(results, time.perf_counter() - started), file=sys.stderr)
    return 1 if bad_rows else 0


def score_rows(scorer, rows: list[Row], explain: bool) -> list[dict]:
    """Score readable rows with one engine call; unreadable rows get ``quals: null`` and their error."""
    readable = [r for r in rows if r.error is None]
    scores = scorer.score([r.summary for r in readable], [r.source for r in readable], return_qa_pairs=explain)
    by_index = {r.index: s.to_dict() for r, s in zip(readable, scores, strict=True)}
    records = []
    for row in rows:
        record = by_index.get(row.index) or {"quals": None, "num_pairs": 0, "error": f"unreadable row: {row.error}"}
        record["index"] = row.index
        records.append({**row.extra, **record})
    return records


def write_error_report(out: Path, bad_rows: list[dict]) -> Path:
    path = out.with_name(out.name + ".errors.jsonl")
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in bad_rows), encoding="utf-8")
    print(f"quals score: {len(bad_rows)} row(s) could not be read; see {path}", file=sys.stderr)
    return path


def summary_table(records: list[dict], seconds: float) -> str:
    values = [r["quals"] for r in records if r.get("quals") is not None]
    reasons: dict[str, int] = {}
    for r in records:
        if r.get("quals") is None:
            reason = (r.get("error") or "unknown").split(":")[0]
            reasons[reason] = reasons.get(reason, 0) + 1
    lines = [f"{'summaries':<22}{len(records)}", f"{'scored':<22}{len(values)}",
             f"{'unscored':<22}{len(records) - len(values)}"]
    lines += [f"  {reason:<20}{count}" for reason, count in sorted(reasons.items())]
    if values:
        lines += [f"{'mean QUALS':<22}{statistics.fmean(values):.4f}",
                  f"{'std':<22}{statistics.pstdev(values):.4f}",
                  f"{'min / median / max':<22}{min(values):.4f} / {statistics.median(values):.4f} / {max(values):.4f}"]
    lines.append(f"{'time':<22}{seconds:.1f} s ({len(records) / max(seconds, 1e-9):.2f} summaries/s)")
    return "\n".join(["", "QUALS summary", "-" * 40, *lines])


