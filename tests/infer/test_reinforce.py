"""REINFORCE: unbiased selector gradients (moving-average, learned and classifier baselines)."""

import functools
import math

import pyro
import pytest
import torch
from exact_objectives import (
    exact_selector_gradient,
    logit_gradient_estimates,
    logit_gradients,
    tiny_lex,
)
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
    assert_unbiased_after_warm_up(lex, ReinforceBound(num_masks), x, y, num_masks)


@pytest.mark.parametrize("batch_size", [1, 2])
@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
def test_moving_average_reinforce_is_unbiased_on_its_first_batch(family, batch_size):
    # With no past batch, a baseline from the batch's own mean would see each datum's masks:
    # the expected gradient would be (1 - 1/N) times the true one (0 for N = 1).
    lex = tiny_lex(family, seed=0)
    x, y = torch.randn(1, D), torch.tensor([0])
    exact = exact_logit_gradient(lex, x, y, num_masks=1)
    first_calls = [  # a fresh bound each time: 400 first batches, one estimate from each
        logit_gradients(lex, ReinforceBound(), x.expand(batch_size, D), y.expand(batch_size)).mean(
            0
        )
        for _ in range(400)
    ]
    assert_unbiased(torch.stack(first_calls), exact)


def assert_unbiased_after_warm_up(lex, bound, x, y, num_masks):
    exact = exact_logit_gradient(lex, x, y, num_masks)
    # Warm-up: the moving average is set from one batch, then stays fixed (mask-independent)
    # for the batch whose gradients are measured.
    bound.differentiable_loss(lex.model, lex.guide, x.expand(64, D), y.expand(64))
    assert bound.baseline is not None
    assert_unbiased(logit_gradient_estimates(lex, bound, x, y), exact)


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


# ---------------------------------------------------------------- full-input classifier baseline
def classifier_bound(num_masks=1, hidden=(8,)):
    from lexppl.models import CategoricalLikelihood

    net = MLP(D, 3, hidden)
    return ReinforceBound(num_masks, baseline_net=net, baseline_likelihood=CategoricalLikelihood())


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
def test_classifier_baseline_reinforce_is_unbiased(family, seed):
    lex = tiny_lex(family, seed)
    x, y = torch.randn(1, D), torch.tensor([seed % 3])
    # The moving average here is the residual's, f - log q(y|x).
    assert_unbiased_after_warm_up(lex, classifier_bound(), x, y, 1)


def test_classifier_baseline_is_trained_by_maximum_likelihood_on_full_inputs():
    lex = tiny_lex(seed=7)
    x, y = torch.randn(32, D), torch.randint(3, (32,))
    bound = classifier_bound(num_masks=2)
    bound.differentiable_loss(lex.model, lex.guide, x, y).backward()
    got = [p.grad.clone() for p in bound.baseline_parameters()]
    expected_net = MLP(D, 3, (8,))
    expected_net.load_state_dict(bound.baseline_net.state_dict())
    # The loss is the negative surrogate: its gradient is -∇ Σ_n log q_ψ(y_n | x_n).
    nll = -torch.distributions.Categorical(logits=expected_net(x)).log_prob(y).sum()
    nll.backward()
    for a, b in zip(got, expected_net.parameters(), strict=True):
        torch.testing.assert_close(a, b.grad)


def test_classifier_baseline_cancels_label_noise():
    # One input, labels drawn at random per replica, and a predictor whose class probabilities
    # depend mostly on its bias (noisy labels, as on S1-S3): the learning signal's spread comes
    # from y. A baseline that sees y (here the predictor itself on the full input) removes most
    # of it; a moving average cannot.
    lex = tiny_lex(seed=8)
    with torch.no_grad():
        lex.predictor[0].weight.mul_(0.2)
        lex.predictor[-1].bias.copy_(torch.tensor([2.0, 0.0, -2.0]))
    x = torch.randn(1, D)
    y = torch.randint(3, (R,), generator=torch.Generator().manual_seed(0))
    variances = {}
    for name in ("moving average", "classifier"):
        if name == "classifier":
            bound = classifier_bound(hidden=(16,))
            bound.baseline_net.load_state_dict(lex.predictor.state_dict())
        else:
            bound = ReinforceBound(1)
        bound.differentiable_loss(lex.model, lex.guide, x.expand(R, D), y)  # warm-up
        lex.zero_grad()
        grads = logit_gradients(lex, bound, x.expand(R, D), y)
        variances[name] = grads.var(0).sum().item()
    assert variances["classifier"] < 0.5 * variances["moving average"], variances


def test_classifier_baseline_checks_its_inputs():
    from lexppl.models import CategoricalLikelihood

    lex = tiny_lex(seed=9)
    x, y = torch.randn(5, D), torch.randint(3, (5,))
    with pytest.raises(ValueError, match="needs a baseline_net"):
        ReinforceBound(1, baseline_likelihood=CategoricalLikelihood())
    with pytest.raises(TypeError, match="baseline_likelihood must be callable"):
        ReinforceBound(1, baseline_net=MLP(D, 3), baseline_likelihood="categorical")

    def normal(out):
        return torch.distributions.Normal(out, 1.0)

    bound = ReinforceBound(1, baseline_net=MLP(D, 1), baseline_likelihood=normal)
    with pytest.raises(ValueError, match="one value per datum"):
        bound.differentiable_loss(lex.model, lex.guide, x, y.float())
