"""Reweighted wake-sleep: training an amortised mask proposal q_φ(z|x, y) for the LEX bound."""

from __future__ import annotations

from torch import Tensor

from lexppl.infer.bound import BoundTerms, ImportanceWeightedBound

__all__ = ["ReweightedWakeSleepBound"]


class ReweightedWakeSleepBound(ImportanceWeightedBound):
    r"""
    The LEX bound with masks proposed by a guide :math:`q_\phi(z|x, y)` (e.g.
    :class:`~lexppl.guides.MaskProposal`), trained by reweighted wake-sleep:

    - the model's parameters (selector, predictor, imputer) follow the gradient of the
      importance-weighted bound :math:`\log \frac{1}{LK}\sum_{l,k} w_{l,k}`,
      :math:`w_{l,k} = p_\theta(y|\tilde x^{l,k})\, p_\gamma(z^l|x) / q_\phi(z^l|x, y)`; the
      masks are samples of :math:`q_\phi`, so no mask-gradient estimator is needed for
      :math:`\gamma`, which enters through :math:`\log p_\gamma(z^l|x)`;
    - the proposal follows the wake-phase update
      :math:`\sum_l \bar w_l \nabla_\phi \log q_\phi(z^l|x, y)` with self-normalised weights
      :math:`\bar w_l \propto \frac1K \sum_k w_{l,k}`, which fits :math:`q_\phi` to the
      posterior over explanations.

    The surrogate's value is the bound. Needs ``num_masks >= 2`` to be useful (with one mask
    the normalised weight is 1 and the wake update is maximum likelihood on its own samples).

    **References**

    [1] Bornschein, Bengio, *Reweighted Wake-Sleep*, ICLR 2015.
    [2] Le et al., *Revisiting Reweighted Wake-Sleep*, UAI 2019.
    """

    #: The proposal follows the wake-phase update (see above).
    trains_proposal = True

    def _surrogate(self, terms: BoundTerms) -> Tensor:
        if terms.proposal_log_prob is None:
            raise ValueError(
                "ReweightedWakeSleepBound needs a guide that proposes the masks, e.g. "
                "lexppl.guides.MaskProposal; got the prior proposal."
            )
        per_mask = terms.log_weights.logsumexp(0)  # (L, N), up to the constant log K
        normalised = (per_mask - per_mask.logsumexp(0, keepdim=True)).exp().detach()
        log_q = terms.proposal_log_prob
        wake = (normalised * (log_q - log_q.detach())).sum()  # zero value, wake gradient
        return terms.total + wake
