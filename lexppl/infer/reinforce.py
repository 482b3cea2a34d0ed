"""Score-function (REINFORCE) gradients for discrete masks, with moving-average, regression or
full-input classifier baselines."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyro
import torch
from pyro.nn import PyroModule
from torch import Tensor, nn
from torch.distributions import Distribution

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

    where :math:`b` is a baseline that does not depend on the masks: by default an exponential
    moving average of :math:`f` over past batches (decay ``baseline_decay``); on the first
    batch, the mean of :math:`f` over the batch's *other* data. The surrogate's value equals
    the bound. Works with any mask family that has an exact ``log_prob`` (IndependentBernoulli,
    KSubset) and any imputation.

    **Learned baseline** (INVASE [2], Mnih & Gregor [3]): with ``baseline_net`` a network
    :math:`b_\psi: x \mapsto b_\psi(x)` (output ``(N,)`` or ``(N, 1)``) replaces the moving
    average, and is trained by regressing the learning signal,

    .. math::

        \min_\psi \sum_n \big(f_n - b_\psi(x_n)\big)^2,

    through the same surrogate: :math:`-\sum_n (\mathrm{sg}(f_n) - b_\psi(x_n))^2` enters it
    with its value subtracted again, so the surrogate's *value* stays the bound while its
    gradient for :math:`\psi` is the regression's. :math:`b_\psi(x)` enters the score term
    detached and does not depend on the masks, so the estimator stays unbiased. The inputs
    :math:`x` are not a sample site: the bound takes them from the model's first positional
    argument (``model(x, y, ...)``, as :meth:`LEX.model <lexppl.models.LEX.model>`) or its
    ``x`` keyword, recorded in :meth:`_get_trace`. The net's parameters must be optimised:
    under :class:`pyro.infer.SVI` they are registered with ``pyro.module(baseline_name, ...)``
    and picked up automatically; with a plain torch optimiser add
    :meth:`baseline_parameters` to it. Use a separate network from the selector (a shared
    trunk would receive the regression's gradient too). Its weights travel in
    :meth:`state_dict`.

    **Full-input classifier baseline** (INVASE's own control variate [2]): with
    ``baseline_likelihood`` also given, ``baseline_net`` is a predictor on the *complete* input
    (same output as the model's predictor) and the baseline is its log-likelihood of the
    observed label, :math:`b_\psi(x, y) = \log q_\psi(y \mid x)`, trained by maximum
    likelihood on full inputs. Because it sees :math:`y` it cancels the label noise shared by
    :math:`f` and :math:`b`, which a regression on :math:`x` alone cannot; the residual
    :math:`f - b_\psi` is further centred by its moving average (decay ``baseline_decay``; on
    the first batch, the other data's mean; not in INVASE's code, it only lowers the
    variance). The labels are the model's second positional argument or its ``y`` keyword.

    :param int num_masks: :math:`L`.
    :param int num_imputations: :math:`K`.
    :param float baseline_decay: decay of the moving average in :math:`[0, 1)`; 0 uses the
        last batch's mean.
    :param ~torch.nn.Module baseline_net: optional learned baseline :math:`b_\psi(x)`; ``None``
        (default) keeps the moving average.
    :param callable baseline_likelihood: optional ``baseline_net output -> distribution of y``
        (e.g. :class:`~lexppl.models.CategoricalLikelihood`): makes ``baseline_net`` the
        full-input classifier baseline above.
    :param str baseline_name: the name of ``baseline_net`` in Pyro's parameter store.

    **References**

    [1] R. J. Williams, *Simple statistical gradient-following algorithms for connectionist
        reinforcement learning*, 1992.
    [2] Yoon, Jordon, van der Schaar, *INVASE*, ICLR 2019.
    [3] A. Mnih, K. Gregor, *Neural Variational Inference and Learning in Belief Networks*,
        ICML 2014.
    """

    def __init__(
        self,
        num_masks: int = 1,
        num_imputations: int = 1,
        baseline_decay: float = 0.9,
        baseline_net: nn.Module | None = None,
        baseline_name: str = "reinforce_baseline",
        baseline_likelihood: Callable[[Tensor], Distribution] | None = None,
    ) -> None:
        super().__init__(num_masks, num_imputations)
        if not 0.0 <= baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must be in [0, 1); got {baseline_decay}.")
        if baseline_net is not None and not (
            isinstance(baseline_net, nn.Module) and callable(baseline_net)
        ):
            raise TypeError(f"baseline_net must be a torch nn.Module; got {baseline_net!r}.")
        self.baseline_decay = baseline_decay
        self.baseline: Tensor | float | None = None
        self.baseline_net = baseline_net
        self.baseline_name = baseline_name
        if baseline_likelihood is not None and baseline_net is None:
            raise ValueError("baseline_likelihood needs a baseline_net (the full-input predictor).")
        if baseline_likelihood is not None and not callable(baseline_likelihood):
            raise TypeError(f"baseline_likelihood must be callable; got {baseline_likelihood!r}.")
        self.baseline_likelihood = baseline_likelihood
        self._inputs: Tensor | None = None
        self._labels: Tensor | None = None

    def baseline_parameters(self) -> Iterator[nn.Parameter]:
        """The learned baseline's parameters (none without ``baseline_net``), for an optimiser."""
        return iter(()) if self.baseline_net is None else self.baseline_net.parameters()

    def parameters(self) -> Iterator[nn.Parameter]:
        """The estimator's learned parameters (the baseline network's), trained by
        :func:`lexppl.fit` alongside the model."""
        return self.baseline_parameters()

    def _get_trace(self, model, guide, args, kwargs):
        if self.baseline_net is not None:
            # The data inputs are not a sample site: record them for the baseline network.
            self._inputs = args[0] if args else kwargs.get("x")
            if self._inputs is None:
                raise ValueError(
                    "ReinforceBound with a baseline_net needs the inputs x as the model's first "
                    "positional argument or its x keyword."
                )
            if self.baseline_likelihood is not None:
                self._labels = args[1] if len(args) > 1 else kwargs.get("y")
                if self._labels is None:
                    raise ValueError(
                        "ReinforceBound with a baseline_likelihood needs the labels y as the "
                        "model's second positional argument or its y keyword."
                    )
            if not isinstance(self.baseline_net, PyroModule):
                pyro.module(self.baseline_name, self.baseline_net)  # for pyro.infer.SVI
        return super()._get_trace(model, guide, args, kwargs)

    def _moving_average(self, signals: Tensor) -> Tensor:
        """The baseline of every datum, from its learning signals ``signals`` ``(N,)``: the
        moving average of past batches' mean signal; on the first batch, the mean of the
        *other* data's signals (0 for a batch of one), which does not depend on the datum's own
        masks either. The average is updated with this batch's mean when gradients are wanted
        (training), never in evaluation. It stays a tensor on the signals' device: no host
        synchronisation in the training loop."""
        current = signals.mean()
        if self.baseline is None:  # leave one out: no datum's baseline sees its own masks
            n = signals.shape[0]
            baseline = (signals.sum() - signals) / (n - 1) if n > 1 else torch.zeros_like(signals)
        else:
            baseline = torch.as_tensor(self.baseline, dtype=current.dtype, device=current.device)
        if torch.is_grad_enabled():
            self.baseline = (
                current
                if self.baseline is None
                else self.baseline_decay * baseline + (1 - self.baseline_decay) * current
            )
        return baseline

    def _classifier_surrogate(self, terms: BoundTerms) -> Tensor:
        f, x, y = terms.per_datum, self._inputs, self._labels
        self._inputs = self._labels = None
        if x is None or y is None:
            raise ValueError("The classifier baseline needs x and y; call through loss methods.")
        b = self.baseline_likelihood(self.baseline_net(x.detach())).log_prob(y)
        if b.shape != f.shape:
            raise ValueError(
                f"baseline_likelihood(baseline_net(x)).log_prob(y) must have one value per "
                f"datum, shape {tuple(f.shape)}; got {tuple(b.shape)}."
            )
        residual = (f - b).detach()
        centre = self._moving_average(residual)
        score = terms.mask_log_prob.sum(0)  # (N,)
        advantage = (residual - centre.to(f)).detach()
        # Both added terms are zero in value: the surrogate's value is the bound. The second
        # trains the baseline classifier by maximum likelihood on the full inputs.
        return (
            terms.total
            + (advantage * (score - score.detach())).sum()
            + (b.sum() - b.sum().detach())
        )

    def _learned_surrogate(self, terms: BoundTerms) -> Tensor:
        f, x = terms.per_datum, self._inputs
        self._inputs = None
        if x is None:
            raise ValueError("The learned baseline needs the inputs; call through loss methods.")
        b = self.baseline_net(x.detach())  # the regression only trains the baseline net
        if b.dim() == 2 and b.shape[1] == 1:
            b = b.squeeze(1)
        if b.shape != f.shape:
            raise ValueError(
                f"baseline_net must map x to one value per datum, shape {tuple(f.shape)} or "
                f"({f.shape[0]}, 1); got {tuple(b.shape)}."
            )
        score = terms.mask_log_prob.sum(0)  # (N,)
        advantage = (f.detach() - b.detach()).detach()
        regression = ((f.detach() - b) ** 2).sum()
        # Both added terms are zero in value: the surrogate's value is the bound.
        return (
            terms.total
            + (advantage * (score - score.detach())).sum()
            - (regression - regression.detach())
        )

    def _surrogate(self, terms: BoundTerms) -> Tensor:
        if self.baseline_likelihood is not None:
            return self._classifier_surrogate(terms)
        if self.baseline_net is not None:
            return self._learned_surrogate(terms)
        f = terms.per_datum
        baseline = self._moving_average(f.detach())
        score = terms.mask_log_prob.sum(0)  # sum over the L masks, shape (N,)
        advantage = (f.detach() - baseline.to(f)).detach()
        # (score - score.detach()) is zero in value: the surrogate's value is the bound.
        return terms.total + (advantage * (score - score.detach())).sum()

    def state_dict(self) -> dict:
        baseline = None if self.baseline is None else float(self.baseline)
        state: dict = {"baseline": baseline}
        if self.baseline_net is not None:
            state["baseline_net"] = self.baseline_net.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.baseline = state.get("baseline")
        if self.baseline_net is not None and "baseline_net" in state:
            self.baseline_net.load_state_dict(state["baseline_net"])
