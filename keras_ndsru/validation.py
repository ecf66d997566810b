"""Argument checks shared by every public class and function.

Each check returns the value in its canonical type or raises a `ValueError`
whose message names the argument, says what was expected and ends with
`Received: name=value`, as Keras' own argument checks do.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence


def is_real(value) -> bool:
    """A real number that is not a bool (`True` is an `int` in Python)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _fail(name: str, expected: str, value):
    raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")


def positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        _fail(name, "a positive integer", value)
    return int(value)


def optional_int(name: str, value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        _fail(name, "an integer or None", value)
    return int(value)


def positive_float(name: str, value) -> float:
    """A finite float > 0."""
    if not is_real(value) or not math.isfinite(value) or value <= 0:
        _fail(name, "a positive float", value)
    return float(value)


def optional_non_negative_float(name: str, value) -> float | None:
    if value is None:
        return None
    if not is_real(value) or not math.isfinite(value) or value < 0:
        _fail(name, "None or a non-negative float", value)
    return float(value)


def fraction(name: str, value) -> float:
    """A float in `[0, 1)`: a dropout rate, a momentum, a decay."""
    if not is_real(value) or not 0.0 <= value < 1.0:
        _fail(name, "a float in [0, 1)", value)
    return float(value)


def one_of(name: str, value, choices: Sequence):
    """`value`, if it equals one of `choices` (bools are matched by
    identity, so `1` is not `True`)."""
    for choice in choices:
        if isinstance(choice, bool) or isinstance(value, bool):
            if value is choice:
                return value
        elif value == choice:
            return value
    _fail(name, f"one of {tuple(choices)}", value)


def optional_bool(name: str, value) -> bool | None:
    if value is not None and not isinstance(value, bool):
        _fail(name, "None, True or False", value)
    return value


def non_empty_str(name: str, value) -> str:
    if not isinstance(value, str) or not value:
        _fail(name, "a non-empty string", value)
    return value
