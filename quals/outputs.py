"""What the commands may do to files that already exist: an operation completes, or leaves the user's files as
they were (the promise of sqlite's commits, ``rsync --backup`` and ``git``'s refusal to overwrite untracked files).

- An output is never one of the inputs, and never a file inside another run's directory.
- A single output file is written to a hidden temporary file beside it and renamed over it only at the end, so a
  crash or a kill leaves an existing file intact; an existing file is replaced only with ``--overwrite``.
- A folder becomes an output folder (a run directory, a trained model, an exported metric) only if it is empty
  or already one of ours; ``--force`` lets a folder holding other files be used, and even then no file the
  command did not write is replaced or deleted.

Every refusal is an ``OutputError`` (exit status 2) that names the paths involved and the flag that allows it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


class OutputError(ValueError):
    """The output would destroy or mix with files that are not this command's (the message says what to do)."""


def check_not_an_input(out: str | Path, inputs: list[str | Path]) -> None:
    """Refuse an output that is one of the inputs, or that lies inside a QUALS run directory."""
    out = Path(out).resolve()
    for path in inputs:
        if path and out == Path(path).resolve():
            raise OutputError(f"--out {out} is the input file {path}; write the scores to another file")
    for folder in out.parents:
        if (folder / "run.json").is_file():
            raise OutputError(f"--out {out} is inside {folder}, the run directory of another 'quals score' run; "
                              "write elsewhere")


def check_single_file(out: str | Path, overwrite: bool, companions: tuple[str, ...] = ()) -> None:
    """Refuse to replace an existing file (or a companion such as ``<out>.errors.jsonl``) without ``--overwrite``."""
    out = Path(out)
    if out.is_dir():
        raise OutputError(f"--out {out} is a folder; end it with '/' to score into a run directory there")
    existing = [p for p in [out, *(out.with_name(out.name + suffix) for suffix in companions)] if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"{', '.join(map(str, existing))} already exists; pass --overwrite to replace it (the old "
                          "file stays intact until the new one is complete)")


def check_folder(folder: str | Path, ours: list[str], force: bool, marker: str, what: str) -> None:
    """Refuse a non-empty folder that is not one of ours (it holds ``marker``) unless ``force``; even with
    ``force``, refuse when a file we would write (``ours``) is already there and is not ours."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is a file, not a folder")
    if not folder.is_dir() or not any(folder.iterdir()) or (folder / marker).exists():
        return
    if not force:
        raise OutputError(f"{folder} is not empty and is not a {what} (no {marker}); pass --force to use it anyway "
                          "(no file already there is replaced or deleted), or choose an empty folder")
    clashes = [name for name in ours if (folder / name).exists()]
    if clashes:
        raise OutputError(f"{folder} already holds {', '.join(clashes)}, which this command would write over; "
                          "choose another folder")


@contextmanager
def atomic_output(path: str | Path, encoding: str = "utf-8") -> Iterator[IO[str]]:
    """A text file that replaces ``path`` only when the block completes (a hidden temporary file beside it until
    then, removed if the block fails)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
