"""A scikit-learn style entry point for users who just want explanations."""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import numbers
import os
import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyro
import torch
from sklearn.base import BaseEstimator
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils import ClassifierTags, RegressorTags
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn

from lexppl._version import __version__
from lexppl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lexppl.distributions import IndependentBernoulli, KSubset
from lexppl.imputers import (
    ConstantImputer,
    GaussianImputer,
    GaussianMixtureImputer,
    GaussianMixtureMeansImputer,
    GMMDatasetImputer,
    KMeansDatasetImputer,
    MarginalImputer,
    MeanImputer,
    MixtureOfLogisticsImputer,
    MixtureOfLogisticsMeansImputer,
    VAEACImputer,
)
from lexppl.infer import (
    ConcreteBound,
    EnumerateBound,
    PathwiseBound,
    RebarBound,
    ReinforceBound,
    RelaxBound,
    VimcoBound,
)
from lexppl.inputs import as_inputs
from lexppl.methods import ail, basex, invase, l2x, rationale, realx
from lexppl.methods.presets import Method
from lexppl.models import (
    LEX,
    BayesianLEX,
    CategoricalLikelihood,
    L1Penalty,
    NormalLikelihood,
    SoftTargetLikelihood,
)
from lexppl.models.bayesian import fit_bayesian
from lexppl.nets import MLP, check_device, eval_mode, module_device, module_dtype
from lexppl.train import fit, pretrain_predictor

__all__ = ["EmptySelectionWarning", "LEXExplainer"]


class EmptySelectionWarning(UserWarning):
    """A trained selector whose most probable selection is empty for most training rows, so
    that :meth:`LEXExplainer.select` explains them by nothing."""


# The one table from option names to lexppl objects (the core takes objects, never strings).
MASKS = {"subset": "KSubset", "bernoulli": "IndependentBernoulli"}
IMPUTERS = {
    "constant": lambda: ConstantImputer(0.0),
    "mean": MeanImputer,
    "gaussian": GaussianImputer,
    "marginal": MarginalImputer,
    "gmm": GaussianMixtureImputer,
    "gmm_means": GaussianMixtureMeansImputer,
    "gmm_dataset": GMMDatasetImputer,
    "kmeans_dataset": KMeansDatasetImputer,
    "mixture_of_logistics": MixtureOfLogisticsImputer,
    "mixture_of_logistics_means": MixtureOfLogisticsMeansImputer,
    "vaeac": VAEACImputer,
}
ESTIMATORS = {
    "pathwise": lambda p: PathwiseBound(p.num_masks, p.num_imputations, p.temperature),
    "simple": lambda p: PathwiseBound(p.num_masks, p.num_imputations, method="marginal"),
    "reinforce": lambda p: ReinforceBound(p.num_masks, p.num_imputations),
    "vimco": lambda p: VimcoBound(p.num_masks, p.num_imputations),
    "concrete": lambda p: ConcreteBound(p.num_masks, p.temperature),
    "rebar": lambda p: RebarBound(p.num_masks, p.num_imputations, p.temperature),
    "relax": lambda p: RelaxBound(
        p.num_masks, p.num_imputations, temperature=p.temperature, num_features=p.n_features_in_
    ),
    "enumerate": lambda p: EnumerateBound(p.num_imputations),
}
TASKS = ("classification", "regression")
REGIMES = ("in-situ", "fixed-theta", "self", "surrogate")
#: ``method=`` names: ``"lex"`` is the explainer's own configurable LEX model, the others the
#: presets of :mod:`lexppl.methods`.
METHODS = ("lex", "l2x", "invase", "realx", "basex", "rationale", "ail")

#: The explainer options a preset fixes, with the value the preset uses. An option left at its
#: default is ignored; set to the preset's own value it is accepted; any other value raises.
#: ``k`` (L2X, AIL), ``l1`` (INVASE, REAL-X, BASE-X, rationale: λ / λ1), ``coherence``
#: (rationale) and ``pretrain_epochs`` (REAL-X) are passed to the preset instead.
_PRESET_OPTIONS: dict[str, dict[str, Any]] = {
    "l2x": dict(mask="subset", estimator="concrete", temperature=0.1),
    "invase": dict(mask="bernoulli", estimator="reinforce"),
    "realx": dict(mask="bernoulli", estimator="rebar", temperature=0.1, fix_predictor=True),
    "basex": dict(mask="bernoulli", estimator="rebar", temperature=0.1),
    "rationale": dict(mask="bernoulli", estimator="reinforce", mask_as_input=True),
    "ail": dict(mask="subset", estimator="concrete"),
}
_FIXED_BY_PRESETS = dict(
    mask=None,
    imputer="constant",
    estimator=None,
    num_masks=1,
    num_imputations=1,
    temperature=None,
    mask_as_input=None,
    fix_predictor=None,
    regime=None,
    bayesian=False,
    task="classification",
)


class _ProbabilitiesAsLogits(nn.Module):
    # A black box returning class probabilities, seen by the likelihood as logits.
    def __init__(self, black_box: nn.Module) -> None:
        super().__init__()
        self.black_box = black_box

    def forward(self, x: Tensor) -> Tensor:
        return self.black_box(x).clamp_min(1e-12).log()


