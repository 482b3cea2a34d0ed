"""Pathwise (straight-through) gradients for discrete masks."""

from __future__ import annotations

import pyro.poutine as poutine
from pyro.infer.reparam.reparam import Reparam
from torch import Tensor

from lexppl.infer.bound import BoundTerms, ImportanceWeightedBound
from lexppl.models.lex import MASK

__all__ = ["STRAIGHT_THROUGH_METHODS", "PathwiseBound", "StraightThroughReparam"]


#: Backward passes of the straight-through estimator.
STRAIGHT_THROUGH_METHODS = ("relaxed", "marginal")


class StraightThroughReparam(Reparam):
    r"""Rewrite a mask site for straight-through gradients: discrete samples forward, a
    differentiable surrogate backward.

    - ``method="relaxed"`` (the LEX paper's, App. E.2): the site's distribution is replaced by
      its straight-through form ``fn.straight_through(temperature)``: binary concrete
      thresholded at 1/2 for Bernoulli masks, hard top-k of Gumbel-perturbed logits with the
      relaxed top-k gradient for k-subsets.
    - ``method="marginal"``: an exact sample :math:`z \sim p_\gamma(\cdot|x)` of the site's own
      distribution, with the gradient of its exact marginals :math:`\mu = \mathbb E[Z|x]`
      (:math:`z + \mu - \mathrm{sg}(\mu)`), as in SIMPLE (Ahmed et al. 2023). The forward
      samples then follow the model's law exactly (for k-subsets the relaxed form samples the
      Gumbel-top-k law instead), and there is no temperature.
    """

    def __init__(self, temperature: float = 0.5, method: str = "relaxed") -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0; got {temperature}.")
        if method not in STRAIGHT_THROUGH_METHODS:
            raise ValueError(
                f"Unknown straight-through method {method!r}; valid choices are "
                f"{list(STRAIGHT_THROUGH_METHODS)}."
            )
        self.temperature = temperature
        self.method = method

    def apply(self, msg):
        fn = msg["fn"]
        if self.method == "marginal":
            marginals = fn.mean
            value = fn.sample() + (marginals - marginals.detach())
            return {"fn": fn, "value": value, "is_observed": False}
        if not hasattr(fn, "straight_through"):
            raise ValueError(
                f"The pathwise estimator needs a mask family with a straight-through form "
                f"(IndependentBernoulli, KSubset); site {msg['name']!r} has {type(fn).__name__}."
            )
        return {"fn": fn.straight_through(self.temperature), "value": None, "is_observed": False}


def _mask_sites_config(reparam: StraightThroughReparam):

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
    ``method="marginal"`` keeps exact samples of the mask distribution forward and
    back-propagates through its exact marginals instead (SIMPLE-style); on S3 it trains more
    stably than the relaxation (see ``tests/test_learning.py``).

    :param int num_masks: :math:`L`.
    :param int num_imputations: :math:`K`.
    :param float temperature: relaxation temperature :math:`\tau` of the backward pass
        (``method="relaxed"`` only).
    :param str method: ``"relaxed"`` (default, the paper's) or ``"marginal"``.

    **References**

    [1] Senetaire et al., *Explainability as statistical inference*, ICML 2023, App. E.2.
    [2] Bengio, Léonard, Courville, *Estimating or propagating gradients through stochastic
        neurons*, 2013.
    [3] Maddison, Mnih, Teh, *The Concrete Distribution*, ICLR 2017.
    [4] Xie, Ermon, *Reparameterizable Subset Sampling via Continuous Relaxations*, IJCAI 2019.
    [5] Ahmed, Zeng, Niepert, Van den Broeck, *SIMPLE: A Gradient Estimator for k-Subset
        Sampling*, ICLR 2023.
    """

    needs_mask_log_prob = False
    pairs_each_datum_with_its_masks = False

    def __init__(
        self,
        num_masks: int = 1,
        num_imputations: int = 1,
        temperature: float = 0.5,
        method: str = "relaxed",
    ) -> None:
        super().__init__(num_masks, num_imputations)
        self.reparam = StraightThroughReparam(temperature, method)
        self.temperature, self.method = temperature, method

    def _mask_handler(self, model):
        return poutine.reparam(model, config=_mask_sites_config(self.reparam))

    def _surrogate(self, terms: BoundTerms) -> Tensor:
        return terms.total
