import functools

import pyro
import pytest
import torch
from sklearn.datasets import load_digits

import lexppl
from lexppl.distributions import KSubset
from lexppl.imputers import MarginalImputer, NotFittedError
from lexppl.imputers.vaeac import VAEACImputer
from lexppl.infer import PathwiseBound
from lexppl.models import CategoricalLikelihood
from lexppl.nets import MLP

TRAIN = 1400


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
def _fitted():
    return VAEACImputer(latent_dim=8, hidden=64, epochs=15, batch_size=64, lr=2e-3).fit(
        _digits()[0][:TRAIN]
    )


def test_observed_features_are_returned_exactly():
    imputer = _fitted()
    x = _digits()[0][TRAIN : TRAIN + 6]
    z = torch.bernoulli(torch.full((3, 6, 64), 0.5))
    draws = imputer(x, z).expand((4, 3, 6)).sample()
    assert draws.shape == (4, 3, 6, 64)
    kept = z.expand(4, 3, 6, 64) > 0.5
    assert torch.equal(draws[kept], x.expand(4, 3, 6, 64)[kept])
    assert torch.isfinite(draws).all()
    assert not torch.equal(draws[0], draws[1])  # multiple imputation


def test_fit_improves_the_elbo_and_leaves_no_params_in_the_store():
    imputer = _fitted()
    assert len(imputer.elbos_) == 15 and imputer.elbos_[-1] > imputer.elbos_[0]
    assert not any(name.startswith("VAEACImputer") for name in pyro.get_param_store().keys())
    assert not any(p.requires_grad for p in imputer.parameters())


def test_conditional_imputation_beats_the_marginal_on_held_out_halves():
    x = _digits()[0]
    test = x[TRAIN:]
    z = torch.ones_like(test)
    z[:, 32:] = 0  # the bottom half of each 8 x 8 image is hidden
    errors = {}
    for name, imputer in [("vaeac", _fitted()), ("marginal", MarginalImputer().fit(x[:TRAIN]))]:
        draws = imputer(test, z).expand((5, test.shape[0])).sample()
        errors[name] = ((draws - test)[..., 32:] ** 2).sum(-1).mean().item()
    print(
        f"held-out squared error of the hidden half per image: VAEAC {errors['vaeac']:.3f}, "
        f"marginal {errors['marginal']:.3f}"
    )
    assert errors["vaeac"] < 0.9 * errors["marginal"]


def test_state_dict_round_trip_gives_the_same_imputations():
    imputer = _fitted()
    fresh = VAEACImputer(latent_dim=8, hidden=64)
    fresh.load_state_dict(imputer.state_dict())
    assert not any(p.requires_grad for p in fresh.parameters())
    x, z = _digits()[0][TRAIN : TRAIN + 10], torch.bernoulli(torch.full((2, 10, 64), 0.5))
    pyro.set_rng_seed(3)
    a = imputer(x, z).sample()
    pyro.set_rng_seed(3)
    b = fresh(x, z).sample()
    assert torch.equal(a, b)


def test_fit_is_seeded_and_several_vaeacs_coexist():
    x = _digits()[0][:200]
    a = VAEACImputer(latent_dim=4, hidden=16, epochs=2).fit(x)
    b = VAEACImputer(latent_dim=4, hidden=16, epochs=2).fit(x)
    c = VAEACImputer(latent_dim=4, hidden=16, epochs=2, random_state=1).fit(x)
    for (key, value), other in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(value, other), key
    assert a.elbos_ == b.elbos_ and a.elbos_ != c.elbos_


def test_fit_takes_float64_data():
    # e.g. a numpy array passed straight in: cast to the networks' (default) dtype.
    data = _digits()[0][:100].double().numpy()
    imputer = VAEACImputer(latent_dim=2, hidden=8, epochs=1).fit(data)
    assert imputer.shift.dtype == imputer.prior_net[0].weight.dtype == torch.float32
    x = torch.as_tensor(data[:3])
    draws = imputer(x, torch.zeros_like(x)).sample()
    assert draws.dtype == torch.float64 and torch.isfinite(draws).all()


def test_errors():
    x = _digits()[0][:20]
    with pytest.raises(NotFittedError, match="not fitted"):
        VAEACImputer()(x, torch.ones_like(x))
    with pytest.raises(ValueError, match="NaN"):
        VAEACImputer().fit(torch.full((20, 4), float("nan")))
    with pytest.raises(ValueError, match="64 features"):
        _fitted()(torch.rand(3, 10), torch.ones(3, 10))
    with pytest.raises(ValueError, match="latent_dim"):
        VAEACImputer(latent_dim=0)


def test_short_lex_run():
    x, y = _digits()
    model = lexppl.LEX(
        MLP(64, 64),
        MLP(64, 10),
        _fitted(),
        functools.partial(KSubset, k=16),
        CategoricalLikelihood(),
    )
    bound = PathwiseBound(num_masks=2, method="marginal")
    result = lexppl.fit(model, bound, x[:256], y[:256], epochs=1, batch_size=64)
    assert len(result.losses) == 1 and torch.isfinite(torch.tensor(result.losses)).all()
