r"""Worked examples of LEX as an interpretable building block (LEX paper §2.4).

Three models, each with a synthetic data generator whose relevant features are known:

- :func:`explainable_regression` / :func:`make_regression_data`: LEX with a Gaussian
  likelihood and a learned noise scale.
- :class:`HierarchicalLEX` / :func:`make_hierarchical_data` / :func:`fit_hierarchical`: a
  hierarchical regression with partially pooled group intercepts in which LEX explains the
  shared (group-level) predictor.
- :class:`CoxPartialLikelihood`, :class:`CoxLikelihood`, :func:`explainable_cox` /
  :func:`make_survival_data`: an explainable deep Cox model trained by maximum partial
  likelihood (Breslow's handling of ties).

In every example the selector, imputer and predictor are the ordinary LEX parts; only the
likelihood (the hook ``LEX(likelihood=...)``) or the model around the LEX block changes, and
the bounds of :mod:`lexppl.infer` train them unchanged, with one exception: a Cox datum's term
depends on the masks of its whole risk set, so the Cox model is trained by pathwise bounds
only (the score-function ones and enumeration refuse it).
"""

from __future__ import annotations

import functools
from typing import ClassVar

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor, nn

from lexppl.distributions import KSubset
from lexppl.imputers import GaussianImputer
from lexppl.models.lex import LEX
from lexppl.models.likelihoods import NormalLikelihood
from lexppl.nets import MLP

__all__ = [
    "CoxLikelihood",
    "CoxPartialLikelihood",
    "HierarchicalLEX",
    "explainable_cox",
    "explainable_regression",
    "fit_hierarchical",
    "make_hierarchical_data",
    "make_regression_data",
    "make_survival_data",
]

#: The relevant features of every synthetic example below: the first three of ``x``.
RELEVANT = (0, 1, 2)


def _truth(n: int, num_features: int) -> Tensor:
    truth = torch.zeros(n, num_features)
    truth[:, list(RELEVANT)] = 1.0
    return truth


def _lex(num_features: int, k: int, out: int, hidden, likelihood, name: str) -> LEX:
    if not 1 <= k <= num_features:
        raise ValueError(f"k must lie in [1, num_features={num_features}]; got {k}.")
    return LEX(
        MLP(num_features, num_features, hidden),
        MLP(num_features, out, hidden),
        GaussianImputer(),  # the features are i.i.d. N(0, 1): the true conditional
        functools.partial(KSubset, k=k),
        likelihood,
        name=name,
    )


# ------------------------------------------------------------------------ (a) regression
def make_regression_data(n: int, seed: int = 0, num_features: int = 8, noise: float = 0.1):
    r"""Synthetic regression with known relevant features:

    .. math::

        x \sim \mathcal N(0, I_D),\qquad
        y = 2 x_0 - 2 x_1 + 2 x_2 + \varepsilon,\quad \varepsilon \sim \mathcal N(0,
        \text{noise}^2).

    :returns: ``x`` ``(n, D)``, ``y`` ``(n,)``, ``truth`` ``(n, D)`` with ones on features 0-2.
    """
    if num_features < len(RELEVANT):
        raise ValueError(f"num_features must be >= {len(RELEVANT)}; got {num_features}.")
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, num_features, generator=g)
    y = 2 * x[:, 0] - 2 * x[:, 1] + 2 * x[:, 2]
    y = y + noise * torch.randn(n, generator=g)
    return x, y, _truth(n, num_features)


def explainable_regression(
    num_features: int, k: int, hidden=(32, 32), noise: float = 1.0, name: str = ""
) -> LEX:
    r"""LEX for regression with a Gaussian likelihood and a learned noise scale:

    .. math::

        z \sim \mathrm{KSubset}_k(g_\gamma(x)),\qquad
        \tilde x \sim p_\iota(\cdot \mid x, z) \;(\text{unselected features} \sim \mathcal N(0,1)),
        \qquad y \sim \mathcal N(f_\theta(\tilde x), \sigma^2),

    with :math:`\sigma` learned by maximum likelihood (:class:`NormalLikelihood`, initial value
    ``noise``). Selector and predictor are MLPs with ``hidden`` layers. Train with
    :func:`lexppl.fit` and any bound of :mod:`lexppl.infer`.
    """
    return _lex(num_features, k, 1, hidden, NormalLikelihood(noise), name)


