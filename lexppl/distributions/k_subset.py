"""Conditional-Bernoulli distribution over masks with exactly ``k`` selected features."""

from __future__ import annotations

import itertools
import math
import numbers
from typing import ClassVar

import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution
from torch import Tensor
from torch.distributions import constraints
from torch.distributions.utils import lazy_property, logits_to_probs, probs_to_logits

from lexppl.distributions.independent_bernoulli import _parse_mask_params
from lexppl.distributions.relaxed import (
    _check_temperature,
    gumbel_noise,
    hard_topk,
    relaxed_max_of_k,
    relaxed_topk,
    straight_through,
)

_EMPTY_SHAPE = torch.Size()

__all__ = [
    "MAX_ENUMERATE_SUBSETS",
    "RELAXED_KSUBSET_METHODS",
    "KSubset",
    "KSubsetStraightThrough",
    "RelaxedKSubset",
]

#: Largest number of masks ``C(D, k)`` that :meth:`KSubset.enumerate_support` materialises.
MAX_ENUMERATE_SUBSETS = 100_000

#: Relaxations accepted by :meth:`KSubset.relaxed`.
RELAXED_KSUBSET_METHODS = ("topk", "max_of_k")


def _check_k(k: object, D: int) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(
            f"k must be an int with 1 <= k <= D; got k={k!r} of type {type(k).__name__}, D={D}."
        )
    k = int(k)
    if not 1 <= k <= D:
        raise ValueError(f"k must satisfy 1 <= k <= D; got k={k}, D={D}.")
    return k


class _KHot(constraints.Constraint):
    """Binary vectors (last dim) with exactly ``k`` ones."""

    is_discrete = True
    event_dim = 1

    def __init__(self, k: int) -> None:
        self.k = k
        super().__init__()

    def check(self, value: Tensor) -> Tensor:
        binary = ((value == 0) | (value == 1)).all(-1)
        return binary & (value.sum(-1) == self.k)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k})"


def _table_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """Precision of the dynamic programme: float64 (the tables accumulate rounding over ``D``
    steps on values of size ``log C(D, k)``), except on devices without float64 support."""
    if device.type == "mps":
        return dtype
    return torch.promote_types(dtype, torch.float64)


#: How far below the lowest finite centred logit a -inf logit is put (``_centered_logits``),
#: by the tables' dtype: a relative weight below the dtype's resolution (e^-100, e^-40), yet
#: within the range where the tables' second derivatives stay finite (709, 88; ``_esp_table``).
_IMPOSSIBLE_GAP = {torch.float64: 100.0, torch.float32: 40.0}


def _neg_big(dtype: torch.dtype) -> float:
    """A finite stand-in for log(0): far below any reachable log e_j, yet safe to add twice."""
    return torch.finfo(dtype).min / 8


