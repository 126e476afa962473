"""Which process am I? Rank, world size and device under ``torchrun``, ``accelerate launch`` or no launcher.

Both launchers export ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; with no launcher the process is rank 0 of 1.
The environment is read directly rather than through ``accelerate.PartialState``, because ``PartialState()``
on a machine without CUDA silently reports a world of 1 under ``torchrun`` unless built with ``cpu=True``
(accelerate 1.15), and every rank would then score the whole corpus.

Scoring needs one collective only: rank 0 checks the run directory and broadcasts its decision. It goes over
a gloo group (CPU), so it works the same with or without GPUs, and no collective waits at the end of a run
(ranks that finish early just exit; there is no barrier to time out while a slow rank is still scoring).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch


if TYPE_CHECKING:
    from typing_extensions import Self


@dataclass(frozen=True)
class ProcessInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current_process() -> ProcessInfo:
    """Rank, world size and local rank from the launcher's environment (rank 0 of 1 without a launcher)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if not 0 <= rank < world_size:
        raise RuntimeError(f"RANK={rank} is outside WORLD_SIZE={world_size}; check the launcher's environment")
    return ProcessInfo(rank, world_size, local_rank)


def device_for(requested: str | None, process: ProcessInfo) -> str | None:
    """The device this process scores on: ``cuda:<local rank>`` when several processes share CUDA devices.

    An explicit device with an index (``cuda:1``) or a non-CUDA device is kept; ``None``/``cuda`` become
    ``cuda:<local rank>`` in a multi-process run with CUDA, so that ranks do not all pile onto ``cuda:0``.
    """
    if process.world_size == 1 or not torch.cuda.is_available():
        return requested
    if requested in (None, "auto", "cuda"):
        return f"cuda:{process.local_rank % torch.cuda.device_count()}"
    return requested


class MainBroadcast:
    """Rank 0's decisions, broadcast to every rank over gloo; the process group starts on first use.

    One per command run (``with MainBroadcast(process) as channel: plan = channel.send(plan)``); leaving the block
    leaves a process group this object started. No module-level state: two runs in one process do not share it.
    """

    def __init__(self, process: ProcessInfo):
        self.process = process
        self._gloo = None  # a gloo group beside a caller's non-gloo default group
        self._started = False  # whether this object started the default group

    def send(self, value):
        """Rank 0's ``value`` on every rank (a no-op for one process)."""
        if self.process.world_size == 1:
            return value
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo", rank=self.process.rank, world_size=self.process.world_size)
            self._started = True
        box = [value if self.process.is_main else None]
        dist.broadcast_object_list(box, src=0, group=self._gloo_group())
        return box[0]

    def _gloo_group(self):
        """The default group if it is gloo, else (e.g. an NCCL group started by a caller) a gloo group beside it."""
        import torch.distributed as dist

        if dist.get_backend() == "gloo":
            return None
        if self._gloo is None:
            self._gloo = dist.new_group(backend="gloo")
        return self._gloo

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        if self._started:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._gloo, self._started = None, False
