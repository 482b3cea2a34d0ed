"""REINFORCE: unbiased selector gradients (moving-average and learned baselines)."""

import functools
import math

import pyro
import pytest
import torch
from exact_objectives import exact_selector_gradient, logit_gradient_estimates, tiny_lex
from pyro.infer import SVI

from lexppl.distributions import IndependentBernoulli, KSubset
from lexppl.infer import ReinforceBound
from lexppl.nets import MLP

D = 4
R = 20000  # replicas of one datum: R independent gradient estimates from one backward

FAMILIES = [IndependentBernoulli, functools.partial(KSubset, k=2)]
FAMILY_IDS = ["bernoulli", "subset"]


def exact_logit_gradient(lex, x, y, num_masks):
    # The logits are selector[-1]'s output: d/d(last bias) = d/d(logits) for one datum.
    return exact_selector_gradient(lex, x, y, lex.selector[-1].bias, num_masks=num_masks)


def assert_unbiased(grads, exact):
    mean, se = grads.mean(0), grads.std(0) / math.sqrt(grads.shape[0])
    assert (se > 0).all()
    assert ((mean - exact).abs() <= 4 * se).all(), (mean, exact, se)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("num_masks", [1, 2])
@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
def test_moving_average_reinforce_is_unbiased(family, num_masks, seed):
    lex = tiny_lex(family, seed)
    x, y = torch.randn(1, D), torch.tensor([seed % 3])
    exact = exact_logit_gradient(lex, x, y, num_masks)
    bound = ReinforceBound(num_masks)
    # Warm-up: the moving average is set from one batch, then stays fixed (mask-independent)
    # for the batch whose gradients are measured.
    bound.differentiable_loss(lex.model, lex.guide, x.expand(64, D), y.expand(64))
    assert bound.baseline is not None
    grads = logit_gradient_estimates(lex, bound, x, y)
    assert_unbiased(grads, exact)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
def test_learned_baseline_reinforce_is_unbiased(family, seed):
    lex = tiny_lex(family, seed)
    x, y = torch.randn(1, D), torch.tensor([seed % 3])
    exact = exact_logit_gradient(lex, x, y, 1)
    bound = ReinforceBound(1, baseline_net=MLP(D, 1, (8,)))
    grads = logit_gradient_estimates(lex, bound, x, y)
    assert_unbiased(grads, exact)
    assert bound.baseline is None  # the moving average is not used


def test_learned_baseline_regresses_the_learning_signal_and_lowers_variance():
    lex = tiny_lex(seed=3)
    x, y = torch.randn(1, D), torch.tensor([1])
    net = MLP(D, 1, (8,))
    with torch.no_grad():
        net[-1].bias.fill_(5.0)  # a poor start: far from the bound's value (< 0)
    bound = ReinforceBound(1, baseline_net=net)
    before = logit_gradient_estimates(lex, bound, x, y, 4000).var(0).sum().item()
    optimizer = torch.optim.Adam(bound.baseline_parameters(), lr=0.05)
    for _ in range(150):
        optimizer.zero_grad()
        bound.differentiable_loss(lex.model, lex.guide, x.expand(256, D), y.expand(256)).backward()
        optimizer.step()
    with torch.no_grad():
        f = bound.bound_terms(lex.model, lex.guide, x.expand(4000, D), y.expand(4000)).per_datum
        assert abs(net(x).item() - f.mean().item()) < 0.1 * f.std().item() + 0.05
    lex.zero_grad()
    after = logit_gradient_estimates(lex, bound, x, y, 4000).var(0).sum().item()
    assert after < before, (before, after)


def test_learned_baseline_keeps_the_value_of_the_bound_and_its_state():
    lex = tiny_lex(seed=4)
    x, y = torch.randn(8, D), torch.randint(3, (8,))
    bound = ReinforceBound(3, baseline_net=MLP(D, 1, (8,)))
    pyro.set_rng_seed(0)
    value = bound.differentiable_loss(lex.model, lex.guide, x, y).item()
    pyro.set_rng_seed(0)
    assert math.isclose(value, ReinforceBound(3).loss(lex.model, lex.guide, x, y), rel_tol=1e-6)
    state = bound.state_dict()
    other = ReinforceBound(3, baseline_net=MLP(D, 1, (8,)))
    other.load_state_dict(state)
    for a, b in zip(bound.baseline_net.parameters(), other.baseline_net.parameters()):
        assert torch.equal(a, b)
    assert ReinforceBound(1).state_dict() == {"baseline": None}
    assert list(ReinforceBound(1).baseline_parameters()) == []


def test_learned_baseline_is_trained_by_pyro_svi():
    lex = tiny_lex(seed=5)
    x, y = torch.randn(16, D), torch.randint(3, (16,))
    net = MLP(D, 1, (8,))
    bound = ReinforceBound(2, baseline_net=net)
    svi = SVI(lex.model, lex.guide, pyro.optim.Adam({"lr": 1e-2}), bound)
    before = net[-1].weight.detach().clone()
    selector_before = lex.selector[-1].weight.detach().clone()
    assert all(math.isfinite(svi.step(x, y)) for _ in range(2))
    assert not torch.equal(before, net[-1].weight)
    assert not torch.equal(selector_before, lex.selector[-1].weight)


def test_learned_baseline_checks_its_inputs():
    lex = tiny_lex(seed=6)
    x, y = torch.randn(5, D), torch.randint(3, (5,))
    with pytest.raises(ValueError, match="one value per datum"):
        ReinforceBound(1, baseline_net=MLP(D, 2)).differentiable_loss(lex.model, lex.guide, x, y)
    with pytest.raises(TypeError, match="baseline_net"):
        ReinforceBound(1, baseline_net=lambda x: x.sum(-1))
