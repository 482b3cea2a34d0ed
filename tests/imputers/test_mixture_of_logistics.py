import functools

import pytest
import torch
from sklearn.datasets import load_digits

import lexppl
from lexppl.distributions import KSubset
from lexppl.imputers import NotFittedError
from lexppl.imputers.mixture_of_logistics import (
    MixtureOfLogisticsImputer,
    MixtureOfLogisticsMeansImputer,
    discretized_logistic_log_prob,
)
from lexppl.infer import PathwiseBound
from lexppl.models import CategoricalLikelihood
from lexppl.nets import MLP


@pytest.fixture(autouse=True)
def _one_thread():
    # Two shared cores: one intra-op thread avoids oversubscription of the small ops here.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def _digits():
    data = load_digits()
    x = torch.round(torch.tensor(data.data, dtype=torch.float32) / 16 * 255) / 255
    return x, torch.tensor(data.target)


@functools.cache
def _fitted(cls, method="gradient"):
    return cls(n_components=10, fit=method, epochs=4, batch_size=128).fit(_digits()[0][:1000])


def fitted(cls=MixtureOfLogisticsImputer, method="gradient"):
    return _fitted(cls, method)


def test_discretised_logistic_sums_to_one_with_finite_edges():
    for dtype, tolerance in [(torch.float64, 1e-10), (torch.float32, 1e-5)]:
        levels = torch.arange(256, dtype=dtype) / 255
        for loc in [-1.0, 0.0, 0.3, 1.0, 2.0]:
            for log_scale in [-7.0, -3.0, 0.0, 2.0]:
                lp = discretized_logistic_log_prob(
                    levels, torch.tensor(loc, dtype=dtype), torch.tensor(log_scale, dtype=dtype)
                )
                assert torch.isfinite(lp).all()  # including the edge levels 0 and 255
                assert torch.exp(lp).sum().item() == pytest.approx(1.0, abs=tolerance)
    # an edge level far from the location keeps a finite (very negative) log-probability
    far = discretized_logistic_log_prob(
        torch.tensor([0.0, 1.0]), torch.tensor(0.5), torch.tensor(-7.0)
    )
    assert torch.isfinite(far).all() and (far < -100).all()


def test_discretised_logistic_matches_the_cdf_difference():
    levels = torch.arange(256, dtype=torch.float64) / 255
    loc, scale = 0.4, 0.1
    cdf = torch.sigmoid((levels[:, None] + torch.tensor([0.5, -0.5]) / 255 - loc) / scale)
    expected = cdf[:, 0] - cdf[:, 1]
    expected[0], expected[-1] = cdf[0, 0], 1 - cdf[-1, 1]
    lp = discretized_logistic_log_prob(levels, torch.tensor(loc), torch.tensor(scale).log())
    assert torch.allclose(lp.exp(), expected, atol=1e-12)


@pytest.mark.parametrize("method", ["gradient", "em"])
def test_training_log_likelihood_rises(method):
    imputer = fitted(method=method)
    lls = imputer.log_likelihoods_
    print(f"MoL {method}: log-likelihood per digit, first epoch {lls[0]:.3f}, last {lls[-1]:.3f}")
    assert len(lls) == 4 and all(ll == ll for ll in lls)  # not NaN
    assert lls[-1] > lls[0]
    assert imputer.log_prob(_digits()[0][1000:]).isfinite().all()


@pytest.mark.parametrize("cls", [MixtureOfLogisticsImputer, MixtureOfLogisticsMeansImputer])
def test_observed_features_are_returned_exactly(cls):
    imputer = fitted(cls)
    x = _digits()[0][1000:1006]
    z = torch.bernoulli(torch.full((3, 6, 64), 0.5))
    draws = imputer(x, z).expand((4, 3, 6)).sample()
    assert draws.shape == (4, 3, 6, 64)
    kept = z.expand(4, 3, 6, 64) > 0.5
    assert torch.equal(draws[kept], x.expand(4, 3, 6, 64)[kept])
    assert torch.isfinite(draws).all() and (draws >= 0).all() and (draws <= 1).all()
    if cls is MixtureOfLogisticsImputer:  # samples lie on the grid k / 255
        assert torch.equal(draws * 255, torch.round(draws * 255))
        assert not torch.equal(draws[0], draws[1])


