"""Checks of the layer sizes the networks are built with."""

from __future__ import annotations

import numbers
from collections.abc import Iterable

__all__ = ["positive_int", "positive_ints"]


def positive_int(value: object, name: str) -> int:
    """``value`` as a Python int >= 1, or a ValueError naming ``name``.

    Any integral number is a size (numpy's too: ``np.prod(shape)`` is an ``np.int64``); a bool
    is not, although Python counts it as an int."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"Expected {name} to be an int >= 1 but got {value!r}.")
    return int(value)


def positive_ints(values: Iterable[object], name: str) -> tuple[int, ...]:
    """Every entry of ``values`` as a Python int >= 1 (see :func:`positive_int`); ``name`` and
    the entry's index name a bad one."""
    return tuple(positive_int(value, f"{name}[{i}]") for i, value in enumerate(values))
