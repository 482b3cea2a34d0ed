"""
Synthetic tabular datasets with known ground-truth selections.

Two families are provided:

* **S1, S2, S3** -- the switching datasets of REAL-X (Jethani et al., 2021),
  identical to INVASE's ``syn4``--``syn6`` (Yoon et al., 2019) and to LEX
  (Senetaire et al., 2023) App. C.1. Eleven features, ``x11`` is a
  control-flow feature that picks which of two response functions is active.
* **xor, orange, additive, switch** -- the four datasets of L2X (Chen et al.,
  2018) with ``D = 10``, following the released L2X code
  (``synthetic/make_data.py``) rather than the paper text where they differ.

All generators take an explicit :class:`torch.Generator` and never touch the
global random state. Labels are sampled from the true class probabilities,
which are kept in :attr:`~lexppl.data.MaskedDataset.probs`.

Throughout, the response is written ``f = exp(g)`` and
``P(y = 1 | x) = 1 / (1 + f) = sigmoid(-g)``, which is evaluated as the
sigmoid for numerical stability.
"""

from __future__ import annotations

import numbers

import torch
from torch import nn

from lexppl.data.base import MaskedDataset

__all__ = [
    "TrueResponse",
    "make_additive",
    "make_orange",
    "make_s1",
    "make_s2",
    "make_s3",
    "make_switch",
    "make_xor",
]

_INVASE_DIM = 11
_L2X_DIM = 10
# 0-based indices of the features used by each INVASE/REAL-X response branch.
_BRANCH_FEATURES = {"A": [0, 1], "B": [2, 3, 4, 5], "C": [6, 7, 8, 9]}
_CONTROL_FEATURE = 10


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
        raise ValueError(f"n must be a positive integer, got {n!r}")


def _default_generator(generator: torch.Generator | None) -> torch.Generator:
    if generator is None:
        return torch.Generator().manual_seed(0)
    if not isinstance(generator, torch.Generator):
        raise ValueError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    return generator


def _probs_from_log_f(log_f: torch.Tensor) -> torch.Tensor:
    """Map ``(n,)`` log-responses ``g`` to ``(n, 2)`` probabilities, ``P(y=1) = sigmoid(-g)``."""
    p1 = torch.sigmoid(-log_f)
    return torch.stack([torch.sigmoid(log_f), p1], dim=-1)


