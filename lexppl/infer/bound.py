"""The importance-weighted LEX bound L_{L,K} shared by every mask-gradient estimator."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import pyro.poutine as poutine
import torch
from pyro.distributions.util import scale_and_mask
from pyro.infer import ELBO
from pyro.infer.util import is_validation_enabled
from pyro.util import warn_if_nan
from torch import Tensor

from lexppl.models.lex import IMPUTATION, MASK

__all__ = ["BoundTerms", "ImportanceWeightedBound"]


class BoundTerms(NamedTuple):
    """What one vectorised trace of a LEX model contributes to the bound.

    - ``per_datum``: :math:`\\log \\frac{1}{LK}\\sum_{l,k} w_{l,k}` for each datum, shape ``(N,)``.
    - ``log_weights``: :math:`\\log w_{l,k}` of shape ``(K, L, N)``.
    - ``mask_log_prob``: :math:`\\log p_\\gamma(z^l|x)` summed over mask sites, ``(L, N)``
      (zeros for estimators that do not need it).
    - ``global_term``: :math:`\\log p - \\log q` of latent sites drawn by a guide (scalar).
    - ``proposal_log_prob``: :math:`\\log q_\\phi(z^l|x, y)` when a guide proposes the masks
      (``(L, N)``, differentiable in :math:`\\phi`), else ``None``.
    - ``data_scale``: the ``poutine.scale`` factor of the data's sites, applied to the sum of
      the per-datum bounds (outside each log-mean-exp), e.g. :math:`N_{\\text{data}} / B` for
      a mini-batch.
    - ``included``: which data ``poutine.mask`` keeps, ``(N,)`` booleans, or ``None`` for all.
    """

    per_datum: Tensor
    log_weights: Tensor
    mask_log_prob: Tensor
    global_term: Tensor
    proposal_log_prob: Tensor | None = None
    data_scale: float = 1.0
    included: Tensor | None = None

    @property
    def total(self) -> Tensor:
        return self.data_scale * self.per_datum.sum() + self.global_term


def _as_particles(log_prob: Tensor) -> Tensor:
    # Site log-densities come with size-1 particle dims left out: (N,), (L, N) or (K, L, N).
    while log_prob.dim() < 3:
        log_prob = log_prob.unsqueeze(0)
    return log_prob


def _log_prob(site: dict) -> Tensor:
    # log p of a site with its poutine.mask applied (masked entries count 0), without its scale.
    return scale_and_mask(site["fn"].log_prob(site["value"]), mask=site["mask"])


def _is_particle_plate(frame) -> bool:
    # The LEX model's own particle plates: "<name>.masks" at dim -2, "<name>.imputations" at -3.
    names = {-2: "masks", -3: "imputations"}
    name = names.get(frame.dim)
    return name is not None and (frame.name == name or frame.name.endswith("." + name))


class _DataScale:
    # The scale shared by every site of the per-datum weights (one number): it multiplies each
    # datum's bound, so it must not differ between the sites inside one log-mean-exp.
    def __init__(self) -> None:
        self.value: float | None = None
        self.site: str | None = None

    def add(self, name: str, scale) -> None:
        if isinstance(scale, Tensor):
            if scale.numel() != 1:
                raise ValueError(
                    f"Site {name!r} has a poutine.scale of shape {tuple(scale.shape)}; lexppl "
                    f"bounds take one number for the data (e.g. N / batch size). Leave data "
                    f"out with poutine.mask, or repeat rows to weight them."
                )
            scale = float(scale)
        if self.value is None:
            self.value, self.site = float(scale), name
        elif float(scale) != self.value:
            raise ValueError(
                f"Sites {self.site!r} and {name!r} have different poutine.scale factors "
                f"({self.value} and {float(scale)}); the sites of one LEX bound share the "
                f"per-datum log-mean-exp, so they must share one scale."
            )


class ImportanceWeightedBound(ELBO):
    r"""
    The LEX importance-weighted bound with :math:`L` masks and :math:`K` imputations per mask
    (LEX paper eq. 28-29, App. E.1), minus the regulariser of eq. 6:

    .. math::

        \mathcal L_{L,K} = \sum_n \mathbb E\left[\log \frac{1}{LK} \sum_{l=1}^L \sum_{k=1}^K
            p_\theta(y_n \mid \tilde x_n^{l,k})\right] - \lambda\, \mathbb E[R(Z)],\qquad
            z^l \sim p_\gamma(\cdot|x_n),\; \tilde x^{l,k} \sim p_\iota(\cdot|x_n, z^l).

    Masks and imputations are proposed from the model's own prior, so the importance weights
    are the likelihoods :math:`w_{l,k} = p_\theta(y|\tilde x^{l,k})` (times any other observed
    or factor site in the data plate). :math:`\mathcal L_{1,1} \le \mathcal L_{L,K} \le \log
    p(y|x)`, and the bound tightens as :math:`L` and :math:`K` grow (Burda et al. 2016; Domke &
    Sheldon 2018). Particles are vectorised: the model is called with ``num_masks=L,
    num_imputations=K``, and kept at dims -2 (masks) and -3 (imputations) under the data plate
    at dim -1.

    Inside a larger model: ``poutine.scale`` multiplies each datum's term (one number shared by
    the data's sites, e.g. :math:`N/B` for a mini-batch), ``poutine.mask`` leaves data out,
    observed and factor sites outside the data plate and latent sites drawn by a guide enter
    once, as :math:`\log p - \log q` (a global ELBO term). Several LEX blocks on the same rows
    share the particles; plates other than the data plate around the weight sites are refused.

    Subclasses choose how the gradient with respect to the selector reaches through the
    discrete mask: :class:`~lexppl.infer.PathwiseBound`, :class:`~lexppl.infer.ReinforceBound`,
    :class:`~lexppl.infer.EnumerateBound`. Like every Pyro ELBO, an instance works with
    :class:`pyro.infer.SVI` (``loss_and_grads``) and with a plain torch optimiser
    (``differentiable_loss``, or ``bound(model, guide)`` to get an ``nn.Module``). Losses are
    negated bounds summed over the data, as in Pyro.

    .. note:: Pyro's ``RenyiELBO(alpha=0)`` computes the same value but gives *zero* gradient
        to discrete sites, which is why lexppl has its own bounds.

    :param int num_masks: :math:`L \ge 1`.
    :param int num_imputations: :math:`K \ge 1`.

    **References**

    [1] Senetaire et al., *Explainability as statistical inference*, ICML 2023, App. E.
    [2] Burda, Grosse, Salakhutdinov, *Importance Weighted Autoencoders*, ICLR 2016.
    """

    #: Whether the estimator uses :math:`\log p_\gamma(z|x)` of the sampled masks (score-function
    #: terms, enumeration); pathwise estimators skip computing it.
    needs_mask_log_prob: bool = True

    #: Whether the selector's gradient pairs each datum's term with that datum's own masks only
    #: (score-function terms: REINFORCE, VIMCO, REBAR, RELAX). That is the gradient only if a
    #: datum's likelihood depends on no other datum's mask; pathwise estimators differentiate
    #: every term through every mask and need no such assumption.
    pairs_each_datum_with_its_masks: bool = True

    #: Whether the estimator trains a guide that proposes the masks (an amortised
    #: :math:`q_\phi(z|x, y)` such as :class:`~lexppl.guides.MaskProposal`). The others only
    #: weigh its draws and leave its parameters untrained, so :func:`lexppl.fit` refuses one.
    trains_proposal: bool = False

    def __init__(self, num_masks: int = 1, num_imputations: int = 1) -> None:
        for name, value in [("num_masks", num_masks), ("num_imputations", num_imputations)]:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Expected {name} to be an int >= 1 but got {value!r}.")
        super().__init__(num_particles=1, max_plate_nesting=3, vectorize_particles=False)
        self.num_masks = num_masks
        self.num_imputations = num_imputations

    # ------------------------------------------------------------------ hooks
    def _mask_handler(self, model):
        """Wrap ``model`` so that mask sites are drawn the way the estimator needs."""
        return model

    def _num_mask_particles(self, model, args, kwargs) -> int:
        return self.num_masks

    def _surrogate(self, terms: BoundTerms) -> Tensor:
        """A scalar whose value is the bound and whose gradient is the estimator's."""
        raise NotImplementedError

    # ------------------------------------------------------------------ traces
    def _get_trace(self, model, guide, args, kwargs):
        kwargs = dict(
            kwargs,
            num_masks=self._num_mask_particles(model, args, kwargs),
            num_imputations=self.num_imputations,
        )
        # The guide sees the particle counts too: a mask proposal must draw L masks per datum.
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        replayed = poutine.replay(self._mask_handler(model), trace=guide_trace)
        model_trace = poutine.trace(replayed).get_trace(*args, **kwargs)
        if is_validation_enabled():
            if not any(s.get("infer", {}).get("lex") == MASK for s in model_trace.nodes.values()):
                raise ValueError("The model has no LEX mask site; is it a lexppl LEX model?")
        return model_trace, guide_trace

    def _data_plates(self, model_trace) -> dict[str, int]:
        # The data plates (dim -1) of the mask sites, by name, with their sizes: an observed
        # site inside one of them is a per-datum weight, any other observed site is global.
        plates = {}
        sites = [site for site in model_trace.nodes.values() if site["type"] == "sample"]
        masks = [site for site in sites if site["infer"].get("lex") == MASK]
        for site in masks or sites:  # a model without masks: any plate at dim -1
            for frame in site["cond_indep_stack"]:
                if frame.dim == -1:
                    plates[frame.name] = frame.size
        if len(set(plates.values())) > 1:
            sizes = ", ".join(f"{name!r} of size {size}" for name, size in plates.items())
            raise ValueError(
                f"The model's LEX blocks have data plates of different sizes ({sizes}); one "
                f"lexppl bound pairs their data row by row, so give every block the same rows."
            )
        return plates

    def _check_plates(self, name: str, site: dict, data_plates: dict[str, int]) -> None:
        # The bound reads dims -1, -2 and -3 as data, masks and imputations: a user's plate
        # there (or further left) would be mistaken for particles and averaged, not summed.
        for frame in site["cond_indep_stack"]:
            if frame.vectorized and frame.name not in data_plates and not _is_particle_plate(frame):
                raise ValueError(
                    f"Site {name!r} is inside plate {frame.name!r} (dim {frame.dim}), which is "
                    f"not its LEX model's data plate: lexppl bounds keep masks and imputations "
                    f"at dims -2 and -3 and sum only the data plate at dim -1. Put replicated "
                    f"data into the data plate's rows, or use one LEX block per replicate."
                )

    def _terms(self, model_trace, guide_trace) -> BoundTerms:
        log_w = mask_lp = proposal_lp = included = None
        global_term = torch.zeros(())
        data_plates, data_scale = self._data_plates(model_trace), _DataScale()
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample":
                continue
            role = site["infer"].get("lex")
            if role == IMPUTATION:
                continue  # proposed from the prior: it cancels in the weight
            if role == MASK and not site["is_observed"]:
                self._check_plates(name, site, data_plates)
                data_scale.add(name, site["scale"])
            if role == MASK and not site["is_observed"] and name in guide_trace.nodes:
                # A guide proposes the masks (an amortised q(z|x, y)): the weight gains
                # log p(z|x) - log q(z|x, y). log q enters the value only; the proposal is
                # trained by its own rule (e.g. reweighted wake-sleep) from proposal_log_prob.
                log_p = _as_particles(_log_prob(site))
                q = guide_trace.nodes[name]
                log_q = _as_particles(scale_and_mask(q["fn"].log_prob(q["value"]), mask=q["mask"]))
                guided = log_p - log_q.detach()
                log_w = guided if log_w is None else log_w + guided
                proposal_lp = log_q.sum(0) if proposal_lp is None else proposal_lp + log_q.sum(0)
                continue
            if role == MASK and not site["is_observed"]:
                if self.needs_mask_log_prob:  # proposal = prior: only score terms need it
                    lp = _as_particles(_log_prob(site))
                    mask_lp = lp.sum(0) if mask_lp is None else mask_lp + lp.sum(0)
                continue
            per_datum_site = any(f.name in data_plates for f in site["cond_indep_stack"])
            if site["is_observed"] and per_datum_site:
                self._check_independent_data(name, site["fn"], model_trace)
                self._check_plates(name, site, data_plates)
                data_scale.add(name, site["scale"])
                lp = _as_particles(_log_prob(site))
                log_w = lp if log_w is None else log_w + lp
                if site["mask"] is not None:  # the data poutine.mask keeps
                    kept = torch.as_tensor(site["mask"], device=lp.device).expand(lp.shape)
                    kept = kept.flatten(0, 1).any(0)
                    included = kept if included is None else included | kept
            elif site["is_observed"] or name in guide_trace.nodes:
                # counted once: an observation or factor outside the data plate (e.g. of a
                # larger model's global variable), or a latent with a guide (Bayesian weights)
                lp = scale_and_mask(site["fn"].log_prob(site["value"]), site["scale"], site["mask"])
                global_term = global_term + lp.sum()
        # - log q of every guide site, auxiliary ones included: autoguides draw an auxiliary
        # site and put a Delta (carrying the log-Jacobian) on the model's site.
        for site in guide_trace.nodes.values():
            proposes_mask = site.get("infer", {}).get("lex") == MASK  # in the weights already
            if site["type"] == "sample" and not site["is_observed"] and not proposes_mask:
                log_q = scale_and_mask(
                    site["fn"].log_prob(site["value"]), site["scale"], site["mask"]
                )
                global_term = global_term - log_q.sum()
        if log_w is None:
            raise ValueError("The model has no observed site: pass the targets y.")
        if mask_lp is None:  # no mask site, or its log-probability was not needed
            mask_lp = torch.zeros_like(log_w[0])
        log_w = log_w.expand(torch.broadcast_shapes(log_w.shape, mask_lp.shape[-2:]))
        per_datum = log_w.flatten(0, 1).logsumexp(0) - math.log(log_w.shape[0] * log_w.shape[1])
        scale = 1.0 if data_scale.value is None else data_scale.value
        return BoundTerms(
            per_datum, log_w, mask_lp, global_term.to(per_datum), proposal_lp, scale, included
        )

    def _check_independent_data(self, name: str, fn, model_trace) -> None:
        """Refuse a likelihood whose per-datum terms depend on other data's masks (it declares
        ``couples_data = True``, e.g. a Cox partial likelihood's risk sets) when the estimator
        would pair each term with its own datum's masks and the selector is being trained."""
        if not (getattr(fn, "couples_data", False) and self.pairs_each_datum_with_its_masks):
            return
        learning = any(
            site["type"] == "sample"
            and site["infer"].get("lex") == MASK
            and getattr(site["fn"], "logits", torch.zeros(())).requires_grad
            for site in model_trace.nodes.values()
        )
        if learning:
            raise ValueError(
                f"{type(self).__name__} pairs each datum's likelihood term with that datum's own "
                f"masks, but site {name!r} ({type(fn).__name__}) couples the data: a datum's term "
                f"depends on other data's masks, so its selector gradient would be wrong. Use a "
                f"pathwise bound (PathwiseBound, ConcreteBound)."
            )

    def bound_terms(self, model, guide, *args, **kwargs) -> BoundTerms:
        """Trace ``model`` once with the particle plates and return the bound's parts."""
        model_trace, guide_trace = self._get_trace(model, guide, args, kwargs)
        return self._terms(model_trace, guide_trace)

    # ------------------------------------------------------------------ ELBO interface
    @torch.no_grad()
    def loss(self, model, guide, *args, **kwargs) -> float:
        """The negated bound :math:`-\\mathcal L_{L,K}` (a float)."""
        loss = -self.bound_terms(model, guide, *args, **kwargs).total.item()
        warn_if_nan(loss, "loss")
        return loss

    def differentiable_loss(self, model, guide, *args, **kwargs) -> Tensor:
        """A differentiable surrogate whose value is :math:`-\\mathcal L_{L,K}` and whose
        gradient is this estimator's gradient of it."""
        terms = self.bound_terms(model, guide, *args, **kwargs)
        if terms.data_scale == 1.0:
            surrogate = self._surrogate(terms)
        else:  # poutine.scale multiplies every datum's term (value and gradient), not log w
            unscaled = terms._replace(data_scale=1.0)
            data_part = self._surrogate(unscaled) - unscaled.global_term
            surrogate = terms.data_scale * data_part + unscaled.global_term
        loss = -surrogate
        warn_if_nan(loss, "loss")
        return loss

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """Compute the surrogate, back-propagate it, and return the loss as a float."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return loss.item()

    # ------------------------------------------------------------------ state
    def parameters(self) -> Iterator[torch.nn.Parameter]:
        """Parameters the estimator learns itself (control variates, baselines); the training
        loop optimises them with the model's. None by default."""
        return iter(())

    def to(self, *args, **kwargs) -> ImportanceWeightedBound:
        """Move the estimator's own modules (baseline networks, control variates) like
        :meth:`torch.nn.Module.to`, e.g. to the model's device; returns ``self``.
        :func:`lexppl.fit` calls it with its ``device``."""
        for value in vars(self).values():
            if isinstance(value, torch.nn.Module):
                value.to(*args, **kwargs)
        return self

    def state_dict(self) -> dict:
        """Estimator state (e.g. a moving-average baseline) for checkpoints."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
