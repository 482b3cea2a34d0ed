"""Multiple imputation by resampling held-out rows of the cluster chosen from the kept features
(LEX App. B.4 "GMM Dataset" and App. B.5 "KMeans Dataset")."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor
from torch.distributions import Categorical, Distribution

from lexppl.imputers.base import Imputer, _check_data, _floating, _in_layout
from lexppl.imputers.gaussian_mixture import (
    GaussianMixtureImputer,
    _fill_shapes,
    _flat_mask,
    _masked_sum,
)

__all__ = ["GMMDatasetImputer", "KMeansDatasetImputer"]

_EMPTY = torch.Size()
_RESAMPLING = ("assigned", "density")


def _diag_log_density(x: Tensor, means: Tensor, variances: Tensor) -> Tensor:
    r"""
    :math:`\log\mathcal N(x_j; \mu_c, \operatorname{diag}\sigma^2_c)` for all components and
    rows, ``(C, n)``, by expanding the square into matrix products (float64, so that the
    expansion loses no precision), in ``O((n + C) D)`` memory.
    """
    x, means, variances = x.double(), means.double().to(x.device), variances.double().to(x.device)
    precision = variances.reciprocal()
    quadratic = (
        x.square() @ precision.T
        - 2 * x @ (means * precision).T
        + (means.square() * precision).sum(-1)
    )
    log_det = variances.log().sum(-1) + x.shape[-1] * math.log(2 * math.pi)
    return (-0.5 * (quadratic + log_det)).T


def _stacked_cdf(weights: Tensor) -> Tensor:
    r"""
    Cumulative distribution of each row of ``weights`` ``(C, n)``, shifted by its row index and
    flattened: entry ``c·n + j`` is :math:`c + \sum_{i \le j} w_{ci} / \sum_i w_{ci}`.

    One sorted float64 vector, so that rows for any tensor of components are drawn with a single
    :func:`torch.searchsorted` (see :class:`_ClusterResampling`). Rows of zero total weight are
    left at the constant ``c`` (the imputers never choose such components).
    """
    weights = weights.double()
    total = weights.sum(-1, keepdim=True)
    cdf = weights.cumsum(-1) / total.clamp_min(torch.finfo(torch.float64).tiny)
    cdf[:, -1] = torch.where(total[:, 0] > 0, 1.0, 0.0)  # exact 1 at the end of each block
    offsets = torch.arange(weights.shape[0], dtype=torch.float64, device=weights.device)
    return (cdf.clamp(max=1.0) + offsets[:, None]).flatten()


class _ClusterResampling(TorchDistribution):
    r"""
    Draw a cluster :math:`c \sim \mathrm{Categorical}(\text{logits})`, then a stored row
    :math:`j \sim p(j \mid c)` and return ``rows[j]``.

    :math:`p(j|c)` is given by ``cdf`` (:func:`_stacked_cdf`): with :math:`u \sim U(0, 1]`,
    :math:`j` is the first index with ``cdf[c·n + j] >= c + u``. Vectorised over any batch and
    sample shape; no Python loop.

    :param logits: cluster log-weights ``batch_shape + (C,)``.
    :param rows: the stored rows ``(n,) + event_shape``.
    :param cdf: stacked cumulative row probabilities ``(C·n,)``, float64.
    """

    arg_constraints: ClassVar[dict] = {}
    has_rsample = False

    def __init__(self, logits: Tensor, rows: Tensor, cdf: Tensor) -> None:
        self.logits, self.rows, self.cdf = logits, rows, cdf
        super().__init__(logits.shape[:-1], rows.shape[1:], validate_args=False)

    @property
    def support(self):
        return constraints.independent(constraints.real, len(self.event_shape))

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        logits = self.logits.expand(batch_shape + self.logits.shape[-1:])
        return _ClusterResampling(logits, self.rows, self.cdf)

    def sample(self, sample_shape=_EMPTY) -> Tensor:
        n = self.rows.shape[0]
        with torch.no_grad():
            c = Categorical(logits=self.logits, validate_args=False).sample(sample_shape)
            u = 1.0 - torch.rand(c.shape, dtype=torch.float64, device=c.device)  # in (0, 1]
            position = torch.searchsorted(self.cdf, (c.double() + u).flatten())
            index = (position.reshape(c.shape) - c * n).clamp(0, n - 1)
            return self.rows[index]

    def log_prob(self, value):
        raise NotImplementedError(
            "log_prob is not available for dataset resampling (a mixture of point masses at "
            "stored rows has no density)."
        )


def _check_rows(rows, X: Tensor, name: str) -> Tensor:
    rows = X if rows is None else _check_data(rows, name)
    if rows.shape[1:] != X.shape[1:]:
        raise ValueError(
            f"{name}.fit got rows of shape {tuple(rows.shape[1:])} per instance but data of "
            f"shape {tuple(X.shape[1:])}."
        )
    return rows


class GMMDatasetImputer(GaussianMixtureImputer):
    r"""
    Multiple imputation by resampling stored (held-out) rows of a Gaussian-mixture component
    drawn from the kept features ("GMM Dataset", LEX paper App. B.4, eq. 17-18):

    .. math:: p_\iota(\tilde x \mid x, z) = \sum_c p(c \mid x_z) \sum_j
        p_{\text{resampling}}(x^j_{\text{val}} \mid c)\,
        \mathbf 1\{\tilde x_{1-z} = (x^j_{\text{val}})_{1-z}\}, \qquad \tilde x_z = x_z .

    The component posterior :math:`p(c|x_z)` is that of :class:`GaussianMixtureImputer`
    (eq. 14, with mixing weights). ``resampling`` chooses :math:`p(j|c)`:

    - ``"assigned"`` (default): uniform over the stored rows whose most probable component is
      :math:`c` (MAP assignment, as scikit-learn's ``predict``); components without rows are
      excluded from :math:`p(c|x_z)` (renormalised).
    - ``"density"``: the paper's eq. 17,
      :math:`p(x^j | c) = \mathcal N(x^j; \mu_c, \Sigma_c) / \sum_i \mathcal N(x^i; \mu_c,
      \Sigma_c)`. In high dimension this concentrates on the few rows closest to :math:`\mu_c`.

    :meth:`fit` ``(X, rows=None)`` fits the mixture on ``X`` and stores ``rows`` (default
    ``X``) as the resampling set. Pass a *held-out* (validation) set as ``rows`` — or as ``X``
    when only one set is given, as :class:`~lexppl.LEXExplainer` does with ``imputer_data`` —
    so that the imputer never copies the instance being explained. Other arguments as
    :class:`GaussianMixtureImputer`.

    **References**

    [1] H. Senetaire, D. Garreau, J. Frellsen, P.-A. Mattei, *Explainability as statistical
        inference*, ICML 2023, App. B.4.
    """

    def __init__(self, *args, resampling: str = "assigned", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if resampling not in _RESAMPLING:
            raise ValueError(
                f"Unknown resampling {resampling!r} for {type(self).__name__}; choose one of "
                f"{list(_RESAMPLING)}."
            )
        self.resampling = resampling
        self.register_buffer("rows", torch.empty(0))
        self.register_buffer("labels", torch.empty(0, dtype=torch.long))
        self.register_buffer("counts", torch.empty(0))
        self.register_buffer("cdf", torch.empty(0, dtype=torch.float64))

    def fit(self, X: Tensor, rows: Tensor | None = None) -> GMMDatasetImputer:
        """Fit the mixture on ``X`` ``(n, ...)`` and store ``rows`` (default ``X``), held-out
        data of the same shape, for resampling; returns ``self``."""
        name = type(self).__name__
        X = _check_data(X, name)
        rows = _check_rows(rows, X, name)
        Imputer.fit(self, X)
        self._fit_mixture(X)
        self._store_rows(rows)
        return self

    @classmethod
    def from_parameters(
        cls, weights: Tensor, means: Tensor, variances: Tensor, rows: Tensor | None = None, **kwargs
    ) -> GMMDatasetImputer:
        """A fitted imputer with known mixture parameters (see
        :meth:`GaussianMixtureImputer.from_parameters`) resampling ``rows`` ``(n, D)``."""
        if rows is None:
            raise ValueError(f"{cls.__name__}.from_parameters needs the rows to resample.")
        imputer = super().from_parameters(weights, means, variances, **kwargs)
        rows = _check_data(rows, cls.__name__)
        if rows[0].numel() != imputer.means.shape[1]:
            raise ValueError(
                f"rows have {rows[0].numel()} features but the mixture has "
                f"{imputer.means.shape[1]}."
            )
        imputer._store_rows(rows)
        return imputer

    def _store_rows(self, rows: Tensor) -> None:
        """Assign ``rows`` to components (MAP, as scikit-learn's ``predict``) and tabulate
        :math:`p(j|c)`."""
        flat = rows.reshape(rows.shape[0], -1)
        log_density = _diag_log_density(flat, self.means, self.variances)  # (C, n)
        labels = (log_density + self.log_weights.double().to(flat.device)[:, None]).argmax(0)
        counts = torch.bincount(labels, minlength=self.n_components).double()
        if self.resampling == "assigned":
            weights = torch.nn.functional.one_hot(labels, self.n_components).T.double()
        else:
            # eq. 17: N(x_j | mu_c, Sigma_c) normalised over j, computed in log space
            weights = (log_density - log_density.max(-1, keepdim=True).values).exp()
            counts = torch.full_like(counts, float(flat.shape[0]))
        device, dtype = self.means.device, self.means.dtype
        # In the mixture's dtype (the default float), as the inputs come: rows kept in float64
        # would be copied to float32 at every call (3-5x slower on 20,000 rows).
        self.rows = rows.detach().to(device=device, dtype=dtype).clone()
        self.labels = labels.to(device)
        self.counts = counts.to(device=device, dtype=dtype)
        self.cdf = _stacked_cdf(weights).to(device)

    def component_log_posterior(self, x: Tensor, z: Tensor) -> Tensor:
        r""":math:`\log p(c|x_z)` restricted to components that own stored rows."""
        logits = super().component_log_posterior(x, z)
        logits = logits.masked_fill(self.counts.to(x.device) == 0, float("-inf"))
        return logits - logits.logsumexp(-1, keepdim=True)

    def fill_distribution(self, x: Tensor, z: Tensor) -> Distribution:
        rows = _in_layout(self.rows.to(x.dtype), x, leading=1)
        return _ClusterResampling(self.component_log_posterior(x, z), rows, self.cdf)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, resampling={self.resampling!r}"


class KMeansDatasetImputer(Imputer):
    r"""
    Multiple imputation by resampling stored (held-out) rows of the K-means cluster nearest to
    the input on its kept features ("KMeans Dataset", LEX paper App. B.5):

    .. math:: k^*(x, z) = \arg\min_k \sum_d z_d (x_d - \mu_{kd})^2, \qquad
        p_\iota(\tilde x \mid x, z) = \frac{1}{|S_{k^*}|} \sum_{j \in S_{k^*}}
        \mathbf 1\{\tilde x_{1-z} = (x^j_{\text{val}})_{1-z}\},\quad \tilde x_z = x_z,

    where :math:`S_k` are the stored rows assigned to cluster :math:`k`. Imputations are random
    through the row only. Ties (in particular an empty mask, for which every distance is 0) are
    broken at random in proportion to the cluster sizes, so that an empty mask imputes from the
    marginal of the stored rows (as :class:`~lexppl.imputers.MarginalImputer`). Clusters without
    stored rows are never chosen.

    :meth:`fit` ``(X, rows=None)`` runs scikit-learn's :class:`~sklearn.cluster.KMeans` on the
    flattened ``X`` and stores ``rows`` (default ``X``), assigned to their nearest centre. Pass
    a *held-out* (validation) set so that the imputer never copies the instance explained.

    :param int n_clusters: number of clusters. Default 10.
    :param int n_init: K-means restarts. :param int max_iter: Lloyd iterations.
    :param int random_state: seed of the K-means initialisation.

    **References**

    [1] H. Senetaire, D. Garreau, J. Frellsen, P.-A. Mattei, *Explainability as statistical
        inference*, ICML 2023, App. B.5.
    """

    multiple = True
    requires_fit = True

    def __init__(
        self,
        n_clusters: int = 10,
        n_init: int = 1,
        max_iter: int = 300,
        random_state: int | None = 0,
    ) -> None:
        super().__init__()
        if isinstance(n_clusters, bool) or not isinstance(n_clusters, int) or n_clusters < 1:
            raise ValueError(
                f"{type(self).__name__} n_clusters must be an int >= 1; got {n_clusters!r}."
            )
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.random_state = random_state
        self.register_buffer("centers", torch.empty(0))
        self.register_buffer("rows", torch.empty(0))
        self.register_buffer("labels", torch.empty(0, dtype=torch.long))
        self.register_buffer("counts", torch.empty(0))
        self.register_buffer("cdf", torch.empty(0, dtype=torch.float64))

    def fit(self, X: Tensor, rows: Tensor | None = None) -> KMeansDatasetImputer:
        """Cluster ``X`` ``(n, ...)`` and store ``rows`` (default ``X``), held-out data of the
        same shape, for resampling; returns ``self``."""
        from sklearn.cluster import KMeans

        name = type(self).__name__
        X = _check_data(X, name)
        rows = _check_rows(rows, X, name)
        if X.shape[0] < self.n_clusters:
            raise ValueError(
                f"{name} needs at least n_clusters={self.n_clusters} rows to fit; got {X.shape[0]}."
            )
        super().fit(X)
        flat = X.reshape(X.shape[0], -1).detach().cpu().double().numpy()
        kmeans = KMeans(
            self.n_clusters,
            n_init=self.n_init,
            max_iter=self.max_iter,
            random_state=self.random_state,
        ).fit(flat)
        rows_flat = rows.reshape(rows.shape[0], -1).detach().cpu().double().numpy()
        labels = torch.as_tensor(kmeans.predict(rows_flat), dtype=torch.long)
        device, dtype = self.centers.device, torch.get_default_dtype()
        self.centers = torch.as_tensor(np.asarray(kmeans.cluster_centers_), dtype=dtype).to(device)
        self.rows = rows.detach().to(device=device, dtype=dtype).clone()  # as GMMDatasetImputer
        self.labels = labels.to(device)
        self.counts = torch.bincount(labels, minlength=self.n_clusters).to(device, dtype)
        weights = torch.nn.functional.one_hot(labels, self.n_clusters).T
        self.cdf = _stacked_cdf(weights).to(device)
        return self

    def masked_distances(self, x: Tensor, z: Tensor) -> Tensor:
        r"""
        :math:`\sum_d z_d (x_d - \mu_{kd})^2` for every cluster, ``batch_shape + (K,)``.

        :param x: inputs ``(N, ...)``. :param z: masks broadcastable to ``x``; 1 = kept.
        """
        x = _floating(x)
        batch_shape, event_shape = _fill_shapes(x, z)
        x_flat = x.detach().flatten(1)  # not reshape(N, -1), ambiguous for N = 0
        z_flat = _flat_mask(z.detach().to(x.dtype), batch_shape, event_shape)
        with torch.no_grad():
            squares = (x_flat[:, None, :] - self.centers.to(x.dtype)).square()  # (N, K, F)
            return _masked_sum(z_flat, squares, batch_shape)

    def fill_distribution(self, x: Tensor, z: Tensor) -> Distribution:
        distances = self.masked_distances(x, z)
        counts = self.counts.to(x.dtype)
        distances = distances.masked_fill(counts == 0, float("inf"))
        nearest = distances <= distances.min(-1, keepdim=True).values
        logits = torch.where(nearest, counts.log(), torch.full_like(distances, float("-inf")))
        return _ClusterResampling(logits, _in_layout(self.rows.to(x.dtype), x, leading=1), self.cdf)

    def extra_repr(self) -> str:
        return f"n_clusters={self.n_clusters}, fitted={self.is_fitted}"
