"""Likelihoods: map the predictor's output to the distribution of the target y."""

from __future__ import annotations

import torch
from pyro.distributions import Bernoulli, Categorical, Normal
from torch import Tensor, nn
from torch.distributions import Distribution

__all__ = ["BernoulliLikelihood", "CategoricalLikelihood", "NormalLikelihood"]


class CategoricalLikelihood(nn.Module):
    """Classification:
    :math:`y \\sim \\mathrm{Categorical}(\\mathrm{softmax}(f_\\theta(\\tilde x)))`.

    The predictor outputs logits of shape ``(..., C)``; ``y`` holds class indices.
    """

    def forward(self, logits: Tensor) -> Distribution:
        return Categorical(logits=logits)


class BernoulliLikelihood(nn.Module):
    """Binary targets: :math:`y \\sim \\mathrm{Bernoulli}(\\sigma(f_\\theta(\\tilde x)))`.

    The predictor outputs one logit, shape ``(..., 1)``; ``y`` is 0./1.
    """

    def forward(self, logits: Tensor) -> Distribution:
        return Bernoulli(logits=logits.squeeze(-1))


class NormalLikelihood(nn.Module):
    """Regression: :math:`y \\sim \\mathcal N(f_\\theta(\\tilde x), \\sigma^2)`.

    The predictor outputs the mean, shape ``(..., 1)``.

    :param float scale: initial noise standard deviation :math:`\\sigma`.
    :param bool learnable: learn :math:`\\sigma` by maximum likelihood (default).
    """

    def __init__(self, scale: float = 1.0, learnable: bool = True) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"NormalLikelihood scale must be positive; got {scale}.")
        log_scale = torch.tensor(float(scale)).log()
        if learnable:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    @property
    def scale(self) -> Tensor:
        return self.log_scale.exp()

    def forward(self, mean: Tensor) -> Distribution:
        return Normal(mean.squeeze(-1), self.scale.to(mean.dtype))