# ------------------------------------------------------------------------ (b) hierarchical
def make_hierarchical_data(
    n: int,
    seed: int = 0,
    num_features: int = 8,
    num_groups: int = 6,
    mu: float = 1.0,
    tau: float = 2.0,
    noise: float = 0.1,
):
    r"""Grouped regression with known relevant features and group effects:

    .. math::

        b_g \sim \mathcal N(\mu, \tau^2),\quad g_i \sim \mathcal U\{0..G-1\},\quad
        x_i \sim \mathcal N(0, I_D),\quad
        y_i = 2 x_{i0} - 2 x_{i1} + 2 x_{i2} + b_{g_i} + \varepsilon_i.

    :returns: ``x`` ``(n, D)``, ``y`` ``(n,)``, ``groups`` (long, ``(n,)``), ``effects``
        ``(G,)`` (the true :math:`b_g`) and ``truth`` ``(n, D)``.
    """
    g = torch.Generator().manual_seed(seed)
    effects = mu + tau * torch.randn(num_groups, generator=g)
    groups = torch.randint(num_groups, (n,), generator=g)
    x, f, truth = make_regression_data(n, seed + 1, num_features, noise=0.0)
    y = f + effects[groups] + noise * torch.randn(n, generator=g)
    return x, y, groups, effects, truth


class HierarchicalLEX(nn.Module):
    r"""
    A hierarchical regression with partial pooling in which LEX explains the shared predictor:

    .. math::

        \mu, \tau &\quad\text{point estimates (empirical Bayes)},\\
        b_g &\sim \mathcal N(\mu, \tau^2),\quad g = 1..G,\\
        z_i \sim p_\gamma(\cdot|x_i),\quad \tilde x_i &\sim p_\iota(\cdot|x_i, z_i),\quad
        y_i \sim \mathcal N(f_\theta(\tilde x_i) + b_{g_i}, \sigma^2).

    The group intercepts are latent variables with a mean-field Gaussian guide
    :math:`q(b_g) = \mathcal N(m_g, s_g^2)`; the LEX bound then adds the global term
    :math:`\log p(b|\mu,\tau) - \log q(b)` of the guide-drawn draw (:meth:`guide`), giving the
    ELBO-in-:math:`b`, importance-weighted-in-:math:`(z, \tilde x)` objective

    .. math::

        \mathbb E_{q(b)}\Big[\sum_i \log \tfrac{1}{LK}\sum_{l,k}
        \mathcal N(y_i \mid f_\theta(\tilde x_i^{l,k}) + b_{g_i}, \sigma^2)
        + \log p(b|\mu,\tau) - \log q(b)\Big].

    The group effect enters through the LEX block's Gaussian likelihood by observing the
    residual :math:`y_i - b_{g_i}` under :math:`\mathcal N(f_\theta(\tilde x_i), \sigma^2)`:
    a translation has unit Jacobian, so its density is exactly
    :math:`\mathcal N(y_i \mid f_\theta(\tilde x_i) + b_{g_i}, \sigma^2)`, and gradients reach
    :math:`q(b)` through the reparameterised draw.

    ``model(x, y, groups)`` and ``guide(x, y, groups)`` take the group index of each datum
    (long, ``(N,)``); train with :func:`fit_hierarchical` (full batch, so that the global term
    is weighted correctly against the data term).
    """

    def __init__(
        self, num_features: int, k: int, num_groups: int, hidden=(32, 32), name: str = "hlex"
    ) -> None:
        super().__init__()
        self.lex = _lex(num_features, k, 1, hidden, NormalLikelihood(1.0), name)
        self.num_groups = num_groups
        self.name = name
        self.mu = nn.Parameter(torch.zeros(()))
        self.log_tau = nn.Parameter(torch.zeros(()))
        self.q_loc = nn.Parameter(torch.zeros(num_groups))
        self.q_log_scale = nn.Parameter(torch.full((num_groups,), -1.0))

    @torch.no_grad()
    def init_from_data(self, y: Tensor, groups: Tensor) -> HierarchicalLEX:
        """Start :math:`q(b)` at the group means of ``y`` and :math:`(\\mu, \\tau)` at their
        mean and spread, so that the predictor starts on residuals (a moment initialisation;
        the objective is unchanged)."""
        counts = torch.bincount(groups, minlength=self.num_groups).clamp(min=1).to(y.dtype)
        means = torch.zeros(self.num_groups, dtype=y.dtype).index_add_(0, groups, y) / counts
        self.q_loc.copy_(means)
        self.mu.copy_(means.mean())
        self.log_tau.fill_(means.std().clamp(min=1e-3).log().item() if self.num_groups > 1 else 0.0)
        return self

    @property
    def tau(self) -> Tensor:
        return self.log_tau.exp()

    def site(self, role: str) -> str:
        return f"{self.name}.{role}"

    def _effects(self) -> tuple[str, str]:
        return self.site("group_effect"), self.site("groups")

    def model(self, x, y=None, groups=None, num_masks: int = 1, num_imputations: int = 1):
        site, plate = self._effects()
        with pyro.plate(plate, self.num_groups, dim=-1):
            b = pyro.sample(site, dist.Normal(self.mu, self.tau))
        residual = None if y is None else y - b[groups]
        return self.lex.model(x, residual, num_masks=num_masks, num_imputations=num_imputations)

    def guide(self, x, y=None, groups=None, **kwargs) -> None:
        site, plate = self._effects()
        with pyro.plate(plate, self.num_groups, dim=-1):
            pyro.sample(site, dist.Normal(self.q_loc, self.q_log_scale.exp()))

    @torch.no_grad()
    def predict(self, x: Tensor, groups: Tensor, num_samples: int = 100) -> Tensor:
        """Predictive mean :math:`\\mathbb E[f_\\theta(\\tilde x)] + m_{g}`."""
        return self.lex.predict(x, num_samples=num_samples) + self.q_loc[groups]


