"""Scoring a fitted explainer against ground-truth selections (the LEX paper's protocol)."""

from __future__ import annotations

import numpy as np
import pyro
import torch

from lexppl import data as lexdata
from lexppl.explainer import LEXExplainer
from lexppl.metrics import (
    accuracy,
    auroc,
    control_flow_rate,
    false_discovery_rate,
    false_positive_rate,
    median_rank,
    true_positive_rate,
)

__all__ = ["evaluate_explainer", "evaluate_with_masks", "masked_probabilities"]

#: Number of input features of the switching datasets S1-S3, whose ``x11`` is a control-flow
#: feature (0-based index 10).
_SWITCHING_DIM, _CONTROL_FEATURE = 11, 10

#: Instances x mask samples pushed through the predictor at once during evaluation.
_EVAL_ROWS = 200_000


def masked_probabilities(
    explainer: LEXExplainer, x: torch.Tensor, masks: torch.Tensor
) -> torch.Tensor:
    """Class probabilities ``(S, n, C)`` of the predictor given each of the masks ``(S, n, D)``,
    averaged over the explainer's ``num_imputations`` imputations per mask."""
    model = explainer.model_
    num_masks = masks.shape[0]
    conditioned = pyro.poutine.condition(model.model, data={model.site("mask"): masks})
    trace = pyro.poutine.trace(conditioned).get_trace(
        x, None, num_masks=num_masks, num_imputations=explainer.num_imputations
    )
    fn = trace.nodes[model.site("y")]["fn"]
    if not hasattr(fn, "probs"):
        raise ValueError("evaluation needs a classification model with class probabilities.")
    probs = fn.probs
    if probs.dim() == 2:  # (n, C): a single mask, the particle plate was left out
        probs = probs.unsqueeze(0)
    return probs.reshape(-1, num_masks, *probs.shape[-2:]).mean(0)


def evaluate_explainer(
    explainer: LEXExplainer,
    dataset: lexdata.MaskedDataset,
    num_samples: int = 100,
    seed: int = 0,
) -> dict[str, float]:
    """
    Score a fitted explainer on a dataset with ground-truth selections.

    For every instance ``num_samples`` masks are drawn from :math:`p_\\gamma(z|x)` (100 in the
    LEX paper). The selection metrics (TPR, FDR, FPR and, on S1-S3, the control-flow rate of
    ``x11``) average over these masks; ACC and AUROC score the predictor given each sampled mask
    (``poutine.condition`` on the mask site), averaged over masks; the median rank uses the
    importance map :math:`\\mathbb E[Z|x]`.

    :param LEXExplainer explainer: a fitted classifier-explainer.
    :param MaskedDataset dataset: inputs, labels and ground-truth masks.
    :param int num_samples: mask samples per instance.
    :param int seed: seeds Pyro's (and torch's) random state for the mask draws.
    :returns: fractions in ``[0, 1]`` keyed ``acc, auroc, tpr, fdr, fpr, control_flow_rate``
        (only for 11-feature datasets) and the raw ``median_rank``, plus ``n`` and
        ``num_samples``.
    :raises ValueError: if the dataset does not fit the explainer.
    """
    return evaluate_with_masks(explainer, dataset, num_samples, seed)[0]


@torch.no_grad()
def evaluate_with_masks(
    explainer: LEXExplainer, dataset: lexdata.MaskedDataset, num_samples: int, seed: int
) -> tuple[dict[str, float], torch.Tensor]:
    """:func:`evaluate_explainer`, also returning the sampled masks ``(S, N, D)`` it scored."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an int >= 1; got {num_samples!r}.")
    if explainer.task != "classification":
        raise ValueError("evaluate needs a classification explainer (task='classification').")
    if dataset.num_features != explainer.n_features_in_:
        raise ValueError(
            f"dataset {dataset.name!r} has {dataset.num_features} features but the model was "
            f"trained on {explainer.n_features_in_}."
        )
    pyro.set_rng_seed(seed)
    explainer.model_.eval()
    device = explainer.device
    chunk = max(1, _EVAL_ROWS // num_samples)
    all_masks, all_probs = [], []
    for begin in range(0, len(dataset), chunk):
        x = dataset.x[begin : begin + chunk].to(device)
        masks = explainer.model_.explain(x, num_samples)
        all_probs.append(masked_probabilities(explainer, x, masks).cpu())
        all_masks.append(masks.cpu())
    masks = torch.cat(all_masks, dim=1)
    probs = torch.cat(all_probs, dim=1)
    # Matched in numpy: classes_ are whatever labels the explainer was fitted with (strings
    # too), which torch cannot hold; classes_ is sorted (np.unique), as searchsorted needs.
    classes, labels = np.asarray(explainer.classes_), dataset.y.cpu().numpy()
    if not np.isin(labels, classes).all():
        raise ValueError(
            f"dataset {dataset.name!r} has labels the model never saw (model classes: "
            f"{classes.tolist()}; dataset labels: {np.unique(labels).tolist()})."
        )
    y = torch.as_tensor(np.searchsorted(classes, labels))
    truth = dataset.truth
    importance = torch.as_tensor(explainer.explain(dataset.x))
    metrics = {
        "n": len(dataset),
        "num_samples": num_samples,
        "acc": accuracy(probs, y),
        "auroc": auroc(probs, y) if len(np.unique(y.numpy())) > 1 else float("nan"),
        "tpr": true_positive_rate(masks, truth),
        "fdr": false_discovery_rate(masks, truth),
        "fpr": false_positive_rate(masks, truth),
    }
    if dataset.num_features == _SWITCHING_DIM:
        metrics["control_flow_rate"] = control_flow_rate(masks, feature=_CONTROL_FEATURE)
    metrics["median_rank"] = median_rank(importance, truth)
    return metrics, masks
