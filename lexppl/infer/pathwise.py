"""Pathwise (straight-through) gradients for discrete masks."""

from __future__ import annotations

import pyro.poutine as poutine
from pyro.infer.reparam.reparam import Reparam
from torch import Tensor

from lexppl.infer.bound import BoundTerms, ImportanceWeightedBound
from lexppl.models.lex import MASK

__all__ = ["PathwiseBound", "StraightThroughReparam"]


class StraightThroughReparam(Reparam):
    """Replace a mask site's distribution by its straight-through form
    (``fn.straight_through(temperature)``): discrete samples forward, gradients of the
    continuous relaxation backward."""

    def __init__(self, temperature: float = 0.5) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0; got {temperature}.")
        self.temperature = temperature

    def apply(self, msg):
        fn = msg["fn"]
        if not hasattr(fn, "straight_through"):
            raise ValueError(
                f"The pathwise estimator needs a mask family with a straight-through form "
                f"(IndependentBernoulli, KSubset); site {msg['name']!r} has {type(fn).__name__}."
            )
        return {"fn": fn.straight_through(self.temperature), "value": None, "is_observed": False}


def _mask_sites_config(temperature: float):
    reparam = StraightThroughReparam(temperature)

    def config(msg):
        is_mask = msg["infer"].get("lex") == MASK and not msg["is_observed"]
        return reparam if is_mask else None

    return config


class PathwiseBound(ImportanceWeightedBound):
    r"""
    The LEX bound :math:`\mathcal L_{L,K}` with the straight-through pathwise estimator of the
    LEX paper (App. E.2): masks are exact discrete samples in the forward pass (Bernoulli
    thresholded at 0.5; hard top-k of Gumbel-perturbed logits for k-subsets), and the gradient
    flows through the continuous relaxation (binary concrete; relaxed top-k of Xie & Ermon) into
    the imputation :math:`\tilde x = z \odot x + (1-z) \odot \hat x` and the selector.

    Biased but low-variance; works with single and multiple imputation. The mask sites are
    rewritten with Pyro's reparameterisation machinery (:class:`StraightThroughReparam`).

    :param int num_masks: :math:`L`.
    :param int num_imputations: :math:`K`.
    :param float temperature: relaxation temperature :math:`\tau` of the backward pass.

    **References**

    [1] Senetaire et al., *Explainability as statistical inference*, ICML 2023, App. E.2.
    [2] Bengio, Léonard, Courville, *Estimating or propagating gradients through stochastic
        neurons*, 2013.
    [3] Maddison, Mnih, Teh, *The Concrete Distribution*, ICLR 2017.
    [4] Xie, Ermon, *Reparameterizable Subset Sampling via Continuous Relaxations*, IJCAI 2019.
    """

    def __init__(
        self, num_masks: int = 1, num_imputations: int = 1, temperature: float = 0.5
    ) -> None:
        super().__init__(num_masks, num_imputations)
        StraightThroughReparam(temperature)  # validates
        self.temperature = temperature

    def _mask_handler(self, model):
        return poutine.reparam(model, config=_mask_sites_config(self.temperature))

    def _surrogate(self, terms: BoundTerms) -> Tensor:
        return terms.total
