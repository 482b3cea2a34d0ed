"""
Switching Panels datasets (LEX paper, Senetaire et al. 2023, §4.2 and App. C.2).

Each image is made of two panels side by side, in random order: a *target*
panel, whose class is the label, and a *distractor* panel. The ground-truth
selection is the target panel ("the maximum ground truth selection is the
panel corresponding to the target image", §4.2).

Layout conventions shared by all Switching Panels datasets:

- ``x`` has shape ``(n, 1, H, 2W)`` with values in ``[0, 1]``; the two
  ``H x W`` panels sit side by side along the width.
- ``truth`` has shape ``(n, H, 2W)``: one mask entry per pixel position (there
  is a single channel), 1 on every pixel of the target panel and 0 on the
  distractor panel. ``truth.flatten(1)`` is the ``(n, D)`` mask of a selector
  that outputs ``(n, 1, H, 2W)`` logits and flattens them, ``D = 2HW``.
- The side of the target panel is drawn independently per instance with
  probability 1/2 for each side.

Datasets:

- :func:`make_panels_digits` (``"panels-digits"``, built in, no download):
  scikit-learn's 8x8 digits beside 8x8 patches cut from scikit-learn's sample
  photographs (grey), images ``1 x 8 x 16``.
- :func:`load_switching_panels` (``"panels-mnist"``, ``"panels-fashion"``):
  SP-MNIST and SP-FashionMNIST, ``1 x 28 x 56``. Following §4.2, every image
  pairs one MNIST digit with one FashionMNIST image; SP-MNIST takes the
  digit's label as target (its panel is the truth), SP-FashionMNIST takes the
  FashionMNIST label (the other panel). For a given ``(seed, split)`` both
  datasets contain the same images and differ only in target and truth.
"""

from __future__ import annotations

import os
from numbers import Integral

import numpy as np
import torch

from lexppl.data.base import MaskedDataset
from lexppl.data.idx import mnist_layout_hint, read_mnist

__all__ = [
    "DIGITS_FRACTIONS",
    "MNIST_TRAIN_FRACTION",
    "digits_split_indices",
    "load_switching_panels",
    "make_panels_digits",
    "mnist_split_indices",
]

_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}

#: Fractions of scikit-learn's 1,797 digits in the train / val / test splits
#: of ``"panels-digits"``.
DIGITS_FRACTIONS = (0.6, 0.2, 0.2)

#: Fraction of the MNIST / FashionMNIST training set used for training; the
#: rest is the validation split (App. C.2: 80% / 20%, i.e. 48,000 / 12,000).
MNIST_TRAIN_FRACTION = 0.8

# Stream tags for numpy's SeedSequence: distinct tags give independent streams.
_TAG_TEST_PARTITION = 11
_TAG_PARTITION = 12
_TAG_LAYOUT = 13
_TAG_PAIRING = 14

# Side length of the average pooling applied to the sample photographs before
# cutting 8x8 patches, so that a patch shows texture rather than a flat area.
_PHOTO_POOL = 4

_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _check_split(split: str) -> None:
    if split not in _SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(_SPLIT_IDS)}")


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _take(count: int, n: int | None, name: str, split: str) -> int:
    """Number of instances to build: all ``count`` or the first ``n``."""
    if n is None:
        return count
    if isinstance(n, bool) or not isinstance(n, Integral) or n <= 0:
        raise ValueError(f"n must be a positive integer or None, got {n!r}")
    if n > count:
        raise ValueError(f"{name} {split!r} split has {count} instances, fewer than n={n}")
    return int(n)


def _rng(*entropy: int) -> np.random.Generator:
    return np.random.default_rng([int(e) for e in entropy])


