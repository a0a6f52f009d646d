"""Folder-scale work on many processes and machines, with the result of one process.

Every command that walks a folder of images (``patches``, ``robustness``) runs its work through
:func:`run`, which gives it four things at once:

- **One global list, cut into whole batches.** The images are listed, and ``limit`` applied, in
  every process alike; the list is cut into *global batches* of ``batch_size`` consecutive images
  (only the last may be shorter). A share is a contiguous run of whole batches, so every image is
  seen exactly once -- no padding as with ``DistributedSampler``, which repeats images and would
  put duplicates into a top-k or bias an accuracy -- and each image goes through the model in the
  same batch, at the same place, as in one process.
- **States that merge exactly.** What a share computes is small and merges without rounding:
  :class:`TopK` (values re-ranked by value, ties by global image index), :class:`ExactSum` (sums
  of float32 values kept as exact integers) and integer counts. Hence the result of N processes
  equals the result of one, byte for byte, whatever N and however the work was cut.
- **Three ways to share the work.** Under ``torchrun`` (``RANK``/``WORLD_SIZE`` in the
  environment) each rank takes its share, the states are gathered (gloo, on the CPU: they are
  small) and every rank gets the merged result; only rank 0 writes files, prints and shows
  progress (:func:`is_main`). Without a process group, ``shard="I/N"`` computes share I of N
  (I from 0 to N-1, like a rank) and returns its :class:`Partial` state, saved as JSON; :func:`merge`
  turns the parts into the result (``cnnlens merge part-*.json``).
- **Resume.** With a :class:`Checkpoint`, the partial state is saved at intervals (atomically);
  run again with the same checkpoint and the work continues where it stopped, also with another
  number of processes. A checkpoint that holds another run (other images, weights or settings)
  is refused, or replaced with ``Checkpoint(..., replace=True)``.

Randomness per item comes from the item's global index (:func:`cnnlens.seeds.item_generator`), never
from the order in which a process meets it.

The package: :mod:`.states` (what a share computes and how it merges), :mod:`.parts` (shares,
partial files, checkpoints, :func:`merge`), :mod:`.group` (the ``torchrun`` process group) and
:mod:`.runner` (:class:`Sharding` and :func:`run`).

A capability that walks a folder writes a *job* (see :class:`Job`) and a *state* class (see
:class:`State`) that it registers itself with ``@register_state(kind)``; every partial file names the
module of its state, so :func:`merge` finds it without this module naming any capability.
"""

from __future__ import annotations

from .group import Group, is_main, local_cuda_device, process_group, shutdown
from .parts import (
    FORMAT,
    Checkpoint,
    Partial,
    Shard,
    batch_ranges,
    merge,
    read_partial,
    split,
)
from .runner import Sharding, run
from .states import (
    ExactSum,
    KeyedSum,
    Job,
    State,
    TopK,
    fingerprint,
    model_fingerprint,
    model_info_from_json,
    model_info_to_json,
    register_state,
)

__all__ = [
    "Checkpoint",
    "ExactSum",
    "KeyedSum",
    "Job",
    "Partial",
    "Shard",
    "Sharding",
    "TopK",
    "is_main",
    "merge",
    "process_group",
    "read_partial",
    "register_state",
    "run",
]
