"""
Published amortised explainers as configured LEX models (LEX paper App. A, Table 1; notes §4.1).

Each function returns a :class:`Method`: a :class:`~lexppl.models.LEX` model, the gradient
estimator (bound) of the paper and a :meth:`Method.train` that runs the paper's own training
procedure (joint training, or pre-trained and frozen predictor) with :func:`lexppl.fit` and
:func:`lexppl.train.pretrain_predictor`.

=================  ================  ===========  ===========  ========================  =========
preset             mask family       penalty      imputation   estimator                 predictor
=================  ================  ===========  ===========  ========================  =========
:func:`l2x`        KSubset(k)        fixed k      0            Concrete, max-of-k, τ     joint,
                                                                                         soft y
:func:`invase`     Bernoulli         λ·mean(z)    0            REINFORCE + classifier    joint
:func:`realx`      Bernoulli         λ·mean(z)    0            REBAR (η = 1, τ = 0.1)    B(1/2)
                                                                                         masks,
                                                                                         frozen
:func:`basex`      Bernoulli         λ·mean(z)    0            REBAR (η = 1, τ = 0.1)    joint
:func:`lex_multiple_imputation`  KSubset / Bernoulli  k / λ  Gaussian  straight-through  joint
=================  ================  ===========  ===========  ========================  =========

The penalty is always :class:`~lexppl.models.L1Penalty`, i.e. λ times the *mean* selection
probability over features (the scale of INVASE's and REAL-X's released code, on which their λ
grids are set), not the paper equations' λ‖z‖₀ (notes §4.5).

Every preset builds the papers' MLPs on flat inputs by default. ``selector=`` and
``predictor=`` (INVASE: also ``baseline=``) replace them by any torch modules, and ``groups=``
(a :class:`~lexppl.models.FeatureGroups`, e.g. :class:`~lexppl.models.PatchGrid`) puts the
mask over groups of an image's pixels; ``num_features`` is then the number of groups, and the
default MLPs see the flattened image.

Two more presets live in their own modules: :func:`~lexppl.methods.rationale` (Lei et al. 2016:
Bernoulli masks over sequence positions, :class:`~lexppl.models.RationalePenalty`, REINFORCE)
and :func:`~lexppl.methods.ail` (AIL / MEED: the L2X model with the selector conditioned on the
black box's output, an adversarial complement approximator and a warm start, with its own
alternating training loop). :class:`~lexppl.LEXExplainer` takes any of them by name
(``method=``).

**References**

[1] Chen, Song, Wainwright, Jordan, *Learning to Explain*, ICML 2018 (L2X).
[2] Yoon, Jordon, van der Schaar, *INVASE*, ICLR 2019.
[3] Jethani, Sudarshan, Aphinyanaphongs, Ranganath, *Have We Learned to Explain?*,
    AISTATS 2021 (REAL-X, BASE-X, EVAL-X).
[4] Senetaire, Garreau, Frellsen, Mattei, *Explainability as statistical inference*, ICML 2023.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from lexppl.distributions import IndependentBernoulli, KSubset
from lexppl.imputers import ConstantImputer, GaussianImputer, Imputer
from lexppl.infer import (
    ConcreteBound,
    ImportanceWeightedBound,
    PathwiseBound,
    RebarBound,
    ReinforceBound,
)
from lexppl.models import CategoricalLikelihood, L1Penalty, SoftTargetLikelihood
from lexppl.models.groups import FeatureGroups
from lexppl.models.lex import LEX
from lexppl.nets import MLP
from lexppl.train import FitResult, fit, pretrain_predictor

__all__ = ["Method", "basex", "invase", "l2x", "lex_multiple_imputation", "realx"]


@dataclass
class Method:
    """
    A LEX parametrisation of a published method, with its training procedure.

    :param str name: short name (``"l2x"``, ``"invase"``, ...).
    :param LEX model: the configured model.
    :param bound: its gradient estimator (an :class:`~lexppl.infer.ImportanceWeightedBound`).
    :param dict fit_defaults: the paper's optimiser settings, passed to :func:`lexppl.fit`
        unless overridden in :meth:`train`.
    :param int pretrain_epochs: > 0: first train the predictor alone on Bernoulli(1/2) masks
        (:func:`~lexppl.train.pretrain_predictor`), then the selector with the predictor
        frozen (REAL-X); 0: one joint fit of selector and predictor.
    :param bool soft_targets: the model's likelihood takes ``(N, C)`` class probabilities
        (L2X); :meth:`train` one-hot encodes class indices ``(N,)`` for it.
    """

    name: str
    model: LEX
    bound: ImportanceWeightedBound
    fit_defaults: dict[str, Any] = field(default_factory=dict)
    pretrain_epochs: int = 0
    soft_targets: bool = False
    num_classes: int | None = None

    def targets(self, y: Tensor) -> Tensor:
        """``y`` as the likelihood expects it: one-hot ``(N, C)`` floats for soft-target
        methods given class indices, ``y`` unchanged otherwise."""
        y = torch.as_tensor(y)
        if self.soft_targets and y.dim() == 1:
            if y.is_floating_point():
                raise ValueError(
                    f"{self.name} trains on soft targets (N, C) or class indices (N,) of an "
                    f"integer dtype; got floats of shape {tuple(y.shape)}."
                )
            return torch.nn.functional.one_hot(y.long(), self.num_classes).float()
        if self.soft_targets and (y.dim() != 2 or y.shape[1] != self.num_classes):
            raise ValueError(
                f"{self.name} soft targets must have shape (N, {self.num_classes}); "
                f"got {tuple(y.shape)}."
            )
        return y

    def train(self, x: Tensor, y: Tensor, **fit_kwargs) -> FitResult:
        """
        Run the method's training procedure on ``(x, y)``.

        ``y`` holds class indices, or, for :func:`l2x`, soft targets ``(N, C)`` such as a black
        box's class probabilities (class indices are one-hot encoded). Keyword arguments
        override :attr:`fit_defaults` and go to :func:`lexppl.fit`; for a pre-trained
        predictor, ``pretrain_epochs`` overrides the preset's and ``freeze`` is
        ``("predictor",)`` unless given (``freeze=()`` then trains both networks jointly).

        :returns: the :class:`~lexppl.train.FitResult` of the (selector's) fit.
        """
        kwargs = {**self.fit_defaults, **fit_kwargs}
        pretrain_epochs = kwargs.pop("pretrain_epochs", self.pretrain_epochs)
        y = self.targets(y)
        if pretrain_epochs > 0:
            pretrain_kwargs = {k: v for k, v in kwargs.items() if k not in ("epochs", "freeze")}
            pretrain_predictor(self.model, x, y, epochs=pretrain_epochs, **pretrain_kwargs)
            kwargs.setdefault("freeze", ("predictor",))
        return fit(self.model, self.bound, x, y, **kwargs)


# ---------------------------------------------------------------------------- checks
def _check_sizes(num_features: int, num_classes: int) -> None:
    for name, value in [("num_features", num_features), ("num_classes", num_classes)]:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"Expected {name} to be an int >= 1 but got {value!r}.")
    if num_classes < 2:
        raise ValueError(f"Expected num_classes >= 2 but got {num_classes}.")


def _check_k(k: int, num_features: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= num_features:
        raise ValueError(f"Expected k in [1, num_features={num_features}] but got {k!r}.")


def _check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not isinstance(value, int | float) or isinstance(value, bool) or not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"Expected {name} {bound} but got {value!r}.")


def _check_epochs(pretrain_epochs: int) -> None:
    if not isinstance(pretrain_epochs, int) or pretrain_epochs < 0:
        raise ValueError(f"Expected pretrain_epochs to be an int >= 0 but got {pretrain_epochs!r}.")


def _check_groups(num_features: int, groups: FeatureGroups | None) -> None:
    if groups is None:
        return
    if not isinstance(groups, FeatureGroups):
        raise ValueError(f"groups must be a FeatureGroups object or None; got {groups!r}.")
    if groups.num_groups != num_features:
        raise ValueError(
            f"num_features is the number of mask entries, {groups!r} has {groups.num_groups} "
            f"groups, but num_features={num_features}."
        )


def _default_mlp(out_features, hidden, groups, num_features, activation="relu", batch_norm=False):
    # The papers' MLP, on the flattened input when ``groups`` give it a shape.
    shape = getattr(groups, "input_shape", None)
    in_features = num_features if shape is None else math.prod(shape)
    mlp = MLP(in_features, out_features, tuple(hidden), activation, batch_norm)
    return mlp if shape is None or len(shape) == 1 else nn.Sequential(nn.Flatten(), mlp)


def _check_module(name: str, net: nn.Module | None) -> None:
    if net is not None and not isinstance(net, nn.Module):
        raise ValueError(f"{name} must be a torch module or None; got {net!r}.")


def _nets(
    num_features,
    num_classes,
    selector_hidden,
    predictor_hidden,
    activation="relu",
    predictor_batch_norm=False,
    selector=None,
    predictor=None,
    groups=None,
):
    """The given selector and predictor, or the papers' MLPs in their place."""
    _check_groups(num_features, groups)
    _check_module("selector", selector)
    _check_module("predictor", predictor)
    if selector is None:
        selector = _default_mlp(num_features, selector_hidden, groups, num_features, activation)
    if predictor is None:
        predictor = _default_mlp(
            num_classes, predictor_hidden, groups, num_features, activation, predictor_batch_norm
        )
    return selector, predictor


_DENSE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)  # Keras's layers with a "kernel"