def _esp_table(logits: Tensor, k: int, reverse: bool) -> Tensor:
    r"""Log elementary symmetric polynomials of prefixes (or suffixes) of ``exp(logits)``.

    Returns ``T`` of shape ``batch_shape + (D + 1, k + 1)`` with, for ``reverse=False``,
    ``T[..., i, j] = log e_j(w_1, ..., w_i)`` (first ``i`` features) and, for ``reverse=True``,
    ``T[..., i, j] = log e_j(w_{i+1}, ..., w_D)`` (features from index ``i`` on, 0-based).
    Uses the recursion :math:`e_j(w_{1:i}) = e_j(w_{1:i-1}) + w_i e_{j-1}(w_{1:i-1})` in log
    space: O(D k) work, a Python loop over the ``D`` features with vectorised updates over the
    batch and ``j``, ``1 <= k <= D``.

    Impossible entries (``j`` larger than the number of features) are never computed: over
    the first ``k`` features the row grows by one entry per feature, and the table's short rows
    are padded with a large finite negative constant instead of ``-inf``. Past them, the one
    stand-in that meets a real value is the padding beside :math:`\log e_0 = 0`, and it is 80
    below it rather than huge (changing :math:`\log e_0` by :math:`\log(1 + e^{-80}) \approx
    10^{-35}` per feature). So second derivatives (the Hessian of :meth:`KSubset.log_prob`,
    REBAR's in the logits) stay finite while the centred log weights are within about 709 of
    each other (the tables are float64; 88 in float32, on MPS), past which ``logaddexp``'s
    double backward overflows.
    """
    D = logits.shape[-1]
    # unbind, not logits[..., d]: a slice's backward fills a zero tensor of the whole input,
    # once per feature (O(D^2) work); unbind's backward is one stack.
    columns = logits.unsqueeze(-1).unbind(-2)  # D tensors of shape batch_shape + (1,)
    order = iter(range(D - 1, -1, -1) if reverse else range(D))
    zero = logits.new_zeros((*logits.shape[:-1], 1))  # log e_0 of no feature
    row = zero
    rows = [row]
    for d in itertools.islice(order, k):
        # After i <= k features: log e_0..e_i, all reachable; e_i = w_d e_{i-1} alone.
        shifted = row + columns[d]  # log(w_d e_j), j = 0..i-1
        inner = torch.logaddexp(row[..., 1:], shifted[..., :-1])
        row = torch.cat([zero, inner, shifted[..., -1:]], dim=-1)
        rows.append(row)
    pad = zero - 80.0  # see above: logaddexp(log e_0, pad) = log e_0 + 1e-35
    for d in order:  # the rest: e_j <- e_j + w_d e_{j-1}, j = 0..k
        shifted = torch.cat([pad, row[..., :-1] + columns[d]], dim=-1)
        row = torch.logaddexp(row, shifted)
        rows.append(row)
    neg = _neg_big(logits.dtype)
    rows = [F.pad(r, (0, k + 1 - r.shape[-1]), value=neg) for r in rows[:k]] + rows[k:]
    if reverse:
        rows.reverse()
    return torch.stack(rows, dim=-2)


def sequential_draw(table: Tensor, noise: Tensor, k: int) -> tuple[Tensor, Tensor]:
    r"""
    The exact sequential sampler of :class:`KSubset` at given logistic noise: feature by
    feature, :math:`z_d = 1[A_{d, j_d} + \epsilon_d > 0]` with :math:`j_d` the ones left
    (forced steps taken as forced), for ``table`` = :attr:`KSubset.sequential_logits`,
    ``batch_shape + (D, k + 1)``, and ``noise`` :math:`\epsilon`, ``batch_shape + (D,)``.

    :returns: ``(z, counts)``: the mask in the table's dtype and the count :math:`j_d` of ones
        left before each step (long), both ``batch_shape + (D,)``.
    """
    D = table.shape[-2]
    left = torch.full(noise.shape[:-1], k, dtype=torch.long, device=table.device)
    z, counts = [], []
    for d, (row, noise_d) in enumerate(zip(table.unbind(-2), noise.unbind(-1), strict=True)):
        a = row.gather(-1, left.unsqueeze(-1)).squeeze(-1)
        take = ((a + noise_d > 0) & (left > 0)) | (left >= D - d)
        counts.append(left)
        z.append(take)
        left = left - take.long()
    return torch.stack(z, -1).to(table.dtype), torch.stack(counts, -1)


