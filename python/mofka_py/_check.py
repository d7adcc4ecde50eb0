"""Checks of public arguments, made in Python before anything crosses into C++, so that a bad
value gets an InvalidArgument naming the argument and its valid range (never a pybind11
TypeError or an overflow), and nothing is written."""
from __future__ import annotations

import math
from typing import Any, Optional

from .errors import InvalidArgument

U32 = (1 << 32) - 1
I64 = (1 << 63) - 1


def integer(name: str, value: Any, lo: int = 0, hi: int = I64) -> int:
    """``value`` as an int in ``[lo, hi]`` (bool and float refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name} must be an integer between {lo} and {hi} (got {value!r})")
    if not lo <= value <= hi:
        raise InvalidArgument(f"{name} must be between {lo} and {hi} (got {value})")
    return value


def number(name: str, value: Any, lo: float = 0.0, hi: float = 1e12) -> float:
    """``value`` as a finite real number in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidArgument(f"{name} must be a number between {lo:g} and {hi:g} (got {value!r})")
    if not lo <= value <= hi:
        raise InvalidArgument(f"{name} must be between {lo:g} and {hi:g} (got {value!r})")
    return float(value)


def timeout(name: str, value: Any) -> Optional[float]:
    """A timeout in seconds: None (no limit) or a number between 0 and ~31 years."""
    if value is None:
        return None
    return number(name, value, 0.0, 1e9)


def choice(name: str, value: Any, options: tuple) -> Any:
    if value not in options:
        raise InvalidArgument(f"{name} must be one of {', '.join(repr(o) for o in options)} (got {value!r})")
    return value
