"""Export a LEX model's posterior over explanations to ArviZ ``InferenceData``."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from torch import Tensor

from lexppl._version import __version__
from lexppl.models.lex import LEX, MASK, OBSERVED

with warnings.catch_warnings():
    # ArviZ 0.2x announces its refactor with a FutureWarning once a day at import time.
    warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
    import arviz as az

__all__ = ["to_inference_data"]


def _site(trace, role: str) -> dict:
    for site in trace.nodes.values():
        if site["type"] == "sample" and site["infer"].get("lex") == role:
            if role != MASK or not site["is_observed"]:
                return site
    raise ValueError(f"The model has no LEX {role} site; is it a lexppl LEX model?")


def _check_guide(model_trace, guide_trace) -> None:
    # The export draws masks (and their imputations) from the model, p(z|x): a guide that
    # proposed them, such as a MaskProposal, would be replayed in their place.
    proposed = [
        name
        for name, site in model_trace.nodes.items()
        if site["type"] == "sample"
        and "lex" in site["infer"]
        and guide_trace.nodes.get(name, {}).get("type") == "sample"
    ]
    if proposed:
        raise ValueError(
            f"the guide draws the model's LEX site(s) {proposed}; to_inference_data takes a "
            f"guide over global latents only (e.g. a BayesianLEX's autoguide), since it draws "
            f"masks and imputations from the model itself."
        )


def _global_latents(model_trace, guide_trace) -> dict[str, Tensor]:
    # Latent sites of the model drawn by the guide (e.g. Bayesian selector weights).
    return {
        name: site["value"]
        for name, site in model_trace.nodes.items()
        if site["type"] == "sample"
        and not site["is_observed"]
        and "lex" not in site["infer"]
        and name in guide_trace.nodes
    }


def _numpy(value: Tensor) -> np.ndarray:
    return value.detach().cpu().numpy()


@torch.no_grad()
def to_inference_data(
    model: LEX,
    guide: Callable | None = None,
    x: Tensor | None = None,
    y: Tensor | None = None,
    *,
    num_samples: int = 400,
    num_chains: int = 4,
    num_likelihood_masks: int = 16,
    feature_names: Sequence[str] | None = None,
    include_weights: bool = False,
) -> az.InferenceData:
    r"""
    Draw from the posterior over explanations of ``x`` and return it as ArviZ
    ``InferenceData``.

    Each of the ``num_samples`` draws runs ``guide(x, y)`` (e.g. the autoguide of a
    :class:`~lexppl.models.BayesianLEX`: one draw :math:`\gamma_s \sim q_\phi` of the selector
    weights) and replays ``model.model`` against it. Groups:

    - ``posterior``: ``selection_probability`` :math:`\mathbb E[Z_d \mid x_n, \gamma_s]`, dims
      ``(chain, draw, instance, feature)`` (exact given the draw: Bernoulli probabilities,
      k-subset marginals); with ``include_weights``, the guide-drawn latents too (named by
      their sites, e.g. ``"selector.0.weight"``).
    - ``posterior_predictive``: ``mask`` :math:`z \sim p_{\gamma_s}(z|x)` ``(chain, draw,
      instance, feature)`` and ``y`` :math:`\sim p_\theta(y|\tilde x)` ``(chain, draw,
      instance)``, one mask and imputation per draw.
    - ``log_likelihood`` (when ``y`` is given): ``y``, the per-instance
      :math:`\log \frac{1}{M}\sum_{m=1}^{M} p_\theta(y_n|\tilde x^{m})` with
      :math:`M` = ``num_likelihood_masks`` masks drawn given :math:`\gamma_s` (the LEX bound
      :math:`\mathcal L_{M,1}`; exact for :math:`M\to\infty`), for ``arviz.loo``/``waic``.
    - ``observed_data``: ``y`` ``(instance)`` when given; ``constant_data``: ``x``.

    The draws are independent, so the ``num_chains`` "chains" are groups of ``num_samples /
    num_chains`` i.i.d. draws (``arviz.summary`` then reports R-hat near 1 and an ESS near the
    number of draws; several chains keep its diagnostics defined). For a plain
    :class:`~lexppl.models.LEX` (the default empty guide) every draw has the same selector and
    only the predictive groups vary.

    :param model: a :class:`~lexppl.models.LEX` (or :class:`~lexppl.models.BayesianLEX`).
    :param guide: callable ``(x, y) ->`` anything, whose sample sites give the model's global
        latents; default ``model.guide``.
    :param x: inputs ``(N, ...)``; :param y: optional targets ``(N,)``.
    :param int num_samples: total number of posterior draws (a multiple of ``num_chains``).
    :param int num_chains: number of groups of draws.
    :param int num_likelihood_masks: masks per draw for the log-likelihood.
    :param feature_names: names of the ``D`` mask coordinates (default ``x1 .. xD``).
    :param bool include_weights: also store the guide-drawn latents in ``posterior``.
    :returns: :class:`arviz.InferenceData`; write it with ``idata.to_netcdf(path)``.

    **References**

    [1] Kumar, Carroll, Hartikainen, Martin, *ArviZ: a unified library for exploratory analysis
        of Bayesian models in Python*, JOSS 2019.
    """
    if not isinstance(model, LEX):
        raise TypeError(f"to_inference_data needs a lexppl LEX model; got {type(model).__name__}.")
    if x is None or not isinstance(x, Tensor) or x.dim() < 2:
        raise ValueError("x must be a tensor of inputs with shape (n_samples, ...).")
    if y is not None and (not isinstance(y, Tensor) or y.shape != x.shape[:1]):
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(
            f"y must be a tensor of one label per row of x, shape ({x.shape[0]},); got {shape}."
        )
    for name, value in [
        ("num_samples", num_samples),
        ("num_chains", num_chains),
        ("num_likelihood_masks", num_likelihood_masks),
    ]:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"Expected {name} to be an int >= 1 but got {value!r}.")
    if num_samples % num_chains:
        raise ValueError(
            f"num_samples={num_samples} must be a multiple of num_chains={num_chains}."
        )
    guide = model.guide if guide is None else guide

    draws: dict[str, list] = {"selection_probability": [], "mask": [], "y": [], "log_lik": []}
    latents: dict[str, list] = {}
    for _ in range(num_samples):
        guide_trace = poutine.trace(guide).get_trace(x, y)
        replayed = poutine.replay(model.model, trace=guide_trace)
        trace = poutine.trace(replayed).get_trace(x, None)
        _check_guide(trace, guide_trace)
        mask = _site(trace, MASK)
        draws["selection_probability"].append(mask["fn"].mean)
        draws["mask"].append(mask["value"])
        draws["y"].append(_site(trace, OBSERVED)["value"])
        if include_weights:
            for name, value in _global_latents(trace, guide_trace).items():
                latents.setdefault(name, []).append(value)
        if y is not None:
            observed = poutine.trace(replayed).get_trace(x, y, num_masks=num_likelihood_masks)
            site = _site(observed, OBSERVED)
            log_prob = site["fn"].log_prob(site["value"])
            log_prob = log_prob.reshape(-1, x.shape[0])  # (particles, N)
            draws["log_lik"].append(log_prob.logsumexp(0) - math.log(log_prob.shape[0]))

    def stacked(values: list[Tensor]) -> np.ndarray:
        value = _numpy(torch.stack(values))
        return value.reshape(num_chains, num_samples // num_chains, *value.shape[1:])

    num_features = draws["mask"][0].shape[-1]
    if feature_names is None:
        feature_names = [f"x{d + 1}" for d in range(num_features)]
    feature_names = [str(name) for name in feature_names]
    if len(feature_names) != num_features:
        raise ValueError(
            f"feature_names has {len(feature_names)} names for {num_features} mask features."
        )
    coords = {"instance": np.arange(x.shape[0]), "feature": feature_names}
    x_dims = ["instance", "feature"] if tuple(x.shape[1:]) == (num_features,) else ["instance"]
    dims = {
        "selection_probability": ["instance", "feature"],
        "mask": ["instance", "feature"],
        "y": ["instance"],
        "x": x_dims,
    }
    posterior = {"selection_probability": stacked(draws["selection_probability"])}
    posterior.update({name: stacked(values) for name, values in latents.items()})
    groups = {
        "posterior": posterior,
        "posterior_predictive": {
            "mask": stacked(draws["mask"]).astype(np.int8),
            "y": stacked(draws["y"]),
        },
        "constant_data": {"x": _numpy(x)},
    }
    if y is not None:
        groups["log_likelihood"] = {"y": stacked(draws["log_lik"])}
        groups["observed_data"] = {"y": _numpy(y)}
    attrs = {
        "inference_library": "pyro",
        "inference_library_version": pyro.__version__,
        "lexppl_version": __version__,
        "draws": "independent draws from the guide; chains are groups of them",
    }
    return az.from_dict(**groups, coords=coords, dims=dims, attrs=attrs)