class KSubset(TorchDistribution):
    r"""
    Conditional-Bernoulli distribution over masks with exactly ``k`` selected features:

    .. math::

        p(z) = \frac{\prod_{d=1}^{D} w_d^{z_d}}{e_k(w)} \, 1\Big[\sum_d z_d = k\Big],
        \qquad w_d = e^{\ell_d},

    where :math:`e_k(w) = \sum_{|S| = k} \prod_{d \in S} w_d` is the elementary symmetric
    polynomial [1, 2]. Equivalently, it is :class:`IndependentBernoulli` with logits
    :math:`\ell` conditioned on :math:`\sum_d z_d = k` (so ``probs`` are the Bernoulli
    probabilities :math:`\sigma(\ell)` before conditioning, not the marginals). This is the
    "fixed number of selected features" selector :math:`p_\gamma(z \mid x)` of LEX [3].

    Mask convention: :math:`z_d = 1` means feature ``d`` is *selected/kept*. Masks are float
    tensors of 0.0/1.0 with the dtype of the parameters. Parameters of shape
    ``batch_shape + (D,)`` give ``batch_shape`` and ``event_shape = (D,)``.

    Everything is computed exactly, in log space, vectorised over batch dimensions:

    - :attr:`log_normalizer` :math:`\log e_k(w)` by an O(Dk) dynamic programme [1];
    - :meth:`log_prob` :math:`= \sum_d z_d \ell_d - \log e_k(w)` (``-inf``, or a validation
      error, when :math:`\sum_d z_d \neq k`);
    - :meth:`sample`: exact sequential sampling from the table of suffix polynomials, with
      :math:`P(z_d = 1 \mid j \text{ left}) = w_d e_{j-1}(w_{d+1:D}) / e_j(w_{d:D})` [2];
    - :attr:`mean`: exact, differentiable marginals :math:`P(Z_d = 1)` (a forward-backward
      pass over the same tables); they sum to ``k``;
    - :attr:`mode`: the ``k`` largest logits.

    :attr:`log_normalizer`, :meth:`log_prob` and :attr:`mean` are differentiable twice (the
    Hessian of :meth:`log_prob` in the logits is :math:`-\mathrm{Cov}(Z)`, as for any
    exponential family), e.g. for a Laplace approximation.

    Before the recursion the logits are shifted by their (detached) ``k``-th largest value;
    since every mask has ``k`` ones this leaves all probabilities unchanged and keeps the
    tables well scaled for extreme logits (e.g. :math:`|\ell| \sim 10^3`, ``D`` in the
    thousands). The tables are computed in float64 (except on MPS) and results are cast back
    to the dtype of the logits.

    Pathwise replacements are returned by :meth:`straight_through` (the Gumbel top-k
    straight-through estimator of the LEX paper, App. E.2 [3, 4]) and :meth:`relaxed`
    (soft masks from the relaxed top-k [4] or from L2X's max of ``k`` concrete draws [5]).

    :param logits: logits :math:`\ell`, shape ``batch_shape + (D,)``.
    :param probs: :math:`\sigma(\ell)` (alternative to ``logits``).
    :param int k: number of selected features, ``1 <= k <= D`` (keyword-only).
    :param validate_args: torch distribution argument/sample validation flag.

    References:

    [1] Weighted finite population sampling to maximize entropy, X.-H. Chen, A. P. Dempster,
        J. S. Liu, Biometrika (1994).
    [2] Conditional Poisson sampling / the conditional Bernoulli model: see [1], Section 4.
    [3] Explainability as statistical inference, H. H. Senetaire, D. Garreau, J. Frellsen,
        P.-A. Mattei (ICML 2023).
    [4] Reparameterizable Subset Sampling via Continuous Relaxations, S. M. Xie, S. Ermon
        (IJCAI 2019).
    [5] Learning to Explain: An Information-Theoretic Perspective on Model Interpretation,
        J. Chen, L. Song, M. J. Wainwright, M. I. Jordan (ICML 2018).
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "logits": constraints.independent(constraints.real, 1),
        "probs": constraints.independent(constraints.unit_interval, 1),
    }
    has_rsample = False
    has_enumerate_support = True

    def __init__(
        self,
        logits: Tensor | None = None,
        probs: Tensor | None = None,
        *,
        k: int,
        validate_args: bool | None = None,
    ) -> None:
        param_name, param = _parse_mask_params(logits, probs, type(self).__name__)
        self.k = _check_k(k, param.shape[-1])
        setattr(self, param_name, param)
        self._root = None
        super().__init__(param.shape[:-1], param.shape[-1:], validate_args=validate_args)
        if self._validate_args:
            # A logit of -inf (probability 0) is a feature that cannot be selected; k of them
            # must remain, or no k-subset has positive probability.
            selectable = (param > (-math.inf if param_name == "logits" else 0.0)).sum(-1)
            if bool((selectable < self.k).any()):
                raise ValueError(
                    f"{type(self).__name__} needs at least k = {self.k} selectable features "
                    f"(logit above -inf, probability above 0) in every row; got "
                    f"{int(selectable.min())}."
                )

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(KSubset, _instance)
        batch_shape = torch.Size(batch_shape)
        param_shape = batch_shape + self.event_shape
        for name in ("logits", "probs"):
            if name in self.__dict__:
                setattr(new, name, getattr(self, name).expand(param_shape))
        new.k = self.k
        # Derived tables are computed once on the unexpanded instance and broadcast.
        new._root = self if self._root is None else self._root
        super(KSubset, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self) -> constraints.Constraint:
        return _KHot(self.k)

    @lazy_property
    def logits(self) -> Tensor:
        return probs_to_logits(self.probs, is_binary=True)

    @lazy_property
    def probs(self) -> Tensor:
        return logits_to_probs(self.logits, is_binary=True)

    @property
    def num_features(self) -> int:
        """Number of features ``D`` (the event size)."""
        return self.event_shape[0]

    # ----- derived quantities (computed on the root instance, broadcast to this batch) -----

    def _broadcast_from_root(self, name: str, event_dims: int) -> Tensor:
        value = getattr(self._root, name)
        tail = value.shape[value.dim() - event_dims :] if event_dims else torch.Size()
        return value.expand(self.batch_shape + tail)

    @lazy_property
    def _shift(self) -> Tensor:
        """Detached k-th largest logit, shape ``batch_shape + (1,)``."""
        if self._root is not None:
            return self._broadcast_from_root("_shift", 1)
        return torch.topk(self.logits.detach(), self.k, dim=-1).values[..., -1:]

    @lazy_property
    def _centered_logits(self) -> Tensor:
        """Shifted logits in the precision of the tables (float64 unless unsupported)."""
        if self._root is not None:
            return self._broadcast_from_root("_centered_logits", 1)
        logits = self.logits
        dtype = _table_dtype(logits.dtype, logits.device)
        centered = logits.to(dtype) - self._shift.to(dtype)
        # A logit of -inf (a feature that cannot be selected) would make the tables'
        # logaddexp(-inf, -inf) and their gradients NaN. Put it _IMPOSSIBLE_GAP below the
        # lowest finite logit instead: a weight below the dtype's resolution relative to any
        # other, with finite first and second derivatives; log_prob sends masks that select it
        # to -inf.
        impossible = centered.isneginf()
        lowest = torch.where(impossible, math.inf, centered).amin(-1, keepdim=True).detach()
        return torch.where(impossible, lowest - _IMPOSSIBLE_GAP.get(dtype, 40.0), centered)

    @lazy_property
    def _prefix_table(self) -> Tensor:
        if self._root is not None:
            return self._broadcast_from_root("_prefix_table", 2)
        return _esp_table(self._centered_logits, self.k, reverse=False)

    @lazy_property
    def _suffix_table(self) -> Tensor:
        if self._root is not None:
            return self._broadcast_from_root("_suffix_table", 2)
        return _esp_table(self._centered_logits, self.k, reverse=True)

    @lazy_property
    def _centered_log_normalizer(self) -> Tensor:
        if self._root is not None:
            return self._broadcast_from_root("_centered_log_normalizer", 0)
        return self._prefix_table[..., -1, self.k]

    @property
    def log_normalizer(self) -> Tensor:
        r""":math:`\log e_k(\exp \ell)`, shape ``batch_shape``."""
        log_z = self._centered_log_normalizer + self.k * self._shift.squeeze(-1)
        return log_z.to(self.logits.dtype)

    @lazy_property
    def _marginals(self) -> Tensor:
        if self._root is not None:
            return self._broadcast_from_root("_marginals", 1)
        k = self.k
        prefix = self._prefix_table[..., :-1, :k]  # e_j(features before d), j < k
        suffix = self._suffix_table[..., 1:, :k].flip(-1)  # e_{k-1-j}(features after d)
        others = torch.logsumexp(prefix + suffix, dim=-1)
        log_marginals = self._centered_logits + others - self._centered_log_normalizer.unsqueeze(-1)
        return log_marginals.exp().to(self.logits.dtype)

    @lazy_property
    def sequential_logits(self) -> Tensor:
        r"""
        Logits of the exact sequential sampler: ``A[..., d, j]`` is
        :math:`\mathrm{logit}\, P(Z_d = 1 \mid j \text{ of the } k \text{ ones are left for
        features } d, \dots, D-1) = \ell_d + \log e_{j-1}(w_{d+1:D}) - \log e_j(w_{d+1:D})`,
        shape ``batch_shape + (D, k + 1)``, in the precision of the tables and differentiable
        w.r.t. the logits. Forced steps hold large finite values: ``j = 0`` a large negative
        one, ``j`` equal to the number of features left a large positive one. REBAR for k-subset
        masks (:func:`~lexppl.infer.rebar.k_subset_rebar_noise`) draws its masks with these.
        """
        if self._root is not None:
            return self._broadcast_from_root("sequential_logits", 2)
        after = self._suffix_table[..., 1:, :]  # log e_j(w_{d+1:D}), (D, k + 1)
        pad = torch.full_like(after[..., :1], _neg_big(after.dtype))
        one_less = torch.cat([pad, after[..., :-1]], dim=-1)  # log e_{j-1}(w_{d+1:D})
        return self._centered_logits.unsqueeze(-1) + one_less - after

    # ----- distribution API -----

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        # sum_d z_d (l_d - c) = sum_d z_d l_d - k c for valid masks, so the shift cancels.
        centered = self._centered_logits
        value = value.to(centered.dtype)
        score = (value * centered).sum(-1)
        lp = (score - self._centered_log_normalizer).to(self.logits.dtype)
        # Not a k-subset, or one that selects a feature whose logit is -inf.
        invalid = (value.sum(-1) != self.k) | ((value != 0) & self.logits.isneginf()).any(-1)
        return lp.masked_fill(invalid, -math.inf)

    def sample(self, sample_shape: torch.Size = _EMPTY_SHAPE) -> Tensor:
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            table = self.sequential_logits.detach()
            table = table.expand(shape[:-1] + table.shape[-2:])
            uniforms = torch.rand(shape, dtype=table.dtype, device=table.device)
            logistic = uniforms.log() - (-uniforms).log1p()
            z, _ = sequential_draw(table, -logistic, self.k)  # take d when u < P(Z_d = 1 | left)
        return z.to(self.logits.dtype)

    @property
    def mean(self) -> Tensor:
        r"""Exact marginals :math:`P(Z_d = 1)`, differentiable w.r.t. the logits; sum to ``k``."""
        return self._marginals

    @property
    def variance(self) -> Tensor:
        """Marginal variances :math:`P(Z_d = 1)(1 - P(Z_d = 1))`."""
        return self.mean * (1.0 - self.mean)

    @property
    def mode(self) -> Tensor:
        """The most probable mask: ones at the ``k`` largest logits."""
        return hard_topk(self.logits.detach(), self.k)

    def entropy(self) -> Tensor:
        r""":math:`H = \log e_k(w) - \sum_d P(Z_d = 1) \ell_d`."""
        centered = self._centered_logits
        expected = (self.mean.to(centered.dtype) * centered).sum(-1)
        return (self._centered_log_normalizer - expected).to(self.logits.dtype)

    def enumerate_support(self, expand: bool = True) -> Tensor:
        """All ``C(D, k)`` masks in lexicographic order of the selected indices, shape
        ``(C(D, k),) + batch_shape + (D,)`` (singleton batch dims if ``expand=False``).
        Refused when ``C(D, k) > MAX_ENUMERATE_SUBSETS``."""
        D, k = self.num_features, self.k
        count = math.comb(D, k)
        if count > MAX_ENUMERATE_SUBSETS:
            raise ValueError(
                f"enumerate_support would create C(D, k) = {count} masks with D={D}, k={k}; "
                f"refusing above {MAX_ENUMERATE_SUBSETS} (MAX_ENUMERATE_SUBSETS)."
            )
        param = self.logits if "logits" in self.__dict__ else self.probs
        index = torch.tensor(list(itertools.combinations(range(D), k)), device=param.device)
        masks = torch.zeros(count, D, dtype=param.dtype, device=param.device)
        masks.scatter_(-1, index, 1.0)
        masks = masks.reshape((count,) + (1,) * len(self.batch_shape) + (D,))
        if expand:
            masks = masks.expand((count, *self.batch_shape, D))
        return masks

    def straight_through(self, temperature: float = 0.5) -> KSubsetStraightThrough:
        """Gumbel top-k straight-through replacement; see :class:`KSubsetStraightThrough`."""
        return KSubsetStraightThrough(
            logits=self.logits,
            k=self.k,
            temperature=temperature,
            validate_args=self._validate_args,
        )

    def relaxed(self, temperature: float = 0.5, method: str = "topk") -> RelaxedKSubset:
        """Soft k-subset masks; see :class:`RelaxedKSubset`."""
        return RelaxedKSubset(
            logits=self.logits,
            k=self.k,
            temperature=temperature,
            method=method,
            validate_args=self._validate_args,
        )


class KSubsetStraightThrough(KSubset):
    r"""
    Gumbel top-k straight-through replacement of :class:`KSubset` (LEX, App. E.2 [1]).

    :meth:`rsample` perturbs the logits with Gumbel noise, :math:`g_d = \ell_d + G_d`, and
    returns in the forward pass the hard mask of the ``k`` largest :math:`g_d` (exactly ``k``
    ones), while the backward pass uses the gradient of the relaxed top-k of Xie & Ermon [2]:
    ``k`` successive softmaxes :math:`p^{(i)} = \mathrm{softmax}(\alpha^{(i)}/\tau)` with
    :math:`\alpha^{(1)} = g` and :math:`\alpha^{(i+1)} = \alpha^{(i)} + \log(1 - p^{(i)})`,
    summed over ``i``.

    .. warning::

        The forward samples follow the Gumbel-top-k law, i.e. Plackett–Luce sampling of ``k``
        features *without replacement* with weights :math:`e^{\ell_d}` [3], not the exact
        conditional Bernoulli :class:`KSubset` (the two coincide only for ``k = 1`` or
        ``k = D``). This is a known bias of the pathwise estimator, on top of the bias of the
        straight-through gradient itself.

    :meth:`log_prob`, ``mean``, ``entropy``, ... are those of the exact :class:`KSubset`
    (:meth:`log_prob` evaluated at the hard value). Batch shape ``batch_shape``, event shape
    ``(D,)``, masks use the convention 1 = selected.

    :param logits: logits :math:`\ell`, shape ``batch_shape + (D,)``.
    :param probs: :math:`\sigma(\ell)` (alternative to ``logits``).
    :param int k: number of selected features.
    :param temperature: relaxed top-k temperature :math:`\tau > 0`.

    References:

    [1] Explainability as statistical inference, H. H. Senetaire, D. Garreau, J. Frellsen,
        P.-A. Mattei (ICML 2023).
    [2] Reparameterizable Subset Sampling via Continuous Relaxations, S. M. Xie, S. Ermon
        (IJCAI 2019).
    [3] Stochastic Beams and Where to Find Them: The Gumbel-Top-k Trick for Sampling Sequences
        Without Replacement, W. Kool, H. van Hoof, M. Welling (ICML 2019).
    """

    has_rsample = True

    def __init__(
        self,
        logits: Tensor | None = None,
        probs: Tensor | None = None,
        *,
        k: int,
        temperature: float = 0.5,
        validate_args: bool | None = None,
    ) -> None:
        self.temperature = _check_temperature(temperature)
        super().__init__(logits=logits, probs=probs, k=k, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(KSubsetStraightThrough, _instance)
        new.temperature = self.temperature
        return super().expand(batch_shape, _instance=new)

    def rsample(self, sample_shape: torch.Size = _EMPTY_SHAPE) -> Tensor:
        shape = self._extended_shape(sample_shape)
        logits = self.logits.expand(shape)
        scores = logits + gumbel_noise(shape, logits)
        hard = hard_topk(scores.detach(), self.k)
        soft = relaxed_topk(scores, self.k, self.temperature)
        return straight_through(hard, soft)

    def sample(self, sample_shape: torch.Size = _EMPTY_SHAPE) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)


class RelaxedKSubset(TorchDistribution):
    r"""
    Continuous relaxations of ``k``-subset masks (soft, non-negative masks), for
    pathwise gradients with constant imputation. With :math:`g_d = \ell_d + G_d`,
    :math:`G_d \sim \mathrm{Gumbel}(0, 1)`:

    - ``method="topk"``: relaxed top-k of Xie & Ermon [1],
      :math:`u = \sum_{i=1}^{k} \mathrm{softmax}(\alpha^{(i)} / \tau)` with
      :math:`\alpha^{(1)} = g`, :math:`\alpha^{(i+1)} = \alpha^{(i)} + \log(1 - p^{(i)})`;
      :math:`\sum_d u_d = k`, and :math:`u \to` the hard top-k of :math:`g` as
      :math:`\tau \to 0` (Gumbel-top-k samples, see :class:`KSubsetStraightThrough`).
      As in [1] the output is not clipped: at moderate temperatures an entry can exceed 1
      (see :func:`~lexppl.distributions.relaxed_topk`).
    - ``method="max_of_k"``: L2X's relaxation [2], the elementwise maximum of ``k``
      independent concrete draws :math:`\mathrm{softmax}((\ell + G^{(i)}) / \tau)`.

    The density of these soft samples is intractable: :meth:`log_prob` raises
    ``NotImplementedError``. Batch shape ``batch_shape``, event shape ``(D,)``; a value near 1
    means the feature is selected. ``max_of_k`` values lie in :math:`[0, 1]`.

    :param logits: logits :math:`\ell`, shape ``batch_shape + (D,)``.
    :param probs: :math:`\sigma(\ell)` (alternative to ``logits``).
    :param int k: subset size, ``1 <= k <= D``.
    :param temperature: temperature :math:`\tau > 0`.
    :param method: ``"topk"`` or ``"max_of_k"``.

    References:

    [1] Reparameterizable Subset Sampling via Continuous Relaxations, S. M. Xie, S. Ermon
        (IJCAI 2019).
    [2] Learning to Explain: An Information-Theoretic Perspective on Model Interpretation,
        J. Chen, L. Song, M. J. Wainwright, M. I. Jordan (ICML 2018).
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "logits": constraints.independent(constraints.real, 1),
        "probs": constraints.independent(constraints.unit_interval, 1),
    }
    support = constraints.independent(constraints.nonnegative, 1)
    has_rsample = True
    has_enumerate_support = False

    def __init__(
        self,
        logits: Tensor | None = None,
        probs: Tensor | None = None,
        *,
        k: int,
        temperature: float = 0.5,
        method: str = "topk",
        validate_args: bool | None = None,
    ) -> None:
        if method not in RELAXED_KSUBSET_METHODS:
            raise ValueError(
                f"Unknown relaxation method {method!r}; choose one of "
                f"{', '.join(repr(m) for m in RELAXED_KSUBSET_METHODS)}."
            )
        self.method = method
        self.temperature = _check_temperature(temperature)
        param_name, param = _parse_mask_params(logits, probs, type(self).__name__)
        self.k = _check_k(k, param.shape[-1])
        setattr(self, param_name, param)
        super().__init__(param.shape[:-1], param.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(RelaxedKSubset, _instance)
        batch_shape = torch.Size(batch_shape)
        param_shape = batch_shape + self.event_shape
        for name in ("logits", "probs"):
            if name in self.__dict__:
                setattr(new, name, getattr(self, name).expand(param_shape))
        new.k = self.k
        new.temperature = self.temperature
        new.method = self.method
        super(RelaxedKSubset, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @lazy_property
    def logits(self) -> Tensor:
        return probs_to_logits(self.probs, is_binary=True)

    @lazy_property
    def probs(self) -> Tensor:
        return logits_to_probs(self.logits, is_binary=True)

    def rsample(self, sample_shape: torch.Size = _EMPTY_SHAPE) -> Tensor:
        shape = self._extended_shape(sample_shape)
        logits = self.logits.expand(shape)
        if self.method == "max_of_k":
            return relaxed_max_of_k(logits, self.k, self.temperature)
        scores = logits + gumbel_noise(shape, logits)
        return relaxed_topk(scores, self.k, self.temperature)

    def log_prob(self, value: Tensor) -> Tensor:
        raise NotImplementedError(
            f"RelaxedKSubset(method={self.method!r}) has no tractable density; its soft "
            "samples are only meant for pathwise (rsample) gradient estimators. Use "
            "KSubset.log_prob on hard masks instead."
        )
