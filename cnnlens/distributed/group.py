"""The process group under ``torchrun``: which rank this is, its CUDA device, gathering states."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import CnnlensError

# -- the process group --------------------------------------------------------------------------------

__all__ = ["Group", "is_main", "local_cuda_device", "process_group", "shutdown"]


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, "") or default)
    except ValueError:
        return default


def _torch_distributed() -> Any:
    """``torch.distributed`` when a process group is running, else None (without importing torch anew)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist
    return None


def is_main() -> bool:
    """True in rank 0 of a process group (torchrun) and in a process without one: the process
    that writes files, prints results and shows progress."""
    dist = _torch_distributed()
    if dist is not None:
        return dist.get_rank() == 0
    return _env_int("RANK", 0) == 0


def local_cuda_device() -> str:
    """``"cuda"``, or under torchrun ``"cuda:LOCAL_RANK"`` (one device per rank)."""
    if _env_int("WORLD_SIZE", 1) > 1 and "LOCAL_RANK" in os.environ:
        local, count = _env_int("LOCAL_RANK", 0), torch.cuda.device_count()
        if local >= count:
            raise CnnlensError(
                f"device: this machine runs rank {local} but has {count} CUDA devices; start at most {count} processes per machine",
                param="device",
            )
        return f"cuda:{local}"
    return "cuda"


@dataclass(frozen=True)
class Group:
    """This process's place among those that share the work (rank 0 of 1 without a process group),
    with the few collectives a run needs, on a gloo group (states are small and live on the CPU)."""

    rank: int = 0
    world: int = 1
    handle: Any = field(default=None, compare=False)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_gather(self, obj: Any) -> list[Any]:
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj, group=self.handle)
        return out

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (None elsewhere)."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world if self.main else None
        dist.gather_object(obj, out, dst=0, group=self.handle)
        return out

    def any(self, *flags: bool) -> list[bool]:
        """Each flag OR-ed over the ranks."""
        if self.world == 1:
            return [bool(f) for f in flags]
        import torch.distributed as dist

        t = torch.tensor([int(bool(f)) for f in flags], dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.handle)
        return [bool(v) for v in t.tolist()]


def process_group(distributed: bool | None = None) -> Group:
    """The :class:`Group` of this process.

    ``None``: the running torch.distributed process group, or the one torchrun describes in the
    environment (``WORLD_SIZE`` > 1; it is started here -- gloo, and NCCL for CUDA tensors where
    CUDA is available -- and closed at exit); otherwise this process alone. ``False``: this process
    alone. ``True``: a process group is required.
    """
    if distributed is False:
        return Group()
    if distributed not in (None, True):
        raise CnnlensError(f"distributed must be None, True or False, not {distributed!r}", param="distributed")
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        if _env_int("WORLD_SIZE", 1) <= 1:
            if distributed:
                raise CnnlensError("distributed: no process group; start the work with torchrun --nproc-per-node N ...", param="distributed")
            return Group()
        _start_process_group()
    world, rank = dist.get_world_size(), dist.get_rank()
    if world == 1:
        return Group()
    backend = str(dist.get_backend())
    handle = None if "gloo" in backend else dist.new_group(backend="gloo")
    return Group(rank, world, handle)


def _start_process_group() -> None:
    import atexit

    import torch.distributed as dist

    if not dist.is_available():  # pragma: no cover - builds without torch.distributed
        raise CnnlensError("torch.distributed is not available in this PyTorch build; run one process, or use shard=")
    backend = "gloo"
    if torch.cuda.is_available():
        backend = "cpu:gloo,cuda:nccl"
        torch.cuda.set_device(local_cuda_device())
    try:
        dist.init_process_group(backend=backend, init_method="env://")
    except (RuntimeError, ValueError) as exc:
        raise CnnlensError(f"cannot join the process group that torchrun describes: {exc}".splitlines()[0]) from None
    atexit.register(shutdown)


def shutdown() -> None:
    """Close the process group, if one is running, once every rank is here (rank 0 may still be
    writing the outputs: a rank that tears its connections down alone can abort the others)."""
    dist = _torch_distributed()
    if dist is None:
        return
    try:
        dist.barrier()
    except RuntimeError:  # a rank is gone already (killed, or failed): nothing to wait for
        pass
    dist.destroy_process_group()
