"""
CelebA Smile (LEX paper, Senetaire et al. 2023, §4.3 and App. C.3).

The task is to predict whether a face smiles (CelebA's ``Smiling``
attribute). The ground truth is a box around the mouth built from the two
mouth-corner landmarks (App. C.3): "a rectangle oriented following the
direction of the mouth, centered at the center of both mouth extremities and
with height corresponding to two times the length of the mouth and width
corresponding to the length of the mouth". Here *width* is read as the side
along the mouth direction and *height* as the side perpendicular to it, so
with mouth length ``L`` the box spans ``L`` along the mouth (corner to
corner) and ``2L`` across it (``L`` on each side of the mouth line); both
factors are parameters of :func:`mouth_box_mask`.

The mask lives on the grid the LEX selector uses for CelebA (App. D): the
128x128 centre crop divided into a 32x32 grid of 4x4-pixel patches. A patch is
selected when its square and the box overlap with positive area (touching
along an edge or at a corner does not count).
"""

from __future__ import annotations

import os
from numbers import Integral

import numpy as np
import torch

from lexppl.data.base import MaskedDataset

__all__ = [
    "CELEBA_FILES",
    "CROP_SIZE",
    "PATCH_SIZE",
    "load_celeba_smile",
    "mouth_box_mask",
]

#: Side of the centre crop (App. C.3).
CROP_SIZE = 128

#: Side of one selectable patch; the mask grid is ``CROP_SIZE // PATCH_SIZE``
#: = 32 patches wide (App. D).
PATCH_SIZE = 4

#: The files read under ``root/celeba/``.
CELEBA_FILES = (
    "list_attr_celeba.txt",
    "list_landmarks_align_celeba.txt",
    "list_eval_partition.txt",
)

_IMAGE_FOLDER = "img_align_celeba"
_PARTITION = {"train": 0, "val": 1, "test": 2}
_MOUTH_COLUMNS = ("leftmouth_x", "leftmouth_y", "rightmouth_x", "rightmouth_y")


def mouth_box_mask(
    left: torch.Tensor,
    right: torch.Tensor,
    grid: int = CROP_SIZE // PATCH_SIZE,
    patch: int = PATCH_SIZE,
    along: float = 1.0,
    across: float = 2.0,
) -> torch.Tensor:
    """
    Mask of the patches overlapping the rotated mouth box.

    Coordinates are continuous image coordinates ``(x, y)`` (``x`` to the
    right, ``y`` down) in which pixel ``(row i, column j)`` covers the square
    ``[j, j + 1) x [i, i + 1)``; patch ``(r, c)`` covers
    ``[c * patch, (c + 1) * patch) x [r * patch, (r + 1) * patch)``.

    The box is centred at the midpoint of the two mouth corners, its first
    axis points along the mouth, and its sides are ``along * L`` along the
    mouth and ``across * L`` across it, ``L`` being the distance between the
    corners (App. C.3: ``along=1``, ``across=2``). A patch is selected when it
    overlaps the box with positive area, decided exactly by the separating
    axis theorem. If both corners coincide the box shrinks to that point and
    the patches containing it are selected.

    Parameters
    ----------
    left, right : torch.Tensor
        Mouth corners, shape ``(2,)`` or ``(n, 2)``, as ``(x, y)``.
    grid : int
        Number of patches per side.
    patch : int
        Side of a patch in pixels.
    along, across : float
        Box sides along and across the mouth, in multiples of its length.

    Returns
    -------
    torch.Tensor
        ``float32`` mask of shape ``(grid, grid)`` or ``(n, grid, grid)``
        (rows = ``y``, columns = ``x``).
    """
    left = torch.as_tensor(left, dtype=torch.float64)
    right = torch.as_tensor(right, dtype=torch.float64)
    single = left.dim() == 1
    for name, corner in (("left", left), ("right", right)):
        if corner.dim() not in (1, 2) or corner.shape[-1] != 2:
            raise ValueError(
                f"{name} must hold (x, y) coordinates, shape (2,) or (n, 2); got "
                f"{tuple(corner.shape)}"
            )
    left, right = left.reshape(-1, 2), right.reshape(-1, 2)
    if left.shape != right.shape:
        raise ValueError(
            f"left and right must have the same shape, got {left.shape}, {right.shape}"
        )

    centre = (left + right) / 2
    delta = right - left
    length = delta.norm(dim=-1, keepdim=True)
    u = torch.where(length > 0, delta / length.clamp_min(1e-12), torch.tensor([1.0, 0.0]))
    v = torch.stack([-u[:, 1], u[:, 0]], dim=-1)
    tiny = 1e-6  # a degenerate box keeps a tiny extent so it overlaps the patch holding it
    a = (along * length[:, 0] / 2).clamp_min(tiny)[:, None, None]
    b = (across * length[:, 0] / 2).clamp_min(tiny)[:, None, None]

    half = patch / 2
    coords = torch.arange(grid, dtype=torch.float64) * patch + half
    cy, cx = torch.meshgrid(coords, coords, indexing="ij")
    dx = cx[None] - centre[:, 0, None, None]
    dy = cy[None] - centre[:, 1, None, None]
    ux, uy = u[:, 0, None, None], u[:, 1, None, None]
    vx, vy = v[:, 0, None, None], v[:, 1, None, None]
    eps = 1e-9
    # Separating axis theorem: the two rectangles overlap with positive area
    # iff their projections overlap strictly on each of the four edge normals.
    overlap = (
        (dx.abs() < half + a * ux.abs() + b * vx.abs() - eps)
        & (dy.abs() < half + a * uy.abs() + b * vy.abs() - eps)
        & ((dx * ux + dy * uy).abs() < a + half * (ux.abs() + uy.abs()) - eps)
        & ((dx * vx + dy * vy).abs() < b + half * (vx.abs() + vy.abs()) - eps)
    )
    mask = overlap.to(torch.float32)
    return mask[0] if single else mask


