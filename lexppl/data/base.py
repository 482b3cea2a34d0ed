"""
Container for datasets with per-instance ground-truth selection masks.

Every dataset in :mod:`lexppl.data` is returned as a :class:`MaskedDataset`,
which pairs inputs and labels with the binary mask of the features that truly
drive each label, so that selection metrics (:mod:`lexppl.metrics`) can be
computed against it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

__all__ = ["MaskedDataset"]


class MaskedDataset(Dataset):
    """
    A classification dataset with a ground-truth feature mask per instance.

    Indexing returns ``(x, y)`` so the dataset plugs directly into a
    :class:`torch.utils.data.DataLoader`; the ground truth and the true class
    probabilities are kept as attributes for evaluation.

    Parameters
    ----------
    x : torch.Tensor
        Inputs of shape ``(n, D)`` for tabular data, or ``(n, *shape)`` for
        structured inputs such as images ``(n, C, H, W)``; stored as
        ``float32``.
    y : torch.Tensor
        Integer class labels of shape ``(n,)``; stored as ``int64``.
    truth : torch.Tensor
        Ground-truth selection masks with entries in ``{0, 1}`` (1 = feature
        is relevant); stored as ``float32``. For tabular ``x`` of shape
        ``(n, D)`` the truth has the same shape. For structured ``x`` it has
        shape ``(n, *mask_shape)``: one entry per unit the explanation
        selects, e.g. ``(n, H, W)`` for one mask entry per pixel shared by
        all channels, or ``(n, 32, 32)`` for a grid of patches;
        ``truth.flatten(1)`` gives the ``(n, D)`` layout of the metrics.
    probs : torch.Tensor, optional
        True class probabilities ``p(y | x)`` of shape ``(n, C)`` when they
        are known (synthetic data); stored as ``float32``.
    name : str
        Name of the dataset.
    num_classes : int, optional
        Number of classes ``C``. Defaults to ``probs.shape[1]`` when ``probs``
        is given, else to ``y.max() + 1``.
    feature_names : sequence of str, optional
        One name per mask entry (``D`` feature names for tabular data).
        Defaults to ``["x1", ..., "xD"]`` (1-based, as in the papers).

    Raises
    ------
    ValueError
        If shapes or lengths do not match, the truth is not binary, or labels
        fall outside ``[0, num_classes)``.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        truth: torch.Tensor,
        probs: torch.Tensor | None = None,
        name: str = "",
        num_classes: int | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        x = torch.as_tensor(x, dtype=torch.float32)
        y = torch.as_tensor(y)
        if y.is_floating_point() and not bool((y == y.round()).all()):
            raise ValueError("y must hold integer class labels; got non-integer values")
        y = y.to(torch.int64)
        truth = torch.as_tensor(truth, dtype=torch.float32)
        if x.dim() < 2:
            raise ValueError(f"x must have shape (n, D) or (n, *shape), got shape {tuple(x.shape)}")
        n = x.shape[0]
        if y.shape != (n,):
            raise ValueError(
                f"y must have shape ({n},) to match x of shape {tuple(x.shape)}, "
                f"got shape {tuple(y.shape)}"
            )
        if x.dim() == 2 and truth.shape != x.shape:
            raise ValueError(
                f"truth must have the same shape as x {tuple(x.shape)}, "
                f"got shape {tuple(truth.shape)}"
            )
        if truth.dim() < 2 or truth.shape[0] != n:
            raise ValueError(
                f"truth must have shape ({n}, *mask_shape) to match x of shape "
                f"{tuple(x.shape)}, got shape {tuple(truth.shape)}"
            )
        dim = math.prod(truth.shape[1:])
        if not bool(((truth == 0) | (truth == 1)).all()):
            raise ValueError("truth must be a binary mask with entries in {0, 1}")
        if probs is not None:
            probs = torch.as_tensor(probs, dtype=torch.float32)
            if probs.dim() != 2 or probs.shape[0] != n:
                raise ValueError(
                    f"probs must have shape ({n}, C) to match x of shape "
                    f"{tuple(x.shape)}, got shape {tuple(probs.shape)}"
                )
        if num_classes is None:
            if probs is not None:
                num_classes = probs.shape[1]
            else:
                num_classes = int(y.max()) + 1 if n > 0 else 0
        if probs is not None and probs.shape[1] != num_classes:
            raise ValueError(f"probs has {probs.shape[1]} columns but num_classes={num_classes}")
        if n > 0 and (int(y.min()) < 0 or int(y.max()) >= num_classes):
            raise ValueError(
                f"y must contain class labels in [0, {num_classes}), "
                f"got range [{int(y.min())}, {int(y.max())}]"
            )
        if feature_names is None:
            feature_names = [f"x{i + 1}" for i in range(dim)]
        feature_names = list(feature_names)
        if len(feature_names) != dim:
            raise ValueError(
                f"feature_names must have {dim} entries to match truth, got {len(feature_names)}"
            )
        self.x = x
        self.y = y
        self.truth = truth
        self.probs = probs
        self.name = name
        self.num_classes = int(num_classes)
        self.feature_names = feature_names

    @property
    def num_features(self) -> int:
        """Number of input features ``D`` (entries of one flattened input)."""
        return math.prod(self.x.shape[1:])

    @property
    def mask_shape(self) -> tuple[int, ...]:
        """Shape of one ground-truth mask: ``(D,)`` for tabular data."""
        return tuple(self.truth.shape[1:])

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, index):
        return self.x[index], self.y[index]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, n={len(self)}, "
            f"num_features={self.num_features}, num_classes={self.num_classes})"
        )
