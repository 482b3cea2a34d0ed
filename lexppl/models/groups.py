r"""Feature groups: explanations over groups of input features (image patches, pixels).

A LEX mask need not select single features. With a grouping :math:`\pi` the mask
:math:`z \in \{0,1\}^G` selects *groups* and the imputer sees the feature-level mask
:math:`\pi(z) \in \{0,1\}^{C \times H \times W}` in which every feature carries the value of its
group (DESIGN §2, "Feature groups"). The LEX paper does this for CelebA: a :math:`32 \times 32`
grid of :math:`4 \times 4` pixel squares (App. D). Fewer mask variables make the selection
problem smaller and the explanations spatially coherent.

A grouping object provides

- :attr:`~FeatureGroups.num_groups` :math:`G`, the size of the mask's event;
- :meth:`~FeatureGroups.expand`: group mask ``(..., G)`` :math:`\to` feature mask
  ``(..., *input_shape)``, differentiable (straight-through and relaxed masks keep their
  gradient);
- :meth:`~FeatureGroups.reduce`: group-level importance map ``(..., G)`` :math:`\to` a map over
  the input (or over the grid, for plotting);
- :meth:`~FeatureGroups.pool`: the mean over each group, e.g. to turn per-pixel selector
  logits or a pixel-level ground truth into group values;
- :meth:`~FeatureGroups.check_input`: a clear ``ValueError`` for inputs that do not fit.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from torch import Tensor

__all__ = ["FeatureGroups", "Identity", "PatchGrid", "PixelGrid"]


def _shape(value, name: str, length: int | None = None) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in value)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of ints; got {value!r}.") from None
    if any(int(v) != v for v in value):
        raise TypeError(f"{name} must be a sequence of ints; got {value!r}.")
    if length is not None and len(shape) != length:
        raise ValueError(f"{name} must have {length} entries; got {value!r}.")
    if any(v < 1 for v in shape):
        raise ValueError(f"{name} entries must be >= 1; got {value!r}.")
    return shape


class FeatureGroups:
    """Base class of groupings: maps masks over ``num_groups`` groups onto input features.

    Subclasses set :attr:`input_shape` (the shape of one input, without the batch dimension)
    and implement :meth:`expand`, :meth:`reduce` and :meth:`pool`.
    """

    #: Shape of one input (``(C, H, W)`` for images, ``(D,)`` for tabular data).
    input_shape: tuple[int, ...] | None = None

    @property
    def num_groups(self) -> int:
        """The number of groups :math:`G` (the event size of the mask)."""
        raise NotImplementedError

    def check_input(self, x: Tensor) -> None:
        """Raise a ``ValueError`` naming the expected and received shapes unless ``x`` is a
        batch ``(N, *input_shape)``."""
        if self.input_shape is None:
            return
        expected = "(N, " + ", ".join(str(s) for s in self.input_shape) + ")"
        if tuple(x.shape[1:]) != self.input_shape or x.dim() != len(self.input_shape) + 1:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape {expected}; got "
                f"{tuple(x.shape)}{self._mismatch_hint(tuple(x.shape[1:]))}."
            )

    def _mismatch_hint(self, received: tuple[int, ...]) -> str:
        return ""

    def _check_groups(self, z: Tensor, what: str) -> None:
        if z.dim() < 1 or z.shape[-1] != self.num_groups:
            raise ValueError(
                f"{type(self).__name__}.{what} expects a tensor of shape (..., G) with "
                f"G = {self.num_groups} groups; got {tuple(z.shape)}."
            )

    def expand(self, z: Tensor) -> Tensor:
        """Group mask ``(..., G)`` to feature mask ``(..., *input_shape)``."""
        raise NotImplementedError

    def reduce(self, map: Tensor, grid: bool = False) -> Tensor:
        """Group-level map ``(..., G)`` to a map over the input (``grid=True``: over the
        grouping's own grid, for plotting)."""
        raise NotImplementedError

    def pool(self, features: Tensor) -> Tensor:
        """Feature-level values to group values ``(..., G)``: the mean over each group."""
        raise NotImplementedError


class Identity(FeatureGroups):
    """One group per feature: the mask is over the input's features themselves.

    Equivalent to ``groups=None`` in :class:`~lexppl.models.LEX` when ``input_shape`` is
    ``None`` (masks pass through unchanged). With ``input_shape`` given (e.g. ``(C, H, W)``),
    flat masks ``(..., C·H·W)`` are reshaped onto the input, so a selector with flat outputs can
    explain images pixel by pixel and channel by channel.

    :param input_shape: shape of one input, or ``None`` to pass masks through unchanged.
    """

    def __init__(self, input_shape: Sequence[int] | None = None) -> None:
        self.input_shape = None if input_shape is None else _shape(input_shape, "input_shape")

    @property
    def num_groups(self) -> int:
        if self.input_shape is None:
            raise AttributeError("Identity() without input_shape does not know its group count.")
        return math.prod(self.input_shape)

    def expand(self, z: Tensor) -> Tensor:
        if self.input_shape is None:
            return z
        self._check_groups(z, "expand")
        return z.reshape(z.shape[:-1] + self.input_shape)

    def reduce(self, map: Tensor, grid: bool = False) -> Tensor:
        return self.expand(map)

    def pool(self, features: Tensor) -> Tensor:
        if self.input_shape is None:
            return features
        n = len(self.input_shape)
        if tuple(features.shape[features.dim() - n :]) != self.input_shape:
            raise ValueError(
                f"Identity.pool expects a tensor of shape (..., "
                f"{', '.join(map(str, self.input_shape))}); got {tuple(features.shape)}."
            )
        return features.flatten(-n) if n > 1 else features

    def __repr__(self) -> str:
        return f"Identity(input_shape={self.input_shape})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Identity) and other.input_shape == self.input_shape

    def __hash__(self) -> int:
        return hash((Identity, self.input_shape))


class PatchGrid(FeatureGroups):
    r"""
    Square (or rectangular) image patches, shared across channels.

    The image ``(C, H, W)`` is cut into a :math:`(H/p_h) \times (W/p_w)` grid of
    :math:`p_h \times p_w` patches; group :math:`g = i \cdot W/p_w + j` (row-major) is the patch
    in grid row :math:`i`, column :math:`j`, with all its channels:

    .. math::

        \pi(z)_{c, h, w} = z_{\lfloor h / p_h \rfloor \cdot W/p_w + \lfloor w / p_w \rfloor}.

    The LEX paper's CelebA selector is ``PatchGrid((3, 128, 128), (4, 4))`` (App. D).

    :param image_shape: ``(C, H, W)`` of one image.
    :param patch: ``(p_h, p_w)``, or one int for square patches; must divide ``H`` and ``W``.

    Example::

        >>> groups = PatchGrid((1, 4, 4), (2, 2))
        >>> groups.expand(torch.tensor([1.0, 0.0, 0.0, 1.0]))[0]
        tensor([[1., 1., 0., 0.],
                [1., 1., 0., 0.],
                [0., 0., 1., 1.],
                [0., 0., 1., 1.]])

    **References**

    [1] H. Senetaire, D. Garreau, J. Frellsen, P.-A. Mattei, *Explainability as statistical
        inference*, ICML 2023 (App. D, CelebA).
    """

    def __init__(self, image_shape: Sequence[int], patch: int | Sequence[int]) -> None:
        self.input_shape = _shape(image_shape, "image_shape", 3)
        if isinstance(patch, numbers.Integral):
            patch = (patch, patch)
        self.patch = _shape(patch, "patch", 2)
        _, height, width = self.input_shape
        ph, pw = self.patch
        if height % ph or width % pw:
            raise ValueError(
                f"{type(self).__name__}: patches of {ph}x{pw} pixels must tile the image; got "
                f"image_shape={self.input_shape} (H={height}, W={width}), which is not divisible "
                f"by patch=({ph}, {pw})."
            )
        self.grid_shape = (height // ph, width // pw)

    @property
    def channels(self) -> int:
        return self.input_shape[0]

    @property
    def num_groups(self) -> int:
        return self.grid_shape[0] * self.grid_shape[1]

    def _mismatch_hint(self, received: tuple[int, ...]) -> str:
        if len(received) != 3:
            return " (inputs must be images (N, C, H, W))"
        hints = []
        if received[0] != self.channels:
            hints.append(f"{received[0]} channels instead of {self.channels}")
        ph, pw = self.patch
        if received[1] % ph or received[2] % pw:
            hints.append(f"H={received[1]}, W={received[2]} cannot be tiled by {ph}x{pw} patches")
        elif received[1:] != self.input_shape[1:]:
            hints.append(
                f"size {received[1]}x{received[2]} instead of "
                f"{self.input_shape[1]}x{self.input_shape[2]}"
            )
        return f" ({'; '.join(hints)})" if hints else ""

    def expand(self, z: Tensor) -> Tensor:
        """Group mask ``(..., G)`` to image mask ``(..., C, H, W)``; differentiable (each pixel's
        gradient flows to its patch's entry), and vectorised over the leading dimensions. The
        channel dimension is a broadcast view."""
        self._check_groups(z, "expand")
        ph, pw = self.patch
        image = z.reshape(z.shape[:-1] + self.grid_shape)
        image = image.repeat_interleave(ph, dim=-2).repeat_interleave(pw, dim=-1)
        return image.unsqueeze(-3).expand(z.shape[:-1] + self.input_shape)

    def reduce(self, map: Tensor, grid: bool = False) -> Tensor:
        r"""A group-level map ``(..., G)`` (e.g. :math:`\mathbb E[Z|x]`) as an image-shaped map
        ``(..., C, H, W)`` in which each pixel carries its patch's value — for importance maps
        this is exactly the pixel's selection probability — or, with ``grid=True``, as the grid
        ``(..., H/p_h, W/p_w)`` for plotting."""
        self._check_groups(map, "reduce")
        if grid:
            return map.reshape(map.shape[:-1] + self.grid_shape)
        return self.expand(map)

    def pool(self, features: Tensor) -> Tensor:
        """Pixel values ``(..., H, W)`` to patch values ``(..., G)``: the mean over each patch.

        Only the last two dimensions are pooled, so a channel dimension is kept as a leading
        one (``(..., C, H, W) -> (..., C, G)``; average it yourself if wanted). Used to turn
        per-pixel selector logits (:class:`~lexppl.nets.UNetSelector`) or a pixel-level ground
        truth into group values. Differentiable.
        """
        _, height, width = self.input_shape
        if features.dim() < 2 or tuple(features.shape[-2:]) != (height, width):
            raise ValueError(
                f"{type(self).__name__}.pool expects a tensor of shape (..., H, W) = "
                f"(..., {height}, {width}); got {tuple(features.shape)}."
            )
        gh, gw = self.grid_shape
        ph, pw = self.patch
        blocks = features.reshape((*features.shape[:-2], gh, ph, gw, pw))
        return blocks.mean(dim=(-3, -1)).flatten(-2)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(image_shape={self.input_shape}, patch={self.patch})"

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, PatchGrid)
            and other.input_shape == self.input_shape
            and other.patch == self.patch
        )

    def __hash__(self) -> int:
        return hash((PatchGrid, self.input_shape, self.patch))


class PixelGrid(PatchGrid):
    """One group per pixel, shared over channels: :math:`G = H \\cdot W` (a
    :class:`PatchGrid` with :math:`1 \\times 1` patches). This is the mask of the LEX paper's
    Switching Panels selector (a :math:`28 \\times 56 \\times 1` U-Net output, App. D).

    :param image_shape: ``(C, H, W)`` of one image.
    """

    def __init__(self, image_shape: Sequence[int]) -> None:
        super().__init__(image_shape, (1, 1))

    def __repr__(self) -> str:
        return f"PixelGrid(image_shape={self.input_shape})"
