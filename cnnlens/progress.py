"""Feedback on long work, with one meaning of ``progress=`` everywhere.

Every API function that can take more than a few seconds takes ``progress: bool = True``:

- ``True``: on a terminal, a tqdm bar on stderr; anywhere else (a log file, a notebook, a job
  scheduler) one plain line on stderr when the work starts, then at least every 10 seconds, and one
  when it ends;
- ``False``: silent.

Example:
    >>> with progress_bar(3, "images", enabled=False) as bar:
    ...     for _ in range(3):
    ...         bar.update(1)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = ["Progress", "progress_bar"]

INTERVAL = 10.0  # seconds between lines when stderr is not a terminal


class Progress:
    """A counter that reports itself: a tqdm bar on a terminal, plain lines elsewhere."""

    def __init__(self, total: int | None, desc: str, *, enabled: bool = True, unit: str = "it", stream: TextIO | None = None, interval: float = INTERVAL) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.count = 0
        self.enabled = bool(enabled)
        self.stream = stream or sys.stderr
        self.interval = interval
        self._postfix: dict[str, Any] = {}
        self._bar: Any = None
        self._start = time.monotonic()
        self._last = self._start
        if not self.enabled:
            return
        if _is_terminal(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, dynamic_ncols=True, leave=False)
        else:
            self._line("started")

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.count += n
        self._postfix.update(postfix)
        if not self.enabled:
            return
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix({k: _fmt(v) for k, v in postfix.items()}, refresh=False)
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._line()

    def close(self, *, failed: bool = False) -> None:
        """End the report: a last line ("done", or "stopped" when the work failed)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        else:
            self._line("stopped" if failed else "done")
        self.enabled = False

    def _line(self, state: str | None = None) -> None:
        elapsed = time.monotonic() - self._start
        done = f"{self.count}/{self.total}" if self.total else str(self.count)
        pct = f" ({100 * self.count / self.total:.0f}%)" if self.total else ""
        eta = ""
        if self.total and 0 < self.count < self.total and state is None:
            eta = f", about {(elapsed / self.count) * (self.total - self.count):.0f} s left"
        extra = "".join(f", {k} {_fmt(v)}" for k, v in self._postfix.items())
        head = f"{self.desc}: {state}, " if state else f"{self.desc}: "
        print(f"{head}{done} {self.unit}{pct} in {elapsed:.0f} s{eta}{extra}", file=self.stream, flush=True)


@contextmanager
def progress_bar(total: int | None, desc: str, *, enabled: bool = True, unit: str = "it") -> Iterator[Progress]:
    """A :class:`Progress` closed on exit (also when the work raises)."""
    bar = Progress(total, desc, enabled=enabled, unit=unit)
    try:
        yield bar
    except BaseException:
        bar.close(failed=True)
        raise
    bar.close()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
