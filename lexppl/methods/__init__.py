"""
The seed systems as LEX parametrisations and evaluators (DESIGN §2, "The seed systems").

- :class:`EvalX`: the EVAL-X evaluator of Jethani et al. (2021), a predictor trained on
  Bernoulli(1/2)-masked inputs and frozen, scoring selections by eACC / eAUROC.
"""

from lexppl.methods.evalx import EvalX

__all__ = ["EvalX"]

from lexppl.methods.presets import (
    Method,
    basex,
    invase,
    l2x,
    lex_multiple_imputation,
    realx,
)

__all__ += ["Method", "basex", "invase", "l2x", "lex_multiple_imputation", "realx"]
