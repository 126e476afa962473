"""``quals score``: score a file of summaries against their sources, streaming, with a summary table at the end.

    quals score --summaries sums.txt --sources docs.txt --out scores.jsonl
    quals score --input pairs.jsonl --summary-column summary --source-column document --out scores.jsonl
    quals score --input pairs.csv --out scores.jsonl --preset mini --explain      # keep the QA pairs

    quals score --input train.jsonl --out scores/                         # resumable run in a directory
    torchrun --nproc_per_node 8 -m quals score --input train.jsonl --out scores/
    accelerate launch -m quals score --input train.jsonl --out scores/

With a directory ``--out`` (an existing directory, or a path ending in ``/``; required with several processes)
each process scores its share of blocks, writes as it goes, and the last one to finish merges everything into
``scores/scores.jsonl``. Starting the same command again continues where it stopped (``quals.corpus.sharding``).

Exit status: 0 when every row was read; 1 when some rows could not be read (they are listed in the error
report, ``<out>.errors.jsonl`` or ``<out>/errors.jsonl``, and the other rows are scored); 2 when the input as a
whole is unusable or the output directory holds a run of other settings. Under a launcher with several
processes every rank exits 0 on success (a non-zero rank would make the launcher stop the others).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from tqdm.auto import tqdm

from quals.corpus.distributed import MainBroadcast, ProcessInfo, current_process, device_for
from quals.corpus.io import UNREADABLE, InputError, Row, count_rows, read_rows
from quals.corpus.sharding import Plan, RunDirectory, RunMismatchError, file_identity, model_identity
from quals.engine.config import QualsConfig
from quals.engine.results import CorpusSummary
from quals.flags import add_dataclass_arguments, dataclass_kwargs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("input and output")
    data.add_argument("--input", help="JSONL or CSV file with a summary and a source column per row.")
    data.add_argument("--summaries", help="Text (one per line), JSONL or CSV file of summaries.")
    data.add_argument("--sources", help="Text (one per line), JSONL or CSV file of sources, parallel to --summaries.")
    data.add_argument("--summary-column", default="summary", help="Column/field of the summary (default: summary).")
    data.add_argument("--source-column", default="source", help="Column/field of the source (default: source).")
    data.add_argument("--out", required=True, help="Output JSONL, one row per input row in input order ('-': stdout); "
                                                   "or a directory (ends with '/'): a resumable, shardable run.")
    data.add_argument("--explain", action="store_true", help="Write the kept and rejected QA pairs of each summary.")
    batching = parser.add_argument_group("batching and sharding")
    batching.add_argument("--block-size", type=int, default=1024, help="Rows read, grouped by source and written "
                          "together; the unit of sharding and of resuming (default: 1024).")
    batching.add_argument("--chunk-size", type=int, default=64, help="Rows scored per engine call (default: 64).")
    batching.add_argument("--source-cache-size", type=int, default=256, help="Encoded sources kept between engine "
                          "calls (default: 256).")
    batching.add_argument("--parity", action="store_true",
                          help="Reproduce the released code (QualsConfig.paper_parity).")
    add_dataclass_arguments(parser.add_argument_group("QUALS settings (see QualsConfig)"), QualsConfig)


def config_from_args(args: argparse.Namespace, parity: bool = False) -> QualsConfig:
    given = dataclass_kwargs(QualsConfig, args)
    return QualsConfig.paper_parity(**given) if parity else QualsConfig(**given)


def run(args: argparse.Namespace) -> int:
    process = current_process()
    sharded = args.out.endswith(("/", os.sep)) or Path(args.out).is_dir()
    try:
        if process.world_size > 1 and not sharded:
            raise InputError("several processes need a directory --out (e.g. --out scores/), not a file")
        if args.block_size < 1 or args.chunk_size < 1:
            raise InputError("--block-size and --chunk-size must be positive")
        config = config_from_args(args, args.parity)
        config.device = device_for(config.device, process)
        rows = read_rows(args.input, args.summaries, args.sources, args.summary_column, args.source_column)
    except (InputError, ValueError, KeyError) as err:
        print(f"quals score: error: {err}", file=sys.stderr)
        return 2
    from quals.engine.scorer import QualsScorer  # heavy import after argument checks

    try:
        scorer = QualsScorer(config, show_progress=False, source_cache_size=args.source_cache_size)
    except (ValueError, KeyError) as err:  # an unknown preset, or settings the format cannot honour
        print(f"quals score: error: {err}", file=sys.stderr)
        return 2
    return _run_sharded(args, scorer, rows, process) if sharded else _run_single_file(args, scorer, rows)


def _load(scorer) -> bool:
    from quals.engine.loading import ModelLoadError

    try:
        scorer.load()  # now, so a missing model fails before any output is written
    except ModelLoadError as err:
        print(f"quals score: error: {err}", file=sys.stderr)
        return False
    return True


def _run_single_file(args: argparse.Namespace, scorer, rows: Iterator[Row]) -> int:
    if not _load(scorer):
        return 2
    started, tally, bad_rows = time.perf_counter(), CorpusSummary(), []
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
    try:
        with tqdm(total=count_rows(args.input or args.summaries), desc="QUALS", unit="summary",
                  file=sys.stderr) as bar:
            while block := list(islice(rows, args.block_size)):
                for record in score_block(scorer, block, args.explain, args.chunk_size, bar.update):
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    tally.add(record)
                bad_rows.extend({"index": r.index, "error": r.error} for r in block if r.error)
                out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    if bad_rows and args.out != "-":
        write_error_report(Path(args.out), bad_rows)
    print(f"quals score: {_reuse(scorer)}", file=sys.stderr)
    print(tally.table(time.perf_counter() - started), file=sys.stderr)
    return 1 if bad_rows else 0


def _run_sharded(args: argparse.Namespace, scorer, rows: Iterator[Row], process: ProcessInfo) -> int:
    directory = RunDirectory(args.out)
    plan: Plan | str | None = None
    if process.is_main:  # rank 0 checks the directory and plans; every rank acts on its broadcast decision
        try:
            plan = directory.begin_attempt(run_identity(args, scorer), count_rows(args.input or args.summaries),
                                           args.block_size, process.world_size)
        except (RunMismatchError, InputError, OSError) as err:
            plan = str(err)
    with MainBroadcast(process) as channel:  # leaves the process group (if it started one) at the end
        plan = channel.send(plan)
        if isinstance(plan, str):
            print(f"quals score: error: {plan}", file=sys.stderr)
            return 2
        if not _load(scorer):
            return 2
        blocks = plan.blocks_for(process.rank, process.world_size)
        print(f"quals score: rank {process.rank}/{process.world_size}, attempt {plan.attempt}: {len(blocks)} "
              f"block(s), {plan.rows_in(blocks)} row(s) to score; {plan.done_rows} of {plan.num_rows} rows already "
              "done", file=sys.stderr)
        started = time.perf_counter()
        with open(directory.part_path(plan.attempt, process.rank), "w", encoding="utf-8") as out, \
                tqdm(total=plan.rows_in(blocks), desc=f"QUALS rank {process.rank}", unit="summary", file=sys.stderr,
                     disable=not process.is_main) as bar:
            for block in _blocks(rows, plan.block_size, blocks):
                records = score_block(scorer, block, args.explain, args.chunk_size, bar.update)
                out.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))  # one write per block
                out.flush()
                os.fsync(out.fileno())
    seconds = time.perf_counter() - started
    print(f"quals score: rank {process.rank} scored {plan.rows_in(blocks)} row(s) in {seconds:.1f} s; "
          f"{_reuse(scorer)}", file=sys.stderr)
    if not directory.is_complete():  # another rank is still scoring: the last one to finish merges
        return 0
    tally = CorpusSummary()
    unreadable = directory.merge(tally.add)
    print(f"quals score: merged {plan.num_rows} rows into {directory.merged_path}", file=sys.stderr)
    if unreadable:
        print(f"quals score: {unreadable} row(s) could not be read; see {directory.errors_path}", file=sys.stderr)
    print(tally.table(), file=sys.stderr)
    return 1 if unreadable and process.world_size == 1 else 0


def _reuse(scorer) -> str:
    return (f"{scorer.source_encodings} source(s) encoded, {scorer.source_cache_hits} found in the source cache "
            "(sources shared within one engine call are encoded once and not counted as cache hits)")


def run_identity(args: argparse.Namespace, scorer) -> dict:
    """Everything that decides the records of a run; a restart must match it (``RunDirectory.begin_attempt``)."""
    files = {"input": args.input} if args.input else {"summaries": args.summaries, "sources": args.sources}
    return {"config": scorer.config.fingerprint(), "model": model_identity(scorer.format),
            "inputs": {name: file_identity(path) for name, path in files.items()},
            "columns": [args.summary_column, args.source_column], "explain": args.explain}


def _blocks(rows: Iterator[Row], block_size: int, wanted: list[int]) -> Iterator[list[Row]]:
    """The rows of the ``wanted`` blocks (sorted block numbers), streaming; stops after the last one."""
    wanted_set, last = set(wanted), max(wanted, default=-1)
    for number in range(last + 1):
        block = list(islice(rows, block_size))
        if number in wanted_set:
            yield block


# ---------------------------------------------------------------------- scoring one block
def score_block(scorer, rows: list[Row], explain: bool, chunk_size: int, progress=lambda n: None) -> list[dict]:
    """One record per row, in the rows' order. Rows sharing a source are scored side by side.

    Unreadable rows and invalid texts get ``quals: null`` and an error naming the row; an engine failure on a
    chunk is retried row by row, so one bad row never costs the others their results.
    """
    from quals.engine.results import SummaryScore
    from quals.engine.scorer import _input_error

    records: dict[int, dict] = {}
    scorable = []
    for row in rows:
        error = (UNREADABLE + row.error if row.error else
                 _input_error(row.summary, "summary", row.index) or _input_error(row.source, "source", row.index))
        if error:
            records[row.index] = {**row.extra, **SummaryScore(row.index, None, error=error).to_dict()}
        else:
            scorable.append(row)
    progress(len(rows) - len(scorable))
    first_seen: dict[str, int] = {}
    for row in scorable:
        first_seen.setdefault(row.source, len(first_seen))
    scorable.sort(key=lambda row: first_seen[row.source])  # stable: the K candidates of a document together
    for start in range(0, len(scorable), chunk_size):
        chunk = scorable[start: start + chunk_size]
        for row, score in zip(chunk, _score_isolated(scorer, chunk, explain), strict=True):
            records[row.index] = {**row.extra, **score.to_dict(), "index": row.index}
        progress(len(chunk))
    return [records[row.index] for row in rows]


def _score_isolated(scorer, rows: list[Row], explain: bool) -> list:
    """Scores of ``rows`` in one engine call; if the call fails, row by row, a failing row getting its error."""
    from quals.engine.results import SummaryScore

    try:
        return scorer.score([r.summary for r in rows], [r.source for r in rows], return_qa_pairs=explain)
    except Exception as err:  # noqa: BLE001 - any engine failure must stay confined to the rows that cause it
        if len(rows) == 1:
            return [SummaryScore(rows[0].index, None, error=f"scoring failed: {type(err).__name__}: {err}")]
        return [score for row in rows for score in _score_isolated(scorer, [row], explain)]


def write_error_report(out: Path, bad_rows: list[dict]) -> Path:
    path = out.with_name(out.name + ".errors.jsonl")
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in bad_rows), encoding="utf-8")
    print(f"quals score: {len(bad_rows)} row(s) could not be read; see {path}", file=sys.stderr)
    return path
