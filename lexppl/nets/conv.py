"""Convolutional predictors for image data (LEX paper App. D)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from lexppl.nets._sizes import positive_int, positive_ints

__all__ = ["ConvPredictor"]


class ConvPredictor(nn.Module):
    r"""
    A convolutional classifier: blocks of [two :math:`3 \times 3` convolutions with ReLU,
    :math:`2 \times 2` average pooling], then one fully connected layer to the logits.

    The LEX paper's Switching Panels predictor has two blocks of 32 and 64 filters on
    :math:`28 \times 56` panels (the defaults); its CelebA predictor has four blocks of 32, 64,
    128 and 256 filters (App. D). The network outputs logits (the softmax is in
    :class:`~lexppl.models.CategoricalLikelihood`).

    :param int in_channels: input channels (twice the image's channels for a LEX model with
        ``mask_as_input=True``).
    :param int num_classes: number of output logits.
    :param channels: filters of each block.
    :param image_size: ``(H, W)`` of the inputs; sizes the fully connected layer (each pooling
        floors odd sizes). Inputs of any other size raise a ``ValueError``.

    Inputs are ``(M, C, H, W)``; further leading (particle) dimensions are flattened into the
    batch and restored: ``(..., C, H, W) -> (..., num_classes)``.

    **References**

    [1] H. Senetaire, D. Garreau, J. Frellsen, P.-A. Mattei, *Explainability as statistical
        inference*, ICML 2023 (App. D).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        channels: Sequence[int] = (32, 64),
        image_size: Sequence[int] = (28, 56),
    ) -> None:
        super().__init__()
        in_channels = positive_int(in_channels, "in_channels")
        num_classes = positive_int(num_classes, "num_classes")
        channels = positive_ints(channels, "channels")
        if not channels:
            raise ValueError("channels must be a non-empty sequence of ints >= 1; got ().")
        image_size = positive_ints(image_size, "image_size")
        if len(image_size) != 2:
            raise ValueError(f"image_size must be (H, W) with ints >= 1; got {image_size}.")
        height, width = image_size
        if height < 2 ** len(channels) or width < 2 ** len(channels):
            raise ValueError(
                f"image_size {image_size} is too small for {len(channels)} pooling steps (each "
                f"halves H and W); use fewer blocks or larger images."
            )
        layers: list[nn.Module] = []
        previous = in_channels
        for width_out in channels:
            layers += [
                nn.Conv2d(previous, width_out, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(width_out, width_out, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.AvgPool2d(2),
            ]
            previous = width_out
            height, width = height // 2, width // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(previous * height * width, num_classes)
        self.in_channels, self.num_classes = in_channels, num_classes
        self.channels, self.image_size = channels, image_size

    def forward(self, x: Tensor) -> Tensor:
        """:param x: images ``(..., C, H, W)``. :returns: logits ``(..., num_classes)``."""
        expected = (self.in_channels, *self.image_size)
        if x.dim() < 4 or tuple(x.shape[-3:]) != expected:
            raise ValueError(
                f"ConvPredictor expects images of shape (M, {', '.join(map(str, expected))}); "
                f"got {tuple(x.shape)}."
            )
        batch_shape = x.shape[:-3]
        h = self.features(x.reshape((-1, *expected)))
        return self.classifier(h.flatten(1)).reshape((*batch_shape, self.num_classes))
