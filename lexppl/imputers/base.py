"""The imputation contract shared by every imputer.

An imputer turns an input ``x`` and a mask ``z`` (1 = kept, 0 = turned off) into a distribution
``p_ι(x̃ | x, z)`` over full inputs with ``x̃ = x`` wherever ``z = 1`` (LEX paper §2.3, eq. 2-4).
"""

from __future__ import annotations

import copy
from typing import ClassVar

import sklearn.exceptions
import torch
from pyro.distributions import TorchDistribution, constraints
from pyro.infer.util import is_validation_enabled
from torch import Tensor, nn
from torch.distributions import Distribution, Independent

__all__ = ["ImputedDistribution", "Imputer", "NotFittedError"]

_EMPTY = torch.Size()


class NotFittedError(sklearn.exceptions.NotFittedError):
    """Raised when a lexppl object that needs data (an imputer, :class:`~lexppl.methods.EvalX`,
    SENN, FastSHAP) is used before its ``fit``: scikit-learn's error (a ``ValueError`` and an
    ``AttributeError``), so ``except NotFittedError`` catches either library's."""


class ImputedDistribution(TorchDistribution):
    r"""
    The distribution of an imputed input :math:`\tilde x = z \odot x + (1 - z) \odot \hat x`,
    :math:`\hat x \sim` ``fill`` (LEX paper eq. 2-3).

    Samples are computed arithmetically rather than with ``torch.where`` so that a
    straight-through or relaxed mask keeps its gradient: :math:`\partial \tilde x / \partial z
    = x - \hat x`.

    :param torch.Tensor x: inputs of shape ``batch_shape + event_shape``.
    :param torch.Tensor z: masks broadcastable to ``x``; 1 = kept, 0 = imputed.
    :param ~torch.distributions.Distribution fill: distribution of the fill values
        :math:`\hat x` with ``event_shape`` equal to that of ``x``.

    ``log_prob`` is the density of the *imputed* coordinates only (the kept ones are a point
    mass at ``x``); it needs ``fill`` to factorise over coordinates (an ``Independent``
    wrapper), and returns ``-inf`` where a kept coordinate differs from ``x``.

    ``mask(False)`` returns an unscored copy whose ``log_prob`` is zero without being computed,
    as for Pyro's :class:`~pyro.distributions.MaskedDistribution`, but which is still an
    ``ImputedDistribution`` (with ``x``, ``z`` and ``fill``); :class:`~lexppl.models.LEX` samples
    its ``"imputation"`` site from such a copy.
    """

    arg_constraints: ClassVar[dict] = {}
    has_rsample = True
    _scored = True

    def __init__(self, x: Tensor, z: Tensor, fill: Distribution, validate_args=None) -> None:
        event_dim = len(fill.event_shape)
        shape = torch.broadcast_shapes(x.shape, z.shape, fill.batch_shape + fill.event_shape)
        batch_shape = shape[: len(shape) - event_dim]
        event_shape = shape[len(shape) - event_dim :]
        self.x, self.z = x, z
        self.fill = fill.expand(batch_shape) if fill.batch_shape != batch_shape else fill
        super().__init__(batch_shape, event_shape, validate_args=False)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self._get_checked_instance(ImputedDistribution, _instance)
        new.x, new.z = self.x, self.z
        new.fill = self.fill.expand(batch_shape)
        new._scored = self._scored
        super(ImputedDistribution, new).__init__(batch_shape, self.event_shape, validate_args=False)
        return new

    def mask(self, mask):
        # Pyro evaluates log_prob even at a site that poutine.mask excludes, and most fills
        # (mixtures, resampled rows, VAEAC) have no density; Pyro's MaskedDistribution would skip
        # it but hide x, z and fill from readers of the trace (e.g. ConcreteBound).
        if mask is not False:
            return super().mask(mask)
        unscored = copy.copy(self)
        unscored._scored = False
        return unscored

    @property
    def support(self):
        return constraints.independent(constraints.real, len(self.event_shape))

    def rsample(self, sample_shape=_EMPTY) -> Tensor:
        fill = (
            self.fill.rsample(sample_shape)
            if self.fill.has_rsample
            else self.fill.sample(sample_shape)
        )
        return self.z * self.x + (1 - self.z) * fill

    def log_prob(self, value: Tensor) -> Tensor:
        fill, event_dim = self.fill, len(self.event_shape)
        if not self._scored:
            shape = torch.broadcast_shapes(self.batch_shape, value.shape[: value.dim() - event_dim])
            return value.new_zeros(()).expand(shape)
        while isinstance(fill, Independent):
            fill = fill.base_dist
        if len(fill.event_shape) != 0:
            raise NotImplementedError(
                f"log_prob of an imputation needs a fill distribution that factorises over "
                f"coordinates; got {type(self.fill).__name__} with a joint event."
            )
        observed = self.z > 0.5
        elementwise = torch.where(observed, torch.zeros_like(value), fill.log_prob(value))
        mismatch = observed & (value != self.x)
        elementwise = elementwise.masked_fill(mismatch, float("-inf"))
        return elementwise.flatten(-event_dim).sum(-1) if event_dim else elementwise