def _assemble(
    target: torch.Tensor, distractor: torch.Tensor, target_left: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Put panels side by side.

    ``target`` and ``distractor`` are ``(n, H, W)`` in ``[0, 1]`` and
    ``target_left`` a boolean ``(n,)``. Returns ``x`` of shape
    ``(n, 1, H, 2W)`` and the truth ``(n, H, 2W)`` marking the target panel.
    """
    left_side = target_left[:, None, None]
    left = torch.where(left_side, target, distractor)
    right = torch.where(left_side, distractor, target)
    x = torch.cat([left, right], dim=-1).unsqueeze(1)
    ones = torch.ones_like(target)
    zeros = torch.zeros_like(target)
    truth = torch.cat(
        [torch.where(left_side, ones, zeros), torch.where(left_side, zeros, ones)], dim=-1
    )
    return x, truth


# --------------------------------------------------------------------- panels-digits
def digits_split_indices(num: int, split: str, seed: int) -> np.ndarray:
    """
    Indices of the digits used by one split of ``"panels-digits"``.

    The test split is fixed: the last 20% of a permutation drawn once with a
    constant seed, the same for every ``seed`` (as the paper evaluates every
    regenerated dataset on the same test images). The remaining 80% are
    shuffled with ``seed`` and cut into train (first 75%, i.e. 60% of all
    digits) and val (the rest, 20%). The three splits are disjoint for any
    given ``seed``.

    Parameters
    ----------
    num : int
        Number of digits available.
    split : str
        ``"train"``, ``"val"`` or ``"test"``.
    seed : int
        Non-negative seed of the train/val partition.

    Returns
    -------
    numpy.ndarray
        Integer indices into the digits, in the order the instances are built.
    """
    _check_split(split)
    _check_seed(seed)
    fixed = _rng(0, _TAG_TEST_PARTITION).permutation(num)
    num_test = round(num * DIGITS_FRACTIONS[2])
    if split == "test":
        return fixed[num - num_test :]
    rest = fixed[: num - num_test]
    rest = rest[_rng(seed, _TAG_PARTITION).permutation(len(rest))]
    num_train = round(num * DIGITS_FRACTIONS[0])
    return rest[:num_train] if split == "train" else rest[num_train:]


def _grey_photos() -> list[torch.Tensor]:
    """scikit-learn's sample photographs in grey ``[0, 1]``, average-pooled."""
    from sklearn.datasets import load_sample_images

    photos = []
    for image in load_sample_images().images:
        rgb = torch.as_tensor(np.asarray(image, dtype=np.float64) / 255.0)
        grey = rgb @ torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)
        pooled = torch.nn.functional.avg_pool2d(grey[None, None], _PHOTO_POOL)[0, 0]
        photos.append(pooled.to(torch.float32))
    return photos


def make_panels_digits(split: str = "train", seed: int = 0, n: int | None = None) -> MaskedDataset:
    """
    Switching Panels built from scikit-learn data (no download).

    Each image is ``1 x 8 x 16``: one of scikit-learn's 8x8 handwritten digits
    (:func:`sklearn.datasets.load_digits`, values 0-16 scaled to ``[0, 1]``)
    beside an 8x8 patch cut at a uniformly random position from one of
    scikit-learn's two sample photographs
    (:func:`sklearn.datasets.load_sample_images`, converted to grey with the
    ITU-R 601 luma weights, scaled to ``[0, 1]`` and average-pooled over 4x4
    pixel blocks so that a patch covers a 32x32 region of the photograph).
    The digit is on the left or the right with probability 1/2. The target is
    the digit's class (10 classes); the truth ``(n, 8, 16)`` is the digit's
    panel.

    Splits use disjoint digits, 60% / 20% / 20% of the 1,797 digits (see
    :func:`digits_split_indices`; the test digits do not depend on ``seed``).
    Photograph patches, panel order and the order of the instances are drawn
    from a generator seeded by ``(seed, split)``, so a ``(seed, split)`` pair
    always gives the same data and the global random state is untouched.

    Parameters
    ----------
    split : str
        ``"train"`` (1,078 images), ``"val"`` (360) or ``"test"`` (359).
    seed : int
        Non-negative seed; regenerates the panel layout and the train/val
        partition.
    n : int, optional
        Number of instances: the first ``n`` of the split (default: all).

    Returns
    -------
    MaskedDataset
        ``x`` ``(n, 1, 8, 16)``, ``y`` ``(n,)``, ``truth`` ``(n, 8, 16)``,
        named ``"panels-digits"``.
    """
    from sklearn.datasets import load_digits

    _check_split(split)
    _check_seed(seed)
    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32) / 16.0
    labels = torch.as_tensor(digits.target, dtype=torch.int64)
    index = digits_split_indices(len(images), split, seed)
    count = _take(len(index), n, "panels-digits", split)
    size = len(index)
    index = torch.as_tensor(index[:count])

    # The layout of the whole split is drawn whatever n is, so that the first n instances are
    # the same with any n (and the same as without it).
    rng = _rng(seed, _TAG_LAYOUT, _SPLIT_IDS[split])
    photos = _grey_photos()
    which = rng.integers(len(photos), size=size)
    patches = torch.empty(count, 8, 8)
    for k, p in enumerate(which):
        photo = photos[p]
        top = int(rng.integers(photo.shape[0] - 8 + 1))
        left = int(rng.integers(photo.shape[1] - 8 + 1))
        if k < count:
            patches[k] = photo[top : top + 8, left : left + 8]
    digit_left = torch.as_tensor(rng.random(size)[:count] < 0.5)

    x, truth = _assemble(images[index], patches, digit_left)
    return MaskedDataset(
        x,
        labels[index],
        truth,
        name="panels-digits",
        num_classes=10,
        feature_names=_pixel_names(8, 16),
    )


