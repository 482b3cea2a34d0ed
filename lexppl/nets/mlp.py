"""Fully connected networks for selectors and predictors on tabular data."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import Tensor, nn

from lexppl.nets._sizes import positive_int, positive_ints

__all__ = ["MLP"]

_ACTIVATIONS = {"relu": nn.ReLU, "selu": nn.SELU, "elu": nn.ELU, "tanh": nn.Tanh}


class _FeatureBatchNorm(nn.BatchNorm1d):
    # BatchNorm1d over the last dimension, with every leading (particle, batch) dimension
    # pooled into the statistics: LEX predictors see (..., N, D) inputs.
    def forward(self, x: Tensor) -> Tensor:
        rows = x.reshape(-1, x.shape[-1])
        if self.training and rows.shape[0] == 1:
            # One row has no variance (torch raises): normalise it by the running statistics,
            # as in evaluation, and leave them unchanged. This is the last, short batch of an
            # epoch whose size leaves a remainder of one.
            normalised = nn.functional.batch_norm(
                rows,
                self.running_mean,
                self.running_var,
                self.weight,
                self.bias,
                training=False,
                eps=self.eps,
            )
            return normalised.reshape(x.shape)
        return super().forward(rows).reshape(x.shape)


class MLP(nn.Sequential):
    """
    A multilayer perceptron ``in_features -> hidden... -> out_features``, acting on the last
    dimension (so any leading particle or batch dimensions pass through).

    The LEX synthetic experiments use a 3 x 200 ReLU predictor and a 2 x 200 ReLU selector
    (paper App. D).

    :param int in_features: input size ``D``.
    :param int out_features: output size (selector: number of mask logits; predictor: classes).
    :param hidden: sizes of the hidden layers.
    :param str activation: one of ``"relu"``, ``"selu"``, ``"elu"``, ``"tanh"``.
    :param bool batch_norm: batch normalisation after each hidden activation (INVASE's critic),
        with statistics pooled over every leading dimension.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (200, 200),
        activation: str = "relu",
        batch_norm: bool = False,
    ) -> None:
        in_features = positive_int(in_features, "in_features")
        out_features = positive_int(out_features, "out_features")
        # A hidden layer of width 0 would make the output a constant (its bias).
        hidden = positive_ints(hidden, "hidden")
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"Unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}."
            )
        layers: list[nn.Module] = []
        sizes = [in_features, *hidden]
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), _ACTIVATIONS[activation]()]
            if batch_norm:
                layers.append(_FeatureBatchNorm(b))
        layers.append(nn.Linear(sizes[-1], out_features))
        super().__init__(*layers)
        self.in_features, self.out_features = in_features, out_features

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.flatten(-1) if x.dim() == 1 else x)
