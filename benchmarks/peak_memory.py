"""Peak resident memory of this process (Linux ``/proc``), for the benchmarks' fresh-process memory runs."""

from __future__ import annotations

from pathlib import Path


def status_mb(key: str) -> float:
    """A ``/proc/self/status`` field in MB (``VmRSS``: resident now, ``VmHWM``: peak resident)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> float:
    """Reset the peak (``VmHWM``) to the resident memory now, and return that (MB)."""
    Path("/proc/self/clear_refs").write_text("5")
    return status_mb("VmRSS")


def peak_growth(since: float) -> float:
    """The peak resident memory since :func:`reset_peak` above what it returned (MB)."""
    return status_mb("VmHWM") - since