def test_means_imputer_uses_component_locations():
    imputer = fitted(MixtureOfLogisticsMeansImputer)
    x, z = _digits()[0][:5], torch.zeros(5, 64)
    draws = imputer(x, z).sample()
    locations = imputer.loc.clamp(0, 1)
    assert (draws[:, None, :] == locations[None]).all(-1).any(-1).all()


def test_component_posterior_uses_observed_pixels():
    imputer = fitted()
    x = _digits()[0][1000:1001]
    fill = imputer.fill_distribution(x, torch.ones(1, 64))
    # fully observed: the posterior is the exact p(k|x)
    joint = imputer.logits + discretized_logistic_log_prob(
        x[:, None, :], imputer.loc, imputer.log_scale
    ).sum(-1)
    assert torch.allclose(fill.logits.log_softmax(-1), joint.log_softmax(-1), atol=1e-4)
    # nothing observed: the posterior is the prior
    fill = imputer.fill_distribution(x, torch.zeros(1, 64))
    assert torch.allclose(fill.logits.log_softmax(-1), imputer.logits.expand(1, 10))


def test_component_posterior_of_many_masks_is_each_masks_own():
    # eq. 20 for (L, N) masks in one batched product: each particle's posterior is the one its
    # mask alone gives (sum of the observed pixels' log-densities).
    imputer = fitted()
    x = _digits()[0][1000:1004]
    z = (torch.rand(3, 4, 64, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    pixel = discretized_logistic_log_prob(x[:, None, :], imputer.loc, imputer.log_scale)
    expected = imputer.logits + (pixel[None] * z[:, :, None, :]).sum(-1)  # (3, 4, K)
    fill = imputer.fill_distribution(x, z)
    assert torch.allclose(fill.logits, expected, rtol=1e-5, atol=1e-3)


def test_state_dict_round_trip_gives_the_same_imputations():
    imputer = fitted()
    fresh = MixtureOfLogisticsImputer(n_components=10)
    fresh.load_state_dict(imputer.state_dict())
    x, z = _digits()[0][1000:1010], torch.bernoulli(torch.full((2, 10, 64), 0.5))
    torch.manual_seed(3)
    a = imputer(x, z).sample()
    torch.manual_seed(3)
    b = fresh(x, z).sample()
    assert torch.equal(a, b)


def test_errors():
    x = _digits()[0][:20]
    with pytest.raises(NotFittedError, match="not fitted"):
        MixtureOfLogisticsImputer()(x, torch.ones_like(x))
    with pytest.raises(ValueError, match="NaN"):
        MixtureOfLogisticsImputer().fit(torch.full((20, 4), float("nan")))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        MixtureOfLogisticsImputer().fit(x * 16)
    with pytest.raises(ValueError, match="at least n_components"):
        MixtureOfLogisticsImputer(n_components=10).fit(x[:5])
    with pytest.raises(ValueError, match="fit"):
        MixtureOfLogisticsImputer(fit="newton")
    with pytest.raises(ValueError, match="64 features"):
        fitted()(torch.rand(3, 10), torch.ones(3, 10))


@pytest.mark.parametrize("cls", [MixtureOfLogisticsImputer, MixtureOfLogisticsMeansImputer])
def test_short_lex_run(cls):
    x, y = _digits()
    model = lexppl.LEX(
        MLP(64, 64),
        MLP(64, 10),
        fitted(cls),
        functools.partial(KSubset, k=16),
        CategoricalLikelihood(),
    )
    result = lexppl.fit(
        model,
        PathwiseBound(num_masks=2, method="marginal"),
        x[:256],
        y[:256],
        epochs=1,
        batch_size=64,
    )
    assert len(result.losses) == 1 and torch.isfinite(torch.tensor(result.losses)).all()
