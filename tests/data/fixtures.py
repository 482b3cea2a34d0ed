"""
Tiny dataset folders in the real on-disk formats, for tests.

- :func:`write_mnist_root` writes torchvision's MNIST / FashionMNIST layout
  (``root/<folder>/raw/*-ubyte``, uncompressed IDX files).
- :func:`write_celeba_root` writes torchvision's CelebA layout
  (``root/celeba/img_align_celeba/*.jpg`` plus the annotation files).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

__all__ = [
    "CELEBA_ATTRIBUTES",
    "CELEBA_SAMPLES",
    "write_celeba_root",
    "write_idx",
    "write_mnist_root",
]

# The 40 attributes of list_attr_celeba.txt, in the file's order.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes "
    "No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling "
    "Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace "
    "Wearing_Necktie Young"
).split()

# (file, partition, Smiling in {-1, 1}, (leftmouth_x, leftmouth_y, rightmouth_x, rightmouth_y))
CELEBA_SAMPLES = (
    ("000001.jpg", 0, 1, (73, 152, 108, 154)),
    ("000002.jpg", 0, -1, (70, 150, 110, 150)),
    ("000003.jpg", 1, 1, (75, 145, 105, 160)),
    ("000004.jpg", 2, -1, (72, 153, 106, 151)),
)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (big-endian header, type 0x08)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def _images_and_labels(rng: np.random.Generator, count: int, offset: int):
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    labels = (np.arange(count) + offset) % 10
    return images, labels.astype(np.uint8)


def write_mnist_root(
    root: Path, num_train: int = 10, num_test: int = 5, folders=("MNIST", "FashionMNIST")
) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """
    Write random 28x28 images with labels in torchvision's MNIST layout.

    Returns ``{folder: {"train": (images, labels), "test": (images, labels)}}``
    with the arrays written, images ``(N, 28, 28)`` uint8.
    """
    rng = np.random.default_rng(0)
    written = {}
    for k, folder in enumerate(folders):
        raw = Path(root) / folder / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        written[folder] = {}
        for split, prefix, count in (("train", "train", num_train), ("test", "t10k", num_test)):
            images, labels = _images_and_labels(rng, count, offset=3 * k)
            write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
            write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
            written[folder][split] = (images, labels)
    return written


def _table_row(filename: str, values) -> str:
    # CelebA aligns columns with runs of spaces; torchvision skips them.
    return filename + "".join(
        f" {v:>2}" if isinstance(v, int) and v < 0 else f"  {v}" for v in values
    )


def write_celeba_root(root: Path, samples=CELEBA_SAMPLES) -> Path:
    """
    Write a CelebA folder with 178x218 JPEGs and the three annotation files.

    Each sample is ``(file, partition, smiling, mouth corners)``; the other
    attributes are -1 and the eye and nose landmarks fixed. Returns
    ``root/celeba``.
    """
    from PIL import Image

    folder = Path(root) / "celeba"
    images = folder / "img_align_celeba"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    smiling = CELEBA_ATTRIBUTES.index("Smiling")
    attr_lines = [str(len(samples)), " ".join(CELEBA_ATTRIBUTES) + " "]
    mark_lines = [
        str(len(samples)),
        "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
        "leftmouth_x leftmouth_y rightmouth_x rightmouth_y",
    ]
    partition_lines = []
    for filename, part, smile, mouth in samples:
        pixels = rng.integers(0, 256, size=(218, 178, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / filename, quality=95)
        attrs = [-1] * len(CELEBA_ATTRIBUTES)
        attrs[smiling] = smile
        attr_lines.append(_table_row(filename, attrs))
        mark_lines.append(_table_row(filename, [69, 109, 106, 113, 77, 142, *mouth]))
        partition_lines.append(f"{filename} {part}")
    for name, lines in (
        ("list_attr_celeba.txt", attr_lines),
        ("list_landmarks_align_celeba.txt", mark_lines),
        ("list_eval_partition.txt", partition_lines),
    ):
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder
