"""
Reading MNIST-format IDX files (LeCun et al.'s layout, used by MNIST and Fashion-MNIST).

An IDX file is a big-endian header -- two zero bytes, a type code (``0x08`` for unsigned
bytes), the number of dimensions -- then one 4-byte size per dimension and the raw array.
:func:`read_mnist` finds the four files of a dataset in any of the layouts users have:

- torchvision's: ``<root>/MNIST/raw/train-images-idx3-ubyte`` (and ``FashionMNIST/raw/``);
- a plain folder per dataset: ``<root>/mnist/train-images-idx3-ubyte.gz`` (and ``fashion/``),
  gzip-compressed or not, which is how the files are published.

Only the IDX *content* is read; the archives' own checksums are never consulted, so
recompressed ``.gz`` files load as well as the originals.
"""

from __future__ import annotations

import gzip
import os

import numpy as np
import torch

__all__ = ["MNIST_FOLDERS", "mnist_layout_hint", "read_idx", "read_mnist"]

#: Folder names searched under ``root`` for each dataset, in order.
MNIST_FOLDERS = {
    "mnist": ("MNIST/raw", "mnist", "MNIST"),
    "fashion": ("FashionMNIST/raw", "fashion", "fashion-mnist", "FashionMNIST"),
}

_UNSIGNED_BYTE = 0x08


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """
    The array stored in an IDX file of unsigned bytes (``.gz`` or uncompressed).

    :raises ValueError: if the header is not an unsigned-byte IDX header or the file is
        shorter than its header says (a truncated or corrupt file).
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            content = handle.read()
    except (OSError, EOFError) as err:  # gzip raises these on a damaged archive
        raise ValueError(f"cannot read IDX file {path!r}: {err}") from err
    if len(content) < 4 or content[0] != 0 or content[1] != 0:
        raise ValueError(f"{path!r} is not an IDX file (bad magic number)")
    if content[2] != _UNSIGNED_BYTE:
        raise ValueError(f"{path!r}: IDX type code {content[2]:#04x}, expected unsigned bytes")
    ndim = content[3]
    header = 4 + 4 * ndim
    if len(content) < header:
        raise ValueError(
            f"{path!r} is truncated inside its header ({len(content)} of {header} bytes)"
        )
    shape = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape)) if shape else 0
    if len(content) < header + size:
        raise ValueError(
            f"{path!r} is truncated: its header announces shape {shape} ({size} bytes) but "
            f"only {len(content) - header} bytes follow"
        )
    return np.frombuffer(content, dtype=np.uint8, count=size, offset=header).reshape(shape)


def _find(root: str, dataset: str, name: str) -> str | None:
    for folder in MNIST_FOLDERS[dataset]:
        for candidate in (name, name + ".gz"):
            path = os.path.join(root, folder, candidate)
            if os.path.isfile(path):
                return path
    return None


def _file_names(train: bool) -> tuple[str, str]:
    prefix = "train" if train else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def mnist_layout_hint(dataset: str, train: bool) -> str:
    """What :func:`read_mnist` looks for, for error messages: the split's two file names and
    the folders searched, e.g. ``"t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (or .gz)
    in <root>/MNIST/raw/, <root>/mnist/ or <root>/MNIST/"``."""
    images, labels = _file_names(train)
    folders = [f"<root>/{folder}/" for folder in MNIST_FOLDERS[dataset]]
    return f"{images} and {labels} (or .gz) in {', '.join(folders[:-1])} or {folders[-1]}"


def read_mnist(
    root: str | os.PathLike, dataset: str = "mnist", train: bool = True
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """
    Images ``(N, 28, 28)`` and labels ``(N,)`` (both ``torch.uint8``/``int64``) of MNIST or
    Fashion-MNIST, read from IDX files under ``root`` in any layout of :data:`MNIST_FOLDERS`.

    :param dataset: ``"mnist"`` or ``"fashion"``.
    :param train: the 60,000 training images (True) or the 10,000 test images.
    :returns: ``None`` when the files are not there (callers decide whether to fall back to
        torchvision's download).
    :raises ValueError: for an unknown dataset, a corrupt file, or images and labels of
        different lengths.
    """
    if dataset not in MNIST_FOLDERS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {list(MNIST_FOLDERS)}")
    images_name, labels_name = _file_names(train)
    root = os.fspath(root)
    images_path = _find(root, dataset, images_name)
    labels_path = _find(root, dataset, labels_name)
    if images_path is None or labels_path is None:
        return None
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"{images_path!r} and {labels_path!r} do not match: images of shape "
            f"{images.shape}, labels of shape {labels.shape}"
        )
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))
