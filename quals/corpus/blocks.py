"""Scoring one block of rows for ``quals score``: records in input order, handed out as soon as they are final.

Within a block, rows that share a source are scored side by side (the K candidates of a document in one engine
call, their source encoded once), in chunks of at most ``chunk_size`` rows and about ``chunk_chars`` characters of
source text (a huge document is a chunk of its own). After each chunk, every record whose earlier rows all have
theirs is handed to the caller, who writes and flushes it: a kill loses at most the chunk being scored, and the
progress bar moves chunk by chunk, not block by block.

Unreadable rows and invalid texts get ``quals: null`` and an error naming the row; an engine failure on a chunk
is retried row by row, so one bad row never costs the others their results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from quals.corpus.io import UNREADABLE, Row
from quals.engine import SummaryScore, input_error


CHUNK_CHARS = 200_000  # source characters per engine call (~50k tokens): a long document gets a call of its own


def score_block(scorer, rows: list[Row], explain: bool, chunk_size: int, chunk_chars: int = CHUNK_CHARS,
                progress: Callable[[int], None] = lambda n: None) -> Iterator[list[dict]]:
    """Yield lists of records, in the rows' order, each as soon as it and every row before it are scored."""
    records: dict[int, dict] = {}
    scorable = []
    for row in rows:
        error = (UNREADABLE + row.error if row.error else
                 input_error(row.summary, "summary", row.index) or input_error(row.source, "source", row.index))
        if error:
            records[row.index] = {**row.extra, **SummaryScore(row.index, None, error=error).to_dict()}
        else:
            scorable.append(row)
    progress(len(rows) - len(scorable))
    first_seen: dict[str, int] = {}
    for row in scorable:
        first_seen.setdefault(row.source, len(first_seen))
    scorable.sort(key=lambda row: first_seen[row.source])  # stable: the K candidates of a document together
    frontier = 0  # rows[:frontier] are handed out
    for chunk in _chunks(scorable, chunk_size, chunk_chars):
        for row, score in zip(chunk, _score_isolated(scorer, chunk, explain), strict=True):
            records[row.index] = {**row.extra, **score.to_dict(), "index": row.index}
        progress(len(chunk))
        ready = frontier
        while ready < len(rows) and rows[ready].index in records:
            ready += 1
        if ready > frontier:
            yield [records.pop(row.index) for row in rows[frontier:ready]]
            frontier = ready
    if frontier < len(rows):  # only unscorable rows were left
        yield [records.pop(row.index) for row in rows[frontier:]]


def _chunks(rows: list[Row], size: int, chars: int) -> Iterator[list[Row]]:
    """At most ``size`` rows whose distinct sources hold at most ``chars`` characters (one row at least)."""
    chunk: list[Row] = []
    sources: set[str] = set()
    held = 0
    for row in rows:
        extra = 0 if row.source in sources else len(row.source)
        if chunk and (len(chunk) >= size or held + extra > chars):
            yield chunk
            chunk, sources, held, extra = [], set(), 0, len(row.source)
        chunk.append(row)
        sources.add(row.source)
        held += extra
    if chunk:
        yield chunk


def _score_isolated(scorer, rows: list[Row], explain: bool) -> list[SummaryScore]:
    """Scores of ``rows`` in one engine call; if the call fails, row by row, a failing row getting its error."""
    try:
        return scorer.score([r.summary for r in rows], [r.source for r in rows], return_qa_pairs=explain,
                            show_progress=False, ids=[r.index for r in rows])
    except Exception as err:  # noqa: BLE001 - any engine failure must stay confined to the rows that cause it
        if len(rows) == 1:
            return [SummaryScore(rows[0].index, None, error=f"scoring failed: {type(err).__name__}: {err}")]
        return [score for row in rows for score in _score_isolated(scorer, [row], explain)]
