"""Multiple imputation from a mixture of discretised logistics (LEX App. B.6-B.7)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor
from torch.distributions import Categorical, Distribution

from lexppl.imputers.base import Imputer, NotFittedError, _check_data
from lexppl.imputers.gaussian_mixture import _masked_sum
from lexppl.numerics import flush_denormals

__all__ = [
    "MixtureOfLogisticsImputer",
    "MixtureOfLogisticsMeansImputer",
    "discretized_logistic_log_prob",
]

_EMPTY = torch.Size()
#: Number of intensity levels: pixel values are ``k / 255`` for ``k = 0, ..., 255``.
NUM_LEVELS = 256
_MIN_LOG_SCALE = -7.0
_FIT_METHODS = ("gradient", "em")


def _log1mexp(a: Tensor) -> Tensor:
    r""":math:`\log(1 - e^{-a})` for :math:`a > 0`, stable at both ends (Mächler, 2012)."""
    return torch.where(a > math.log(2.0), torch.log1p(-torch.exp(-a)), torch.log(-torch.expm1(-a)))


def discretized_logistic_log_prob(
    x: Tensor, loc: Tensor, log_scale: Tensor, num_levels: int = NUM_LEVELS
) -> Tensor:
    r"""
    Log-probability of the discretised logistic distribution (LEX paper App. B.6, after
    Salimans et al. 2017), elementwise.

    With pixel intensities on the grid :math:`x = k/(n-1)`, :math:`k \in \{0, \dots, n-1\}`
    (:math:`n` = ``num_levels``, 256 for 8-bit images) and half a bin :math:`\delta =
    \tfrac{1}{2(n-1)}`,

    .. math::

        P(x \mid \mu, s) = \sigma\!\left(\frac{x + \delta - \mu}{s}\right)
            - \sigma\!\left(\frac{x - \delta - \mu}{s}\right),

    where the lower edge becomes :math:`-\infty` at :math:`x = 0` and the upper edge
    :math:`+\infty` at :math:`x = 1`, so the :math:`n` probabilities sum to one. This is the
    paper's ``logistic`` of eq. 19 with the intensities rescaled from :math:`\{0, \dots, 255\}`
    to :math:`[0, 1]` (so ``loc`` and ``scale`` are in :math:`[0, 1]` units too). The log is
    computed without cancellation through
    :math:`\sigma(a) - \sigma(b) = \sigma(a)\,\sigma(-b)\,(1 - e^{-(a - b)})`.

    :param torch.Tensor x: values in :math:`[0, 1]`; values off the grid are rounded to the
        nearest level (values outside are clamped).
    :param torch.Tensor loc: location :math:`\mu`, broadcastable with ``x``.
    :param torch.Tensor log_scale: :math:`\log s`, broadcastable with ``x``.
    :param int num_levels: number of levels :math:`n` of the grid.
    :returns: :math:`\log P(x|\mu, s)`, the broadcast shape of the inputs; always finite.
    """
    top = num_levels - 1
    level = torch.round(x.clamp(0.0, 1.0) * top)
    inv_scale = torch.exp(-log_scale)
    centred = level / top - loc
    upper = (centred + 0.5 / top) * inv_scale
    lower = (centred - 0.5 / top) * inv_scale
    # Interior bins: log(σ(upper) - σ(lower)); upper - lower = 1 / (top * s) > 0.
    interior = (
        torch.nn.functional.logsigmoid(upper)
        + torch.nn.functional.logsigmoid(-lower)
        + _log1mexp(inv_scale / top)
    )
    first = torch.nn.functional.logsigmoid(upper)  # lower edge at -inf: log σ(upper)
    last = torch.nn.functional.logsigmoid(-lower)  # upper edge at +inf: log(1 - σ(lower))
    return torch.where(level <= 0, first, torch.where(level >= top, last, interior))


def _sample_discretized_logistic(loc: Tensor, log_scale: Tensor, num_levels: int) -> Tensor:
    # Inverse-CDF draw of a continuous logistic, then rounding to the nearest level with the
    # tails folded onto the end levels: exactly the discretised law above.
    top = num_levels - 1
    tiny = torch.finfo(loc.dtype).tiny
    u = torch.rand_like(loc).clamp(tiny, 1.0 - torch.finfo(loc.dtype).eps)
    draw = loc + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
    return torch.round(draw.clamp(0.0, 1.0) * top) / top


class _MixtureFill(TorchDistribution):
    r"""
    Fill values drawn from a mixture with per-datum component weights: a component
    :math:`k \sim` ``Categorical(logits)`` then, per feature, its discretised logistic (or, with
    ``means=True``, its location clamped to :math:`[0, 1]`).

    :param logits: posterior component logits, shape ``batch_shape + (K,)``.
    :param loc: component locations ``(K, D)``; :param log_scale: ``(K, D)``.
    """

    arg_constraints: ClassVar[dict] = {}
    has_rsample = False

    def __init__(
        self,
        logits: Tensor,
        loc: Tensor,
        log_scale: Tensor,
        event_shape: torch.Size,
        means: bool,
        num_levels: int,
    ) -> None:
        self.logits, self.loc, self.log_scale = logits, loc, log_scale
        self.means, self.num_levels = means, num_levels
        super().__init__(logits.shape[:-1], torch.Size(event_shape), validate_args=False)

    @property
    def support(self):
        return constraints.independent(constraints.unit_interval, len(self.event_shape))

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        logits = self.logits.expand(batch_shape + self.logits.shape[-1:])
        return _MixtureFill(
            logits, self.loc, self.log_scale, self.event_shape, self.means, self.num_levels
        )

    @torch.no_grad()
    def sample(self, sample_shape=_EMPTY) -> Tensor:
        # The imputer computed these logits: no argument check (as in the other imputers'
        # samplers), since torch's fails on an empty batch.
        posterior = Categorical(logits=self.logits, validate_args=False)
        component = posterior.sample(torch.Size(sample_shape))
        loc = self.loc[component]  # sample_shape + batch_shape + (D,)
        if self.means:
            fill = loc.clamp(0.0, 1.0)
        else:
            fill = _sample_discretized_logistic(loc, self.log_scale[component], self.num_levels)
        return fill.reshape(component.shape + self.event_shape)

    def log_prob(self, value):
        raise NotImplementedError(
            "log_prob of a mixture-of-logistics imputation does not factorise over features."
        )


class MixtureOfLogisticsImputer(Imputer):
    r"""
    Multiple imputation from a mixture of discretised logistics (LEX paper App. B.6).

    **Model** (eq. 19). Every pixel intensity is a level :math:`x_d \in \{0, \tfrac{1}{255},
    \dots, 1\}`; given a component :math:`k` the pixels are independent discretised logistics
    (see :func:`discretized_logistic_log_prob`):

    .. math::

        p(x) = \sum_{k=1}^K \pi_k \prod_{d=1}^D \mathrm{logistic}(x_d \mid \mu_d^k, s_d^k).

    **Imputation** (eq. 20-21). The component posterior uses the *observed* pixels only,

    .. math::

        p(k \mid x, z) \propto \pi_k \prod_{d: z_d = 1} \mathrm{logistic}(x_d \mid \mu_d^k,
            s_d^k),

    a component is drawn from it, and every turned-off pixel is drawn from that component's
    discretised logistic, so fill values lie on the grid :math:`\{k/255\}`. Masks with values in
    :math:`(0, 1)` weight each pixel's log-likelihood by :math:`z_d`.

    .. note:: The paper prints eq. 19 and eq. 20 with a sum over pixels, and eq. 20 without
        :math:`\pi_k` in its numerator. Pixels independent given the component make it a
        product, and Bayes' rule puts :math:`\pi_k` in the numerator; this implementation
        follows both.

    **Fit.** Locations are initialised with :class:`sklearn.cluster.KMeans` (centres; weights
    :math:`\pi_k` from the cluster sizes; scales from the within-cluster standard deviations),
    then, over mini-batches of the training data,

    - ``fit="gradient"``: Adam steps on the mean negative log-likelihood of eq. 19;
    - ``fit="em"``: stochastic EM (Celeux & Diebolt, 1985). E-step: the responsibilities
      :math:`p(k|x_i)`; S-step: one component :math:`c_i` drawn from them per datum; M-step:
      the weights move towards the batch frequencies of the :math:`c_i` (step size = batch
      fraction of the data set, so about one epoch of memory) and the locations and scales take
      one Adam step on the complete-data log-likelihood
      :math:`\sum_i \log p(x_i | c_i)` (the discretised logistic has no closed-form maximiser,
      so this is a generalised M-step).

    After :meth:`fit` the parameters are stored as buffers (they travel with ``.to(device)``
    and checkpoints and are not trained further by :func:`lexppl.fit`).
    ``log_likelihoods_`` holds the mean log-likelihood per datum (nats, eq. 19) of the training
    data after every epoch. Draws use torch's global generator (``pyro.set_rng_seed``); the fit
    is reproducible given ``random_state`` and leaves the global generator untouched.

    **Data.** Inputs are intensities scaled to :math:`[0, 1]` (e.g. ``uint8 / 255``), of any
    shape ``(N, ...)``; values off the grid are rounded to the nearest level :math:`k/255`.

    :param int n_components: number of components :math:`K`.
    :param str fit: ``"gradient"`` or ``"em"`` (see above).
    :param int epochs: passes over the data after the KMeans initialisation.
    :param float lr: Adam learning rate.
    :param int batch_size: mini-batch size.
    :param int random_state: seeds KMeans, the shuffling and the S-step; ``None`` for torch's
        current global generator.

    **References**

    [1] H. Senetaire et al., *Explainability as statistical inference*, ICML 2023, App. B.6.

    [2] T. Salimans, A. Karpathy, X. Chen, D. P. Kingma, *PixelCNN++: improving the PixelCNN
        with discretized logistic mixture likelihood and other modifications*, ICLR 2017.

    [3] G. Celeux, J. Diebolt, *The SEM algorithm*, Computational Statistics Quarterly, 1985.
    """

    multiple = True
    requires_fit = True
    _means = False

    def __init__(
        self,
        n_components: int = 10,
        fit: str = "gradient",
        epochs: int = 20,
        lr: float = 1e-2,
        batch_size: int = 128,
        random_state: int | None = 0,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        for arg, value in [
            ("n_components", n_components),
            ("epochs", epochs),
            ("batch_size", batch_size),
        ]:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} {arg} must be an int >= 1; got {value!r}.")
        if fit not in _FIT_METHODS:
            raise ValueError(f"Unknown {name} fit {fit!r}; valid choices are {list(_FIT_METHODS)}.")
        if not lr > 0:
            raise ValueError(f"{name} lr must be > 0; got {lr}.")
        self.n_components, self.fit_method, self.epochs = n_components, fit, epochs
        self.lr, self.batch_size, self.random_state = lr, batch_size, random_state
        self.num_levels = NUM_LEVELS
        self.log_likelihoods_: list[float] = []
        self.register_buffer("loc", torch.empty(0))
        self.register_buffer("log_scale", torch.empty(0))
        self.register_buffer("logits", torch.empty(0))

    # ------------------------------------------------------------------ likelihood
    def _component_log_prob(self, x: Tensor, loc: Tensor, log_scale: Tensor) -> Tensor:
        """Per-pixel log-likelihoods under every component: ``(..., D) -> (..., K, D)``."""
        return discretized_logistic_log_prob(
            x.unsqueeze(-2), loc, log_scale.clamp_min(_MIN_LOG_SCALE), self.num_levels
        )

    def _log_joint(self, x: Tensor, loc: Tensor, log_scale: Tensor, logits: Tensor) -> Tensor:
        """:math:`\\log \\pi_k + \\log p(x|k)`, ``(B, D) -> (B, K)``."""
        return torch.log_softmax(logits, -1) + self._component_log_prob(x, loc, log_scale).sum(-1)

    @torch.no_grad()
    def log_prob(self, X: Tensor) -> Tensor:
        r"""Log-likelihood :math:`\log p(x)` of eq. 19 per datum, shape ``(N,)``."""
        self._check_fitted()
        X = torch.as_tensor(X).to(self.loc).flatten(1)
        return torch.cat(
            [
                torch.logsumexp(self._log_joint(chunk, self.loc, self.log_scale, self.logits), -1)
                for chunk in X.split(1024)
            ]
        )

    def _check_fitted(self) -> None:
        name = type(self).__name__
        if not self.is_fitted:
            raise NotFittedError(f"{name} is not fitted: call {name}.fit(X) with training data.")

    # ------------------------------------------------------------------ fit
    @flush_denormals()
    def fit(self, X: Tensor) -> MixtureOfLogisticsImputer:
        name = type(self).__name__
        X = _check_data(X, name)
        if X.min() < 0 or X.max() > 1:
            raise ValueError(
                f"{name}.fit expects pixel intensities scaled to [0, 1]; got values in "
                f"[{X.min().item():.4g}, {X.max().item():.4g}] (divide 8-bit images by 255)."
            )
        if X.shape[0] < self.n_components:
            raise ValueError(
                f"{name}.fit needs at least n_components={self.n_components} samples; got "
                f"{X.shape[0]}."
            )
        super().fit(X)
        device = self.num_features_.device
        top = self.num_levels - 1
        X = (torch.round(X.flatten(1) * top) / top).to(device=device)
        fork = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork, enabled=self.random_state is not None):
            if self.random_state is not None:
                torch.manual_seed(self.random_state)
            loc, log_scale, logits = self._kmeans_init(X)
            self.log_likelihoods_ = []
            self._optimise(X, loc, log_scale, logits)
        return self

    def _kmeans_init(self, X: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        from sklearn.cluster import KMeans

        data = X.detach().cpu().double().numpy()
        seed = self.random_state
        if seed is None:
            seed = int(torch.randint(2**31 - 1, ()).item())
        kmeans = KMeans(n_clusters=self.n_components, n_init=1, random_state=seed).fit(data)
        labels = torch.as_tensor(kmeans.labels_, device=X.device, dtype=torch.long)
        onehot = torch.nn.functional.one_hot(labels, self.n_components).to(X.dtype)  # (N, K)
        counts = onehot.sum(0)
        loc = torch.as_tensor(kmeans.cluster_centers_, dtype=X.dtype, device=X.device)
        var = (onehot.T @ X.square()) / counts.clamp_min(1)[:, None] - loc.square()
        # A logistic with scale s has standard deviation s·π/√3; floor at a few levels so that
        # constant pixels of a cluster do not start with a degenerate scale.
        scale = var.clamp_min(0).sqrt() * math.sqrt(3) / math.pi
        log_scale = scale.clamp_min(2.0 / (self.num_levels - 1)).log()
        logits = (counts + 1).log()
        return loc.clamp(0.0, 1.0), log_scale, logits

    def _optimise(self, X: Tensor, loc: Tensor, log_scale: Tensor, logits: Tensor) -> None:
        n = X.shape[0]
        loc, log_scale = loc.clone().requires_grad_(), log_scale.clone().requires_grad_()
        logits = logits.clone().requires_grad_(self.fit_method == "gradient")
        params = [loc, log_scale] + ([logits] if self.fit_method == "gradient" else [])
        optimizer = torch.optim.Adam(params, lr=self.lr)
        for _ in range(self.epochs):
            for rows in torch.randperm(n, device=X.device).split(self.batch_size):
                batch = X[rows]
                if self.fit_method == "gradient":
                    loss = -torch.logsumexp(self._log_joint(batch, loc, log_scale, logits), -1)
                else:
                    loss = self._sem_step(batch, loc, log_scale, logits, rows.numel() / n)
                optimizer.zero_grad(set_to_none=True)
                loss.mean().backward()
                optimizer.step()
            self._store(loc, log_scale, logits)
            self.log_likelihoods_.append(float(self.log_prob(X).mean()))
        self._store(loc, log_scale, logits)

    def _sem_step(
        self, batch: Tensor, loc: Tensor, log_scale: Tensor, logits: Tensor, rate: float
    ) -> Tensor:
        # E- and S-steps: one component per datum from its responsibilities.
        with torch.no_grad():
            joint = self._log_joint(batch, loc, log_scale, logits)
            component = Categorical(logits=joint).sample()
            frequency = torch.bincount(component, minlength=self.n_components) / batch.shape[0]
            weights = (1 - rate) * torch.softmax(logits, -1) + rate * frequency
            logits.copy_(weights.clamp_min(1e-8).log())
        # Generalised M-step on the complete-data log-likelihood of the locations and scales.
        return -discretized_logistic_log_prob(
            batch,
            loc[component],
            log_scale[component].clamp_min(_MIN_LOG_SCALE),
            self.num_levels,
        ).sum(-1)

    def _store(self, loc: Tensor, log_scale: Tensor, logits: Tensor) -> None:
        self.loc = loc.detach().clone()
        self.log_scale = log_scale.detach().clamp_min(_MIN_LOG_SCALE)
        self.logits = torch.log_softmax(logits.detach(), -1)

    # ------------------------------------------------------------------ imputation
    def fill_distribution(self, x: Tensor, z: Tensor) -> Distribution:
        event_dim = x.dim() - 1
        shape = torch.broadcast_shapes(x.shape, z.shape)
        batch_shape = shape[: len(shape) - event_dim]
        num_features = x.shape[1:].numel()
        with torch.no_grad():
            loc = self.loc.to(x.dtype)
            log_scale = self.log_scale.to(x.dtype)
            x_flat = x.detach().reshape((*x.shape[: x.dim() - event_dim], num_features))
            z_flat = z.detach().expand(shape).reshape((*batch_shape, num_features))
            pixel = self._component_log_prob(x_flat, loc, log_scale)  # (N, K, D)
            # eq. 20: sum over the observed pixels only (z-weighted), as one batched product
            # (a broadcast matmul would copy `pixel` once per mask particle).
            logits = self.logits.to(x.dtype) + _masked_sum(z_flat, pixel, batch_shape)
        return _MixtureFill(logits, loc, log_scale, x.shape[1:], self._means, self.num_levels)


class MixtureOfLogisticsMeansImputer(MixtureOfLogisticsImputer):
    r"""
    Multiple imputation with the *locations* of a mixture of discretised logistics (LEX paper
    App. B.7, eq. 22): a component :math:`k \sim p(k \mid x, z)` is drawn as in
    :class:`MixtureOfLogisticsImputer` (eq. 20) and the turned-off pixels take its location,

    .. math::

        p_\iota(\tilde x_{1-z} \mid x, z) = \sum_k p(k \mid x, z)\,
            \mathbf 1\{\tilde x_{1-z} = (\mu^k)_{1-z}\},

    clamped to :math:`[0, 1]` (the locations are not rounded to the grid). The fit and
    parameters are those of :class:`MixtureOfLogisticsImputer`.

    **References**

    [1] H. Senetaire et al., *Explainability as statistical inference*, ICML 2023, App. B.7.
    """

    _means = True
