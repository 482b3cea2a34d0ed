"""Exact enumeration over all masks: the exact objective and gradient for small D."""

from __future__ import annotations

import math

import pyro.poutine as poutine
import torch
from pyro.poutine.messenger import Messenger
from torch import Tensor

from lexppl.infer.bound import BoundTerms, ImportanceWeightedBound
from lexppl.models.lex import MASK

__all__ = ["EnumerateBound"]


class _MaskFound(Exception):
    def __init__(self, fn):
        self.fn = fn


class _StopAtMask(Messenger):
    # Runs the model only up to its mask site to learn the mask distribution's support size.
    def _pyro_sample(self, msg):
        if msg["infer"].get("lex") == MASK and not msg["is_observed"]:
            raise _MaskFound(msg["fn"])


class _SetSupport(Messenger):
    # Puts the whole support on the "masks" particle dim: value (S, N, D) for batch (S, N).
    def __init__(self, support: Tensor) -> None:
        super().__init__()
        self.support = support

    def _pyro_sample(self, msg):
        if msg["infer"].get("lex") == MASK and not msg["is_observed"]:
            fn = msg["fn"]
            support = self.support.to(device=fn.mean.device, dtype=fn.mean.dtype)
            msg["value"] = support.reshape(
                (support.shape[0],) + (1,) * (len(fn.batch_shape) - 1) + fn.event_shape
            ).expand(fn.batch_shape + fn.event_shape)
            msg["done"] = True


class EnumerateBound(ImportanceWeightedBound):
    r"""
    The exact LEX objective by summing over every mask in the support:

    .. math::

        \log p(y|x) = \log \sum_{z} p_\gamma(z|x)\, \frac{1}{K}\sum_{k=1}^K
            p_\theta(y \mid \tilde x^{z,k}) - \lambda\,\mathbb E[R(Z)],

    exact when the imputation is deterministic (constant imputation), and an importance-weighted
    bound in the imputations otherwise. The gradient is exact too (no mask sampling), which
    makes this the test oracle of every other estimator. The cost is :math:`|\mathrm{supp}|`
    predictor calls per datum: all :math:`2^D` masks for independent Bernoulli (:math:`D \le
    20`) and all :math:`\binom{D}{k}` subsets for k-subsets.

    .. note:: With a deterministic imputation, Pyro's own ``TraceEnum_ELBO`` computes the same
        objective and gradient on ``config_enumerate(poutine.block(lex.model,
        hide=["imputation"]))`` (tested); this class also covers multiple imputation.

    The masks are the model's own: a guide that proposes the mask site is refused (a proposal
    has nothing to do when every mask is summed over).

    :param int num_imputations: :math:`K`.
    :param int max_support: refuse supports larger than this (the cost guard).
    """

    def __init__(self, num_imputations: int = 1, max_support: int = 4096) -> None:
        super().__init__(1, num_imputations)
        self.max_support = max_support
        self._support: Tensor | None = None

    def _num_mask_particles(self, model, args, kwargs) -> int:
        try:
            poutine.block(_StopAtMask()(model))(*args, **kwargs)
        except _MaskFound as found:
            fn = found.fn
        else:
            raise ValueError("The model has no LEX mask site to enumerate.")
        size = _support_size(fn)
        if size > self.max_support:
            raise ValueError(
                f"The enumerate estimator needs all {size} masks of {type(fn).__name__} with "
                f"D={fn.event_shape[-1]}, more than max_support={self.max_support}; use a "
                f"sampling estimator (pathwise, reinforce) for this many features."
            )
        support = fn.enumerate_support(expand=False)
        self._support = support.reshape(-1, *fn.event_shape)
        return self._support.shape[0]

    def _mask_handler(self, model):
        def handled(*args, **kwargs):
            return _SetSupport(self._support)(model)(*args, **kwargs)

        return handled

    def _terms(self, model_trace, guide_trace) -> BoundTerms:
        masks = [
            name
            for name, site in model_trace.nodes.items()
            if site["type"] == "sample"
            and site["infer"].get("lex") == MASK
            and not site["is_observed"]
        ]
        if len(masks) > 1:
            raise ValueError(
                f"EnumerateBound enumerates one mask site; the model has {len(masks)} "
                f"({', '.join(map(repr, masks))}), whose joint support it would not cover. Use "
                f"a sampling bound, or condition all but one mask site."
            )
        # A guide's mask draws would be replayed over the enumerated support, so the sum over
        # masks would run over q's few draws instead: no longer log p(y|x), nor a bound on it.
        proposed = [
            name
            for name, site in guide_trace.nodes.items()
            if site["type"] == "sample"
            and (name in masks or site.get("infer", {}).get("lex") == MASK)
        ]
        if proposed:
            raise ValueError(
                f"EnumerateBound sums over every mask itself, but the guide proposes the mask "
                f"site(s) {', '.join(map(repr, proposed))}. Pass the model's own guide (the "
                f"prior proposal), or train a mask proposal with VimcoBound or "
                f"ReweightedWakeSleepBound."
            )
        terms = super()._terms(model_trace, guide_trace)
        K = terms.log_weights.shape[0]
        # log sum_z p(z|x) mean_k w_{z,k}  (the mask log-probabilities are the weights here)
        per_z = terms.log_weights.logsumexp(0) - math.log(K)
        per_datum = (per_z + terms.mask_log_prob).logsumexp(0)
        if terms.included is not None:  # data left out by poutine.mask count 0, not log |supp|
            per_datum = torch.where(terms.included, per_datum, per_datum.new_zeros(()))
        return terms._replace(per_datum=per_datum)

    def _surrogate(self, terms: BoundTerms) -> Tensor:
        return terms.total

    def _check_independent_data(self, name: str, fn, model_trace) -> None:
        # Every datum is given the same support element at once: the sum over one datum's masks
        # holds the others' fixed instead of averaging over them, so even the value is wrong.
        if getattr(fn, "couples_data", False):
            raise ValueError(
                f"EnumerateBound enumerates one mask for all data at once, but site {name!r} "
                f"({type(fn).__name__}) couples the data (a datum's term depends on other data's "
                f"masks), so its value would be wrong. Use a sampling bound (PathwiseBound)."
            )


def _support_size(fn) -> int:
    D = fn.event_shape[-1]
    k = getattr(fn, "k", None)
    return math.comb(D, int(k)) if k is not None else 2**D
