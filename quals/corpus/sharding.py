"""A resumable, sharded scoring run kept in one directory, and ``quals merge`` to assemble its result.

    scores/
      run.json                               what is scored and how; a restart with other settings is refused
      parts/attempt-000.rank-00000.jsonl     records written by rank 0 in the first attempt, block by block
      parts/attempt-001.rank-00003.jsonl     ... every (re)start writes new files; old ones are never touched
      scores.jsonl                           the merged result: one record per input row, in input order
      errors.jsonl                           rows that could not be read: {"index", "error"}

Work is cut into blocks of ``block_size`` consecutive input rows. Within a block, records are written (in
input order, flushed and fsynced) as soon as they are final, chunk by chunk (``quals.corpus.blocks``), so a
crash loses at most the chunk being scored. At the start of each attempt rank 0 lists the blocks no part file
completes, and the rows of those blocks that are done already, and broadcasts them; rank r takes the r-th,
(r+W)-th, ... of those blocks, so the work is spread evenly over the W processes, also when a restart uses another
number of processes, and scores only their rows not done yet.

Each part file holds records in increasing index order (a process takes its blocks in order), so finding the
finished rows and merging are streaming k-way merges: memory grows with the number of part files and of
blocks (one integer each), not with the corpus.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from quals.corpus.io import UNREADABLE
from quals.engine.formats import QAFormat
from quals.engine.results import CorpusSummary


class RunMismatchError(ValueError):
    """The directory holds a run of other settings or another input; mixing their results is refused."""


class IncompleteRunError(RuntimeError):
    """Some rows have no result yet (the message says which, and how to finish)."""


@dataclass
class Plan:
    """What one attempt does, decided by rank 0 and broadcast to every rank."""

    attempt: int
    num_rows: int
    block_size: int
    pending: list[int]  # blocks with no complete result yet, in input order
    done_rows: int
    done: frozenset[int] = frozenset()  # rows of the pending blocks that an earlier attempt already scored

    def blocks_for(self, rank: int, world_size: int) -> list[int]:
        return self.pending[rank::world_size]

    def rows_in(self, blocks: list[int]) -> int:
        """Rows still to score in ``blocks``."""
        wanted = set(blocks)
        already = sum(1 for index in self.done if index // self.block_size in wanted)
        return sum(min(self.block_size, self.num_rows - b * self.block_size) for b in blocks) - already


class RunDirectory:
    """The files of one sharded run (see the module docstring for the layout)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.meta_path = self.root / "run.json"
        self.parts_dir = self.root / "parts"
        self.merged_path = self.root / "scores.jsonl"
        self.errors_path = self.root / "errors.jsonl"

    # ------------------------------------------------------------------ attempts (rank 0)
    def begin_attempt(self, identity: dict, num_rows: int, block_size: int, world_size: int) -> Plan:
        """Check (or record) what this directory scores, and plan the next attempt. Raises ``RunMismatchError``."""
        identity = json.loads(json.dumps({**identity, "num_rows": num_rows, "block_size": block_size}))
        meta = self.read_meta() if self.meta_path.exists() else {"identity": identity, "attempts": []}
        if meta["identity"] != identity:
            changes = "; ".join(f"{key}: {old!r} -> {new!r}" for key, old, new in _differences(
                meta["identity"], identity))
            raise RunMismatchError(f"{self.root} holds a run with other settings or input ({changes}). Restart it "
                                   "with its original settings, or score into a new --out directory.")
        pending, done_rows, done = self.pending_blocks(num_rows, block_size)
        attempt = len(meta["attempts"])
        meta["attempts"].append({"attempt": attempt, "world_size": world_size, "done_rows": done_rows,
                                 "pending_rows": num_rows - done_rows,
                                 "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.meta_path, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        return Plan(attempt, num_rows, block_size, pending, done_rows, frozenset(done))

    def read_meta(self) -> dict:
        try:
            return json.loads(self.meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise RunMismatchError(f"Cannot read {self.meta_path} ({err}); is {self.root} a 'quals score' "
                                   "output directory?") from err

    def part_path(self, attempt: int, rank: int) -> Path:
        return self.parts_dir / f"attempt-{attempt:03d}.rank-{rank:05d}.jsonl"

    # ------------------------------------------------------------------ progress
    def completed_indices(self) -> Iterator[int]:
        """Indices of the rows with a record in some part file, increasing, each once."""
        last = -1
        for index, _, _ in heapq.merge(*map(_records, self._part_files()), key=lambda item: item[0]):
            if index != last:
                yield index
                last = index

    def pending_blocks(self, num_rows: int, block_size: int) -> tuple[list[int], int, set[int]]:
        """Blocks that no part file completes, the number of rows already done, and the done rows of those blocks
        (a killed attempt leaves its last block part done: the next one scores only the rest)."""
        counts = [0] * -(-num_rows // block_size)
        for index in self.completed_indices():
            if index < num_rows:
                counts[index // block_size] += 1
        pending = [b for b, count in enumerate(counts) if count < min(block_size, num_rows - b * block_size)]
        partial = {b for b in pending if counts[b]}
        done = {index for index in self.completed_indices() if index < num_rows and index // block_size in partial}
        return pending, sum(counts), done

    def is_complete(self) -> bool:
        num_rows = self.read_meta()["identity"]["num_rows"]
        return sum(1 for index in self.completed_indices() if index < num_rows) == num_rows

    # ------------------------------------------------------------------ merge
    def merge(self, on_record: Callable[[dict], None] | None = None) -> int:
        """Write ``scores.jsonl`` (input order, one record per row) and ``errors.jsonl``; returns unreadable rows.

        Idempotent, and safe when two processes merge at once (each writes a temporary file, then renames).
        """
        num_rows = self.read_meta()["identity"]["num_rows"]
        suffix = f".tmp-{os.getpid()}"
        merged_tmp, errors_tmp = (p.with_name(p.name + suffix) for p in (self.merged_path, self.errors_path))
        expected, unreadable = 0, 0
        try:
            with open(merged_tmp, "w", encoding="utf-8") as out, open(errors_tmp, "w", encoding="utf-8") as errors:
                for index, line, record in heapq.merge(*map(_records, self._part_files()), key=lambda r: r[0]):
                    if index < expected or index >= num_rows:  # a block scored twice (killed while writing)
                        continue
                    if index > expected:
                        raise IncompleteRunError(_missing_message(self.root, expected, index))
                    out.write(line)
                    if (record.get("error") or "").startswith(UNREADABLE):
                        errors.write(json.dumps({"index": index, "error": record["error"][len(UNREADABLE):]},
                                                ensure_ascii=False) + "\n")
                        unreadable += 1
                    if on_record is not None:
                        on_record(record)
                    expected += 1
            if expected < num_rows:
                raise IncompleteRunError(_missing_message(self.root, expected, num_rows))
            os.replace(merged_tmp, self.merged_path)
            if unreadable:
                os.replace(errors_tmp, self.errors_path)
            else:
                errors_tmp.unlink()
                self.errors_path.unlink(missing_ok=True)
        finally:
            merged_tmp.unlink(missing_ok=True)
            errors_tmp.unlink(missing_ok=True)
        return unreadable

    def _part_files(self) -> list[Path]:
        return sorted(self.parts_dir.glob("attempt-*.rank-*.jsonl"))


# ---------------------------------------------------------------------- identity of what is scored
def file_identity(path: str | Path, sample: int = 1 << 20) -> dict:
    """Size and hashes of the first and last MiB: cheap, and it changes when rows are edited, added or removed.

    The path and modification time are left out on purpose: a corpus copied to a node's scratch disk is the
    same input.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = hashlib.sha256(handle.read(sample)).hexdigest()
        handle.seek(max(0, size - sample))
        tail = hashlib.sha256(handle.read(sample)).hexdigest()
    return {"size": size, "head_sha256": head, "tail_sha256": tail}


def model_identity(fmt: QAFormat) -> dict:
    """The QAGen format (separator, template, limits), and the model: its files if local, else its Hub id."""
    identity = {key: value for key, value in asdict(fmt).items() if key != "model"}
    folder = Path(fmt.model)
    if folder.is_dir():
        identity["files"] = {p.name: file_identity(p) for p in sorted(folder.iterdir())
                             if p.is_file() and p.name != "quals_format.json"}
    else:
        identity["hub_id"] = fmt.model
    return identity


# ---------------------------------------------------------------------- helpers
def _records(path: Path) -> Iterator[tuple[int, str, dict]]:
    """(index, line, record) of the complete lines of a part file; a torn last line (crash) is skipped."""
    last = -1
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                return
            try:
                record = json.loads(line)
                index = int(record["index"])
            except (ValueError, KeyError, TypeError):
                continue  # not a record (e.g. a line torn by a crash of the whole machine): scored again
            if index <= last:
                raise IncompleteRunError(f"{path} is not in increasing row order at row {index}; "
                                         "part files must not be edited")
            last = index
            yield index, line, record


def _differences(old, new, prefix: str = "") -> Iterator[tuple[str, object, object]]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in dict.fromkeys([*old, *new]):
            yield from _differences(old.get(key), new.get(key), f"{prefix}{key}.")
    elif old != new:
        yield prefix.rstrip("."), old, new


def _missing_message(root: Path, first: int, stop: int) -> str:
    return (f"{root}: rows {first}..{stop - 1} have no result yet. Run the same 'quals score' command again "
            "to score them (finished rows are kept).")


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------------- ``quals merge``
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="Output directory of a sharded 'quals score --out DIR/' run.")


def run(args: argparse.Namespace) -> int:
    """Merge the part files of a finished run (ranks merge by themselves; this is for runs stopped at the end)."""
    directory, tally = RunDirectory(args.out), CorpusSummary()
    try:
        unreadable = directory.merge(tally.add)
    except (RunMismatchError, IncompleteRunError) as err:
        print(f"quals merge: error: {err}", file=sys.stderr)
        return 2
    print(f"quals merge: wrote {directory.merged_path}", file=sys.stderr)
    print(tally.table(), file=sys.stderr)
    return 1 if unreadable else 0
