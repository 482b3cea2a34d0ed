"""Bounds and mask-gradient estimators for training LEX (DESIGN §1)."""

from lexppl.infer.bound import BoundTerms, ImportanceWeightedBound
from lexppl.infer.enumerate import EnumerateBound
from lexppl.infer.pathwise import PathwiseBound, StraightThroughReparam
from lexppl.infer.reinforce import ReinforceBound

__all__ = [
    "BoundTerms",
    "EnumerateBound",
    "ImportanceWeightedBound",
    "PathwiseBound",
    "ReinforceBound",
    "StraightThroughReparam",
]

from lexppl.infer.concrete import ConcreteBound, ConcreteReparam
from lexppl.infer.rebar import RebarBound
from lexppl.infer.relax import MaskControl, RelaxBound
from lexppl.infer.vimco import VimcoBound

__all__ += ["ConcreteBound", "ConcreteReparam", "VimcoBound"]
__all__ += ["MaskControl", "RebarBound", "RelaxBound"]
