"""Explicit sparsity regularisers R(z) of the LEX objective (paper eq. 6)."""

from __future__ import annotations

from torch import Tensor, nn
from torch.distributions import Distribution

__all__ = ["L1Penalty"]


class L1Penalty(nn.Module):
    r"""
    :math:`\lambda\, \mathbb E_{z \sim p_\gamma(\cdot|x)}[\|z\|_0] / D`, computed exactly from the
    mask distribution's mean :math:`\mathbb E[Z|x]` (no Monte Carlo noise).

    This is the per-feature scale of INVASE's and REAL-X's released code (λ·mean(z)), on which
    their λ grids are set, not the paper equations' :math:`\lambda \|z\|_0`.

    :param float strength: :math:`\lambda \ge 0`.
    :returns: the penalty per datum, shape ``batch_shape`` of the mask distribution.
    """

    def __init__(self, strength: float) -> None:
        super().__init__()
        if not strength >= 0:
            raise ValueError(f"L1Penalty strength must be >= 0; got {strength}.")
        self.strength = float(strength)

    def forward(self, mask_distribution: Distribution) -> Tensor:
        return self.strength * mask_distribution.mean.mean(-1)

    def extra_repr(self) -> str:
        return f"strength={self.strength}"
