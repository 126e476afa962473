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
from contextlib import nullcontext
from itertools import islice
from pathlib import Path

from tqdm.auto import tqdm

from quals.corpus.blocks import score_block
from quals.corpus.distributed import MainBroadcast, ProcessInfo, current_process, device_for
from quals.corpus.io import InputError, Row, count_rows, read_rows
from quals.corpus.sharding import Plan, RunDirectory, RunMismatchError, file_identity, model_identity
from quals.engine import CorpusSummary, QualsConfig, all_presets
from quals.flags import add_dataclass_arguments, dataclass_kwargs
from quals.outputs import OutputError, atomic_output, check_folder, check_not_an_input, check_single_file


EPILOG = """exit status:
  0  every row was read and scored (or got its own error record)
  1  some rows could not be read: listed in OUT.errors.jsonl (or OUT/errors.jsonl); the others were scored
  2  nothing was scored: unusable input (missing file or column, mismatched counts), a model that cannot load, or
     an output that would replace or mix with existing files (see --overwrite and --force)
"""

RUN_FILES = ["run.json", "parts", "scores.jsonl", "errors.jsonl"]  # what a run directory holds
ERRORS_SUFFIX = ".errors.jsonl"  # the error report beside a single-file output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("input and output")
    data.add_argument("--input", help="JSONL or CSV file with a summary and a source column per row.")
    data.add_argument("--summaries", help="Text (one per line), JSONL or CSV file of summaries.")
    data.add_argument("--sources", help="Text (one per line), JSONL or CSV file of sources, parallel to --summaries.")
    data.add_argument("--summary-column", default="summary", help="Column/field of the summary (default: summary).")
    data.add_argument("--source-column", default="source", help="Column/field of the source (default: source).")
    data.add_argument("--out", required=True, help="Output JSONL, one row per input row in input order ('-': stdout); "
                                                   "or a directory (ends with '/'): a resumable, shardable run.")
    data.add_argument("--overwrite", action="store_true", help="Replace an existing --out file (and its "
                      ".errors.jsonl); the old file stays intact until the new one is complete.")
    data.add_argument("--force", action="store_true", help="Use a non-empty --out directory that is not a QUALS run; "
                      "no file already there is replaced or deleted.")
    data.add_argument("--explain", action="store_true", help="Write the kept and rejected QA pairs of each summary.")
    batching = parser.add_argument_group("batching and sharding")
    batching.add_argument("--block-size", type=int, default=1024, help="Rows read and grouped by source together; "
                          "the unit of sharding (default: 1024). Records are written as soon as they are final.")
    batching.add_argument("--chunk-size", type=int, default=64, help="Rows scored per engine call (default: 64).")
    batching.add_argument("--source-cache-size", type=int, default=256, help="Encoded sources kept between engine "
                          "calls (default: 256).")
    batching.add_argument("--parity", action="store_true",
                          help="Reproduce the released code (QualsConfig.paper_parity).")
    presets = ", ".join(sorted(all_presets()))
    add_dataclass_arguments(parser.add_argument_group("QUALS settings (see QualsConfig)"), QualsConfig,
                            extra_help={"preset": f"One of: {presets}."})


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
        if args.out != "-":  # before anything is loaded or written
            check_not_an_input(args.out, [args.input, args.summaries, args.sources])
            if sharded:
                check_folder(args.out, RUN_FILES, args.force, "run.json", "QUALS run directory")
            else:
                check_single_file(args.out, args.overwrite, (ERRORS_SUFFIX,))
        rows = read_rows(args.input, args.summaries, args.sources, args.summary_column, args.source_column)
    except (InputError, OutputError, ValueError) as err:
        print(f"quals score: error: {err}", file=sys.stderr)
        return 2
    from quals.engine import QualsScorer  # heavy import after argument checks

    try:
        scorer = QualsScorer(config, source_cache_size=args.source_cache_size)
    except ValueError as err:  # an unknown preset, or settings the format cannot honour
        print(f"quals score: error: {err}", file=sys.stderr)
        return 2
    return _run_sharded(args, scorer, rows, process) if sharded else _run_single_file(args, scorer, rows)


def _load(scorer) -> bool:
    from quals.engine import ModelLoadError

    try:
        scorer.load()  # now, so a missing model fails before any output is written
    except ModelLoadError as err:
        print(f"quals score: error: {err}", file=sys.stderr)
        return False
    return True


def _run_single_file(args: argparse.Namespace, scorer, rows: Iterator[Row]) -> int:
    """Records in input order to one file, written beside it and renamed over it at the end (or to stdout)."""
    if not _load(scorer):
        return 2
    started, tally, bad_rows = time.perf_counter(), CorpusSummary(), []
    with (nullcontext(sys.stdout) if args.out == "-" else atomic_output(args.out)) as out, \
            tqdm(total=count_rows(args.input or args.summaries), desc="QUALS", unit="summary", file=sys.stderr,
                 disable=not scorer.config.show_progress) as bar:
        while block := list(islice(rows, args.block_size)):
            for records in score_block(scorer, block, args.explain, args.chunk_size, progress=bar.update):
                out.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
                out.flush()
                for record in records:
                    tally.add(record)
            bad_rows.extend({"index": r.index, "error": r.error} for r in block if r.error)
    if args.out != "-":
        report = Path(args.out).with_name(Path(args.out).name + ERRORS_SUFFIX)
        if bad_rows:
            write_error_report(report, bad_rows)
        else:
            report.unlink(missing_ok=True)  # a report of an earlier run would describe another output (--overwrite)
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
        todo = plan.rows_in(blocks)
        print(f"quals score: rank {process.rank}/{process.world_size}, attempt {plan.attempt}: {len(blocks)} "
              f"block(s), {todo} row(s) to score; {plan.done_rows} of {plan.num_rows} rows already done",
              file=sys.stderr)
        started = time.perf_counter()
        with open(directory.part_path(plan.attempt, process.rank), "w", encoding="utf-8") as out, \
                tqdm(total=todo, desc=f"QUALS rank {process.rank}", unit="summary", file=sys.stderr,
                     disable=not (process.is_main and scorer.config.show_progress)) as bar:
            for block in _blocks(rows, plan.block_size, blocks):
                block = [row for row in block if row.index not in plan.done]  # finished by an earlier attempt
                for records in score_block(scorer, block, args.explain, args.chunk_size, progress=bar.update):
                    out.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
                    out.flush()
                    os.fsync(out.fileno())  # a kill keeps every record written so far
    seconds = time.perf_counter() - started
    print(f"quals score: rank {process.rank} scored {todo} row(s) in {seconds:.1f} s; {_reuse(scorer)}",
          file=sys.stderr)
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
    return (f"{scorer.source_cache.encodings} source(s) encoded, {scorer.source_cache.hits} found in the source cache "
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


def write_error_report(path: Path, bad_rows: list[dict]) -> Path:
    with atomic_output(path) as out:
        out.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in bad_rows))
    print(f"quals score: {len(bad_rows)} row(s) could not be read; see {path}", file=sys.stderr)
    return path
