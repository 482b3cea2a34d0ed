"""Distributions over feature masks :math:`z \\in \\{0, 1\\}^D` (1 = selected/kept).

- :class:`IndependentBernoulli`: factorised Bernoulli selector, with
  :meth:`~IndependentBernoulli.straight_through` and :meth:`~IndependentBernoulli.relaxed`
  pathwise replacements.
- :class:`KSubset`: exact conditional Bernoulli over masks with exactly ``k`` ones, with
  :meth:`~KSubset.straight_through` (Gumbel top-k) and :meth:`~KSubset.relaxed` replacements.
"""

from lexppl.distributions.independent_bernoulli import (
    MAX_ENUMERATE_FEATURES,
    IndependentBernoulli,
    IndependentBernoulliStraightThrough,
    IndependentRelaxedBernoulli,
)
from lexppl.distributions.k_subset import (
    MAX_ENUMERATE_SUBSETS,
    RELAXED_KSUBSET_METHODS,
    KSubset,
    KSubsetStraightThrough,
    RelaxedKSubset,
)
from lexppl.distributions.relaxed import (
    gumbel_noise,
    hard_topk,
    logistic_noise,
    relaxed_max_of_k,
    relaxed_topk,
    straight_through,
)

__all__ = [
    "MAX_ENUMERATE_FEATURES",
    "MAX_ENUMERATE_SUBSETS",
    "RELAXED_KSUBSET_METHODS",
    "IndependentBernoulli",
    "IndependentBernoulliStraightThrough",
    "IndependentRelaxedBernoulli",
    "KSubset",
    "KSubsetStraightThrough",
    "RelaxedKSubset",
    "gumbel_noise",
    "hard_topk",
    "logistic_noise",
    "relaxed_max_of_k",
    "relaxed_topk",
    "straight_through",
]
