"""Reading MNIST-format IDX files in torchvision's layout and in the published .gz layout."""

import gzip

import numpy as np
import pytest
import torch
from fixtures import write_idx, write_mnist_root

from lexppl.data import read_idx, read_mnist


def test_read_idx_round_trips_raw_and_gzip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a-idx3-ubyte", array)
    (tmp_path / "a-idx3-ubyte.gz").write_bytes(
        gzip.compress((tmp_path / "a-idx3-ubyte").read_bytes())
    )
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte"), array)
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz"), array)


def test_read_idx_names_a_corrupt_file(tmp_path):
    write_idx(tmp_path / "full", np.zeros((4, 5), dtype=np.uint8))
    content = (tmp_path / "full").read_bytes()
    (tmp_path / "short").write_bytes(content[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "header").write_bytes(content[:9])
    with pytest.raises(ValueError, match=r"truncated inside its header \(9 of 12 bytes\)"):
        read_idx(tmp_path / "header")
    (tmp_path / "text").write_bytes(b"not an idx file")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "text")
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b broken gzip")
    with pytest.raises(ValueError, match="cannot read"):
        read_idx(tmp_path / "bad.gz")


def test_read_mnist_finds_either_layout(tmp_path):
    written = write_mnist_root(tmp_path / "tv", num_train=6, num_test=3)
    images, labels = read_mnist(tmp_path / "tv", "fashion", train=False)
    assert torch.equal(images, torch.from_numpy(written["FashionMNIST"]["test"][0]))
    assert (
        labels.dtype == torch.int64
        and labels.tolist() == written["FashionMNIST"]["test"][1].tolist()
    )
    # The published layout: one folder per dataset holding the .gz files.
    flat = tmp_path / "flat" / "mnist"
    flat.mkdir(parents=True)
    for path in (tmp_path / "tv" / "MNIST" / "raw").iterdir():
        (flat / (path.name + ".gz")).write_bytes(gzip.compress(path.read_bytes()))
    images, _ = read_mnist(tmp_path / "flat", "mnist", train=True)
    assert torch.equal(images, torch.from_numpy(written["MNIST"]["train"][0]))
    assert read_mnist(tmp_path / "flat", "fashion") is None  # absent: the caller decides
    with pytest.raises(ValueError, match="unknown dataset"):
        read_mnist(tmp_path / "flat", "kmnist")