def _dense_kernels(model: LEX, selector_output: bool) -> list[Tensor]:
    """The weight matrices of the selector's and the predictor's dense layers (what a Keras
    ``kernel_regularizer`` reaches; no biases, no batch norm), without the selector's output
    layer unless ``selector_output``. The output layer is the selector's last dense module in
    registration order (the last layer of an MLP)."""
    kernels = []
    for part in (model.selector, model.predictor):
        dense = [m.weight for m in part.modules() if isinstance(m, _DENSE)]
        kernels += dense[:-1] if part is model.selector and not selector_output else dense
    return kernels


def _l2x_kernels(model: LEX) -> list[Tensor]:
    """The parameters L2X's code regularises: every dense layer's kernel but the selector's
    output layer's."""
    return _dense_kernels(model, selector_output=False)


def _invase_kernels(model: LEX) -> list[Tensor]:
    """The parameters INVASE's code regularises: every dense layer's kernel, the actor's
    output layer's too."""
    return _dense_kernels(model, selector_output=True)


# ---------------------------------------------------------------------------- presets
def l2x(
    num_features: int,
    num_classes: int,
    k: int,
    temperature: float = 0.1,
    selector_hidden: Sequence[int] = (100, 100),
    predictor_hidden: Sequence[int] = (200, 200),
    activation: str = "relu",
    batch_norm: bool = True,
    selector: nn.Module | None = None,
    predictor: nn.Module | None = None,
    groups: FeatureGroups | None = None,
) -> Method:
    r"""
    L2X (Chen et al. 2018) as a LEX model.

    - Selector: :class:`~lexppl.distributions.KSubset` ``(k)``; the selector's scores are
      used as logits (L2X §3.2).
    - Imputation: 0 (:math:`V \odot X`).
    - Estimator: :class:`~lexppl.infer.ConcreteBound` with ``method="max_of_k"`` — k i.i.d.
      Concrete draws over the D features, combined by an element-wise max — one mask per datum,
      temperature :math:`\tau = 0.1` (paper, all experiments; the IMDB code uses 0.5).
    - Likelihood: :class:`~lexppl.models.SoftTargetLikelihood`, cross-entropy against soft
      targets :math:`P_m(\cdot|X)` (L2X eq. 6); class indices become one-hot targets.
    - Predictor ("approximator"): batch normalisation after each hidden layer, which L2X's
      synthetic code adds "for stability".
    - Training: selector and predictor jointly (a JAM); Adam, lr 1e-3, batch 1000 (L2X
      synthetic code; the paper says RMSprop 1e-3). The code's Keras L2 1e-3 adds
      :math:`10^{-3}\|W\|^2` to the loss for the weight matrix :math:`W` of every dense layer
      but the selector's output layer; here the same, as Adam weight decay 2e-3 on those
      matrices only (``decayed_parameters`` of :func:`lexppl.fit`): biases, batch norm and the
      selector's output layer are not decayed. On 10-class MNIST with k = 1 this decay held
      L2X at 81–88 % accuracy, and without it, with a 3 × 200 selector, L2X reached 95–96 %
      (``lexppl reproduce realx-mnist`` passes ``weight_decay=0`` to :meth:`Method.train`).

    The predictor is trained on *soft* masks, as in L2X. The hidden sizes are the 2 × 100
    selector / 2 × 200 predictor of both L2X's synthetic code and the REAL-X example code
    (notes §3.7 and §1.9).

    :param int k: number of selected features, ``1 <= k <= num_features``.
    :param float temperature: Concrete temperature :math:`\tau > 0`.
    :param str activation: of both networks (:class:`~lexppl.nets.MLP`); L2X's code uses SELU
        on its additive and switch data, ReLU on XOR and orange skin.
    :param bool batch_norm: batch normalisation in the predictor (the code's; off for a plain
        MLP).
    :param selector: replaces the default selector MLP: a module mapping ``x`` to mask logits
        ``(N, num_features)``.
    :param predictor: replaces the default predictor MLP (``batch_norm`` and ``activation``
        then apply to the selector's default only): a module mapping imputed inputs to class
        logits ``(N, num_classes)``.
    :param groups: a :class:`~lexppl.models.FeatureGroups` to select groups of an image's
        pixels (``num_features`` is then ``groups.num_groups``); ``None``: one mask entry per
        feature of flat inputs.
    """
    _check_sizes(num_features, num_classes)
    _check_k(k, num_features)
    _check_positive("temperature", temperature)
    nets = dict(selector=selector, predictor=predictor, groups=groups)
    selector, predictor = _nets(
        num_features, num_classes, selector_hidden, predictor_hidden, activation, batch_norm, **nets
    )
    model = LEX(
        selector,
        predictor,
        ConstantImputer(0.0),
        functools.partial(KSubset, k=k),
        SoftTargetLikelihood(),
        groups=groups,
    )
    bound = ConcreteBound(num_masks=1, temperature=temperature, method="max_of_k")
    defaults = dict(lr=1e-3, weight_decay=2e-3, decayed_parameters=_l2x_kernels, batch_size=1000)
    return Method("l2x", model, bound, defaults, soft_targets=True, num_classes=num_classes)


