import math

import numpy as np
import pytest
import torch

from lexppl.data import DATASETS, MaskedDataset, TrueResponse, load, make_switch

ALL_NAMES = ["s1", "s2", "s3", "xor", "orange", "additive", "switch"]
DIMS = {"s1": 11, "s2": 11, "s3": 11, "xor": 10, "orange": 10, "additive": 10, "switch": 10}


def _within_4se(estimate, p, n):
    return abs(estimate - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_registry_names():
    image_sets = ["panels-digits", "panels-mnist", "panels-fashion", "celeba-smile"]
    assert sorted(DATASETS) == sorted(ALL_NAMES + image_sets)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_shapes_and_dtypes(name):
    data = load(name, n=200)
    d = DIMS[name]
    assert isinstance(data, MaskedDataset)
    assert len(data) == 200
    assert data.x.shape == (200, d) and data.x.dtype == torch.float32
    assert data.y.shape == (200,) and data.y.dtype == torch.int64
    assert data.truth.shape == (200, d) and data.truth.dtype == torch.float32
    assert data.probs.shape == (200, 2) and data.probs.dtype == torch.float32
    assert data.num_classes == 2 and data.name == name
    assert len(data.feature_names) == d
    assert set(data.y.tolist()) <= {0, 1}
    assert set(data.truth.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(data.probs.sum(-1), torch.ones(200))
    x0, y0 = data[0]
    assert torch.equal(x0, data.x[0]) and y0 == data.y[0]


def test_default_size():
    assert len(load("s1")) == 10000


@pytest.mark.parametrize("name", ALL_NAMES)
def test_determinism_and_split_independence(name):
    a = load(name, "train", seed=3, n=100)
    b = load(name, "train", seed=3, n=100)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.truth, b.truth)
    for other in (load(name, "val", seed=3, n=100), load(name, "test", seed=3, n=100)):
        assert not torch.equal(a.x, other.x)
    assert not torch.equal(a.x, load(name, "train", seed=4, n=100).x)


def test_global_rng_untouched():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load("switch", n=50)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    "name, low, high",
    [
        ("s1", [1, 2], [3, 4, 5, 6]),
        ("s2", [1, 2], [7, 8, 9, 10]),
        ("s3", [3, 4, 5, 6], [7, 8, 9, 10]),
    ],
)
def test_switching_truth_follows_instance(name, low, high):
    # 1-based feature sets from the papers; x11 (index 10) is always included.
    data = load(name, n=2000)
    for x, t in zip(data.x, data.truth):
        selected = {i + 1 for i in t.nonzero().flatten().tolist()}
        expected = set(low if x[10] < 0 else high) | {11}
        assert selected == expected


@pytest.mark.parametrize("name, p1", [("s1", 0.528), ("s2", 0.510), ("s3", 0.539)])
def test_switching_label_rate(name, p1):
    n = 20000
    data = load(name, "test", n=n)
    rate = data.y.float().mean().item()
    assert _within_4se(rate, p1, n)
    assert _within_4se(data.probs[:, 1].mean().item(), rate, n)


@pytest.mark.parametrize("name", ["xor", "orange", "additive", "switch"])
def test_l2x_probs_match_labels(name):
    n = 20000
    data = load(name, n=n)
    rate = data.y.float().mean().item()
    assert _within_4se(data.probs[:, 1].mean().item(), rate, n)


@pytest.mark.parametrize(
    "name, truth", [("xor", [0, 1]), ("orange", [0, 1, 2, 3]), ("additive", [0, 1, 2, 3])]
)
def test_l2x_fixed_truth(name, truth):
    data = load(name, n=100)
    expected = torch.zeros(10)
    expected[truth] = 1.0
    assert torch.equal(data.truth, expected.expand(100, 10))


def _orange_p1(x4):
    return torch.sigmoid(-(x4.pow(2).sum(-1) - 4.0))


def _additive_p1(x4):
    g = -100 * torch.sin(0.2 * x4[:, 0]) + x4[:, 1].abs() + x4[:, 2] + torch.exp(-x4[:, 3]) - 2.4
    return torch.sigmoid(-g)


