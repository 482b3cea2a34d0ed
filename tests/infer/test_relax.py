"""RELAX: REBAR with a learned control variate; unbiased, and its control learns."""

import functools
import math

import pyro
import pytest
import torch
from exact_objectives import exact_selector_gradient, logit_gradients, tiny_lex
from pyro.infer import SVI

from lexppl.distributions import KSubset
from lexppl.infer import MaskControl, RelaxBound

D = 4
R = 20000  # replicas of one datum: R independent gradient estimates from one backward


def variance_sum(lex, bound, x, y, replicas):
    grads = logit_gradients(lex, bound, x.repeat(replicas, 1), y.repeat(replicas))
    return grads.reshape(replicas, *x.shape).var(0).sum().item()


def random_control(seed):
    # A control whose residual r_phi is far from zero, so the test exercises it.
    torch.manual_seed(seed + 100)
    control = MaskControl(D, hidden=8)
    torch.nn.init.normal_(control.net[-1].weight, std=1.0)
    return control


@pytest.mark.parametrize("seed", [3, 11])
@pytest.mark.parametrize("num_masks", [1, 2])
@pytest.mark.parametrize("k", [None, 2])  # Bernoulli masks, 2-subset masks
def test_relax_gradient_is_unbiased_for_the_selector(k, num_masks, seed):
    lex = tiny_lex(seed=seed) if k is None else tiny_lex(functools.partial(KSubset, k=k), seed)
    x, y = torch.randn(1, D), torch.tensor([seed % 3])
    # for one datum, the gradient w.r.t. the last layer's bias is that w.r.t. the logits
    exact = exact_selector_gradient(lex, x, y, lex.selector[-1].bias, num_masks)
    bound = RelaxBound(num_masks, control=random_control(seed), temperature=0.5, eta=0.9)
    grads = logit_gradients(lex, bound, x.expand(R, D), y.expand(R))
    mean, se = grads.mean(0), grads.std(0) / math.sqrt(R)
    assert ((mean - exact).abs() <= 4 * se).all(), (mean, exact, se)


def test_learned_control_moves_and_reduces_the_variance():
    # From tau = 2, eta = 0.5 and r_phi = 0, 40 Adam steps on the variance take the variance
    # sum from about 17 to about 3.7 (L = 2); every part of the control changes.
    lex = tiny_lex(seed=3)
    torch.manual_seed(3)
    x, y = torch.randn(16, D), torch.randint(3, (16,))
    bound = RelaxBound(2, num_features=D, temperature=2.0, eta=0.5)
    params = list(bound.parameters())
    assert len(params) == 2 + len(list(bound.control.parameters()))
    initial = [p.detach().clone() for p in params]
    before = variance_sum(lex, bound, x, y, 1000)
    optimizer = torch.optim.Adam(params, lr=0.05)
    for _ in range(40):
        optimizer.zero_grad()
        bound.differentiable_loss(lex.model, lex.guide, x.repeat(32, 1), y.repeat(32)).backward()
        optimizer.step()
    after = variance_sum(lex, bound, x, y, 1000)
    for p, q in zip(params, initial, strict=True):
        assert not torch.equal(p.detach(), q)
    assert after < before, (before, after)


def test_default_control_is_built_when_the_features_are_known():
    lex = tiny_lex(seed=1)
    x, y = torch.randn(4, D), torch.randint(3, (4,))
    bound = RelaxBound()
    with pytest.raises(RuntimeError, match="num_features"):
        bound.parameters()
    bound.loss(lex.model, lex.guide, x, y)
    assert isinstance(bound.control, MaskControl) and bound.control.num_features == D
    assert len(list(bound.parameters())) > 2
    restored = RelaxBound()
    restored.load_state_dict(bound.state_dict())
    assert restored.control.num_features == D


def test_other_mask_families_are_refused():
    lex = tiny_lex(lambda logits: pyro.distributions.Bernoulli(logits=logits).to_event(1))
    x, y = torch.randn(4, D), torch.randint(3, (4,))
    with pytest.raises(ValueError, match="independent Bernoulli or k-subset"):
        RelaxBound(num_features=D).differentiable_loss(lex.model, lex.guide, x, y)


def test_control_with_a_wrong_output_shape_is_refused():
    class PerMask(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(D))

        def forward(self, masks, logits):
            return masks @ self.w  # (L, N): not one value per datum

    lex = tiny_lex(seed=1)
    x, y = torch.randn(4, D), torch.randint(3, (4,))
    with pytest.raises(ValueError, match="one value per datum"):
        RelaxBound(2, control=PerMask()).differentiable_loss(lex.model, lex.guide, x, y)


def test_works_with_pyro_svi():
    lex = tiny_lex(seed=5)
    x, y = torch.randn(16, D), torch.randint(3, (16,))
    bound = RelaxBound(2, num_features=D)
    svi = SVI(lex.model, lex.guide, pyro.optim.Adam({"lr": 1e-2}), bound)
    selector = lex.selector[0].weight.detach().clone()
    control = bound.control.net[-1].weight.detach().clone()
    losses = [svi.step(x, y) for _ in range(3)]
    assert all(math.isfinite(v) for v in losses)
    assert not torch.equal(selector, lex.selector[0].weight)
    assert not torch.equal(control, bound.control.net[-1].weight)