def invase(
    num_features: int,
    num_classes: int,
    lam: float = 0.1,
    selector_hidden: Sequence[int] = (100, 100),
    predictor_hidden: Sequence[int] = (200, 200),
    baseline_hidden: Sequence[int] = (200, 200),
    activation: str = "relu",
    selector: nn.Module | None = None,
    predictor: nn.Module | None = None,
    baseline: nn.Module | None = None,
    groups: FeatureGroups | None = None,
) -> Method:
    r"""
    INVASE (Yoon et al. 2019) as a LEX model.

    - Selector ("actor"): :class:`~lexppl.distributions.IndependentBernoulli`.
    - Penalty: :class:`~lexppl.models.L1Penalty` ``(lam)``, λ·mean(z); INVASE code default
      λ = 0.1 (the REAL-X synthetic grid is {0.05, …, 0.25}, notes §1.9).
    - Imputation: 0.
    - Estimator: :class:`~lexppl.infer.ReinforceBound` (score function, one mask per datum)
      with INVASE's control variate: a *baseline classifier* :math:`q_\psi(y|x)` on the full
      input, trained by maximum likelihood beside the model; the actor's reward is
      :math:`\log q_\theta(y|x \odot z) - \log q_\psi(y|x)` (INVASE code), here also
      centred by its moving average (variance only; see ``ReinforceBound``).
    - Predictor ("critic") and baseline: MLPs with batch normalisation after each hidden layer,
      as in INVASE's code; the critic is trained jointly on the selector's own sampled masks.
    - Activation of all three networks: ReLU by default (INVASE's 2019 code). Its ICLR 2019
      code uses SELU on Syn3–Syn6, which include REAL-X's S1–S3, and realx-table1 follows it.
    - Optimiser: Adam, lr 1e-4, batch 1000 (INVASE code). The code's Keras L2 1e-3 on the
      weight matrix :math:`W` of every dense layer of the actor and the critic (output layers
      too) adds :math:`10^{-3}\|W\|^2` to the loss; here the same, as Adam weight decay 2e-3
      on those matrices only (``decayed_parameters`` of :func:`lexppl.fit`): biases and batch
      norm are not decayed. The code also puts it on the baseline network's kernels; here the
      baseline is the estimator's control variate, which :func:`lexppl.fit` never decays.

    These details matter. On S1 at λ = 0.2 (10,000 Adam steps at lr 1e-4, one run each): without
    batch normalisation in the critic every selection probability fell to 0; with it, but with
    a baseline regressed on :math:`x` alone (NVIL, blind to the label noise), the selector kept
    one global mask. So does the activation (realx-table1's budget, 200 epochs at lr 1e-3). With
    ReLU: at λ = 0.05 one global mask on each of S1–S3; at the paper's λ one on S2, and x11 kept
    for every instance of S3. With SELU every one of these selections is made per branch, and
    at the paper's λ x11 is dropped.

    :param float lam: penalty strength λ >= 0.
    :param str activation: ``"relu"``, ``"selu"``, ``"elu"`` or ``"tanh"``
        (:class:`~lexppl.nets.MLP`).
    :param selector: as in :func:`l2x`, and so are ``predictor`` and ``groups``.
    :param baseline: replaces the default baseline MLP: a module mapping the full input ``x``
        to class logits ``(N, num_classes)``.
    """
    _check_sizes(num_features, num_classes)
    _check_positive("lam", lam, allow_zero=True)
    _check_module("baseline", baseline)
    nets = dict(selector=selector, predictor=predictor, groups=groups)
    selector, predictor = _nets(
        num_features, num_classes, selector_hidden, predictor_hidden, activation, True, **nets
    )
    model = LEX(
        selector,
        predictor,
        ConstantImputer(0.0),
        IndependentBernoulli,
        CategoricalLikelihood(),
        regularizer=L1Penalty(lam),
        groups=groups,
    )
    if baseline is None:
        baseline = _default_mlp(
            num_classes, baseline_hidden, groups, num_features, activation, batch_norm=True
        )
    bound = ReinforceBound(
        num_masks=1, baseline_net=baseline, baseline_likelihood=CategoricalLikelihood()
    )
    defaults = dict(lr=1e-4, weight_decay=2e-3, decayed_parameters=_invase_kernels, batch_size=1000)
    return Method("invase", model, bound, defaults, num_classes=num_classes)


