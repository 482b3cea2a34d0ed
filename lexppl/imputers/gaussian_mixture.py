"""Multiple imputation from a Gaussian mixture conditioned on the kept features (LEX App. B.2-B.3).

A mixture of :math:`C` diagonal (or spherical) Gaussians
:math:`p(x) = \\sum_c \\pi_c \\mathcal N(x; \\mu_c, \\operatorname{diag}\\sigma^2_c)` is fitted with
scikit-learn. Because each component factorises over features, the conditional of the turned-off
features given the kept ones is again a mixture, with the component posterior computed from the
kept features only — exact, cheap and vectorised over mask particles.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor
from torch.distributions import Categorical, Distribution

from lexppl.imputers.base import Imputer, _check_data, _floating

__all__ = ["GaussianMixtureImputer", "GaussianMixtureMeansImputer"]

_EMPTY = torch.Size()
_COVARIANCE_TYPES = ("diag", "spherical")


# ------------------------------------------------------------------------------ helpers
def _fill_shapes(x: Tensor, z: Tensor) -> tuple[torch.Size, torch.Size]:
    """``(batch_shape, event_shape)`` of the fill distribution for inputs ``x`` (N, ...)."""
    event_dim = x.dim() - 1
    shape = torch.broadcast_shapes(x.shape, z.shape)
    return shape[: len(shape) - event_dim], shape[len(shape) - event_dim :]


def _flat_mask(z: Tensor, batch_shape: torch.Size, event_shape: torch.Size) -> Tensor:
    """``z`` broadcast to ``batch_shape + event_shape`` and flattened to ``batch_shape + (F,)``."""
    return z.expand(batch_shape + event_shape).reshape((*batch_shape, event_shape.numel()))


def _masked_sum(z: Tensor, table: Tensor, batch_shape: torch.Size) -> Tensor:
    r"""
    :math:`s_{\ldots n c} = \sum_f z_{\ldots n f}\, t_{n c f}` as one batched matrix product.

    :param z: masks ``batch_shape + (F,)`` whose last batch dim is the data dim ``N``.
    :param table: per-datum, per-component, per-feature terms ``(N, C, F)``.
    :returns: ``batch_shape + (C,)``. Only ``N·C·F`` memory, whatever the number of particles.
    """
    num_components, num_features = table.shape[1:]
    rows = batch_shape[-1] if len(batch_shape) else 1
    table = table.expand(rows, num_components, num_features)
    particles = batch_shape[:-1].numel()  # explicit, not -1: N = 0 (an empty batch) is valid
    zf = z.reshape(particles, rows, num_features).transpose(0, 1)  # (N, M, F)
    out = torch.bmm(zf, table.transpose(1, 2))  # (N, M, C)
    return out.transpose(0, 1).reshape((*batch_shape, num_components))


def _diag_log_normal(x: Tensor, means: Tensor, variances: Tensor) -> Tensor:
    r"""Per-feature :math:`\log\mathcal N(x_{nf}; \mu_{cf}, \sigma^2_{cf})`, shape ``(N, C, F)``."""
    diff = x[:, None, :] - means
    return -0.5 * (diff.square() / variances + variances.log() + math.log(2 * math.pi))


class _ComponentMixture(TorchDistribution):
    r"""
    A mixture over ``C`` components with per-datum weights, sampled ancestrally.

    Draw :math:`c \sim \mathrm{Categorical}(\text{logits})`, then
    :math:`\hat x = \mu_c + \sigma_c \odot \varepsilon` (``scales`` given) or :math:`\hat x = \mu_c`
    (``scales=None``: a mixture of point masses).

    :param logits: normalised component log-weights ``batch_shape + (C,)``.
    :param means: component means ``(C, F)``.
    :param scales: component standard deviations ``(C, F)`` or ``None``.
    :param event_shape: shape of one input (``F`` elements).
    :param z: flattened masks ``batch_shape + (F,)``; :meth:`log_prob` scores the coordinates
        with ``z = 0`` only.
    """

    arg_constraints: ClassVar[dict] = {}
    has_rsample = False

    def __init__(self, logits, means, scales, event_shape, z) -> None:
        self.logits, self.means, self.scales, self.z = logits, means, scales, z
        super().__init__(logits.shape[:-1], torch.Size(event_shape), validate_args=False)

    @property
    def support(self):
        return constraints.independent(constraints.real, len(self.event_shape))

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        logits = self.logits.expand(batch_shape + self.logits.shape[-1:])
        z = self.z.expand(batch_shape + self.z.shape[-1:])
        return _ComponentMixture(logits, self.means, self.scales, self.event_shape, z)

    def sample(self, sample_shape=_EMPTY) -> Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        with torch.no_grad():
            c = Categorical(logits=self.logits, validate_args=False).sample(sample_shape)
            value = self.means[c]  # shape + (F,)
            if self.scales is not None:
                value = value + self.scales[c] * torch.randn_like(value)
        return value.reshape(shape + self.event_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        if self.scales is None:
            raise NotImplementedError(
                "log_prob is not available for an imputation by component means (a mixture of "
                "point masses has no density)."
            )
        event_dim = len(self.event_shape)
        flat = value.reshape((*value.shape[: value.dim() - event_dim], -1))[..., None, :]
        per_feature = -0.5 * (
            ((flat - self.means) / self.scales).square()
            + 2 * self.scales.log()
            + math.log(2 * math.pi)
        )  # (..., C, F)
        imputed = (1 - self.z)[..., None, :]
        return (self.logits + (imputed * per_feature).sum(-1)).logsumexp(-1)


# ------------------------------------------------------------------------------ imputers
class GaussianMixtureImputer(Imputer):
    r"""
    Multiple imputation from a Gaussian mixture model (GMM) conditioned on the kept features
    (LEX paper App. B.2, eq. 13-15).

    :meth:`fit` fits scikit-learn's :class:`~sklearn.mixture.GaussianMixture` with diagonal or
    spherical covariances to the flattened data (eq. 13),

    .. math:: p(x) = \sum_{c=1}^C \pi_c \prod_{d=1}^D \mathcal N(x_d; \mu_{cd}, \sigma^2_{cd}),

    and stores :math:`\log\pi`, :math:`\mu` and :math:`\sigma^2` as buffers. For an input
    :math:`x` and a mask :math:`z` (1 = kept), the component posterior uses the kept features
    only (eq. 14),

    .. math:: p(c \mid x_z) \propto \pi_c \prod_{d: z_d = 1} \mathcal N(x_d; \mu_{cd},
        \sigma^2_{cd}),

    computed in log space for every mask particle at once. An imputation draws
    :math:`c \sim p(c|x_z)` and then the turned-off features from
    :math:`\mathcal N(\mu_c, \operatorname{diag}\sigma^2_c)` (eq. 15); since each component
    factorises over features, this is the *exact* conditional :math:`p(x_{1-z} | x_z)` of the
    fitted mixture. With no kept features it is the mixture itself, and with a soft mask the
    kept features enter the posterior weighted by :math:`z_d`.

    .. note:: Eq. 14 of the paper omits the mixing weights :math:`\pi_c` (eq. 20 has them in
        its denominator only); Bayes' rule includes them, and so does this implementation.

    The fill distribution has batch shape ``broadcast(x.shape, z.shape)[:-len(event)]`` (e.g.
    ``(L, N)`` for ``L`` mask particles) and event shape ``x.shape[1:]``; it is sampled
    ancestrally. Its ``log_prob`` is the density of the turned-off coordinates,
    :math:`\log\sum_c p(c|x_z)\prod_{d:z_d=0}\mathcal N(\tilde x_d;\mu_{cd},\sigma^2_{cd})`.
    Cost per call: :math:`O(N C D)` memory for the per-feature log-densities plus one batched
    matrix product over the particles.

    :param int n_components: number of mixture components :math:`C`. Default 10.
    :param str covariance_type: ``"diag"`` (one variance per component and feature) or
        ``"spherical"`` (one variance per component).
    :param int max_iter: EM iterations of scikit-learn's fit.
    :param float reg_covar: added to the variances (scikit-learn's regularisation).
    :param float noise: width of uniform noise :math:`U(0, \text{noise})` added to the data
        before fitting (only the fit; App. B.2 dequantises discrete images this way).
    :param int random_state: seed of the EM initialisation and of the noise.

    Fit on training data only (never on the data being explained, if that is a test set).
    Imputations use torch's global generator, so ``pyro.set_rng_seed`` makes them reproducible.

    **References**

    [1] H. Senetaire, D. Garreau, J. Frellsen, P.-A. Mattei, *Explainability as statistical
        inference*, ICML 2023, App. B.2.
    [2] F. Pedregosa et al., *Scikit-learn: machine learning in Python*, JMLR 2011.
    """

    multiple = True
    requires_fit = True

    def __init__(
        self,
        n_components: int = 10,
        covariance_type: str = "diag",
        max_iter: int = 100,
        reg_covar: float = 1e-6,
        noise: float = 0.0,
        random_state: int | None = 0,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
            raise ValueError(f"{name} n_components must be an int >= 1; got {n_components!r}.")
        if covariance_type not in _COVARIANCE_TYPES:
            raise ValueError(
                f"Unknown covariance_type {covariance_type!r} for {name}; choose one of "
                f"{list(_COVARIANCE_TYPES)} (a full covariance has no factorised conditional)."
            )
        if noise < 0:
            raise ValueError(f"{name} noise must be >= 0; got {noise!r}.")
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.max_iter = max_iter
        self.reg_covar = reg_covar
        self.noise = noise
        self.random_state = random_state
        self.register_buffer("log_weights", torch.empty(0))
        self.register_buffer("means", torch.empty(0))
        self.register_buffer("variances", torch.empty(0))

    # ---------------------------------------------------------------- fitting
    def _fit_mixture(self, X: Tensor):
        """Fit scikit-learn's GaussianMixture to flattened ``X``; returns the estimator."""
        from sklearn.mixture import GaussianMixture

        flat = X.reshape(X.shape[0], -1).detach().cpu().double().numpy()
        if flat.shape[0] < self.n_components:
            raise ValueError(
                f"{type(self).__name__} needs at least n_components={self.n_components} rows "
                f"to fit; got {flat.shape[0]}."
            )
        if self.noise > 0:
            rng = np.random.default_rng(self.random_state)
            flat = flat + rng.uniform(0.0, self.noise, size=flat.shape)
        gmm = GaussianMixture(
            n_components=self.n_components,
            covariance_type=self.covariance_type,
            max_iter=self.max_iter,
            reg_covar=self.reg_covar,
            random_state=self.random_state,
        ).fit(flat)
        variances = np.asarray(gmm.covariances_)
        if self.covariance_type == "spherical":
            variances = np.repeat(variances[:, None], flat.shape[1], axis=1)
        self._set_mixture(gmm.weights_, gmm.means_, variances)
        return gmm

    def _set_mixture(self, weights, means, variances) -> None:
        device, dtype = self.log_weights.device, torch.get_default_dtype()
        self.log_weights = torch.as_tensor(np.log(weights), dtype=dtype, device=device)
        self.means = torch.as_tensor(means, dtype=dtype, device=device).clone()
        self.variances = torch.as_tensor(variances, dtype=dtype, device=device).clone()

    def fit(self, X: Tensor) -> GaussianMixtureImputer:
        """Fit the mixture to training data ``X`` of shape ``(n, ...)``; returns ``self``."""
        X = _check_data(X, type(self).__name__)
        super().fit(X)
        self._fit_mixture(X)
        return self

    @classmethod
    def from_parameters(
        cls, weights: Tensor, means: Tensor, variances: Tensor, **kwargs
    ) -> GaussianMixtureImputer:
        r"""
        A fitted imputer with known mixture parameters (e.g. a known true data distribution).

        :param weights: mixing weights :math:`\pi` ``(C,)``, positive, summing to 1.
        :param means: :math:`\mu` ``(C, D)``.
        :param variances: :math:`\sigma^2` ``(C, D)`` (or ``(C,)`` for spherical), positive.
        :param kwargs: other constructor arguments.
        """
        weights, means = torch.as_tensor(weights), torch.as_tensor(means)
        variances = torch.as_tensor(variances)
        if variances.dim() == 1:
            variances = variances[:, None].expand_as(means)
        if weights.dim() != 1 or means.dim() != 2 or variances.shape != means.shape:
            raise ValueError(
                f"Expected weights (C,), means (C, D), variances (C, D) or (C,); got "
                f"{tuple(weights.shape)}, {tuple(means.shape)}, {tuple(variances.shape)}."
            )
        if means.shape[0] != weights.shape[0]:
            raise ValueError("weights and means must have the same number of components.")
        if not (weights > 0).all() or abs(float(weights.sum()) - 1) > 1e-5:
            raise ValueError(f"weights must be positive and sum to 1; got {weights}.")
        if not (variances > 0).all() or not torch.isfinite(means).all():
            raise ValueError("variances must be positive and means finite.")
        imputer = cls(n_components=weights.shape[0], **kwargs)
        imputer.num_features_.fill_(means.shape[1])
        imputer.log_weights = weights.log().clone()
        imputer.means = means.clone()
        imputer.variances = variances.clone()
        return imputer

    # ---------------------------------------------------------------- inference
    def component_log_posterior(self, x: Tensor, z: Tensor) -> Tensor:
        r"""
        :math:`\log p(c \mid x_z)` (eq. 14 with the mixing weights), normalised over ``c``.

        :param x: inputs ``(N, ...)``. :param z: masks broadcastable to ``x`` (e.g.
            ``(L, N, ...)``); 1 = kept.
        :returns: ``batch_shape + (C,)`` with ``batch_shape = broadcast(x, z)`` batch dims.
        """
        x = _floating(x)
        batch_shape, event_shape = _fill_shapes(x, z)
        x_flat = x.detach().flatten(1)  # not reshape(N, -1), ambiguous for N = 0
        z_flat = _flat_mask(z.detach().to(x.dtype), batch_shape, event_shape)
        means, variances = self.means.to(x.dtype), self.variances.to(x.dtype)
        with torch.no_grad():
            log_lik = _masked_sum(z_flat, _diag_log_normal(x_flat, means, variances), batch_shape)
            logits = self.log_weights.to(x.dtype) + log_lik
            return logits - logits.logsumexp(-1, keepdim=True)

    def fill_distribution(self, x: Tensor, z: Tensor) -> Distribution:
        batch_shape, event_shape = _fill_shapes(x, z)
        logits = self.component_log_posterior(x, z)
        z_flat = _flat_mask(z.detach().to(x.dtype), batch_shape, event_shape)
        return _ComponentMixture(
            logits,
            self.means.to(x.dtype),
            self._component_scales(x.dtype),
            event_shape,
            z_flat,
        )

    def _component_scales(self, dtype) -> Tensor | None:
        return self.variances.to(dtype).sqrt()

    def extra_repr(self) -> str:
        return (
            f"n_components={self.n_components}, covariance_type={self.covariance_type!r}, "
            f"fitted={self.is_fitted}"
        )


class GaussianMixtureMeansImputer(GaussianMixtureImputer):
    r"""
    Multiple imputation by the *mean* of a Gaussian-mixture component drawn from the
    component posterior ("means of GMM", LEX paper App. B.3, eq. 16):

    .. math:: p_\iota(\tilde x \mid x, z) = \sum_c p(c \mid x_z)\,
        \mathbf 1\{\tilde x_{1-z} = (\mu_c)_{1-z}\},\qquad \tilde x_z = x_z .

    The component is drawn from :math:`p(c|x_z)` exactly as in
    :class:`GaussianMixtureImputer` (eq. 14, with mixing weights); the turned-off features are
    then set to :math:`\mu_c` instead of being sampled around it, which gives smoother, more
    in-distribution looking imputations (e.g. average digit shapes). Imputations are random
    through :math:`c` only; the fill distribution has no density (``log_prob`` raises).

    Takes the same arguments as :class:`GaussianMixtureImputer`.

    **References**

    [1] H. Senetaire, D. Garreau, J. Frellsen, P.-A. Mattei, *Explainability as statistical
        inference*, ICML 2023, App. B.3.
    """

    def _component_scales(self, dtype) -> Tensor | None:
        return None
