"""Factorised Bernoulli distribution over binary feature masks, with pathwise replacements."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution
from torch import Tensor
from torch.distributions import constraints
from torch.distributions.utils import (
    lazy_property,
    logits_to_probs,
    probs_to_logits,
)

from lexppl.distributions.relaxed import (
    _check_temperature,
    logistic_noise,
    straight_through,
)

_EMPTY_SHAPE = torch.Size()

__all__ = [
    "MAX_ENUMERATE_FEATURES",
    "IndependentBernoulli",
    "IndependentBernoulliStraightThrough",
    "IndependentRelaxedBernoulli",
]

#: Largest number of features ``D`` for which :meth:`IndependentBernoulli.enumerate_support`
#: materialises the ``2**D`` masks.
MAX_ENUMERATE_FEATURES = 20


def _parse_mask_params(
    logits: Tensor | None, probs: Tensor | None, name: str
) -> tuple[str, Tensor]:
    """Check that exactly one of ``logits``/``probs`` is given and that it has a feature dim.

    Returns ``(param_name, tensor)``; integer tensors are cast to the default float dtype.
    """
    if (logits is None) == (probs is None):
        raise ValueError("Either `logits` or `probs` must be specified, but not both.")
    param_name, value = ("logits", logits) if logits is not None else ("probs", probs)
    value = torch.as_tensor(value)
    if not value.is_floating_point():
        value = value.to(torch.get_default_dtype())
    if value.dim() < 1:
        raise ValueError(
            f"{name}: `{param_name}` must have at least one dimension (the D features, last); "
            f"got a tensor of shape {tuple(value.shape)}."
        )
    return param_name, value


class IndependentBernoulli(TorchDistribution):
    r"""
    Factorised Bernoulli distribution over binary masks :math:`z \in \{0, 1\}^D`:

    .. math::

        p(z) = \prod_{d=1}^{D} \mathrm{Bernoulli}(z_d \mid \sigma(\ell_d))
             = \prod_{d=1}^{D} \sigma(\ell_d)^{z_d} \, (1 - \sigma(\ell_d))^{1 - z_d}.

    This is the selection distribution :math:`p_\gamma(z \mid x)` of LEX [1] when the number of
    selected features is not constrained. Mask convention: :math:`z_d = 1` means feature ``d``
    is *selected/kept*, :math:`z_d = 0` means it is turned off (imputed). Masks are float
    tensors of 0.0/1.0 with the dtype of the parameters.

    Shapes: parameters of shape ``batch_shape + (D,)`` give ``batch_shape`` and
    ``event_shape = (D,)``; samples have shape ``sample_shape + batch_shape + (D,)`` and
    :meth:`log_prob` returns ``sample_shape + batch_shape``.

    Pathwise replacements (same batch/event shapes, ``has_rsample=True``) are returned by
    :meth:`straight_through` (binary forward, binary-concrete gradient [2, 3, 4]) and
    :meth:`relaxed` (soft binary-concrete sample, e.g. for constant imputation).

    :param logits: Bernoulli logits :math:`\ell`, shape ``batch_shape + (D,)``.
    :param probs: Bernoulli probabilities :math:`\sigma(\ell)` (alternative to ``logits``).
    :param validate_args: torch distribution argument/sample validation flag.

    References:

    [1] Explainability as statistical inference, H. H. Senetaire, D. Garreau, J. Frellsen,
        P.-A. Mattei (ICML 2023).
    [2] The Concrete Distribution: A Continuous Relaxation of Discrete Random Variables,
        C. J. Maddison, A. Mnih, Y. W. Teh (ICLR 2017).
    [3] Categorical Reparameterization with Gumbel-Softmax, E. Jang, S. Gu, B. Poole
        (ICLR 2017).
    [4] Estimating or Propagating Gradients Through Stochastic Neurons for Conditional
        Computation, Y. Bengio, N. Léonard, A. Courville (2013).
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "logits": constraints.independent(constraints.real, 1),
        "probs": constraints.independent(constraints.unit_interval, 1),
    }
    support = constraints.independent(constraints.boolean, 1)
    has_rsample = False
    has_enumerate_support = True

    def __init__(
        self,
        logits: Tensor | None = None,
        probs: Tensor | None = None,
        validate_args: bool | None = None,
    ) -> None:
        param_name, param = _parse_mask_params(logits, probs, type(self).__name__)
        setattr(self, param_name, param)
        super().__init__(param.shape[:-1], param.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(IndependentBernoulli, _instance)
        batch_shape = torch.Size(batch_shape)
        param_shape = batch_shape + self.event_shape
        for name in ("logits", "probs"):
            if name in self.__dict__:
                setattr(new, name, getattr(self, name).expand(param_shape))
        super(IndependentBernoulli, new).__init__(
            batch_shape, self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    @lazy_property
    def logits(self) -> Tensor:
        return probs_to_logits(self.probs, is_binary=True)

    @lazy_property
    def probs(self) -> Tensor:
        return logits_to_probs(self.logits, is_binary=True)

    @property
    def num_features(self) -> int:
        """Number of features ``D`` (the event size)."""
        return self.event_shape[0]

    def sample(self, sample_shape: torch.Size = _EMPTY_SHAPE) -> Tensor:
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            return torch.bernoulli(self.probs.expand(shape))

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        logits, value = torch.broadcast_tensors(self.logits, value.to(self.logits.dtype))
        return -F.binary_cross_entropy_with_logits(logits, value, reduction="none").sum(-1)

    @property
    def mean(self) -> Tensor:
        """Selection probabilities :math:`\\mathbb{E}[Z_d] = \\sigma(\\ell_d)`."""
        return self.probs

    @property
    def mode(self) -> Tensor:
        """The most probable mask: :math:`z_d = 1[\\sigma(\\ell_d) > 1/2]`."""
        return (self.probs > 0.5).to(self.probs.dtype)

    @property
    def variance(self) -> Tensor:
        return self.probs * (1.0 - self.probs)

    def entropy(self) -> Tensor:
        return F.binary_cross_entropy_with_logits(self.logits, self.probs, reduction="none").sum(-1)

    def enumerate_support(self, expand: bool = True) -> Tensor:
        """All ``2**D`` masks, shape ``(2**D,) + batch_shape + (D,)`` (or with singleton batch
        dims if ``expand=False``). Row ``i`` is the binary expansion of ``i`` (first feature =
        most significant bit). Refused for ``D > MAX_ENUMERATE_FEATURES``."""
        D = self.num_features
        if D > MAX_ENUMERATE_FEATURES:
            raise ValueError(
                f"enumerate_support would create 2**D masks with D={D}; refusing for "
                f"D > {MAX_ENUMERATE_FEATURES} (the limit MAX_ENUMERATE_FEATURES)."
            )
        param = self.logits if "logits" in self.__dict__ else self.probs
        codes = torch.arange(2**D, device=param.device).unsqueeze(-1)
        shifts = torch.arange(D - 1, -1, -1, device=param.device)
        masks = ((codes >> shifts) & 1).to(param.dtype)
        masks = masks.reshape((2**D,) + (1,) * len(self.batch_shape) + (D,))
        if expand:
            masks = masks.expand((2**D, *self.batch_shape, D))
        return masks

    def straight_through(
        self, temperature: float = 0.5, threshold: float = 0.5
    ) -> IndependentBernoulliStraightThrough:
        """Straight-through binary-concrete replacement; see
        :class:`IndependentBernoulliStraightThrough`."""
        return IndependentBernoulliStraightThrough(
            logits=self.logits,
            temperature=temperature,
            threshold=threshold,
            validate_args=self._validate_args,
        )

    def relaxed(self, temperature: float = 0.5) -> IndependentRelaxedBernoulli:
        """Soft binary-concrete replacement; see :class:`IndependentRelaxedBernoulli`."""
        return IndependentRelaxedBernoulli(
            logits=self.logits, temperature=temperature, validate_args=self._validate_args
        )


def _check_threshold(threshold: float) -> float:
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a float in (0, 1); got {threshold!r}.") from None
    if not 0.0 < value < 1.0:
        raise ValueError(f"threshold must be a float in (0, 1); got {threshold!r}.")
    return value


class IndependentBernoulliStraightThrough(IndependentBernoulli):
    r"""
    Straight-through binary-concrete replacement of :class:`IndependentBernoulli`.

    :meth:`rsample` draws a binary-concrete (relaxed Bernoulli [1, 2]) sample

    .. math::

        u_d = \sigma\big((\ell_d + L_d) / \tau\big), \qquad L_d \sim \mathrm{Logistic}(0, 1),

    and returns the hard mask :math:`z_d = 1[u_d > t]` in the forward pass with the gradient of
    :math:`u` in the backward pass (straight-through estimator [3]). With the default threshold
    :math:`t = 1/2` the event :math:`u_d > 1/2` is :math:`\ell_d + L_d > 0`, whose probability is
    :math:`\sigma(\ell_d)`: forward samples are exact draws from :class:`IndependentBernoulli`.
    For another threshold the forward law is :math:`\mathrm{Bernoulli}(\sigma(\ell_d - \tau\,
    \mathrm{logit}(t)))`.

    :meth:`log_prob` (and ``mean``, ``entropy``, ...) are those of the underlying
    :class:`IndependentBernoulli` with logits :math:`\ell`, evaluated at the hard value; this is
    the exact log-probability when :math:`t = 1/2`. Batch shape ``batch_shape``, event shape
    ``(D,)``, masks use the convention 1 = selected.

    :param logits: Bernoulli logits, shape ``batch_shape + (D,)``.
    :param probs: Bernoulli probabilities (alternative to ``logits``).
    :param temperature: concrete temperature :math:`\tau > 0`.
    :param threshold: hard threshold :math:`t \in (0, 1)` applied to the relaxed sample.

    References:

    [1] The Concrete Distribution: A Continuous Relaxation of Discrete Random Variables,
        C. J. Maddison, A. Mnih, Y. W. Teh (ICLR 2017).
    [2] Categorical Reparameterization with Gumbel-Softmax, E. Jang, S. Gu, B. Poole
        (ICLR 2017).
    [3] Estimating or Propagating Gradients Through Stochastic Neurons for Conditional
        Computation, Y. Bengio, N. Léonard, A. Courville (2013).
    """

    has_rsample = True

    def __init__(
        self,
        logits: Tensor | None = None,
        probs: Tensor | None = None,
        *,
        temperature: float = 0.5,
        threshold: float = 0.5,
        validate_args: bool | None = None,
    ) -> None:
        self.temperature = _check_temperature(temperature)
        self.threshold = _check_threshold(threshold)
        super().__init__(logits=logits, probs=probs, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(IndependentBernoulliStraightThrough, _instance)
        new.temperature = self.temperature
        new.threshold = self.threshold
        return super().expand(batch_shape, _instance=new)

    def rsample(self, sample_shape: torch.Size = _EMPTY_SHAPE) -> Tensor:
        shape = self._extended_shape(sample_shape)
        logits = self.logits.expand(shape)
        scores = (logits + logistic_noise(shape, logits)) / self.temperature
        # u > t  <=>  logit(u) > logit(t): threshold in logit space, exact for t = 1/2.
        cut = math.log(self.threshold) - math.log1p(-self.threshold)
        hard = (scores > cut).to(logits.dtype)
        return straight_through(hard, torch.sigmoid(scores))

    def sample(self, sample_shape: torch.Size = _EMPTY_SHAPE) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)


class IndependentRelaxedBernoulli(TorchDistribution):
    r"""
    Factorised binary-concrete (relaxed Bernoulli) distribution [1, 2] over soft masks
    :math:`u \in (0, 1)^D`:

    .. math::

        u_d = \sigma\big((\ell_d + L_d) / \tau\big), \qquad L_d \sim \mathrm{Logistic}(0, 1),

    with density (:math:`x_d = \mathrm{logit}(u_d)`)

    .. math::

        \log p(u) = \sum_d \Big[\log\tau + \log\sigma(\tau x_d - \ell_d)
            + \log\sigma(\ell_d - \tau x_d) - \log\sigma(x_d) - \log\sigma(-x_d)\Big].

    As :math:`\tau \to 0`, :math:`u_d` tends to a :math:`\mathrm{Bernoulli}(\sigma(\ell_d))`
    mask (1 = selected). Soft masks are meant for constant imputation
    (:math:`\tilde x = u \odot x + (1 - u) \odot c`) only. Batch shape ``batch_shape``, event
    shape ``(D,)``.

    :param logits: Bernoulli logits :math:`\ell`, shape ``batch_shape + (D,)``.
    :param probs: Bernoulli probabilities (alternative to ``logits``).
    :param temperature: concrete temperature :math:`\tau > 0`.

    References:

    [1] The Concrete Distribution: A Continuous Relaxation of Discrete Random Variables,
        C. J. Maddison, A. Mnih, Y. W. Teh (ICLR 2017).
    [2] Categorical Reparameterization with Gumbel-Softmax, E. Jang, S. Gu, B. Poole
        (ICLR 2017).
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "logits": constraints.independent(constraints.real, 1),
        "probs": constraints.independent(constraints.unit_interval, 1),
    }
    support = constraints.independent(constraints.unit_interval, 1)
    has_rsample = True
    has_enumerate_support = False

    def __init__(
        self,
        logits: Tensor | None = None,
        probs: Tensor | None = None,
        *,
        temperature: float = 0.5,
        validate_args: bool | None = None,
    ) -> None:
        self.temperature = _check_temperature(temperature)
        param_name, param = _parse_mask_params(logits, probs, type(self).__name__)
        setattr(self, param_name, param)
        super().__init__(param.shape[:-1], param.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(IndependentRelaxedBernoulli, _instance)
        batch_shape = torch.Size(batch_shape)
        param_shape = batch_shape + self.event_shape
        for name in ("logits", "probs"):
            if name in self.__dict__:
                setattr(new, name, getattr(self, name).expand(param_shape))
        new.temperature = self.temperature
        super(IndependentRelaxedBernoulli, new).__init__(
            batch_shape, self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    @lazy_property
    def logits(self) -> Tensor:
        return probs_to_logits(self.probs, is_binary=True)

    @lazy_property
    def probs(self) -> Tensor:
        return logits_to_probs(self.logits, is_binary=True)

    def rsample(self, sample_shape: torch.Size = _EMPTY_SHAPE) -> Tensor:
        shape = self._extended_shape(sample_shape)
        logits = self.logits.expand(shape)
        u = torch.sigmoid((logits + logistic_noise(shape, logits)) / self.temperature)
        tiny = torch.finfo(u.dtype).tiny
        eps = torch.finfo(u.dtype).eps
        return u.clamp(min=tiny, max=1.0 - eps)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        # The support is the closed [0, 1]; at its ends the logit is ±inf, so values are clamped
        # into the open interval first, to the bounds rsample clamps its own draws to.
        info = torch.finfo(self.logits.dtype)
        value = value.to(self.logits.dtype).clamp(min=info.tiny, max=1.0 - info.eps)
        x = value.log() - (-value).log1p()
        tau = self.temperature
        diff = tau * x - self.logits
        log_density = (
            math.log(tau)
            + F.logsigmoid(diff)
            + F.logsigmoid(-diff)
            - F.logsigmoid(x)
            - F.logsigmoid(-x)
        )
        return log_density.sum(-1)
