"""User data (numpy arrays, pandas frames, lists, tensors) as the tensors lexppl's models take."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["as_inputs", "as_labels"]


def as_inputs(x: Any, name: str = "x", finite: bool = True) -> Tensor:
    """Model inputs as a tensor: arrays as float32 (a copy, so read-only arrays are fine),
    as :class:`~lexppl.LEXExplainer` takes them; tensors keep their device and floating dtype.

    :raises ValueError: for ``None`` or other non-numeric data, or, if ``finite``, NaN or
        infinite values (a model's outputs on them would be meaningless)."""
    if x is None:  # numpy would make it a NaN, and the error would blame the values
        raise ValueError(f"{name} must be a numeric array; got None")
    if not isinstance(x, Tensor):
        try:
            x = torch.tensor(np.asarray(x, dtype=np.float32))
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{name} must be a numeric array; got {type(x).__name__} ({error})"
            ) from error
    if not x.is_floating_point():
        x = x.float()
    if finite and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def as_labels(y: Any, n: int, name: str = "y") -> Tensor:
    """Class indices ``(n,)`` as a long tensor (on ``y``'s device for a tensor).

    :raises ValueError: for another shape, or values that are not non-negative integers (also
        NaN, infinite, or too large for int64)."""
    if not isinstance(y, Tensor):
        try:
            y = torch.tensor(np.asarray(y))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name} must be an array of class indices") from error
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one label per row; got {tuple(y.shape)}")
    if y.is_floating_point():
        # Checked before the cast to int64, which turns inf, NaN and values beyond its range
        # into -2**63 without an error.
        if not bool(torch.isfinite(y).all()):
            raise ValueError(f"{name} must hold class indices; got NaN or infinite values")
        if not bool((y == y.round()).all()):
            raise ValueError(f"{name} must hold integer class indices; got non-integer values")
        if bool((y.abs() >= 2.0**63).any()):
            raise ValueError(
                f"{name} must hold class indices; got values beyond the int64 range "
                f"(largest magnitude {float(y.abs().max()):g})"
            )
    if y.dtype == torch.bool:
        y = y.long()
    if y.is_complex() or bool((y < 0).any()):
        raise ValueError(f"{name} must hold class indices >= 0")
    return y.long()
