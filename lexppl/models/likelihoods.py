"""Likelihoods: map the predictor's output to the distribution of the target y."""

from __future__ import annotations

from typing import ClassVar

import torch
from pyro.distributions import Bernoulli, Categorical, Normal, TorchDistribution, constraints
from torch import Tensor, nn
from torch.distributions import Distribution

__all__ = [
    "BernoulliLikelihood",
    "CategoricalLikelihood",
    "NormalLikelihood",
    "SoftTargetCategorical",
    "SoftTargetLikelihood",
]


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
        if not 0 < scale < float("inf"):  # also refuses NaN
            raise ValueError(f"NormalLikelihood scale must be positive and finite; got {scale}.")
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


class SoftTargetCategorical(TorchDistribution):
    r"""
    A categorical likelihood scored on *soft* targets: for a probability vector :math:`q`,
    :math:`\log p(q) = \sum_c q_c \log \mathrm{softmax}(\ell)_c` (the cross-entropy of
    L2X and of post-hoc regimes that mimic a black box's class probabilities, LEX §2.5). For a
    one-hot :math:`q` it equals the categorical log-likelihood.

    Batch shape ``logits.shape[:-1]``, event shape ``(C,)``; samples are one-hot vectors.
    """

    arg_constraints: ClassVar[dict] = {"logits": constraints.real_vector}
    support = constraints.simplex

    def __init__(self, logits: Tensor, validate_args=None) -> None:
        self.logits = logits - logits.logsumexp(-1, keepdim=True)
        super().__init__(logits.shape[:-1], logits.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(SoftTargetCategorical, _instance)
        batch_shape = torch.Size(batch_shape)
        # The logits are already normalised; a second logsumexp would only cost time.
        new.logits = self.logits.expand(batch_shape + self.event_shape)
        super(SoftTargetCategorical, new).__init__(
            batch_shape, self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    @property
    def probs(self) -> Tensor:
        return self.logits.exp()

    @property
    def mean(self) -> Tensor:
        return self.probs

    def sample(self, sample_shape=torch.Size()) -> Tensor:  # noqa: B008
        index = Categorical(logits=self.logits).sample(sample_shape)
        return torch.nn.functional.one_hot(index, self.event_shape[0]).to(self.logits.dtype)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return (value * self.logits).sum(-1)


class SoftTargetLikelihood(nn.Module):
    """Classification on soft targets ``y`` of shape ``(N, C)`` (class probabilities, e.g. a
    black box's): :class:`SoftTargetCategorical` of the predictor's logits."""

    def forward(self, logits: Tensor) -> Distribution:
        return SoftTargetCategorical(logits)
