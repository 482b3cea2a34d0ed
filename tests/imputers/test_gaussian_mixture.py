import functools
import math

import pyro
import pytest
import torch

from lexppl import LEX, fit
from lexppl.data import load
from lexppl.distributions import KSubset
from lexppl.imputers import (
    GaussianMixtureImputer,
    GaussianMixtureMeansImputer,
    MarginalImputer,
    NotFittedError,
)
from lexppl.infer import PathwiseBound
from lexppl.models import CategoricalLikelihood
from lexppl.nets import MLP

# A known 2-D mixture of three diagonal Gaussians (float64 for tight comparisons).
WEIGHTS = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
MEANS = torch.tensor([[-2.0, 1.0], [0.0, -1.5], [2.5, 3.0]], dtype=torch.float64)
VARIANCES = torch.tensor([[0.5, 0.3], [1.0, 0.8], [0.4, 1.5]], dtype=torch.float64)
X1_VALUES = [-2.0, 0.3, 2.0]
OBSERVE_FIRST = torch.tensor([1.0, 0.0], dtype=torch.float64)


def known_mixture(cls=GaussianMixtureImputer):
    return cls.from_parameters(WEIGHTS, MEANS, VARIANCES)


def sample_mixture(n, generator=None):
    c = torch.multinomial(WEIGHTS, n, replacement=True, generator=generator)
    noise = torch.randn(n, 2, dtype=torch.float64, generator=generator)
    return MEANS[c] + VARIANCES[c].sqrt() * noise


def analytic_posterior(x1):
    """p(c | x_1) for the known mixture."""
    log_lik = torch.distributions.Normal(MEANS[:, 0], VARIANCES[:, 0].sqrt()).log_prob(
        torch.tensor(x1, dtype=torch.float64)
    )
    logits = WEIGHTS.log() + log_lik
    return (logits - logits.logsumexp(0)).exp()


def mixture_moments(weights, means, variances):
    """Mean, variance and central 4th moment of a 1-D Gaussian mixture."""
    mean = (weights * means).sum()
    delta = means - mean
    var = (weights * (variances + delta**2)).sum()
    m4 = (weights * (delta**4 + 6 * delta**2 * variances + 3 * variances**2)).sum()
    return mean.item(), var.item(), m4.item()


def check_moments(draws, mean, var, m4, extra_var_of_mean=0.0, extra_var_of_var=0.0):
    """Sample mean and variance within 4 standard errors of the analytic values."""
    n = draws.numel()
    se_mean = math.sqrt(var / n + extra_var_of_mean)
    se_var = math.sqrt((m4 - var**2) / n + extra_var_of_var)
    assert abs(draws.mean().item() - mean) < 4 * se_mean
    assert abs(draws.var().item() - var) < 4 * se_var


@pytest.mark.parametrize("cls", [GaussianMixtureImputer, GaussianMixtureMeansImputer])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_observed_features_are_returned_exactly(cls, covariance_type):
    imputer = cls(n_components=3, covariance_type=covariance_type).fit(torch.randn(60, 5) + 2)
    x = torch.randn(4, 5)
    z = torch.bernoulli(torch.full((3, 4, 5), 0.5))
    draws = imputer(x, z).expand((2, 3, 4)).sample()
    assert draws.shape == (2, 3, 4, 5)
    kept = z.expand(2, 3, 4, 5) > 0.5
    assert torch.equal(draws[kept], x.expand(2, 3, 4, 5)[kept])
    assert torch.isfinite(draws).all()
    assert imputer.multiple and imputer.requires_fit


def test_fit_stores_sklearn_parameters_as_buffers():
    X = sample_mixture(3000, torch.Generator().manual_seed(0)).float()
    imputer = GaussianMixtureImputer(n_components=3).fit(X)
    buffers = dict(imputer.named_buffers())
    assert {"log_weights", "means", "variances"} <= buffers.keys()
    order = imputer.means[:, 0].argsort()
    assert torch.allclose(imputer.means[order].double(), MEANS, atol=0.15)
    assert torch.allclose(imputer.log_weights[order].exp().double(), WEIGHTS, atol=0.03)
    spherical = GaussianMixtureImputer(n_components=3, covariance_type="spherical").fit(X)
    assert spherical.variances.shape == (3, 2)
    assert torch.equal(spherical.variances[:, 0], spherical.variances[:, 1])


@pytest.mark.parametrize("x1", X1_VALUES)
def test_component_posterior_is_the_analytic_one(x1):
    imputer = known_mixture()
    x = torch.tensor([[x1, 123.0]], dtype=torch.float64)  # x_2 is ignored (unobserved)
    z = OBSERVE_FIRST.expand(3, 1, 2)  # three identical particles
    posterior = imputer.component_log_posterior(x, z).exp()
    assert posterior.shape == (3, 1, 3)
    expected = analytic_posterior(x1)
    assert torch.allclose(posterior, expected.expand(3, 1, 3), rtol=1e-10, atol=1e-12)
    # an empty mask gives the mixing weights
    empty = imputer.component_log_posterior(x, torch.zeros(1, 2, dtype=torch.float64)).exp()
    assert torch.allclose(empty[0], WEIGHTS)