def _sample_labels(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.bernoulli(probs[:, 1], generator=generator).long()


# ---------------------------------------------------------------------------
# REAL-X / INVASE switching datasets S1-S3
# ---------------------------------------------------------------------------


def _log_f_a(x: torch.Tensor) -> torch.Tensor:
    # f_A = exp(x1 x2)
    return x[:, 0] * x[:, 1]


def _log_f_b(x: torch.Tensor) -> torch.Tensor:
    # f_B = exp(sum_{i=3..6} x_i^2 - 4)
    return x[:, 2:6].pow(2).sum(-1) - 4.0


def _log_f_c(x: torch.Tensor) -> torch.Tensor:
    # f_C = exp(-10 sin(0.2 x7) + |x8| + x9 + exp(-x10) - 2.4)
    return -10.0 * torch.sin(0.2 * x[:, 6]) + x[:, 7].abs() + x[:, 8] + torch.exp(-x[:, 9]) - 2.4


_LOG_F = {"A": _log_f_a, "B": _log_f_b, "C": _log_f_c}


def _make_switching(
    name: str, low: str, high: str, n: int, generator: torch.Generator | None
) -> MaskedDataset:
    _check_n(n)
    generator = _default_generator(generator)
    x = torch.randn(n, _INVASE_DIM, generator=generator)
    use_low = x[:, _CONTROL_FEATURE] < 0
    log_f = torch.where(use_low, _LOG_F[low](x), _LOG_F[high](x))
    probs = _probs_from_log_f(log_f)
    y = _sample_labels(probs, generator)

    truth_low = torch.zeros(_INVASE_DIM)
    truth_low[_BRANCH_FEATURES[low] + [_CONTROL_FEATURE]] = 1.0
    truth_high = torch.zeros(_INVASE_DIM)
    truth_high[_BRANCH_FEATURES[high] + [_CONTROL_FEATURE]] = 1.0
    truth = torch.where(use_low[:, None], truth_low, truth_high)
    return MaskedDataset(x, y, truth, probs=probs, name=name, num_classes=2)


_SWITCHING_DOC = """
    Generate the REAL-X synthetic dataset {name} (INVASE ``{invase}``).

    Features ``x1..x11 ~ N(0, 1)`` i.i.d. and ``y ~ Bernoulli(1 / (1 + f(x)))``
    with ``f = {low}`` if ``x11 < 0`` else ``f = {high}``, where

    * ``f_A = exp(x1 x2)``,
    * ``f_B = exp(sum_{{i=3..6}} x_i^2 - 4)``,
    * ``f_C = exp(-10 sin(0.2 x7) + |x8| + x9 + exp(-x10) - 2.4)``.

    ``f_C`` follows the INVASE code (``data_generation.py``) and the REAL-X
    code; LEX App. C.1 prints ``e^{{x-10}}`` (a typo for ``e^{{-x10}}``) and the
    INVASE docstring a different form. The ground truth of each instance is
    the active branch's features plus the control-flow feature ``x11``
    (0-based index 10). ``P(y = 1) ~= {p1}``.

    Parameters
    ----------
    n : int
        Number of instances.
    generator : torch.Generator, optional
        Source of randomness; defaults to a fresh generator seeded with 0.

    Returns
    -------
    MaskedDataset
        ``x`` of shape ``(n, 11)``, ``y`` of shape ``(n,)``, ``truth`` of shape
        ``(n, 11)`` and true probabilities ``probs`` of shape ``(n, 2)``.
    """


def make_s1(n: int = 10000, generator: torch.Generator | None = None) -> MaskedDataset:
    return _make_switching("s1", "A", "B", n, generator)


def make_s2(n: int = 10000, generator: torch.Generator | None = None) -> MaskedDataset:
    return _make_switching("s2", "A", "C", n, generator)


def make_s3(n: int = 10000, generator: torch.Generator | None = None) -> MaskedDataset:
    return _make_switching("s3", "B", "C", n, generator)


make_s1.__doc__ = _SWITCHING_DOC.format(name="S1", invase="syn4", low="f_A", high="f_B", p1="0.528")
make_s2.__doc__ = _SWITCHING_DOC.format(name="S2", invase="syn5", low="f_A", high="f_C", p1="0.510")
make_s3.__doc__ = _SWITCHING_DOC.format(name="S3", invase="syn6", low="f_B", high="f_C", p1="0.539")


# ---------------------------------------------------------------------------
# L2X datasets
# ---------------------------------------------------------------------------


def _l2x_log_xor(x4: torch.Tensor) -> torch.Tensor:
    return x4[:, 0] * x4[:, 1]


def _l2x_log_orange(x4: torch.Tensor) -> torch.Tensor:
    return x4[:, :4].pow(2).sum(-1) - 4.0


def _l2x_log_additive(x4: torch.Tensor) -> torch.Tensor:
    return (
        -100.0 * torch.sin(0.2 * x4[:, 0]) + x4[:, 1].abs() + x4[:, 2] + torch.exp(-x4[:, 3]) - 2.4
    )


def _make_l2x_simple(name, log_f, num_true, n, generator) -> MaskedDataset:
    _check_n(n)
    generator = _default_generator(generator)
    x = torch.randn(n, _L2X_DIM, generator=generator)
    probs = _probs_from_log_f(log_f(x))
    y = _sample_labels(probs, generator)
    truth = torch.zeros(n, _L2X_DIM)
    truth[:, :num_true] = 1.0
    return MaskedDataset(x, y, truth, probs=probs, name=name, num_classes=2)


def make_xor(n: int = 10000, generator: torch.Generator | None = None) -> MaskedDataset:
    """
    Generate L2X's XOR dataset.

    ``x ~ N(0, I_10)`` and ``P(y = 1 | x) = 1 / (1 + exp(x1 x2))`` (released L2X
    code). The ground truth is ``{x1, x2}`` (0-based ``{0, 1}``) for every
    instance.

    Parameters
    ----------
    n : int
        Number of instances.
    generator : torch.Generator, optional
        Source of randomness; defaults to a fresh generator seeded with 0.

    Returns
    -------
    MaskedDataset
        ``x`` of shape ``(n, 10)``, sampled labels ``y`` of shape ``(n,)``,
        ``truth`` of shape ``(n, 10)`` and the soft targets ``probs`` of shape
        ``(n, 2)`` that the L2X code trains on.
    """
    return _make_l2x_simple("xor", _l2x_log_xor, 2, n, generator)


def make_orange(n: int = 10000, generator: torch.Generator | None = None) -> MaskedDataset:
    """
    Generate L2X's orange-skin dataset.

    ``x ~ N(0, I_10)`` and ``P(y = 1 | x) = 1 / (1 + exp(sum_{i=1..4} x_i^2 - 4))``
    (released L2X code). The ground truth is ``{x1, ..., x4}`` (0-based
    ``{0, 1, 2, 3}``) for every instance.

    Parameters
    ----------
    n : int
        Number of instances.
    generator : torch.Generator, optional
        Source of randomness; defaults to a fresh generator seeded with 0.

    Returns
    -------
    MaskedDataset
        ``x`` of shape ``(n, 10)``, sampled labels ``y`` of shape ``(n,)``,
        ``truth`` of shape ``(n, 10)`` and soft targets ``probs`` of shape
        ``(n, 2)``.
    """
    return _make_l2x_simple("orange", _l2x_log_orange, 4, n, generator)


def make_additive(n: int = 10000, generator: torch.Generator | None = None) -> MaskedDataset:
    """
    Generate L2X's nonlinear-additive dataset.

    ``x ~ N(0, I_10)`` and ``P(y = 1 | x) = 1 / (1 + exp(g))`` with
    ``g = -100 sin(0.2 x1) + |x2| + x3 + exp(-x4) - 2.4``, as in the released
    L2X code; the paper text states ``-100 sin(2 x1) + 2 |x2| + x3 + exp(-x4)``
    instead. The ground truth is ``{x1, ..., x4}`` (0-based ``{0, 1, 2, 3}``)
    for every instance.

    Parameters
    ----------
    n : int
        Number of instances.
    generator : torch.Generator, optional
        Source of randomness; defaults to a fresh generator seeded with 0.

    Returns
    -------
    MaskedDataset
        ``x`` of shape ``(n, 10)``, sampled labels ``y`` of shape ``(n,)``,
        ``truth`` of shape ``(n, 10)`` and soft targets ``probs`` of shape
        ``(n, 2)``.
    """
    return _make_l2x_simple("additive", _l2x_log_additive, 4, n, generator)


def make_switch(n: int = 10000, generator: torch.Generator | None = None) -> MaskedDataset:
    """
    Generate L2X's switch-feature dataset (released-code variant).

    Following the released L2X code: ``x ~ N(0, I_10)``; the last feature
    ``x10`` (0-based 9) is shifted by ``+3`` for the first ``n // 2`` rows and
    by ``-3`` for the others. The first group follows the orange-skin response
    on 0-based features ``0..3``; the second follows the nonlinear-additive
    response on features ``0..3``, after which those features are swapped with
    features ``4..7`` so the additive key features sit at ``4..7``. Rows are
    then shuffled, together with their probabilities and ground truth, and
    labels are sampled.

    Per-row ground truth (0-based) is ``{0, 1, 2, 3, 9}`` for orange rows and
    ``{4, 5, 6, 7, 9}`` for additive rows: the switch feature counts as true.

    Notes
    -----
    The L2X paper instead uses ``x1`` as the switch feature with a
    ``N(3, 1)`` / ``N(-3, 1)`` mixture. The released NumPy code swaps the two
    column blocks with a tuple assignment of views, which in fact copies
    features ``0..3`` into ``4..7``; here the blocks are truly swapped, as
    intended by the code's comment.

    Parameters
    ----------
    n : int
        Number of instances.
    generator : torch.Generator, optional
        Source of randomness; defaults to a fresh generator seeded with 0.

    Returns
    -------
    MaskedDataset
        ``x`` of shape ``(n, 10)``, sampled labels ``y`` of shape ``(n,)``,
        ``truth`` of shape ``(n, 10)`` and soft targets ``probs`` of shape
        ``(n, 2)``.
    """
    _check_n(n)
    generator = _default_generator(generator)
    x = torch.randn(n, _L2X_DIM, generator=generator)
    half = n // 2
    x[:half, 9] += 3.0
    x[half:, 9] -= 3.0
    log_f = torch.cat([_l2x_log_orange(x[:half]), _l2x_log_additive(x[half:])])
    swap = torch.tensor([4, 5, 6, 7, 0, 1, 2, 3, 8, 9])
    x[half:] = x[half:][:, swap]

    truth = torch.zeros(n, _L2X_DIM)
    truth[:half, [0, 1, 2, 3, 9]] = 1.0
    truth[half:, [4, 5, 6, 7, 9]] = 1.0

    perm = torch.randperm(n, generator=generator)
    x, log_f, truth = x[perm], log_f[perm], truth[perm]
    probs = _probs_from_log_f(log_f)
    y = _sample_labels(probs, generator)
    return MaskedDataset(x, y, truth, probs=probs, name="switch", num_classes=2)


# ---------------------------------------------------------------------------
# The true response as a predictor
# ---------------------------------------------------------------------------

_SWITCHING_BRANCHES = {"s1": ("A", "B"), "s2": ("A", "C"), "s3": ("B", "C")}
_L2X_LOG_F = {"xor": _l2x_log_xor, "orange": _l2x_log_orange, "additive": _l2x_log_additive}


class TrueResponse(nn.Module):
    r"""
    The true class probabilities :math:`P(y \mid x)` of a synthetic dataset, as a predictor.

    ``forward(x)`` returns logits ``(..., 2)`` equal to :math:`(0, -g(x))`, whose softmax is
    :math:`(\sigma(g), \sigma(-g)) = (P(y = 0 \mid x), P(y = 1 \mid x))`, with :math:`g` the
    dataset's log-response (``f = exp(g)``, module docstring); a dataset's ``probs`` hold the
    same numbers for the instances drawn.

    The features of these datasets are i.i.d. :math:`\mathcal N(0, 1)`, so for a selection
    :math:`R` the true conditional of the rest is :math:`\mathcal N(0, I)`, which
    :class:`~lexppl.imputers.GaussianImputer` draws, and

    .. math::

        F(y \mid x_R) = \mathbb E_{x_{\bar R} \sim \mathcal N(0, I)}\, P(y \mid x_R, x_{\bar R}).

    That is the function EVAL-X's objective is maximised by (Jethani et al. 2021, eq. 5 and
    App. E): ``EvalX.from_predictor(TrueResponse(name), GaussianImputer())`` is the evaluator a
    trained EVAL-X approximates, its expectation estimated with ``num_imputations`` draws
    (:meth:`~lexppl.methods.EvalX.score`).

    :param str name: ``"s1"``, ``"s2"``, ``"s3"``, ``"xor"``, ``"orange"`` or ``"additive"``.
        Not ``"switch"``: its switch feature is drawn from a mixture shifted by :math:`\pm 3`,
        and which response applies is not a function of ``x``.

    Example::

        exact = EvalX.from_predictor(TrueResponse("s3"), GaussianImputer())
        exact.score(test.x, test.y, masks, num_imputations=512)  # {"eacc": ..., "eauroc": ...}
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        names = (*_SWITCHING_BRANCHES, *_L2X_LOG_F)
        if name not in names:
            why = " (its response is not a function of x)" if name == "switch" else ""
            raise ValueError(f"TrueResponse has no dataset {name!r}{why}; expected one of {names}.")
        self.name = name
        self.num_features = _INVASE_DIM if name in _SWITCHING_BRANCHES else _L2X_DIM

    def log_response(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`g(x)` for inputs ``(N, D)``: ``(N,)``."""
        if self.name in _SWITCHING_BRANCHES:
            low, high = _SWITCHING_BRANCHES[self.name]
            use_low = x[:, _CONTROL_FEATURE] < 0
            return torch.where(use_low, _LOG_F[low](x), _LOG_F[high](x))
        return _L2X_LOG_F[self.name](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.num_features:
            raise ValueError(
                f"TrueResponse({self.name!r}) takes inputs (..., {self.num_features}); "
                f"got shape {tuple(x.shape)}."
            )
        flat = x.reshape(-1, self.num_features)
        log_f = self.log_response(flat)
        logits = torch.stack([torch.zeros_like(log_f), -log_f], dim=-1)
        return logits.reshape((*x.shape[:-1], 2))
