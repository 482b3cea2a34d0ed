"""lexppl's device rules on an accelerator, checked without one: everything runs on the emulated
GPU of ``fake_cuda.py`` (device "meta", values on the CPU), which raises where CUDA would."""

import functools

import numpy as np
import pytest
import torch
from fake_cuda import DEVICE, DeviceMismatch, FakeCuda

import lexppl
from lexppl import LEX, LEXExplainer, comparators
from lexppl.data import TrueResponse, load
from lexppl.distributions import KSubset
from lexppl.imputers import ConstantImputer, GaussianImputer
from lexppl.infer import PathwiseBound
from lexppl.methods import EvalX
from lexppl.models import CategoricalLikelihood
from lexppl.nets import MLP

D = 11  # S3's features
TINY = dict(epochs=1, batch_size=32, selector_hidden=(8,), predictor_hidden=(8,))


@pytest.fixture(scope="module")
def s3():
    train, test = load("s3", "train", n=64), load("s3", "test", n=16)
    return train.x, train.y, test.x, test.y


@pytest.fixture
def gpu():
    with FakeCuda():
        yield


def black_box(device=DEVICE):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(D, 2), torch.nn.Softmax(-1)).to(device)


def on_device(module):
    return {t.device for t in [*module.parameters(), *module.buffers()]} == {DEVICE}


def check_outputs(explainer, x):
    # What a user gets back is numpy, whichever device the model is on.
    importance = explainer.explain(x)
    assert isinstance(importance, np.ndarray) and importance.shape == (len(x), D)
    assert np.isfinite(importance).all()
    selection = explainer.select(x)
    assert isinstance(selection, np.ndarray) and set(np.unique(selection)) <= {0, 1}
    proba = explainer.predict_proba(x, num_samples=4)
    assert isinstance(proba, np.ndarray) and np.allclose(proba.sum(1), 1, atol=1e-5)


# ---------------------------------------------------------------------------- the emulator
def test_emulator_refuses_cpu_tensors_mixed_with_device_tensors():
    # Without this the tests below could pass because the emulator stopped checking anything.
    constructors = torch.tensor, torch.as_tensor, torch.asarray, torch.Tensor.new_tensor
    with pytest.raises(DeviceMismatch, match=r"\[\(3,\)\] mixed"), FakeCuda():
        x = torch.ones(3, device=DEVICE)
        assert (x + torch.tensor(1.0)).device == DEVICE  # a CPU scalar is allowed, as on CUDA
        assert torch.as_tensor(np.ones(3), device=DEVICE).device == DEVICE
        with pytest.raises(RuntimeError, match="numpy"):
            x.numpy()
        x + torch.ones(3)
    # The constructors are patched only inside the mode, and given back on an error too.
    assert (torch.tensor, torch.as_tensor, torch.asarray, torch.Tensor.new_tensor) == constructors


# ---------------------------------------------------------------------------- fixed bugs
@pytest.mark.parametrize(
    "method, box_device, x_device",
    [("lex", DEVICE, "cpu"), ("l2x", DEVICE, "cpu"), ("lex", "cpu", DEVICE)],
    ids=["lex-gpu-box", "l2x-gpu-box", "lex-gpu-data-cpu-box"],
)
def test_black_box_runs_on_its_own_device(s3, gpu, method, box_device, x_device):
    X, _, x, _ = s3
    box = black_box(box_device)
    explainer = LEXExplainer(method=method, k=3, device=DEVICE, **TINY)
    explainer.fit(X.to(x_device), black_box=box)
    assert on_device(explainer.model_) and next(box.parameters()).device == torch.device(box_device)
    check_outputs(explainer, x.numpy())


def test_bayesian_explainer_runs_on_the_device(s3, gpu):
    # The guide's initial values and to_inference_data's labels once stayed on the CPU.
    X, y, x, labels = s3
    explainer = LEXExplainer(k=3, bayesian=True, num_masks=2, device=DEVICE, **TINY)
    explainer.fit(X.numpy(), y.numpy())
    assert on_device(explainer.model_.autoguide)
    low, high = explainer.credible_interval(x.numpy(), num_samples=4)
    assert isinstance(low, np.ndarray) and (low <= high).all()
    data = explainer.to_inference_data(x.numpy(), labels.numpy(), num_samples=4, num_chains=1)
    np.testing.assert_array_equal(data.observed_data["y"], labels.numpy())
    assert data.posterior["selection_probability"].shape[-2:] == (len(x), D)


