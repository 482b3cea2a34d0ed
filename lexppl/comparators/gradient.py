"""
Gradient attributions through Captum: gradient × input and saliency.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lexppl.comparators.base import Comparator, TargetType, optional_import, resolve_targets
from lexppl.inputs import as_inputs
from lexppl.nets import eval_mode, module_device, module_dtype

__all__ = ["InputXGradient", "Saliency"]


class _Gradient(Comparator):
    _captum_class = ""

    def __init__(self, model: nn.Module, device: str | torch.device | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(
                f"{type(self).__name__} differentiates the model, so it must be a torch module; "
                f"got {type(model).__name__}."
            )
        captum_attr = optional_import("captum.attr", type(self).__name__)
        self.model = model
        # Default: where the model's weights are.
        self.device = module_device(model, torch.device("cpu")) if device is None else device
        self.device = torch.device(self.device)
        self._method = getattr(captum_attr, self._captum_class)(model)

    def attribute(self, x: Tensor, target: TargetType = None) -> Tensor:
        """Attributions of inputs ``x`` ``(N, ...)`` for class ``target`` (int, ``(N,)``
        tensor, or None for the class of largest model output), same shape as ``x``."""
        name = type(self).__name__
        x = as_inputs(x, f"{name}: x", finite=False)  # checked below, after shape
        if x.dim() < 2 or x.shape[0] == 0:
            raise ValueError(f"{name}: x must have shape (N, ...) with N >= 1; got {x.shape}.")
        x = x.detach().to(self.device, module_dtype(self.model, torch.float32))
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name}: x contains NaN or infinite values.")
        # In eval mode, as the other comparators query the model: in training mode batch norm
        # would update its statistics and make each row's scores depend on the rest of the batch.
        with eval_mode(self.model):
            with torch.no_grad():
                outputs = self.model(x)
            if outputs.dim() != 2 or outputs.shape[0] != x.shape[0]:
                raise ValueError(
                    f"{name}: the model must return outputs of shape (N, C); got {outputs.shape}."
                )
            targets = resolve_targets(target, outputs, name).to(self.device)
            scores = self._method.attribute(x.clone().requires_grad_(True), target=targets)
        return scores.detach()


class InputXGradient(_Gradient):
    r"""
    Gradient × input (Shrikumar et al., 2016; "Taylor" in L2X, "GI" in AIL):

    .. math:: a_d(x) = x_d \, \frac{\partial f_c(x)}{\partial x_d},

    where :math:`f_c` is the model's output for the explained class :math:`c` (logits or
    probabilities, whatever the module returns). Computed by Captum's ``InputXGradient``. For a
    linear model :math:`f_c(x) = w_c^\top x + b_c` it is :math:`w_c \odot x`, the exact Shapley
    values with a zero baseline.

    :param torch.nn.Module model: differentiable model ``(N, D) -> (N, C)``.
    :param device: where the inputs are sent; default the model's device.

    Example::

        scores = InputXGradient(model).attribute(x)   # (N, D)
        masks = InputXGradient(model).select(x, k=5)  # (N, D), 5 ones per row
    """

    _captum_class = "InputXGradient"


class Saliency(_Gradient):
    r"""
    Saliency (Simonyan et al., 2014): the absolute gradient of the explained class's output,

    .. math:: a_d(x) = \left| \frac{\partial f_c(x)}{\partial x_d} \right|,

    computed by Captum's ``Saliency`` (``abs=True``). Scores are non-negative.

    :param torch.nn.Module model: differentiable model ``(N, D) -> (N, C)``.
    :param device: where the inputs are sent; default the model's device.
    """

    _captum_class = "Saliency"
    signed = False
