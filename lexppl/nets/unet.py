"""U-Net selectors for image explanations (LEX paper App. D)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lexppl.models.groups import PatchGrid
from lexppl.nets._sizes import positive_int

__all__ = ["UNet", "UNetSelector"]


class _BatchNorm2d(nn.BatchNorm2d):
    # BatchNorm2d that takes a training batch with one value per channel (one image at a 1 x 1
    # resolution, e.g. the bottleneck of a deep U-Net, where torch raises): it is normalised by
    # the running statistics, as in evaluation, and leaves them unchanged, as MLP's batch norm
    # does with a one-row batch (the last, short batch of an epoch).
    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] == 1:
            return F.batch_norm(
                x,
                self.running_mean,
                self.running_var,
                self.weight,
                self.bias,
                training=False,
                eps=self.eps,
            )
        return super().forward(x)


def _conv_block(in_channels: int, out_channels: int, batch_norm: bool) -> nn.Sequential:
    # Two 3x3 convolutions with padding 1 (sizes preserved), each followed by ReLU.
    layers: list[nn.Module] = []
    for a, b in [(in_channels, out_channels), (out_channels, out_channels)]:
        layers.append(nn.Conv2d(a, b, kernel_size=3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(_BatchNorm2d(b))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    r"""
    A U-Net (Ronneberger et al. 2015): per-pixel logits ``(N, out_channels, H, W)`` for images
    ``(N, in_channels, H, W)``.

    The encoder has ``depth`` down-sampling steps; level :math:`i = 0, \dots, \text{depth}`
    is a block of two :math:`3 \times 3` convolutions with ReLU and
    ``base_channels`` :math:`\cdot 2^i` filters, and each step to the next level is a
    :math:`2 \times 2` max-pool. The decoder mirrors it: a :math:`2 \times 2` transposed
    convolution doubles the resolution and halves the channels, the encoder's features of the
    same resolution are concatenated (skip connection), and a two-convolution block follows. A
    :math:`1 \times 1` convolution gives the logits (no activation: the mask family applies
    the sigmoid / softmax).

    The LEX paper's Switching Panels selector has ``depth=3`` (``28 x 56`` images), its CelebA
    selector ``depth=5`` (App. D).

    **Sizes.** The input's ``H`` and ``W`` must be divisible by :math:`2^{\text{depth}}` for the
    skip connections to line up. With ``pad=True`` (default) other sizes are zero-padded
    symmetrically up to the next multiple and the logits are cropped back to ``H x W`` (e.g.
    ``28 x 56`` at depth 3 is processed as ``32 x 56``); with ``pad=False`` they raise a
    ``ValueError``.

    :param int in_channels: channels of the input images.
    :param int out_channels: channels of the output logits.
    :param int depth: number of down-/up-sampling steps.
    :param int base_channels: filters of the first level (doubled at each level).
    :param bool batch_norm: batch normalisation after each convolution (off by default, as in
        the original U-Net; with it on, the network's output depends on the batch in training
        mode; a layer that gets one value per channel, e.g. one image at a ``1 x 1``
        bottleneck, is normalised by its running statistics instead).
    :param bool pad: zero-pad inputs whose size is not a multiple of :math:`2^{\text{depth}}`.

    **References**

    [1] O. Ronneberger, P. Fischer, T. Brox, *U-Net: convolutional networks for biomedical image
        segmentation*, MICCAI 2015.

    [2] H. Senetaire, D. Garreau, J. Frellsen, P.-A. Mattei, *Explainability as statistical
        inference*, ICML 2023 (App. D).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        depth: int = 3,
        base_channels: int = 16,
        batch_norm: bool = False,
        pad: bool = True,
    ) -> None:
        super().__init__()
        in_channels = positive_int(in_channels, "in_channels")
        out_channels = positive_int(out_channels, "out_channels")
        depth = positive_int(depth, "depth")
        base_channels = positive_int(base_channels, "base_channels")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.depth, self.base_channels, self.pad = depth, base_channels, pad
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.encoder = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.encoder.append(_conv_block(previous, width, batch_norm))
            previous = width
        self.pool = nn.MaxPool2d(2)
        self.upsample = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.upsample.append(nn.ConvTranspose2d(2 * width, width, kernel_size=2, stride=2))
            self.decoder.append(_conv_block(2 * width, width, batch_norm))
        self.head = nn.Conv2d(base_channels, out_channels, kernel_size=1)

    def _padding(self, height: int, width: int) -> tuple[int, int, int, int]:
        multiple = 2**self.depth
        extra_h, extra_w = -height % multiple, -width % multiple
        if (extra_h or extra_w) and not self.pad:
            raise ValueError(
                f"UNet(depth={self.depth}) needs H and W divisible by 2**depth = {multiple}; got "
                f"H={height}, W={width}. Resize the images, lower the depth, or use pad=True."
            )
        # F.pad order for the last two dims: (left, right, top, bottom).
        return (extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2)

    def forward(self, x: Tensor) -> Tensor:
        """:param x: images ``(N, in_channels, H, W)``. :returns: logits
        ``(N, out_channels, H, W)``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"UNet expects images of shape (N, {self.in_channels}, H, W); got {tuple(x.shape)}."
            )
        height, width = x.shape[-2:]
        padding = self._padding(height, width)
        left, top = padding[0], padding[2]
        h = F.pad(x, padding) if any(padding) else x
        skips = []
        for level, block in enumerate(self.encoder):
            if level > 0:
                h = self.pool(h)
            h = block(h)
            skips.append(h)
        skips.pop()  # the bottleneck is not a skip connection
        for up, block in zip(self.upsample, self.decoder):
            h = block(torch.cat([up(h), skips.pop()], dim=1))
        out = self.head(h)
        return out[..., top : top + height, left : left + width]


class UNetSelector(nn.Module):
    r"""
    A U-Net selector whose per-pixel logits are averaged over the patches of a
    :class:`~lexppl.models.PatchGrid`: logits ``(N, G)`` for a LEX model with
    ``groups=PatchGrid(...)``,

    .. math::

        \text{logit}_g(x) = \frac{1}{p_h p_w} \sum_{(h, w) \in \text{patch } g}
            \text{UNet}(x)_{h, w}.

    With a :class:`~lexppl.models.PixelGrid` (``1 x 1`` patches) this is the plain per-pixel
    U-Net selector of the LEX paper's Switching Panels experiments.

    :param ~lexppl.models.PatchGrid groups: the grouping (gives the image shape ``(C, H, W)``
        and the patches).
    :param int depth: U-Net depth.
    :param int base_channels: U-Net filters of the first level.
    :param kwargs: further :class:`UNet` arguments (``batch_norm``, ``pad``).

    Inputs that do not have the grouping's image shape raise a ``ValueError`` naming the
    expected and received shapes.
    """

    def __init__(
        self, groups: PatchGrid, depth: int = 3, base_channels: int = 16, **kwargs
    ) -> None:
        super().__init__()
        if not isinstance(groups, PatchGrid):
            raise TypeError(
                f"UNetSelector needs a PatchGrid (or PixelGrid) grouping; got {groups!r}."
            )
        self.groups = groups
        self.unet = UNet(groups.channels, 1, depth=depth, base_channels=base_channels, **kwargs)

    @property
    def num_groups(self) -> int:
        return self.groups.num_groups

    def forward(self, x: Tensor) -> Tensor:
        """:param x: images ``(N, C, H, W)``. :returns: group logits ``(N, G)``."""
        self.groups.check_input(x)
        return self.groups.pool(self.unet(x).squeeze(1))
