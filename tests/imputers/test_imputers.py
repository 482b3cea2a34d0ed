import math

import pytest
import torch

from lexppl.imputers import (
    ConstantImputer,
    GaussianImputer,
    MarginalImputer,
    MeanImputer,
    NotFittedError,
)

N, D = 6, 5


def fitted(imputer):
    if imputer.requires_fit or isinstance(imputer, GaussianImputer):
        imputer.fit(torch.randn(40, D) + 3.0)
    return imputer


IMPUTERS = [
    lambda: ConstantImputer(0.0),
    lambda: ConstantImputer(torch.arange(D, dtype=torch.float), learnable=True),
    MeanImputer,
    GaussianImputer,
    MarginalImputer,
]
IDS = ["zero", "learnable", "mean", "gaussian", "marginal"]


@pytest.mark.parametrize("make", IMPUTERS, ids=IDS)
def test_observed_features_are_returned_exactly(make):
    imputer = fitted(make())
    x = torch.randn(N, D)
    z = torch.bernoulli(torch.full((3, N, D), 0.5))  # 3 mask particles
    draws = imputer(x, z).expand((4, 3, N)).sample()
    assert draws.shape == (4, 3, N, D)
    kept = z.expand(4, 3, N, D) > 0.5
    assert torch.equal(draws[kept], x.expand(4, 3, N, D)[kept])
    assert torch.isfinite(draws).all()


@pytest.mark.parametrize("make", IMPUTERS, ids=IDS)
def test_gradient_reaches_the_mask(make):
    imputer = fitted(make())
    x = torch.randn(N, D)
    z = torch.full((N, D), 0.5, requires_grad=True)
    imputer(x, z).rsample().sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_multiple_imputations_differ_and_single_do_not():
    x, z = torch.randn(N, D), torch.zeros(N, D)
    assert GaussianImputer().multiple and not ConstantImputer().multiple
    d = GaussianImputer()(x, z).expand((2, N))
    a, b = d.sample()
    assert not torch.allclose(a, b)
    a, b = ConstantImputer(1.5)(x, z).expand((2, N)).sample()
    assert torch.equal(a, b) and (a == 1.5).all()


def test_gaussian_imputer_is_standard_normal_on_imputed_features():
    torch.manual_seed(0)
    x, z = torch.zeros(20000, D), torch.zeros(20000, D)
    draws = GaussianImputer()(x, z).sample()
    se_mean = 1 / math.sqrt(draws.numel())
    assert abs(draws.mean().item()) < 4 * se_mean
    # var of the sample variance of a standard normal is 2/(n-1)
    assert abs(draws.var().item() - 1) < 4 * math.sqrt(2 / draws.numel())


def test_marginal_imputer_copies_whole_rows_of_its_data():
    torch.manual_seed(0)
    rows = torch.arange(3 * D, dtype=torch.float).reshape(3, D) + 100
    imputer = MarginalImputer().fit(rows)
    z = torch.zeros(1000, D)
    draws = imputer(torch.zeros(1000, D), z).sample()
    matches = (draws[:, None, :] == rows[None]).all(-1)  # (1000, 3)
    assert matches.any(-1).all()
    # each row is drawn with probability 1/3: counts within 4 binomial standard errors
    counts = matches.float().sum(0)
    assert ((counts - 1000 / 3).abs() < 4 * math.sqrt(1000 * (1 / 3) * (2 / 3))).all()


def test_log_prob_of_imputations():
    x = torch.randn(N, D)
    z = torch.bernoulli(torch.full((N, D), 0.5))
    d = GaussianImputer()(x, z)
    value = d.sample()
    expected = (torch.distributions.Normal(0, 1).log_prob(value) * (1 - z)).sum(-1)
    assert torch.allclose(d.log_prob(value), expected)
    moved = value + z  # a kept feature that differs from x has probability zero
    assert (d.log_prob(moved)[z.sum(-1) > 0] == -math.inf).all()
    c = ConstantImputer(0.0)(x, z)
    assert torch.equal(c.log_prob(c.sample()), torch.zeros(N))


def test_errors_name_the_problem():
    with pytest.raises(NotFittedError, match="fit"):
        MarginalImputer()(torch.randn(2, D), torch.ones(2, D))
    with pytest.raises(ValueError, match="NaN"):
        MarginalImputer().fit(torch.tensor([[0.0, float("nan")]]))
    imputer = MarginalImputer().fit(torch.randn(4, D))
    with pytest.raises(ValueError, match="features"):
        imputer(torch.randn(2, D + 1), torch.ones(2, D + 1))
    with pytest.raises(ValueError, match="scale"):
        GaussianImputer(scale=0.0)
    with pytest.raises(ValueError, match="shape"):
        MeanImputer().fit(torch.randn(5))


def test_fitted_state_round_trips_through_state_dict():
    source = MarginalImputer().fit(torch.randn(7, D))
    target = MarginalImputer()
    target.load_state_dict(source.state_dict())
    assert torch.equal(target.rows, source.rows) and target.is_fitted
    mean = MeanImputer().fit(torch.randn(9, D))
    restored = MeanImputer()
    restored.load_state_dict(mean.state_dict())
    assert torch.equal(restored.value, mean.value)
