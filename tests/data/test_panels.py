import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures import write_mnist_root

from lexppl.data import DATASETS, MaskedDataset, load
from lexppl.data.panels import (
    digits_split_indices,
    load_switching_panels,
    make_panels_digits,
    mnist_split_indices,
)

REAL_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _panels(data):
    """Split x into (target panel, distractor panel) using the truth."""
    x = data.x[:, 0]
    width = x.shape[-1] // 2
    target_left = data.truth[:, 0, 0] == 1
    left, right = x[..., :width], x[..., width:]
    side = target_left[:, None, None]
    return torch.where(side, left, right), torch.where(side, right, left), target_left


def _check_truth_is_one_panel(data):
    width = data.truth.shape[-1] // 2
    left, right = data.truth[..., :width], data.truth[..., width:]
    assert bool(
        ((left == 1).all(dim=(1, 2)) & (right == 0).all(dim=(1, 2)))
        .logical_xor((left == 0).all(dim=(1, 2)) & (right == 1).all(dim=(1, 2)))
        .all()
    )


def _match(panels, images):
    """Index of the source image equal to each panel (-1 if none)."""
    lookup = {}
    for k, image in enumerate(images.numpy()):
        lookup.setdefault(image.tobytes(), k)
    return torch.tensor([lookup.get(panel.tobytes(), -1) for panel in panels.numpy()])


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.as_tensor(d.images, dtype=torch.float32) / 16.0, torch.as_tensor(d.target)


# ------------------------------------------------------------------ panels-digits
def test_digits_shapes_and_registry():
    data = load("panels-digits", "val", seed=1)
    assert isinstance(data, MaskedDataset) and data.name == "panels-digits"
    assert data.x.shape == (360, 1, 8, 16) and data.truth.shape == (360, 8, 16)
    assert data.y.shape == (360,) and data.num_classes == 10
    assert data.mask_shape == (8, 16) and data.num_features == 128
    assert len(data.feature_names) == 128
    assert 0 <= float(data.x.min()) and float(data.x.max()) <= 1
    _check_truth_is_one_panel(data)
    assert len(load("panels-digits", "train")) == 1078 and len(load("panels-digits", "test")) == 359


def test_digits_target_panel_is_the_labelled_digit(digits):
    images, labels = digits
    data = make_panels_digits("train", seed=2, n=200)
    target, distractor, target_left = _panels(data)
    index = _match(target, images)
    assert bool((index >= 0).all())
    assert torch.equal(labels[index], data.y)
    assert bool((_match(distractor, images) == -1).all())
    assert 0.3 < target_left.float().mean() < 0.7  # left/right varies


def test_digits_determinism_and_seed(digits):
    a = make_panels_digits("test", seed=5, n=50)
    b = make_panels_digits("test", seed=5, n=50)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.truth, b.truth)
    c = make_panels_digits("test", seed=6, n=50)
    assert not torch.equal(a.x, c.x)
    # n takes the first n instances of the split, layout included.
    whole = make_panels_digits("test", seed=5)
    for name in ("x", "y", "truth"):
        assert torch.equal(getattr(a, name), getattr(whole, name)[:50])
    images, _ = digits
    # same test digits whatever the seed, regenerated layout
    assert set(_match(_panels(a)[0], images).tolist()) == set(
        digits_split_indices(len(images), "test", 5)[:50].tolist()
    )
    assert set(digits_split_indices(len(images), "test", 5)) == set(
        digits_split_indices(len(images), "test", 6)
    )


@pytest.mark.parametrize("seed", [0, 3])
def test_digits_splits_disjoint(seed):
    num = 1797
    parts = [set(digits_split_indices(num, s, seed).tolist()) for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [1078, 360, 359]
    assert set.union(*parts) == set(range(num))
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])


def test_digits_bad_arguments():
    with pytest.raises(ValueError, match="unknown split"):
        make_panels_digits("dev")
    with pytest.raises(ValueError, match="fewer than n=5000"):
        make_panels_digits("val", n=5000)


# ------------------------------------------------------------------ SP-MNIST / Fashion
@pytest.fixture()
def mnist_root(tmp_path):
    return tmp_path, write_mnist_root(tmp_path, num_train=10, num_test=5)


@pytest.mark.parametrize("name", ["panels-mnist", "panels-fashion"])
def test_sp_loads_from_fixture(mnist_root, name):
    root, written = mnist_root
    target_folder = "MNIST" if name == "panels-mnist" else "FashionMNIST"
    other_folder = "FashionMNIST" if name == "panels-mnist" else "MNIST"
    sizes = {"train": 8, "val": 2, "test": 5}
    seen = {}
    for split, size in sizes.items():
        data = load(name, split, root=str(root), seed=1)
        assert data.name == name and data.num_classes == 10
        assert data.x.shape == (size, 1, 28, 56) and data.truth.shape == (size, 28, 56)
        _check_truth_is_one_panel(data)
        files = "test" if split == "test" else "train"
        images, labels = written[target_folder][files]
        images = torch.as_tensor(images, dtype=torch.float32) / 255.0
        target, distractor, _ = _panels(data)
        index = _match(target, images)
        assert bool((index >= 0).all())
        assert torch.equal(torch.as_tensor(labels, dtype=torch.int64)[index], data.y)
        others = torch.as_tensor(written[other_folder][files][0], dtype=torch.float32) / 255.0
        assert bool((_match(distractor, others) >= 0).all())
        seen[split] = set(index.tolist())
    assert not seen["train"] & seen["val"]


