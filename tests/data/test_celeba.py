import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from fixtures import CELEBA_SAMPLES, write_celeba_root

from lexppl.data import load
from lexppl.data.celeba import load_celeba_smile, mouth_box_mask


def _patch_of(point):
    return int(point[1] // 4), int(point[0] // 4)


# ------------------------------------------------------------------ mouth box
def test_horizontal_mouth_box_is_exact():
    # mouth from x=50 to x=70 at y=80: L=20, box x in [50, 70], y in [60, 100]
    mask = mouth_box_mask(torch.tensor([50.0, 80.0]), torch.tensor([70.0, 80.0]))
    expected = torch.zeros(32, 32)
    expected[15:25, 12:18] = 1  # rows 60..100, columns 48..72 (patches overlapping the box)
    assert mask.shape == (32, 32) and mask.dtype == torch.float32
    assert torch.equal(mask, expected)
    # corner order does not matter
    assert torch.equal(mouth_box_mask(torch.tensor([70.0, 80.0]), torch.tensor([50.0, 80.0])), mask)


def test_vertical_mouth_box_is_the_transpose():
    mask = mouth_box_mask(torch.tensor([80.0, 50.0]), torch.tensor([80.0, 70.0]))
    expected = torch.zeros(32, 32)
    expected[12:18, 15:25] = 1
    assert torch.equal(mask, expected)


@pytest.mark.parametrize("degrees", [30.0, 45.0, -60.0])
def test_rotated_mouth_box(degrees):
    angle = math.radians(degrees)
    u = torch.tensor([math.cos(angle), math.sin(angle)], dtype=torch.float64)
    v = torch.tensor([-u[1], u[0]])
    centre = torch.tensor([64.0, 70.0], dtype=torch.float64)
    length = 24.0
    left, right = centre - u * length / 2, centre + u * length / 2
    mask = mouth_box_mask(left, right)
    # every patch under the mouth segment is selected
    for t in torch.linspace(0, 1, 25):
        r, c = _patch_of(left + t * (right - left))
        assert mask[r, c] == 1
    # points inside the box across the mouth (up to L on each side) are selected
    for s in (-0.9, -0.5, 0.5, 0.9):
        r, c = _patch_of(centre + s * length * v)
        assert mask[r, c] == 1
    # beyond the corners along the mouth (box half-side L/2, patch reach < 5.7) is not
    for sign in (-1, 1):
        r, c = _patch_of(centre + sign * (length / 2 + 6) * u)
        assert mask[r, c] == 0
        r, c = _patch_of(centre + sign * (length + 6) * v)
        assert mask[r, c] == 0
    # far away patches are not selected, and the box area is about right
    assert mask[0, 0] == 0 and mask[31, 31] == 0 and mask[0, 31] == 0 and mask[31, 0] == 0
    area = 2 * length**2 / 16  # box area in patches
    assert area < float(mask.sum()) < 2.5 * area


def test_mouth_box_batched_and_degenerate():
    left = torch.tensor([[50.0, 80.0], [10.0, 10.0]])
    right = torch.tensor([[70.0, 80.0], [10.0, 10.0]])
    mask = mouth_box_mask(left, right)
    assert mask.shape == (2, 32, 32)
    assert torch.equal(mask[0], mouth_box_mask(left[0], right[0]))
    single = torch.zeros(32, 32)
    single[2, 2] = 1  # a zero-length mouth selects the patch holding it
    assert torch.equal(mask[1], single)


@pytest.mark.parametrize("shape", [(3,), (4, 3), (2, 2, 2)])
def test_mouth_box_refuses_corners_that_are_not_points(shape):
    with pytest.raises(ValueError, match=r"left must hold \(x, y\) coordinates"):
        mouth_box_mask(torch.zeros(shape), torch.ones(shape))


# ------------------------------------------------------------------ loader
@pytest.fixture()
def celeba_root(tmp_path):
    write_celeba_root(tmp_path)
    return tmp_path


def test_fixture_parses_with_torchvision_reader(celeba_root):
    from torchvision.datasets import CelebA

    fake = SimpleNamespace(root=str(celeba_root), base_folder="celeba")
    attr = CelebA._load_csv(fake, "list_attr_celeba.txt", header=1)
    marks = CelebA._load_csv(fake, "list_landmarks_align_celeba.txt", header=1)
    splits = CelebA._load_csv(fake, "list_eval_partition.txt")
    assert attr.data.shape == (4, 40) and "Smiling" in attr.header
    assert marks.data.shape == (4, 10) and splits.data.shape == (4, 1)
    assert attr.data[:, attr.header.index("Smiling")].tolist() == [s[2] for s in CELEBA_SAMPLES]


def test_celeba_smile_loads(celeba_root):
    train = load("celeba-smile", "train", root=str(celeba_root))
    assert train.name == "celeba-smile" and train.num_classes == 2
    assert train.x.shape == (2, 3, 128, 128) and train.truth.shape == (2, 32, 32)
    assert train.mask_shape == (32, 32) and len(train.feature_names) == 1024
    assert 0 <= float(train.x.min()) and float(train.x.max()) <= 1
    assert train.y.tolist() == [1, 0]  # Smiling 1 / -1 mapped to 1 / 0
    val = load("celeba-smile", "val", root=str(celeba_root))
    test = load("celeba-smile", "test", root=str(celeba_root))
    assert val.y.tolist() == [1] and test.y.tolist() == [0]
    assert len(load_celeba_smile("train", celeba_root, n=1)) == 1


def test_celeba_image_is_the_centre_crop(celeba_root):
    from PIL import Image

    data = load_celeba_smile("train", celeba_root, n=1)
    with Image.open(celeba_root / "celeba" / "img_align_celeba" / "000001.jpg") as image:
        full = torch.as_tensor(np.array(image.convert("RGB")), dtype=torch.float32)
    full = full.reshape(218, 178, 3).permute(2, 0, 1) / 255.0
    torch.testing.assert_close(data.x[0], full[:, 45:173, 25:153])


def test_celeba_truth_follows_landmarks(celeba_root):
    data = load_celeba_smile("train", celeba_root)
    for k, (_, _, _, (lx, ly, rx, ry)) in enumerate(CELEBA_SAMPLES[:2]):
        left = torch.tensor([lx - 25 + 0.5, ly - 45 + 0.5])
        right = torch.tensor([rx - 25 + 0.5, ry - 45 + 0.5])
        assert torch.equal(data.truth[k], mouth_box_mask(left, right))
        r, c = _patch_of((left + right) / 2)
        assert data.truth[k, r, c] == 1 and data.truth[k, 0, 0] == 0


def test_celeba_missing_files(tmp_path, celeba_root):
    with pytest.raises(FileNotFoundError, match=r"(?s)root=.*img_align_celeba.*download=True"):
        load("celeba-smile", root=str(tmp_path / "nowhere"))
    (celeba_root / "celeba" / "list_eval_partition.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"list_eval_partition\.txt"):
        load("celeba-smile", root=str(celeba_root))
    with pytest.raises(ValueError, match="needs root="):
        load("celeba-smile")


def test_celeba_n_too_large(celeba_root):
    with pytest.raises(ValueError, match="fewer than n=3"):
        load_celeba_smile("train", celeba_root, n=3)
