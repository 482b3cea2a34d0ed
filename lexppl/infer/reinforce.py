"""Score-function (REINFORCE) gradients for discrete masks, with a moving-average baseline."""

from __future__ import annotations

import torch
from torch import Tensor

from lexppl.infer.bound import BoundTerms, ImportanceWeightedBound

__all__ = ["ReinforceBound"]


class ReinforceBound(ImportanceWeightedBound):
    r"""
    The LEX bound with the score-function gradient (Williams 1992; INVASE's estimator), unbiased
    for the gradient of :math:`\mathcal L_{L,K}`:

    .. math::

        \nabla \mathcal L_{L,K} = \mathbb E\Big[\nabla f + (f - b)\, \nabla
            \textstyle\sum_{l} \log p_\gamma(z^l \mid x)\Big],\qquad
            f = \log \frac{1}{LK} \sum_{l,k} p_\theta(y \mid \tilde x^{l,k}),

    where :math:`b` is a baseline that does not depend on the masks: an exponential moving
    average of :math:`f` over past batches (decay ``baseline_decay``). The surrogate's value
    equals the bound. Works with any mask family that has an exact ``log_prob``
    (IndependentBernoulli, KSubset) and any imputation.

    :param int num_masks: :math:`L`.
    :param int num_imputations: :math:`K`.
    :param float baseline_decay: decay of the moving average in :math:`[0, 1)`; 0 uses the
        last batch's mean.

    **References**

    [1] R. J. Williams, *Simple statistical gradient-following algorithms for connectionist
        reinforcement learning*, 1992.
    [2] Yoon, Jordon, van der Schaar, *INVASE*, ICLR 2019.
    """

    def __init__(
        self, num_masks: int = 1, num_imputations: int = 1, baseline_decay: float = 0.9
    ) -> None:
        super().__init__(num_masks, num_imputations)
        if not 0.0 <= baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must be in [0, 1); got {baseline_decay}.")
        self.baseline_decay = baseline_decay
        self.baseline: float | None = None

    def _surrogate(self, terms: BoundTerms) -> Tensor:
        f = terms.per_datum
        baseline = f.detach().mean() if self.baseline is None else torch.as_tensor(self.baseline)
        # Only update the baseline when gradients are wanted (training), never in evaluation.
        if torch.is_grad_enabled():
            current = f.detach().mean().item()
            self.baseline = (
                current
                if self.baseline is None
                else (self.baseline_decay * self.baseline + (1 - self.baseline_decay) * current)
            )
        score = terms.mask_log_prob.sum(0)  # sum over the L masks, shape (N,)
        advantage = (f.detach() - baseline.to(f)).detach()
        # (score - score.detach()) is zero in value: the surrogate's value is the bound.
        return terms.total + (advantage * (score - score.detach())).sum()

    def state_dict(self) -> dict:
        return {"baseline": self.baseline}

    def load_state_dict(self, state: dict) -> None:
        self.baseline = state.get("baseline")
