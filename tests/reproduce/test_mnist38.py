import csv
import importlib.resources
import json
import math
import statistics
import sys
from pathlib import Path

import pytest
import torch

from lexppl.methods import Method
from lexppl.reproduce import run
from lexppl.reproduce.mnist38 import METHODS, SETTINGS, black_box_net, load_mnist38, reference

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from fixtures import write_mnist_root

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

NAMES = [name for name, *_ in METHODS]
LABELS = ("FS-M", "FU-M", "FS-A", "FU-A", "SEN", "black box ACC")


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist-root")
    # Labels cycle through 0..9, so 40 of the 200 training images are 3s or 8s.
    write_mnist_root(root, num_train=200, num_test=100, folders=("MNIST",))
    return root


@pytest.fixture(scope="module")
def quick(tmp_path_factory, mnist_root):
    out = tmp_path_factory.mktemp("mnist38")
    rows = run("mnist38", out, root=mnist_root, quick=True, seed=0)
    return out, rows


def test_reference_holds_the_papers_numbers():
    ref = reference()
    assert ref[("L2X (4 patches 4x4)", "fs_m")] == 95.8  # L2X Table 4: 0.958
    assert ref[("L2X (4 patches 4x4)", "black_box_acc")] == 99.7
    assert ("L2X (4 patches 4x4)", "fu_m") not in ref
    l2x, ail = "L2X (k=25)", "AIL (k=25)"
    assert [ref[(l2x, m)] for m in ("fs_m", "fu_m", "fs_a", "fu_a", "sen")] == [
        91.38,
        91.18,
        98.54,
        99.65,
        6.90,
    ]
    assert [ref[(ail, m)] for m in ("fs_m", "fu_m", "fs_a", "fu_a", "sen")] == [
        99.04,
        74.70,
        99.80,
        99.70,
        6.11,
    ]
    assert ref[(ail, "black_box_acc")] == 99.89
    assert not any(method == "LEX (k=25)" for method, _ in ref)


def test_reference_file_names_its_sources():
    text = (
        importlib.resources.files("lexppl.reproduce.references").joinpath("mnist38.csv").read_text()
    )
    header = " ".join(line[1:].strip() for line in text.splitlines() if line.startswith("#"))
    assert "Learning to Explain" in header and "Table 4" in header
    assert "Adversarial Infidelity Learning" in header and "Table 3" in header
    rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
    assert {row["method"] for row in rows} <= set(NAMES)
    assert all("Table" in row["source"] for row in rows)


def test_load_mnist38_keeps_threes_and_eights(mnist_root):
    x, y = load_mnist38(mnist_root, train=True)
    assert x.shape == (40, 1, 28, 28) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert sorted(y.unique().tolist()) == [0, 1] and int(y.sum()) == 20  # label 1 = digit 8
    sub, _ = load_mnist38(mnist_root, train=True, n=10, seed=3)
    assert sub.shape == (10, 1, 28, 28)


def test_black_box_net_is_l2xs_cnn():
    net = black_box_net()
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 2)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(8, (5, 5)), (16, (5, 5))]


def test_quick_run_writes_every_method_beside_the_papers(quick):
    out, rows = quick
    with open(out / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [row["method"] for row in table] == [row["method"] for row in rows] == NAMES
    ref = reference()
    keys = dict(zip(LABELS, ("fs_m", "fu_m", "fs_a", "fu_a", "sen", "black_box_acc")))
    for row in table:
        for label in LABELS:
            ours = float(row[label])
            assert math.isfinite(ours) and ours >= 0.0
            if label != "SEN":
                assert ours <= 100.0
            paper = ref.get((row["method"], keys[label]))
            assert (row[f"{label} (paper)"] == "") == (paper is None)
    # L2X with patches is averaged over training seeds (2 in the quick run), listed in the notes
    assert [int(row["runs"]) for row in table] == [2, 1, 1, 1]
    markdown = (out / "results.md").read_text()
    assert "AIL Table 3" in markdown and "quick smoke run" in markdown
    assert "per seed: " in markdown and "(mean " in markdown
    assert json.loads((out / "settings.json").read_text())["seed"] == 0


def test_l2x_trains_without_decay_at_each_papers_temperature(monkeypatch, mnist_root, tmp_path):
    # Neither paper's MNIST code is released nor a weight decay stated; τ: the L2X paper's 0.1
    # for its patch row, AIL's 0.5 for the k = 25 row it ran.
    calls = []
    train = Method.train

    def recording_train(self, x, y, **kwargs):
        num_groups = self.model.selector(x[:1]).shape[-1]
        calls.append((self.name, num_groups, getattr(self.bound, "temperature", None), kwargs))
        return train(self, x, y, **kwargs)

    monkeypatch.setattr(Method, "train", recording_train)
    run("mnist38", tmp_path, root=mnist_root, quick=True, seed=0)
    l2x = {
        num_groups: (temperature, kwargs)
        for name, num_groups, temperature, kwargs in calls
        if name == "l2x"
    }
    assert l2x[49][0] == 0.1 and l2x[784][0] == 0.5  # 4 x 4 patches, pixels
    assert l2x[49][1]["weight_decay"] == l2x[784][1]["weight_decay"] == 0.0
    assert SETTINGS["default"].l2x_weight_decay == 0.0
    assert all("weight_decay" not in kwargs for name, *_, kwargs in calls if name != "l2x")


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="--root"):
        run("mnist38", tmp_path / "out", root=None, quick=True)
    with pytest.raises(ValueError, match="--root"):
        run("mnist38", tmp_path / "out", root=tmp_path, quick=True)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="../shared/data/mnist absent")
def test_default_run_on_mnist(tmp_path):
    # About 25 minutes on one thread. Asserts what the default run showed (seed 0, 1 thread):
    # black box 99.6 %; at k = 25, AIL's FS-M 97.0 % vs L2X's 79.6 % and FU-M 85.4 % vs 94.4 %
    # (AIL Table 3's ordering). L2X at k = 25 varies between training seeds (seed 1001: 89.1 %),
    # so the FS-M gap is asserted as the paper's ordering, by 3 binomial SEs of the difference
    # over the 1,984 test images. L2X with 4 patches, over its 5 training seeds: FS-M 93.8,
    # 93.0, 88.0, 96.3, 94.1, mean 93.0 ± SE 1.4 (between seeds); the paper's 95.8 % lies
    # within 3 SEs of it, and the mean is more than 3 SEs above chance (50 %).
    rows = {row["method"]: row for row in run("mnist38", tmp_path, root=SHARED_DATA, seed=0)}
    assert rows["L2X (k=25)"]["black box ACC"] > 99.0
    patch = rows["L2X (4 patches 4x4)"]["FS-M per run"]
    mean, se = statistics.fmean(patch), statistics.stdev(patch) / math.sqrt(len(patch))
    assert len(patch) == 5 and rows["L2X (4 patches 4x4)"]["FS-M"] == pytest.approx(mean)
    assert abs(mean - 95.8) < 3 * se and mean - 3 * se > 50.0, patch
    l2x, ail = rows["L2X (k=25)"], rows["AIL (k=25)"]
    p_ail, p_l2x = ail["FS-M"] / 100.0, l2x["FS-M"] / 100.0
    se_gap = 100.0 * math.sqrt((p_ail * (1 - p_ail) + p_l2x * (1 - p_l2x)) / 1984)
    assert ail["FS-M"] - l2x["FS-M"] > 3 * se_gap
    assert ail["FU-M"] < l2x["FU-M"]
    for row in rows.values():
        assert all(math.isfinite(row[label]) for label in LABELS)
