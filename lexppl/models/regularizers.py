r"""Explicit regularisers :math:`R(z)` of the LEX objective (paper eq. 6).

Each takes the mask distribution :math:`p_\gamma(\cdot|x)` (batch ``(N,)``, event ``(D,)``) and
returns the *expected* penalty :math:`\lambda\, \mathbb E_{z \sim p_\gamma}[R(z)]` per datum,
shape ``(N,)``, computed exactly from the distribution's parameters (no Monte Carlo noise).

- :class:`L1Penalty`: sparsity, :math:`\|z\|_1` (INVASE, REAL-X, rationales).
- :class:`ContinuityPenalty`: :math:`\sum_t |z_t - z_{t-1}|` along the mask's last dimension
  (rationale selection, Lei et al. 2016).
- :class:`RationalePenalty`: their sum with Lei et al.'s parametrisation.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Independent

from lexppl.distributions import IndependentBernoulli

__all__ = ["REDUCTIONS", "ContinuityPenalty", "L1Penalty", "RationalePenalty"]

#: How a penalty combines the entries of one mask: mean over them (INVASE / REAL-X code
#: scale) or sum (the papers' equations, Lei et al.'s code).
REDUCTIONS = ("mean", "sum")


def _check_strength(name: str, strength: float) -> float:
    try:
        value = float(strength)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(strength, bool) or not 0 <= value < float("inf"):
        raise ValueError(f"{name} strength must be a finite number >= 0; got {strength!r}.")
    return value


def _check_reduction(name: str, reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name} reduction must be one of {list(REDUCTIONS)}; got {reduction!r}.")
    return reduction


class L1Penalty(nn.Module):
    r"""
    :math:`\lambda\, \mathbb E_{z \sim p_\gamma(\cdot|x)}[\|z\|_0] / D` (``reduction="mean"``,
    default) or :math:`\lambda\, \mathbb E[\|z\|_0]` (``"sum"``), computed exactly from the mask
    distribution's mean :math:`\mathbb E[Z|x]` (no Monte Carlo noise).

    The default is the per-feature scale of INVASE's and REAL-X's released code (λ·mean(z)), on
    which their λ grids are set, not the paper equations' :math:`\lambda \|z\|_0`; Lei et al.'s
    rationales use the sum.

    :param float strength: :math:`\lambda \ge 0`.
    :param str reduction: ``"mean"`` or ``"sum"`` over the ``D`` mask entries.
    :returns: the penalty per datum, shape ``batch_shape`` of the mask distribution.
    """

    def __init__(self, strength: float, reduction: str = "mean") -> None:
        super().__init__()
        self.strength = _check_strength("L1Penalty", strength)
        self.reduction = _check_reduction("L1Penalty", reduction)

    def forward(self, mask_distribution: Distribution) -> Tensor:
        mean = mask_distribution.mean
        total = mean.mean(-1) if self.reduction == "mean" else mean.sum(-1)
        return self.strength * total

    def extra_repr(self) -> str:
        return f"strength={self.strength}, reduction={self.reduction!r}"


def _bernoulli_probs(mask_distribution: Distribution, name: str) -> Tensor:
    if isinstance(mask_distribution, IndependentBernoulli):
        return mask_distribution.probs
    if (
        isinstance(mask_distribution, Independent)
        and isinstance(mask_distribution.base_dist, Bernoulli)
        and mask_distribution.reinterpreted_batch_ndims == 1
    ):
        return mask_distribution.base_dist.probs
    raise ValueError(
        f"{name} computes E|z_t - z_(t-1)| exactly for masks with independent entries "
        f"(IndependentBernoulli, or Independent(Bernoulli, 1)); got "
        f"{type(mask_distribution).__name__}, whose entries are dependent."
    )


class ContinuityPenalty(nn.Module):
    r"""
    The continuity regulariser of rationale selection (Lei, Barzilay, Jaakkola 2016, eq. 3; LEX
    paper App. A.4, :math:`R_2`): the expected number of switches between selected and
    unselected positions along the mask's last dimension (the sequence order),

    .. math::

        \lambda\, \mathbb E_{z \sim p_\gamma(\cdot|x)}\Big[\sum_{t=2}^{T} |z_t - z_{t-1}|\Big]
        = \lambda \sum_{t=2}^{T} \big(p_t + p_{t-1} - 2\, p_t\, p_{t-1}\big),

    exact for independent Bernoulli masks with :math:`p_t = P(z_t = 1|x)`: for binary
    :math:`z`, :math:`|z_t - z_{t-1}| = z_t + z_{t-1} - 2 z_t z_{t-1}` and independence gives
    :math:`\mathbb E[z_t z_{t-1}] = p_t p_{t-1}`. With ``reduction="mean"`` the sum over the
    :math:`T - 1` adjacent pairs is divided by :math:`T - 1` (0 for :math:`T = 1`).

    Shapes: masks with event ``(T,)`` over the positions of a sequence (batch ``(N,)``, e.g.
    ``(N, T)`` token masks); the penalty has shape ``(N,)``. Other mask families (e.g.
    :class:`~lexppl.distributions.KSubset`, whose entries are dependent) raise a
    ``ValueError``.

    :param float strength: :math:`\lambda \ge 0`.
    :param str reduction: ``"sum"`` (default, Lei et al.) or ``"mean"`` over adjacent pairs.

    **References**

    [1] T. Lei, R. Barzilay, T. Jaakkola, *Rationalizing Neural Predictions*, EMNLP 2016.
    """

    def __init__(self, strength: float, reduction: str = "sum") -> None:
        super().__init__()
        self.strength = _check_strength("ContinuityPenalty", strength)
        self.reduction = _check_reduction("ContinuityPenalty", reduction)

    def expected_switches(self, mask_distribution: Distribution) -> Tensor:
        r""":math:`\mathbb E|z_t - z_{t-1}|` for :math:`t = 2..T`, shape ``(N, T - 1)``."""
        p = _bernoulli_probs(mask_distribution, type(self).__name__)
        current, previous = p[..., 1:], p[..., :-1]
        return current + previous - 2 * current * previous

    def forward(self, mask_distribution: Distribution) -> Tensor:
        switches = self.expected_switches(mask_distribution)
        total = switches.sum(-1)
        if self.reduction == "mean" and switches.shape[-1] > 0:
            total = total / switches.shape[-1]
        return self.strength * total

    def extra_repr(self) -> str:
        return f"strength={self.strength}, reduction={self.reduction!r}"


class RationalePenalty(nn.Module):
    r"""
    The regulariser of rationale selection (Lei et al. 2016, eq. 3; LEX paper App. A.4):

    .. math::

        \mathbb E_{z \sim p_\gamma(\cdot|x)}\Big[\lambda_1 \|z\|_1
            + \lambda_2 \sum_{t=2}^{T} |z_t - z_{t-1}|\Big],
        \qquad \lambda_2 = \lambda_1 \cdot c,

    with the parametrisation of Lei et al.'s code: ``sparsity`` :math:`\lambda_1` (default
    3e-4) and ``coherence`` :math:`c` (default 2), both sums over the ``T`` positions, per datum.
    It is :class:`L1Penalty` ``(λ1, "sum")`` plus :class:`ContinuityPenalty` ``(λ2, "sum")``;
    exact for independent Bernoulli masks with event ``(T,)``; returns ``(N,)``.

    :param float sparsity: :math:`\lambda_1 \ge 0`.
    :param float coherence: :math:`c \ge 0`.
    """

    def __init__(self, sparsity: float = 3e-4, coherence: float = 2.0) -> None:
        super().__init__()
        self.sparsity = _check_strength("RationalePenalty sparsity", sparsity)
        self.coherence = _check_strength("RationalePenalty coherence", coherence)
        self.l1 = L1Penalty(self.sparsity, reduction="sum")
        self.continuity = ContinuityPenalty(self.sparsity * self.coherence, reduction="sum")

    def forward(self, mask_distribution: Distribution) -> Tensor:
        return self.l1(mask_distribution) + self.continuity(mask_distribution)

    def extra_repr(self) -> str:
        return f"sparsity={self.sparsity}, coherence={self.coherence}"
