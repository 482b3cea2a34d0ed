"""Multiple imputation from independent Gaussians (the true conditional of S1-S3)."""

from __future__ import annotations

import torch
from pyro.distributions import Normal
from torch import Tensor
from torch.distributions import Distribution

from lexppl.imputers.base import Imputer, _check_data, _in_layout

__all__ = ["GaussianImputer"]


class GaussianImputer(Imputer):
    r"""
    Multiple imputation with independent Gaussians:
    :math:`\hat x_d \sim \mathcal N(\mu_d, \sigma_d^2)` for every turned-off feature.

    With the defaults :math:`\mu = 0, \sigma = 1` this is the *true* conditional
    :math:`p_{data}(x_{1-z} | x_z)` of the synthetic datasets S1-S3 and of L2X's XOR,
    orange-skin and nonlinear-additive sets, whose features are i.i.d. :math:`\mathcal N(0, 1)`
    (LEX paper §4.1, App. C.1; not of L2X's switch set, whose first feature is a mixture).
    :meth:`fit` replaces them by the per-feature mean and standard deviation of the data
    (at least 2 rows).

    :param loc: mean, float or tensor broadcastable to one input. Default 0.
    :param scale: standard deviation (> 0), float or tensor. Default 1.
    """

    multiple = True

    def __init__(self, loc: float | Tensor = 0.0, scale: float | Tensor = 1.0) -> None:
        super().__init__()
        loc = torch.as_tensor(loc, dtype=torch.get_default_dtype())
        scale = torch.as_tensor(scale, dtype=torch.get_default_dtype())
        if not (scale > 0).all():
            raise ValueError(f"GaussianImputer scale must be positive; got {scale}.")
        self.register_buffer("loc", loc.clone())
        self.register_buffer("scale", scale.clone())

    def fit(self, X: Tensor) -> GaussianImputer:
        name = type(self).__name__
        X = _check_data(X, name)
        if X.shape[0] < 2:
            # std of one row is NaN; a made-up scale would set the spread of every imputation.
            raise ValueError(
                f"{name}.fit needs at least 2 rows to estimate a scale; got data of shape "
                f"{tuple(X.shape)}."
            )
        super().fit(X)
        self.loc = X.mean(0).to(self.loc.device)
        self.scale = X.std(0).clamp_min(1e-6).to(self.scale.device)
        return self

    def fill_distribution(self, x: Tensor, z: Tensor) -> Distribution:
        shape = torch.broadcast_shapes(x.shape, z.shape)
        loc, scale = self.loc.to(x.dtype), self.scale.to(x.dtype)
        if self.is_fitted:  # per-feature values in the fit data's layout
            loc, scale = _in_layout(loc, x), _in_layout(scale, x)
        return Normal(loc.expand(shape), scale.expand(shape)).to_event(x.dim() - 1)
