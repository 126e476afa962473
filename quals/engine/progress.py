"""A progress bar for the long sources of a scoring call (``QualsScorer.score_pairs``)."""

from __future__ import annotations

from collections.abc import Callable

from tqdm.auto import tqdm


class LongSourceProgress:
    """A progress bar for sources long enough to need ``MIN_WINDOWS`` windows or more: their windows encoded,
    then the (pair, window) scorings of the call. Drawn only once such a source shows up (and progress is on)."""

    MIN_WINDOWS = 8

    def __init__(self, enabled: bool):
        self.enabled, self.bar = enabled, None

    def add(self, steps: int, source_windows: int | None = None) -> Callable[[int], object] | None:
        """Count ``steps`` more steps (when a long source is in this call); the callback that marks them done."""
        if not self.enabled or (self.bar is None and (source_windows or 0) < self.MIN_WINDOWS):
            return None
        if self.bar is None:
            self.bar = tqdm(total=0, desc="long source (windows, then pairs x windows)", unit="step", leave=False)
        self.bar.total += steps
        self.bar.refresh()
        return self.bar.update

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
