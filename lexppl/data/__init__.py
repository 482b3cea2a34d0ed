"""
Datasets with ground-truth selections for evaluating explanations.

Use :func:`load` to get a named dataset split as a :class:`MaskedDataset`.
The available names are the keys of :data:`DATASETS`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from numbers import Integral

import torch

from lexppl.data.base import MaskedDataset
from lexppl.data.celeba import load_celeba_smile, mouth_box_mask
from lexppl.data.idx import read_idx, read_mnist
from lexppl.data.panels import load_switching_panels, make_panels_digits
from lexppl.data.synthetic import (
    TrueResponse,
    make_additive,
    make_orange,
    make_s1,
    make_s2,
    make_s3,
    make_switch,
    make_xor,
)

__all__ = [
    "DATASETS",
    "SPLITS",
    "MaskedDataset",
    "TrueResponse",
    "load",
    "load_celeba_smile",
    "load_switching_panels",
    "make_additive",
    "make_orange",
    "make_panels_digits",
    "make_s1",
    "make_s2",
    "make_s3",
    "make_switch",
    "make_xor",
    "mouth_box_mask",
    "read_idx",
    "read_mnist",
]

#: Valid split names, mapped to the offset used to derive a synthetic seed.
SPLITS = {"train": 0, "val": 1, "test": 2}

#: Default number of instances per split for the synthetic datasets.
_SYNTHETIC_SIZE = 10000

#: Loader signature shared by all registry entries: ``(split, root, seed, n)``; a loader of files
#: that torchvision can fetch also takes a ``download`` keyword.
Loader = Callable[[str, str | None, int, int | None], MaskedDataset]


def _synthetic(make: Callable[..., MaskedDataset]) -> Loader:
    """Wrap a synthetic generator as a registry loader; ``root`` is ignored."""

    def loader(split: str, root: str | None, seed: int, n: int | None) -> MaskedDataset:
        generator = torch.Generator().manual_seed(3 * int(seed) + SPLITS[split])
        return make(_SYNTHETIC_SIZE if n is None else int(n), generator)

    loader.__doc__ = make.__doc__
    return loader


def _panels_digits(split: str, root: str | None, seed: int, n: int | None) -> MaskedDataset:
    """Switching Panels from scikit-learn's digits and photographs; ``root`` is ignored."""
    return make_panels_digits(split, seed, n)


def _panels_mnist(
    split: str, root: str | None, seed: int, n: int | None, *, download: bool = False
) -> MaskedDataset:
    """SP-MNIST from torchvision's MNIST and FashionMNIST files under ``root``."""
    return load_switching_panels(split, root, seed, n, download=download, target="mnist")


def _panels_fashion(
    split: str, root: str | None, seed: int, n: int | None, *, download: bool = False
) -> MaskedDataset:
    """SP-FashionMNIST from torchvision's MNIST and FashionMNIST files under ``root``."""
    return load_switching_panels(split, root, seed, n, download=download, target="fashion")


def _celeba_smile(
    split: str, root: str | None, seed: int, n: int | None, *, download: bool = False
) -> MaskedDataset:
    """CelebA Smile from torchvision's CelebA layout under ``root``."""
    return load_celeba_smile(split, root, seed, n, download=download)


#: The dataset registry: name -> loader ``(split, root, seed, n) -> MaskedDataset``.
#: Add new datasets here.
DATASETS: dict[str, Loader] = {
    "s1": _synthetic(make_s1),
    "s2": _synthetic(make_s2),
    "s3": _synthetic(make_s3),
    "xor": _synthetic(make_xor),
    "orange": _synthetic(make_orange),
    "additive": _synthetic(make_additive),
    "switch": _synthetic(make_switch),
    "panels-digits": _panels_digits,
    "panels-mnist": _panels_mnist,
    "panels-fashion": _panels_fashion,
    "celeba-smile": _celeba_smile,
}


def load(
    name: str,
    split: str = "train",
    root: str | None = None,
    seed: int = 0,
    n: int | None = None,
    download: bool = False,
) -> MaskedDataset:
    """
    Load one split of a named dataset.

    For synthetic datasets each split is an independent sample drawn from a
    :class:`torch.Generator` seeded with ``3 * seed + k`` where ``k`` is 0, 1
    or 2 for ``"train"``, ``"val"`` and ``"test"``; distinct ``(seed, split)``
    pairs therefore never share a generator seed, and the global random state
    is left untouched.

    Parameters
    ----------
    name : str
        Dataset name, one of the keys of :data:`DATASETS`
        (``"s1"``, ``"s2"``, ``"s3"``, ``"xor"``, ``"orange"``,
        ``"additive"``, ``"switch"``).
    split : str
        One of ``"train"``, ``"val"``, ``"test"``.
    root : str, optional
        Directory holding dataset files; ignored by synthetic datasets.
    seed : int
        Non-negative base seed.
    n : int, optional
        Number of instances; defaults to 10,000 for synthetic datasets.
    download : bool
        Let torchvision fetch missing files into ``root`` (``panels-mnist``,
        ``panels-fashion``, ``celeba-smile``; needs a network). Nothing is
        downloaded otherwise.

    Returns
    -------
    MaskedDataset
        The requested split, with ``x`` of shape ``(n, D)``, ``y`` of shape
        ``(n,)`` and ``truth`` of shape ``(n, D)``.

    Raises
    ------
    ValueError
        If ``name`` or ``split`` is unknown, ``seed`` is negative or ``n`` is
        not positive.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset name {name!r}; expected one of {sorted(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, Integral) or n <= 0):
        raise ValueError(f"n must be a positive integer or None, got {n!r}")
    if not download:
        return DATASETS[name](split, root, seed, n)
    if "download" not in inspect.signature(DATASETS[name]).parameters:
        raise ValueError(f"dataset {name!r} has no files to download (download=True)")
    return DATASETS[name](split, root, seed, n, download=True)
