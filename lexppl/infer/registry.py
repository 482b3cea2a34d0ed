"""Estimators by name: the one explicit table behind ``make_bound("vimco", num_masks=4)``."""

from __future__ import annotations

import functools
from collections.abc import Callable

from lexppl.infer.bound import ImportanceWeightedBound
from lexppl.infer.concrete import ConcreteBound
from lexppl.infer.enumerate import EnumerateBound
from lexppl.infer.pathwise import PathwiseBound
from lexppl.infer.rebar import RebarBound
from lexppl.infer.reinforce import ReinforceBound
from lexppl.infer.relax import RelaxBound
from lexppl.infer.vimco import VimcoBound

__all__ = ["ESTIMATORS", "make_bound"]

#: Estimator name -> bound class (or a class with a preset option).
ESTIMATORS: dict[str, Callable[..., ImportanceWeightedBound]] = {
    "pathwise": PathwiseBound,
    "simple": functools.partial(PathwiseBound, method="marginal"),
    "concrete": ConcreteBound,
    "reinforce": ReinforceBound,
    "vimco": VimcoBound,
    "rebar": RebarBound,
    "relax": RelaxBound,
    "enumerate": EnumerateBound,
}


def make_bound(name: str, **options) -> ImportanceWeightedBound:
    """The bound of estimator ``name`` built with ``options``, e.g.
    ``make_bound("vimco", num_masks=4)`` or ``make_bound("enumerate", num_imputations=2)``.

    :raises ValueError: for an unknown name (the message lists the valid ones).
    """
    if name not in ESTIMATORS:
        raise ValueError(f"Unknown estimator {name!r}; valid choices are {sorted(ESTIMATORS)}.")
    return ESTIMATORS[name](**options)
