import math

import pyro
import pytest
import torch
from pyro.distributions import MaskedDistribution

from lexppl.imputers import (
    ConstantImputer,
    GaussianImputer,
    GaussianMixtureImputer,
    GMMDatasetImputer,
    ImputedDistribution,
    KMeansDatasetImputer,
    MarginalImputer,
    MeanImputer,
    MixtureOfLogisticsImputer,
    NotFittedError,
    VAEACImputer,
)

N, D = 6, 5

#: Every imputer, fitted (small, fast fits) on data ``X`` of intensities in [0, 1].
SMALL_FITS = {
    "constant": lambda X: ConstantImputer(0.5),
    "mean": lambda X: MeanImputer().fit(X),
    "gaussian": lambda X: GaussianImputer().fit(X),
    "marginal": lambda X: MarginalImputer().fit(X),
    "gmm": lambda X: GaussianMixtureImputer(2).fit(X),
    "gmm-dataset": lambda X: GMMDatasetImputer(2).fit(X),
    "kmeans-dataset": lambda X: KMeansDatasetImputer(2).fit(X),
    "mixture-of-logistics": lambda X: MixtureOfLogisticsImputer(2, epochs=1).fit(X),
    "vaeac": lambda X: VAEACImputer(latent_dim=2, hidden=8, epochs=1).fit(X),
}


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


def test_gaussian_fit_needs_two_rows():
    # The standard deviation of one row is NaN: refused at fit, not found at the first draw.
    with pytest.raises(ValueError, match=r"GaussianImputer\.fit needs at least 2 rows"):
        GaussianImputer().fit(torch.randn(1, D))
    assert torch.isfinite(GaussianImputer().fit(torch.randn(2, D)).scale).all()


@pytest.mark.parametrize("name", list(SMALL_FITS))
def test_an_empty_batch_gives_empty_imputations(name):
    imputer = SMALL_FITS[name](torch.rand(40, D))
    draws = imputer(torch.empty(0, D), torch.ones(3, 0, D)).sample((2,))
    assert draws.shape == (2, 3, 0, D)


@pytest.mark.parametrize("name", list(SMALL_FITS))
def test_integer_inputs_are_cast_to_float_as_in_fit(name):
    imputer = SMALL_FITS[name](torch.randint(0, 2, (40, D)))
    x, z = torch.randint(0, 2, (4, D)), torch.randint(0, 2, (3, 4, D))
    pyro.set_rng_seed(0)
    draws = imputer(x, z).sample()
    pyro.set_rng_seed(0)
    expected = imputer(x.float(), z.float()).sample()
    assert draws.dtype == torch.get_default_dtype()
    assert torch.equal(draws, expected)  # e.g. ConstantImputer(0.5) fills 0.5, not int 0


@pytest.mark.parametrize("name", list(SMALL_FITS))
def test_non_finite_inputs_raise_only_under_validation(name):
    data = torch.rand(40, D)
    imputer = SMALL_FITS[name](data)
    x = data[:2].clone()
    x[0, -1], x[1, -1] = float("nan"), float("inf")
    z = torch.ones(2, D)
    z[:, -1] = 0.0  # the bad values are at features to impute, where 0 * NaN = NaN
    with pytest.raises(ValueError, match=f"{type(imputer).__name__} got inputs containing NaN"):
        imputer(x, z)
    with pyro.validation_enabled(False):  # the check is skipped for speed, as Pyro's
        imputer(x, z)


@pytest.mark.parametrize("name", list(SMALL_FITS))
@pytest.mark.parametrize("fit_shape, use_shape", [((9,), (1, 3, 3)), ((1, 3, 3), (9,))])
def test_inputs_of_another_layout_with_the_fitted_feature_count(name, fit_shape, use_shape):
    # Fitted on flat rows and used on images (or the reverse), the features match in row-major
    # order: the same draws as in the fit data's own layout.
    data = torch.rand(40, 9)
    imputer = SMALL_FITS[name](data.reshape(40, *fit_shape))
    x, z = data[:4], torch.bernoulli(torch.full((3, 4, 9), 0.5))
    pyro.set_rng_seed(0)
    draws = imputer(x.reshape(4, *use_shape), z.reshape(3, 4, *use_shape)).sample()
    pyro.set_rng_seed(0)
    expected = imputer(x.reshape(4, *fit_shape), z.reshape(3, 4, *fit_shape)).sample()
    assert draws.shape == (3, 4, *use_shape)
    assert torch.equal(draws.reshape(expected.shape), expected)


@pytest.mark.parametrize(
    "make",
    [
        MeanImputer,
        GaussianImputer,
        MarginalImputer,
        lambda: GMMDatasetImputer(2),
        lambda: KMeansDatasetImputer(2),
    ],
    ids=["mean", "gaussian", "marginal", "gmm-dataset", "kmeans-dataset"],
)
def test_an_imputer_restored_from_a_checkpoint_takes_another_layout(make):
    source = make().fit(torch.rand(40, 9))
    restored = make()
    restored.load_state_dict(source.state_dict())
    x, z = torch.rand(4, 9), torch.bernoulli(torch.full((4, 9), 0.5))
    pyro.set_rng_seed(0)
    draws = restored(x.reshape(4, 1, 3, 3), z.reshape(4, 1, 3, 3)).sample()
    pyro.set_rng_seed(0)
    assert torch.equal(draws.reshape(4, 9), source(x, z).sample())


def test_an_imputation_masked_by_false_is_unscored_but_keeps_its_parts():
    # LEX samples its imputation site from imputer(x, z).mask(False): Pyro's ELBOs then skip
    # a log-density that fills such as resampled rows do not have.
    imputer = MarginalImputer().fit(torch.randn(7, D))
    x, z = torch.randn(N, D), torch.bernoulli(torch.full((N, D), 0.5))
    imputed = imputer(x, z)
    value = imputed.sample()
    with pytest.raises(NotImplementedError, match="factorises"):
        imputed.log_prob(value)
    unscored = imputed.mask(False).expand((3, N))
    assert isinstance(unscored, ImputedDistribution)
    assert unscored.x is x and unscored.z is imputed.z
    assert torch.equal(unscored.fill.rows, imputer.rows)
    assert torch.equal(unscored.log_prob(value), torch.zeros(3, N))
    assert unscored.sample().shape == (3, N, D)
    gaussian = GaussianImputer()(x, z)
    assert torch.equal(gaussian.log_prob(value), gaussian.mask(True).log_prob(value))
    assert isinstance(gaussian.mask(z[:, 0] > 0.5), MaskedDistribution)
