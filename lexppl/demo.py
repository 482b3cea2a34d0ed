r"""
The built-in Switching Panels study run by ``lexppl demo``: the LEX paper's Fig. 5 in small.

Every image of ``"panels-digits"`` (:func:`lexppl.data.make_panels_digits`) is 8 x 16 pixels: a
handwritten digit (the label) beside a patch of a photograph, sides drawn at random; the
ground-truth selection is the digit's panel, half of the pixels. LEX is trained with one mask
entry per pixel (:class:`~lexppl.models.PixelGrid`), a U-Net selector, a convolutional
predictor and k-subset masks at a few selection rates :math:`k / 128`, with four imputations:
the three of the LEX paper's SP-MNIST study (§4.2, Fig. 5) and the marginal imputation of its
CelebA study (§4.3, App. B.8):

- **0-imputation**: unselected pixels are 0, selector and predictor trained jointly (the
  parametrisation of L2X / INVASE);
- **surrogate 0-imputation**: the predictor is first trained alone on Bernoulli(1/2) pixel
  masks with 0-imputation (REAL-X's surrogate, :func:`lexppl.train.pretrain_predictor`), then
  frozen while the selector trains;
- **marginal imputation**: unselected pixels are copied from a random held-out image
  (:class:`~lexppl.imputers.MarginalImputer`, fitted on the validation split);
- **mixture of logistics imputation**: unselected pixels are drawn from a mixture of
  discretised logistics conditioned on the selected ones
  (:class:`~lexppl.imputers.MixtureOfLogisticsImputer`, fitted on the training split).

With 0-imputation the predictor can read the label from *where* the selector puts its pixels:
the mask itself carries information, so a selection outside the digit panel costs nothing.
Multiple imputation removes that channel (the paper's argument), which shows as a lower false
discovery rate (share of the selected pixels outside the digit panel) at the same selection
rate. Every run is scored on the test split with ``num_samples`` masks per image: TPR and FDR
of the sampled masks against the digit panel, and ACC of the predictive averaged over the
masks.

**Settings.** The paper's SP-MNIST study (App. D: U-Net with 3 down-sampling steps, predictor
blocks of 32 and 64 filters, 100 epochs at lr 1e-4, weight decay 1e-3, batch 64) shortened to
minutes on one CPU thread for 8 x 16 images: U-Net depth 2 with 8 filters, predictor blocks of
16 and 32 filters, :data:`EPOCHS` epochs at lr 3e-3 without weight decay, batch 64, L = 2 masks
per image, and the straight-through gradient through the exact k-subset marginals
(``PathwiseBound(method="marginal")``). The default run (three rates, four imputations, 12
trainings and one surrogate pretraining) takes about 6.5 minutes of one idle CPU core.

**References**

[1] H. Senetaire, D. Garreau, J. Frellsen, P.-A. Mattei, *Explainability as statistical
    inference*, ICML 2023 (§4.2, Fig. 5, App. D).
[2] N. Jethani, M. Sudarshan, Y. Aphinyanaphongs, R. Ranganath, *Have we learned to explain?*,
    AISTATS 2021 (REAL-X's surrogate).
"""

from __future__ import annotations

import copy
import functools
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path

import pyro
import torch
from torch import Tensor, nn

from lexppl.data import load
from lexppl.data.base import MaskedDataset
from lexppl.distributions import KSubset
from lexppl.imputers import ConstantImputer, Imputer, MarginalImputer, MixtureOfLogisticsImputer
from lexppl.infer import PathwiseBound
from lexppl.metrics import accuracy, false_discovery_rate, true_positive_rate
from lexppl.models import CategoricalLikelihood, PixelGrid
from lexppl.models.lex import LEX
from lexppl.nets import ConvPredictor, UNetSelector
from lexppl.train import fit, pretrain_predictor

__all__ = [
    "DATASET",
    "EPOCHS",
    "METHODS",
    "SELECTION_RATES",
    "TRUE_SELECTION_RATE",
    "closest_rate",
    "run_demo",
]

logger = logging.getLogger(__name__)

DATASET = "panels-digits"
#: The digit panel is half of every image.
TRUE_SELECTION_RATE = 0.5
#: Selection rates trained by default: the curve, and the true rate for the table.
SELECTION_RATES = (0.1, 0.25, 0.5)
#: Training epochs of every run (and of the surrogate's pretraining).
EPOCHS = 15
#: The demo's rows, in order: name -> (imputation, surrogate pretraining of the predictor).
METHODS: dict[str, tuple[str, bool]] = {
    "0-imputation": ("constant", False),
    "surrogate 0-imputation": ("constant", True),
    "marginal imputation": ("marginal", False),
    "mixture of logistics imputation": ("mixture_of_logistics", False),
}
#: Optimiser and estimator settings shared by every run (see the module docstring).
_FIT = dict(batch_size=64, lr=3e-3, weight_decay=0.0)
_NUM_MASKS = 2
#: Test images drawn in the importance-map figures.
_MAP_IMAGES = 8


