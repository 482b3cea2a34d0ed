"""
Container for datasets with per-instance ground-truth selection masks.

Every dataset in :mod:`lexppl.data` is returned as a :class:`MaskedDataset`,
which pairs inputs and labels with the binary mask of the features that truly
drive each label, so that selection metrics (:mod:`lexppl.metrics`) can be
computed against it.
"""

from __future__ import annotations

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
        Inputs of shape ``(n, D)``; stored as ``float32``.
    y : torch.Tensor
        Integer class labels of shape ``(n,)``; stored as ``int64``.
    truth : torch.Tensor
        Ground-truth selection masks of shape ``(n, D)`` with entries in
        ``{0, 1}`` (1 = feature is relevant); stored as ``float32``.
    probs : torch.Tensor, optional
        True class probabilities ``p(y | x)`` of shape ``(n, C)`` when they
        are known (synthetic data); stored as ``float32``.
    name : str
        Name of the dataset.
    num_classes : int, optional
        Number of classes ``C``. Defaults to ``probs.shape[1]`` when ``probs``
        is given, else to ``y.max() + 1``.
    feature_names : sequence of str, optional
        ``D`` feature names. Defaults to ``["x1", ..., "xD"]`` (1-based, as in
        the papers).

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
        y = torch.as_tensor(y, dtype=torch.int64)
        truth = torch.as_tensor(truth, dtype=torch.float32)
        if x.dim() != 2:
            raise ValueError(f"x must have shape (n, D), got shape {tuple(x.shape)}")
        n, dim = x.shape
        if y.shape != (n,):
            raise ValueError(
                f"y must have shape ({n},) to match x of shape {tuple(x.shape)}, "
                f"got shape {tuple(y.shape)}"
            )
        if truth.shape != x.shape:
            raise ValueError(
                f"truth must have the same shape as x {tuple(x.shape)}, "
                f"got shape {tuple(truth.shape)}"
            )
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
                f"feature_names must have {dim} entries to match x, got {len(feature_names)}"
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
        """Number of input features ``D``."""
        return self.x.shape[1]

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, index):
        return self.x[index], self.y[index]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, n={len(self)}, "
            f"num_features={self.num_features}, num_classes={self.num_classes})"
        )