def _rebar_method(
    num_features, num_classes, lam, selector_hidden, predictor_hidden, nets, imputer=None
):
    _check_sizes(num_features, num_classes)
    _check_positive("lam", lam, allow_zero=True)
    if imputer is not None and not isinstance(imputer, Imputer):
        raise ValueError(f"Expected imputer to be a lexppl Imputer but got {imputer!r}.")
    selector, predictor = _nets(
        num_features, num_classes, selector_hidden, predictor_hidden, **nets
    )
    model = LEX(
        selector,
        predictor,
        ConstantImputer(0.0) if imputer is None else imputer,
        IndependentBernoulli,
        CategoricalLikelihood(),
        regularizer=L1Penalty(lam),
        groups=nets["groups"],
    )
    return model, RebarBound.realx(num_masks=1)


def realx(
    num_features: int,
    num_classes: int,
    lam: float = 0.1,
    pretrain_epochs: int = 1000,
    selector_hidden: Sequence[int] = (100, 100),
    predictor_hidden: Sequence[int] = (200, 200),
    selector: nn.Module | None = None,
    predictor: nn.Module | None = None,
    groups: FeatureGroups | None = None,
    imputer: Imputer | None = None,
) -> Method:
    r"""
    REAL-X (Jethani et al. 2021) as a LEX model.

    - Selector: :class:`~lexppl.distributions.IndependentBernoulli` with
      :class:`~lexppl.models.L1Penalty` ``(lam)`` (λ·mean(z), the code's scale; synthetic λ
      grid {0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25}, default here 0.1; MNIST example λ = 5).
    - Imputation: "surrogate 0": 0-imputation, with a predictor trained on Bernoulli(1/2)
      masks only (the EVAL-X objective, REAL-X eq. 5; eq. 6's θ-line) for
      ``pretrain_epochs`` (paper, synthetic: 1,000), then frozen; the selector is then trained
      against it. This is the released code's procedure, equivalent to Algorithm 1 since θ's loss
      does not depend on the selector (REAL-X App. F.2; LEX App. A.3).
    - Estimator: REBAR with fixed η = 1 and τ = 0.1 (:meth:`~lexppl.infer.RebarBound.realx`),
      one mask per datum.
    - Optimiser: Adam, lr 1e-4, batch 1000, weight decay 1e-3 on every parameter (LEX App. D).
    - Architecture: 2 × 100 selector, 2 × 200 predictor (example code; the paper says 3 × 200
      selector, notes §4.5).

    Two details of REAL-X's released code (its MNIST example; the synthetic code is not
    released) are **not** taken: batch normalisation after the predictor's hidden layers, and
    Keras L2 1e-3 on the hidden layers' kernels only (Adam decay 2e-3 on them, none on the
    output layers). With both, on S3 at λ = 0.1 (realx-table1's data, one run each), the
    selector's undecayed output layer saturated (median absolute logit 6–8) and it kept one mask
    for every instance: 8 features (TPR 90.2, FDR 43.6) at realx-table1's budget (200 epochs,
    Adam 1e-3), all 11 (FDR 54.5) at the paper's (1,000 + 1,000 epochs at 1e-4), against the
    paper's TPR 93.5 and FDR 2.6. This preset's selections vary between instances at both
    budgets, but fall short of the paper's too: TPR 68.6 / FDR 3.9 and 69.5 / 30.5.

    :param int pretrain_epochs: epochs of predictor pre-training (> 0); override in
        :meth:`Method.train` with ``pretrain_epochs=...``.
    :param selector: as in :func:`l2x`, and so are ``predictor`` and ``groups``.
    :param imputer: REAL-X's component to vary (LEX Fig. 11 varies its constant): ``None``
        for the paper's 0-imputation, or any :class:`~lexppl.imputers.Imputer`, used both in
        pre-training and in the selector's training, e.g.
        :class:`~lexppl.imputers.GaussianImputer` for multiple imputation.
    """
    _check_epochs(pretrain_epochs)
    if pretrain_epochs == 0:
        raise ValueError("REAL-X needs a pre-trained predictor: pretrain_epochs must be >= 1.")
    nets = dict(selector=selector, predictor=predictor, groups=groups)
    model, bound = _rebar_method(
        num_features, num_classes, lam, selector_hidden, predictor_hidden, nets, imputer
    )
    defaults = dict(lr=1e-4, weight_decay=1e-3, batch_size=1000)
    return Method("realx", model, bound, defaults, pretrain_epochs, num_classes=num_classes)