def test_switch_truth_follows_rows():
    data = make_switch(1001, torch.Generator().manual_seed(7))
    orange_rows = data.truth[:, 0] == 1
    # The switch feature separates the two groups: +3 shift for orange rows.
    assert 0 < int(orange_rows.sum()) < 1001
    assert (data.truth[:, 9] == 1).all()
    assert (data.truth[orange_rows][:, [0, 1, 2, 3]] == 1).all()
    assert (data.truth[orange_rows][:, [4, 5, 6, 7, 8]] == 0).all()
    assert (data.truth[~orange_rows][:, [4, 5, 6, 7]] == 1).all()
    assert (data.truth[~orange_rows][:, [0, 1, 2, 3, 8]] == 0).all()
    # Shuffled: orange rows are not simply the first half.
    assert not orange_rows[:500].all()
    # Probabilities are those of the branch given by each row's truth.
    torch.testing.assert_close(data.probs[orange_rows, 1], _orange_p1(data.x[orange_rows, :4]))
    torch.testing.assert_close(data.probs[~orange_rows, 1], _additive_p1(data.x[~orange_rows, 4:8]))
    # Switch feature shift: mean near +3 for orange rows, near -3 otherwise.
    assert data.x[orange_rows, 9].mean() > 2.5
    assert data.x[~orange_rows, 9].mean() < -2.5


def test_probabilities_are_stable():
    data = load("additive", n=5000)
    assert torch.isfinite(data.probs).all()


def test_unknown_name_and_split():
    with pytest.raises(ValueError, match=r"unknown dataset name 'nope'.*s1"):
        load("nope")
    with pytest.raises(ValueError, match=r"unknown split 'dev'.*train"):
        load("s1", split="dev")


@pytest.mark.parametrize("n", [0, -5])
def test_bad_n(n):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        load("xor", n=n)


def test_numpy_counts_are_counts():
    assert len(make_switch(np.int64(7))) == 7


def test_non_integer_labels_are_refused():
    with pytest.raises(ValueError, match="y must hold integer class labels"):
        MaskedDataset(torch.zeros(3, 2), torch.tensor([0.5, 1.7, 0.0]), torch.ones(3, 2))


def test_bad_seed():
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        load("xor", seed=-1)


def test_root_is_ignored():
    a = load("s2", n=20)
    b = load("s2", n=20, root="/nonexistent")
    assert torch.equal(a.x, b.x)


def test_masked_dataset_validation():
    x = torch.zeros(4, 3)
    y = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="y must have shape"):
        MaskedDataset(x, torch.zeros(5, dtype=torch.long), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="truth must have the same shape"):
        MaskedDataset(x, y, torch.zeros(4, 2))
    with pytest.raises(ValueError, match="truth must be a binary mask"):
        MaskedDataset(x, y, torch.full((4, 3), 0.5))
    with pytest.raises(ValueError, match="probs must have shape"):
        MaskedDataset(x, y, torch.zeros(4, 3), probs=torch.zeros(3, 2))
    data = MaskedDataset(x, y, torch.zeros(4, 3), name="toy", num_classes=3)
    assert data.num_classes == 3 and data.probs is None
    assert data.feature_names == ["x1", "x2", "x3"]


@pytest.mark.parametrize("name", ["s1", "s2", "s3", "xor", "orange", "additive"])
def test_true_response_gives_the_generated_probabilities(name):
    data = load(name, "test", seed=3, n=500)
    response = TrueResponse(name)
    probs = torch.softmax(response(data.x), dim=-1)
    assert torch.allclose(probs, data.probs, atol=1e-6)
    # Leading dimensions are kept: (S, N, D) -> (S, N, 2).
    stacked = response(torch.stack([data.x, data.x]))
    assert stacked.shape == (2, 500, 2)
    assert torch.allclose(torch.softmax(stacked[1], -1), data.probs, atol=1e-6)


def test_true_response_rejects_switch_unknown_names_and_wrong_widths():
    with pytest.raises(ValueError, match="not a function of x"):
        TrueResponse("switch")
    with pytest.raises(ValueError, match="no dataset 's4'"):
        TrueResponse("s4")
    with pytest.raises(ValueError, match=r"takes inputs \(\.\.\., 11\)"):
        TrueResponse("s3")(torch.zeros(4, 10))