def _pixel_names(height: int, width: int) -> list[str]:
    return [f"pixel_{r}_{c}" for r in range(height) for c in range(width)]


# ---------------------------------------------------------- SP-MNIST / SP-FashionMNIST
def mnist_split_indices(num: int, split: str, seed: int, pool: str = "mnist") -> np.ndarray:
    """
    Indices into one MNIST-format set used by one Switching Panels split.

    ``"train"`` and ``"val"`` index the *training* files: a permutation of
    the ``num`` training images drawn with ``(seed, pool)`` is cut into its
    first 80% (train) and the remaining 20% (val), App. C.2. ``"test"``
    indexes the *test* files: ``arange(num)``, the test images in file order.
    MNIST and FashionMNIST (``pool``) are partitioned independently.

    Parameters
    ----------
    num : int
        Number of images in the file set the split comes from (the training
        set for train and val, the test set for test).
    split : str
        ``"train"``, ``"val"`` or ``"test"``.
    seed : int
        Non-negative seed; regenerates the partition.
    pool : str
        ``"mnist"`` or ``"fashion"``.

    Returns
    -------
    numpy.ndarray
        Integer indices, in the order the split uses them.
    """
    _check_split(split)
    _check_seed(seed)
    pools = {"mnist": 0, "fashion": 1}
    if pool not in pools:
        raise ValueError(f"unknown pool {pool!r}; expected one of {list(pools)}")
    if split == "test":
        return np.arange(num)
    order = _rng(seed, _TAG_PARTITION, pools[pool]).permutation(num)
    num_train = round(num * MNIST_TRAIN_FRACTION)
    return order[:num_train] if split == "train" else order[num_train:]


def _missing_message(root: str, folder: str, train: bool) -> str:
    # Name the layouts read_mnist searches (the CLI's --root help names the same); download=True
    # is the Python API's only other way in, so the message says so without the CLI offering it.
    dataset = {"MNIST": "mnist", "FashionMNIST": "fashion"}[folder]
    return (
        f"{folder} {'training' if train else 'test'} files not found under root={root!r}: "
        f"expected {mnist_layout_hint(dataset, train)} (from Python, download=True lets "
        "torchvision fetch them when a network is available)"
    )


def _read_mnist_format(root: str, folder: str, train: bool, download: bool):
    """Images ``(N, 28, 28)`` uint8 and labels ``(N,)``: the IDX files themselves when they
    are under ``root`` (torchvision's ``raw/`` layout or one ``.gz`` folder per dataset, see
    :mod:`lexppl.data.idx`), else torchvision (which may download)."""
    from torchvision import datasets

    found = read_mnist(root, {"MNIST": "mnist", "FashionMNIST": "fashion"}[folder], train)
    if found is not None:
        return found

    cls = {"MNIST": datasets.MNIST, "FashionMNIST": datasets.FashionMNIST}[folder]
    raw = os.path.join(root, folder, "raw")
    missing = [name for name in _MNIST_FILES if not os.path.isfile(os.path.join(raw, name))]
    legacy = os.path.join(root, folder, "processed")
    has_legacy = all(
        os.path.isfile(os.path.join(legacy, name)) for name in ("training.pt", "test.pt")
    )
    if missing and not has_legacy and not download:
        raise FileNotFoundError(_missing_message(root, folder, train))
    try:
        data = cls(root, train=train, download=download)
    except RuntimeError as err:
        raise FileNotFoundError(_missing_message(root, folder, train)) from err
    return data.data, data.targets


