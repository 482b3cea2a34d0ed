"""
The calling convention shared by the post-hoc comparators, and the step from feature scores to
a top-k selection.

Every comparator is built from the model it explains and has Captum's calling convention:
``attribute(x, target=None)`` returns one real score per feature, shape ``(N, D)`` for inputs
``(N, D)``. ``target`` is the explained class: an int, an ``(N,)`` tensor of class indices, or
``None`` for the class the model predicts for each row (the "selected class" of L2X and AIL).
:meth:`Comparator.select` keeps the ``k`` features of largest absolute score, as a binary mask
``(N, D)`` that the selection metrics of :mod:`lexppl.metrics.selection` (TPR, FDR, ...) take,
the same layout as :meth:`lexppl.LEXExplainer.select`.
"""

from __future__ import annotations

import contextlib
import importlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lexppl.distributions.relaxed import hard_topk
from lexppl.inputs import as_inputs
from lexppl.nets import eval_mode, module_device, module_dtype

__all__ = ["Comparator", "top_k_selection"]

#: A black box: a torch module, or any callable mapping a numpy array (n, D) to outputs (n, C).
BlackBox = nn.Module | Callable[[np.ndarray], Any]
TargetType = int | Tensor | np.ndarray | None

EXTRA = "comparators"


def optional_import(module: str, method: str) -> Any:
    """Import ``module`` of the optional ``comparators`` extra, or raise an ImportError that
    names the extra. Warnings raised while importing (e.g. a dependency's deprecations) are not
    the caller's concern and are silenced."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except ImportError as error:
        package = module.split(".")[0]
        raise ImportError(
            f"{method} needs the optional package {package!r}: "
            f"pip install 'lexppl[{EXTRA}]' (or pip install {package})."
        ) from error


def top_k_selection(scores: Tensor | np.ndarray, k: int, absolute: bool = True) -> Tensor:
    """
    The binary mask of the ``k`` features of largest score in each row.

    :param scores: feature scores ``(N, D)`` (or ``(N, ...)``, flattened to ``(N, D)``).
    :param int k: features kept per row, ``1 <= k <= D``.
    :param bool absolute: rank by ``|score|`` (signed attributions such as SHAP values, LIME
        weights and gradient × input, the convention of L2X's median rank) rather than by the
        signed score.
    :returns: float tensor ``(N, D)`` with exactly ``k`` ones per row. Ties are broken by
        :func:`torch.topk`.
    """
    scores = torch.as_tensor(scores)
    if scores.dim() < 2 or scores.shape[0] == 0:
        raise ValueError(f"scores must have shape (N, D) with N >= 1; got {tuple(scores.shape)}.")
    scores = scores.detach().reshape(scores.shape[0], -1).to(torch.float64)
    if bool(torch.isnan(scores).any()):
        raise ValueError("scores contain NaN values.")
    dim = scores.shape[1]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= dim:
        raise ValueError(f"k must be an int with 1 <= k <= D = {dim}; got {k!r}.")
    return hard_topk(scores.abs() if absolute else scores, int(k)).float()


def check_inputs(x: Tensor | np.ndarray, num_features: int | None, who: str) -> Tensor:
    """``x`` as a float32 tensor ``(N, D)``, or a ValueError naming what is wrong with it."""
    x = as_inputs(x, f"{who}: x", finite=False).detach().float()  # checked below, after shape
    if x.dim() != 2:
        raise ValueError(f"{who}: x must have shape (N, D); got {tuple(x.shape)}.")
    if x.shape[0] == 0:
        raise ValueError(f"{who}: x has no rows.")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{who}: x contains NaN or infinite values.")
    if num_features is not None and x.shape[1] != num_features:
        raise ValueError(
            f"{who}: x has {x.shape[1]} features, but the explainer was built for "
            f"{num_features} features."
        )
    return x


def check_int(value: Any, name: str, low: int, who: str) -> int:
    """``value`` if it is an int ``>= low``, else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{who}: {name} must be an int >= {low}; got {value!r}.")
    return int(value)


def numpy_predictor(
    black_box: BlackBox, device: str | torch.device, probabilities: bool, who: str
) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap a torch module or a numpy callable as ``f(x: ndarray (n, D)) -> ndarray (n, C)``
    (float64), validating the output's shape, finiteness and, if ``probabilities``, that rows
    are probability vectors."""
    if not (isinstance(black_box, nn.Module) or callable(black_box)):
        raise ValueError(f"{who}: the black box must be a torch module or a callable.")
    device = module_device(black_box, torch.device(device))  # where the module's weights are
    dtype = module_dtype(black_box, torch.float32)

    def predict(x: np.ndarray) -> np.ndarray:
        if isinstance(black_box, nn.Module):
            with torch.no_grad(), eval_mode(black_box):
                out = black_box(torch.as_tensor(np.asarray(x), dtype=dtype, device=device))
            out = out.detach().cpu().numpy()
        else:
            out = black_box(x)
            out = out.detach().cpu().numpy() if isinstance(out, Tensor) else np.asarray(out)
        out = np.asarray(out, dtype=np.float64)
        if out.ndim != 2 or out.shape[0] != len(x):
            raise ValueError(
                f"{who}: the black box must return outputs of shape (n_samples, n_classes); "
                f"got {out.shape} for {len(x)} rows."
            )
        if not np.isfinite(out).all():
            raise ValueError(f"{who}: the black box returned NaN or infinite values.")
        if probabilities and not ((out >= 0).all() and np.allclose(out.sum(1), 1.0, atol=1e-3)):
            raise ValueError(
                f"{who}: the black box must return class probabilities (rows >= 0 summing to "
                f"1); got rows summing to {out.sum(1)[:3]}..."
            )
        return out

    return predict


def resolve_targets(target: TargetType, predictions: Tensor | np.ndarray, who: str) -> Tensor:
    """Class indices ``(N,)``: ``target`` broadcast to the rows, or the predicted class (argmax
    of ``predictions`` ``(N, C)``) where ``target`` is None."""
    predictions = torch.as_tensor(
        np.asarray(predictions) if not isinstance(predictions, Tensor) else predictions
    )
    n, num_classes = predictions.shape
    if target is None:
        return predictions.argmax(-1).cpu().long()
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        targets = torch.full((n,), int(target), dtype=torch.long)
    else:
        targets = torch.as_tensor(np.asarray(target) if not isinstance(target, Tensor) else target)
        if targets.dtype.is_floating_point or targets.dtype == torch.bool:
            raise ValueError(f"{who}: target must hold integer class indices; got {targets.dtype}.")
        if targets.shape != (n,):
            raise ValueError(
                f"{who}: target must be an int or have shape ({n},); got {tuple(targets.shape)}."
            )
        targets = targets.cpu().long()
    if bool(((targets < 0) | (targets >= num_classes)).any()):
        raise ValueError(f"{who}: target must be in [0, {num_classes}); got {targets.unique()}.")
    return targets


@contextlib.contextmanager
def numpy_seed(seed: int | None) -> Iterator[None]:
    """Seed numpy's global generator inside the block (for packages that draw from it, such as
    shap) and restore the caller's state afterwards."""
    if seed is None:
        yield
        return
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


class Comparator:
    """
    Base class of the post-hoc comparators: a feature-attribution method built from the model
    it explains.

    Subclasses implement :meth:`attribute`; :meth:`select` turns its scores into top-k masks.
    """

    #: Whether :meth:`select` ranks by absolute score (signed attributions) by default.
    signed: bool = True

    def attribute(self, x: Tensor, target: TargetType = None) -> Tensor:
        """Feature scores ``(N, D)`` of inputs ``x`` ``(N, D)`` for class ``target`` (int,
        ``(N,)`` tensor, or None for the predicted class)."""
        raise NotImplementedError(f"attribute is not implemented for {type(self).__name__}")

    def select(self, x: Tensor, k: int, target: TargetType = None) -> Tensor:
        """The ``k`` features of largest score (largest ``|score|`` for signed attributions)
        as a binary mask ``(N, D)``, e.g. for :func:`lexppl.metrics.true_positive_rate`."""
        return top_k_selection(self.attribute(x, target), k, absolute=self.signed)
