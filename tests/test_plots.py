"""Figures of :mod:`lexppl.plots` on hand-built inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from lexppl.plots import importance_map, selection_rate_curves, selection_rates


def _switching_truth(n: int) -> np.ndarray:
    """Two ground-truth patterns like S3's branches: {x3..x6, x11} and {x7..x10, x11}."""
    truth = np.zeros((n, 11))
    truth[: n // 2, [2, 3, 4, 5, 10]] = 1
    truth[n // 2 :, [6, 7, 8, 9, 10]] = 1
    return truth


def test_selection_rates_by_branch(tmp_path):
    rng = np.random.default_rng(0)
    truth = _switching_truth(20)
    masks = {
        "perfect": np.broadcast_to(truth, (3, 20, 11)).copy(),
        "random": (rng.random((3, 20, 11)) < 0.5).astype(float),
        "single mask": torch.as_tensor(truth),  # (N, D) tensors are fine too
    }
    figure = selection_rates(masks, truth=truth)
    assert isinstance(figure, Figure)
    assert len(figure.axes) == 2  # one panel per ground-truth pattern
    first = figure.axes[0]
    assert "x3, x4, x5, x6, x11" in first.get_title()
    # The perfect explainer's bars are 1 on the true features and 0 elsewhere.
    heights = [patch.get_height() for patch in first.containers[0]]
    np.testing.assert_allclose(heights, truth[0])
    figure.savefig(tmp_path / "rates.png")
    assert (tmp_path / "rates.png").stat().st_size > 1000


def test_selection_rates_single_panel_and_given_ax(tmp_path):
    masks = {"a": np.eye(4)[None].repeat(2, 0)}
    figure = selection_rates(masks, feature_names=["a", "b", "c", "d"])
    assert len(figure.axes) == 1
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["a", "b", "c", "d"]
    # More distinct truth patterns (5) than MAX_TRUTH_GROUPS -> one panel with truth ticks.
    truth = np.eye(5)
    other = selection_rates({"a": np.eye(5)}, truth=truth)
    assert len(other.axes) == 1
    host = Figure()
    ax = host.add_subplot()
    assert selection_rates({"a": np.eye(5)}, truth=truth, ax=ax) is host
    host.savefig(tmp_path / "host.png")
    figure.savefig(tmp_path / "single.png")


@pytest.mark.parametrize(
    "masks, kwargs, message",
    [
        ({}, {}, "empty"),
        ({"a": np.zeros((2, 3)), "b": np.zeros((2, 4))}, {}, "share"),
        ({"a": np.zeros(3)}, {}, "shape"),
        ({"a": np.zeros((2, 3))}, {"truth": np.zeros((2, 4))}, "truth"),
        ({"a": np.zeros((2, 3))}, {"feature_names": ["x"]}, "feature_names"),
        ({"a": np.full((2, 3), np.nan)}, {}, "NaN"),
    ],
)
def test_selection_rates_errors(masks, kwargs, message):
    with pytest.raises(ValueError, match=message):
        selection_rates(masks, **kwargs)


def test_importance_map_over_images(tmp_path):
    rng = np.random.default_rng(0)
    single = importance_map(rng.random((8, 8)))
    assert isinstance(single, Figure)
    single.savefig(tmp_path / "single.png")
    grid = importance_map(rng.random((3, 8, 8)), image=rng.random((3, 8, 8)))
    grid.savefig(tmp_path / "grid.png")
    colour = importance_map(rng.random((8, 8)), image=rng.random((8, 8, 3)))
    colour.savefig(tmp_path / "colour.png")
    host = Figure()
    assert importance_map(np.ones((8, 8)), ax=host.add_subplot()) is host
    for name in ("single", "grid", "colour"):
        assert (tmp_path / f"{name}.png").stat().st_size > 500


@pytest.mark.parametrize(
    "importance, kwargs, message",
    [
        (np.zeros(5), {}, "importance must have shape"),
        (np.zeros((2, 4, 4)), {"image": np.zeros((3, 4, 4))}, "image must have shape"),
        (np.zeros((4, 4)), {"image": np.zeros((5, 5))}, "image must have shape"),
        (np.zeros((2, 4, 4)), {"ax": Figure().add_subplot()}, "single map"),
        (np.full((4, 4), np.nan), {}, "NaN"),
        (np.full((4, 4), np.inf), {}, "NaN or infinite"),
    ],
)
def test_importance_map_errors(importance, kwargs, message):
    with pytest.raises(ValueError, match=message):
        importance_map(importance, **kwargs)


def test_selection_rate_curves_draws_one_line_per_method_and_band_for_se():
    rows = [
        {"method": m, "selection_rate": r, "TPR": r, "FDR": 1 - r, "ACC": 0.9, "TPR_se": 0.01}
        for m in ("a", "b")
        for r in (0.1, 0.3, 0.2)
    ]
    figure = selection_rate_curves(rows)
    axes = figure.axes
    assert [ax.get_title() for ax in axes] == ["TPR", "FDR", "ACC"]
    assert len(axes[0].lines) == 2 and len(axes[1].lines) == 2
    # Lines are drawn in increasing selection rate whatever the row order.
    np.testing.assert_allclose(axes[0].lines[0].get_xdata(), [0.1, 0.2, 0.3])
    assert len(axes[0].collections) == 2  # a band per method where TPR_se is given
    assert len(axes[1].collections) == 0


def test_selection_rate_curves_names_missing_keys():
    with pytest.raises(ValueError, match="lacks \\['FDR'"):
        selection_rate_curves([{"method": "a", "selection_rate": 0.1, "TPR": 1.0}])
    with pytest.raises(ValueError, match="empty"):
        selection_rate_curves([])
    with pytest.raises(ValueError, match=r"rows\[0\]\['selection_rate'\] must be a number"):
        selection_rate_curves([{"method": "a", "selection_rate": None, "TPR": 1.0}], ["TPR"])


def test_selection_rate_curves_take_rows_read_from_a_csv_file():
    rows = [
        {"method": "a", "selection_rate": r, "TPR": t} for r, t in [("0.3", "0.9"), ("0.1", "1")]
    ]
    line = selection_rate_curves(rows, ["TPR"]).axes[0].lines[0]
    np.testing.assert_allclose(line.get_xdata(), [0.1, 0.3])


def test_selection_rate_curves_label_the_axis_with_the_rate_key():
    rows = [{"method": "a", "k": k, "TPR": 0.5} for k in (1, 2)]
    assert selection_rate_curves(rows, ["TPR"], rate="k").axes[0].get_xlabel() == "k"
