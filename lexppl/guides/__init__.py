"""Proposals for the LEX bound. The default is the prior proposal, :meth:`LEX.guide`: masks and
imputations are drawn from the model itself. Amortised mask posteriors come later."""

__all__: list[str] = []
