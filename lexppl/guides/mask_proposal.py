"""An amortised mask posterior q_φ(z | x, y): a learned proposal for the LEX bound."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro
import torch
from torch import Tensor, nn

from lexppl.models.lex import LEX, MASK, _plate
from lexppl.nets import MLP

__all__ = ["MaskProposal"]


class MaskProposal(nn.Module):
    r"""
    A guide that proposes LEX's masks from the input *and* the target,
    :math:`z^l \sim q_\phi(z \mid x, y)`, in place of the prior :math:`p_\gamma(z|x)`.

    With it the bound's importance weights become

    .. math:: w_{l,k} = \frac{p_\theta(y \mid \tilde x^{l,k})\, p_\gamma(z^l \mid x)}
        {q_\phi(z^l \mid x, y)},

    which is still a lower bound of :math:`\log p(y|x)` for any :math:`q_\phi`, and a tighter
    one as :math:`q_\phi` approaches the posterior over explanations :math:`p(z \mid x, y)`
    (LEX §2.4, App. E.1; Burda et al. 2016). Train :math:`\phi` with
    :class:`~lexppl.infer.ReweightedWakeSleepBound` (fits :math:`q_\phi` to the posterior,
    inclusive KL) or :class:`~lexppl.infer.VimcoBound` (ascends the bound itself). The
    proposal uses the model's own mask family (``lex.mask_family``), so k-subset models get
    k-subset proposals.

    :param LEX lex: the model whose masks are proposed (its site and plate names are used).
    :param ~torch.nn.Module network: maps ``[x.flatten(1), encode(y)]`` of shape
        ``(N, D_x + C)`` to mask logits ``(N, D)``.
    :param int num_classes: ``C`` for integer class targets (one-hot encoded); ``None`` for
        targets that are already vectors (soft targets ``(N, C)``) or scalars (regression).

    **References**

    [1] Bornschein, Bengio, *Reweighted Wake-Sleep*, ICLR 2015.
    [2] Le, Kosiorek, Siddharth, Teh, Wood, *Revisiting Reweighted Wake-Sleep for Models with
        Stochastic Control Flow*, UAI 2019.
    """

    def __init__(self, lex: LEX, network: nn.Module, num_classes: int | None = None) -> None:
        super().__init__()
        self.lex = [lex]  # a reference, not a submodule: the proposal owns only its network
        self.network = network
        self.num_classes = num_classes

    @classmethod
    def from_prior(
        cls,
        lex: LEX,
        num_features: int,
        num_classes: int | None = None,
        target_size: int | None = None,
        hidden: Sequence[int] = (64, 64),
    ) -> MaskProposal:
        """A proposal that starts *at* the prior and tracks it: logits = the model's selector
        logits on ``x`` (read live, without gradient) plus a correction from ``(x, y)`` whose
        last layer starts at zero. Only the correction is learned, so training moves
        :math:`q` from :math:`p_\\gamma(z|x)` towards :math:`p(z|x, y)`, and a selector
        that keeps training is followed. (A trainable *copy* of the selector drifts: on S3,
        Adam's steps on noisy wake-phase gradients made the copy, and the bound, worse than
        the prior within 5 epochs.)

        :param int num_features: the size of ``x.flatten(1)``.
        :param int target_size: the size of the encoded target when ``num_classes`` is None.
        """
        size = num_classes if num_classes is not None else (target_size or 1)
        return cls(lex, _PriorPlusCorrection(lex, num_features, size, hidden), num_classes)

    def encode_target(self, y: Tensor, like: Tensor) -> Tensor:
        """The target as features ``(N, C)``."""
        if self.num_classes is not None:
            if y.is_floating_point() or y.dim() != 1:
                raise ValueError(
                    f"MaskProposal with num_classes={self.num_classes} needs integer class "
                    f"labels of shape (N,); got {y.dtype} of shape {tuple(y.shape)}."
                )
            return nn.functional.one_hot(y.long(), self.num_classes).to(like.dtype)
        return (y[:, None] if y.dim() == 1 else y.flatten(1)).to(like.dtype)

    def logits(self, x: Tensor, y: Tensor) -> Tensor:
        """Proposal logits ``(N, D)``."""
        return self.network(torch.cat([x.flatten(1), self.encode_target(y, x)], dim=-1))

    def forward(
        self, x: Tensor, y: Tensor | None = None, num_masks: int = 1, num_imputations: int = 1
    ) -> None:
        if y is None:
            raise ValueError("MaskProposal proposes masks from (x, y): pass the targets y.")
        lex = self.lex[0]
        proposal = lex.mask_family(self.logits(x, y))
        with pyro.plate(lex.site("data"), x.shape[0], dim=-1):
            with _plate(lex.site("masks"), num_masks, dim=-2):
                pyro.sample(lex.site("mask"), proposal, infer={"lex": MASK})


class _PriorPlusCorrection(nn.Module):
    # logits(x, y) = sg(selector(x)) + correction([x, y]), the correction starting at zero.
    def __init__(
        self, lex: LEX, num_features: int, target_size: int, hidden: Sequence[int]
    ) -> None:
        super().__init__()
        self.lex = [lex]  # a reference: the selector stays the model's, not the proposal's
        self.num_features = num_features
        groups = lex.groups
        # One input as the selector takes it: an image (C, H, W) for grouped image models.
        shape = groups.input_shape if groups is not None and groups.input_shape else None
        self.input_shape = shape = tuple(shape or (num_features,))
        if math.prod(shape) != num_features:
            raise ValueError(
                f"num_features={num_features}, but the model's inputs have shape {shape} "
                f"({math.prod(shape)} features)."
            )
        with torch.no_grad():
            device = next(lex.selector.parameters(), torch.zeros(())).device
            out = lex.selector(torch.zeros(1, *shape, device=device)).shape[-1]
        self.correction = MLP(num_features + target_size, out, tuple(hidden))
        nn.init.zeros_(self.correction[-1].weight)
        nn.init.zeros_(self.correction[-1].bias)

    def forward(self, features: Tensor) -> Tensor:
        x = features[:, : self.num_features].reshape(-1, *self.input_shape)
        prior = self.lex[0].selector(x).detach()
        return prior + self.correction(features)