@pytest.mark.parametrize("x1", X1_VALUES)
def test_conditional_samples_have_the_analytic_mixture_moments(x1):
    n = 20000
    imputer = known_mixture()
    x = torch.tensor([[x1, 0.0]], dtype=torch.float64).expand(n, 2)
    draws = imputer(x, OBSERVE_FIRST.expand(n, 2)).sample()[:, 1]
    w = analytic_posterior(x1)
    check_moments(draws, *mixture_moments(w, MEANS[:, 1], VARIANCES[:, 1]))
    # log_prob of the fill: the density of x_2 under the conditional mixture
    fill = imputer.fill_distribution(x[:1], OBSERVE_FIRST.expand(1, 2))
    value = torch.tensor([[x1, 0.7]], dtype=torch.float64)
    normal = torch.distributions.Normal(MEANS[:, 1], VARIANCES[:, 1].sqrt())
    expected = (w.log() + normal.log_prob(torch.tensor(0.7, dtype=torch.float64))).logsumexp(0)
    assert torch.allclose(fill.log_prob(value), expected[None])


@pytest.mark.parametrize("x1", X1_VALUES[:2])
def test_means_imputer_draws_component_means_with_posterior_frequencies(x1):
    n = 20000
    imputer = known_mixture(GaussianMixtureMeansImputer)
    x = torch.tensor([[x1, 0.0]], dtype=torch.float64).expand(n, 2)
    draws = imputer(x, OBSERVE_FIRST.expand(n, 2)).sample()[:, 1]
    hits = draws[:, None] == MEANS[:, 1]  # every draw is one of the means
    assert hits.any(-1).all()
    frequencies, w = hits.double().mean(0), analytic_posterior(x1)
    se = (w * (1 - w) / n).sqrt()
    assert ((frequencies - w).abs() <= 4 * se + 1e-12).all()
    with pytest.raises(NotImplementedError, match="point masses"):
        imputer.fill_distribution(x[:1], OBSERVE_FIRST.expand(1, 2)).log_prob(x[:1])


def test_marginal_imputer_matches_the_mixture_marginal():
    n_rows, n = 20000, 20000
    rows = sample_mixture(n_rows, torch.Generator().manual_seed(1))
    imputer = MarginalImputer().fit(rows)
    draws = imputer(torch.zeros(n, 2, dtype=torch.float64), torch.zeros(n, 2)).sample()
    for d in range(2):
        mean, var, m4 = mixture_moments(WEIGHTS, MEANS[:, d], VARIANCES[:, d])
        # the draws resample a finite set of rows: add the rows' own sampling error
        check_moments(draws[:, d], mean, var, m4, var / n_rows, (m4 - var**2) / n_rows)


def test_seeding_reproduces_draws_and_state_dict_round_trips():
    imputer = GaussianMixtureImputer(n_components=3).fit(torch.randn(80, 4))
    x, z = torch.randn(5, 4), torch.bernoulli(torch.full((2, 5, 4), 0.5))
    pyro.set_rng_seed(7)
    a = imputer(x, z).sample()
    fresh = GaussianMixtureImputer(n_components=3)
    fresh.load_state_dict(imputer.state_dict())
    assert fresh.is_fitted
    pyro.set_rng_seed(7)
    b = fresh(x, z).sample()
    assert torch.equal(a, b)


def test_soft_mask_keeps_a_gradient():
    imputer = GaussianMixtureImputer(n_components=2).fit(torch.randn(40, 3))
    z = torch.full((4, 3), 0.5, requires_grad=True)
    imputer(torch.randn(4, 3), z).rsample().sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_errors_are_clear():
    with pytest.raises(ValueError, match=r"covariance_type.*\['diag', 'spherical'\]"):
        GaussianMixtureImputer(covariance_type="full")
    with pytest.raises(ValueError, match="n_components"):
        GaussianMixtureImputer(n_components=0)
    with pytest.raises(NotFittedError, match="not fitted"):
        GaussianMixtureImputer()(torch.zeros(2, 3), torch.zeros(2, 3))
    X = torch.randn(30, 3)
    X[4, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        GaussianMixtureImputer(n_components=2).fit(X)
    with pytest.raises(ValueError, match="at least n_components"):
        GaussianMixtureImputer(n_components=5).fit(torch.randn(3, 2))
    imputer = GaussianMixtureImputer(n_components=2).fit(torch.randn(30, 3))
    with pytest.raises(ValueError, match="3 features"):
        imputer(torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="sum to 1"):
        GaussianMixtureImputer.from_parameters(torch.ones(2), torch.zeros(2, 3), torch.ones(2))


# ------------------------------------------------------------------ LEX training
def train_lex(imputer, x, y, k, num_classes, epochs=1):
    torch.manual_seed(0)
    d = x.shape[1]
    lex = LEX(
        MLP(d, d, (32,)),
        MLP(d, num_classes, (32,)),
        imputer,
        functools.partial(KSubset, k=k),
        CategoricalLikelihood(),
    )
    result = fit(
        lex,
        PathwiseBound(num_masks=2, method="marginal"),
        x,
        y,
        epochs=epochs,
        batch_size=100,
        lr=1e-3,
    )
    return result


def digits(n=300):
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.as_tensor(data.data[:n], dtype=torch.float32) / 16
    return x, torch.as_tensor(data.target[:n], dtype=torch.long)


@pytest.mark.parametrize("cls", [GaussianMixtureImputer, GaussianMixtureMeansImputer])
def test_lex_trains_on_s3(cls):
    data = load("s3", n=500)
    imputer = cls(n_components=3).fit(load("s3", "val", n=500).x)
    result = train_lex(imputer, data.x, data.y, k=5, num_classes=2)
    assert all(math.isfinite(loss) for loss in result.losses)


@pytest.mark.parametrize("cls", [GaussianMixtureImputer, GaussianMixtureMeansImputer])
def test_lex_trains_on_digits(cls):
    x, y = digits()
    imputer = cls(n_components=4, noise=1 / 16).fit(x)
    result = train_lex(imputer, x, y, k=16, num_classes=10)
    assert all(math.isfinite(loss) for loss in result.losses)
