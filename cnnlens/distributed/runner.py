"""The walk over a folder's global list: :class:`Sharding` (how it is shared) and :func:`run`."""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CnnlensError
from ..progress import progress_bar
from .group import Group, is_main, process_group
from .parts import (
    Checkpoint,
    Partial,
    Shard,
    batch_ranges,
    batches_in,
    describe_setting,
    first_difference,
    partial_from_dict,
    prior_part,
    split,
)
from .states import Job, fingerprint

# -- how a folder pass is shared ---------------------------------------------------------------------

__all__ = ["Sharding", "run"]


@dataclass(frozen=True)
class Sharding:
    """How a folder-scale pass (patches, robustness) shares its work: ``top_patches(..., sharding=Sharding(shard="0/4"))``.

    - ``distributed``: under torchrun (``None``, the default, or ``True``) each process takes its
      share of the images and every process gets the merged result; ``False``: this process does all.
    - ``shard``: ``"I/N"``: compute share I of N only and return its :class:`Partial` state (save it
      as JSON; :func:`merge` turns the parts into the result).
    - ``checkpoint``: a ``.json`` file (or :class:`Checkpoint`) where the partial state is saved at
      intervals; a run given the same file continues from it.
    """

    distributed: bool | None = None
    shard: str | Shard | None = None
    checkpoint: str | Path | Checkpoint | None = None



# -- the run ----------------------------------------------------------------------------------------


def run(
    job: Job,
    *,
    distributed: bool | None = None,
    shard: str | Shard | None = None,
    checkpoint: str | Path | Checkpoint | None = None,
    progress: bool = True,
) -> Partial:
    """Walk ``job``'s global list (see the module docstring) and return the merged state.

    Under a process group every rank takes its share and gets the merged state of all; with
    ``shard`` only that share is computed (no process group allowed); with ``checkpoint`` the state
    is saved at intervals and work already saved there is not done again.

    Raises:
        CnnlensError: a bad shard or checkpoint, processes that disagree on the images, model or
            settings, or an error in any rank (named by rank).
    """
    part = Shard.parse(shard) if shard is not None else None
    saving = Checkpoint.of(checkpoint)
    if job.n_items is None:
        return _run_stream(job, part, saving, distributed, progress)
    group = process_group(distributed)
    if part is not None and group.world > 1:
        raise CnnlensError(f"shard: a process group of {group.world} already shares the work; use shard= without torchrun", param="shard")
    n, size = job.n_items, job.batch_size
    n_batches = math.ceil(n / size)
    settings = job.settings() if (group.world > 1 or part is not None or saving is not None) else {}

    # every rank agrees on the settings; rank 0 reads the checkpoint and says what is done
    prior, error = None, None
    if group.main and saving is not None:
        try:
            prior = prior_part(saving, job.kind, settings, n, size, part)
        except CnnlensError as exc:
            error = exc
    hello = group.all_gather({"settings": fingerprint(settings), "done": prior.done if prior else [], "error": str(error) if error else None})
    if error is not None:
        raise error
    if hello[0]["error"]:
        raise CnnlensError(f"rank 0: {hello[0]['error']}")
    differ = [r for r, h in enumerate(hello) if h["settings"] != hello[0]["settings"]]
    if differ:
        mine = group.all_gather(settings)
        key = first_difference(mine[differ[0]], mine[0])
        raise CnnlensError(
            f"rank {differ[0]} and rank 0 disagree: {describe_setting(key or 'settings')}; every process must see the same images, model and options"
        )
    done_before = set(batches_in(hello[0]["done"]))

    scope = range(n_batches) if part is None else split(n_batches, part.index, part.count)
    todo = [b for b in scope if b not in done_before]
    shares = [todo[s.start : s.stop] for s in (split(len(todo), r, group.world) for r in range(group.world))]
    mine = shares[group.rank]
    items = [i for b in mine for i in range(b * size, min(n, (b + 1) * size))]
    steps = max(len(s) for s in shares)

    def partial(state: Any, done: Iterable[int]) -> Partial:
        return Partial(job.kind, settings, n, size, batch_ranges(done), state, part)

    desc = job.desc if group.world == 1 else f"{job.desc} (rank 0 of {group.world})"
    show = progress and group.main
    if show and done_before:
        where = saving.path if saving is not None else ""
        print(f"{job.desc}: resuming from {where}: {len(set(scope) & done_before)} of {len(scope)} batches done", file=sys.stderr, flush=True)
    state = job.empty()
    done_mine: list[int] = []
    failure: BaseException | None = None
    failed = False
    last_save = time.monotonic()
    with progress_bar(job.total(len(items), len(mine)), desc, enabled=show, unit=job.unit) as bar:
        stepper = job.steps(state, items, bar)
        try:
            for step in range(steps):
                if step < len(mine) and failure is None:
                    try:
                        next(stepper)
                        done_mine.append(mine[step])
                    except Exception as exc:  # noqa: BLE001 - every rank reports it below
                        failure = exc
                due = saving is not None and group.main and time.monotonic() - last_save >= saving.every
                failed, due = group.any(failure is not None, due)
                if failed:
                    break
                if due:
                    _save(group, saving, prior, partial(state, done_mine), partial)  # type: ignore[arg-type]
                    last_save = time.monotonic()
        finally:
            stepper.close()  # the job's context managers (eval mode, reader threads) end here
        kept = ""
        if failed and saving is not None and (group.world > 1 or done_mine):
            _save(group, saving, prior, partial(state, done_mine), partial)  # what was done is kept for the next run
            kept = (
                f" (the work done is saved in {saving.path}: fix that input in place and run the same command to continue; delete the file to start afresh)"
                if isinstance(failure, CnnlensError) else f" (the work done is saved in {saving.path}: run again to continue)"
            )  # fmt: skip
        if failure is not None and group.world == 1:
            if isinstance(failure, CnnlensError) and kept:
                raise CnnlensError(f"{failure}{kept}", param=failure.param) from None
            raise failure
        if failed:
            bar.close(failed=True)
    # every rank gets the merged state of all (and of the checkpoint, through rank 0)
    started = time.perf_counter()
    own = partial(state, done_mine)
    if group.main and prior is not None:
        own = _merged([prior, own], partial)
    shared = group.all_gather({"part": own.to_dict() if failure is None else None, "error": None if failure is None else _message(failure)})
    errors = [(r, s["error"]) for r, s in enumerate(shared) if s["error"]]
    if errors:
        if failure is not None:
            raise failure
        rank, message = errors[0]
        raise CnnlensError(f"rank {rank}: {message}{kept}")
    if group.world > 1:
        own = _merged([partial_from_dict(s["part"], f"rank {r}") for r, s in enumerate(shared)], partial)
        if show:
            print(f"{job.desc}: gathered and merged the states of {group.world} processes in {time.perf_counter() - started:.3f} s",
                  file=sys.stderr, flush=True)  # fmt: skip
    if saving is not None and group.main:
        own.save(saving.path, overwrite=True)
    return own