def test_sp_mnist_and_fashion_share_images(mnist_root):
    root, _ = mnist_root
    a = load_switching_panels("train", root, seed=4, target="mnist")
    b = load_switching_panels("train", root, seed=4, target="fashion")
    assert torch.equal(a.x, b.x)
    assert torch.equal(a.truth, 1 - b.truth)


def test_sp_layout_regenerated_by_seed(mnist_root):
    root, _ = mnist_root
    a = load_switching_panels("test", root, seed=0)
    assert torch.equal(a.x, load_switching_panels("test", root, seed=0).x)
    sides = {
        tuple(load_switching_panels("test", root, seed=s).truth[:, 0, 0].tolist()) for s in range(6)
    }
    assert len(sides) > 1
    assert not torch.equal(a.x, load_switching_panels("test", root, seed=1).x)
    assert len(load_switching_panels("train", root, seed=0, n=3)) == 3


def test_sp_split_indices():
    train = mnist_split_indices(60000, "train", 0)
    val = mnist_split_indices(60000, "val", 0)
    assert len(train) == 48000 and len(val) == 12000
    assert len(set(train.tolist()) | set(val.tolist())) == 60000
    assert np.array_equal(mnist_split_indices(10000, "test", 3), np.arange(10000))
    assert not np.array_equal(train, mnist_split_indices(60000, "train", 1))


def test_sp_missing_files(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"MNIST training files not found under root=.*: expected train-images-idx3-ubyte "
        r"and train-labels-idx1-ubyte \(or \.gz\) in <root>/MNIST/raw/, <root>/mnist/ or "
        r"<root>/MNIST/.*download=True",
    ):
        load("panels-mnist", root=str(tmp_path / "nowhere"))
    write_mnist_root(tmp_path, folders=("MNIST",))
    # The message names every layout read_mnist searches, the CLI's fashion/*.gz among them.
    with pytest.raises(
        FileNotFoundError, match=r"FashionMNIST training files not found.*<root>/fashion/"
    ):
        load("panels-fashion", root=str(tmp_path))
    with pytest.raises(ValueError, match="needs root="):
        load("panels-mnist")


def test_load_passes_download_to_torchvision(tmp_path, monkeypatch):
    # The missing-files message says "pass download=True"; load must accept it. Torchvision is
    # replaced by a stand-in that writes the files, so nothing touches the network.
    from torchvision import datasets

    from lexppl.data.idx import read_mnist

    calls = []

    def fetch(cls_name):
        def fake(root, train, download):
            calls.append((cls_name, download))
            write_mnist_root(Path(root), folders=(cls_name,))
            images, labels = read_mnist(root, {"MNIST": "mnist"}.get(cls_name, "fashion"), train)
            return type("Data", (), {"data": images, "targets": labels})

        return fake

    monkeypatch.setattr(datasets, "MNIST", fetch("MNIST"))
    monkeypatch.setattr(datasets, "FashionMNIST", fetch("FashionMNIST"))
    with pytest.raises(FileNotFoundError, match="download=True"):
        load("panels-mnist", root=str(tmp_path))
    assert calls == []  # nothing is fetched unless asked
    data = load("panels-mnist", "test", root=str(tmp_path), download=True, n=5)
    assert calls and all(download for _, download in calls)
    assert data.x.shape[0] == 5
    with pytest.raises(ValueError, match="no files to download"):
        load("s3", download=True)
    # A loader of the registry's documented signature, without download, still works.
    DATASETS["four-args"] = lambda split, root, seed, n: load("s3", split, root, seed, n)
    try:
        assert len(load("four-args", n=7)) == 7
    finally:
        del DATASETS["four-args"]


def test_sp_real_data_smoke(tmp_path):
    if not all((REAL_DATA / d).is_dir() for d in ("mnist", "fashion")):
        pytest.skip("real MNIST / Fashion-MNIST not available")
    for source, folder in (("mnist", "MNIST"), ("fashion", "FashionMNIST")):
        raw = tmp_path / folder / "raw"
        raw.mkdir(parents=True)
        for gz in (REAL_DATA / source).glob("*-ubyte.gz"):
            with gzip.open(gz) as src, open(raw / gz.name[:-3], "wb") as dst:
                shutil.copyfileobj(src, dst)
    data = load("panels-mnist", "test", root=str(tmp_path), n=100)
    assert data.x.shape == (100, 1, 28, 56)
    target, distractor, _ = _panels(data)
    # MNIST digits are mostly dark, FashionMNIST images much brighter on average
    assert float(target.mean()) < float(distractor.mean())


def test_registry_has_image_datasets():
    assert {"panels-digits", "panels-mnist", "panels-fashion", "celeba-smile"} <= set(DATASETS)


def test_masked_dataset_accepts_images():
    x = torch.zeros(3, 1, 4, 8)
    data = MaskedDataset(x, torch.zeros(3, dtype=torch.long), torch.ones(3, 2, 2), num_classes=2)
    assert data.num_features == 32 and data.mask_shape == (2, 2)
    assert data.feature_names == ["x1", "x2", "x3", "x4"]
    with pytest.raises(ValueError, match=r"truth must have shape \(3, \*mask_shape\)"):
        MaskedDataset(x, torch.zeros(3, dtype=torch.long), torch.ones(2, 4, 8))
    with pytest.raises(ValueError, match="feature_names must have 4 entries"):
        MaskedDataset(x, torch.zeros(3, dtype=torch.long), torch.ones(3, 2, 2), feature_names=["a"])
