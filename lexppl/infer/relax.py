"""RELAX: REBAR with a learned control variate (Grathwohl et al. 2018)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from lexppl.infer.bound import BoundTerms
from lexppl.infer.rebar import RebarBound
from lexppl.nets import MLP

__all__ = ["MaskControl", "RelaxBound"]


class MaskControl(nn.Module):
    r"""
    The default learned part of RELAX's control variate,

    .. math::

        r_\phi(s, \ell) = \frac{1}{L}\sum_{l=1}^{L} h_\phi\big([s^l, \sigma(\ell)]\big),

    a one-hidden-layer tanh network :math:`h_\phi: \mathbb R^{2D} \to \mathbb R` applied to
    each relaxed mask :math:`s^l \in [0,1]^D` beside the selection probabilities
    :math:`\sigma(\ell)` (a detached function of :math:`x`, so :math:`r_\phi` can adapt to the
    datum without biasing the estimator), averaged over the :math:`L` masks. The output layer
    starts at zero, so RELAX starts as REBAR.

    :param int num_features: :math:`D`.
    :param int hidden: hidden width.
    """

    def __init__(self, num_features: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = MLP(2 * num_features, 1, (hidden,), activation="tanh")
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.num_features = num_features

    def forward(self, masks: Tensor, logits: Tensor) -> Tensor:
        """:param masks: relaxed masks ``(L, N, D)``; :param logits: ``(L, N, D)``;
        :returns: ``(N,)``."""
        inputs = torch.cat([masks, torch.sigmoid(logits)], dim=-1)
        return self.net(inputs).squeeze(-1).mean(0)


class RelaxBound(RebarBound):
    r"""
    The LEX bound :math:`\mathcal L_{L,K}` with the RELAX gradient estimator (Grathwohl et al.
    2018, §3.3 and App. "discrete" version) for
    :class:`~lexppl.distributions.IndependentBernoulli` and
    :class:`~lexppl.distributions.KSubset` masks. It is :class:`RebarBound` with a
    learned control variate

    .. math::

        c_\phi(s) = \eta\, f(s) + r_\phi(s, \ell),

    evaluated at the relaxed masks :math:`s \in \{\hat z, \tilde z\}`, where :math:`f` is the
    per-datum bound at soft masks (the REBAR control) and :math:`r_\phi` a network (``control``,
    default :class:`MaskControl`). The selector-logit estimate is

    .. math::

        \hat g_\ell = \big[f(z) - c_\phi(\tilde z)\big]\, \nabla_\ell \log p_\ell(z)
            + \nabla_\ell c_\phi(\hat z) - \nabla_\ell c_\phi(\tilde z),

    unbiased for every :math:`\phi, \eta, \tau` [1, eq. 7]. :math:`\phi`, :math:`\eta` and
    :math:`\log\tau` minimise the single-sample variance :math:`\|\hat g_\ell\|^2` (summed over
    the batch) with the gradient :math:`\partial \|\hat g_\ell\|^2/\partial(\phi,\eta,\log\tau)`
    deposited by ``loss.backward()`` [1, Alg. 2]; **add** ``list(bound.parameters())`` **to
    the optimiser** (or use :class:`pyro.infer.SVI`: they are registered with
    ``pyro.module(name, bound.tuning)``).

    Choice of control: keeping :math:`\eta f` (rather than :math:`r_\phi` alone) makes RELAX
    start from REBAR, whose control already tracks :math:`f` across data; :math:`r_\phi` learns
    the residual. Pass ``eta=0.0, learn_eta=False`` for a purely learned control.

    :param int num_masks: :math:`L`.
    :param int num_imputations: :math:`K`.
    :param control: :math:`r_\phi`, a module ``(masks (L, N, D), logits (L, N, D)) -> (N,)``;
        ``None`` builds :class:`MaskControl` (with ``num_features`` if given, else at the first
        call, when :math:`D` is known).
    :param float temperature: initial :math:`\tau`.
    :param float eta: initial :math:`\eta`.
    :param bool learn_temperature: learn :math:`\log\tau`.
    :param bool learn_eta: learn :math:`\eta`.
    :param int num_features: :math:`D`, to build the default control at construction (so that
        :meth:`parameters` is available before the first call).
    :param int hidden: hidden width of the default control.
    :param str name: name for ``pyro.module``.

    **References**

    [1] W. Grathwohl, D. Choi, Y. Wu, G. Roeder, D. Duvenaud, *Backpropagation through the
        Void: Optimizing control variates for black-box gradient estimation*, ICLR 2018.
    [2] G. Tucker, A. Mnih, C. J. Maddison, D. Lawson, J. Sohl-Dickstein, *REBAR*,
        NeurIPS 2017.
    """

    def __init__(
        self,
        num_masks: int = 1,
        num_imputations: int = 1,
        control: nn.Module | None = None,
        temperature: float = 0.5,
        eta: float = 1.0,
        learn_temperature: bool = True,
        learn_eta: bool = True,
        num_features: int | None = None,
        hidden: int = 32,
        name: str = "relax",
    ) -> None:
        super().__init__(
            num_masks, num_imputations, temperature, eta, learn_temperature, learn_eta, name
        )
        if control is not None and not (isinstance(control, nn.Module) and callable(control)):
            raise TypeError(f"RELAX control must be an nn.Module; got {control!r}.")
        if num_features is not None and (
            not isinstance(num_features, int) or isinstance(num_features, bool) or num_features < 1
        ):
            raise ValueError(f"num_features must be an int >= 1; got {num_features!r}.")
        if control is None and num_features is not None:
            control = MaskControl(num_features, hidden)
        self.hidden = hidden
        self.tuning.register_module("control", control)

    @property
    def control(self) -> nn.Module | None:
        """:math:`r_\\phi` (``None`` until built when neither ``control`` nor
        ``num_features`` was given)."""
        return self.tuning.control

    def parameters(self) -> Iterator[nn.Parameter]:
        if self.tuning.control is None:
            raise RuntimeError(
                "RelaxBound's default control network is built when the number of features is "
                "known: pass num_features=D (or a control module), or call the bound once "
                "before collecting bound.parameters()."
            )
        return super().parameters()

    def state_dict(self) -> dict:
        state = super().state_dict()
        control = self.tuning.control
        if isinstance(control, MaskControl):
            state["num_features"] = control.num_features
        return state

    def load_state_dict(self, state: dict) -> None:
        if self.tuning.control is None and "num_features" in state:
            self.tuning.control = MaskControl(int(state["num_features"]), self.hidden)
        super().load_state_dict(state)

    def _terms(self, model_trace, guide_trace) -> BoundTerms:
        terms = super()._terms(model_trace, guide_trace)
        if self.tuning.control is None:  # the default control, now that D is known
            logits = self._handler.draws[0].logits
            self.tuning.control = MaskControl(logits.shape[-1], self.hidden).to(logits)
        return terms

    def _residual_parameters(self) -> list[nn.Parameter]:
        return list(self.tuning.control.parameters())

    def _residual(self, masks: Tensor, logits: Tensor) -> Tensor:
        value = self.tuning.control(masks, logits)
        expected = masks.shape[-2:-1]
        if value.shape != expected:
            raise ValueError(
                f"The RELAX control must return one value per datum, shape {tuple(expected)}, "
                f"for masks of shape {tuple(masks.shape)}; got {tuple(value.shape)}."
            )
        return value
