"""Argument checks shared by every public entry, so each kind of option is refused the same way."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import InvalidInputError


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int if it is an integer (not a bool) within ``[minimum, maximum]``; otherwise
    :class:`InvalidInputError` naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or \
            (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if minimum is not None and maximum is not None:
            want = f"an integer in {minimum}..{maximum}"
        elif minimum == 1:
            want = "a positive integer"
        elif minimum is not None:
            want = f"an integer >= {minimum}"
        else:
            want = "an integer"
        raise InvalidInputError(f"{name} must be {want}, got {value!r}")
    return int(value)


def check_number(name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None,
                 positive: bool = False) -> float:
    """``value`` as a finite float (not a bool) within ``[minimum, maximum]`` (and > 0 with
    ``positive``); otherwise :class:`InvalidInputError` naming ``name``."""
    ok = not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))
    if ok:
        value = float(value)
        ok = math.isfinite(value) and (minimum is None or value >= minimum) and \
            (maximum is None or value <= maximum) and (not positive or value > 0)
    if not ok:
        bounds = []
        if positive:
            bounds.append("> 0")
        if minimum is not None:
            bounds.append(f">= {minimum:g}")
        if maximum is not None:
            bounds.append(f"<= {maximum:g}")
        raise InvalidInputError(f"{name} must be a finite number{' ' + ' and '.join(bounds) if bounds else ''}, "
                                f"got {value!r}")
    return float(value)
