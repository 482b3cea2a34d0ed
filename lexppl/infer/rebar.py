"""REBAR: unbiased, low-variance gradients for Bernoulli and k-subset masks (Tucker et al. 2017)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import pyro
import torch
import torch.nn.functional as F
from pyro.poutine.messenger import Messenger
from torch import Tensor, nn

from lexppl.distributions import IndependentBernoulli, KSubset
from lexppl.distributions.k_subset import sequential_draw
from lexppl.infer.bound import BoundTerms, ImportanceWeightedBound
from lexppl.models.lex import MASK

__all__ = [
    "RebarBound",
    "RebarTuning",
    "conditional_logistic",
    "k_subset_rebar_noise",
    "rebar_noise",
]


# --------------------------------------------------------------------------- the noise
def _open_uniform(like: Tensor) -> Tensor:
    # U(0, 1) strictly inside the interval, so that every logarithm below is finite.
    tiny = torch.finfo(like.dtype).tiny
    eps = torch.finfo(like.dtype).eps
    return torch.rand(like.shape, dtype=like.dtype, device=like.device).clamp(tiny, 1.0 - eps)


def conditional_logistic(logits: Tensor, z: Tensor, v: Tensor) -> Tensor:
    r"""
    The conditional reparameterisation of REBAR [1, App. A]: a draw of
    :math:`\zeta = \ell + \mathrm{logit}(u)`, :math:`u \sim U(0,1)`, *given* the event
    :math:`H(\zeta) = z`, written as a differentiable function of the logits :math:`\ell` and an
    independent :math:`v \sim U(0, 1)`.

    With :math:`\theta = \sigma(\ell)` (so :math:`z = 1 \iff u > 1 - \theta`):

    .. math::

        u' = \begin{cases} 1 - \theta + v\,\theta & z = 1,\\ v\,(1 - \theta) & z = 0,
        \end{cases} \qquad \tilde\zeta = \ell + \log u' - \log(1 - u'),

    computed in log space (``logaddexp`` of :math:`\log\theta` and :math:`\log(1-\theta)`), so
    that it stays finite for saturated logits. :math:`\tilde\zeta > 0` exactly where
    :math:`z = 1`.

    :param logits: :math:`\ell`, any shape.
    :param z: the hard masks :math:`H(\zeta) \in \{0, 1\}`, same shape.
    :param v: uniforms in the open interval (0, 1), same shape.
    :returns: :math:`\tilde\zeta`, same shape, differentiable w.r.t. ``logits``.

    **References**

    [1] G. Tucker, A. Mnih, C. J. Maddison, D. Lawson, J. Sohl-Dickstein, *REBAR: Low-variance,
        unbiased gradient estimates for discrete latent variable models*, NeurIPS 2017.
    """
    return logits + _conditional_logit_uniform(logits, z, v)


def _conditional_logit_uniform(logits: Tensor, z: Tensor, v: Tensor) -> Tensor:
    # logit(u') of conditional_logistic: u ~ U(0, 1) given 1[logits + logit(u) > 0] = z.
    log_theta, log_1m_theta = F.logsigmoid(logits), F.logsigmoid(-logits)
    log_v, log_1m_v = v.log(), (-v).log1p()
    # z = 1: log u' = log(1 - theta + v theta),  log(1 - u') = log theta + log(1 - v)
    on = torch.logaddexp(log_1m_theta, log_theta + log_v) - log_theta - log_1m_v
    # z = 0: log u' = log(1 - theta) + log v,  log(1 - u') = log(theta + (1 - theta)(1 - v))
    off = log_1m_theta + log_v - torch.logaddexp(log_theta, log_1m_theta + log_1m_v)
    return torch.where(z > 0.5, on, off)


def rebar_noise(logits: Tensor, temperature: Tensor | float) -> tuple[Tensor, Tensor, Tensor]:
    r"""
    Draw the three masks of REBAR for independent Bernoulli logits :math:`\ell`:

    .. math::

        \zeta = \ell + \log\tfrac{u}{1-u},\quad z = H(\zeta) = 1[\zeta > 0],\quad
        \hat z = \sigma(\zeta/\tau),\quad \tilde z = \sigma(\tilde\zeta/\tau),\quad
        \tilde\zeta \sim p(\zeta \mid z) \text{ (see } :func:`conditional_logistic`),

    with :math:`u, v \sim U(0,1)` independent. :math:`z` is an exact
    :math:`\mathrm{Bernoulli}(\sigma(\ell))` draw (no gradient); :math:`\hat z` and
    :math:`\tilde z` are differentiable in :math:`\ell` and :math:`\tau`, and :math:`\tilde z`
    has the law of :math:`\hat z` conditionally on :math:`z`.

    :param logits: shape ``batch_shape + (D,)``.
    :param temperature: :math:`\tau > 0` (a float or a 0-dim tensor, possibly learnable).
    :returns: ``(z, z_relaxed, z_conditional)``, each of the shape of ``logits``.
    """
    u, v = _open_uniform(logits), _open_uniform(logits)
    zeta = logits + u.log() - (-u).log1p()
    z = (zeta > 0).to(logits.dtype).detach()
    z_relaxed = torch.sigmoid(zeta / temperature)
    z_conditional = torch.sigmoid(conditional_logistic(logits, z, v) / temperature)
    return z, z_relaxed, z_conditional


#: Bound on the sequential logits of :func:`k_subset_rebar_noise` (forced steps hold +-this).
_SEQUENTIAL_LOGIT_BOUND = 60.0


def _interpolation_weights(left: Tensor, k: int) -> Tensor:
    # Weights w (..., k + 1) with sum_j w_j t_j the linear interpolation of t at the real index
    # left in [0, k] (exact at integers, continuous in left): 1 - frac at floor(left), frac above.
    left = left.clamp(0.0, float(k))
    low = left.detach().floor().clamp(max=max(k - 1, 0)).long()
    frac = (left - low.to(left.dtype)).unsqueeze(-1)
    below = F.one_hot(low, k + 1).to(left.dtype)
    above = F.one_hot((low + 1).clamp(max=k), k + 1).to(left.dtype)
    return below * (1.0 - frac) + above * frac


def k_subset_rebar_noise(
    dist: KSubset, temperature: Tensor | float
) -> tuple[Tensor, Tensor, Tensor]:
    r"""
    The three masks of REBAR for :class:`~lexppl.distributions.KSubset` masks (the
    conditional Bernoulli with exactly ``k`` ones), through its exact sequential sampler.

    Feature by feature, with :math:`j_d` ones left, :math:`a_d(j) =
    \mathrm{logit}\,P(Z_d = 1 \mid j)` (:attr:`~lexppl.distributions.KSubset.sequential_logits`)
    and :math:`u_d, v_d \sim U(0, 1)`:

    .. math::

        z_d = 1[a_d(j_d) + \mathrm{logit}\,u_d > 0], \quad j_{d+1} = j_d - z_d;\qquad
        \hat z_d = \sigma\big((\bar a_d(\hat j_d) + \mathrm{logit}\,u_d)/\tau\big), \quad
        \hat j_{d+1} = \hat j_d - \hat z_d,

    where :math:`\bar a_d(j)` is the logit of :math:`\sigma(a_d)` interpolated linearly between
    integer counts (the probabilities, not the logits: bounded slopes), so that
    :math:`\hat z` is a continuous function of the logits and :math:`u` (the soft count
    :math:`\hat j` of ones left replaces the hard one). :math:`z` is an exact draw of the
    distribution (forced steps taken as forced). Given :math:`z`, the :math:`u_d` are
    independent, each uniform on the interval that gives :math:`z_d` at the hard count
    :math:`j_d` (:func:`conditional_logistic` with logits :math:`a_d(j_d)`); :math:`\tilde z` is
    :math:`\hat z` computed at those conditional uniforms. So :math:`\tilde z` has the law of
    :math:`\hat z` given :math:`z`, and the REBAR estimator of :class:`RebarBound` stays
    unbiased: its control variate :math:`f(\hat z)` needs only be continuous, not a relaxation
    of the same law. As :math:`\tau \to 0`, :math:`\hat z \to z`.

    Python loops over the ``D`` features (the sampler is sequential), vectorised over the
    batch: first the hard chain, without gradients, then the two relaxed chains together,
    each step a handful of tensor operations (its cost, forward and backward, is what makes
    this estimator slower than REINFORCE for large ``D``). :math:`a_d` is clamped to
    :math:`\pm 60`, which changes the probabilities by less than :math:`10^{-26}`.

    :param dist: the masks' distribution, batch shape ``(..., N)``, event ``(D,)``.
    :param temperature: :math:`\tau > 0`.
    :returns: ``(z, z_relaxed, z_conditional)``, each of shape ``batch_shape + (D,)``, in the
        dtype of the logits; :math:`z` has no gradient.
    """
    logits = dist.logits
    bound = _SEQUENTIAL_LOGIT_BOUND
    table = dist.sequential_logits.clamp(-bound, bound).to(logits.dtype)  # (..., D, k + 1)
    k = dist.k
    u, v = _open_uniform(logits), _open_uniform(logits)
    logit_u = u.log() - (-u).log1p()
    # The hard chain does not depend on the relaxed ones: draw it first, without gradients,
    # then condition the uniforms on it for every feature at once.
    with torch.no_grad():
        z, counts = sequential_draw(table, logit_u, k)
    a_hard = table.gather(-1, counts.unsqueeze(-1)).squeeze(-1)  # (..., D)
    noise = torch.stack([logit_u, _conditional_logit_uniform(a_hard, z, v)])  # (2, ..., D)
    # The two relaxed chains, ẑ (at u) and z̃ (at u | z), run together along dim 0. The
    # probabilities sigmoid(±A), not the logits, are interpolated: bounded slopes in the count.
    probs = torch.stack([torch.sigmoid(table), torch.sigmoid(-table)], -1)  # (..., D, k + 1, 2)
    left = torch.full(noise.shape[:-1], float(k), dtype=logits.dtype, device=logits.device)
    steps = []
    for row, noise_d in zip(probs.unbind(-3), noise.unbind(-1), strict=True):
        weights = _interpolation_weights(left, k).unsqueeze(-1)  # (2, ..., k + 1, 1)
        p, q = (weights * row).sum(-2).unbind(-1)
        step = torch.sigmoid((p.log() - q.log() + noise_d) / temperature)
        steps.append(step)
        left = left - step
    z_relaxed, z_conditional = torch.stack(steps, -1).unbind(0)
    return z, z_relaxed, z_conditional


# --------------------------------------------------------------------------- mask handler
@dataclass
class _Draw:
    name: str
    logits: Tensor  # (L, N, D): the logits the masks were drawn from
    z: Tensor
    log_prob: Tensor  # (L, N): log p(z), for the bound's terms
    mean: Tensor  # (L, N, D): E[z], detached: d log p(z) / d logits = z - mean
    z_relaxed: Tensor | None = None
    z_conditional: Tensor | None = None


class _RebarMasks(Messenger):
    """Sets every LEX mask site to ``cat([z, ẑ, z̃])`` on the mask-particle dim (``relax=True``)
    or to the hard masks ``z`` alone, and records the draws."""

    def __init__(self, num_masks: int, temperature: Tensor | float, relax: bool) -> None:
        super().__init__()
        self.num_masks = num_masks
        self.temperature = temperature
        self.relax = relax
        self.draws: list[_Draw] = []

    def _pyro_sample(self, msg) -> None:
        if msg["infer"].get("lex") != MASK or msg["is_observed"]:
            return
        fn = msg["fn"]
        if not isinstance(fn, IndependentBernoulli | KSubset):
            raise ValueError(
                f"REBAR/RELAX need independent Bernoulli or k-subset masks "
                f"(lexppl.distributions.IndependentBernoulli, KSubset): their conditional "
                f"reparameterisation is defined for these families only; mask site "
                f"{msg['name']!r} has {type(fn).__name__}. Use ReinforceBound or "
                f"PathwiseBound for other mask families."
            )
        logits = fn.logits
        if self.relax:
            # The mask-particle plate has 3L slots (dim -2 of the batch, -3 of the logits).
            logits = logits.narrow(-3, 0, self.num_masks)
        z_relaxed = z_conditional = None
        if isinstance(fn, KSubset):
            if self.relax:  # the first L of the 3L slots only
                fn = KSubset(logits, k=fn.k)
                z, z_relaxed, z_conditional = k_subset_rebar_noise(fn, self.temperature)
            else:
                z = fn.sample()
            log_prob, mean = fn.log_prob(z), fn.mean.detach()
        else:
            if self.relax:
                z, z_relaxed, z_conditional = rebar_noise(logits, self.temperature)
            else:
                u = _open_uniform(logits)
                z = (logits + u.log() - (-u).log1p() > 0).to(logits.dtype)
            log_prob = -F.binary_cross_entropy_with_logits(logits, z, reduction="none").sum(-1)
            mean = torch.sigmoid(logits.detach())
        msg["value"] = z if z_relaxed is None else torch.cat([z, z_relaxed, z_conditional], -3)
        self.draws.append(_Draw(msg["name"], logits, z, log_prob, mean, z_relaxed, z_conditional))
        msg["done"] = True


# --------------------------------------------------------------------------- learnables
class RebarTuning(nn.Module):
    r"""
    The control-variate settings of REBAR/RELAX: the scale :math:`\eta` and the temperature
    :math:`\tau = \exp(\log\tau)`, each an ``nn.Parameter`` when learnable and a buffer when
    fixed (both travel with ``state_dict``), plus RELAX's optional network :math:`r_\phi`.

    :param float eta: initial :math:`\eta`.
    :param float temperature: initial :math:`\tau > 0`.
    :param bool learn_eta: make :math:`\eta` a parameter.
    :param bool learn_temperature: make :math:`\log\tau` a parameter.
    """

    def __init__(
        self,
        eta: float = 1.0,
        temperature: float = 0.5,
        learn_eta: bool = True,
        learn_temperature: bool = True,
    ) -> None:
        super().__init__()
        if not (isinstance(temperature, (int, float)) and 0 < temperature < math.inf):
            raise ValueError(f"temperature must be a positive finite float; got {temperature!r}.")
        if not (isinstance(eta, (int, float)) and math.isfinite(eta)):
            raise ValueError(f"eta must be a finite float; got {eta!r}.")
        for name, value, learn in [
            ("eta", float(eta), learn_eta),
            ("log_temperature", math.log(temperature), learn_temperature),
        ]:
            tensor = torch.tensor(value)
            if learn:
                self.register_parameter(name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)

    @property
    def temperature(self) -> Tensor:
        return self.log_temperature.exp()


# --------------------------------------------------------------------------- the bound
class RebarBound(ImportanceWeightedBound):
    r"""
    The LEX bound :math:`\mathcal L_{L,K}` with the REBAR gradient estimator (Tucker et al.
    2017) for :class:`~lexppl.distributions.IndependentBernoulli` and
    :class:`~lexppl.distributions.KSubset` masks; REAL-X's estimator (Jethani et al. 2021) is
    the setting :meth:`realx` (:math:`\eta = 1`, :math:`\tau = 0.1`).

    Let :math:`f(z^{1:L}) = \log \frac{1}{LK}\sum_{l,k} p_\theta(y|\tilde x^{l,k})` (minus the
    regulariser) be the per-datum bound as a function of the :math:`L` masks; the imputation
    :math:`\tilde x = z \odot x + (1-z) \odot \hat x` is arithmetic, so :math:`f` is also
    defined at soft masks in :math:`[0,1]^{L \times D}`. For every coordinate draw
    :math:`u, v \sim U(0,1)`, set :math:`\zeta = \ell + \mathrm{logit}(u)`, the hard mask
    :math:`z = H(\zeta)`, its relaxation :math:`\hat z = \sigma(\zeta/\tau)` and the
    conditional relaxation :math:`\tilde z = \sigma(\tilde\zeta/\tau)`,
    :math:`\tilde\zeta \sim p(\zeta | z)` (:func:`conditional_logistic`). The estimate of the
    gradient with respect to the selector's logits :math:`\ell` (shape ``(N, D)``, summed over
    the :math:`L` masks) is

    .. math::

        \hat g_\ell = \big[f(z) - \eta f(\tilde z)\big]\, \nabla_\ell \log p_\ell(z)
            + \eta\, \nabla_\ell f(\hat z) - \eta\, \nabla_\ell f(\tilde z),
        \qquad \nabla_\ell \log p_\ell(z) = z - \sigma(\ell),

    unbiased for :math:`\nabla_\ell\, \mathbb E[f(z)]` for every :math:`\eta` and
    :math:`\tau`: :math:`\mathbb E[f(\tilde z)\nabla\log p(z) + \nabla f(\tilde z)] =
    \nabla \mathbb E[f(\hat z)]` [1, eq. 3]. For :class:`~lexppl.distributions.KSubset`
    masks, :math:`z, \hat z, \tilde z` come from the exact sequential sampler of the k-subset
    distribution instead (:func:`k_subset_rebar_noise`: one uniform per feature, the soft count
    of ones left in the relaxation) and :math:`\nabla_\ell \log p_\ell(z) = z -
    \mathbb E[Z]`, with the exact marginals; the identity, and so unbiasedness, are the same.
    The three evaluations of :math:`f` are one vectorised model call with a mask-particle plate
    of size :math:`3L` (the masks :math:`[z; \hat z; \tilde z]`, and fresh imputations for
    each); :math:`\nabla_\ell f(\hat z) - \nabla_\ell f(\tilde z)` is taken along the mask
    path only. The selector gets
    :math:`\hat g_\ell` back-propagated through :math:`\ell`, plus the exact gradient of the
    expected regulariser; the predictor and imputer get the ordinary gradient
    :math:`\nabla f(z)` at the hard masks. The surrogate's value is the bound at the hard masks.

    **Learning** :math:`\eta` **and** :math:`\tau` [1, §3.3]: since :math:`\mathbb E[\hat g]`
    does not depend on them, they minimise :math:`\mathbb E\|\hat g_\ell\|^2 = \sum_{n,d}
    \mathrm{Var}(\hat g_{\ell,nd}) + \text{const}`. Each call computes
    :math:`\partial \|\hat g_\ell\|^2 / \partial(\eta, \log\tau)` (a double backward through
    the predictor, ``torch.autograd.grad(..., create_graph=True)``, when :math:`\tau` is
    learned) and puts it where ``loss.backward()`` deposits it (a zero-valued term of the
    loss), so **the training loop must optimise** ``list(bound.parameters())`` **too** (add
    them to the torch optimiser, or use :class:`pyro.infer.SVI`, which finds them because they
    are registered with ``pyro.module(name, bound.tuning)``). With ``learn_eta=False,
    learn_temperature=False`` there is nothing to add and no double backward.

    Without gradients (``loss``, evaluation under ``torch.no_grad``) only the :math:`L` hard
    masks are drawn. Masks must come from an :class:`~lexppl.distributions.IndependentBernoulli`
    or a :class:`~lexppl.distributions.KSubset` (a ``ValueError`` otherwise). With a random
    imputer the imputations of the soft masks are fresh draws; the estimator stays unbiased when the
    fill distribution does not depend on the mask (constant, marginal and independent-Gaussian
    fills), not for fills conditioned on the kept features, which are undefined at soft masks.

    Cost per step: the predictor sees :math:`3LKN` inputs instead of :math:`LKN`, plus one
    extra backward along the mask path, plus a double backward when :math:`\tau` is learned.
    K-subset masks add a Python loop over the :math:`D` features, forward and backward
    (``benchmarks/estimators.py``: about 15× a REINFORCE step at :math:`D = 11`, 17× at
    :math:`D = 128`).
    In training, a separate optimiser parameter group with a larger learning rate (e.g.
    ``1e-2``) for ``bound.parameters()`` lets :math:`\eta, \tau` adapt within a few hundred
    steps.

    Shapes: mask particles ``(3L, N, D)`` in the trace; :math:`f(z), f(\hat z), f(\tilde z)`
    of shape ``(N,)``; logits gradient ``(N, D)``.

    :param int num_masks: :math:`L`.
    :param int num_imputations: :math:`K`.
    :param float temperature: (initial) :math:`\tau`.
    :param float eta: (initial) control-variate scale :math:`\eta`.
    :param bool learn_temperature: learn :math:`\log\tau` by minimising the variance.
    :param bool learn_eta: learn :math:`\eta` by minimising the variance.
    :param str name: name under which the learnable settings are registered in Pyro's
        parameter store (``pyro.module``); give distinct bounds distinct names.

    **References**

    [1] G. Tucker, A. Mnih, C. J. Maddison, D. Lawson, J. Sohl-Dickstein, *REBAR: Low-variance,
        unbiased gradient estimates for discrete latent variable models*, NeurIPS 2017.
    [2] N. Jethani, M. Sudarshan, Y. Aphinyanaphongs, R. Ranganath, *Have We Learned to
        Explain?: How Interpretability Methods Can Learn to Encode Predictions in their
        Interpretations* (REAL-X), AISTATS 2021.
    [3] Senetaire et al., *Explainability as statistical inference*, ICML 2023, App. E.
    """

    needs_mask_log_prob = False

    def __init__(
        self,
        num_masks: int = 1,
        num_imputations: int = 1,
        temperature: float = 0.5,
        eta: float = 1.0,
        learn_temperature: bool = True,
        learn_eta: bool = True,
        name: str = "rebar",
    ) -> None:
        super().__init__(num_masks, num_imputations)
        self.tuning = RebarTuning(eta, temperature, learn_eta, learn_temperature)
        self.name = name
        self._handler: _RebarMasks | None = None
        self._relaxed_values: tuple[Tensor, Tensor] | None = None
        self._last_variance: Tensor | None = None

    @classmethod
    def realx(cls, num_masks: int = 1, num_imputations: int = 1, **kwargs) -> RebarBound:
        """REAL-X's REBAR (Jethani et al. 2021, released code): fixed :math:`\\eta = 1`,
        :math:`\\tau = 0.1`, nothing learned."""
        settings = dict(temperature=0.1, eta=1.0, learn_temperature=False, learn_eta=False)
        return cls(num_masks, num_imputations, **{**settings, **kwargs})

    # ------------------------------------------------------------------ settings
    @property
    def eta(self) -> float:
        """The current control-variate scale :math:`\\eta`."""
        return float(self.tuning.eta.detach())

    @property
    def temperature(self) -> float:
        """The current temperature :math:`\\tau`."""
        return float(self.tuning.temperature.detach())

    def parameters(self) -> Iterator[nn.Parameter]:
        """The learnable settings (:math:`\\eta`, :math:`\\log\\tau`, RELAX's :math:`\\phi`):
        add them to the optimiser of the training loop."""
        return self.tuning.parameters()

    def state_dict(self) -> dict:
        return {"tuning": self.tuning.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if "tuning" in state:
            self.tuning.load_state_dict(state["tuning"])

    # ------------------------------------------------------------------ traces
    def _relaxing(self) -> bool:
        return torch.is_grad_enabled()

    def _num_mask_particles(self, model, args, kwargs) -> int:
        return (3 if self._relaxing() else 1) * self.num_masks

    def _mask_handler(self, model):
        temperature = self.tuning.temperature
        self._handler = _RebarMasks(self.num_masks, temperature, self._relaxing())
        return self._handler(model)

    def _terms(self, model_trace, guide_trace) -> BoundTerms:
        terms = super()._terms(model_trace, guide_trace)
        draws = self._handler.draws if self._handler is not None else []
        if not draws:
            raise ValueError("The model has no LEX mask site; is it a lexppl LEX model?")
        mask_lp = sum(d.log_prob for d in draws)
        if draws[0].z_relaxed is None:  # hard masks only (no gradients wanted)
            self._relaxed_values = None
            return terms._replace(mask_log_prob=mask_lp.expand_as(terms.log_weights[0]))
        L = self.num_masks
        hard, relaxed, conditional = terms.log_weights.split(L, dim=-2)

        def per_datum(log_w: Tensor) -> Tensor:
            return log_w.flatten(0, 1).logsumexp(0) - math.log(log_w.shape[0] * log_w.shape[1])

        self._relaxed_values = (per_datum(relaxed), per_datum(conditional))
        return terms._replace(
            per_datum=per_datum(hard), log_weights=hard, mask_log_prob=mask_lp.expand_as(hard[0])
        )

    # ------------------------------------------------------------------ the estimator
    def _residual(self, masks: Tensor, logits: Tensor) -> Tensor | None:
        """RELAX's learned part :math:`r_\\phi` of the control variate (none for REBAR)."""
        return None

    def _learnable(self) -> list[nn.Parameter]:
        return [p for p in self.tuning.parameters() if p.requires_grad]

    def _surrogate(self, terms: BoundTerms) -> Tensor:
        surrogate = terms.total
        if not torch.is_grad_enabled() or self._relaxed_values is None:
            return surrogate
        learnable = self._learnable()
        if learnable:
            pyro.module(self.name, self.tuning)  # so that pyro.infer.SVI optimises them
        # d/d log(tau) of the pathwise terms needs them as functions of tau: double backward.
        tau_learned = self.tuning.log_temperature.requires_grad
        residual_learned = tau_learned or any(p.requires_grad for p in self._residual_parameters())
        f_hard = terms.per_datum.detach()
        f_relaxed, f_conditional = self._relaxed_values
        eta = self.tuning.eta.to(f_hard)
        variance = f_hard.new_zeros(())
        for draw in self._handler.draws:
            alpha = draw.logits  # (L, N, D)
            if not alpha.requires_grad:  # a frozen selector: nothing to estimate
                continue
            (pathwise,) = torch.autograd.grad(
                (f_relaxed - f_conditional).sum(),
                alpha,
                create_graph=tau_learned,
                retain_graph=True,
            )
            control = eta * f_conditional  # c(z̃), shape (N,)
            grad_logits = eta * pathwise
            r_relaxed = self._residual(draw.z_relaxed, alpha.detach())
            if r_relaxed is not None:
                r_conditional = self._residual(draw.z_conditional, alpha.detach())
                (residual_pathwise,) = torch.autograd.grad(
                    (r_relaxed - r_conditional).sum(),
                    alpha,
                    create_graph=residual_learned,
                    retain_graph=True,
                )
                control = control + r_conditional
                grad_logits = grad_logits + residual_pathwise
            score = draw.z - draw.mean  # d log p(z) / d logits, both families
            grad_logits = grad_logits + (f_hard - control).unsqueeze(-1) * score
            # zero in value; gives the selector the REBAR/RELAX estimate through the logits
            surrogate = surrogate + (grad_logits.detach() * (alpha - alpha.detach())).sum()
            variance = variance + grad_logits.sum(-3).pow(2).sum()  # per datum, over L
        if learnable and variance.requires_grad:
            grads = torch.autograd.grad(variance, learnable, retain_graph=True, allow_unused=True)
            for p, g in zip(learnable, grads, strict=True):
                if g is not None:  # zero in value; loss.backward() puts dVar/dp in p.grad
                    surrogate = surrogate - (g.detach() * (p - p.detach())).sum()
        self._last_variance = variance.detach()
        return surrogate

    def _residual_parameters(self) -> list[nn.Parameter]:
        return []
