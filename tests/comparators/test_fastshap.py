import math

import pytest
import torch

from lexppl.comparators import FastSHAP, shapley_kernel_size_probs

D, C = 5, 2


@pytest.fixture
def linear():
    torch.manual_seed(0)
    return torch.nn.Linear(D, C)


BASELINE = torch.tensor([0.5, -0.5, 0.0, 1.0, 0.0])


def exact_shapley(linear, x, baseline):
    """Shapley values of v_x(s) = f(s x + (1 - s) b) for linear f: W_{c,d} (x_d - b_d)."""
    return (x - baseline).unsqueeze(-1) * linear.weight.detach().T  # (N, D, C)


def test_shapley_kernel_size_distribution():
    probs = shapley_kernel_size_probs(6)
    sizes = torch.arange(1, 6, dtype=torch.float64)
    # Summing (D - 1) / (C(D, m) m (D - m)) over the C(D, m) coalitions of size m.
    weights = torch.tensor([(6 - 1) / (m * (6 - m)) for m in range(1, 6)], dtype=torch.float64)
    torch.testing.assert_close(probs, weights / weights.sum())
    torch.testing.assert_close(probs, probs.flip(0))  # symmetric in m <-> D - m
    assert probs[0] > probs[2] and sizes.numel() == 5
    with pytest.raises(ValueError, match="at least 2 features"):
        shapley_kernel_size_probs(1)


def test_sampled_coalitions_follow_the_shapley_kernel(linear):
    fastshap = FastSHAP(linear, D)
    s = fastshap._sample_coalitions(4000, 5, torch.Generator().manual_seed(0))
    assert s.shape == (4000, 5, D) and s.sum(-1).min() >= 1 and s.sum(-1).max() <= D - 1
    sizes = s.sum(-1).flatten().long()
    n = sizes.numel()
    probs = shapley_kernel_size_probs(D)
    for m in range(1, D):
        p = float(probs[m - 1])
        freq = float((sizes == m).float().mean())
        assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / n)
    # Given its size, every feature is equally likely to be in a coalition.
    per_feature = s.flatten(0, 1).mean(0)
    assert (per_feature - per_feature.mean()).abs().max() < 4 * math.sqrt(0.25 / n)


def test_linear_explainer_recovers_exact_shapley_values(linear):
    # The exact solution W (x - b) is linear in x, so a linear explainer can reach it and the
    # loss (zero at the Shapley values for an additive game) drives it there.
    torch.manual_seed(0)
    fastshap = FastSHAP(linear, D, explainer=torch.nn.Linear(D, D * C), baseline=BASELINE)
    fastshap.fit(torch.randn(512, D), epochs=30, batch_size=64, lr=1e-2)
    x = torch.randn(100, D)
    expected = exact_shapley(linear, x, BASELINE)
    torch.testing.assert_close(fastshap.shapley_values(x), expected, atol=1e-4, rtol=1e-3)
    predicted = linear(x).argmax(-1)
    torch.testing.assert_close(
        fastshap.attribute(x), expected[torch.arange(100), :, predicted], atol=1e-4, rtol=1e-3
    )
    assert fastshap.losses_[-1] < 1e-3 * fastshap.losses_[0]


def test_default_mlp_explainer_approaches_exact_shapley_values(linear):
    fastshap = FastSHAP(linear, D, hidden=(64, 64), baseline=BASELINE)
    fastshap.fit(torch.randn(512, D), epochs=30, batch_size=64, lr=3e-3)
    x = torch.randn(200, D)
    expected = exact_shapley(linear, x, BASELINE)
    phi = fastshap.shapley_values(x)
    # Efficiency holds exactly by the normalisation; the attributions are close in mean.
    torch.testing.assert_close(phi.sum(1), linear(x) - linear(BASELINE).expand(200, C))
    assert (phi - expected).abs().mean() < 0.1 * expected.abs().mean()


def test_value_function_replaces_baseline_removal(linear):
    # Removing features through a value function that imputes the baseline is the same game.
    def value(x, s):
        return linear(s * x + (1 - s) * BASELINE)

    fastshap = FastSHAP(linear, D, explainer=torch.nn.Linear(D, D * C), value_function=value)
    torch.manual_seed(0)
    fastshap.fit(torch.randn(512, D), epochs=30, batch_size=64, lr=1e-2)
    x = torch.randn(20, D)
    torch.testing.assert_close(
        fastshap.shapley_values(x), exact_shapley(linear, x, BASELINE), atol=1e-4, rtol=1e-3
    )


def test_bad_input_is_rejected(linear):
    fastshap = FastSHAP(linear, D)
    with pytest.raises(ValueError, match="not fitted"):
        fastshap.attribute(torch.zeros(1, D))
    with pytest.raises(ValueError, match="has 3 features, but the explainer was built for 5"):
        fastshap.fit(torch.zeros(10, 3))
    with pytest.raises(ValueError, match="NaN"):
        fastshap.fit(torch.full((10, D), float("nan")))
    with pytest.raises(ValueError, match="even with paired sampling"):
        fastshap.fit(torch.zeros(10, D), num_samples=3)
    with pytest.raises(ValueError, match="num_features must be an int >= 2"):
        FastSHAP(linear, 1)
    with pytest.raises(ValueError, match=r"baseline must be a float or have shape \(5,\)"):
        FastSHAP(linear, D, baseline=torch.zeros(3))
    with pytest.raises(ValueError, match=r"outputs of shape \(N, C\)"):
        FastSHAP(lambda x: x.sum(1), D).fit(torch.zeros(10, D), epochs=1)
    with pytest.raises(ValueError, match="outputs of shape"):  # not a TypeError from numpy
        FastSHAP(lambda x: None, D).fit(torch.zeros(10, D), epochs=1)


def test_each_fit_starts_afresh_from_its_seed(linear):
    x = torch.randn(64, D, generator=torch.Generator().manual_seed(1))
    first = FastSHAP(linear, D, hidden=(8,)).fit(x, epochs=2, seed=4)
    second = FastSHAP(linear, D, hidden=(8,))
    state = torch.get_rng_state()
    second.fit(x, epochs=2, seed=4)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's generator is kept
    assert second.losses_ == first.losses_
    second.fit(x, epochs=2, seed=4)  # a refit trains a new explainer: the same losses again
    assert second.losses_ == first.losses_
