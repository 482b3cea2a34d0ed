"""VIMCO: score-function gradients with leave-one-out baselines for multi-mask bounds."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lexppl.infer.bound import BoundTerms, ImportanceWeightedBound

__all__ = ["VimcoBound", "vimco_learning_signals"]


def vimco_learning_signals(log_weights: Tensor) -> Tensor:
    r"""
    Per-sample learning signals of VIMCO (Mnih & Rezende 2016, eq. 9-10).

    For per-sample log-weights :math:`a_1, \dots, a_L` (of one datum),
    :math:`f = \log \frac1L \sum_j e^{a_j}` and, for each :math:`l`, :math:`f_{-l}` is
    :math:`f` with :math:`a_l` replaced by the arithmetic mean of the others (the geometric
    mean of the other weights):

    .. math::

        f_{-l} = \log \frac1L \Big(\sum_{j \ne l} e^{a_j} + \exp\big(\tfrac{1}{L-1}
            \textstyle\sum_{j\ne l} a_j\big)\Big),\qquad \text{signal}_l = f - f_{-l}.

    Computed in log space (:math:`O(L^2)` per datum).

    :param torch.Tensor log_weights: :math:`a`, shape ``(L, ...)`` with ``L >= 2``.
    :returns: the signals, shape ``(L, ...)``, detached.
    """
    a = log_weights.detach()
    L = a.shape[0]
    if L < 2:
        raise ValueError(f"VIMCO needs num_masks >= 2 samples per datum; got L={L}.")
    f = a.logsumexp(0) - math.log(L)
    mean_others = (a.sum(0, keepdim=True) - a) / (L - 1)  # (L, ...)
    # others[l, j] = a_j for j != l and mean_others[l] on the diagonal.
    others = a.unsqueeze(0).expand((L, *a.shape)).clone()
    index = torch.arange(L, device=a.device)
    others[index, index] = mean_others
    f_minus = others.logsumexp(1) - math.log(L)
    return f.unsqueeze(0) - f_minus


class VimcoBound(ImportanceWeightedBound):
    r"""
    The LEX bound :math:`\mathcal L_{L,K}` with the VIMCO gradient (Mnih & Rezende 2016): the
    score-function estimator with a *per-sample* leave-one-out baseline, unbiased for
    :math:`\nabla \mathcal L_{L,K}` and designed for multi-sample bounds (:math:`L \ge 2`).

    For each datum, let :math:`a_l = \log \frac1K \sum_k p_\theta(y|\tilde x^{l,k})` be the
    log-weight of mask :math:`z^l` (with :math:`K` imputations per mask the per-mask weight is
    the mean of its :math:`K` imputation weights, i.e. ``logmeanexp`` over the imputation dim
    of :attr:`BoundTerms.log_weights`), and :math:`f = \log \frac1L \sum_l e^{a_l}` the
    datum's bound. Then

    .. math::

        \nabla \mathcal L_{L,K} = \mathbb E\Big[\nabla f + \sum_{l=1}^L
            \big(f - f_{-l}\big)\, \nabla \log p_\gamma(z^l \mid x)\Big],

    where :math:`f_{-l}` replaces :math:`a_l` by the mean of the other log-weights
    (:func:`vimco_learning_signals`). :math:`f_{-l}` does not depend on :math:`z^l` (nor on
    the imputations of mask :math:`l`), so the estimator is unbiased; unlike a global baseline
    it also removes the part of :math:`f` that other masks explain, so each mask is credited
    with its own contribution. The surrogate is

    .. math::

        \mathcal L + \sum_n \sum_l \mathrm{sg}(f_n - f_{n,-l})\,
            \big(\log p_\gamma(z^l_n|x_n) - \mathrm{sg}(\log p_\gamma(z^l_n|x_n))\big),

    whose value is the bound (:math:`\mathrm{sg}` = stop-gradient). Works with any mask family
    with an exact ``log_prob`` (IndependentBernoulli, KSubset) and any imputation; the
    imputations get pathwise gradients through :math:`\nabla f`. Factor sites such as the
    regulariser shift every :math:`a_l` equally and cancel in the signals.

    With a guide that proposes the masks, :math:`z^l \sim q_\phi(z|x, y)` (e.g.
    :class:`~lexppl.guides.MaskProposal`), :math:`a_l` gains
    :math:`\log p_\gamma(z^l|x) - \log q_\phi(z^l|x, y)` and the proposal is trained on the
    bound itself (Mnih & Rezende's original use of VIMCO):

    .. math::
        \nabla_\phi \mathcal L_{L,K} = \mathbb E\Big[\sum_{l=1}^L \big(f - f_{-l}
            - \bar w_l\big)\, \nabla_\phi \log q_\phi(z^l \mid x, y)\Big],
        \qquad \bar w_l = \frac{e^{a_l}}{\sum_j e^{a_j}},

    the :math:`-\bar w_l` term being the derivative of :math:`\log q` inside the weights; the
    selector then gets the pathwise gradient of :math:`\log p_\gamma(z^l|x)`.

    :param int num_masks: :math:`L \ge 2`.
    :param int num_imputations: :math:`K \ge 1`.
    :raises ValueError: if ``num_masks < 2`` (with one sample there is no other sample to
        build a baseline from; use :class:`~lexppl.infer.ReinforceBound`).

    **References**

    [1] A. Mnih, D. J. Rezende, *Variational Inference for Monte Carlo Objectives*, ICML 2016.
    [2] Senetaire et al., *Explainability as statistical inference*, ICML 2023, App. E.
    """

    #: The proposal's gradient is the bound's own (see above).
    trains_proposal = True

    def __init__(self, num_masks: int = 2, num_imputations: int = 1) -> None:
        super().__init__(num_masks, num_imputations)
        if num_masks < 2:
            raise ValueError(
                f"VIMCO needs num_masks >= 2 (a leave-one-out baseline per mask); got "
                f"num_masks={num_masks}. Use ReinforceBound for a single mask."
            )

    def _surrogate(self, terms: BoundTerms) -> Tensor:
        log_w = terms.log_weights  # (K, L, N)
        per_mask = log_w.logsumexp(0) - math.log(log_w.shape[0])  # (L, N)
        signals = vimco_learning_signals(per_mask)  # (L, N), detached
        if terms.proposal_log_prob is None:  # masks from the prior p_γ(z|x)
            score = terms.mask_log_prob  # (L, N)
            # (score - score.detach()) is zero in value: the surrogate's value is the bound.
            return terms.total + (signals * (score - score.detach())).sum()
        # Masks from a proposal q_φ(z|x, y): log q is the score, and -log q also sits in each
        # weight, whose derivative is -w̄_l ∇ log q(z^l) (w̄: self-normalised weights).
        log_q = terms.proposal_log_prob  # (L, N)
        normalised = (per_mask - per_mask.logsumexp(0, keepdim=True)).exp().detach()
        return terms.total + ((signals - normalised) * (log_q - log_q.detach())).sum()
