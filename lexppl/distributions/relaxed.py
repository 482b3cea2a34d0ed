"""Noise samplers and continuous relaxations shared by the mask distributions.

These helpers are the building blocks of the pathwise (reparameterised) gradient estimators
used by :class:`~lexppl.distributions.IndependentBernoulli` and
:class:`~lexppl.distributions.KSubset`:

- :func:`logistic_noise` / :func:`gumbel_noise`: standard Logistic(0, 1) and Gumbel(0, 1)
  draws obtained by inverting clamped uniforms (never infinite).
- :func:`straight_through`: the forward value of ``hard`` with the gradient of ``soft``.
- :func:`hard_topk`: the k-hot mask of the ``k`` largest scores.
- :func:`relaxed_topk`: the relaxed top-k of Xie & Ermon (2019).
- :func:`relaxed_max_of_k`: the relaxed k-subset of L2X (Chen et al., 2018).
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor
from torch.distributions.utils import clamp_probs

__all__ = [
    "gumbel_noise",
    "hard_topk",
    "logistic_noise",
    "relaxed_max_of_k",
    "relaxed_topk",
    "straight_through",
]


def _check_temperature(temperature: float) -> float:
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"temperature must be a positive float; got {temperature!r}.") from None
    if not value > 0.0 or value == float("inf"):
        raise ValueError(f"temperature must be a positive finite float; got {temperature!r}.")
    return value


def _uniform(shape: torch.Size, like: Tensor) -> Tensor:
    """Uniform draws in the open interval (0, 1), on the dtype/device of ``like``."""
    return clamp_probs(torch.rand(shape, dtype=like.dtype, device=like.device))


def logistic_noise(shape: torch.Size, like: Tensor) -> Tensor:
    """Standard Logistic(0, 1) noise :math:`\\log u - \\log(1 - u)`, :math:`u \\sim U(0, 1)`.

    :param shape: shape of the returned tensor.
    :param like: tensor whose dtype and device are used.
    """
    u = _uniform(shape, like)
    return u.log() - (-u).log1p()


def gumbel_noise(shape: torch.Size, like: Tensor) -> Tensor:
    """Standard Gumbel(0, 1) noise :math:`-\\log(-\\log u)`, :math:`u \\sim U(0, 1)`.

    :param shape: shape of the returned tensor.
    :param like: tensor whose dtype and device are used.
    """
    u = _uniform(shape, like)
    return -(-u.log()).log()


def straight_through(hard: Tensor, soft: Tensor) -> Tensor:
    """Return ``hard`` in the forward pass and route the gradient through ``soft``.

    Computed as ``hard + (soft - soft.detach())``: the bracket is exactly zero in floating point,
    so the forward value equals ``hard`` bit for bit (binary masks stay binary), while the
    backward pass sees the Jacobian of ``soft``.
    """
    return hard.detach() + (soft - soft.detach())


def hard_topk(scores: Tensor, k: int) -> Tensor:
    """The k-hot mask (same dtype as ``scores``) marking the ``k`` largest scores on dim -1."""
    index = torch.topk(scores, k, dim=-1).indices
    return torch.zeros_like(scores).scatter_(-1, index, 1.0)


def _log1mexp(log_p: Tensor) -> Tensor:
    """Stable :math:`\\log(1 - e^{x})` for :math:`x < 0`."""
    return torch.where(
        log_p > -0.6931471805599453,
        torch.log(-torch.expm1(log_p)),
        torch.log1p(-torch.exp(log_p)),
    )


def _log1m_softmax(log_p: Tensor) -> Tensor:
    """:math:`\\log(1 - p_i)` for every entry of a probability vector given as ``log_p`` (dim -1).

    Entries with :math:`p_i \\le 1/2` use :func:`_log1mexp`. At most one entry exceeds 1/2; for it
    :math:`\\log(1 - p_i) = \\log \\sum_{j \\ne i} p_j`, which stays exact when :math:`p_i` rounds
    to 1 (``log1mexp`` would give -inf there). Other entries at -inf are floored at the dtype's
    lowest number first, so one finite entry left gives a finite value and finite gradients.
    """
    half = -0.6931471805599453
    top = log_p.argmax(-1, keepdim=True)
    rest = (
        log_p.clamp(min=torch.finfo(log_p.dtype).min)
        .scatter(-1, top, float("-inf"))
        .logsumexp(-1, keepdim=True)
    )
    below_half = _log1mexp(log_p.clamp(max=half))
    top_value = torch.where(log_p.gather(-1, top) > half, rest, below_half.gather(-1, top))
    return below_half.scatter(-1, top, top_value)


def relaxed_topk(scores: Tensor, k: int, temperature: float) -> Tensor:
    r"""Relaxed top-k of Xie & Ermon (2019) along the last dimension.

    Starting from :math:`\alpha^{(1)} = s` (typically Gumbel-perturbed logits), for
    :math:`i = 1, \dots, k`:

    .. math::

        p^{(i)} = \mathrm{softmax}(\alpha^{(i)} / \tau), \qquad
        \alpha^{(i+1)} = \alpha^{(i)} + \log(1 - p^{(i)}),

    and the relaxed k-hot vector is :math:`\sum_i p^{(i)}`; its entries are non-negative and
    sum to ``k``. As :math:`\tau \to 0` it converges to the hard top-k of ``s``. At moderate
    temperatures an entry can exceed 1 (e.g. two features, :math:`p^{(1)} = (0.6, 0.4)`,
    :math:`\tau = 1` gives 1.1 and 0.9); like the original, no clipping is applied.
    ``log(1 - p)`` is computed in log space, for the leading entry as the log of the others'
    sum, so a softmax that saturates (:math:`p^{(i)}` rounding to 1) still removes its entry and
    passes gradients to the others.

    :param scores: tensor of shape ``(..., D)``.
    :param k: number of successive softmaxes, ``1 <= k <= D``.
    :param temperature: softmax temperature :math:`\tau > 0`.
    """
    temperature = _check_temperature(temperature)
    size = scores.shape[-1]
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= size:
        raise ValueError(f"k must be an integer in [1, {size}] (the scores' last dim), got {k!r}")
    alpha = scores
    total = torch.zeros_like(scores)
    for _ in range(k):
        log_p = torch.log_softmax(alpha / temperature, dim=-1)
        total = total + log_p.exp()
        alpha = alpha + _log1m_softmax(log_p)
    return total


def relaxed_max_of_k(logits: Tensor, k: int, temperature: float) -> Tensor:
    r"""L2X's relaxed k-subset (Chen et al., 2018) along the last dimension.

    Draws ``k`` independent Gumbel-softmax (concrete) samples over the ``D`` features,
    :math:`c^{(i)} = \mathrm{softmax}((\ell + g^{(i)}) / \tau)`, and returns their elementwise
    maximum :math:`\max_i c^{(i)}`. Fresh Gumbel noise is drawn inside this function.

    :param logits: tensor of shape ``(..., D)`` (already expanded to the output shape).
    :param k: number of concrete draws.
    :param temperature: softmax temperature :math:`\tau > 0`.
    """
    temperature = _check_temperature(temperature)
    noise = gumbel_noise(torch.Size((k,)) + logits.shape, logits)
    concrete = torch.softmax((logits + noise) / temperature, dim=-1)
    return concrete.max(dim=0).values
