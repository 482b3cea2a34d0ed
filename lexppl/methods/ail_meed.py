r"""
AIL / MEED (Liang, Bai, Cao, Bai, Wang, KDD 2020) as a LEX model plus an adversarial
complement approximator (notes §2, §4.1).

AIL explains a *given* model :math:`M` post hoc. The explainer :math:`E(x, y)` sees the input
and the model's output :math:`y = M(x)` (class probabilities) and scores the features; ``k``
of them are selected by the relaxed k-subset sampler of L2X. An approximator :math:`A_s`
predicts :math:`y` from the selected features and an *adversarial* approximator :math:`A_u`
from the unselected ones; :math:`E` is trained to help :math:`A_s` and hinder :math:`A_u`
(AIL eq. 1-8).

**Mapping into LEX** (notes §4.1, AIL row; our reading):

=================================  ===================================================
AIL                                LEX piece
=================================  ===================================================
explainer :math:`E(x, M(x))`       ``model.selector``: :class:`OutputConditionedSelector`
                                   (computes :math:`M(x)` itself, so ``model`` is an
                                   ordinary LEX whose prior :math:`p_\gamma(z|x)` is
                                   :class:`~lexppl.distributions.KSubset` ``(k)`` on
                                   :math:`E`'s logits)
sampler :math:`G` (eq. 5)          ``KSubset(logits).relaxed(τ, "max_of_k")``, τ = 0.5
:math:`\tilde x_S = x \odot v`     :class:`~lexppl.imputers.ConstantImputer` ``(0)``
:math:`A_s`, :math:`\ell_s` = CE   ``model.predictor``,
                                   :class:`~lexppl.models.SoftTargetLikelihood`
:math:`\mathcal L_s` (eq. 6)       the loss of :class:`~lexppl.infer.ConcreteBound`
                                   (L = 1, ``max_of_k``) on ``model`` with soft
                                   targets :math:`M(x)`, i.e. L2X's objective
:math:`A_u`, :math:`\mathcal L_u`  :attr:`AIL.adversary` on :math:`x \odot (1 - v)`;
                                   not a LEX term (an adversary, not a likelihood)
inference: top-k of :math:`E`      ``model.mask_distribution(x).mode``
=================================  ===================================================

So the selected-feature half of AIL *is* the L2X LEX model (Surrogate Post-Hoc regime, soft
targets) with the selector conditioned on :math:`M(x)`; AIL adds the adversarial term and the
warm start, which change how :math:`E` is trained, not the model. :meth:`AIL.train` runs the
alternating updates of AIL eqs. 7-8 (per mini-batch, as the released code):

.. math::

    \min_{A_s, A_u}\ \mathcal L_s + w_u \mathcal L_u, \qquad
    \min_E\ \mathcal L_s + w_u \mathcal L_u^{adv} + w_e \mathcal L_e,

each step with a fresh relaxed mask :math:`v`, where

- ``adversarial_loss="cross_entropy"`` (IMDB, MNIST): :math:`\mathcal L_u` is the
  cross-entropy of :math:`A_u` against :math:`y` and :math:`\mathcal L_u^{adv}` the
  cross-entropy against the flipped target :math:`1 - y` (App. B.1, the relativistic-GAN
  trick; for :math:`C > 2` classes we use :math:`(1 - y) / (C - 1)`, our generalisation, so
  that it stays a distribution);
- ``adversarial_loss="sliced_wasserstein"`` (Fashion-MNIST, ImageNet):
  :math:`\mathcal L_u = \mathrm{SWD}(y, \mathrm{softmax}\,A_u)` over the mini-batch with
  ``num_projections`` random unit directions (128 and 256 in the paper), and
  :math:`\mathcal L_u^{adv} = -\mathcal L_u`;
- the **warm start** (§3.4): with a prior explanation :math:`r = \mathrm{softmax}(s(x))`
  (default :func:`gradient_x_input`, GI as in all the paper's experiments) the sampler uses
  :math:`\tilde z \propto (z^m r)^{1/(m+1)}` at epoch :math:`m = 1, 2, \dots` (eq. 12, see
  :func:`merge_prior_logits`) instead of :math:`z = \mathrm{softmax}(E(x, y))`, and
  :math:`\mathcal L_e = \mathrm{MAE}(\mathrm{sg}(\tilde z), z) / (m + 1)` (eq. 13, weight
  :math:`w_e`, 0 in every experiment but ImageNet's 1e-3).

Where paper and code disagree we follow the paper (notes §2.4, §4.5): the prior is
:math:`\mathrm{softmax}(+\mathrm{GI})` (the MNIST code uses :math:`-\mathrm{GI}`), it fades
with the epoch (the MNIST code fixes :math:`m = 1`), :math:`\ell_e` is the MAE (the code uses
a cross-entropy), and the image sampler takes the max of softmaxes (eq. 5; the code's image
sampler skips the softmax). Explanations are top-k masks of :math:`E(x, M(x))`, never the
prior-merged scores.

**References**

[1] J. Liang, B. Bai, Y. Cao, K. Bai, F. Wang, *Adversarial Infidelity Learning for Model
    Interpretation*, KDD 2020 (code: ``langlrsw/MEED``).
[2] J. Chen, L. Song, M. J. Wainwright, M. I. Jordan, *Learning to Explain*, ICML 2018.
[3] H. Senetaire, D. Garreau, J. Frellsen, P.-A. Mattei, *Explainability as statistical
    inference*, ICML 2023.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyro
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from lexppl.distributions import KSubset
from lexppl.imputers import ConstantImputer
from lexppl.infer import ConcreteBound
from lexppl.methods.presets import Method, _check_positive
from lexppl.models import PixelGrid, SoftTargetLikelihood
from lexppl.models.groups import FeatureGroups, Identity
from lexppl.models.lex import LEX
from lexppl.nets import MLP, eval_mode, module_device, module_dtype
from lexppl.numerics import flush_denormals
from lexppl.train import FitResult

__all__ = [
    "ADVERSARIAL_LOSSES",
    "AIL",
    "AILConvNet",
    "AILFitResult",
    "OutputConditionedConv",
    "OutputConditionedMLP",
    "OutputConditionedSelector",
    "ail",
    "black_box_probabilities",
    "flip_targets",
    "gradient_x_input",
    "merge_prior_logits",
    "sliced_wasserstein",
    "warm_start_weight",
]

#: The adversarial losses :math:`\ell_u` of AIL (App. B.1).
ADVERSARIAL_LOSSES = ("cross_entropy", "sliced_wasserstein")

#: Keras' Adadelta defaults (the MEED code's optimiser for images): lr 1, rho 0.95, eps 1e-7.
_OPTIMIZERS = {
    "adadelta": lambda params, lr, wd: torch.optim.Adadelta(
        params, lr=lr, rho=0.95, eps=1e-7, weight_decay=wd
    ),
    "rmsprop": lambda params, lr, wd: torch.optim.RMSprop(
        params, lr=lr, alpha=0.9, eps=1e-7, weight_decay=wd
    ),
    "adam": lambda params, lr, wd: torch.optim.Adam(params, lr=lr, weight_decay=wd),
}


# ---------------------------------------------------------------------------- black boxes
def _check_probabilities(probs: Tensor, n: int, what: str) -> None:
    valid = (
        probs.dim() == 2
        and probs.shape[0] == n
        and probs.shape[1] >= 2
        and bool(torch.isfinite(probs).all())
        and bool((probs >= 0).all())
        and bool(torch.allclose(probs.sum(1), torch.ones_like(probs[:, 0]), atol=1e-3))
    )
    if not valid:
        raise ValueError(
            f"{what} must be class probabilities of shape (n_samples={n}, n_classes >= 2) with "
            f"non-negative rows summing to 1; got shape {tuple(probs.shape)}. (A module that "
            f"returns logits must be wrapped with a softmax.)"
        )


def black_box_probabilities(black_box: Callable, x: Tensor, batch_size: int = 1000) -> Tensor:
    """
    The class probabilities :math:`M(x)` of a black box, shape ``(N, C)``, on ``x``'s device
    and in its dtype.

    :param black_box: a torch module (called in evaluation mode, under ``no_grad``, on the
        module's device and in its dtype) or any callable taking a batch ``(n, ...)`` — a
        tensor, which numpy based callables such as scikit-learn's ``predict_proba`` accept —
        and returning probabilities ``(n, C)`` (tensor or array).
    :param x: inputs ``(N, ...)``.
    :raises ValueError: if the output is not a batch of probability vectors.
    """
    if not callable(black_box):
        raise ValueError(f"black_box must be a torch module or a callable; got {black_box!r}.")
    # A module gets its inputs on its own device and in its own precision (a float64 model
    # refuses float32 data); the probabilities come back in the data's.
    device = module_device(black_box, x.device)
    dtype = module_dtype(black_box, x.dtype)
    outs = []
    with torch.no_grad(), eval_mode(black_box):
        for begin in range(0, x.shape[0], batch_size):
            chunk = x[begin : begin + batch_size]
            if isinstance(black_box, nn.Module):
                out = black_box(chunk.to(device=device, dtype=dtype))
            else:
                out = black_box(chunk.cpu())
            if not isinstance(out, Tensor):
                out = torch.as_tensor(np.asarray(out))
            outs.append(out.detach().to(device=x.device, dtype=x.dtype))
    probs = torch.cat(outs) if outs else torch.empty(0, 0)
    _check_probabilities(probs, x.shape[0], "black_box outputs")
    return probs


def gradient_x_input(
    black_box: nn.Module, x: Tensor, groups: FeatureGroups | None = None, batch_size: int = 1000
) -> Tensor:
    r"""
    Gradient × Input scores :math:`|x \odot \partial M_c(x) / \partial x|` for the black box's
    predicted class :math:`c = \arg\max M(x)` (the GI baseline of AIL §4 and its warm-start
    prior, notes §2.4), one score per mask entry.

    :param ~torch.nn.Module black_box: a torch module returning class probabilities,
        differentiable in its input (called in evaluation mode, on its device and in its dtype).
    :param x: inputs ``(N, ...)``.
    :param groups: the grouping of the mask; the scores are averaged over each group
        (:meth:`FeatureGroups.pool`) and, for groupings shared by the channels of an image
        (:class:`~lexppl.models.PatchGrid`, :class:`~lexppl.models.PixelGrid`), summed over
        the channels. ``None``: one score per feature, ``(N, x[0].numel())``.
    :returns: non-negative scores ``(N, G)``, detached, on ``x``'s device and in its dtype.
    :raises ValueError: if the black box is not a torch module or is not differentiable in its
        input (e.g. it embeds token ids).
    """
    if not isinstance(black_box, nn.Module):
        raise ValueError(
            "Gradient x Input needs the black box's gradients: black_box must be a torch "
            f"module, got {type(black_box).__name__}. Pass prior=None or your own prior."
        )
    device = module_device(black_box, x.device)
    dtype = module_dtype(black_box, x.dtype)
    scores = []
    with eval_mode(black_box):
        for begin in range(0, x.shape[0], batch_size):
            chunk = x[begin : begin + batch_size].to(device=device, dtype=dtype)
            chunk = chunk.detach().requires_grad_(True)
            with torch.enable_grad():
                probs = black_box(chunk)
                _check_probabilities(probs.detach(), chunk.shape[0], "black_box outputs")
                top = probs.gather(1, probs.detach().argmax(1, keepdim=True)).sum()
                # allow_unused: a black box that never uses x as a float (x.long() into an
                # embedding) gets the ValueError below rather than autograd's message.
                grad = None
                if top.requires_grad:
                    (grad,) = torch.autograd.grad(top, chunk, allow_unused=True)
            if grad is None:
                raise ValueError(
                    f"Gradient x Input: the black box {type(black_box).__name__} is not "
                    "differentiable in its input (its output does not depend on x through "
                    "autograd, e.g. it embeds x.long() token ids). Pass prior=None to ail() "
                    "(no warm start) or a callable prior x -> scores (N, G), e.g. gradient x "
                    "input on the black box's embeddings as the AIL paper does for text. "
                    "LEXExplainer(method='ail') uses this prior for any torch module black box; "
                    "give it a plain function instead, e.g. "
                    "black_box=lambda a: model(torch.as_tensor(a)).detach(), to train without it."
                )
            gi = _pool_scores((grad * chunk).abs().detach(), groups)
            scores.append(gi.to(device=x.device, dtype=x.dtype))
    return torch.cat(scores)


def _pool_scores(gi: Tensor, groups: FeatureGroups | None) -> Tensor:
    # Feature-level scores (n, *input_shape) to one score per mask entry, (n, G).
    if groups is None or (isinstance(groups, Identity) and groups.input_shape is None):
        return gi.flatten(1)
    pooled = groups.pool(gi)
    # PatchGrid pools only H and W and keeps the channel, (n, C, G): the channels of a pixel
    # share its mask entry, so their scores add up. Pooling before summing lets groupings with
    # an entry per channel and pixel (Identity((C, H, W))) keep their channels apart.
    if pooled.dim() > 2:
        pooled = pooled.flatten(1, -2).sum(1)
    if pooled.shape != (gi.shape[0], groups.num_groups):
        raise ValueError(
            f"{type(groups).__name__}.pool turned Gradient x Input scores of shape "
            f"{tuple(gi.shape)} into {tuple(pooled.shape)}, not (N, G) = "
            f"({gi.shape[0]}, {groups.num_groups}); pass a grouping whose input_shape is the "
            f"inputs' {tuple(gi.shape[1:])}, or prior=None."
        )
    return pooled


# ---------------------------------------------------------------------------- the AIL terms
def warm_start_weight(epoch: int) -> float:
    r"""The weight :math:`1 / (m + 1)` of the prior in the warm start at epoch :math:`m`
    (AIL eqs. 12-13): the prior's exponent in :math:`\tilde z` and the weight of
    :math:`\mathcal L_e`. :meth:`AIL.train` counts epochs from :math:`m = 1` (weight 1/2)."""
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise ValueError(f"epoch must be an int >= 0; got {epoch!r}.")
    return 1.0 / (epoch + 1)


def merge_prior_logits(logits: Tensor, log_prior: Tensor, epoch: int) -> Tensor:
    r"""
    The warm-start scores of AIL eq. 12 as logits:

    .. math::

        \tilde z_j = \frac{[z_j^m r_j]^{1/(m+1)}}{\sum_{j'} [z_{j'}^m r_{j'}]^{1/(m+1)}}
        = \mathrm{softmax}\Big(\frac{m\,\ell + \log r}{m + 1}\Big)_j,

    with :math:`z = \mathrm{softmax}(\ell)`: a geometric interpolation that starts at the prior
    (:math:`m = 0`) and tends to :math:`z` as :math:`m \to \infty`. The returned logits may be
    fed to :class:`~lexppl.distributions.KSubset` and its relaxations (shift-invariant).

    :param logits: explainer logits :math:`\ell`, ``(N, G)``.
    :param log_prior: :math:`\log r` (or prior logits), broadcastable to ``logits``.
    :param int epoch: :math:`m \ge 0`.
    """
    weight = warm_start_weight(epoch)
    return (1.0 - weight) * logits + weight * log_prior


def flip_targets(y: Tensor) -> Tensor:
    r"""The flipped soft target of AIL's adversarial cross-entropy (App. B.1): :math:`1 - y`
    for two classes; :math:`(1 - y) / (C - 1)` for :math:`C` classes (our generalisation, a
    distribution again). ``y``: probabilities ``(N, C)``."""
    if y.dim() != 2 or y.shape[1] < 2:
        raise ValueError(f"y must be class probabilities (N, C >= 2); got {tuple(y.shape)}.")
    return (1.0 - y) / (y.shape[1] - 1)


def sliced_wasserstein(
    p: Tensor, q: Tensor, num_projections: int = 128, generator: torch.Generator | None = None
) -> Tensor:
    r"""
    The sliced Wasserstein-1 distance between two batches of vectors, as AIL's :math:`\ell_u`
    for Fashion-MNIST and ImageNet (App. B.1; notes §2.2):

    .. math::

        \mathrm{SWD}(p, q) = \frac{1}{NP} \sum_{i=1}^{P} \sum_{n=1}^{N}
            \big|\mathrm{sort}(p\,\theta_i)_n - \mathrm{sort}(q\,\theta_i)_n\big|,

    with :math:`P` directions :math:`\theta_i` drawn uniformly on the unit sphere of
    :math:`\mathbb R^C` (fresh at each call).

    :param p: ``(N, C)``. :param q: ``(N, C)``.
    :param int num_projections: :math:`P`.
    :returns: a scalar tensor, differentiable in both batches.
    """
    if p.shape != q.shape or p.dim() != 2:
        raise ValueError(
            f"sliced_wasserstein needs two batches of the same shape (N, C); got "
            f"{tuple(p.shape)} and {tuple(q.shape)}."
        )
    if not isinstance(num_projections, int) or num_projections < 1:
        raise ValueError(f"num_projections must be an int >= 1; got {num_projections!r}.")
    theta = torch.randn(p.shape[1], num_projections, generator=generator).to(p)
    theta = theta / theta.norm(dim=0, keepdim=True)
    proj_p = (p @ theta).sort(dim=0).values
    proj_q = (q @ theta).sort(dim=0).values
    return (proj_p - proj_q).abs().mean()


# ---------------------------------------------------------------------------- networks
class OutputConditionedMLP(nn.Module):
    r"""
    An explainer :math:`E(x, y)` for flat inputs: an :class:`~lexppl.nets.MLP` on the
    concatenation of the flattened input and the black box's output :math:`y` (AIL conditions
    its explainer on :math:`y`; for tabular data the paper gives no architecture, so this is
    our choice).

    :param int num_features: ``D``. :param int num_classes: ``C``.
    :param int num_outputs: number of mask logits ``G`` (default ``D``).
    :param hidden: hidden layer sizes.
    Shapes: ``x (N, ...)``, ``y (N, C)`` -> logits ``(N, G)``.
    """

    def __init__(
        self,
        num_features: int,
        num_classes: int,
        num_outputs: int | None = None,
        hidden: Sequence[int] = (100, 100),
    ) -> None:
        super().__init__()
        outputs = num_features if num_outputs is None else num_outputs
        self.net = MLP(num_features + num_classes, outputs, tuple(hidden))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.net(torch.cat([x.flatten(1), y.to(x.dtype)], dim=1))


class OutputConditionedConv(nn.Module):
    r"""
    The MNIST / Fashion-MNIST explainer of AIL (Table 7): :math:`y` is mapped linearly to an
    :math:`H \times W` plane and concatenated to the image as an extra channel (App. B.1), then
    Conv(32, 3×3, same) + ReLU → Conv(64, 3×3, same) + ReLU → Conv(1, 3×3, same), one logit
    per pixel.

    :param image_shape: ``(C, H, W)``. :param int num_classes: ``C`` of :math:`y`.
    :param channels: filters of the two hidden convolutions.
    Shapes: ``x (N, C, H, W)``, ``y (N, num_classes)`` -> logits ``(N, H·W)``.
    """

    def __init__(
        self, image_shape: Sequence[int], num_classes: int, channels: Sequence[int] = (32, 64)
    ) -> None:
        super().__init__()
        image_shape = tuple(image_shape)
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W); got {image_shape}.")
        c, h, w = image_shape
        self.image_shape = image_shape
        self.embed_output = nn.Linear(num_classes, h * w)
        layers: list[nn.Module] = []
        previous = c + 1
        for width in channels:
            layers += [nn.Conv2d(previous, width, 3, padding=1), nn.ReLU()]
            previous = width
        layers.append(nn.Conv2d(previous, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        _, h, w = self.image_shape
        plane = self.embed_output(y.to(x.dtype)).reshape(-1, 1, h, w)
        return self.net(torch.cat([x, plane], dim=1)).flatten(1)


class AILConvNet(nn.Module):
    r"""
    The CNN of AIL's MNIST / Fashion-MNIST experiments (Table 6, with the released code's
    stride 1 and valid padding, notes §2.5): Conv(32, 3×3) + ReLU → Conv(64, 3×3) + ReLU →
    MaxPool(2) → Dropout(0.25) → Flatten → FC(128) + ReLU → Dropout(0.5) → FC(num_classes).
    It is the original model, the approximators :math:`A_s, A_u` and the FS-A / FU-A
    evaluators alike. Outputs **logits**; wrap it as ``nn.Sequential(net, nn.Softmax(-1))``
    to use it as a black box returning probabilities.

    :param image_shape: ``(C, H, W)`` (``(1, 28, 28)`` for MNIST).
    :param int num_classes: output size.
    Shapes: ``(..., C, H, W)`` -> ``(..., num_classes)``.
    """

    def __init__(self, image_shape: Sequence[int] = (1, 28, 28), num_classes: int = 2) -> None:
        super().__init__()
        image_shape = tuple(image_shape)
        if len(image_shape) != 3 or min(image_shape) < 1 or min(image_shape[1:]) < 6:
            raise ValueError(f"image_shape must be (C, H >= 6, W >= 6); got {image_shape}.")
        c, h, w = image_shape
        self.image_shape = image_shape
        self.features = nn.Sequential(
            nn.Conv2d(c, 32, 3),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
            nn.Flatten(),
        )
        flat = 64 * ((h - 4) // 2) * ((w - 4) // 2)
        self.classifier = nn.Sequential(
            nn.Linear(flat, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        batch_shape = x.shape[:-3]
        out = self.classifier(self.features(x.reshape((-1, *x.shape[-3:]))))
        return out.reshape(batch_shape + out.shape[-1:])


class OutputConditionedSelector(nn.Module):
    r"""
    A LEX selector :math:`x \mapsto E(x, M(x))`: computes the black box's probabilities
    :math:`M(x)` itself (no gradient, evaluation mode) and passes them to the explainer, so the
    LEX model needs only :math:`x`.

    The black box is held as a plain attribute, not a submodule: its weights are not trained,
    not moved by ``.to()`` and not saved in the LEX model's ``state_dict``.

    :param ~torch.nn.Module explainer: :math:`E`, ``(x (N, ...), y (N, C)) -> logits (N, G)``.
    :param black_box: :math:`M` (see :func:`black_box_probabilities`).
    """

    def __init__(self, explainer: nn.Module, black_box: Callable) -> None:
        super().__init__()
        if not callable(black_box):
            raise ValueError(f"black_box must be a torch module or a callable; got {black_box!r}.")
        self.explainer = explainer
        object.__setattr__(self, "black_box", black_box)  # not a submodule

    def forward(self, x: Tensor) -> Tensor:
        return self.explainer(x, black_box_probabilities(self.black_box, x))


# ---------------------------------------------------------------------------- the method
@dataclass
class AILFitResult(FitResult):
    """What :meth:`AIL.train` returns: per-epoch means of the explainer's objective
    (``losses``), of :math:`\\mathcal L_s` and of :math:`\\mathcal L_u` (true targets, the
    approximators' step), and the seconds per epoch."""

    selected_losses: list[float] = field(default_factory=list)
    complement_losses: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


@contextlib.contextmanager
def _frozen(*modules: nn.Module):
    # Keep the other player's parameters out of a step's graph; restore their flags after.
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


@dataclass
class AIL(Method):
    r"""
    AIL / MEED: the L2X-style LEX ``model`` (selector :class:`OutputConditionedSelector`,
    :class:`~lexppl.distributions.KSubset` ``(k)`` masks, 0-imputation, predictor
    :math:`A_s` on soft targets :math:`M(x)`) with an adversarial approximator
    :math:`A_u` (``adversary``) on the complement and a warm-start ``prior``. Build it with
    :func:`ail`; see the module docstring for the objective and the mapping.

    Explanations: :meth:`select` (the top-k masks AIL reports), :meth:`scores` (the
    explainer's logits, the soft map of AIL's SEN), :meth:`importance` (exact k-subset
    marginals :math:`\mathbb E[Z|x]` of the LEX model).
    """

    adversary: nn.Module | None = None
    black_box: Any = None
    adversarial_loss: str = "cross_entropy"
    adversarial_weight: float = 1.0
    num_projections: int = 128
    prior: Callable[[Tensor], Tensor] | None = None
    prior_loss_weight: float = 0.0
    temperature: float = 0.5
    input_shape: tuple[int, ...] = ()

    # ------------------------------------------------------------------ pieces
    @property
    def explainer(self) -> nn.Module:
        """:math:`E(x, y)`, the network inside the selector."""
        return self.model.selector.explainer

    @property
    def groups(self) -> FeatureGroups | None:
        return self.model.groups

    def _feature_mask(self, v: Tensor) -> Tensor:
        return v if self.model.groups is None else self.model.groups.expand(v)

    def relaxed_mask(self, logits: Tensor) -> Tensor:
        """AIL's sampler :math:`G` (eq. 5): the max over ``k`` concrete draws on ``logits``,
        shape ``(N, G)`` with entries in [0, 1]."""
        family = self.model.mask_family(logits)
        return family.relaxed(self.temperature, method="max_of_k").rsample()

    def _log_likelihood(self, predictor: nn.Module, x: Tensor, v: Tensor, y: Tensor) -> Tensor:
        # log q(y | x ⊙ v + (1 - v) · 0) through the LEX model's imputer and likelihood, (N,).
        x_tilde = self.model.imputer(x, self._feature_mask(v)).rsample()
        return self.model.likelihood(predictor(x_tilde)).log_prob(y)

    def selected_loss(self, x: Tensor, y: Tensor, v: Tensor) -> Tensor:
        r""":math:`\ell_s(y, A_s(x \odot v))` per datum, ``(N,)``; its mean over the data is
        :math:`\mathcal L_s` (AIL eq. 6), the :class:`~lexppl.infer.ConcreteBound` loss of
        ``model``."""
        return -self._log_likelihood(self.model.predictor, x, v, y)

    def complement_loss(self, x: Tensor, y: Tensor, v: Tensor, adversarial: bool) -> Tensor:
        r""":math:`\mathcal L_u` (scalar) for the approximators' step, or the explainer's
        adversarial version :math:`\mathcal L_u^{adv}` (``adversarial=True``): flipped-target
        cross-entropy, or minus the sliced Wasserstein distance."""
        if self.adversarial_loss == "cross_entropy":
            target = flip_targets(y) if adversarial else y
            return -self._log_likelihood(self.adversary, x, 1.0 - v, target).mean()
        x_tilde = self.model.imputer(x, self._feature_mask(1.0 - v)).rsample()
        probs = torch.softmax(self.adversary(x_tilde), dim=-1)
        distance = sliced_wasserstein(y, probs, self.num_projections)
        return -distance if adversarial else distance

    # ------------------------------------------------------------------ explanations
    @torch.no_grad()
    def scores(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """
        The explainer's logits :math:`E(x, y)`, ``(N, G)``, with :math:`y = M(x)` by default.

        AIL's SEN evaluates the explainer on perturbed inputs with the *clean* output kept
        fixed (notes §2.6); with :func:`~lexppl.metrics.max_sensitivity` (one call on the
        ``N`` clean rows, one on the ``J·N`` perturbed rows, draw-major)::

            y = black_box_probabilities(black_box, x)
            explain = lambda rows: method.scores(rows, y.repeat(len(rows) // len(y), 1))
            sen = max_sensitivity(explain, x, 0.2, 50, relative=True)

        :param y: the black box's probabilities ``(N, C)`` to condition on instead of
            :math:`M(x)`.
        """
        self.model.eval()
        if y is None:
            return self.model.selector(x)
        y = torch.as_tensor(y).to(x)
        if y.shape != (x.shape[0], self.num_classes):
            raise ValueError(
                f"y must have shape (N, C) = ({x.shape[0]}, {self.num_classes}); got "
                f"{tuple(y.shape)}."
            )
        return self.explainer(x, y)

    @torch.no_grad()
    def select(self, x: Tensor) -> Tensor:
        """AIL's explanation: the top-``k`` mask of :math:`E(x, M(x))`, ``(N, G)`` of 0/1."""
        self.model.eval()
        return self.model.mask_distribution(x).mode

    @torch.no_grad()
    def importance(self, x: Tensor) -> Tensor:
        r"""Exact marginals :math:`P(Z_j = 1 | x)` of the LEX model's k-subset prior,
        ``(N, G)``, summing to ``k``."""
        self.model.eval()
        return self.model.importance(x)

    # ------------------------------------------------------------------ training
    def targets(self, y: Tensor) -> Tensor:
        y = torch.as_tensor(y)
        if not y.is_floating_point():
            raise ValueError(
                "AIL trains on the black box's class probabilities (N, C), not on labels; "
                f"got a tensor of dtype {y.dtype}. Leave y=None to compute them."
            )
        return y

    @property
    def num_mask_entries(self) -> int:
        """:math:`G`, the size of a mask (pixels for images, features otherwise)."""
        groups = self.model.groups
        return groups.num_groups if groups is not None else math.prod(self.input_shape)

    def _prior_logits(self, x: Tensor) -> Tensor | None:
        # log r = log softmax(s(x)), (N, G).
        if self.prior is None:
            return None
        scores = torch.as_tensor(self.prior(x)).to(x)
        expected = (x.shape[0], self.num_mask_entries)
        if scores.numel() != expected[0] * expected[1] or not torch.isfinite(scores).all():
            raise ValueError(
                f"The prior must return finite scores of shape (N, G) = {expected}; got "
                f"{tuple(scores.shape)}."
            )
        return torch.log_softmax(scores.reshape(expected), dim=-1)

    @flush_denormals()
    def train(
        self,
        x: Tensor,
        y: Tensor | None = None,
        *,
        epochs: int | None = None,
        batch_size: int | None = None,
        optimizer: str | None = None,
        lr: float | None = None,
        weight_decay: float | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
        progress: bool = False,
    ) -> AILFitResult:
        r"""
        Train :math:`E`, :math:`A_s` and :math:`A_u` by the alternating updates of AIL eqs.
        7-8, one approximators' step then one explainer's step per mini-batch (as the
        released code), for ``epochs`` epochs; the warm start uses :math:`m = 1, 2, \dots`.

        :param x: inputs ``(N, *input_shape)``.
        :param y: the black box's probabilities ``(N, C)``; ``None`` (default) computes them
            (AIL never uses true labels).
        :param int epochs: default 12 (MNIST code). :param int batch_size: default 128.
        :param str optimizer: ``"adadelta"`` (default, images in the paper; Keras defaults
            lr 1, ρ 0.95), ``"rmsprop"`` (IMDB) or ``"adam"``; one optimiser per player.
        :param float lr: learning rate (default 1.0 for Adadelta, 1e-3 otherwise).
        :param device: where to train (the black box is queried on its own device).
        :param int seed: seeds torch (relaxed masks, projections) and the shuffling.
        :returns: an :class:`AILFitResult`.
        """
        settings = {**self.fit_defaults}
        for key, value in [
            ("epochs", epochs),
            ("batch_size", batch_size),
            ("optimizer", optimizer),
            ("lr", lr),
            ("weight_decay", weight_decay),
        ]:
            if value is not None:
                settings[key] = value
        epochs, batch_size = settings["epochs"], settings["batch_size"]
        for name, value in [("epochs", epochs), ("batch_size", batch_size)]:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Expected {name} to be an int >= 1 but got {value!r}.")
        if settings["optimizer"] not in _OPTIMIZERS:
            raise ValueError(
                f"Unknown optimizer {settings['optimizer']!r}; valid choices are "
                f"{sorted(_OPTIMIZERS)}."
            )
        if lr is None and optimizer is not None and optimizer != "adadelta":
            settings["lr"] = 1e-3
        x = torch.as_tensor(x)
        if not x.is_floating_point():
            x = x.float()
        self._check_inputs(x)
        device = torch.device(device)
        if y is None:
            y = black_box_probabilities(self.black_box, x)
        else:
            y = self.targets(y).to(x.dtype)
            _check_probabilities(y, x.shape[0], "y")
        if y.shape[1] != self.num_classes:
            raise ValueError(
                f"The black box returns {y.shape[1]} classes but the method was built for "
                f"num_classes={self.num_classes}."
            )
        y = y / y.sum(1, keepdim=True)
        log_prior = self._prior_logits(x)

        torch.manual_seed(seed)
        pyro.set_rng_seed(seed)
        shuffle = torch.Generator().manual_seed(seed)
        self.model.to(device)
        self.adversary.to(device)
        approximators = list(self.model.predictor.parameters()) + list(self.adversary.parameters())
        make = _OPTIMIZERS[settings["optimizer"]]
        opt_a = make(approximators, settings["lr"], settings["weight_decay"])
        opt_e = make(self.explainer.parameters(), settings["lr"], settings["weight_decay"])
        w_u, w_e = self.adversarial_weight, self.prior_loss_weight
        result = AILFitResult()
        n = x.shape[0]
        self.model.train()
        self.adversary.train()
        try:
            for epoch in tqdm(range(epochs), disable=not progress, desc="ail", unit="epoch"):
                m = epoch + 1  # AIL's epoch counter m ∈ Z+
                started = time.perf_counter()
                totals = torch.zeros(3, device=device)
                order = torch.randperm(n, generator=shuffle)
                for begin in range(0, n, batch_size):
                    index = order[begin : begin + batch_size]
                    xb, yb = x[index].to(device), y[index].to(device)
                    lp = None if log_prior is None else log_prior[index].to(device)

                    # (7) approximators: min L_s + w_u L_u, explainer fixed.
                    with torch.no_grad():
                        logits = self.explainer(xb, yb)
                        if lp is not None:
                            logits = merge_prior_logits(logits, lp, m)
                        v = self.relaxed_mask(logits)
                    loss_s = self.selected_loss(xb, yb, v).mean()
                    loss_u = self.complement_loss(xb, yb, v, adversarial=False)
                    opt_a.zero_grad(set_to_none=True)
                    (loss_s + w_u * loss_u).backward()
                    opt_a.step()

                    # (8) explainer: min L_s + w_u L_u^adv + w_e L_e, approximators fixed.
                    with _frozen(self.model.predictor, self.adversary):
                        own = self.explainer(xb, yb)
                        logits = own if lp is None else merge_prior_logits(own, lp, m)
                        v = self.relaxed_mask(logits)
                        objective = self.selected_loss(xb, yb, v).mean()
                        if w_u > 0:
                            adversarial = self.complement_loss(xb, yb, v, adversarial=True)
                            objective = objective + w_u * adversarial
                        if w_e > 0 and lp is not None:
                            target = torch.softmax(logits, -1).detach()
                            mae = (target - torch.softmax(own, -1)).abs().mean(-1).mean()
                            objective = objective + w_e * warm_start_weight(m) * mae
                        opt_e.zero_grad(set_to_none=True)
                        objective.backward()
                        opt_e.step()
                    size = len(index)
                    totals += torch.stack([objective, loss_s, loss_u]).detach() * size
                means = (totals / n).tolist()
                if not all(math.isfinite(value) for value in means):
                    raise FloatingPointError(f"the AIL losses became {means} at epoch {epoch}.")
                result.losses.append(means[0])
                result.selected_losses.append(means[1])
                result.complement_losses.append(means[2])
                result.seconds.append(time.perf_counter() - started)
                result.epochs_run += 1
        finally:
            self.model.eval()
            self.adversary.eval()
        return result

    def _check_inputs(self, x: Tensor) -> None:
        if x.dim() < 2 or x.shape[0] == 0:
            raise ValueError(
                f"x must have shape (n_samples, ...) with n >= 1; got {tuple(x.shape)}."
            )
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"x must have shape (n_samples, {', '.join(map(str, self.input_shape))}) as "
                f"given to ail(input_shape=...); got {tuple(x.shape)}."
            )
        if not torch.isfinite(x).all():
            raise ValueError("x contains NaN or infinite values.")


# ---------------------------------------------------------------------------- builder
def ail(
    black_box: Callable,
    input_shape: int | Sequence[int],
    num_classes: int,
    k: int,
    *,
    adversarial_loss: str = "cross_entropy",
    adversarial_weight: float = 1.0,
    num_projections: int = 128,
    prior: str | Callable[[Tensor], Tensor] | None = "gradient_x_input",
    prior_loss_weight: float = 0.0,
    temperature: float = 0.5,
    explainer: nn.Module | None = None,
    approximator: nn.Module | None = None,
    adversary: nn.Module | None = None,
    groups: FeatureGroups | None = None,
    selector_hidden: Sequence[int] = (100, 100),
    approximator_hidden: Sequence[int] = (200, 200),
) -> AIL:
    r"""
    AIL / MEED (Liang et al. 2020) explaining ``black_box`` post hoc; see
    :mod:`lexppl.methods.ail_meed` for the objective and its LEX mapping.

    Example (MNIST 3 vs 8, AIL Table 3)::

        net = AILConvNet((1, 28, 28), 2)              # train it on the data first
        black_box = nn.Sequential(net, nn.Softmax(-1)).eval()
        method = ail(black_box, (1, 28, 28), 2, k=25, adversarial_weight=1e-3)
        method.train(x_train)                          # 12 epochs, batch 128, Adadelta
        masks = method.select(x_test)                  # (N, 784) top-25 pixel masks

    :param black_box: the model :math:`M` to explain: a torch module or any callable returning
        class probabilities ``(n, C)`` for a batch (see :func:`black_box_probabilities`).
    :param input_shape: shape of one input: ``(D,)`` (or ``D``) for flat data, ``(C, H, W)``
        for images.
    :param int num_classes: ``C``.
    :param int k: number of selected features (pixels for images), ``1 <= k <= G``.
    :param str adversarial_loss: ``"cross_entropy"`` (flipped target; IMDB, MNIST) or
        ``"sliced_wasserstein"`` (Fashion-MNIST, ImageNet).
    :param float adversarial_weight: :math:`w_u >= 0` (paper: 1e-3 for MNIST, 1 otherwise);
        0 removes AIL's adversarial term (the "w/o AIL" ablation).
    :param int num_projections: directions of the sliced Wasserstein distance (paper: 128
        Fashion-MNIST, 256 ImageNet).
    :param prior: the warm-start prior's scores :math:`s(x)`, ``(N, G)``, with
        :math:`r = \mathrm{softmax}(s)`: ``"gradient_x_input"`` (default, the paper's GI; needs
        a torch module differentiable in its input), a callable ``x -> scores`` (e.g. GI on the
        embeddings of a text model, which is not differentiable in its token ids), or ``None``
        (no warm start, the "w/o Prior" ablation).
    :param float prior_loss_weight: :math:`w_e >= 0` of :math:`\mathcal L_e` (paper: 0, and
        1e-3 for ImageNet).
    :param float temperature: τ of the sampler (paper: 0.5).
    :param explainer: :math:`E`, ``(x, y) -> logits (N, G)``; default
        :class:`OutputConditionedConv` for images, :class:`OutputConditionedMLP` otherwise.
    :param approximator: :math:`A_s`, ``x̃ -> logits (N, C)``; default :class:`AILConvNet`
        for images, an MLP otherwise.
    :param adversary: :math:`A_u`, same contract; default: a fresh network like
        ``approximator``'s default.
    :param groups: mask grouping; default :class:`~lexppl.models.PixelGrid` for images (one
        mask entry per pixel, shared by the channels), none for flat inputs.
    :returns: an :class:`AIL` (a :class:`~lexppl.methods.Method`): ``.train(x)``,
        ``.select(x)``, ``.scores(x)``, ``.importance(x)``, ``.model`` (the LEX model),
        ``.adversary``.
    """
    if not callable(black_box):
        raise ValueError(f"black_box must be a torch module or a callable; got {black_box!r}.")
    if isinstance(input_shape, int) and not isinstance(input_shape, bool):
        input_shape = (input_shape,)
    try:
        input_shape = tuple(int(s) for s in input_shape)
    except TypeError:
        raise ValueError(
            f"input_shape must be an int or a tuple of ints; got {input_shape!r}."
        ) from None
    if len(input_shape) not in (1, 3) or min(input_shape) < 1:
        raise ValueError(
            f"input_shape must be (D,) for flat inputs or (C, H, W) for images; got {input_shape}."
        )
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"Expected num_classes to be an int >= 2 but got {num_classes!r}.")
    if adversarial_loss not in ADVERSARIAL_LOSSES:
        raise ValueError(
            f"Unknown adversarial_loss {adversarial_loss!r}; valid choices are "
            f"{list(ADVERSARIAL_LOSSES)}."
        )
    _check_positive("adversarial_weight", adversarial_weight, allow_zero=True)
    _check_positive("prior_loss_weight", prior_loss_weight, allow_zero=True)
    _check_positive("temperature", temperature)
    if (
        not isinstance(num_projections, int)
        or isinstance(num_projections, bool)
        or (num_projections < 1)
    ):
        raise ValueError(f"Expected num_projections to be an int >= 1 but got {num_projections!r}.")
    image = len(input_shape) == 3
    if groups is None and image:
        groups = PixelGrid(input_shape)
    if groups is not None and not isinstance(groups, FeatureGroups):
        raise ValueError(f"groups must be a FeatureGroups object or None; got {groups!r}.")
    num_masks = groups.num_groups if groups is not None else math.prod(input_shape)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= num_masks:
        raise ValueError(f"Expected k in [1, {num_masks}] (mask entries) but got {k!r}.")
    if prior == "gradient_x_input":
        if not isinstance(black_box, nn.Module):
            raise ValueError(
                "prior='gradient_x_input' needs a torch module black box (it differentiates "
                f"it); got {type(black_box).__name__}. Pass prior=None or a callable."
            )
        prior = functools.partial(gradient_x_input, black_box, groups=groups)
    elif prior is not None and not callable(prior):
        raise ValueError(
            f"prior must be 'gradient_x_input', a callable x -> scores (N, G) or None; "
            f"got {prior!r}."
        )
    num_features = math.prod(input_shape)
    if explainer is None:
        if image and isinstance(groups, PixelGrid):
            explainer = OutputConditionedConv(input_shape, num_classes)
        else:
            explainer = OutputConditionedMLP(num_features, num_classes, num_masks, selector_hidden)

    def default_approximator() -> nn.Module:
        if image and min(input_shape[1:]) >= 6:
            return AILConvNet(input_shape, num_classes)
        return _FlatMLP(num_features, num_classes, approximator_hidden)

    approximator = default_approximator() if approximator is None else approximator
    adversary = default_approximator() if adversary is None else adversary
    for name, net in [("explainer", explainer), ("approximator", approximator)]:
        if not isinstance(net, nn.Module):
            raise ValueError(f"{name} must be a torch module; got {net!r}.")
    if not isinstance(adversary, nn.Module):
        raise ValueError(f"adversary must be a torch module; got {adversary!r}.")
    model = LEX(
        OutputConditionedSelector(explainer, black_box),
        approximator,
        ConstantImputer(0.0),
        functools.partial(KSubset, k=k),
        SoftTargetLikelihood(),
        groups=groups,
    )
    bound = ConcreteBound(num_masks=1, temperature=temperature, method="max_of_k")
    defaults = dict(
        epochs=12,
        batch_size=128,
        optimizer="adadelta",
        lr=1.0,
        weight_decay=0.0,
    )
    return AIL(
        "ail",
        model,
        bound,
        defaults,
        soft_targets=True,
        num_classes=num_classes,
        adversary=adversary,
        black_box=black_box,
        adversarial_loss=adversarial_loss,
        adversarial_weight=float(adversarial_weight),
        num_projections=num_projections,
        prior=prior,
        prior_loss_weight=float(prior_loss_weight),
        temperature=float(temperature),
        input_shape=input_shape,
    )


class _FlatMLP(MLP):
    # An MLP on flattened inputs, whatever their shape: (..., *input) is read as (M, D) rows.
    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.reshape(x.shape[0], -1) if x.dim() > 2 else x)
