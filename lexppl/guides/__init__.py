"""Proposals for the LEX bound. The default is the prior proposal, :meth:`LEX.guide`: masks and
imputations are drawn from the model itself. :class:`MaskProposal` is an amortised mask
posterior :math:`q_\\phi(z|x, y)`, trained by reweighted wake-sleep."""

from lexppl.guides.mask_proposal import MaskProposal

__all__ = ["MaskProposal"]