def _message(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text if isinstance(exc, CnnlensError) else f"{type(exc).__name__}: {text}"


def _merged(parts: Sequence[Partial], make: Any) -> Partial:
    state = copy.deepcopy(parts[0].state)
    for p in parts[1:]:
        state.merge(p.state)
    return make(state, [b for p in parts for b in batches_in(p.done)])


def _save(group: Group, saving: Checkpoint, prior: Partial | None, own: Partial, make: Any) -> None:
    if group.world == 1:
        loaded = [own]
    else:
        parts = group.gather(own.to_dict())
        if parts is None:  # not rank 0
            return
        loaded = [partial_from_dict(p, f"rank {r}") for r, p in enumerate(parts)]
    _merged(([prior] if prior is not None else []) + loaded, make).save(saving.path, overwrite=True)


def _run_stream(job: Job, part: Shard | None, saving: Checkpoint | None, distributed: bool | None, progress: bool) -> Partial:
    """A job over a stream (no random access): run as given, in this process."""
    if part is not None or saving is not None or distributed:
        what = "shard" if part is not None else "checkpoint" if saving is not None else "distributed"
        raise CnnlensError(f"{what} needs a list of images (a folder or a list), not a stream of batches", param=what)
    state = job.empty()
    with progress_bar(job.total(0, 0), job.desc, enabled=progress and is_main(), unit=job.unit) as bar:
        stepper = job.steps(state, None, bar)
        try:
            for _ in stepper:
                pass
        finally:
            stepper.close()
    return Partial(job.kind, {}, 0, job.batch_size, [], state, None)
