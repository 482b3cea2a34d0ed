"""
LIME on tabular data through the ``lime`` package.
"""

from __future__ import annotations

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
    optional_import,
    resolve_targets,
)

__all__ = ["LIME"]


class LIME(Comparator):
    r"""
    LIME (Ribeiro, Singh & Guestrin, KDD 2016) for tabular classifiers, through
    ``lime.lime_tabular.LimeTabularExplainer``.

    For an instance :math:`x` and class :math:`c`, LIME draws ``num_samples`` perturbations
    :math:`x'` around :math:`x` from statistics of ``training_data``, maps them to interpretable
    binary features :math:`z'` (by default: whether each feature falls in the same quartile as
    :math:`x_d`, ``discretize_continuous=True``) and fits the weighted ridge regression of paper
    eq. (2),

    .. math:: \min_g \sum_{x'} \pi_x(x') \big(f_c(x') - g(z')\big)^2, \qquad
        \pi_x(x') = \sqrt{\exp(-\lVert u - u' \rVert^2 / \sigma^2)},

    where :math:`u, u'` are the standardised rows and :math:`\sigma` = ``kernel_width``
    (default :math:`0.75 \sqrt D`), ``lime``'s default kernel. The score of feature :math:`d`
    is its coefficient in :math:`g`; rank by absolute value.

    :param black_box: a torch module or a callable on numpy arrays ``(n, D)`` returning class
        probabilities ``(n, C)`` (e.g. an sklearn ``predict_proba``).
    :param training_data: array ``(n, D)`` whose statistics (means, standard deviations,
        quartiles) LIME samples from.
    :param int num_samples: perturbations per explained instance (``lime``'s default 5000).
    :param kernel_width: :math:`\sigma` above; None for ``lime``'s default.
    :param bool discretize_continuous: quartile interpretable features (``lime``'s default);
        False regresses on standardised features instead.
    :param int seed: seeds LIME's sampling, afresh for every row: a row's explanation does not
        depend on the rows explained before it.
    :param device: where a torch black box without weights runs (one with weights runs
        where they are).

    Example::

        lime = LIME(model, train.x)
        scores = lime.attribute(test.x[:10])  # (10, D)
    """

    def __init__(
        self,
        black_box: BlackBox,
        training_data: Tensor | np.ndarray,
        num_samples: int = 5000,
        kernel_width: float | None = None,
        discretize_continuous: bool = True,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        lime_tabular = optional_import("lime.lime_tabular", "LIME")
        data = check_inputs(training_data, None, "LIME").cpu().double().numpy()
        num_samples = check_int(num_samples, "num_samples", 2, "LIME")
        if kernel_width is not None and not kernel_width > 0:
            raise ValueError(f"LIME: kernel_width must be > 0; got {kernel_width!r}.")
        self.num_features = data.shape[1]
        self.num_samples, self.seed = num_samples, seed
        self.predict = numpy_predictor(black_box, device, probabilities=True, who="LIME")
        self._explainer = lime_tabular.LimeTabularExplainer(
            data,
            mode="classification",
            kernel_width=kernel_width,
            feature_selection="none",
            discretize_continuous=discretize_continuous,
            random_state=seed,
        )

    def attribute(self, x: Tensor, target: TargetType = None) -> Tensor:
        """LIME coefficients ``(N, D)`` of inputs ``x`` ``(N, D)`` for class ``target``
        (int, ``(N,)`` tensor, or None for the predicted class); one local regression per row."""
        x = check_inputs(x, self.num_features, "LIME")
        device, x = x.device, x.cpu().double().numpy()
        targets = resolve_targets(target, self.predict(x), "LIME").tolist()
        scores = np.zeros(x.shape)
        for i, (row, label) in enumerate(zip(x, targets)):
            # Each row's perturbations from the seed itself, not from wherever earlier rows and
            # calls left the generator: an explanation then depends on its input only (what
            # max-sensitivity assumes). lime's discretizer and regression share this RandomState.
            if isinstance(self.seed, (int, np.integer)):  # not numpy's global generator (None)
                self._explainer.random_state.seed(int(self.seed))
            explanation = self._explainer.explain_instance(
                row,
                self.predict,
                labels=(label,),
                num_features=self.num_features,
                num_samples=self.num_samples,
            )
            for feature, weight in explanation.local_exp[label]:
                scores[i, feature] = weight
        return torch.as_tensor(scores, dtype=torch.float32, device=device)
