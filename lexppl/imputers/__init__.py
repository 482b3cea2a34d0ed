"""Imputers: distributions over full inputs that keep the selected features (DESIGN §2)."""

from lexppl.imputers.base import ImputedDistribution, Imputer, NotFittedError
from lexppl.imputers.constant import ConstantImputer, MeanImputer
from lexppl.imputers.gaussian import GaussianImputer
from lexppl.imputers.marginal import MarginalImputer

__all__ = [
    "ConstantImputer",
    "GaussianImputer",
    "ImputedDistribution",
    "Imputer",
    "MarginalImputer",
    "MeanImputer",
    "NotFittedError",
]