class Imputer(nn.Module):
    """
    Base class of imputers: ``imputer(x, z)`` returns an :class:`ImputedDistribution`.

    Subclasses implement :meth:`fill_distribution` (the distribution of the values that replace
    the turned-off features) and, when they need data, :meth:`fit`. Imputers are ``nn.Module`` s
    so that learnable values and fitted data travel with ``.to(device)`` and with checkpoints.

    Capability flags (read these rather than checking classes):

    - ``multiple``: ``True`` when imputations are random (multiple imputation), ``False`` for
      deterministic single imputation.
    - ``requires_fit``: ``True`` when :meth:`fit` must be called before use.
    """

    multiple: bool = False
    requires_fit: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("num_features_", torch.tensor(-1, dtype=torch.long))

    @property
    def is_fitted(self) -> bool:
        return int(self.num_features_) >= 0

    def fit(self, X: Tensor) -> Imputer:
        """Record the feature count of ``X`` (subclasses also learn from it); returns ``self``.

        The imputer then accepts inputs of any shape ``(N, ...)`` with that many features per
        row, matched in row-major order: e.g. fitted on flat rows ``(n, 9)``, it imputes images
        ``(N, 1, 3, 3)``."""
        X = _check_data(X, type(self).__name__)
        self.num_features_.fill_(X.shape[1:].numel())
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Fitted buffers (rows, per-feature values) change shape on fit: adopt the saved shape
        # so that an imputer restored from a checkpoint needs no refit.
        for name, buffer in self._buffers.items():
            key = prefix + name
            if buffer is not None and key in state_dict and state_dict[key].shape != buffer.shape:
                self._buffers[name] = torch.empty_like(state_dict[key], device=buffer.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def fill_distribution(self, x: Tensor, z: Tensor) -> Distribution:
        """The distribution of fill values, ``event_shape == x.shape[1:]`` (override)."""
        raise NotImplementedError

    def forward(self, x: Tensor, z: Tensor) -> ImputedDistribution:
        name = type(self).__name__
        if self.requires_fit and not self.is_fitted:
            raise NotFittedError(f"{name} is not fitted: call {name}.fit(X) with training data.")
        num_features = x.shape[1:].numel()  # not x[0]: an empty batch (0, ...) is valid
        if self.is_fitted and num_features != int(self.num_features_):
            raise ValueError(
                f"{name} was fitted on inputs with {int(self.num_features_)} features but got "
                f"inputs with {num_features} features (x.shape={tuple(x.shape)})."
            )
        x = _floating(x)  # as fit does: integer fills would be truncated (0.5 imputes 0)
        # Checked only under Pyro's validation (on by default): this runs at every step. A NaN
        # even at a turned-off feature would poison the imputation, since 0 * NaN = NaN.
        if is_validation_enabled() and not torch.isfinite(x).all():
            raise ValueError(
                f"{name} got inputs containing NaN or infinite values (x.shape="
                f"{tuple(x.shape)}); every feature must be finite, also those it imputes."
            )
        z = z.to(dtype=x.dtype)
        return ImputedDistribution(x, z, self.fill_distribution(x, z))


def _in_layout(values: Tensor, x: Tensor, leading: int = 0) -> Tensor:
    """Fitted per-feature ``values`` (after ``leading`` dims, e.g. the rows' index) in the layout
    of the inputs ``x``, which may differ from the fit data's with the same feature count."""
    return values.reshape(values.shape[:leading] + x.shape[1:])


def _floating(x: Tensor) -> Tensor:
    """``x``, cast to the default float dtype when it holds integers (or booleans)."""
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


def _check_data(X, name: str) -> Tensor:
    X = _floating(torch.as_tensor(X))
    if X.dim() < 2 or X.shape[0] == 0:
        raise ValueError(
            f"{name}.fit expects data of shape (n_samples, ...); got {tuple(X.shape)}."
        )
    if not torch.isfinite(X).all():
        raise ValueError(f"{name}.fit got data containing NaN or infinite values.")
    return X
