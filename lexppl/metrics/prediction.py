"""
Predictive metrics for predictions made from selected features.

Predictions may be given for one mask per instance, shape ``(N, C)``, or for
``S`` sampled masks per instance, shape ``(S, N, C)``. In the latter case the
metric is computed separately for each mask sample and then averaged over
samples ("averaged over masks", as in LEX). Targets are integer labels of
shape ``(N,)`` or soft targets of shape ``(N, C)``, which are reduced to their
argmax.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from lexppl.metrics.selection import ArrayLike, _as_tensor

__all__ = ["accuracy", "accuracy_per_sample", "auroc", "auroc_per_sample"]


def _probs_and_labels(probs: ArrayLike, y: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and return probs as ``(S, N, C)`` and integer labels as ``(N,)``."""
    probs = _as_tensor(probs, "probs")
    y = _as_tensor(y, "y")
    shape = tuple(probs.shape)
    if probs.dim() == 2:
        probs = probs.unsqueeze(0)
    if probs.dim() != 3:
        raise ValueError(f"probs must have shape (N, C) or (S, N, C), got shape {shape}")
    _, num, num_classes = probs.shape
    if num_classes < 2:
        raise ValueError(f"probs must have at least 2 classes, got shape {shape}")
    if y.dim() == 2:
        if y.shape != (num, num_classes):
            raise ValueError(
                f"soft targets y of shape {tuple(y.shape)} do not match probs of shape "
                f"{shape}: expected ({num}, {num_classes})"
            )
        labels = y.argmax(-1)
    elif y.dim() == 1:
        if y.shape[0] != num:
            raise ValueError(
                f"labels y of shape {tuple(y.shape)} do not match probs of shape "
                f"{shape}: expected ({num},)"
            )
        if not bool((y == y.round()).all()) or (
            num > 0 and (float(y.min()) < 0 or float(y.max()) >= num_classes)
        ):
            raise ValueError(f"labels y must be integers in [0, {num_classes})")
        labels = y.long()
    else:
        raise ValueError(f"y must have shape (N,) or (N, C), got shape {tuple(y.shape)}")
    if num == 0:
        raise ValueError("probs and y must contain at least one instance")
    return probs, labels


def accuracy_per_sample(probs: ArrayLike, y: ArrayLike) -> torch.Tensor:
    """
    Accuracy of the argmax prediction for each mask sample.

    Parameters
    ----------
    probs : torch.Tensor or numpy.ndarray
        Class probabilities (or any scores) of shape ``(N, C)`` or
        ``(S, N, C)``.
    y : torch.Tensor or numpy.ndarray
        Labels of shape ``(N,)`` or soft targets of shape ``(N, C)``.

    Returns
    -------
    torch.Tensor
        Float64 tensor of shape ``(S,)`` (``S = 1`` for ``(N, C)`` input).
    """
    probs, labels = _probs_and_labels(probs, y)
    return (probs.argmax(-1) == labels).to(torch.float64).mean(-1)


def accuracy(probs: ArrayLike, y: ArrayLike) -> float:
    """
    Classification accuracy, averaged over mask samples.

    Parameters
    ----------
    probs : torch.Tensor or numpy.ndarray
        Class probabilities (or any scores) of shape ``(N, C)`` or
        ``(S, N, C)``.
    y : torch.Tensor or numpy.ndarray
        Labels of shape ``(N,)`` or soft targets of shape ``(N, C)``.

    Returns
    -------
    float
        Mean over the ``S`` samples of the fraction of correct argmax
        predictions.
    """
    return float(accuracy_per_sample(probs, y).mean())


def auroc_per_sample(probs: ArrayLike, y: ArrayLike) -> torch.Tensor:
    """
    Area under the ROC curve for each mask sample.

    For two classes the score is the positive-class probability
    ``probs[..., 1]``, or for logits their margin ``probs[..., 1] - probs[..., 0]``
    (the log-odds). For more classes it is the one-vs-rest micro
    average, i.e. the AUROC of the flattened one-hot labels against the
    flattened probabilities, as REAL-X does on MNIST; pooling scores across
    rows needs probabilities, so logits are refused there. Computed with
    :func:`sklearn.metrics.roc_auc_score`.

    Parameters
    ----------
    probs : torch.Tensor or numpy.ndarray
        Class probabilities of shape ``(N, C)`` or ``(S, N, C)``; for two
        classes, logits too.
    y : torch.Tensor or numpy.ndarray
        Labels of shape ``(N,)`` or soft targets of shape ``(N, C)``.

    Returns
    -------
    torch.Tensor
        Float64 tensor of shape ``(S,)``.

    Raises
    ------
    ValueError
        If the labels contain a single class in the binary case, or if the
        scores of more than two classes are not probabilities.
    """
    probs, labels = _probs_and_labels(probs, y)
    num_classes = probs.shape[-1]
    scores = probs.to(torch.float64).numpy()
    labels = labels.numpy()
    if num_classes == 2:
        if np.unique(labels).size < 2:
            raise ValueError("auroc needs both classes present in y, got a single class")
        # Probabilities rank by p1 itself (a margin p1 - p0 would round p1 < 1e-16 away);
        # logits by their margin, the log-odds.
        probabilities = (scores >= 0).all() and np.allclose(scores.sum(-1), 1.0, atol=1e-3)
        ranked = scores[..., 1] if probabilities else scores[..., 1] - scores[..., 0]
        values = [roc_auc_score(labels, s) for s in ranked]
    else:
        if not ((scores >= 0).all() and np.allclose(scores.sum(-1), 1.0, atol=1e-3)):
            raise ValueError(
                f"auroc with {num_classes} classes pools the scores of every row, so probs "
                f"must be class probabilities (rows >= 0 summing to 1); apply a softmax to "
                f"logits first"
            )
        one_hot = np.eye(num_classes)[labels]
        values = [roc_auc_score(one_hot, s, average="micro") for s in scores]
    return torch.tensor(values, dtype=torch.float64)


def auroc(probs: ArrayLike, y: ArrayLike) -> float:
    """
    Area under the ROC curve, averaged over mask samples.

    See :func:`auroc_per_sample` for the binary and multiclass conventions.

    Parameters
    ----------
    probs : torch.Tensor or numpy.ndarray
        Class probabilities of shape ``(N, C)`` or ``(S, N, C)``; for two
        classes, logits too.
    y : torch.Tensor or numpy.ndarray
        Labels of shape ``(N,)`` or soft targets of shape ``(N, C)``.

    Returns
    -------
    float
        Mean AUROC over the ``S`` mask samples.
    """
    return float(auroc_per_sample(probs, y).mean())
