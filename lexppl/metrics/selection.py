"""
Metrics comparing selected features with ground-truth masks.

Masks are binary with 1 = feature selected. They may be given as a single
mask per instance, shape ``(N, D)``, or as ``S`` sampled masks per instance,
shape ``(S, N, D)``. Ground truth is always ``(N, D)``. Per-instance scores
are first averaged over the ``S`` mask samples, then over instances.

The definitions follow REAL-X (Jethani et al., 2021) and the INVASE code for
TPR, FDR and the control-flow selection rate, LEX (Senetaire et al., 2023) for
FPR and L2X (Chen et al., 2018) for the median rank. Scores are fractions in
``[0, 1]``, not percentages.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "control_flow_rate",
    "control_flow_rate_per_instance",
    "false_discovery_rate",
    "false_discovery_rate_per_instance",
    "false_positive_rate",
    "false_positive_rate_per_instance",
    "median_rank",
    "median_rank_per_instance",
    "true_positive_rate",
    "true_positive_rate_per_instance",
]

ArrayLike = torch.Tensor | np.ndarray


def _as_tensor(value: ArrayLike, argname: str) -> torch.Tensor:
    """Convert to a float64 CPU tensor, rejecting NaN."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
    else:
        try:
            tensor = torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{argname} must be a torch.Tensor or numpy array, got {type(value).__name__}"
            ) from err
    if tensor.is_complex():
        raise ValueError(f"{argname} must be real-valued, got dtype {tensor.dtype}")
    tensor = tensor.to(torch.float64)
    if bool(torch.isnan(tensor).any()):
        raise ValueError(f"{argname} contains NaN values")
    return tensor


def _check_binary(tensor: torch.Tensor, argname: str) -> None:
    if not bool(((tensor == 0) | (tensor == 1)).all()):
        raise ValueError(f"{argname} must be binary with entries in {{0, 1}}")


