"""The encoded windows of recently scored sources, so the K candidate summaries of a document share one encoding.

Least recently used first out, bounded in entries and in bytes (a causal LM's prompt cache is tens of MB per
window, an encoder's states far less). Counts its misses and hits for throughput reports.
"""

from __future__ import annotations

from collections import OrderedDict

from quals.engine.qagen import Context


class SourceCache:
    """Source text -> (its encoded windows, the number of windows it needs)."""

    def __init__(self, max_entries: int = 256, max_bytes: int = 2 << 30):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._entries: OrderedDict[str, tuple[list[Context], int]] = OrderedDict()
        self._bytes = 0
        self.encodings = 0  # sources encoded (misses) ...
        self.hits = 0  # ... and sources found already encoded

    def get(self, source: str) -> tuple[list[Context], int] | None:
        entry = self._entries.get(source)
        if entry is not None:
            self._entries.move_to_end(source)
            self.hits += 1
        return entry

    def put(self, source: str, entry: tuple[list[Context], int]) -> None:
        self.encodings += 1
        self._entries[source] = entry
        self._bytes += _size(entry)
        while len(self._entries) > 1 and (len(self._entries) > self.max_entries or self._bytes > self.max_bytes):
            self._bytes -= _size(self._entries.popitem(last=False)[1])


def _size(entry: tuple[list[Context], int]) -> int:
    return sum(context.nbytes for context in entry[0])