def test_evalx_without_parameters_runs_where_it_was_moved(s3, gpu):
    _, _, x, y = s3
    evaluator = EvalX.from_predictor(TrueResponse("s3"), GaussianImputer()).to(DEVICE)
    masks = (torch.rand(len(x), D) < 0.5).float()
    assert evaluator.predict_proba(x, masks, num_imputations=2).device == DEVICE
    assert evaluator.predict_proba(x.to(DEVICE), masks.to(DEVICE)).device == DEVICE
    scores = evaluator.score(x.to(DEVICE), y, masks.to(DEVICE), num_imputations=2)
    assert 0 <= scores["eacc"] <= 1 and 0 <= scores["eauroc"] <= 1


@pytest.mark.parametrize(
    "name, package",
    [("lime", "lime"), ("kernel_shap", "shap"), ("senn", None)],
    ids=["lime", "kernel_shap", "senn"],
)
def test_comparators_take_and_give_device_tensors(s3, gpu, name, package):
    if package:
        pytest.importorskip(package)
    X, _, x, _ = s3
    X, x, box = X.to(DEVICE), x[:2].to(DEVICE), black_box()
    if name == "lime":
        comparator = comparators.LIME(box, X, num_samples=20, device=DEVICE)
    elif name == "kernel_shap":
        comparator = comparators.KernelSHAP(box, X, num_background=3, nsamples=20, device=DEVICE)
    else:
        comparator = comparators.SENN(D, 2, hidden=(8,), device=DEVICE)
        comparator.fit(X, black_box=box, epochs=1, batch_size=32)
    scores = comparator.attribute(x)
    assert scores.device == DEVICE and scores.shape == (2, D)
    assert torch.isfinite(scores).all()


# ---------------------------------------------------------------------------- sweeps
SWEEP = {
    "lex-pathwise": dict(k=3, estimator="pathwise", num_masks=2),
    "lex-reinforce": dict(k=3, estimator="reinforce", num_masks=2),
    "lex-rebar": dict(k=3, estimator="rebar", num_masks=2),
    "lex-enumerate": dict(mask="bernoulli", estimator="enumerate", num_masks=2),
    "l2x": dict(method="l2x", k=3),
    "invase": dict(method="invase"),
    "realx": dict(method="realx"),
    "basex": dict(method="basex"),
    "rationale": dict(method="rationale"),
    "ail": dict(method="ail", k=3),
}


@pytest.mark.parametrize("options", SWEEP.values(), ids=SWEEP.keys())
def test_explainer_fits_and_explains_on_the_device(s3, gpu, options):
    X, y, x, _ = s3
    explainer = LEXExplainer(device=DEVICE, **TINY, **options)
    if options.get("method") == "ail":
        explainer.fit(X.numpy(), black_box=black_box())
    else:
        explainer.fit(X.numpy(), y.numpy())
    assert on_device(explainer.model_)
    check_outputs(explainer, x.numpy())


def test_fit_moves_the_model_to_the_device(s3, gpu):
    X, y, x, _ = s3
    torch.manual_seed(0)
    model = LEX(
        MLP(D, D, (8,)),
        MLP(D, 2, (8,)),
        ConstantImputer(0.0),
        functools.partial(KSubset, k=3),
        CategoricalLikelihood(),
    )
    result = lexppl.fit(model, PathwiseBound(2), X, y, epochs=1, batch_size=32, device=DEVICE)
    assert on_device(model) and np.isfinite(result.losses).all()
    assert model.importance(x.to(DEVICE)).device == DEVICE


def test_explainer_follows_its_model_when_moved_after_fit(s3):
    X, y, x, _ = s3
    explainer = LEXExplainer(k=3, num_masks=2, **TINY).fit(X.numpy(), y.numpy())
    expected = explainer.explain(x.numpy())
    with FakeCuda():
        explainer.model_.to(DEVICE)  # inputs go where the model is, not where it was trained
        np.testing.assert_allclose(explainer.explain(x.numpy()), expected, rtol=1e-6)
