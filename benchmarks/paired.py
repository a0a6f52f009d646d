"""Interleaved rounds and paired medians: the one way the benchmarks compare two tools.

Load from other processes comes and goes on a shared machine. So every round runs each contender
once, back to back, and a ratio is the median over rounds of the ratio of the two times of the same
round (a "paired median"); the best time of each is printed beside it. Rounds default to 7.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

ROUNDS = 7


def interleave(fns: dict[str, Callable[[], object]], rounds: int = ROUNDS, *, warmup: bool = True,
               sync: Callable[[], None] | None = None) -> dict[str, list[float]]:  # fmt: skip
    """Seconds of every run of each function: ``rounds`` rounds, each running the functions in turn
    (after one warm-up run of each)."""
    if warmup:
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            if sync:
                sync()
            start = time.perf_counter()
            fn()
            if sync:
                sync()
            times[name].append(time.perf_counter() - start)
    return times


def ratios(ours: list[float], baseline: list[float]) -> tuple[float, float, float]:
    """``(median, smallest, largest)`` over rounds of the per-round ratio ``ours / baseline`` (the
    median is the middle one, or the upper middle one for an even count, so an infinite ratio, a
    target never reached, stays infinite)."""
    values = sorted(a / b for a, b in zip(ours, baseline))
    return values[len(values) // 2], values[0], values[-1]


def paired(times: dict[str, list[float]], ours: str, baseline: str) -> float:
    """Median over rounds of ``ours`` time / ``baseline`` time (< 1: ours is faster)."""
    return statistics.median(a / b for a, b in zip(times[ours], times[baseline]))


def spread(times: dict[str, list[float]], ours: str, baseline: str) -> str:
    """The smallest and largest per-round ratio, as ``lo-hi``."""
    _, lo, hi = ratios(times[ours], times[baseline])
    return f"{lo:.2f}-{hi:.2f}"
