"""Bounds and mask-gradient estimators for training LEX (DESIGN §1)."""

from lexppl.infer.bound import BoundTerms, ImportanceWeightedBound
from lexppl.infer.concrete import ConcreteBound, ConcreteReparam
from lexppl.infer.enumerate import EnumerateBound
from lexppl.infer.pathwise import STRAIGHT_THROUGH_METHODS, PathwiseBound, StraightThroughReparam
from lexppl.infer.rebar import RebarBound
from lexppl.infer.registry import ESTIMATORS, make_bound
from lexppl.infer.reinforce import ReinforceBound
from lexppl.infer.relax import MaskControl, RelaxBound
from lexppl.infer.rws import ReweightedWakeSleepBound
from lexppl.infer.vimco import VimcoBound

__all__ = [
    "ESTIMATORS",
    "STRAIGHT_THROUGH_METHODS",
    "BoundTerms",
    "ConcreteBound",
    "ConcreteReparam",
    "EnumerateBound",
    "ImportanceWeightedBound",
    "MaskControl",
    "PathwiseBound",
    "RebarBound",
    "ReinforceBound",
    "RelaxBound",
    "ReweightedWakeSleepBound",
    "StraightThroughReparam",
    "VimcoBound",
    "make_bound",
]