def _black_box_probabilities(black_box, X: Tensor) -> Tensor:
    """Class probabilities (n, C) of ``black_box`` on X: a torch module (called on its own
    device, in evaluation mode) or any callable on a numpy array (e.g. an sklearn
    ``predict_proba``)."""
    if isinstance(black_box, nn.Module):
        with torch.no_grad(), eval_mode(black_box):
            out = black_box(
                X.to(module_device(black_box, X.device), module_dtype(black_box, X.dtype))
            )
    elif callable(black_box):
        out = black_box(X.cpu().numpy())
    else:
        raise ValueError(f"black_box must be a torch module or a callable; got {black_box!r}.")
    try:
        probs = torch.as_tensor(
            np.asarray(out.cpu() if isinstance(out, Tensor) else out, dtype=np.float32)
        )
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"black_box must return class probabilities of shape (n_samples, n_classes); got "
            f"{type(out).__name__}."
        ) from error
    valid = (
        probs.dim() == 2
        and probs.shape[0] == X.shape[0]
        and bool(torch.isfinite(probs).all())
        and bool((probs >= 0).all())
        and bool(torch.allclose(probs.sum(1), torch.ones(len(probs)), atol=1e-3))
    )
    if not valid:
        raise ValueError(
            f"black_box must return class probabilities of shape (n_samples, n_classes) with "
            f"rows summing to 1; got an array of shape {tuple(probs.shape)}."
        )
    return probs


#: Numeric options (>= 0; the parts that need a positive value check it where it is used),
#: counts with their lower bound, and flags (True / False, or 0 / 1; ``verbose`` any int >= 0).
_NUMBER_OPTIONS = ("coherence", "l1", "weight_decay", "lr", "prior_scale", "temperature")
_COUNT_OPTIONS = dict(num_masks=1, num_imputations=1, epochs=1, batch_size=1, pretrain_epochs=0)
_FLAG_OPTIONS = ("fix_predictor", "mask_as_input", "bayesian", "distributed", "verbose")


def _check_option_types(explainer: LEXExplainer) -> None:
    """Each numeric, count, flag and layer-size option of the right type and range, so that a
    wrong value (e.g. from a TOML config) is named rather than failing deep in training."""
    for name in _NUMBER_OPTIONS:
        value = getattr(explainer, name)
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not ok or not 0 <= value < math.inf:
            raise ValueError(f"{name} must be a number >= 0; got {value!r}.")
    for name, low in (*_COUNT_OPTIONS.items(), ("seed", 0)):
        value = getattr(explainer, name)  # numpy ints too, as a parameter grid gives them
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an int >= {low}; got {value!r}.")
    for name in _FLAG_OPTIONS:
        value = getattr(explainer, name)
        flag = isinstance(value, (bool, np.bool_)) or (
            isinstance(value, numbers.Integral)
            and (value >= 0 if name == "verbose" else value in (0, 1))
        )
        if not flag:
            raise ValueError(f"{name} must be True or False; got {value!r}.")
    for name in ("selector_hidden", "predictor_hidden"):
        value = getattr(explainer, name)
        sequence = isinstance(value, (tuple, list, range)) or (
            isinstance(value, np.ndarray) and value.ndim == 1
        )
        sizes = list(value) if sequence else None
        if sizes is None or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in sizes
        ):
            raise ValueError(f"{name} must be a sequence of layer sizes >= 1; got {value!r}.")


def _choice(kind: str, value: Any, table) -> Any:
    try:
        return table[value]
    except (KeyError, TypeError):  # TypeError: a list or dict, e.g. from a TOML config
        raise ValueError(f"Unknown {kind} {value!r}; valid choices are {sorted(table)}.") from None


def _plain(value: Any) -> Any:
    """An option as plain Python: numpy scalars as Python numbers, sequences (layer sizes) as
    lists. The bounds and lexppl.fit take Python ints, and a checkpoint loaded with
    ``torch.load(weights_only=True)`` can hold nothing else."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list, range, np.ndarray)):
        return [_plain(v) for v in value]
    return value


def _fitted_attributes(explainer: LEXExplainer) -> dict[str, Any]:
    return {k: v for k, v in vars(explainer).items() if k.endswith("_") and not k.startswith("_")}


@contextlib.contextmanager
def _caller_rng():
    """Hand the global random generators back as they were found. Training seeds torch, numpy
    and ``random`` from ``seed``; left so, the caller's code would replay the same draws after
    every fit (e.g. a bootstrap loop)."""
    rng = pyro.util.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        pyro.util.set_rng_state(rng)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


@contextlib.contextmanager
def _fitting(explainer: LEXExplainer):
    """A fit from a clean slate that leaves no trace when it fails (the previous fit stays
    whole), with the caller's random generators kept (:func:`_caller_rng`)."""
    previous = _fitted_attributes(explainer)
    for name in previous:  # a refit starts clean: no classes_ left over for regression
        delattr(explainer, name)
    with _caller_rng():
        try:
            yield
        except Exception:  # not KeyboardInterrupt: a fit stopped by hand keeps what it trained
            for name in _fitted_attributes(explainer):
                delattr(explainer, name)
            vars(explainer).update(previous)
            raise


