"""
Post-hoc comparators: feature-attribution methods that LEX is compared with.

Each is a class built from the model it explains, with Captum's calling convention
``attribute(x, target=None) -> (N, D)`` scores and ``select(x, k, target=None) -> (N, D)``
top-k binary masks for :mod:`lexppl.metrics.selection` (:func:`top_k_selection`):

- :class:`LIME` (``lime``) and :class:`KernelSHAP` (``shap``): model-agnostic, one local
  regression per instance;
- :class:`FastSHAP`: an amortised Shapley-value explainer trained in torch;
- :class:`SENN`: a self-explaining network (identity concepts), trained on labels or to mimic a
  black box;
- :class:`InputXGradient` and :class:`Saliency` (``captum``): gradients of a torch model.

``lime``, ``shap`` and ``captum`` are the optional extra ``pip install 'lexppl[comparators]'``;
they are imported only when a class that needs them is built.
"""

from lexppl.comparators.base import Comparator, top_k_selection
from lexppl.comparators.fastshap import FastSHAP, shapley_kernel_size_probs
from lexppl.comparators.gradient import InputXGradient, Saliency
from lexppl.comparators.kernel_shap import KernelSHAP
from lexppl.comparators.lime import LIME
from lexppl.comparators.senn import SENN

__all__ = [
    "LIME",
    "SENN",
    "Comparator",
    "FastSHAP",
    "InputXGradient",
    "KernelSHAP",
    "Saliency",
    "shapley_kernel_size_probs",
    "top_k_selection",
]
