"""Multiple imputation from the marginal: resample rows of a held-out set (LEX App. B.8)."""

from __future__ import annotations

from typing import ClassVar

import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor
from torch.distributions import Distribution

from lexppl.imputers.base import Imputer, _check_data, _in_layout

__all__ = ["MarginalImputer"]

_EMPTY = torch.Size()


class _RowResampling(TorchDistribution):
    """Uniform draws of whole rows of ``rows`` (shape ``(n,) + event_shape``)."""

    arg_constraints: ClassVar[dict] = {}
    has_rsample = False

    def __init__(self, rows: Tensor, batch_shape: torch.Size) -> None:
        self.rows = rows
        super().__init__(torch.Size(batch_shape), rows.shape[1:], validate_args=False)

    @property
    def support(self):
        return constraints.independent(constraints.real, len(self.event_shape))

    def expand(self, batch_shape, _instance=None):
        return _RowResampling(self.rows, torch.Size(batch_shape))

    def sample(self, sample_shape=_EMPTY) -> Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        index = torch.randint(self.rows.shape[0], shape, device=self.rows.device)
        return self.rows[index]

    def log_prob(self, value):
        raise NotImplementedError("log_prob is not available for marginal (row) resampling.")


class MarginalImputer(Imputer):
    r"""
    Multiple imputation from the marginal :math:`p_{data}(x_{1-z})`: each imputation copies the
    turned-off features from a row drawn uniformly from a held-out set (LEX paper App. B.8).

    The rows are the data given to :meth:`fit`; pass a *held-out* (validation) set so that the
    imputer never copies the instance being explained. Draws use torch's global generator, so
    ``pyro.set_rng_seed`` makes them reproducible.
    """

    multiple = True
    requires_fit = True

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("rows", torch.empty(0))

    def fit(self, X: Tensor) -> MarginalImputer:
        X = _check_data(X, type(self).__name__)
        super().fit(X)
        self.rows = X.to(self.rows.device).clone()
        return self

    def fill_distribution(self, x: Tensor, z: Tensor) -> Distribution:
        batch_shape = torch.broadcast_shapes(x.shape, z.shape)[: -(x.dim() - 1)]
        return _RowResampling(_in_layout(self.rows.to(x.dtype), x, leading=1), batch_shape)