def fit_hierarchical(
    model: HierarchicalLEX,
    bound,
    x: Tensor,
    y: Tensor,
    groups: Tensor,
    *,
    steps: int = 500,
    warmup: int = 0,
    lr: float = 1e-2,
    seed: int = 0,
) -> list[float]:
    """Full-batch Adam on ``bound``'s loss of ``model``; returns the losses per datum.

    The selector is kept at its initial state for the first ``warmup`` of the ``steps``, so
    that the predictor and the group effects first learn from (nearly uniform) random masks,
    as with :func:`lexppl.pretrain_predictor`; this avoids early commitment of the selector to
    a partial explanation."""
    pyro.set_rng_seed(seed)
    selector = set(model.lex.selector.parameters())
    rest = [p for p in model.parameters() if p not in selector]
    optimizer = torch.optim.Adam(rest, lr=lr)
    losses = []
    for step in range(steps):
        if step == warmup:
            optimizer.add_param_group({"params": list(selector)})
        loss = bound.differentiable_loss(model.model, model.guide, x, y, groups) / len(x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# ------------------------------------------------------------------------ (c) Cox
class CoxPartialLikelihood(TorchDistribution):
    r"""
    The Cox partial likelihood of a batch, written per datum (Breslow's treatment of ties):

    .. math::

        \log PL = \sum_i \delta_i \Big[r_i - \log \sum_{j:\, t_j \ge t_i} e^{r_j}\Big],

    for log-risks :math:`r` and observations :math:`y_i = (t_i, \delta_i)` (time, event
    indicator 1 = observed, 0 = censored). :meth:`log_prob` returns the bracketed term of
    every datum (zero for censored ones), so that summing over the batch gives the partial
    log-likelihood and LEX's particle averaging applies datum by datum; the risk set of datum
    :math:`i` in particle :math:`(l, k)` uses the log-risks of the same particle. Risk sets are
    those of the batch passed in (a mini-batch approximation under :func:`lexppl.fit`).

    Batch shape ``log_risk.shape`` (the last dim is the data), event shape ``(2,)``. Not a
    generative model of :math:`(t, \delta)`: :meth:`sample` is not available.

    The terms do not factorise over the data: datum :math:`i`'s depends on the log-risks, so
    the masks, of its whole risk set. Estimators that pair each datum's term with its own mask
    (REINFORCE, VIMCO, REBAR, RELAX) would drop the cross terms of the gradient, and
    enumeration would give every datum the same mask; ``couples_data`` makes those bounds
    refuse it. Pathwise bounds differentiate through every mask and are the ones to use.
    """

    arg_constraints: ClassVar[dict] = {"log_risk": constraints.real}
    #: Read by :class:`~lexppl.infer.bound.ImportanceWeightedBound`: see above.
    couples_data: ClassVar[bool] = True
    support = constraints.real_vector

    def __init__(self, log_risk: Tensor, validate_args=None) -> None:
        if log_risk.dim() < 1:
            raise ValueError("log_risk must have a data dimension (its last).")
        self.log_risk = log_risk
        super().__init__(log_risk.shape, torch.Size((2,)), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        if batch_shape[-1:] != self.log_risk.shape[-1:]:
            raise ValueError("The data dimension of a Cox partial likelihood cannot expand.")
        return CoxPartialLikelihood(self.log_risk.expand(batch_shape))

    def sample(self, sample_shape=torch.Size()) -> Tensor:  # noqa: B008
        # Reached by LEX.predict or Predictive without y; torch's own error says nothing.
        raise NotImplementedError(
            "CoxPartialLikelihood cannot be sampled: a partial likelihood is not a generative "
            "model of (time, event), so LEX.predict and Predictive without y do not apply; "
            "score observed y with log_prob, or read log-risks from the predictor."
        )

    def log_prob(self, value: Tensor) -> Tensor:
        time, event = value[..., 0], value[..., 1]
        if time.dim() != 1 or time.shape[0] != self.log_risk.shape[-1]:
            raise ValueError(
                f"Expected y of shape ({self.log_risk.shape[-1]}, 2) (time, event); "
                f"got {tuple(value.shape)}."
            )
        if self._validate_args and not ((event == 0) | (event == 1)).all():
            raise ValueError("The event indicators y[:, 1] must be 0 or 1.")
        r = self.log_risk
        order = time.argsort(descending=True)
        cumulative = r[..., order].logcumsumexp(-1)  # log sum_{first m in decreasing time}
        # |{j: t_j >= t_i}|: the first that many in decreasing order are exactly the risk set.
        at_risk = len(time) - torch.searchsorted(time.sort().values, time.contiguous())
        log_denominator = cumulative[..., at_risk - 1]
        return event.to(r.dtype) * (r - log_denominator)


class CoxLikelihood(nn.Module):
    """LEX likelihood hook: the predictor's log-risk ``(..., 1)`` ``->``
    :class:`CoxPartialLikelihood`."""

    def forward(self, log_risk: Tensor) -> CoxPartialLikelihood:
        return CoxPartialLikelihood(log_risk.squeeze(-1))


def make_survival_data(
    n: int,
    seed: int = 0,
    num_features: int = 8,
    beta=(1.5, -1.5, 1.0),
    censoring_rate: float = 0.3,
):
    r"""Survival data with known relevant features: exponential event times with a
    proportional hazard on features 0-2 and independent exponential censoring,

    .. math::

        x \sim \mathcal N(0, I_D),\quad T \sim \mathrm{Exp}(e^{\beta^\top x_{0:3}}),\quad
        C \sim \mathrm{Exp}(c),\quad t = \min(T, C),\quad \delta = \mathbb 1[T \le C].

    :returns: ``x`` ``(n, D)``, ``y`` ``(n, 2)`` holding ``(t, δ)``, ``truth`` ``(n, D)``.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, num_features, generator=g)
    log_hazard = x[:, : len(beta)] @ torch.tensor(beta, dtype=x.dtype)
    event_time = -torch.rand(n, generator=g).log() / log_hazard.exp()
    censor_time = -torch.rand(n, generator=g).log() / censoring_rate
    time = torch.minimum(event_time, censor_time)
    event = (event_time <= censor_time).to(x.dtype)
    return x, torch.stack([time, event], -1), _truth(n, num_features)


def explainable_cox(num_features: int, k: int, hidden=(32, 32), name: str = "") -> LEX:
    r"""An explainable deep Cox model (LEX paper §2.4): the predictor outputs the log-risk
    :math:`r_\theta(\tilde x)` of the proportional-hazards model
    :math:`h(t|x) = h_0(t)\, e^{r_\theta(\tilde x)}`, and the LEX bound is built from the
    per-datum terms of the Cox partial likelihood (:class:`CoxPartialLikelihood`):

    .. math::

        \sum_i \log \tfrac{1}{LK} \sum_{l,k} \exp\Big(\delta_i \big[r_\theta(\tilde x_i^{l,k})
        - \log \textstyle\sum_{j: t_j \ge t_i} e^{r_\theta(\tilde x_j^{l,k})}\big]\Big),
        \qquad z \sim \mathrm{KSubset}_k(g_\gamma(x)).

    Targets are ``y = (time, event)`` of shape ``(N, 2)``; train with :func:`lexppl.fit`
    (large batches: risk sets are those of the batch).
    """
    return _lex(num_features, k, 1, hidden, CoxLikelihood(), name)
