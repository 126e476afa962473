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

import torch


_GLOO = None  # a gloo group beside a caller's non-gloo default group
_STARTED = False  # whether this module started the default group


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


def broadcast_from_main(value, process: ProcessInfo):
    """Rank 0's ``value`` on every rank (gloo; starts the process group on first use). No-op for one process."""
    if process.world_size == 1:
        return value
    import torch.distributed as dist

    global _STARTED
    if not dist.is_initialized():
        dist.init_process_group("gloo", rank=process.rank, world_size=process.world_size)
        _STARTED = True
    box = [value if process.is_main else None]
    dist.broadcast_object_list(box, src=0, group=_gloo_group())
    return box[0]


def _gloo_group():
    """The default group if it is gloo, else (e.g. an NCCL group started by a caller) a gloo group beside it."""
    global _GLOO
    import torch.distributed as dist

    if dist.get_backend() == "gloo":
        return None
    if _GLOO is None:
        _GLOO = dist.new_group(backend="gloo")
    return _GLOO


def shutdown() -> None:
    """Leave the process group, if ``broadcast_from_main`` started one."""
    global _GLOO, _STARTED
    if _STARTED:
        import torch.distributed as dist

        dist.destroy_process_group()
        _GLOO, _STARTED = None, False