def _masks_and_truth(masks: ArrayLike, truth: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and return masks as ``(S, N, D)`` and truth as ``(N, D)``."""
    masks = _as_tensor(masks, "masks")
    truth = _as_tensor(truth, "truth")
    if truth.dim() != 2:
        raise ValueError(f"truth must have shape (N, D), got shape {tuple(truth.shape)}")
    shape = tuple(masks.shape)
    if masks.dim() == 2:
        masks = masks.unsqueeze(0)
    if masks.dim() != 3:
        raise ValueError(f"masks must have shape (N, D) or (S, N, D), got shape {shape}")
    if masks.shape[1:] != truth.shape:
        raise ValueError(
            f"masks of shape {shape} do not match truth of shape "
            f"{tuple(truth.shape)}: expected (N, D) or (S, N, D) with the same N and D"
        )
    _check_binary(masks, "masks")
    _check_binary(truth, "truth")
    return masks, truth


def _mean_over_valid(per_instance: torch.Tensor) -> float:
    valid = ~torch.isnan(per_instance)
    if not bool(valid.any()):
        return float("nan")
    return float(per_instance[valid].mean())


def true_positive_rate_per_instance(masks: ArrayLike, truth: ArrayLike) -> torch.Tensor:
    """
    Per-instance true positive rate ``|sel ∩ true| / |true|``.

    Parameters
    ----------
    masks : torch.Tensor or numpy.ndarray
        Binary selections of shape ``(N, D)`` or ``(S, N, D)``.
    truth : torch.Tensor or numpy.ndarray
        Binary ground-truth masks of shape ``(N, D)``.

    Returns
    -------
    torch.Tensor
        Float64 tensor of shape ``(N,)``: the TPR averaged over the ``S`` mask
        samples. Instances with an empty ground truth get NaN (TPR undefined).
    """
    masks, truth = _masks_and_truth(masks, truth)
    num_true = truth.sum(-1)
    hits = (masks * truth).sum(-1)  # (S, N)
    tpr = (hits / num_true.clamp(min=1)).mean(0)
    return torch.where(num_true > 0, tpr, torch.full_like(tpr, float("nan")))


def true_positive_rate(masks: ArrayLike, truth: ArrayLike) -> float:
    """
    True positive rate (recall of the ground-truth features).

    Per instance ``|sel ∩ true| / |true|``, averaged over mask samples then
    over instances. Instances with an empty ground truth are excluded from
    the average; if every instance has an empty ground truth, NaN is returned.

    Parameters
    ----------
    masks : torch.Tensor or numpy.ndarray
        Binary selections of shape ``(N, D)`` or ``(S, N, D)``.
    truth : torch.Tensor or numpy.ndarray
        Binary ground-truth masks of shape ``(N, D)``.

    Returns
    -------
    float
        Mean TPR in ``[0, 1]``.
    """
    return _mean_over_valid(true_positive_rate_per_instance(masks, truth))


def false_discovery_rate_per_instance(masks: ArrayLike, truth: ArrayLike) -> torch.Tensor:
    """
    Per-instance false discovery rate ``|sel \\ true| / |sel|``.

    An empty selection has FDR 0, as in the INVASE code.

    Parameters
    ----------
    masks : torch.Tensor or numpy.ndarray
        Binary selections of shape ``(N, D)`` or ``(S, N, D)``.
    truth : torch.Tensor or numpy.ndarray
        Binary ground-truth masks of shape ``(N, D)``.

    Returns
    -------
    torch.Tensor
        Float64 tensor of shape ``(N,)``: the FDR averaged over mask samples.
    """
    masks, truth = _masks_and_truth(masks, truth)
    false_hits = (masks * (1 - truth)).sum(-1)
    return (false_hits / masks.sum(-1).clamp(min=1)).mean(0)


def false_discovery_rate(masks: ArrayLike, truth: ArrayLike) -> float:
    """
    False discovery rate ``|sel \\ true| / |sel|``.

    Averaged over mask samples then instances; an empty selection counts as
    FDR 0 (INVASE convention).

    Parameters
    ----------
    masks : torch.Tensor or numpy.ndarray
        Binary selections of shape ``(N, D)`` or ``(S, N, D)``.
    truth : torch.Tensor or numpy.ndarray
        Binary ground-truth masks of shape ``(N, D)``.

    Returns
    -------
    float
        Mean FDR in ``[0, 1]``.
    """
    return float(false_discovery_rate_per_instance(masks, truth).mean())


def false_positive_rate_per_instance(masks: ArrayLike, truth: ArrayLike) -> torch.Tensor:
    """
    Per-instance false positive rate ``|sel \\ true| / |not true|``.

    If every feature is true (nothing can be a false positive) the FPR is 0.

    Parameters
    ----------
    masks : torch.Tensor or numpy.ndarray
        Binary selections of shape ``(N, D)`` or ``(S, N, D)``.
    truth : torch.Tensor or numpy.ndarray
        Binary ground-truth masks of shape ``(N, D)``.

    Returns
    -------
    torch.Tensor
        Float64 tensor of shape ``(N,)``: the FPR averaged over mask samples.
    """
    masks, truth = _masks_and_truth(masks, truth)
    false_hits = (masks * (1 - truth)).sum(-1)
    num_false = (1 - truth).sum(-1)
    return (false_hits / num_false.clamp(min=1)).mean(0)


def false_positive_rate(masks: ArrayLike, truth: ArrayLike) -> float:
    """
    False positive rate ``|sel \\ true| / |not true|`` (LEX).

    Averaged over mask samples then instances; instances whose features are
    all true count as FPR 0.

    Parameters
    ----------
    masks : torch.Tensor or numpy.ndarray
        Binary selections of shape ``(N, D)`` or ``(S, N, D)``.
    truth : torch.Tensor or numpy.ndarray
        Binary ground-truth masks of shape ``(N, D)``.

    Returns
    -------
    float
        Mean FPR in ``[0, 1]``.
    """
    return float(false_positive_rate_per_instance(masks, truth).mean())


def control_flow_rate_per_instance(masks: ArrayLike, feature: int = 10) -> torch.Tensor:
    """
    Per-instance fraction of mask samples that select ``feature``.

    Parameters
    ----------
    masks : torch.Tensor or numpy.ndarray
        Binary selections of shape ``(N, D)`` or ``(S, N, D)``.
    feature : int
        0-based index of the control-flow feature; the default 10 is ``x11``
        of the S1--S3 datasets.

    Returns
    -------
    torch.Tensor
        Float64 tensor of shape ``(N,)`` with values in ``[0, 1]``.
    """
    masks = _as_tensor(masks, "masks")
    if masks.dim() == 2:
        masks = masks.unsqueeze(0)
    if masks.dim() != 3:
        raise ValueError(
            f"masks must have shape (N, D) or (S, N, D), got shape {tuple(masks.shape)}"
        )
    _check_binary(masks, "masks")
    dim = masks.shape[-1]
    if isinstance(feature, bool) or not isinstance(feature, (int, np.integer)):
        raise ValueError(f"feature must be an integer index, got {feature!r}")
    if not 0 <= feature < dim:
        raise ValueError(f"feature must be in [0, {dim}) for masks with D={dim}, got {feature}")
    return masks[..., int(feature)].mean(0)


def control_flow_rate(masks: ArrayLike, feature: int = 10) -> float:
    """
    Control-flow selection rate (CFSR, REAL-X).

    The fraction of (mask sample, instance) pairs whose selection includes
    ``feature``, as a fraction in ``[0, 1]`` (REAL-X reports percentages).

    Parameters
    ----------
    masks : torch.Tensor or numpy.ndarray
        Binary selections of shape ``(N, D)`` or ``(S, N, D)``.
    feature : int
        0-based index of the control-flow feature; the default 10 is ``x11``
        of the S1--S3 datasets.

    Returns
    -------
    float
        The selection rate of ``feature``.
    """
    return float(control_flow_rate_per_instance(masks, feature).mean())


def median_rank_per_instance(importance: ArrayLike, truth: ArrayLike) -> torch.Tensor:
    """
    Per-instance median rank of the ground-truth features (L2X).

    Features are ranked by decreasing importance, rank 1 being the most
    important; tied features share their average rank (the L2X code breaks
    ties at random instead). Pass absolute values if scores are signed, as
    L2X ranks by ``|score|``.

    Parameters
    ----------
    importance : torch.Tensor or numpy.ndarray
        Real feature scores of shape ``(N, D)``.
    truth : torch.Tensor or numpy.ndarray
        Binary ground-truth masks of shape ``(N, D)``.

    Returns
    -------
    torch.Tensor
        Float64 tensor of shape ``(N,)``; NaN for instances with an empty
        ground truth.
    """
    importance = _as_tensor(importance, "importance")
    truth = _as_tensor(truth, "truth")
    if importance.dim() != 2 or importance.shape != truth.shape:
        raise ValueError(
            f"importance and truth must both have shape (N, D), got "
            f"{tuple(importance.shape)} and {tuple(truth.shape)}"
        )
    _check_binary(truth, "truth")
    # Average descending rank of v: #{> v} + (#{== v} + 1) / 2, counted on the sorted row.
    ascending = importance.sort(-1).values
    below_or_equal = torch.searchsorted(ascending, importance, right=True)
    below = torch.searchsorted(ascending, importance, right=False)
    ranks = (importance.shape[-1] - below_or_equal + (below_or_equal - below + 1) / 2).double()
    # Median of the true features' ranks: sort them first, non-true ranks pushed to +inf.
    num_true = truth.sum(-1).long()
    true_ranks = torch.where(truth.bool(), ranks, torch.full_like(ranks, float("inf")))
    true_ranks = true_ranks.sort(-1).values
    lower = ((num_true - 1).clamp(min=0) // 2).unsqueeze(-1)
    upper = (num_true // 2).clamp(max=truth.shape[-1] - 1).unsqueeze(-1)
    median = (true_ranks.gather(-1, lower) + true_ranks.gather(-1, upper)).squeeze(-1) / 2
    return torch.where(num_true > 0, median, torch.full_like(median, float("nan")))


def median_rank(importance: ArrayLike, truth: ArrayLike) -> float:
    """
    Median rank of the ground-truth features, averaged over instances (L2X).

    See :func:`median_rank_per_instance` for the ranking convention. The
    optimum is the median of ``1..k`` for ``k`` true features, e.g. 1.5 for
    XOR and 3.0 for switch. Instances with an empty ground truth are excluded;
    NaN is returned if no instance remains.

    Parameters
    ----------
    importance : torch.Tensor or numpy.ndarray
        Real feature scores of shape ``(N, D)``.
    truth : torch.Tensor or numpy.ndarray
        Binary ground-truth masks of shape ``(N, D)``.

    Returns
    -------
    float
        Mean over instances of the median true-feature rank; lower is better.
    """
    return _mean_over_valid(median_rank_per_instance(importance, truth))
