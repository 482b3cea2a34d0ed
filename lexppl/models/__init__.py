"""The LEX model and its likelihoods and regularisers."""

from lexppl.models.bayesian import BayesianLEX, credible_interval, fit_bayesian
from lexppl.models.groups import FeatureGroups, Identity, PatchGrid, PixelGrid
from lexppl.models.lex import IMPUTATION, LEX, MASK, OBSERVED
from lexppl.models.likelihoods import (
    BernoulliLikelihood,
    CategoricalLikelihood,
    NormalLikelihood,
    SoftTargetCategorical,
    SoftTargetLikelihood,
)
from lexppl.models.regularizers import ContinuityPenalty, L1Penalty, RationalePenalty

__all__ = [
    "IMPUTATION",
    "LEX",
    "MASK",
    "OBSERVED",
    "BayesianLEX",
    "BernoulliLikelihood",
    "CategoricalLikelihood",
    "ContinuityPenalty",
    "FeatureGroups",
    "Identity",
    "L1Penalty",
    "NormalLikelihood",
    "PatchGrid",
    "PixelGrid",
    "RationalePenalty",
    "SoftTargetCategorical",
    "SoftTargetLikelihood",
    "credible_interval",
    "fit_bayesian",
]
