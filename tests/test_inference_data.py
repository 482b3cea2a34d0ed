"""ArviZ export of the posterior over explanations."""

import functools

import numpy as np
import pytest
import torch

from lexppl.data import load
from lexppl.distributions import KSubset
from lexppl.imputers import GaussianImputer
from lexppl.infer import PathwiseBound
from lexppl.inference_data import az, to_inference_data
from lexppl.models import LEX, BayesianLEX, CategoricalLikelihood, fit_bayesian
from lexppl.nets import MLP

N, D = 12, 11


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny networks: extra intra-op threads only contend for the two cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def parts():
    return (
        MLP(D, D, (8,)),
        MLP(D, 2, (8,)),
        GaussianImputer(),
        functools.partial(KSubset, k=5),
        CategoricalLikelihood(),
    )


@pytest.fixture(scope="module")
def trained():
    data = load("s3", "train", n=200)
    model = BayesianLEX(*parts())
    fit_bayesian(
        model, PathwiseBound(2, method="marginal"), data.x, data.y, epochs=5, batch_size=100
    )
    test = load("s3", "test", n=N)
    return model, test


def test_groups_dims_and_coords(trained):
    model, test = trained
    idata = to_inference_data(model, model.guide, test.x, test.y, num_samples=40, num_chains=4)
    assert set(idata.groups()) == {
        "posterior",
        "posterior_predictive",
        "log_likelihood",
        "observed_data",
        "constant_data",
    }
    p = idata.posterior["selection_probability"]
    assert p.dims == ("chain", "draw", "instance", "feature")
    assert p.shape == (4, 10, N, D)
    assert list(p.coords["feature"].values) == [f"x{d}" for d in range(1, D + 1)]
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(p.sum("feature"), 5.0, atol=1e-4)  # k-subset marginals sum to k
    mask = idata.posterior_predictive["mask"]
    assert mask.dims == ("chain", "draw", "instance", "feature")
    assert set(np.unique(mask.values)) <= {0, 1} and (mask.sum("feature") == 5).all()
    assert idata.posterior_predictive["y"].dims == ("chain", "draw", "instance")
    np.testing.assert_array_equal(idata.observed_data["y"].values, test.y.numpy())
    assert idata.constant_data["x"].dims == ("instance", "feature")
    loglik = idata.log_likelihood["y"]
    assert loglik.dims == ("chain", "draw", "instance") and (loglik <= 0).all()
    # the posterior draws agree with the model's own posterior over explanations
    mean = torch.as_tensor(p.mean(("chain", "draw")).values)
    assert torch.allclose(mean, model.importance(test.x, num_samples=400), atol=0.08)


def test_summary_and_netcdf_round_trip(trained, tmp_path):
    model, test = trained
    idata = to_inference_data(model, None, test.x, test.y, num_samples=80, include_weights=True)
    summary = az.summary(idata, var_names=["selection_probability"])
    assert len(summary) == N * D
    assert np.isfinite(summary["r_hat"]).all() and (summary["r_hat"] < 1.2).all()
    assert "selector.0.weight" in idata.posterior  # the selector-weight draws
    path = tmp_path / "lex.nc"
    idata.to_netcdf(str(path))
    back = az.from_netcdf(str(path))
    assert set(back.groups()) == set(idata.groups())
    for group in idata.groups():
        for name, value in idata[group].data_vars.items():
            np.testing.assert_array_equal(back[group][name].values, value.values)
    assert list(back.posterior.coords["feature"].values) == list(
        idata.posterior.coords["feature"].values
    )


def test_plain_lex_and_options():
    model = LEX(*parts())
    x = torch.randn(N, D)
    idata = to_inference_data(model, x=x, num_samples=6, num_chains=2, feature_names="abcdefghijk")
    assert set(idata.groups()) == {"posterior", "posterior_predictive", "constant_data"}
    p = idata.posterior["selection_probability"]
    assert list(p.coords["feature"].values) == list("abcdefghijk")
    assert float(p.std(("chain", "draw")).max()) < 1e-6  # a point estimate: identical draws
    with pytest.raises(ValueError, match="multiple of num_chains"):
        to_inference_data(model, x=x, num_samples=5, num_chains=2)
    with pytest.raises(ValueError, match="feature_names"):
        to_inference_data(model, x=x, num_samples=2, num_chains=1, feature_names=["a"])
    for bad in (torch.zeros(3).long(), torch.zeros(N, 1).long(), np.zeros(N, dtype=np.int64)):
        with pytest.raises(ValueError, match=rf"y must be a tensor of one label per row.*\({N},\)"):
            to_inference_data(model, x=x, y=bad, num_samples=2, num_chains=1)


def test_a_guide_that_proposes_masks_is_refused():
    # The export draws masks from the model, p(z|x); a mask proposal q(z|x, y) replayed in
    # their place would make the posterior predictive masks q's.
    from lexppl.guides import MaskProposal

    model = LEX(*parts())
    proposal = MaskProposal.from_prior(model, D, num_classes=2)
    x, y = torch.randn(N, D), torch.randint(0, 2, (N,))
    with pytest.raises(ValueError, match=r"the guide draws the model's LEX site\(s\) \['mask'\]"):
        to_inference_data(model, proposal, x=x, y=y, num_samples=2, num_chains=1)
