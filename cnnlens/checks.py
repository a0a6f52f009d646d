"""Argument checks shared by every API function: one line naming the parameter, raised before any work."""

from __future__ import annotations

import math
from typing import Any

from .errors import CnnlensError

__all__ = ["SEED_MAX", "check_int", "check_number", "check_seed"]

SEED_MAX = 2**63 - 1  # the largest seed torch.manual_seed takes as a non-negative int


def check_number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float inside the given bounds, else :class:`CnnlensError` naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CnnlensError(f"{name} must be a number, not {value!r}", param=name) from None
    if not math.isfinite(number):
        raise CnnlensError(f"{name} must be a finite number, not {value}", param=name)
    if low is not None and (number < low or (low_open and number == low)):
        raise CnnlensError(f"{name} must be {'>' if low_open else '>='} {low:g}, not {value}", param=name)
    if high is not None and (number > high or (high_open and number == high)):
        raise CnnlensError(f"{name} must be {'<' if high_open else '<='} {high:g}, not {value}", param=name)
    return number


def check_int(value: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int inside ``[low, high]``, else :class:`CnnlensError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (isinstance(value, float) and value.is_integer()):
        try:
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                value = int(value)
            else:
                raise ValueError
        except ValueError:
            raise CnnlensError(f"{name} must be an integer, not {value!r}", param=name) from None
    number = int(value)
    if low is not None and number < low:
        raise CnnlensError(f"{name} must be >= {low}, not {number}", param=name)
    if high is not None and number > high:
        raise CnnlensError(f"{name} must be <= {high}, not {number}", param=name)
    return number


def check_seed(seed: Any, name: str = "seed") -> int | None:
    """``None`` (draw from torch's global generator), or ``seed`` as an int in ``0 .. 2**63 - 1``."""
    return None if seed is None else check_int(seed, name, low=0, high=SEED_MAX)