def basex(
    num_features: int,
    num_classes: int,
    lam: float = 0.1,
    selector_hidden: Sequence[int] = (100, 100),
    predictor_hidden: Sequence[int] = (200, 200),
    selector: nn.Module | None = None,
    predictor: nn.Module | None = None,
    groups: FeatureGroups | None = None,
) -> Method:
    r"""
    BASE-X (Jethani et al. 2021, §6), REAL-X's control, as a LEX model.

    Everything as :func:`realx` (Bernoulli selector, λ·mean(z), 0-imputation, REBAR with
    η = 1, τ = 0.1, same optimiser) except the predictor: it is trained **jointly** with the
    selector on the selector's own samples :math:`m(x, s)` rather than on Bernoulli(1/2)
    masks (notes §1.5: "in effect INVASE with REBAR"; in LEX Table 1's terms Free In-Situ, as notes
    §4.1 classes it; the table has no BASE-X row). Our reading:
    one joint fit of both networks on the REBAR bound, no pre-training.

    :param selector: as in :func:`l2x`, and so are ``predictor`` and ``groups``.
    """
    nets = dict(selector=selector, predictor=predictor, groups=groups)
    model, bound = _rebar_method(
        num_features, num_classes, lam, selector_hidden, predictor_hidden, nets
    )
    defaults = dict(lr=1e-4, weight_decay=1e-3, batch_size=1000)
    return Method("basex", model, bound, defaults, num_classes=num_classes)