def load_switching_panels(
    split: str = "train",
    root: str | os.PathLike | None = None,
    seed: int = 0,
    n: int | None = None,
    target: str = "mnist",
    download: bool = False,
) -> MaskedDataset:
    """
    SP-MNIST or SP-FashionMNIST (LEX paper §4.2, App. C.2).

    Every ``1 x 28 x 56`` image is an MNIST digit and a FashionMNIST image
    side by side in random order (§4.2: "we randomly sample a single image
    from both MNIST and FashionMNIST ... and arrange them in a random order").
    With ``target="mnist"`` (SP-MNIST) the label is the digit's class and the
    truth ``(n, 28, 56)`` its panel; with ``target="fashion"``
    (SP-FashionMNIST) the label is the FashionMNIST class and the truth the
    FashionMNIST panel. Pixels are divided by 255 (App. C.2).

    Splits (App. C.2): train and val come from the training files only, a
    random 80% / 20% partition (48,000 / 12,000 images with the full data);
    test comes from the test files only (10,000 images). Each set is
    partitioned independently (:func:`mnist_split_indices`); the k-th image of
    a split pairs the k-th MNIST image of the split with the k-th image of an
    independent shuffle of the split's FashionMNIST images, so every image is
    used at most once per split, and the split has
    ``min(#MNIST, #FashionMNIST)`` images. ``seed`` regenerates everything:
    the train/val partition, the pairing and the panel order ("5 generated
    datasets ... the panels are redistributed at random", §4.2); the test
    images are always the same, only their pairing and order change. For a
    given ``(seed, split)`` SP-MNIST and SP-FashionMNIST have the same ``x``.

    Note: §4.2 mentions a 45,000 / 15,000 train/val split while App. C.2
    gives 80% / 20%; this follows App. C.2.

    Parameters
    ----------
    split : str
        ``"train"``, ``"val"`` or ``"test"``.
    root : str or os.PathLike
        Directory in torchvision's layout: ``root/MNIST/raw/`` and
        ``root/FashionMNIST/raw/``, each with the uncompressed IDX files
        ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (what
        ``torchvision.datasets.MNIST(root, download=False)`` reads;
        torchvision also accepts its legacy ``processed/{training,test}.pt``).
    seed : int
        Non-negative seed of the generated dataset.
    n : int, optional
        Number of instances: the first ``n`` of the split (default: all).
    target : str
        ``"mnist"`` (SP-MNIST) or ``"fashion"`` (SP-FashionMNIST).
    download : bool
        Forwarded to torchvision, which then fetches missing files from the
        internet. Off by default; nothing is downloaded unless asked.

    Returns
    -------
    MaskedDataset
        ``x`` ``(n, 1, 28, 56)``, ``y`` ``(n,)``, ``truth`` ``(n, 28, 56)``,
        named ``"panels-mnist"`` or ``"panels-fashion"``.

    Raises
    ------
    FileNotFoundError
        If the files are missing (the message names ``root`` and the expected
        layout).
    ValueError
        If ``root`` is not given or an argument is invalid.
    """
    _check_split(split)
    _check_seed(seed)
    if target not in ("mnist", "fashion"):
        raise ValueError(f"unknown target {target!r}; expected 'mnist' or 'fashion'")
    name = f"panels-{target}"
    if root is None:
        raise ValueError(
            f"{name} needs root=: a directory holding MNIST/raw/ and FashionMNIST/raw/ "
            "in torchvision's layout (pass download=True to fetch them)"
        )
    root = os.fspath(root)
    train = split != "test"
    mnist_x, mnist_y = _read_mnist_format(root, "MNIST", train, download)
    fashion_x, fashion_y = _read_mnist_format(root, "FashionMNIST", train, download)

    mnist_index = mnist_split_indices(len(mnist_x), split, seed, "mnist")
    fashion_index = mnist_split_indices(len(fashion_x), split, seed, "fashion")
    rng = _rng(seed, _TAG_PAIRING, _SPLIT_IDS[split])
    fashion_index = fashion_index[rng.permutation(len(fashion_index))]
    count = min(len(mnist_index), len(fashion_index))
    count = _take(count, n, name, split)
    mnist_index = torch.as_tensor(mnist_index[:count])
    fashion_index = torch.as_tensor(fashion_index[:count])
    mnist_left = torch.as_tensor(rng.random(count) < 0.5)

    mnist_panels = mnist_x[mnist_index].to(torch.float32) / 255.0
    fashion_panels = fashion_x[fashion_index].to(torch.float32) / 255.0
    if target == "mnist":
        x, truth = _assemble(mnist_panels, fashion_panels, mnist_left)
        y = mnist_y[mnist_index]
    else:
        x, truth = _assemble(fashion_panels, mnist_panels, ~mnist_left)
        y = fashion_y[fashion_index]
    height, width = x.shape[-2:]
    return MaskedDataset(
        x,
        y,
        truth,
        name=name,
        num_classes=10,
        feature_names=_pixel_names(height, width),
    )
