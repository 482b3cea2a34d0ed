"""
Self-explaining neural networks with identity concepts, for tabular inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from lexppl.comparators.base import (
    BlackBox,
    Comparator,
    TargetType,
    check_inputs,
    check_int,
    numpy_predictor,
    resolve_targets,
)
from lexppl.imputers.base import NotFittedError
from lexppl.nets import MLP, torch_seed
from lexppl.numerics import flush_denormals

__all__ = ["SENN"]


class SENN(nn.Module, Comparator):
    r"""
    A self-explaining neural network (Alvarez-Melis & Jaakkola, NeurIPS 2018) whose concepts
    are the input features themselves (:math:`h(x) = x`, the paper's choice for tabular data)
    and, by default, a constant concept :math:`h_{D+1}(x) = 1` (the authors' code appends it),
    with the sum as aggregation:

    .. math:: f(x)_c = \sum_{d=1}^D \theta(x)_{d,c}\, x_d + \theta(x)_{D+1,c},

    with :math:`\theta(x) \in \mathbb R^{(D+1) \times C}` given by a network (the
    "parametriser"). Without the constant concept :math:`f(0) = 0` for every class, so the
    relevances would have to absorb the explained model's intercepts. The relevance of feature
    :math:`d` for class :math:`c` is :math:`\theta(x)_{d,c}`; the constant is not a feature and
    is left out of :meth:`attribute`. Training minimises the classification loss plus the
    paper's robustness loss,

    .. math:: \lambda \sum_c \big\lVert \nabla_x f(x)_c - \theta(x)_{1:D,c} \big\rVert^2,

    (:math:`J^h_x = [I; 0]` for identity concepts and a constant), which makes :math:`\theta`
    locally the gradient of :math:`f`, i.e. :math:`f` locally linear with coefficients
    :math:`\theta`. Trained on labels it is a self-explaining classifier; trained on a black
    box's class probabilities (soft targets) it is a post-hoc surrogate whose relevances explain
    that black box.

    :param int num_features: ``D``. :param int num_classes: ``C``.
    :param hidden: hidden sizes of the parametriser :math:`\theta` (an :class:`~lexppl.nets.MLP`).
    :param float robustness: :math:`\lambda` (the paper explores :math:`10^{-4}` to 1).
    :param device: where the network trains and runs.
    :param bool add_bias: add the constant concept (``False``: the networks of lexppl before
        0.2, whose saved weights load only so).

    Example::

        senn = SENN(11, 2).fit(train.x, black_box=model)
        relevance = senn.attribute(test.x)  # (N, 11), theta(x) of the predicted class
    """

    def __init__(
        self,
        num_features: int,
        num_classes: int,
        hidden: Sequence[int] = (200, 200),
        robustness: float = 1e-2,
        device: str | torch.device = "cpu",
        add_bias: bool = True,
    ) -> None:
        super().__init__()
        self.num_features = check_int(num_features, "num_features", 1, "SENN")
        self.num_classes = check_int(num_classes, "num_classes", 2, "SENN")
        if not robustness >= 0:
            raise ValueError(f"SENN: robustness must be >= 0; got {robustness!r}.")
        self.robustness = float(robustness)
        self.add_bias = bool(add_bias)
        self.device = torch.device(device)
        self.hidden = tuple(hidden)
        self.parametriser = self._new_parametriser()
        self.to(self.device)
        self.losses_: list[float] = []
        # A buffer, not a Python flag: a state_dict of a trained SENN loads as fitted.
        self.register_buffer("fitted_", torch.tensor(False))

    def _new_parametriser(self) -> MLP:
        num_concepts = self.num_features + self.add_bias
        return MLP(self.num_features, num_concepts * self.num_classes, self.hidden)

    def _theta(self, x: Tensor) -> Tensor:
        """:math:`\\theta(x)` of every concept, ``(N, D + add_bias, C)``."""
        return self.parametriser(x).reshape(x.shape[0], -1, self.num_classes)

    def _logits(self, theta: Tensor, x: Tensor) -> Tensor:
        logits = torch.einsum("ndc,nd->nc", theta[:, : self.num_features], x)
        return logits + theta[:, self.num_features] if self.add_bias else logits

    def relevance(self, x: Tensor) -> Tensor:
        """:math:`\\theta(x)` of the features, shape ``(N, D, C)``."""
        return self._theta(x)[:, : self.num_features]

    def forward(self, x: Tensor) -> Tensor:
        """Logits :math:`f(x)` ``(N, C)``."""
        return self._logits(self._theta(x), x)

    def _penalty(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits ``(N, C)`` and the robustness penalty (mean over rows) of inputs ``x``."""
        x = x.detach().requires_grad_(True)
        all_theta = self._theta(x)
        logits = self._logits(all_theta, x)
        theta = all_theta[:, : self.num_features]  # the constant's Jacobian row is 0
        penalty = x.new_zeros(())
        for c in range(self.num_classes):
            (grad,) = torch.autograd.grad(logits[:, c].sum(), x, create_graph=True)
            penalty = penalty + (grad - theta[..., c]).pow(2).sum(-1).mean()
        return logits, penalty

    @flush_denormals()
    def fit(
        self,
        X: Tensor | np.ndarray,
        y: Tensor | np.ndarray | None = None,
        black_box: BlackBox | None = None,
        epochs: int = 50,
        batch_size: int = 100,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        seed: int = 0,
    ) -> SENN:
        """
        Train on inputs ``X`` ``(n, D)`` with Adam: on class labels ``y`` ``(n,)``
        (cross-entropy), or on the class probabilities of ``black_box`` (a torch module or a
        numpy callable; cross-entropy to soft targets). Exactly one of them is required.

        :param int seed: seeds the parametriser's initialisation (a new one at every fit) and
            the shuffling; the caller's random generators are left as they were.
        :returns: ``self``; the mean loss of every epoch is in ``losses_``.
        """
        X = check_inputs(X, self.num_features, "SENN")
        if (y is None) == (black_box is None):
            raise ValueError("SENN.fit needs exactly one of labels y or a black_box.")
        if black_box is not None:
            predict = numpy_predictor(black_box, self.device, probabilities=True, who="SENN")
            targets = torch.as_tensor(predict(X.cpu().numpy()), dtype=torch.float32)
            if targets.shape[1] != self.num_classes:
                raise ValueError(
                    f"SENN: the black box returns {targets.shape[1]} classes; SENN was built "
                    f"for {self.num_classes}."
                )
        else:
            labels = np.asarray(y) if not isinstance(y, Tensor) else y
            if isinstance(labels, np.ndarray) and labels.dtype.kind not in "iub":
                raise ValueError(
                    f"SENN: y must hold integer class labels in [0, {self.num_classes}); got an "
                    f"array of {labels.dtype} (encode string labels, e.g. with "
                    f"sklearn.preprocessing.LabelEncoder)."
                )
            targets = torch.as_tensor(labels)
            if targets.shape != (len(X),) or targets.dtype.is_floating_point:
                raise ValueError(
                    f"SENN: y must hold integer class labels of shape ({len(X)},); got "
                    f"{tuple(targets.shape)} of {targets.dtype}."
                )
            targets = targets.long()
            if bool(((targets < 0) | (targets >= self.num_classes)).any()):
                raise ValueError(f"SENN: y must be in [0, {self.num_classes}).")
            targets = nn.functional.one_hot(targets, self.num_classes).float()
        epochs = check_int(epochs, "epochs", 1, "SENN")
        batch_size = check_int(batch_size, "batch_size", 1, "SENN")
        X, targets = X.to(self.device), targets.to(self.device)
        with torch_seed(seed, self.device):
            self._fit(X, targets, epochs, batch_size, lr, weight_decay, seed)
        self.eval()
        self.fitted_.fill_(True)
        return self

    def _fit(self, X, targets, epochs, batch_size, lr, weight_decay, seed) -> None:
        self.parametriser = self._new_parametriser().to(self.device)
        self.losses_ = []
        generator = torch.Generator().manual_seed(seed)
        optimiser = torch.optim.Adam(self.parameters(), lr=lr, weight_decay=weight_decay)
        self.train()
        for _ in range(epochs):
            total = 0.0
            permutation = torch.randperm(len(X), generator=generator).to(self.device)
            for begin in range(0, len(X), batch_size):
                index = permutation[begin : begin + batch_size]
                logits, penalty = self._penalty(X[index])
                nll = -(targets[index] * logits.log_softmax(-1)).sum(-1).mean()
                loss = nll + self.robustness * penalty
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += loss.item() * len(index)
            self.losses_.append(total / len(X))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # Weights saved before the flag existed are a trained SENN's.
        state_dict.setdefault(f"{prefix}fitted_", torch.tensor(True))
        last = [key for key in state_dict if key.startswith(f"{prefix}parametriser.")][-1:]
        rows = self.num_features * self.num_classes
        if self.add_bias and last and state_dict[last[0]].shape[0] == rows:
            raise RuntimeError(
                f"these SENN weights have no constant concept ({rows} outputs = D x C): load "
                f"them into SENN(..., add_bias=False)."
            )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _check_fitted(self) -> None:
        if not bool(self.fitted_):
            raise NotFittedError(
                "SENN is not fitted: call fit(X, y) or fit(X, black_box=...) first."
            )

    @torch.no_grad()
    def predict_proba(self, x: Tensor | np.ndarray) -> Tensor:
        """Class probabilities ``(N, C)``."""
        x = check_inputs(x, self.num_features, "SENN").to(self.device)
        self._check_fitted()
        return self(x).softmax(-1)

    @torch.no_grad()
    def attribute(self, x: Tensor, target: TargetType = None) -> Tensor:
        """Relevances :math:`\\theta(x)_{\\cdot, c}` ``(N, D)`` of class ``target`` (int,
        ``(N,)`` tensor, or None for SENN's predicted class) for inputs ``x`` ``(N, D)``."""
        x = check_inputs(x, self.num_features, "SENN").to(self.device)
        self._check_fitted()
        theta = self._theta(x)
        targets = resolve_targets(target, self._logits(theta, x), "SENN").to(self.device)
        return theta[torch.arange(len(x), device=self.device), : self.num_features, targets]