def lex_multiple_imputation(
    num_features: int,
    num_classes: int,
    k: int | None = None,
    lam: float | None = None,
    loc: float | Tensor = 0.0,
    scale: float | Tensor = 1.0,
    num_masks: int = 10,
    num_imputations: int = 1,
    temperature: float = 0.5,
    selector_hidden: Sequence[int] = (200, 200),
    predictor_hidden: Sequence[int] = (200, 200, 200),
    pathwise_method: str = "relaxed",
    estimator: str = "pathwise",
    soft_targets: bool = False,
    selector: nn.Module | None = None,
    predictor: nn.Module | None = None,
    groups: FeatureGroups | None = None,
) -> Method:
    r"""
    LEX with multiple imputation by independent Gaussians (Senetaire et al. 2023, §4.1).

    With the defaults :math:`\mathcal N(0, 1)` this is the *true* conditional of the synthetic
    datasets S1–S3 (i.i.d. standard normal features). Give exactly one of

    - ``k``: :class:`~lexppl.distributions.KSubset` ``(k)`` masks (fixed selection rate
      k / D, as in the LEX synthetic experiments), or
    - ``lam``: :class:`~lexppl.distributions.IndependentBernoulli` masks with
      :class:`~lexppl.models.L1Penalty` ``(lam)``. Trained jointly from scratch, this selector
      can stop selecting before the predictor has learnt anything worth selecting for: on
      S1–S3 at REAL-X's λ (0.05, 0.05, 0.1), with the relaxed gradient, it ended with 0.8,
      2.0 and 1.7 features on average over 10 seeds, an empty mode in 6 of them on S1
      (``benchmarks/results/lexmi_s1_bernoulli.md``); on one S1 seed the exact-marginal and
      the REBAR gradients did the same. Pre-training the predictor first
      (``method.train(x, y, pretrain_epochs=..., freeze=())``: Bernoulli(1/2) masks, then
      both networks) kept it selecting on every one of 10 fresh seeds per dataset (4.4, 3.9
      and 4.8 features; ``lexmi_s1_bernoulli_pretrained.md``), though on S1 and S2 three
      seeds of the ten missed the pair x1, x2. Check the selection size after training.

    Estimator: :class:`~lexppl.infer.PathwiseBound` (straight-through, LEX App. E.2) on the
    importance-weighted bound with 10 mask samples and 1 imputation (App. D);
    ``pathwise_method="marginal"`` back-propagates through the exact marginals instead
    (SIMPLE-style, see :class:`~lexppl.infer.PathwiseBound`). ``estimator="rebar"`` uses the
    unbiased :class:`~lexppl.infer.RebarBound` instead, the estimator family of the LEX
    synthetic experiments (App. D: REBAR with reservoir sampling and the relaxed subset as
    control; ours is REBAR through the k-subset's exact sequential sampler), with learned
    :math:`\eta` and :math:`\tau` (initial :math:`\tau` = ``temperature``); each step costs
    about 15 times a pathwise one on S3. Networks: 2 × 200
    selector, 3 × 200 predictor; Adam, lr 1e-4, weight decay 1e-3, batch 1000 (App. D).
    Selector and predictor are trained jointly (In-Situ).

    :param str estimator: ``"pathwise"`` or ``"rebar"``.

    :param bool soft_targets: train on class probabilities ``(N, C)``, e.g. a black box's
        (surrogate post-hoc regime), with :class:`~lexppl.models.SoftTargetLikelihood`;
        class indices are one-hot encoded. ``False``: class indices ``(N,)``.
    :param selector: as in :func:`l2x`, and so are ``predictor`` and ``groups``. For images, give
        ``loc`` and ``scale`` of the input's shape, or fit them with
        ``method.model.imputer.fit(x)``.
    """
    _check_sizes(num_features, num_classes)
    if (k is None) == (lam is None):
        raise ValueError("Give exactly one of k (KSubset masks) or lam (Bernoulli masks + L1).")
    for name, value in [("num_masks", num_masks), ("num_imputations", num_imputations)]:
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"Expected {name} to be an int >= 1 but got {value!r}.")
    _check_positive("temperature", temperature)
    if k is not None:
        _check_k(k, num_features)
        family, regularizer = functools.partial(KSubset, k=k), None
    else:
        _check_positive("lam", lam, allow_zero=True)
        family, regularizer = IndependentBernoulli, L1Penalty(lam)
    if not isinstance(soft_targets, bool):
        raise ValueError(f"Expected soft_targets to be a bool but got {soft_targets!r}.")
    nets = dict(selector=selector, predictor=predictor, groups=groups)
    selector, predictor = _nets(
        num_features, num_classes, selector_hidden, predictor_hidden, **nets
    )
    likelihood = SoftTargetLikelihood() if soft_targets else CategoricalLikelihood()
    model = LEX(
        selector,
        predictor,
        GaussianImputer(loc, scale),
        family,
        likelihood,
        regularizer=regularizer,
        groups=groups,
    )
    if estimator == "pathwise":
        bound = PathwiseBound(
            num_masks, num_imputations, temperature=temperature, method=pathwise_method
        )
    elif estimator == "rebar":
        bound = RebarBound(num_masks, num_imputations, temperature=temperature)
    else:
        raise ValueError(f"Unknown estimator {estimator!r}; valid choices are 'pathwise', 'rebar'.")
    defaults = dict(lr=1e-4, weight_decay=1e-3, batch_size=1000)
    return Method(
        "lex_multiple_imputation",
        model,
        bound,
        defaults,
        soft_targets=soft_targets,
        num_classes=num_classes,
    )
