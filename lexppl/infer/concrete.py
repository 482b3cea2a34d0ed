"""Concrete (Gumbel-softmax) relaxations: soft masks with pathwise gradients (L2X's estimator)."""

from __future__ import annotations

import pyro.poutine as poutine
from pyro.distributions import Delta
from pyro.infer.reparam.reparam import Reparam
from torch import Tensor
from torch.distributions import Independent

from lexppl.infer.bound import BoundTerms, ImportanceWeightedBound
from lexppl.models.lex import IMPUTATION, MASK

__all__ = ["CONCRETE_METHODS", "ConcreteBound", "ConcreteReparam"]

#: Relaxations of k-subset masks (see :class:`~lexppl.distributions.RelaxedKSubset`).
CONCRETE_METHODS = ("topk", "max_of_k")


def _check_method(method: str) -> str:
    if method not in CONCRETE_METHODS:
        raise ValueError(
            f"Unknown concrete relaxation method {method!r}; valid choices are "
            f"{list(CONCRETE_METHODS)}."
        )
    return method


class ConcreteReparam(Reparam):
    r"""Replace a mask site by its continuous relaxation: the site's value becomes a *soft*
    mask drawn with ``rsample`` from ``fn.relaxed(...)``:

    - :class:`~lexppl.distributions.IndependentBernoulli`: binary concrete
      :math:`u_d = \sigma((\ell_d + L_d)/\tau)` (``method`` is not used);
    - :class:`~lexppl.distributions.KSubset`: relaxed top-k of Xie & Ermon
      (``method="topk"``) or L2X's elementwise maximum of ``k`` concrete draws
      (``method="max_of_k"``).

    :param float temperature: :math:`\tau > 0`.
    :param str method: ``"topk"`` or ``"max_of_k"`` (k-subset families only).
    """

    def __init__(self, temperature: float = 0.5, method: str = "topk") -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0; got {temperature}.")
        self.temperature = temperature
        self.method = _check_method(method)

    def apply(self, msg):
        fn = msg["fn"]
        if not hasattr(fn, "relaxed"):
            raise ValueError(
                f"The concrete estimator needs a mask family with a continuous relaxation "
                f"(IndependentBernoulli, KSubset); site {msg['name']!r} has {type(fn).__name__}."
            )
        if hasattr(fn, "k"):  # k-subset families choose the relaxation
            relaxed = fn.relaxed(self.temperature, method=self.method)
        else:
            relaxed = fn.relaxed(self.temperature)
        return {"fn": relaxed, "value": None, "is_observed": False}


def _mask_sites_config(reparam: ConcreteReparam):
    def config(msg):
        is_mask = msg["infer"].get("lex") == MASK and not msg["is_observed"]
        return reparam if is_mask else None

    return config


def _is_deterministic_fill(fill) -> bool:
    while isinstance(fill, Independent):
        fill = fill.base_dist
    return isinstance(fill, Delta)


class ConcreteBound(ImportanceWeightedBound):
    r"""
    The LEX bound with *soft* masks: every mask site is replaced by its concrete relaxation
    (Maddison et al. 2017; Jang et al. 2017) and the objective

    .. math::

        \mathcal L^{\tau}_{L} = \sum_n \mathbb E_{u^{1:L} \sim q_\tau(\cdot|x_n)}\Big[\log
            \frac1L \sum_{l=1}^L p_\theta\big(y_n \mid u^l \odot x_n + (1-u^l)\odot c\big)\Big]

    is differentiated pathwise through the reparameterised soft masks :math:`u^l \in [0,1]^D`
    (for ``method="topk"`` entries may slightly exceed 1, see
    :class:`~lexppl.distributions.RelaxedKSubset`). With a
    :class:`~lexppl.distributions.KSubset` family and ``method="max_of_k"`` this is the
    estimator of L2X (Chen et al. 2018); ``method="topk"`` uses the relaxed top-k of Xie &
    Ermon (2019); :class:`~lexppl.distributions.IndependentBernoulli` masks use the binary
    concrete. The value reported is :math:`\mathcal L^{\tau}`, not the discrete bound, and the
    gradient is biased for the discrete one (the bias vanishes as :math:`\tau \to 0`, while
    the variance grows). The predictor is trained on soft masks too.

    .. warning:: Soft masks only make sense for a deterministic, *single* imputation: a
        soft mask mixes the input with the imputed value, and with a random imputation the
        predictor would see half-imputed noise. The bound refuses multiple imputation. The
        imputer is found (a) through ``model.__self__.imputer.multiple`` when ``model`` is the
        bound method ``lex.model`` of a :class:`~lexppl.models.LEX`, else (b) from the traced
        imputation sites, whose fill distribution must be a ``Delta`` (constant imputation).
        (b) only sees the fill distribution, not the imputer, so a custom deterministic
        imputer whose fill is not a ``Delta`` is refused when the model is not ``lex.model``.

    :param int num_masks: :math:`L`.
    :param float temperature: relaxation temperature :math:`\tau > 0`.
    :param str method: ``"topk"`` or ``"max_of_k"``, the relaxation of k-subset masks
        (ignored for independent Bernoulli masks).

    **References**

    [1] Maddison, Mnih, Teh, *The Concrete Distribution*, ICLR 2017.
    [2] Jang, Gu, Poole, *Categorical Reparameterization with Gumbel-Softmax*, ICLR 2017.
    [3] Chen, Song, Wainwright, Jordan, *Learning to Explain: An Information-Theoretic
        Perspective on Model Interpretation*, ICML 2018.
    [4] Xie, Ermon, *Reparameterizable Subset Sampling via Continuous Relaxations*, IJCAI 2019.
    """

    needs_mask_log_prob = False
    pairs_each_datum_with_its_masks = False

    def __init__(self, num_masks: int = 1, temperature: float = 0.5, method: str = "topk") -> None:
        super().__init__(num_masks, 1)
        self.reparam = ConcreteReparam(temperature, method)
        self.temperature, self.method = temperature, method

    def check(self, model) -> None:
        """Refuse a LEX model with a multiple (random) imputer, when ``model`` is the bound
        method ``lex.model``; other callables are checked on their traced imputation sites."""
        imputer = getattr(getattr(model, "__self__", None), "imputer", None)
        if imputer is not None and getattr(imputer, "multiple", False):
            raise ValueError(
                "The concrete estimator feeds soft masks to the imputer; it needs a single "
                f"(constant) imputation, got {type(imputer).__name__}."
            )

    def _mask_handler(self, model):
        return poutine.reparam(model, config=_mask_sites_config(self.reparam))

    def _get_trace(self, model, guide, args, kwargs):
        self.check(model)
        model_trace, guide_trace = super()._get_trace(model, guide, args, kwargs)
        for site in model_trace.nodes.values():
            if site["type"] != "sample" or site["infer"].get("lex") != IMPUTATION:
                continue
            fill = getattr(site["fn"], "fill", None)
            if fill is None or not _is_deterministic_fill(fill):
                name = type(fill).__name__ if fill is not None else type(site["fn"]).__name__
                raise ValueError(
                    "The concrete estimator feeds soft masks to the imputer; it needs a single "
                    f"(constant) imputation, got a random fill distribution {name} at site "
                    f"{site['name']!r}."
                )
        return model_trace, guide_trace

    def _surrogate(self, terms: BoundTerms) -> Tensor:
        return terms.total