def closest_rate(rates: Sequence[float], target: float = TRUE_SELECTION_RATE) -> float:
    """The rate of ``rates`` closest to ``target`` (the smaller one on a tie)."""
    return min(rates, key=lambda rate: (abs(rate - target), rate))


def _check_settings(rates: Sequence[float], **counts: int) -> list[float]:
    for name, value in counts.items():
        minimum = 0 if name == "pretrain_epochs" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}.")
    rates = [float(rate) for rate in rates]
    if not rates:
        raise ValueError("rates is empty; give at least one selection rate in (0, 1].")
    for rate in rates:
        if not (0 < rate <= 1):  # also rejects NaN
            raise ValueError(f"selection rates must lie in (0, 1]; got {rate}.")
    return sorted(rates)


def _numbers_selected(rates: Sequence[float], num_groups: int) -> dict[float, int]:
    """k for every rate; rates that round to the same k are an error."""
    ks = {rate: max(1, round(rate * num_groups)) for rate in rates}
    if len(set(ks.values())) < len(ks):
        raise ValueError(
            f"selection rates {list(rates)} give repeated numbers of selected pixels "
            f"{list(ks.values())} out of {num_groups}; give distinct rates."
        )
    return ks


def _build(imputer: Imputer, groups: PixelGrid, k: int, seed: int) -> LEX:
    torch.manual_seed(seed)
    _, height, width = groups.input_shape
    return LEX(
        UNetSelector(groups, depth=2, base_channels=8),
        ConvPredictor(groups.channels, 10, channels=(16, 32), image_size=(height, width)),
        imputer,
        functools.partial(KSubset, k=k),
        CategoricalLikelihood(),
        groups=groups,
    )


def _pretrain_surrogate(
    model: LEX, x: Tensor, y: Tensor, epochs: int, seed: int, device: str
) -> None:
    # pretrain_predictor draws one Bernoulli(1/2) entry per input feature of an ungrouped model,
    # so it is given the images flattened and a predictor that puts them back in shape: the
    # masks are then per pixel, as REAL-X's surrogate.
    flat = LEX(
        model.selector,
        nn.Sequential(nn.Unflatten(-1, tuple(x.shape[1:])), model.predictor),
        model.imputer,
        model.mask_family,
        model.likelihood,
    )
    pretrain_predictor(flat, x.flatten(1), y, epochs=epochs, seed=seed, device=device, **_FIT)


