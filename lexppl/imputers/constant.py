"""Single imputation by a constant (0-imputation of L2X, INVASE and REAL-X)."""

from __future__ import annotations

import torch
from pyro.distributions import Delta
from torch import Tensor, nn
from torch.distributions import Distribution

from lexppl.imputers.base import Imputer, _check_data, _in_layout

__all__ = ["ConstantImputer", "MeanImputer"]


class ConstantImputer(Imputer):
    r"""
    Turn features off by a constant: :math:`\tilde x = z \odot x + (1 - z) \odot c`.

    With constant imputation a jointly trained selector can encode the label in the mask
    (REAL-X §3.1, Lemma 1; LEX §3 and App. F.1); it is the imputation of L2X, INVASE and REAL-X.

    :param value: the constant ``c``: a float, or a tensor broadcastable to one input
        (e.g. per-feature values of shape ``(D,)``). Default 0.
    :param bool learnable: learn ``c`` jointly with the model (gradient through the imputation).
    """

    multiple = False

    def __init__(self, value: float | Tensor = 0.0, learnable: bool = False) -> None:
        super().__init__()
        value = torch.as_tensor(value, dtype=torch.get_default_dtype())
        if not torch.isfinite(value).all():
            raise ValueError(f"ConstantImputer value must be finite; got {value}.")
        if learnable:
            self.value = nn.Parameter(value.clone())
        else:
            self.register_buffer("value", value.clone())

    def fill_distribution(self, x: Tensor, z: Tensor) -> Distribution:
        shape = torch.broadcast_shapes(x.shape, z.shape)
        return Delta(self.value.to(x.dtype).expand(shape)).to_event(x.dim() - 1)


class MeanImputer(ConstantImputer):
    """Single imputation by the per-feature training mean (``fit(X)`` sets the constant)."""

    requires_fit = True

    def __init__(self) -> None:
        super().__init__(0.0, learnable=False)

    def fit(self, X: Tensor) -> MeanImputer:
        X = _check_data(X, type(self).__name__)
        super().fit(X)
        self.value = X.mean(0).to(self.value.device)
        return self

    def fill_distribution(self, x: Tensor, z: Tensor) -> Distribution:
        shape = torch.broadcast_shapes(x.shape, z.shape)
        value = _in_layout(self.value.to(x.dtype), x)
        return Delta(value.expand(shape)).to_event(x.dim() - 1)
