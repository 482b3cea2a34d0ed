"""
KernelSHAP through the ``shap`` package.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch
from torch import Tensor

from lexppl.comparators.base import (
    BlackBox,
    Comparator,
    TargetType,
    check_inputs,
    check_int,
    numpy_predictor,
    numpy_seed,
    optional_import,
    resolve_targets,
)

__all__ = ["KernelSHAP"]

SUMMARIES = ("kmeans", "sample")


class KernelSHAP(Comparator):
    r"""
    KernelSHAP (Lundberg & Lee, NeurIPS 2017, Theorem 2) through ``shap.KernelExplainer``.

    The SHAP values :math:`\phi(x)` of class :math:`c` solve the weighted least squares

    .. math:: \min_\phi \sum_{s \subseteq [D]} \pi(s)
        \big(v_x(s) - v_x(\emptyset) - \textstyle\sum_{d \in s} \phi_d\big)^2,
        \qquad \pi(s) = \frac{D - 1}{\binom{D}{|s|}\, |s| \, (D - |s|)},

    under efficiency :math:`\sum_d \phi_d = v_x([D]) - v_x(\emptyset)`, with the value
    :math:`v_x(s) = \mathbb E_{b}\, f_c(x_s, b_{\bar s})` averaged over background rows
    :math:`b` (features out of :math:`s` take the background's values). ``shap`` evaluates
    ``nsamples`` coalitions :math:`s` per instance, each on every background row, so one
    explanation costs ``nsamples × len(background)`` model evaluations. With ``nsamples``
    ``"auto"`` (:math:`2D + 2048`) and :math:`D \le 11` every coalition is enumerated and the
    values are exact for the background distribution.

    :param black_box: a torch module or a callable on numpy arrays ``(n, D)``, returning
        outputs ``(n, C)`` (class probabilities, or logits: SHAP explains whatever it returns).
    :param background: array ``(n, D)`` of reference rows.
    :param int num_background: rows kept from ``background`` (the cost grows linearly with
        it): summarised by ``num_background`` weighted k-means centres (``shap.kmeans``,
        ``summary="kmeans"``) or drawn at random (``summary="sample"``). A background with
        at most ``num_background`` rows is used whole.
    :param str summary: ``"kmeans"`` or ``"sample"``.
    :param nsamples: coalitions per instance, an int or ``"auto"``.
    :param l1_reg: ``shap``'s feature pre-selection before the regression: ``False`` (the
        default here) keeps every feature; ``"num_features(10)"`` (``shap``'s default) would
        zero the attributions of all but 10 features.
    :param int seed: seeds ``shap``'s coalition sampling, afresh for every row, and the
        ``"sample"`` summary (numpy's global state is restored afterwards).
    :param device: where a torch black box without weights runs (one with weights runs
        where they are).

    Example::

        shap = KernelSHAP(model, train.x)
        masks = shap.select(test.x[:10], k=5)  # (10, D)
    """

    def __init__(
        self,
        black_box: BlackBox,
        background: Tensor | np.ndarray,
        num_background: int = 10,
        summary: str = "kmeans",
        nsamples: int | str = "auto",
        l1_reg: bool | str | float = False,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        shap = optional_import("shap", "KernelSHAP")
        data = check_inputs(background, None, "KernelSHAP").cpu().double().numpy()
        if summary not in SUMMARIES:
            raise ValueError(
                f"KernelSHAP: unknown summary {summary!r}; valid choices are {list(SUMMARIES)}."
            )
        num_background = check_int(num_background, "num_background", 1, "KernelSHAP")
        if nsamples != "auto":
            nsamples = check_int(nsamples, "nsamples (or 'auto')", 1, "KernelSHAP")
        self.num_features = data.shape[1]
        self.nsamples, self.l1_reg, self.seed = nsamples, l1_reg, seed
        self.predict = numpy_predictor(black_box, device, probabilities=False, who="KernelSHAP")
        if len(data) > num_background and summary == "kmeans":
            data = shap.kmeans(data, num_background)
        elif len(data) > num_background:
            rows = np.random.default_rng(seed).choice(len(data), num_background, replace=False)
            data = data[np.sort(rows)]
        # shap prints its own line to stdout before re-raising a failing model's error; the
        # error (ours, naming the problem) is what the user should see.
        with contextlib.redirect_stdout(io.StringIO()):
            self._explainer = shap.KernelExplainer(self.predict, data)

    def _shap_values(self, row: np.ndarray) -> np.ndarray:
        """SHAP values ``(D, C)`` of one row ``(1, D)``."""
        with numpy_seed(self.seed):
            values = self._explainer.shap_values(
                row, nsamples=self.nsamples, l1_reg=self.l1_reg, silent=True
            )
        if isinstance(values, list):  # shap < 0.45: one array per output
            values = np.stack(values, axis=-1)
        return np.asarray(values).reshape(self.num_features, -1)

    def attribute(self, x: Tensor, target: TargetType = None) -> Tensor:
        """SHAP values ``(N, D)`` of inputs ``x`` ``(N, D)`` for class ``target`` (int,
        ``(N,)`` tensor, or None for the class of largest output)."""
        x = check_inputs(x, self.num_features, "KernelSHAP")
        device, x = x.device, x.cpu().double().numpy()
        targets = resolve_targets(target, self.predict(x), "KernelSHAP")
        # One call per row, each seeded alike: a row's coalitions then do not depend on its
        # place in the batch or on earlier calls (shap explains row by row anyway).
        values = np.stack([self._shap_values(row[None]) for row in x])  # (N, D, C)
        scores = values[np.arange(x.shape[0]), :, targets.cpu().numpy()]
        return torch.as_tensor(scores, dtype=torch.float32, device=device)