def _score(
    model: LEX, test: MaskedDataset, num_samples: int, seed: int
) -> tuple[dict[str, float], Tensor]:
    """TPR, FDR and ACC on ``test``; and the pixel importance maps of the first images."""
    model.eval()
    device = next(model.parameters()).device
    x = test.x.to(device)
    truth = test.truth.flatten(1)
    pyro.set_rng_seed(seed)
    with torch.no_grad():
        masks = model.groups.expand(model.explain(x, num_samples=num_samples)).flatten(2)
        probs = model.predict(x, num_samples=num_samples)
        maps = model.importance_map(x[:_MAP_IMAGES])[:, 0]
    metrics = {
        "TPR": true_positive_rate(masks.cpu(), truth),
        "FDR": false_discovery_rate(masks.cpu(), truth),
        "ACC": accuracy(probs.cpu(), test.y),
    }
    return metrics, maps.cpu()


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def run_demo(
    out: str | Path = "runs/demo",
    rates: Sequence[float] = SELECTION_RATES,
    epochs: int = EPOCHS,
    pretrain_epochs: int = EPOCHS,
    n_train: int | None = None,
    n_test: int | None = None,
    num_samples: int = 100,
    seed: int = 0,
    device: str = "cpu",
    methods: Sequence[str] | None = None,
    progress: bool = False,
) -> list[dict]:
    """
    Train LEX on ``"panels-digits"`` with every imputation of :data:`METHODS` at every
    selection rate, score each run on the test split and write into ``out``:
    ``results.csv`` / ``results.md`` (one row per method and rate), ``curves.png`` (TPR, FDR
    and ACC against the selection rate, :func:`lexppl.plots.selection_rate_curves`) and
    ``importance-<method>.png`` (the importance maps :math:`\\mathbb E[Z|x]` of the first test
    images at the rate closest to the true one, :func:`lexppl.plots.importance_map`).

    :param rates: selection rates :math:`k / 128` in (0, 1], distinct after rounding k.
    :param int epochs: training epochs of every run.
    :param int pretrain_epochs: epochs of the surrogate predictor on random masks (shared by
        the surrogate runs of every rate).
    :param n_train: training images (default: the whole split, 1,078).
    :param n_test: test images (default: the whole split, 359).
    :param int num_samples: masks drawn per test image.
    :param int seed: seeds the data splits, the networks, the imputers and the training.
    :param str device: torch device.
    :param methods: names of :data:`METHODS` to run (default: all, in that order).
    :param bool progress: show a progress bar per training run.
    :returns: one dict per (method, rate): ``method``, ``selection_rate``, ``k``, ``TPR``,
        ``FDR``, ``ACC`` (fractions) and ``seconds`` (training time).
    :raises ValueError: on invalid settings.
    """
    from lexppl.plots import importance_map, selection_rate_curves
    from lexppl.reproduce.report import write_results

    rates = _check_settings(
        rates, epochs=epochs, pretrain_epochs=pretrain_epochs, num_samples=num_samples
    )
    methods = list(METHODS) if methods is None else list(methods)
    unknown = [name for name in methods if name not in METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown or no methods {unknown}; valid names are {list(METHODS)}.")
    train = load(DATASET, split="train", seed=seed, n=n_train)
    held_out = load(DATASET, split="val", seed=seed)
    test = load(DATASET, split="test", seed=seed, n=n_test)
    groups = PixelGrid(tuple(train.x.shape[1:]))
    ks = _numbers_selected(rates, groups.num_groups)
    report_rate = closest_rate(rates)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    needed = {METHODS[name][0] for name in methods}
    imputers: dict[str, Imputer] = {"constant": ConstantImputer(0.0)}
    if "marginal" in needed:
        imputers["marginal"] = MarginalImputer().fit(held_out.x)
    if "mixture_of_logistics" in needed:
        imputers["mixture_of_logistics"] = MixtureOfLogisticsImputer(
            n_components=10, random_state=seed
        ).fit(train.x)
    logger.info("fitted the imputers in %.1f s", time.perf_counter() - started)
    surrogate: dict[str, Tensor] | None = None
    rows: list[dict] = []
    maps: dict[str, tuple[Tensor, dict[str, float]]] = {}
    runs = [(rate, name) for rate in rates for name in methods]
    for index, (rate, name) in enumerate(runs, 1):
        imputation, pretrained = METHODS[name]
        k = ks[rate]
        model = _build(imputers[imputation], groups, k, seed).to(device)
        started = time.perf_counter()
        freeze: tuple[str, ...] = ()
        if pretrained:
            if surrogate is None:
                _pretrain_surrogate(model, train.x, train.y, pretrain_epochs, seed, device)
                surrogate = copy.deepcopy(model.predictor.state_dict())
            model.predictor.load_state_dict(surrogate)
            freeze = ("predictor",)
        fit(
            model,
            PathwiseBound(num_masks=_NUM_MASKS, method="marginal"),
            train.x,
            train.y,
            epochs=epochs,
            freeze=freeze,
            seed=seed,
            device=device,
            progress=progress,
            **_FIT,
        )
        seconds = time.perf_counter() - started
        metrics, importance = _score(model, test, num_samples, seed)
        rows.append(
            {
                "method": name,
                "selection_rate": rate,
                "k": k,
                **metrics,
                "seconds": round(seconds, 1),
            }
        )
        if rate == report_rate:
            maps[name] = (importance, metrics)
        logger.info(
            "[%d/%d] rate %.2f (k=%d) %s: TPR %.1f%%, FDR %.1f%%, ACC %.1f%% (%.0f s)",
            index,
            len(runs),
            rate,
            k,
            name,
            100 * metrics["TPR"],
            100 * metrics["FDR"],
            100 * metrics["ACC"],
            seconds,
        )

    notes = (
        f"LEX on the built-in Switching Panels ({DATASET}: 8x16 images, digit panel = half of "
        f"the pixels, {len(train)} training / {len(test)} test images, seed {seed}); k-subset "
        f"masks over the 128 pixels, {epochs} epochs per run (surrogate pretraining "
        f"{pretrain_epochs} epochs), {num_samples} sampled masks per test image. TPR / FDR: "
        f"selected pixels inside / outside the digit panel; ACC: predictive averaged over the "
        f"masks. All values are fractions."
    )
    write_results(
        out,
        rows,
        "lexppl demo: imputation on Switching Panels",
        notes=notes,
        columns=["method", "selection_rate", "k", "TPR", "FDR", "ACC", "seconds"],
    )
    figure = selection_rate_curves(rows)
    figure.suptitle(f"{DATASET}: LEX with four imputations (digit panel = rate 0.5)")
    figure.savefig(out / "curves.png", dpi=120)
    images = test.x[:_MAP_IMAGES, 0].numpy()
    for name, (importance, metrics) in maps.items():
        figure = importance_map(importance.numpy(), image=images)
        figure.suptitle(
            f"{name}: E[Z|x] at selection rate {report_rate:g} "
            f"(TPR {100 * metrics['TPR']:.0f}%, FDR {100 * metrics['FDR']:.0f}%, "
            f"ACC {100 * metrics['ACC']:.0f}%)"
        )
        figure.savefig(out / f"importance-{_slug(name)}.png", dpi=120)
    return rows