class LEXExplainer(BaseEstimator):
    """
    Explain tabular predictions with a LEX model, scikit-learn style.

    ``LEXExplainer(k=5, imputer="gaussian").fit(X, y).explain(X)`` trains a selector, an
    imputer and a predictor jointly (free in-situ regime) and returns the importance map
    :math:`\\mathbb E[Z|x]` of every row.

    Parameters
    ----------
    method : {"lex", "l2x", "invase", "realx", "basex", "rationale", "ail"}, default="lex"
        ``"lex"``: the LEX model configured by the options below. Any other name trains the
        published method's preset from :mod:`lexppl.methods` (its mask family, penalty,
        0-imputation, estimator and training procedure; see each preset's docstring):
        ``"l2x"`` (needs ``k``; labels in situ, or ``black_box=`` for its post-hoc soft
        targets), ``"invase"``, ``"realx"`` (pre-trains its predictor for ``pretrain_epochs``,
        default ``epochs``), ``"basex"``, ``"rationale"`` (columns of ``X`` are sequence
        positions; ``l1`` is λ1 and ``coherence`` c), all on labels ``y``, and ``"ail"``
        (needs ``k`` and ``black_box=``, no labels; Gradient × Input warm start for torch
        black boxes, none for other callables). ``l1`` is the penalty strength λ of the
        Bernoulli presets (their own default is 0.1, not 0). The options a preset fixes
        (``mask``, ``imputer``, ``estimator``, ``num_masks``, ``num_imputations``,
        ``temperature``, ``mask_as_input``, ``fix_predictor``, ``regime``, ``bayesian``,
        ``task``) must stay at their defaults or equal the preset's value, else ``fit`` raises
        a ``ValueError`` naming them. The training settings (``epochs``, ``batch_size``,
        ``lr``, ``weight_decay``) and hidden sizes stay the explainer's, overriding the
        papers' (AIL is then trained with Adam at ``lr``; L2X's and INVASE's decay still
        reach only their weight matrices); ``"rationale"`` keeps its recurrent networks.
    coherence : float, default=2.0
        Rationale selection's continuity strength relative to ``l1`` (λ2 = l1 · coherence,
        Lei et al.'s code default 2); used by ``method="rationale"`` only.
    mask : {"subset", "bernoulli"}, default="subset"
        Mask family: exactly ``k`` features (L2X-style) or independent Bernoulli (INVASE,
        REAL-X) with an ``l1`` penalty.
    k : int, default=None
        Number of selected features; required for ``mask="subset"``.
    l1 : float, default=0.0
        Strength λ of the L1 penalty λ·mean(z) (Bernoulli masks). Trained jointly from
        scratch, a Bernoulli selector can stop selecting before its predictor has learnt what
        to select for (with Gaussian imputation on S1 at REAL-X's λ = 0.05 it keeps nothing);
        :meth:`fit` then warns with an :class:`EmptySelectionWarning`.
    imputer : str, default="constant"
        How unselected features are turned off (LEX paper §3, App. B). Single imputation:
        ``"constant"`` (0-imputation), ``"mean"``. Multiple imputation: ``"gaussian"``
        (independent Gaussians fitted on ``X``; the true conditional of S1–S3),
        ``"marginal"``, ``"gmm"``, ``"gmm_means"``, ``"gmm_dataset"``, ``"kmeans_dataset"``,
        ``"mixture_of_logistics"`` and ``"mixture_of_logistics_means"`` (intensities in
        [0, 1]), ``"vaeac"``. Imputers that need data are fitted on ``imputer_data`` given to
        :meth:`fit` (default ``X``); ``"marginal"``, ``"gmm_dataset"`` and
        ``"kmeans_dataset"`` copy its rows, so give a held-out set.
    estimator : {"pathwise", "simple", "reinforce", "vimco", "rebar", "relax", "concrete", \
            "enumerate"}, default="pathwise"
        Gradient estimator for the mask (see :mod:`lexppl.infer`): ``"pathwise"`` is the LEX
        paper's straight-through estimator through the relaxation, ``"simple"`` the
        straight-through estimator through the exact marginals (``PathwiseBound(method=
        "marginal")``), ``"reinforce"``, ``"vimco"`` (``num_masks >= 2``), ``"rebar"`` and
        ``"relax"`` are unbiased, ``"concrete"`` trains on soft masks
        (constant imputation only), ``"enumerate"`` sums over every mask (few features only).
    num_masks, num_imputations : int, default=10, 1
        Importance samples L and K of the bound.
    epochs, batch_size, lr, weight_decay : training settings, defaults from the LEX paper
        except ``epochs``.
    pretrain_epochs : int, default=0
        Epochs of predictor pre-training on Bernoulli(1/2) masks before the joint training
        (REAL-X's surrogate).
    fix_predictor : bool, default=False
        Keep the predictor fixed while training the selector (fixed-θ regime; with
        ``pretrain_epochs > 0`` this is "surrogate 0-imputation").
    regime : {"in-situ", "fixed-theta", "self", "surrogate"}, default=None
        Training regime (LEX paper §2.5). ``None`` picks ``"in-situ"`` when :meth:`fit` gets
        labels and ``"surrogate"`` when it gets a ``black_box``. ``"in-situ"``: selector and
        predictor learn the labels. ``"surrogate"`` (post-hoc): a free predictor learns to
        mimic the black box's class probabilities (soft targets). ``"self"`` (post-hoc): the
        black box (a torch module returning class probabilities) is the fixed predictor and
        its own predictions on the full input are the targets. ``"fixed-theta"``: the black
        box is the fixed predictor and the labels are the targets.
    bayesian : bool, default=False
        Put Normal(0, ``prior_scale``) priors on the selector's weights and learn their
        posterior with an AutoNormal guide (:class:`~lexppl.models.BayesianLEX`); explanations
        then average over posterior draws, and :meth:`credible_interval` and
        :meth:`to_inference_data` give their uncertainty. Use a larger ``lr`` (e.g. 1e-2).
    prior_scale : float, default=1.0
    mask_as_input : bool, default=False
        Give the predictor the mask as extra input features beside the imputed input.
    task : {"classification", "regression"}, default="classification"
    selector_hidden, predictor_hidden : tuple of int
        Hidden sizes of the MLPs (paper: 2 × 200 selector, 3 × 200 predictor).
    temperature : float, default=0.5
        Relaxation temperature of the pathwise estimator.
    device : str, default="cpu"
    distributed : bool, default=False
        Data-parallel training over the processes started by ``torchrun`` (see
        :func:`lexppl.fit`); ``batch_size`` is the global mini-batch. ``method="lex"`` only,
        not with ``bayesian=True``.
    seed : int, default=0
    verbose : bool, default=False
        Show a progress bar.

    Attributes
    ----------
    model_ : LEX
        The trained model.
    classes_ : ndarray of shape (n_classes,)
        Class labels (classification).
    n_features_in_ : int
    losses_ : list of float
        Mean training loss (negated bound) per epoch.
    fitted_params_ : dict
        The options the model was fitted with (:meth:`get_params` at ``fit``, as plain
        Python): what :meth:`save` writes and the fitted model's methods read, whatever
        :meth:`set_params` changes afterwards.
    """

    def __init__(
        self,
        *,
        method: str = "lex",
        coherence: float = 2.0,
        mask: str = "subset",
        k: int | None = None,
        l1: float = 0.0,
        imputer: str = "constant",
        estimator: str = "pathwise",
        num_masks: int = 10,
        num_imputations: int = 1,
        epochs: int = 100,
        batch_size: int = 1000,
        lr: float = 1e-4,
        weight_decay: float = 1e-3,
        pretrain_epochs: int = 0,
        fix_predictor: bool = False,
        mask_as_input: bool = False,
        regime: str | None = None,
        bayesian: bool = False,
        prior_scale: float = 1.0,
        task: str = "classification",
        selector_hidden: tuple[int, ...] = (200, 200),
        predictor_hidden: tuple[int, ...] = (200, 200, 200),
        temperature: float = 0.5,
        device: str = "cpu",
        distributed: bool = False,
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        self.method = method
        self.coherence = coherence
        self.mask = mask
        self.k = k
        self.l1 = l1
        self.imputer = imputer
        self.estimator = estimator
        self.num_masks = num_masks
        self.num_imputations = num_imputations
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.pretrain_epochs = pretrain_epochs
        self.fix_predictor = fix_predictor
        self.mask_as_input = mask_as_input
        self.regime = regime
        self.bayesian = bayesian
        self.prior_scale = prior_scale
        self.task = task
        self.selector_hidden = selector_hidden
        self.predictor_hidden = predictor_hidden
        self.temperature = temperature
        self.device = device
        self.distributed = distributed
        self.seed = seed
        self.verbose = verbose

    # ------------------------------------------------------------------ building
    def _validate_params(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"Unknown method {self.method!r}; valid choices are {list(METHODS)}.")
        _choice("mask", self.mask, MASKS)
        _choice("imputer", self.imputer, IMPUTERS)
        _choice("estimator", self.estimator, ESTIMATORS)
        check_device(self.device)
        _check_option_types(self)
        if self.task not in TASKS:
            raise ValueError(f"Unknown task {self.task!r}; valid choices are {list(TASKS)}.")
        if self.regime is not None and self.regime not in REGIMES:
            raise ValueError(f"Unknown regime {self.regime!r}; valid choices are {list(REGIMES)}.")
        if self.k is not None and (
            not isinstance(self.k, (int, np.integer)) or isinstance(self.k, bool)
        ):
            raise ValueError(f"k must be an int; got {self.k!r}.")
        if self.method == "lex" and self.mask == "subset" and self.k is None:
            raise ValueError('mask="subset" needs the number of features k.')
        if self.distributed and (self.bayesian or self.method != "lex"):
            raise ValueError(
                "distributed=True trains method='lex' without bayesian=True only; got "
                f"method={self.method!r}, bayesian={self.bayesian!r}."
            )
        if self.method != "lex":
            self._check_preset_options()
        elif self.coherence != _defaults()["coherence"]:
            raise ValueError(
                f"coherence={self.coherence!r} is used by method='rationale' only; leave it at "
                f"its default with method='lex'."
            )

    def _check_preset_options(self) -> None:
        # Options the preset fixes: at their default, or equal to the preset's value.
        name, preset = self.method, _PRESET_OPTIONS[self.method]
        defaults = _defaults()
        conflicts = []
        for option, fixed in _FIXED_BY_PRESETS.items():
            value, used = getattr(self, option), preset.get(option, fixed)
            if value != defaults[option] and value != used:
                conflicts.append(f"{option}={value!r}")
        uses_k = name in ("l2x", "ail")
        if not uses_k and self.k is not None:
            conflicts.append(f"k={self.k!r} (Bernoulli masks: set the penalty with l1)")
        if uses_k and self.l1 != defaults["l1"]:
            conflicts.append(f"l1={self.l1!r} (the selection size is k)")
        if name != "rationale" and self.coherence != defaults["coherence"]:
            conflicts.append(f"coherence={self.coherence!r} (method='rationale' only)")
        if name != "realx" and self.pretrain_epochs != defaults["pretrain_epochs"]:
            conflicts.append(f"pretrain_epochs={self.pretrain_epochs!r} (method='realx' only)")
        if conflicts:
            raise ValueError(
                f"method={name!r} fixes these options, which conflict with it: "
                f"{', '.join(conflicts)}. Leave them at their defaults (or use method='lex')."
            )
        if uses_k and self.k is None:
            raise ValueError(f"method={name!r} selects exactly k features: set k.")

    def _build(self, n_features: int, n_outputs: int, black_box: nn.Module | None = None) -> LEX:
        if self.mask == "subset" and not 1 <= int(self.k) <= n_features:
            raise ValueError(
                f"k must satisfy 1 <= k <= D; got k={self.k} for D={n_features} features."
            )
        family = (
            functools.partial(KSubset, k=int(self.k))
            if self.mask == "subset"
            else IndependentBernoulli
        )
        regime = self.regime_ if hasattr(self, "regime_") else "in-situ"
        if self.task == "regression":
            likelihood = NormalLikelihood()
        elif regime in ("surrogate", "self"):
            likelihood = SoftTargetLikelihood()
        else:
            likelihood = CategoricalLikelihood()
        if black_box is not None:
            predictor = _ProbabilitiesAsLogits(black_box)
        else:
            predictor = MLP(
                n_features * (2 if self.mask_as_input else 1),
                n_outputs,
                tuple(self.predictor_hidden),
            )
        model_class = (
            functools.partial(BayesianLEX, prior_scale=self.prior_scale) if self.bayesian else LEX
        )
        return model_class(
            selector=MLP(n_features, n_features, tuple(self.selector_hidden)),
            predictor=predictor,
            imputer=IMPUTERS[self.imputer](),
            mask_family=family,
            likelihood=likelihood,
            regularizer=L1Penalty(self.l1) if self.l1 > 0 else None,
            mask_as_input=self.mask_as_input,
        )

    def _build_method(
        self, n_features: int, n_outputs: int, black_box=None, for_training: bool = True
    ) -> Method:
        """The preset of ``self.method`` for this data (``n_outputs`` classes)."""
        name, sizes = self.method, dict(selector_hidden=tuple(self.selector_hidden))
        if self.k is not None and not 1 <= int(self.k) <= n_features:
            raise ValueError(
                f"k must satisfy 1 <= k <= D; got k={self.k} for D={n_features} features."
            )
        if name == "l2x":
            return l2x(
                n_features, n_outputs, int(self.k), predictor_hidden=self.predictor_hidden, **sizes
            )
        if name in ("invase", "basex"):
            build = invase if name == "invase" else basex
            return build(
                n_features,
                n_outputs,
                float(self.l1),
                predictor_hidden=tuple(self.predictor_hidden),
                **sizes,
            )
        if name == "realx":
            epochs = int(self.pretrain_epochs or self.epochs)
            return realx(
                n_features,
                n_outputs,
                float(self.l1),
                pretrain_epochs=epochs,
                predictor_hidden=tuple(self.predictor_hidden),
                **sizes,
            )
        if name == "rationale":
            return rationale(
                n_features, n_outputs, sparsity=float(self.l1), coherence=float(self.coherence)
            )
        prior = "gradient_x_input" if isinstance(black_box, nn.Module) and for_training else None
        return ail(
            black_box,
            n_features,
            n_outputs,
            int(self.k),
            prior=prior,
            approximator_hidden=tuple(self.predictor_hidden),
            **sizes,
        )

    # ------------------------------------------------------------------ checks
    def _check_X(self, X, fitting: bool = False, name: str = "X") -> Tensor:
        X = as_inputs(X, name, finite=False).float()  # non-finite values: checked below
        if X.dim() != 2:
            raise ValueError(
                f"{name} must be 2-D (n_samples, n_features); got shape {tuple(X.shape)}."
            )
        if X.shape[0] == 0:
            raise ValueError(f"{name} has no rows.")
        if not torch.isfinite(X).all():
            raise ValueError(f"{name} contains NaN or infinite values.")
        if not fitting and X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"{name} has {X.shape[1]} features, but LEXExplainer was fitted with "
                f"{self.n_features_in_} features."
            )
        return X

    def _encode_y(self, y, n: int) -> Tensor:
        y = np.asarray(y)
        if y.shape != (n,):
            raise ValueError(f"y must have shape ({n},) to match X; got {y.shape}.")
        if self.task == "regression":
            y = y.astype(np.float32)
            if not np.isfinite(y).all():
                raise ValueError("y contains NaN or infinite values.")
            return torch.as_tensor(y)
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinite values.")
        if type_of_target(y) == "continuous":
            raise ValueError(
                "y holds continuous values, not class labels: use task='regression', or pass "
                "the classes (e.g. integers)."
            )
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y has a single class {self.classes_}; need at least 2.")
        return torch.as_tensor(encoded, dtype=torch.long)

    # ------------------------------------------------------------------ API
    def _resolve_regime(self, y, black_box) -> str:
        regime = self.regime or ("in-situ" if black_box is None else "surrogate")
        if regime == "in-situ" and y is None:
            raise ValueError("The in-situ regime needs labels y (or pass black_box=...).")
        if regime != "in-situ" and black_box is None:
            raise ValueError(f"The {regime!r} regime needs a black_box to explain.")
        if regime == "fixed-theta" and y is None:
            raise ValueError("The 'fixed-theta' regime needs labels y.")
        if regime in ("surrogate", "self") and y is not None:
            raise ValueError(
                f"The {regime!r} regime learns from the black box's outputs, not from labels: "
                f"give either y or a black_box, not both (regime='fixed-theta' uses both)."
            )
        if regime == "in-situ" and black_box is not None:
            raise ValueError(
                "The 'in-situ' regime trains its own predictor on y and would ignore the "
                "black_box: drop it, or choose regime='surrogate', 'self' or 'fixed-theta'."
            )
        if regime in ("self", "fixed-theta") and not isinstance(black_box, nn.Module):
            raise ValueError(
                f"The {regime!r} regime uses the black box as LEX's predictor, so it must be a "
                f"torch module returning class probabilities; got {type(black_box).__name__}. "
                f"Use regime='surrogate' for other callables."
            )
        if regime != "in-situ" and self.task != "classification":
            raise ValueError("Post-hoc and fixed-theta regimes need task='classification'.")
        return regime

    def fit(self, X, y=None, imputer_data=None, black_box=None) -> LEXExplainer:
        """Train the LEX model on ``X`` of shape (n_samples, n_features).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,), default=None
            Labels (in-situ and fixed-theta regimes).
        imputer_data : array-like of shape (n_rows, n_features), default=None
            Data the imputer is fitted on (default ``X``); give a held-out set to keep the
            resampling imputers from copying training rows.
        black_box : torch module or callable, default=None
            The model to explain post hoc: a torch module or any callable returning class
            probabilities of shape (n_samples, n_classes) for a numpy array (e.g. an sklearn
            ``predict_proba``). See ``regime``.

        Returns
        -------
        self : LEXExplainer
        """
        self._validate_params()
        X = self._check_X(X, fitting=True)
        with _fitting(self):
            self.fitted_params_ = {k: _plain(v) for k, v in self.get_params().items()}
            if self.method != "lex":
                self._fit_method(X, y, black_box)
            else:
                self._fit_lex(X, y, imputer_data, black_box)
            self._check_selection(X)
        return self

    def _options(self) -> SimpleNamespace:
        """The fitted options (:attr:`fitted_params_`) as attributes, with ``n_features_in_``:
        what the estimator table's constructors read."""
        return SimpleNamespace(**self.fitted_params_, n_features_in_=self.n_features_in_)

    def _fit_lex(self, X: Tensor, y, imputer_data, black_box) -> None:
        self.regime_ = self._resolve_regime(y, black_box)
        self.n_features_in_ = X.shape[1]
        fixed_predictor = black_box if self.regime_ in ("self", "fixed-theta") else None
        if self.regime_ in ("surrogate", "self"):
            y = _black_box_probabilities(black_box, X)  # soft targets, (n, C)
            self.classes_ = np.arange(y.shape[1])
        else:
            y = self._encode_y(y, X.shape[0])
        if self.regime_ == "fixed-theta":  # LEX's predictor: its outputs are the classes_
            num_outputs = _black_box_probabilities(black_box, X).shape[1]
            if num_outputs != len(self.classes_):
                raise ValueError(
                    f"The black box returns probabilities of {num_outputs} classes, but y has "
                    f"{len(self.classes_)} ({self.classes_.tolist()}); its columns must be the "
                    f"sorted classes of y."
                )
        n_outputs = len(self.classes_) if self.task == "classification" else 1
        torch.manual_seed(int(self.seed))
        self.model_ = self._build(self.n_features_in_, n_outputs, fixed_predictor)
        imputer = self.model_.imputer
        if imputer.requires_fit or self.imputer == "gaussian":
            imputer.fit(
                X if imputer_data is None else self._check_X(imputer_data, name="imputer_data")
            )
        settings, options = self._fit_settings(), self._options()
        if options.pretrain_epochs and fixed_predictor is None:
            pretrain_predictor(self.model_, X, y, epochs=options.pretrain_epochs, **settings)
        bound = _choice("estimator", self.estimator, ESTIMATORS)(options)
        fix = self.fix_predictor or fixed_predictor is not None
        freeze = ("predictor",) if fix else ()
        trainer = fit_bayesian if self.bayesian else fit
        result = trainer(self.model_, bound, X, y, epochs=options.epochs, freeze=freeze, **settings)
        self.losses_ = result.losses

    def _fit_settings(self) -> dict[str, Any]:
        """The keyword arguments of :func:`lexppl.fit` that the explainer's options set."""
        options = self.fitted_params_
        settings = dict(
            batch_size=options["batch_size"],
            lr=self.lr,
            weight_decay=self.weight_decay,
            device=self.device,
            seed=options["seed"],
            progress=self.verbose,
        )
        if self.distributed:  # method="lex" only (checked in _validate_params)
            settings["distributed"] = True
        return settings

    def _fit_method(self, X: Tensor, y, black_box) -> LEXExplainer:
        name = self.method
        if name == "ail":
            if black_box is None:
                raise ValueError("method='ail' explains a black box: pass black_box=... to fit.")
            if y is not None:
                raise ValueError(
                    "method='ail' learns from the black box's outputs, not from labels: call "
                    "fit(X, black_box=model) without y."
                )
        elif black_box is not None and name != "l2x":
            raise ValueError(
                f"method={name!r} is trained on labels y (in situ), not on a black box; pass "
                f"y (e.g. the black box's predicted classes), or use method='l2x' or 'ail' "
                f"to explain a black box post hoc."
            )
        elif black_box is None and y is None:
            raise ValueError(f"method={name!r} needs labels y.")
        self.n_features_in_ = X.shape[1]
        if black_box is not None:
            if y is not None:
                raise ValueError(f"Give method={name!r} either labels y or a black_box, not both.")
            targets = _black_box_probabilities(black_box, X)  # soft targets, (n, C)
            self.classes_ = np.arange(targets.shape[1])
            self.regime_ = "surrogate"
        else:
            targets = self._encode_y(y, X.shape[0])
            self.regime_ = "in-situ"
        torch.manual_seed(int(self.seed))
        method = self._build_method(self.n_features_in_, len(self.classes_), black_box)
        self.model_ = method.model
        settings = dict(epochs=self.fitted_params_["epochs"], **self._fit_settings())
        if name == "ail":
            settings["optimizer"] = "adam"
        result = method.train(X, targets, **settings)
        self.losses_ = result.losses
        return self

    def _check_selection(self, X: Tensor) -> None:
        """Warn (:class:`EmptySelectionWarning`) when the most probable selection of more than
        half of the training rows ``X`` is empty (Bernoulli masks only: a k-subset keeps k)."""
        # A Bernoulli selector trained jointly with its predictor can stop selecting before the
        # predictor has learnt anything worth selecting for: LEX with Gaussian imputation on S1
        # at REAL-X's λ = 0.05 (lr 1e-3) keeps nothing for any row within 5 epochs, unless its
        # predictor is pre-trained (benchmarks/results/lexmi_s1_bernoulli_pretrained.md).
        mask = self.mask if self.method == "lex" else _PRESET_OPTIONS[self.method]["mask"]
        if mask == "subset":
            return
        empty, probability = 0, 0.0
        with torch.no_grad():
            for batch in X.split(int(self.batch_size)):  # batches, not rows
                # Bernoulli masks: select() keeps the features with probability > 1/2 (under
                # the posterior too, with bayesian=True)
                probs = self.model_.importance(batch.to(self.device)).flatten(1)
                empty += int(((probs > 0.5).sum(1) == 0).sum())
                probability += float(probs.mean(1).sum())
        if empty <= X.shape[0] / 2:
            return
        advice = (
            f", pre-train the predictor (pretrain_epochs={self.pretrain_epochs} now) or fix the "
            f"selection size with mask='subset' and k"
            if self.method == "lex"
            else ""
        )
        n, probability = X.shape[0], probability / X.shape[0]
        if probability < 0.25:  # moved towards 0: the penalty won
            cause = (
                f"the penalty l1={self.l1:g} outweighs what the predictor has learnt to gain "
                f"from any feature. Lower l1{advice}."
            )
        else:  # still near the initial 1/2
            cause = "the selection probabilities are still near 1/2. Train for more epochs."
        warnings.warn(
            f"The trained selector keeps no feature for {empty / n:.0%} of the training rows "
            f"(mean selection probability {probability:.3f}), so select() explains them by "
            f"nothing: {cause}",
            EmptySelectionWarning,
            stacklevel=3,
        )

    def _tensor(self, X) -> Tensor:
        check_is_fitted(self, "model_")
        # Where the model is (it may have been moved since fit), not where it was trained.
        return self._check_X(X).to(module_device(self.model_, torch.device(self.device)))

    def explain(self, X) -> np.ndarray:
        """Importance map :math:`\\mathbb E[Z|x]`, shape (n_samples, n_features)."""
        x = self._tensor(X)
        return self.model_.importance(x).cpu().numpy()

    def sample_masks(self, X, num_samples: int = 100) -> np.ndarray:
        """Masks sampled from :math:`p_\\gamma(z|x)`, shape (num_samples, n_samples, n_features)."""
        x = self._tensor(X)
        return self.model_.explain(x, num_samples).cpu().numpy()

    def select(self, X) -> np.ndarray:
        """The most probable selection of each row as 0/1, shape (n_samples, n_features):
        the top-k features (subset masks) or features with probability > 1/2 (Bernoulli);
        with ``bayesian=True``, of the posterior selection probabilities (:meth:`explain`)."""
        x = self._tensor(X)
        return self.model_.selection(x).cpu().numpy().astype(np.int64)

    def _fitted(self, name: str) -> Any:
        """The option ``name`` the model was fitted with (:attr:`fitted_params_`)."""
        check_is_fitted(self, "model_")
        # Explainers pickled before fitted_params_ existed: their options are their params.
        options = getattr(self, "fitted_params_", None) or self.get_params()
        return options[name]

    def _average(self, x: Tensor, num_samples: int, num_imputations: int = 1) -> Tensor:
        # Masks (and imputations) drawn from ``seed``, as scikit-learn's predictions are
        # repeatable: the same X gives the same answer on every call. The caller's random
        # generators are left as they were.
        with _caller_rng():
            pyro.set_rng_seed(self._fitted("seed"))
            return self.model_.predict(x, num_samples, num_imputations)

    def predict_proba(self, X, num_samples: int = 100) -> np.ndarray:
        """Class probabilities averaged over ``num_samples`` masks, (n_samples, n_classes);
        the masks are drawn from ``seed``, so the same X gives the same probabilities."""
        if self._fitted("task") != "classification":
            raise ValueError("predict_proba is only available for task='classification'.")
        x = self._tensor(X)
        num_imputations = self._fitted("num_imputations")
        return self._average(x, num_samples, num_imputations).cpu().numpy()

    def predict(self, X, num_samples: int = 100) -> np.ndarray:
        """Predicted classes (classification) or predictive means (regression)."""
        if self._fitted("task") == "classification":
            return self.classes_[self.predict_proba(X, num_samples).argmax(1)]
        x = self._tensor(X)
        return self._average(x, num_samples).cpu().numpy()

    def score(self, X, y, num_samples: int = 100) -> float:
        """Accuracy of :meth:`predict` on ``(X, y)`` (classification) or its R² (regression),
        as scikit-learn's classifiers and regressors score: what ``GridSearchCV`` and
        ``cross_val_score`` use unless given ``scoring=``."""
        prediction = self.predict(X, num_samples)
        if self._fitted("task") == "classification":
            return float(accuracy_score(np.asarray(y), prediction))
        return float(r2_score(np.asarray(y, dtype=np.float64), prediction))

    def __sklearn_tags__(self):
        # A classifier or a regressor depending on ``task``: scikit-learn then stratifies
        # cross-validation folds and picks the default scorer accordingly.
        tags = super().__sklearn_tags__()
        if self.task == "regression":
            tags.estimator_type, tags.regressor_tags = "regressor", RegressorTags()
        else:
            tags.estimator_type, tags.classifier_tags = "classifier", ClassifierTags()
        return tags

    def credible_interval(self, X, prob: float = 0.9, num_samples: int = 200):
        """Equal-tailed ``prob`` credible interval of each feature's selection probability
        under the posterior of a ``bayesian=True`` explainer: two arrays (n_samples,
        n_features)."""
        x = self._tensor(X)
        if not self._fitted("bayesian"):
            raise ValueError("credible_interval needs an explainer fitted with bayesian=True.")
        low, high = self.model_.credible_interval(x, prob, num_samples)
        return low.cpu().numpy(), high.cpu().numpy()

    def to_inference_data(self, X, y=None, **options):
        """An :class:`arviz.InferenceData` of the posterior over explanations of ``X``
        (``bayesian=True``): groups ``posterior`` (``selection_probability``),
        ``posterior_predictive`` (``mask``, ``y``), ``observed_data`` when ``y`` is given.
        Options go to :func:`lexppl.inference_data.to_inference_data`."""
        from lexppl.inference_data import to_inference_data

        x = self._tensor(X)
        if not self._fitted("bayesian"):
            raise ValueError("to_inference_data needs an explainer fitted with bayesian=True.")
        labels = None
        if y is not None:
            y = np.asarray(y)
            if self._fitted("task") == "regression":
                labels = self._encode_y(y, len(x)).to(x.device)
            elif y.shape != (len(x),) or not np.isin(y, self.classes_).all():
                raise ValueError(
                    f"y must hold one label per row of X ({len(x)}) from the fitted classes "
                    f"{self.classes_.tolist()}; got shape {y.shape}, values "
                    f"{np.unique(y).tolist()[:10]}."
                )
            else:
                labels = torch.as_tensor(np.searchsorted(self.classes_, y), device=x.device)
        return to_inference_data(self.model_, None, x, labels, **options)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted explainer (config, classes, weights) as an atomic checkpoint."""
        check_is_fitted(self, "model_")
        classes = self.classes_.tolist() if self._fitted("task") == "classification" else []
        weights = self.model_.state_dict()
        if self.regime_ in _BLACK_BOX_REGIMES:  # the user's model, not lexppl's weights
            weights = {k: v for k, v in weights.items() if not k.startswith(_BLACK_BOX_KEYS)}
        save_checkpoint(
            path,
            {
                "config": {name: _plain(self._fitted(name)) for name in self.get_params()},
                "regime": self.regime_,
                "n_features": self.n_features_in_,
                "classes": classes,
                "model": weights,
            },
        )

    @classmethod
    def load(
        cls, path: str | os.PathLike, device: str = "cpu", black_box: nn.Module | None = None
    ) -> LEXExplainer:
        """Restore an explainer written by :meth:`save`. Explainers whose predictor is the
        user's black box (regimes ``"self"`` and ``"fixed-theta"``) need it again as
        ``black_box``: checkpoints hold lexppl's weights, not the user's model."""
        state = load_checkpoint(path, map_location=device)
        if "n_features" not in state or "selector_hidden" not in state.get("config", {}):
            raise CheckpointError(
                f"{path} is not a LEXExplainer checkpoint (those are written by "
                f"LEXExplainer.save and `lexppl train`); a run checkpoint of lexppl.fit is "
                f"continued with lexppl.fit(..., run_dir=..., resume=True)."
            )
        regime = state.get("regime", "in-situ")
        if state.get("config", {}).get("method") == "ail" and not callable(black_box):
            raise CheckpointError(
                f"{path} is an AIL explainer, whose selector reads the black box's outputs: "
                f"pass it again with LEXExplainer.load(path, black_box=model)."
            )
        if regime in ("self", "fixed-theta") and not isinstance(black_box, nn.Module):
            raise CheckpointError(
                f"{path} explains a black box used as the predictor ({regime!r} regime): "
                f"pass it again with LEXExplainer.load(path, black_box=model)."
            )
        try:
            config = dict(state["config"], device=device)
            for key in ("selector_hidden", "predictor_hidden"):
                config[key] = tuple(config[key])
            explainer = cls(**config)
            explainer._validate_params()
            explainer.fitted_params_ = {k: _plain(v) for k, v in explainer.get_params().items()}
            explainer.regime_ = regime
            explainer.n_features_in_ = int(state["n_features"])
            if explainer.task == "classification":
                explainer.classes_ = np.asarray(state["classes"])
            n_outputs = len(state["classes"]) if explainer.task == "classification" else 1
            fixed = black_box if regime in _BLACK_BOX_REGIMES else None
            if explainer.method != "lex":
                method = explainer._build_method(
                    explainer.n_features_in_, n_outputs, black_box, for_training=False
                )
                explainer.model_ = method.model
            else:
                explainer.model_ = explainer._build(explainer.n_features_in_, n_outputs, fixed)
            if explainer.bayesian:  # the guide's parameters exist once it has run
                explainer.model_.init_guide(torch.zeros(1, explainer.n_features_in_))
            _load_weights(explainer.model_, state["model"], user_black_box=fixed is not None)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(
                f"{path} is not a LEXExplainer checkpoint of this lexppl "
                f"({state['lexppl_version']} wrote it, this is {__version__}): {error}"
            ) from None
        explainer.model_.to(device).eval()
        return explainer


#: Regimes whose predictor is the user's black box; its weights are under these keys.
_BLACK_BOX_REGIMES = ("self", "fixed-theta")
_BLACK_BOX_KEYS = "predictor.black_box."


def _load_weights(model: nn.Module, weights: dict[str, Tensor], user_black_box: bool) -> None:
    """Load lexppl's weights into ``model``. The user's black box keeps its own: they are not
    in checkpoints written since they were left out, and older checkpoints' copies of them
    are skipped, so that loading never changes the module the caller passed in."""
    if user_black_box:
        weights = {k: v for k, v in weights.items() if not k.startswith(_BLACK_BOX_KEYS)}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if user_black_box:
        missing = [k for k in missing if not k.startswith(_BLACK_BOX_KEYS)]
    if missing or unexpected:
        raise RuntimeError(f"missing keys {missing}, unexpected keys {unexpected}")


@functools.cache
def _defaults() -> dict[str, Any]:
    """The defaults of :class:`LEXExplainer`'s options."""
    parameters = inspect.signature(LEXExplainer.__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
