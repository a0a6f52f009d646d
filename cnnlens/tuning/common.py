"""What the tuning tools share: argument checks and summaries."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import torch

from ..checks import check_int, check_number
from ..errors import CnnlensError

__all__ = ["TRANSFORM_UNITS", "check_numbers", "count_or_list", "median", "share"]


def check_numbers(values: Any, name: str, *, low: float | None = None, high: float | None = None, low_open: bool = False) -> list[float]:
    """A non-empty list of finite numbers inside the bounds (one number is a list of one)."""
    items = [values] if isinstance(values, (int, float)) else list(values) if isinstance(values, (list, tuple, torch.Tensor)) else None
    if items is None:
        raise CnnlensError(f"{name} must be a number or a list of numbers, not {type(values).__name__}", param=name)
    if not items:
        raise CnnlensError(f"{name} is empty; give at least one number", param=name)
    return [check_number(float(v), name, low=low, high=high, low_open=low_open) for v in items]


def count_or_list(value: Any, name: str, *, low: float, high: float, low_open: bool = False, max_count: int = 1000) -> int | list[float]:
    """An int (how many points on the default grid) or a list of values."""
    if isinstance(value, bool):
        raise CnnlensError(f"{name} must be a count or a list of numbers, not {value!r}", param=name)
    if isinstance(value, int):
        return check_int(value, name, low=1, high=max_count)
    return check_numbers(value, name, low=low, high=high, low_open=low_open)


def median(values: Sequence[float | None]) -> float | None:
    """The median of the finite values (``None`` when there are none)."""
    kept = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(statistics.median(kept)) if kept else None


def share(flags: Sequence[bool]) -> float | None:
    """The share of true values (``None`` for an empty list)."""
    return sum(bool(f) for f in flags) / len(flags) if flags else None

# what the size of each transform family is measured in (axis labels, JSON)
TRANSFORM_UNITS = {
    "translation": "shift (pixels)",
    "rotation": "rotation (degrees)",
    "scale": "zoom factor",
    "brightness": "brightness added (pixel units)",
    "contrast": "contrast reduction (1 - factor)",
}
