import sys

import numpy as np
import pytest
import torch

from lexppl.comparators import Comparator, top_k_selection
from lexppl.comparators.base import check_inputs, resolve_targets
from lexppl.metrics import false_discovery_rate, true_positive_rate


def test_top_k_selection_keeps_the_largest_absolute_scores():
    scores = torch.tensor([[0.1, -3.0, 2.0, 0.5], [4.0, 0.0, -0.2, 1.0]])
    expected = torch.tensor([[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]])
    assert torch.equal(top_k_selection(scores, 2), expected)
    signed = torch.tensor([[0.0, 0.0, 1.0, 1.0], [1.0, 0.0, 0.0, 1.0]])
    assert torch.equal(top_k_selection(scores, 2, absolute=False), signed)
    assert torch.equal(top_k_selection(scores.numpy(), 4), torch.ones(2, 4))


@pytest.mark.parametrize("k", [0, 5, 2.0, True])
def test_top_k_selection_rejects_bad_k(k):
    with pytest.raises(ValueError, match="k must be an int"):
        top_k_selection(torch.zeros(3, 4), k)


def test_top_k_selection_rejects_nan_and_bad_shapes():
    with pytest.raises(ValueError, match="NaN"):
        top_k_selection(torch.tensor([[0.0, float("nan")]]), 1)
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        top_k_selection(torch.zeros(4), 1)


def test_check_inputs_names_the_problem():
    assert check_inputs(np.zeros((2, 3)), 3, "X").dtype == torch.float32
    with pytest.raises(ValueError, match=r"X: x must have shape \(N, D\)"):
        check_inputs(torch.zeros(3), None, "X")
    with pytest.raises(ValueError, match="NaN"):
        check_inputs(torch.tensor([[0.0, float("nan")]]), None, "X")
    with pytest.raises(ValueError, match="has 2 features, but the explainer was built for 3"):
        check_inputs(torch.zeros(1, 2), 3, "X")
    with pytest.raises(ValueError, match="no rows"):
        check_inputs(torch.zeros(0, 3), 3, "X")


def test_resolve_targets():
    predictions = torch.tensor([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6]])
    assert resolve_targets(None, predictions, "M").tolist() == [1, 0, 1]
    assert resolve_targets(0, predictions, "M").tolist() == [0, 0, 0]
    assert resolve_targets(torch.tensor([1, 1, 0]), predictions, "M").tolist() == [1, 1, 0]
    with pytest.raises(ValueError, match=r"target must be in \[0, 2\)"):
        resolve_targets(2, predictions, "M")
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        resolve_targets(torch.tensor([0, 1]), predictions, "M")
    with pytest.raises(ValueError, match="integer class indices"):
        resolve_targets(torch.tensor([0.0, 1.0, 1.0]), predictions, "M")


class _Fixed(Comparator):
    def attribute(self, x, target=None):
        return torch.tensor([[5.0, -4.0, 0.0], [0.0, 1.0, -2.0]])


def test_select_feeds_the_selection_metrics():
    masks = _Fixed().select(torch.zeros(2, 3), k=2)
    truth = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    assert true_positive_rate(masks, truth) == pytest.approx(0.75)
    assert false_discovery_rate(masks, truth) == pytest.approx(0.25)


def test_base_attribute_names_the_class():
    with pytest.raises(NotImplementedError, match="attribute is not implemented for Comparator"):
        Comparator().attribute(torch.zeros(1, 2))


def test_numpy_seed_restores_the_global_state():
    from lexppl.comparators.base import numpy_seed

    np.random.seed(123)
    expected = np.random.rand(3)
    np.random.seed(123)
    with numpy_seed(7):
        inside = np.random.rand(2)
    assert np.array_equal(np.random.rand(3), expected)
    with numpy_seed(7):
        assert np.array_equal(np.random.rand(2), inside)


@pytest.mark.parametrize(
    "name, module, build",
    [
        ("KernelSHAP", "shap", lambda c: c.KernelSHAP(torch.nn.Identity(), torch.zeros(3, 2))),
        ("LIME", "lime.lime_tabular", lambda c: c.LIME(torch.nn.Identity(), torch.zeros(3, 2))),
        ("InputXGradient", "captum.attr", lambda c: c.InputXGradient(torch.nn.Linear(2, 2))),
    ],
)
def test_missing_optional_package_names_the_extra(monkeypatch, name, module, build):
    import lexppl.comparators as comparators

    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ImportError, match=rf"{name} needs .*pip install 'lexppl\[comparators\]'"):
        build(comparators)


def test_every_comparator_explains_a_float64_model():
    pytest.importorskip("captum")
    pytest.importorskip("shap")
    pytest.importorskip("lime")
    from lexppl.comparators import LIME, FastSHAP, InputXGradient, KernelSHAP

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(-1)).double()
    data, x = torch.randn(50, 4), torch.randn(5, 4)
    comparators = {
        "InputXGradient": InputXGradient(model),
        "KernelSHAP": KernelSHAP(model, data),
        "LIME": LIME(model, data, num_samples=100),
        "FastSHAP": FastSHAP(model, 4).fit(data, epochs=1),
    }
    for name, comparator in comparators.items():
        scores = comparator.attribute(x)
        assert scores.shape == (5, 4) and bool(torch.isfinite(scores).all()), name