def _read_table(path: str, header: bool) -> tuple[list[str], list[str], list[list[str]]]:
    """
    Read a CelebA annotation file as torchvision does.

    The files are space-separated with runs of spaces for alignment. With
    ``header`` the first line is the number of images and the second the
    column names (torchvision's ``header=1``); every other line is an image
    file name followed by its values.
    """
    with open(path) as handle:
        lines = [line.split() for line in handle]
    lines = [line for line in lines if line]
    columns: list[str] = []
    if header:
        columns, lines = lines[1], lines[2:]
    return columns, [line[0] for line in lines], [line[1:] for line in lines]


def _load_image(path: str) -> tuple[torch.Tensor, int, int]:
    """Centre crop of ``CROP_SIZE`` as ``(3, H, W)`` in ``[0, 1]``, and its offsets."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        width, height = image.size
        if width < CROP_SIZE or height < CROP_SIZE:
            raise ValueError(f"{path} is {width}x{height}, smaller than the {CROP_SIZE} crop")
        # torchvision's CenterCrop offsets
        top = round((height - CROP_SIZE) / 2.0)
        left = round((width - CROP_SIZE) / 2.0)
        crop = image.crop((left, top, left + CROP_SIZE, top + CROP_SIZE))
        pixels = np.asarray(crop, dtype=np.float32) / 255.0
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous(), left, top


def load_celeba_smile(
    split: str = "train",
    root: str | os.PathLike | None = None,
    seed: int = 0,
    n: int | None = None,
    download: bool = False,
) -> MaskedDataset:
    """
    CelebA Smile (LEX paper §4.3, App. C.3).

    Images are the aligned CelebA faces (178x218), centre-cropped to 128x128
    with torchvision's ``CenterCrop`` offsets (25 pixels from the left, 45
    from the top) and scaled to ``[0, 1]`` (no channel normalisation; apply
    your own). The label is the ``Smiling`` attribute mapped from
    ``{-1, 1}`` to ``{0, 1}`` as torchvision does. The truth ``(n, 32, 32)``
    marks the 4x4 patches of the crop overlapping the rotated mouth box
    (:func:`mouth_box_mask`); a landmark ``(x, y)`` of
    ``list_landmarks_align_celeba.txt`` is a pixel index and is placed at the
    pixel's centre ``(x + 0.5, y + 0.5)``, shifted by the crop offsets.

    Splits are CelebA's official ones from ``list_eval_partition.txt``
    (0 = train, 1 = val, 2 = test; 162,770 / 19,867 / 19,962 images), in file
    order; ``seed`` is accepted for the common loader signature and unused.
    All requested images are decoded into memory (``n`` images take
    ``n * 196,608`` bytes; the full val split is about 3.9 GB), so pass ``n``
    to load fewer.

    Parameters
    ----------
    split : str
        ``"train"``, ``"val"`` or ``"test"``.
    root : str or os.PathLike
        Directory in torchvision's CelebA layout:
        ``root/celeba/img_align_celeba/*.jpg`` and, in ``root/celeba/``,
        ``list_attr_celeba.txt``, ``list_landmarks_align_celeba.txt`` and
        ``list_eval_partition.txt``. The files are parsed here with
        torchvision's rules (so a subset of the images works; torchvision's
        own MD5 checks are skipped).
    seed : int
        Unused.
    n : int, optional
        Number of instances: the first ``n`` of the split (default: all).
    download : bool
        Call ``torchvision.datasets.CelebA(root, download=True)`` first, which
        fetches the files from Google Drive (needs ``gdown`` and a network).
        Off by default.

    Returns
    -------
    MaskedDataset
        ``x`` ``(n, 3, 128, 128)``, ``y`` ``(n,)``, ``truth`` ``(n, 32, 32)``,
        named ``"celeba-smile"``.

    Raises
    ------
    FileNotFoundError
        If a file is missing (the message names ``root`` and the layout).
    ValueError
        If ``root`` is not given, an argument is invalid or ``n`` exceeds the
        split.
    """
    if split not in _PARTITION:
        raise ValueError(f"unknown split {split!r}; expected one of {list(_PARTITION)}")
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, Integral) or n <= 0):
        raise ValueError(f"n must be a positive integer or None, got {n!r}")
    layout = (
        "expected torchvision's CelebA layout: <root>/celeba/img_align_celeba/*.jpg and "
        f"<root>/celeba/{{{', '.join(CELEBA_FILES)}}}; "
        "download=True fetches them (torchvision, needs gdown) when a network is available"
    )
    if root is None:
        raise ValueError(f"celeba-smile needs root=; {layout}")
    root = os.fspath(root)
    if download:
        from torchvision.datasets import CelebA

        CelebA(root, split="all", target_type=[], download=True)
    folder = os.path.join(root, "celeba")
    missing = [f for f in CELEBA_FILES if not os.path.isfile(os.path.join(folder, f))]
    if not os.path.isdir(os.path.join(folder, _IMAGE_FOLDER)):
        missing.append(_IMAGE_FOLDER + "/")
    if missing:
        raise FileNotFoundError(
            f"CelebA files not found under root={root!r}: missing {', '.join(missing)}; {layout}"
        )

    _, files, partition = _read_table(os.path.join(folder, "list_eval_partition.txt"), False)
    chosen = [f for f, p in zip(files, partition) if int(p[0]) == _PARTITION[split]]
    if n is not None:
        if n > len(chosen):
            raise ValueError(
                f"celeba-smile {split!r} split has {len(chosen)} instances, fewer than n={n}"
            )
        chosen = chosen[:n]

    names, attr_files, attrs = _read_table(os.path.join(folder, "list_attr_celeba.txt"), True)
    if "Smiling" not in names:
        raise ValueError("list_attr_celeba.txt has no 'Smiling' column")
    smiling = dict(zip(attr_files, (row[names.index("Smiling")] for row in attrs)))
    columns, mark_files, marks = _read_table(
        os.path.join(folder, "list_landmarks_align_celeba.txt"), True
    )
    where = [columns.index(c) for c in _MOUTH_COLUMNS]
    mouths = dict(zip(mark_files, ([float(row[i]) for i in where] for row in marks)))
    absent = [f for f in chosen if f not in smiling or f not in mouths]
    if absent:
        raise ValueError(f"no attributes or landmarks for {absent[:5]} in {folder!r}")

    count = len(chosen)
    x = torch.empty(count, 3, CROP_SIZE, CROP_SIZE)
    y = torch.empty(count, dtype=torch.int64)
    corners = torch.empty(count, 4, dtype=torch.float64)
    for k, filename in enumerate(chosen):
        x[k], left, top = _load_image(os.path.join(folder, _IMAGE_FOLDER, filename))
        y[k] = (int(smiling[filename]) + 1) // 2
        lx, ly, rx, ry = mouths[filename]
        corners[k] = torch.tensor([lx - left, ly - top, rx - left, ry - top]) + 0.5
    grid = CROP_SIZE // PATCH_SIZE
    truth = mouth_box_mask(corners[:, :2], corners[:, 2:], grid=grid, patch=PATCH_SIZE)
    truth = truth.reshape(count, grid, grid)
    return MaskedDataset(
        x,
        y,
        truth,
        name="celeba-smile",
        num_classes=2,
        feature_names=[f"patch_{r}_{c}" for r in range(grid) for c in range(grid)],
    )
