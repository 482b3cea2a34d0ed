"""Bayesian LEX: priors on the selector's weights, a variational posterior over explanations."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import pyro
import pyro.poutine as poutine
import torch
from pyro.distributions import Normal
from pyro.infer.autoguide import AutoGuide, AutoNormal
from pyro.nn import PyroModule, PyroSample
from pyro.nn.module import to_pyro_module_
from torch import Tensor, nn
from torch.distributions import Distribution

from lexppl.distributions import IndependentBernoulli, KSubset
from lexppl.distributions.relaxed import hard_topk
from lexppl.imputers.base import Imputer
from lexppl.models.groups import FeatureGroups
from lexppl.models.lex import LEX, _check_num_samples
from lexppl.nets.device import check_device
from lexppl.nets.mode import eval_mode

if TYPE_CHECKING:  # imported lazily at run time: lexppl.infer and lexppl.train import this package
    from lexppl.infer.bound import ImportanceWeightedBound
    from lexppl.train import FitResult

__all__ = ["BayesianLEX", "credible_interval", "fit_bayesian"]


class _NormalPrior:
    # A picklable PyroSample prior N(0, s^2 I) of a fixed shape; the scale s is a buffer of the
    # module that owns the weight, so the prior follows the model's device and dtype.
    def __init__(self, shape: torch.Size) -> None:
        self.shape = torch.Size(shape)

    def __call__(self, module: nn.Module) -> Distribution:
        scale = module.lex_prior_scale
        loc = torch.zeros(self.shape, dtype=scale.dtype, device=scale.device)
        return Normal(loc, scale.expand(self.shape)).to_event(len(self.shape))


class _InitToValue:
    # init_loc_fn for the autoguide: start the posterior at the selector's initial (PyTorch
    # default, e.g. Kaiming-uniform) weights rather than at zeros, which would make every
    # hidden unit identical. Picklable, unlike a closure.
    def __init__(self, values: dict[str, Tensor]) -> None:
        self.values = values

    def __call__(self, site: dict) -> Tensor:
        # The values were cloned where the selector was built; the prior's location is where
        # the model is now (site["value"] is not drawn yet when autoguides initialise).
        like = site["value"] if site["value"] is not None else site["fn"].mean
        return self.values[site["name"]].to(like)


def _detach_pyro_module(module: PyroModule, name: str) -> None:
    # Give a PyroModule (and its PyroModule children) a fixed name and a fresh context of its
    # own, separate from the enclosing BayesianLEX's.
    module._pyro_set_supermodule(name, type(module._pyro_context)())


def _no_guide(*args, **kwargs) -> None:
    return None


# Rows (draws x inputs) per batched selector call when drawing posterior explanations.
_DRAW_ROWS = 2**14


class BayesianLEX(LEX):
    r"""
    LEX with a Bayesian selector: the selector's weights :math:`\gamma` are global latent
    variables with a Gaussian prior, and the explanation is marginalised over their posterior.

    .. math::

        \gamma \sim \mathcal N(0, s^2 I), \qquad
        p(y, \tilde x, z \mid x, \gamma) = p_\theta(y \mid \tilde x)\,
            p_\iota(\tilde x \mid x, z)\, p_\gamma(z \mid x).

    Every parameter of ``selector`` is replaced by a :class:`~pyro.nn.PyroSample` with prior
    :math:`\mathcal N(0, s^2)` (the module is converted *in place* with
    :func:`~pyro.nn.module.to_pyro_module_`). :meth:`model` draws the weights **once, before**
    the data plate — they are global — and then declares the LEX sites of
    :meth:`LEX.model <lexppl.models.LEX.model>` (``"mask"``, ``"imputation"``, ``"y"``). The
    weight sites are named ``"<name>.selector.<path>"`` (e.g. ``"selector.0.weight"``), listed
    in :attr:`weight_sites`.

    The variational posterior :math:`q_\phi(\gamma)` is an autoguide (:attr:`autoguide`,
    :class:`~pyro.infer.autoguide.AutoNormal` by default) built on ``poutine.block(model,
    expose=weight_sites)``: it covers **only** the weights. Masks stay with the model's prior
    proposal and are handled by the LEX bound's estimators (pathwise, REINFORCE, enumeration,
    ...). Training (:func:`fit_bayesian`) maximises

    .. math::

        \mathrm{ELBO}(\phi, \theta) = \mathbb E_{q_\phi(\gamma)}\Big[\sum_{n=1}^{N}
            \mathcal L_{L,K}(x_n, y_n; \gamma, \theta)\Big] - \mathrm{KL}(q_\phi(\gamma)\,\|\,
            p(\gamma)),

    a lower bound on :math:`\log p(y_{1:N} \mid x_{1:N}, \theta)`, jointly in :math:`\phi`
    (selector posterior, variationally), :math:`\theta` and the imputer (maximum likelihood),
    with the masks' gradient from the chosen estimator (:meth:`negative_elbo`).

    The posterior over explanations is the law of :math:`\mathbb E[Z \mid x, \gamma]` under
    :math:`\gamma \sim q_\phi`: :meth:`posterior_importance` returns draws of it, shape
    ``(S, N, D)``, from one batched selector call over the draws (:func:`torch.func.vmap`);
    :meth:`importance` its mean and :meth:`credible_interval` its quantiles.
    :func:`lexppl.inference_data.to_inference_data` exports it to ArviZ.

    .. note:: **Pyro's parameter store.** An autoguide is a :class:`~pyro.nn.PyroModule`: in
        Pyro's default (global) parameter mode its parameters are registered in the global
        store under the guide's name, and a second guide of the *same* name silently adopts
        the first one's tensors. Each BayesianLEX therefore gives its autoguide a unique name
        (``"<name or 'lex'>.guide.<8 hex digits>"``), so several models can be trained in one
        process. The parameters also live in the module (``model.autoguide.parameters()``,
        ``state_dict``), which is what :func:`fit_bayesian` optimises with plain torch.
        ``pyro.clear_param_store()`` drops the store's references. Under
        ``pyro.settings.context(module_local_params=True)`` (model built *and* used inside it)
        nothing enters the global store at all.

    .. note:: ``pyro.infer.Predictive(model.model, guide=model.autoguide, parallel=True)``
        fails: torch layers take one weight matrix, not a batch of draws. Use
        ``parallel=False``, or :meth:`posterior_importance`, which batches the draws with
        :func:`torch.func.vmap`.

    .. note:: Train with :func:`fit_bayesian` (or :meth:`negative_elbo`), not with ``SVI`` and
        a LEX bound on ``(model, guide)``: autoguides draw an auxiliary unconstrained latent
        and put a ``Delta`` on the model's site, and the bounds' global term (``log p - log q``
        of the guide sites that the model also has) leaves that auxiliary site's
        :math:`\log q` out, i.e. the entropy of :math:`q_\phi`. :meth:`negative_elbo` sums
        every guide site.

    :param ~torch.nn.Module selector: :math:`g_\gamma`, ``x`` ``(N, ...)`` ``->`` mask logits
        ``(N, D)``. Converted in place to a PyroModule whose parameters are all sampled.
    :param ~torch.nn.Module predictor: :math:`f_\theta` (point estimate, maximum likelihood).
    :param ~lexppl.imputers.Imputer imputer: :math:`p_\iota`.
    :param callable mask_family: ``logits -> Distribution`` over masks, event ``(D,)``.
    :param callable likelihood: predictor output ``->`` distribution of ``y``.
    :param callable regularizer: optional ``mask distribution -> penalty per datum``.
    :param str name: site-name prefix (see :class:`~lexppl.models.LEX`).
    :param bool mask_as_input: see :class:`~lexppl.models.LEX`.
    :param groups: feature groups (e.g. image patches) the mask selects, see
        :class:`~lexppl.models.LEX`; the selector's logits are then ``(N, G)``.
    :param float prior_scale: :math:`s > 0`, standard deviation of the weights' prior.
    :param callable autoguide: ``autoguide(model, init_loc_fn=..., init_scale=...)`` returning
        an :class:`~pyro.infer.autoguide.AutoGuide`: :class:`~pyro.infer.autoguide.AutoNormal`
        (default, mean field) or e.g. ``functools.partial(AutoLowRankMultivariateNormal,
        rank=4)``.
    :param float init_scale: initial posterior standard deviation of every weight; the
        posterior means start at the selector's own initial weights.

    **References**

    [1] Senetaire et al., *Explainability as statistical inference*, ICML 2023.
    [2] Blundell, Cornebise, Kavukcuoglu, Wierstra, *Weight Uncertainty in Neural Networks*,
        ICML 2015 (variational posteriors over network weights, mini-batch KL weighting).
    [3] Kucukelbir, Tran, Ranganath, Gelman, Blei, *Automatic Differentiation Variational
        Inference*, JMLR 2017 (autoguides).
    """

    def __init__(
        self,
        selector: nn.Module,
        predictor: nn.Module,
        imputer: Imputer,
        mask_family: Callable[[Tensor], Distribution],
        likelihood: Callable[[Tensor], Distribution],
        regularizer: Callable[[Distribution], Tensor] | None = None,
        name: str = "",
        mask_as_input: bool = False,
        groups: FeatureGroups | None = None,
        *,
        prior_scale: float = 1.0,
        autoguide: Callable[..., AutoGuide] = AutoNormal,
        init_scale: float = 0.05,
    ) -> None:
        if not isinstance(selector, nn.Module):
            raise TypeError(f"BayesianLEX selector must be a torch module; got {selector!r}.")
        if isinstance(selector, PyroModule) and (
            getattr(selector, "_pyro_samples", None) or getattr(selector, "_pyro_params", None)
        ):
            raise ValueError(
                "BayesianLEX puts its own priors on the selector's parameters; pass a plain "
                "torch module (or a PyroModule without PyroSample/PyroParam attributes)."
            )
        for arg, value in [("prior_scale", prior_scale), ("init_scale", init_scale)]:
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"BayesianLEX {arg} must be a positive float; got {value!r}.")
        if not any(True for _ in selector.parameters()):
            raise ValueError("BayesianLEX needs a selector with parameters to put priors on.")
        to_pyro_module_(selector)
        super().__init__(
            selector,
            predictor,
            imputer,
            mask_family,
            likelihood,
            regularizer=regularizer,
            name=name,
            mask_as_input=mask_as_input,
            groups=groups,
        )
        # Weight sites are named "<name>.selector.<path>". The selector gets its own PyroModule
        # context (shared by its layers): entered in `model`, it caches the weights drawn once
        # before the plates for every layer call inside them, without turning this module's
        # other (plain torch) parts into pyro.module statements.
        _detach_pyro_module(selector, self.site("selector"))
        self.prior_scale = float(prior_scale)
        sites, init_values = [], {}
        for module in selector.modules():
            params = list(module.named_parameters(recurse=False))
            if not params:
                continue
            module.register_buffer("lex_prior_scale", torch.tensor(float(prior_scale)))
            for param_name, value in params:
                site = f"{module._pyro_name}.{param_name}"
                sites.append(site)
                init_values[site] = value.detach().clone()
                setattr(module, param_name, PyroSample(_NormalPrior(value.shape)))
        #: Names of the selector-weight sample sites (the global latents), in module order.
        self.weight_sites: tuple[str, ...] = tuple(sites)
        guide = autoguide(
            poutine.block(self.model, expose=list(self.weight_sites)),
            init_loc_fn=_InitToValue(init_values),
            init_scale=float(init_scale),
        )
        if not isinstance(guide, AutoGuide):
            raise TypeError(f"autoguide must build a pyro AutoGuide; got {type(guide).__name__}.")
        # A unique name keeps this guide's entries of Pyro's global parameter store apart from
        # those of any other model (see the class note).
        self.autoguide = guide
        _detach_pyro_module(guide, f"{name or 'lex'}.guide.{uuid.uuid4().hex[:8]}")

    def _pyro_set_supermodule(self, name: str, context) -> None:
        # Used by PyroModule when this model becomes a submodule of another one: the selector
        # and the guide keep their names (site names are set by `name`, as for LEX) and their
        # own contexts; other PyroModule parts are renamed as usual.
        self._pyro_name, self._pyro_context = name, context
        for key, value in self._modules.items():
            if isinstance(value, PyroModule) and key not in ("selector", "autoguide"):
                value._pyro_set_supermodule(f"{name}.{key}" if name else key, context)

    # ---------------------------------------------------------------- the Pyro model
    def _draw_weights(self) -> dict[str, Tensor]:
        # Inside the shared context: each access is a pyro.sample site, cached for the call.
        weights = {}
        for module in self.selector.modules():
            for attr in getattr(module, "_pyro_samples", {}):
                weights[f"{module._pyro_name}.{attr}"] = getattr(module, attr)
        return weights

    def model(
        self,
        x: Tensor,
        y: Tensor | None = None,
        num_masks: int = 1,
        num_imputations: int = 1,
    ) -> Tensor:
        """The generative model: the selector weights :math:`\\gamma \\sim p(\\gamma)` (global,
        outside every plate), then the LEX sites of :meth:`LEX.model
        <lexppl.models.LEX.model>` given :math:`\\gamma`."""
        with self.selector._pyro_context:
            self._draw_weights()
            return super().model(x, y, num_masks=num_masks, num_imputations=num_imputations)

    def guide(self, x: Tensor, y: Tensor | None = None, **kwargs) -> dict[str, Tensor]:
        """The variational posterior :math:`q_\\phi(\\gamma)` over the selector weights only
        (masks and imputations are proposed from the model itself); returns the weights."""
        return self.autoguide(x, y, **kwargs)

    @property
    def guide_initialized(self) -> bool:
        """Whether the autoguide has been set up (its parameters exist)."""
        return self.autoguide.prototype_trace is not None

    def init_guide(self, x: Tensor, y: Tensor | None = None) -> None:
        """Set up the autoguide's parameters by tracing the model once on ``x`` (a few rows are
        enough). Needed before building an optimiser over ``parameters()`` or loading a
        ``state_dict`` into a fresh model; a no-op once done."""
        if not self.guide_initialized:
            with torch.no_grad(), eval_mode(self):  # leaves batch norm statistics as they were
                self.autoguide(x, y)

    def _check_guide(self) -> None:
        if not self.guide_initialized:
            raise RuntimeError(
                "The BayesianLEX guide is not set up: train the model (fit_bayesian) or call "
                "init_guide(x) first."
            )

    def model_given(self, weights: dict[str, Tensor]) -> Callable[..., Tensor]:
        """:meth:`model` with the selector weights fixed to ``weights`` and their sites hidden:
        a plain LEX model :math:`p(y, \\tilde x, z | x, \\gamma)` with the same signature, for
        the LEX bounds, ``poutine.trace`` or ``Predictive``."""
        return poutine.block(poutine.condition(self.model, data=weights), hide=self.weight_sites)

    @torch.no_grad()
    def sample_weights(self) -> dict[str, Tensor]:
        r"""One draw :math:`\gamma \sim q_\phi` of the selector weights, by site name."""
        self._check_guide()
        trace = poutine.trace(self.autoguide).get_trace()
        return {name: trace.nodes[name]["value"] for name in self.weight_sites}

    @torch.no_grad()
    def _sample_weights(self, num_samples: int) -> dict[str, Tensor]:
        # S draws from one call of the guide, as Predictive(parallel=True) does: the weight
        # sites lie outside every plate, so a vectorised plate puts S in front of each shape.
        self._check_guide()
        with pyro.plate("_weight_draws", num_samples, dim=-1):
            trace = poutine.trace(self.autoguide).get_trace()
        return {name: trace.nodes[name]["value"] for name in self.weight_sites}

    def _posterior_mask_distributions(self, x: Tensor, num_samples: int) -> list[Distribution]:
        # p(z | x, gamma_s) for S draws gamma_s ~ q, in chunks of batch (S_c, N) with about
        # _DRAW_ROWS rows each: the selector runs on a chunk's draws in one call through
        # torch.func.vmap (batch norm in training mode excepted). One call over every draw
        # would hold S x N hidden activations at once, and measured slower than a loop beyond
        # ~10^5 rows (benchmarks/bayesian_draws.py).
        weights = self._sample_weights(num_samples)

        def selector_output(draw: dict[str, Tensor]) -> Tensor:
            with self.selector._pyro_context, poutine.condition(data=draw):
                return self.selector(x)

        if self.groups is not None:
            self.groups.check_input(x)
        chunk = max(1, _DRAW_ROWS // max(1, x.shape[0]))
        if any(
            isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training
            for module in self.selector.modules()
        ):
            # batch norm in training mode updates its running statistics once per call, which
            # vmap cannot batch: one plain call per draw, as the loop it replaces
            chunk = 1
        if chunk == 1:  # large inputs: one plain call per draw (vmap over 1 draw is slower)
            batched = lambda draws: selector_output(  # noqa: E731
                {name: value[0] for name, value in draws.items()}
            ).unsqueeze(0)
        else:
            batched = torch.func.vmap(selector_output, randomness="different")
        return [
            self._check_group_masks(
                self.mask_family(
                    batched({name: value[begin : begin + chunk] for name, value in weights.items()})
                )
            )
            for begin in range(0, num_samples, chunk)
        ]

    def prior_log_prob(self, weights: dict[str, Tensor]) -> Tensor:
        r""":math:`\log p(\gamma)` of a dict of weights (a scalar)."""
        with self.selector._pyro_context:
            trace = poutine.trace(poutine.condition(self._draw_weights, data=weights)).get_trace()
        return sum(trace.nodes[name]["fn"].log_prob(weights[name]).sum() for name in weights)

    # ---------------------------------------------------------------- objectives
    def negative_elbo(
        self,
        bound: ImportanceWeightedBound,
        x: Tensor,
        y: Tensor,
        num_data: int | None = None,
    ) -> Tensor:
        r"""
        A differentiable one-sample estimate of :math:`-\mathrm{ELBO} / N_{\mathrm{data}}`
        from a mini-batch of size :math:`B`:

        .. math::

            \frac{1}{B}\Big(-\sum_{b=1}^{B}\mathcal L_{L,K}(x_b, y_b; \gamma)\Big)
            + \frac{1}{N_{\mathrm{data}}}\big(\log q_\phi(\gamma) - \log p(\gamma)\big),
            \qquad \gamma \sim q_\phi,

        where the first term is ``bound.differentiable_loss`` on :meth:`model_given`
        (:math:`\gamma` drawn by reparameterisation, so the estimator's mask gradient and the
        pathwise weight gradient combine) and :math:`\log q_\phi` sums *every* site of the
        guide trace, auxiliary ones included (autoguides draw an auxiliary unconstrained latent
        and put a ``Delta`` on the model's site). The KL term is weighted :math:`1/N` per
        datum, i.e. counted once per pass over the data (Blundell et al. 2015).

        :param bound: a LEX bound (:class:`~lexppl.infer.PathwiseBound`, ...).
        :param x: inputs ``(B, ...)``; :param y: targets ``(B,)``.
        :param int num_data: size :math:`N` of the whole training set (default ``B``).
        :returns: a scalar tensor.
        """
        batch = x.shape[0]
        num_data = batch if num_data is None else int(num_data)
        guide_trace = poutine.trace(self.guide).get_trace(x, y)
        weights = {name: guide_trace.nodes[name]["value"] for name in self.weight_sites}
        log_q = sum(
            site["fn"].log_prob(site["value"]).sum()
            for site in guide_trace.nodes.values()
            if site["type"] == "sample"
        )
        kl = log_q - self.prior_log_prob(weights)
        data = bound.differentiable_loss(self.model_given(weights), _no_guide, x, y)
        return data / batch + kl / num_data

    def log_joint(
        self,
        weights: dict[str, Tensor],
        x: Tensor,
        y: Tensor,
        bound: ImportanceWeightedBound | None = None,
    ) -> Tensor:
        r"""
        :math:`\log p(\gamma) + \sum_n \mathcal L(x_n, y_n; \gamma)`, the unnormalised log
        posterior density of the selector weights. With the default
        :class:`~lexppl.infer.EnumerateBound` and a deterministic imputation the sum is the
        exact :math:`\log p(y_{1:N} | x_{1:N}, \gamma)` (all masks enumerated), so
        ``-log_joint`` is a potential for Pyro's :class:`~pyro.infer.mcmc.NUTS` on small
        problems (the check of the variational posterior in the tests).
        """
        if bound is None:
            from lexppl.infer.enumerate import EnumerateBound

            bound = EnumerateBound()
        terms = bound.bound_terms(self.model_given(weights), _no_guide, x, y)
        return self.prior_log_prob(weights) + terms.total

    # ---------------------------------------------------------------- explanations
    def mask_distribution(self, x: Tensor) -> Distribution:
        r""":math:`p_\gamma(z|x)` for the selector weights of the current model call (inside
        :meth:`model`, :meth:`model_given` or under ``poutine.condition`` on the weight sites).
        Outside them there is no single :math:`\gamma`, and the selector would draw a new one
        from the prior at every layer, so this raises: the posterior's explanations are
        :meth:`posterior_importance`, :meth:`importance`, :meth:`selection` and
        :meth:`explain`."""
        if not self.selector._pyro_context.active:
            raise RuntimeError(
                "BayesianLEX.mask_distribution(x) needs selector weights: call it inside the "
                "model, or use the posterior's posterior_importance(x), importance(x), "
                "selection(x) or explain(x)."
            )
        return super().mask_distribution(x)

    def _mask_distribution_given(self, x: Tensor, weights: dict[str, Tensor]) -> Distribution:
        with self.selector._pyro_context:
            return poutine.condition(self.mask_distribution, data=weights)(x)

    @torch.no_grad()
    def posterior_importance(self, x: Tensor, num_samples: int = 100) -> Tensor:
        r"""
        Draws of the importance map :math:`\mathbb E[Z \mid x, \gamma]` under
        :math:`\gamma \sim q_\phi(\gamma)`: the posterior over explanations.

        :param x: inputs ``(N, ...)``.
        :param int num_samples: number :math:`S` of weight draws.
        :returns: tensor ``(S, N, D)`` of per-feature selection probabilities (exact given
            :math:`\gamma`: Bernoulli probabilities, k-subset marginals).
        """
        _check_num_samples(num_samples)
        return torch.cat([p.mean for p in self._posterior_mask_distributions(x, num_samples)])

    @torch.no_grad()
    def selection(self, x: Tensor, num_samples: int = 100) -> Tensor:
        r"""The most probable selection of each input under the posterior, 0/1, shape
        ``(N, D)``: each feature's posterior selection probability
        :math:`\mathbb E_{q_\phi(\gamma)}\, P(z_d = 1 \mid x, \gamma)` (``num_samples``
        weight draws) and then, as :meth:`LEX.selection <lexppl.models.LEX.selection>` does
        given :math:`\gamma`, its ``k`` largest (k-subset masks) or those above 1/2
        (Bernoulli masks)."""
        _check_num_samples(num_samples)
        chunks = self._posterior_mask_distributions(x, num_samples)
        probs = torch.cat([chunk.mean for chunk in chunks]).mean(0)
        if isinstance(chunks[0], KSubset):
            return hard_topk(probs, chunks[0].k)
        if isinstance(chunks[0], IndependentBernoulli):
            return (probs > 0.5).to(probs.dtype)
        raise NotImplementedError(
            f"BayesianLEX.selection knows KSubset and IndependentBernoulli masks; got "
            f"{type(chunks[0]).__name__}. Use posterior_importance(x) instead."
        )

    @torch.no_grad()
    def importance(self, x: Tensor, num_samples: int = 100) -> Tensor:
        r"""Posterior mean of the importance map,
        :math:`\mathbb E_{q_\phi(\gamma)}\,\mathbb E[Z|x,\gamma]` (Monte Carlo over
        ``num_samples`` weight draws), shape ``(N, D)``."""
        return self.posterior_importance(x, num_samples).mean(0)

    @torch.no_grad()
    def credible_interval(
        self, x: Tensor, prob: float = 0.9, num_samples: int = 200
    ) -> tuple[Tensor, Tensor]:
        """Equal-tailed ``prob`` credible interval of each selection probability (default the
        5 %-95 % interval) from ``num_samples`` posterior draws: ``(lower, upper)``, each
        ``(N, D)``."""
        return credible_interval(self.posterior_importance(x, num_samples), prob)

    @torch.no_grad()
    def explain(self, x: Tensor, num_samples: int = 100) -> Tensor:
        """Masks from the posterior predictive: one weight draw :math:`\\gamma_s \\sim q_\\phi`
        and one mask :math:`z_s \\sim p_{\\gamma_s}(z|x)` per sample, shape
        ``(num_samples, N, D)``."""
        _check_num_samples(num_samples)
        return torch.cat([p.sample() for p in self._posterior_mask_distributions(x, num_samples)])

    @torch.no_grad()
    def predict(
        self,
        x: Tensor,
        num_samples: int = 100,
        num_imputations: int = 1,
        num_weight_samples: int = 10,
    ) -> Tensor:
        r"""The posterior predictive :math:`p(y|x) = \mathbb E_{q_\phi(\gamma)}\,
        \mathbb E_{z, \tilde x}[p_\theta(y|\tilde x)]`: :meth:`LEX.predict
        <lexppl.models.LEX.predict>` averaged over ``num_weight_samples`` weight draws
        (``num_samples`` masks each). Same output shapes as ``LEX.predict``."""
        _check_num_samples(num_weight_samples)
        draws = self._sample_weights(num_weight_samples)
        total = None
        # One LEX.predict per weight draw: it already holds num_samples x num_imputations
        # particles of every input, and S times as many at once would multiply the memory.
        for s in range(num_weight_samples):
            weights = {name: value[s] for name, value in draws.items()}
            with self.selector._pyro_context, poutine.condition(data=weights):
                value = super().predict(x, num_samples, num_imputations)
            total = value if total is None else total + value
        return total / num_weight_samples


def credible_interval(samples: Tensor, prob: float = 0.9) -> tuple[Tensor, Tensor]:
    """Equal-tailed credible interval over the first (sample) dimension: the
    ``(1 - prob) / 2`` and ``(1 + prob) / 2`` quantiles, each of shape ``samples.shape[1:]``."""
    if not 0 < prob < 1:
        raise ValueError(f"prob must lie in (0, 1); got {prob}.")
    q = torch.tensor([(1 - prob) / 2, (1 + prob) / 2], dtype=samples.dtype, device=samples.device)
    lower, upper = torch.quantile(samples, q, dim=0)
    return lower, upper


def fit_bayesian(
    model: BayesianLEX,
    bound: ImportanceWeightedBound,
    x: Tensor,
    y: Tensor,
    *,
    epochs: int = 10,
    batch_size: int = 1000,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    freeze: Iterable[str] = (),
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool = False,
) -> FitResult:
    r"""
    Train a :class:`BayesianLEX` with Adam in plain torch: each step takes a mini-batch and
    one gradient step on :meth:`BayesianLEX.negative_elbo` (KL weighted :math:`1/N` per datum),
    so the selector's posterior :math:`q_\phi` is fitted variationally, the predictor (and a
    learnable imputer) by maximum likelihood, and the masks' gradient comes from ``bound``.

    The guide's parameters get no weight decay (the KL already regularises them);
    ``weight_decay`` applies to the other parameters (predictor, imputer, ...).

    :param BayesianLEX model: the model (moved to ``device``; its guide is set up here).
    :param bound: a LEX bound, e.g. ``PathwiseBound(num_masks=4, method="marginal")``.
    :param x: inputs ``(n, ...)``; :param y: targets ``(n,)``.
    :param int epochs: passes over the data; :param int batch_size: mini-batch size.
    :param float lr: Adam learning rate; :param float weight_decay: for non-guide parameters.
    :param freeze: LEX parts kept fixed, e.g. ``("predictor",)`` (fixed-θ regime).
    :param device: ``"cpu"``, ``"cuda"``, ...; :param int seed: seeds Pyro/torch and shuffling.
    :param bool progress: show a progress bar.
    :returns: a :class:`~lexppl.train.FitResult` whose ``losses`` are the per-epoch means of
        the per-datum negative ELBO.
    """
    from lexppl.train import _check_targets_in_support, _check_xy

    if not isinstance(model, BayesianLEX):
        raise TypeError(f"fit_bayesian trains a BayesianLEX; got {type(model).__name__}.")
    _check_xy(x, y)
    for name, value in [("epochs", epochs), ("batch_size", batch_size)]:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"Expected {name} to be an int >= 1 but got {value!r}.")
    device = check_device(device)
    freeze = tuple(freeze)
    for part in freeze:  # every name checked before anything is frozen
        if part == "selector" or not isinstance(getattr(model, part, None), nn.Module):
            raise ValueError(
                f"Cannot freeze {part!r}: choose among the BayesianLEX's point-estimated "
                f"modules (predictor, imputer, likelihood, regularizer)."
            )
    model.to(device)
    pyro.set_rng_seed(seed)
    _check_targets_in_support(model, x, y, device)
    # The user's own requires_grad flags come back after training, as lexppl.fit does.
    flags = {p: p.requires_grad for part in freeze for p in getattr(model, part).parameters()}
    for part in freeze:
        getattr(model, part).requires_grad_(False)
    try:
        return _train_bayesian(
            model, bound, x, y, epochs, batch_size, lr, weight_decay, freeze, device, seed, progress
        )
    finally:
        for parameter, flag in flags.items():
            parameter.requires_grad_(flag)


def _train_bayesian(
    model, bound, x, y, epochs, batch_size, lr, weight_decay, freeze, device, seed, progress
):
    from tqdm.auto import tqdm

    from lexppl.train import FitResult

    model.init_guide(x[:2].to(device), y[:2].to(device))
    guide_ids = {id(p) for p in model.autoguide.parameters()}
    groups = [
        {
            "params": [p for p in model.parameters() if p.requires_grad and id(p) not in guide_ids],
            "weight_decay": weight_decay,
        },
        {"params": list(model.autoguide.parameters()), "weight_decay": 0.0},
    ]
    estimator_params = [p for p in bound.parameters() if p.requires_grad]
    if estimator_params:
        groups.append({"params": estimator_params, "weight_decay": 0.0})
    optimizer = torch.optim.Adam(groups, lr=lr)

    shuffle = torch.Generator().manual_seed(seed)
    result, n = FitResult(), x.shape[0]
    bar = tqdm(range(epochs), disable=not progress, desc="bayesian lex", unit="epoch")
    try:
        for epoch in bar:
            model.train()
            for part in freeze:  # fixed functions: batch norm statistics kept, dropout off
                getattr(model, part).eval()
            order = torch.randperm(n, generator=shuffle)
            total = torch.zeros((), device=device)
            for begin in range(0, n, batch_size):
                index = order[begin : begin + batch_size]
                xb, yb = x[index].to(device), y[index].to(device)
                loss = model.negative_elbo(bound, xb, yb, num_data=n)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(index)
            epoch_loss = (total / n).item()
            if not math.isfinite(epoch_loss):
                raise FloatingPointError(f"the training loss became {epoch_loss} at epoch {epoch}.")
            result.losses.append(epoch_loss)
            result.epochs_run += 1
            bar.set_postfix(loss=f"{epoch_loss:.4f}")
    finally:
        model.eval()
    return result
