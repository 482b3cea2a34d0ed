"""
The seed systems as LEX parametrisations and evaluators (DESIGN §2, "The seed systems").

- :class:`EvalX`: the EVAL-X evaluator of Jethani et al. (2021), a predictor trained on
  Bernoulli(1/2)-masked inputs and frozen, scoring selections by eACC / eAUROC.
- :mod:`~lexppl.methods.presets`: L2X, INVASE, REAL-X, BASE-X and LEX with multiple imputation
  as configured LEX models (:class:`Method`).
- :func:`ail` (:mod:`~lexppl.methods.ail_meed`): AIL / MEED, the L2X LEX model with the selector
  conditioned on the black box's output, an adversarial complement approximator and a
  warm-start prior.
- :func:`rationale` (:mod:`~lexppl.methods.rationale_selection`): rationale selection of Lei et al.
  (2016), Bernoulli masks over sequence positions with L1 and continuity penalties.
"""

from lexppl.methods.ail_meed import AIL, AILConvNet, ail
from lexppl.methods.evalx import EvalX
from lexppl.methods.presets import (
    Method,
    basex,
    invase,
    l2x,
    lex_multiple_imputation,
    realx,
)
from lexppl.methods.rationale_selection import rationale

__all__ = [
    "AIL",
    "AILConvNet",
    "EvalX",
    "Method",
    "ail",
    "basex",
    "invase",
    "l2x",
    "lex_multiple_imputation",
    "rationale",
    "realx",
]
