"""Imputers: distributions over full inputs that keep the selected features (DESIGN §2)."""

from lexppl.imputers.base import ImputedDistribution, Imputer, NotFittedError
from lexppl.imputers.constant import ConstantImputer, MeanImputer
from lexppl.imputers.dataset import GMMDatasetImputer, KMeansDatasetImputer
from lexppl.imputers.gaussian import GaussianImputer
from lexppl.imputers.gaussian_mixture import GaussianMixtureImputer, GaussianMixtureMeansImputer
from lexppl.imputers.marginal import MarginalImputer
from lexppl.imputers.mixture_of_logistics import (
    MixtureOfLogisticsImputer,
    MixtureOfLogisticsMeansImputer,
)
from lexppl.imputers.vaeac import VAEACImputer

__all__ = [
    "ConstantImputer",
    "GMMDatasetImputer",
    "GaussianImputer",
    "GaussianMixtureImputer",
    "GaussianMixtureMeansImputer",
    "ImputedDistribution",
    "Imputer",
    "KMeansDatasetImputer",
    "MarginalImputer",
    "MeanImputer",
    "MixtureOfLogisticsImputer",
    "MixtureOfLogisticsMeansImputer",
    "NotFittedError",
    "VAEACImputer",
]
