"""The one randomness convention of cnnlens.

Every API function that draws random numbers takes ``seed: int | None``: an integer makes the call
repeat exactly (on every device: draws are made on the CPU and moved), ``None`` draws from torch's
global generator as any torch code does. Nothing here or anywhere in cnnlens seeds the global
generators: :func:`seeded` forks them for the block only, so a caller's random state is left as it was.

- :func:`cnnlens.checks.check_seed`: ``None`` or an integer in ``0 .. 2**63 - 1``;
- :func:`generator`: a CPU ``torch.Generator`` for a seed (``None`` for ``None``);
- :func:`seeded`: a block in which torch's generators are seeded (for library code that draws from
  the global generator, such as captum's noise tunnel or a builder's ``reset_parameters``);
- :func:`item_seed`: the seed of item ``index`` of a run, the same in any process, batch or order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .checks import check_seed

__all__ = ["generator", "item_generator", "item_seed", "seeded"]

_MASK64 = (1 << 64) - 1


def generator(seed: int | None, name: str = "seed") -> torch.Generator | None:
    """A CPU ``torch.Generator`` seeded with ``seed``; ``None`` (draw from the global generator) for ``None``."""
    seed = check_seed(seed, name)
    return None if seed is None else torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device | str | None = None) -> Iterator[None]:
    """Seed torch's generators (the CPU's, and ``device``'s when it is a CUDA device) inside the block
    only; the caller's random state is restored on exit. ``None``: the block runs as it is."""
    seed = check_seed(seed)
    if seed is None:
        yield
        return
    device = torch.device(device) if device is not None else None
    devices = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def item_seed(base: int, index: int) -> int:
    """A seed for item ``index`` of a run seeded with ``base`` (splitmix64 of both): the same in any
    process, batch or order, and unrelated for neighbouring indices."""
    z = (int(base) + (int(index) + 1) * 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) & ((1 << 63) - 1)


def item_generator(base: int, index: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`item_seed` (the same draws on every device)."""
    return torch.Generator().manual_seed(item_seed(base, index))
