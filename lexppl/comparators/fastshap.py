"""
FastSHAP: an amortised Shapley-value explainer trained in torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from lexppl.comparators.base import (
    BlackBox,
    Comparator,
    TargetType,
    check_inputs,
    check_int,
    resolve_targets,
)
from lexppl.imputers.base import NotFittedError
from lexppl.nets import MLP, eval_mode, module_device, module_dtype, torch_seed
from lexppl.numerics import flush_denormals

__all__ = ["FastSHAP", "shapley_kernel_size_probs"]

ValueFunction = Callable[[Tensor, Tensor], Tensor]


def shapley_kernel_size_probs(num_features: int) -> Tensor:
    r"""Probabilities of the coalition sizes :math:`m = 1, \dots, D - 1` under the Shapley
    kernel distribution :math:`p_{Sh}(s) \propto \frac{D - 1}{\binom{D}{|s|}\,|s|\,(D - |s|)}`:
    summing over the :math:`\binom{D}{m}` coalitions of size :math:`m` gives
    :math:`P(|s| = m) \propto \frac{1}{m (D - m)}`. Returns a tensor ``(D - 1,)``."""
    if num_features < 2:
        raise ValueError(f"Shapley values need at least 2 features; got {num_features}.")
    sizes = torch.arange(1, num_features, dtype=torch.float64)
    weights = 1.0 / (sizes * (num_features - sizes))
    return weights / weights.sum()


class FastSHAP(Comparator):
    r"""
    FastSHAP (Jethani, Sudarshan, Covert, Lee & Ranganath, ICLR 2022): a network
    :math:`\phi(x; \theta) \in \mathbb R^{D \times C}` trained to output the Shapley values of
    every class in one forward pass.

    The value of a coalition :math:`s \in \{0, 1\}^D` for input :math:`x` is the model's output
    with the features out of :math:`s` removed, :math:`v_x(s) \in \mathbb R^C`. By default they
    are replaced by a baseline :math:`b`: :math:`v_x(s) = f(s \odot x + (1 - s) \odot b)`; the
    paper recommends a surrogate trained on masked inputs, which ``value_function`` accepts
    (e.g. ``lambda x, s: evalx.predict_proba(x, s)`` with a fitted
    :class:`lexppl.methods.EvalX`). The explainer minimises the FastSHAP loss,

    .. math:: \mathcal L(\theta) = \mathbb E_{x}\, \mathbb E_{s \sim p_{Sh}}
        \big\lVert v_x(s) - v_x(\mathbf 0) - s^\top \phi_{\mathrm{eff}}(x; \theta) \big\rVert^2,
        \qquad p_{Sh}(s) \propto \frac{D - 1}{\binom{D}{|s|}\,|s|\,(D - |s|)},

    for :math:`0 < |s| < D`, summed over the :math:`C` outputs (the paper samples one class
    :math:`y` uniformly; summing over all of them has the same minimiser). The efficiency
    constraint :math:`\mathbf 1^\top \phi = v_x(\mathbf 1) - v_x(\mathbf 0)` is imposed by the
    additive efficient normalisation of the paper,

    .. math:: \phi_{\mathrm{eff}}(x) = \phi(x) + \tfrac 1D
        \big(v_x(\mathbf 1) - v_x(\mathbf 0) - \mathbf 1^\top \phi(x)\big),

    and each sampled :math:`s` is paired with :math:`\mathbf 1 - s` (the paper's paired
    sampling, which lowers the variance). The minimiser at each :math:`x` is the Shapley value
    vector of the game :math:`v_x` (Charnes et al., 1988; Lundberg & Lee, 2017), e.g. for a
    linear model :math:`f(x) = Wx + c` with a baseline: :math:`\phi_{d,c} = W_{c,d}(x_d - b_d)`.

    :param model: the model explained: a torch module ``(N, D) -> (N, C)``, or a callable on
        numpy arrays ``(n, D)`` returning ``(n, C)`` (e.g. an sklearn ``predict_proba``).
    :param int num_features: ``D``.
    :param explainer: network ``(N, D) -> (N, D * C)``; default an :class:`~lexppl.nets.MLP`
        with hidden sizes ``hidden``.
    :param hidden: hidden sizes of the default explainer.
    :param baseline: float or tensor ``(D,)`` replacing removed features (default 0, the
        feature mean of standardised data).
    :param value_function: ``(x (N, D), s (N, D)) -> (N, C)`` replacing the baseline removal.
    :param device: where the explainer trains and runs.

    Example::

        fastshap = FastSHAP(model, num_features=11).fit(train.x, epochs=50)
        phi = fastshap.attribute(test.x)   # (N, 11), Shapley values of the predicted class
    """

    def __init__(
        self,
        model: BlackBox,
        num_features: int,
        explainer: nn.Module | None = None,
        hidden: Sequence[int] = (200, 200),
        baseline: float | Tensor = 0.0,
        value_function: ValueFunction | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        num_features = check_int(num_features, "num_features", 2, "FastSHAP")
        if not (isinstance(model, nn.Module) or callable(model)):
            raise ValueError("FastSHAP: the model must be a torch module or a callable.")
        self.model = model
        self.num_features = num_features
        self.device = torch.device(device)
        baseline = torch.as_tensor(baseline, dtype=torch.float32)
        if baseline.dim() > 1 or baseline.numel() not in (1, num_features):
            raise ValueError(
                f"FastSHAP: baseline must be a float or have shape ({num_features},); got "
                f"{tuple(baseline.shape)}."
            )
        if not bool(torch.isfinite(baseline).all()):
            raise ValueError("FastSHAP: baseline contains NaN or infinite values.")
        self.baseline = baseline.expand(num_features).to(self.device)
        self.value_function = value_function
        self._explainer_arg, self.hidden = explainer, tuple(hidden)
        self.explainer: nn.Module | None = None
        self.num_classes: int | None = None
        self.losses_: list[float] = []

    # ------------------------------------------------------------------ value function
    def _model(self, x: Tensor) -> Tensor:
        if isinstance(self.model, nn.Module):
            with eval_mode(self.model):
                out = self.model(
                    x.to(module_device(self.model, x.device), module_dtype(self.model, x.dtype))
                )
        else:
            out = self.model(x.detach().cpu().numpy())
        if not isinstance(out, Tensor):
            try:
                out = torch.as_tensor(np.asarray(out, dtype=np.float32))
            except (TypeError, ValueError) as error:
                raise ValueError(
                    f"FastSHAP: the model must return outputs of shape (n_samples, n_classes); "
                    f"got {type(out).__name__}."
                ) from error
        return out.to(device=self.device, dtype=torch.float32)

    @torch.no_grad()
    def value(self, x: Tensor, s: Tensor) -> Tensor:
        """Values :math:`v_x(s)` ``(..., C)`` of coalitions ``s`` ``(..., D)`` for inputs ``x``
        broadcastable to ``s``."""
        x, s = torch.broadcast_tensors(x, s)
        batch = x.shape[:-1]
        x, s = x.reshape(-1, self.num_features), s.reshape(-1, self.num_features)
        if self.value_function is not None:
            out = torch.as_tensor(self.value_function(x, s)).to(self.device, torch.float32)
        else:
            out = self._model(s * x + (1 - s) * self.baseline)
        if out.dim() != 2 or out.shape[0] != x.shape[0]:
            raise ValueError(
                f"FastSHAP: the model must return outputs of shape (N, C); got {tuple(out.shape)}."
            )
        if not bool(torch.isfinite(out).all()):
            raise ValueError("FastSHAP: the model returned NaN or infinite values.")
        return out.reshape(*batch, out.shape[-1])

    # ------------------------------------------------------------------ explainer
    def _phi(self, x: Tensor, v_full: Tensor, v_empty: Tensor) -> Tensor:
        """Attributions ``(N, D, C)`` after the additive efficient normalisation."""
        raw = self.explainer(x).reshape(x.shape[0], self.num_features, self.num_classes)
        gap = v_full - v_empty - raw.sum(1)  # (N, C)
        return raw + gap.unsqueeze(1) / self.num_features

    def _sample_coalitions(self, n: int, num_samples: int, generator: torch.Generator) -> Tensor:
        """``num_samples`` coalitions ``(n, num_samples, D)`` per input from the Shapley kernel:
        a size from :func:`shapley_kernel_size_probs`, then a uniform subset of that size."""
        probs = shapley_kernel_size_probs(self.num_features)
        sizes = torch.multinomial(probs, n * num_samples, replacement=True, generator=generator)
        sizes = (sizes + 1).reshape(n, num_samples, 1)
        order = torch.rand(n, num_samples, self.num_features, generator=generator).argsort(-1)
        return (order < sizes).float()  # the first |s| features of a random permutation

    @flush_denormals()
    def fit(
        self,
        X: Tensor | np.ndarray,
        epochs: int = 50,
        batch_size: int = 256,
        num_samples: int = 16,
        paired_sampling: bool = True,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        seed: int = 0,
    ) -> FastSHAP:
        """
        Train the explainer on inputs ``X`` ``(n, D)`` with Adam.

        :param int epochs: passes over ``X``. :param int batch_size: inputs per step.
        :param int num_samples: coalitions per input per step (with ``paired_sampling``, half
            of them drawn and half their complements).
        :param float lr: Adam learning rate. :param int seed: seeds the initialisation (of a
            new explainer network at every fit, unless one was given), the shuffling and the
            coalitions; the caller's random generators are left as they were.
        :returns: ``self``; the mean loss of every epoch is in ``losses_``.
        """
        X = check_inputs(X, self.num_features, "FastSHAP").to(self.device)
        epochs = check_int(epochs, "epochs", 1, "FastSHAP")
        batch_size = check_int(batch_size, "batch_size", 1, "FastSHAP")
        num_samples = check_int(num_samples, "num_samples", 1, "FastSHAP")
        if paired_sampling and num_samples % 2:
            raise ValueError(
                f"FastSHAP: num_samples must be even with paired sampling; got {num_samples}."
            )
        with torch_seed(seed, self.device):
            self._fit(X, epochs, batch_size, num_samples, paired_sampling, lr, weight_decay, seed)
        return self

    def _fit(self, X, epochs, batch_size, num_samples, paired_sampling, lr, weight_decay, seed):
        generator = torch.Generator().manual_seed(seed)
        self.losses_ = []
        v_full_all, v_empty_all = self._ends(X)
        self.num_classes = v_full_all.shape[-1]
        out = self.num_features * self.num_classes
        self.explainer = (
            MLP(self.num_features, out, self.hidden)
            if self._explainer_arg is None
            else self._explainer_arg
        ).to(self.device)
        optimiser = torch.optim.Adam(self.explainer.parameters(), lr=lr, weight_decay=weight_decay)
        draws = num_samples // 2 if paired_sampling else num_samples
        self.explainer.train()
        for _ in range(epochs):
            total = 0.0
            permutation = torch.randperm(len(X), generator=generator).to(self.device)
            for begin in range(0, len(X), batch_size):
                index = permutation[begin : begin + batch_size]
                x, v_full, v_empty = X[index], v_full_all[index], v_empty_all[index]
                s = self._sample_coalitions(len(x), draws, generator).to(self.device)
                if paired_sampling:
                    s = torch.cat([s, 1 - s], dim=1)  # (n, num_samples, D)
                v_s = self.value(x.unsqueeze(1), s)  # (n, num_samples, C)
                phi = self._phi(x, v_full, v_empty)  # (n, D, C)
                fitted = torch.einsum("nsd,ndc->nsc", s, phi)
                loss = (v_s - v_empty.unsqueeze(1) - fitted).pow(2).sum(-1).mean()
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += loss.item() * len(x)
            self.losses_.append(total / len(X))
        self.explainer.eval()

    def _ends(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The values of the full and the empty coalitions, each ``(N, C)``."""
        ones = torch.ones(self.num_features, device=self.device)
        return self.value(x, ones), self.value(x, torch.zeros_like(ones))

    def _explain(self, x) -> tuple[Tensor, Tensor]:
        if self.explainer is None:
            raise NotFittedError("FastSHAP is not fitted: call fit(X) first.")
        x = check_inputs(x, self.num_features, "FastSHAP").to(self.device)
        v_full, v_empty = self._ends(x)
        with torch.no_grad():
            return self._phi(x, v_full, v_empty), v_full

    def shapley_values(self, x: Tensor | np.ndarray) -> Tensor:
        """Estimated Shapley values of every class, ``(N, D, C)``, for inputs ``(N, D)``."""
        return self._explain(x)[0]

    def attribute(self, x: Tensor, target: TargetType = None) -> Tensor:
        """Estimated Shapley values ``(N, D)`` of class ``target`` (int, ``(N,)`` tensor, or
        None for the class of largest output) for inputs ``x`` ``(N, D)``."""
        phi, v_full = self._explain(x)
        targets = resolve_targets(target, v_full, "FastSHAP").to(self.device)
        return phi[torch.arange(len(phi), device=self.device), :, targets]
