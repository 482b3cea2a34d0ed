import math

import pyro
import pytest
import torch
from torch.distributions import Bernoulli, RelaxedBernoulli

from lexppl.distributions import (
    MAX_ENUMERATE_FEATURES,
    IndependentBernoulli,
    IndependentBernoulliStraightThrough,
    IndependentRelaxedBernoulli,
)

D = 5


def _logits(*batch, dtype=torch.float32):
    return torch.tensor([-2.0, -0.5, 0.0, 0.7, 1.5], dtype=dtype).expand(*batch, D).clone()


def test_param_errors():
    with pytest.raises(ValueError, match="Either `logits` or `probs`"):
        IndependentBernoulli()
    with pytest.raises(ValueError, match="Either `logits` or `probs`"):
        IndependentBernoulli(logits=torch.zeros(3), probs=torch.full((3,), 0.5))
    with pytest.raises(ValueError, match="at least one dimension"):
        IndependentBernoulli(logits=torch.tensor(0.0))


def test_probs_parameterisation():
    probs = torch.tensor([[0.1, 0.5, 0.9]])
    d = IndependentBernoulli(probs=probs)
    torch.testing.assert_close(d.logits, torch.logit(probs))
    z = torch.tensor([1.0, 0.0, 1.0])
    expected = math.log(0.1) + math.log(0.5) + math.log(0.9)
    torch.testing.assert_close(d.log_prob(z), torch.tensor([expected]))


def test_shapes_and_expand():
    torch.manual_seed(0)
    d = IndependentBernoulli(logits=_logits(3))
    assert d.batch_shape == (3,) and d.event_shape == (D,)
    z = d.sample((5,))
    assert z.shape == (5, 3, D) and z.dtype == torch.float32
    assert d.log_prob(z).shape == (5, 3)
    e = d.expand((4, 3))
    assert e.batch_shape == (4, 3) and e.event_shape == (D,)
    assert e.sample().shape == (4, 3, D)
    assert e.sample((2,)).shape == (2, 4, 3, D)
    assert e.log_prob(z[0]).shape == (4, 3)
    for st in (d.straight_through(), d.relaxed()):
        assert st.expand((4, 3)).rsample((2,)).shape == (2, 4, 3, D)
        assert st.rsample().shape == (3, D)


@pytest.mark.parametrize("method", [None, "straight_through", "relaxed"])
def test_pyro_plates(method):
    torch.manual_seed(1)
    dist = IndependentBernoulli(logits=torch.zeros(3, 16))
    if method is not None:
        dist = getattr(dist, method)()
    with pyro.plate("data", 3, dim=-1), pyro.plate("masks", 4, dim=-2):
        z = pyro.sample("mask", dist)
    assert z.shape == (4, 3, 16)
    for n in range(3):  # the 4 particles are not all identical (prob. 2^-48 otherwise)
        assert any(not torch.equal(z[0, n], z[l, n]) for l in range(1, 4))


def test_log_prob_matches_torch_bernoulli():
    torch.manual_seed(2)
    logits = torch.randn(3, D)
    z = torch.bernoulli(torch.full((7, 3, D), 0.5))
    expected = Bernoulli(logits=logits).log_prob(z).sum(-1)
    torch.testing.assert_close(IndependentBernoulli(logits=logits).log_prob(z), expected)


def test_enumerate_support_normalised():
    logits = torch.randn(2, 4, dtype=torch.float64)
    d = IndependentBernoulli(logits=logits)
    support = d.enumerate_support()
    assert support.shape == (16, 2, 4)
    assert d.enumerate_support(expand=False).shape == (16, 1, 4)
    assert torch.unique(support[:, 0], dim=0).shape[0] == 16
    total = d.log_prob(support).exp().sum(0)
    torch.testing.assert_close(total, torch.ones(2, dtype=torch.float64), atol=1e-12, rtol=0)
    # entropy and mean agree with enumeration
    p = d.log_prob(support).exp()
    torch.testing.assert_close(d.entropy(), -(p * p.log()).sum(0))
    torch.testing.assert_close(d.mean, (p.unsqueeze(-1) * support).sum(0))


def test_enumerate_support_refuses_large_D():
    d = IndependentBernoulli(logits=torch.zeros(MAX_ENUMERATE_FEATURES + 1))
    with pytest.raises(
        ValueError, match=rf"D={MAX_ENUMERATE_FEATURES + 1}.*{MAX_ENUMERATE_FEATURES}"
    ):
        d.enumerate_support()


def test_mean_variance_mode():
    logits = _logits(3)
    d = IndependentBernoulli(logits=logits)
    p = torch.sigmoid(logits)
    torch.testing.assert_close(d.mean, p)
    torch.testing.assert_close(d.variance, p * (1 - p))
    torch.testing.assert_close(d.mode, (p > 0.5).float())


def test_sample_mean_within_4_se():
    torch.manual_seed(3)
    n = 20000
    d = IndependentBernoulli(logits=_logits(3))
    z = d.sample((n,))
    assert ((z == 0) | (z == 1)).all()
    p = d.probs
    se = (p * (1 - p) / n).sqrt()
    assert ((z.mean(0) - p).abs() < 4 * se).all()


def test_validation_rejects_non_binary():
    d = IndependentBernoulli(logits=torch.zeros(3), validate_args=True)
    with pytest.raises(ValueError):
        d.log_prob(torch.tensor([0.5, 1.0, 0.0]))


def test_straight_through_forward_law_and_gradient():
    torch.manual_seed(4)
    n = 20000
    logits = _logits(3).requires_grad_()
    st = IndependentBernoulli(logits=logits).straight_through(temperature=0.5)
    assert isinstance(st, IndependentBernoulliStraightThrough) and st.has_rsample
    z = st.rsample((n,))
    assert ((z == 0) | (z == 1)).all()
    p = torch.sigmoid(logits.detach())
    se = (p * (1 - p) / n).sqrt()
    assert ((z.detach().mean(0) - p).abs() < 4 * se).all()
    weights = torch.randn(D)
    (z * weights).sum().backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad != 0).all()
    # log_prob is the exact Bernoulli log-probability of the hard value
    base = IndependentBernoulli(logits=logits.detach())
    torch.testing.assert_close(st.log_prob(z.detach()), base.log_prob(z.detach()))


def test_straight_through_threshold_law():
    torch.manual_seed(5)
    n = 20000
    logits, tau, t = _logits(), 0.5, 0.8
    z = IndependentBernoulli(logits=logits).straight_through(tau, threshold=t).sample((n,))
    p = torch.sigmoid(logits - tau * math.log(t / (1 - t)))
    se = (p * (1 - p) / n).sqrt()
    assert ((z.mean(0) - p).abs() < 4 * se).all()


@pytest.mark.parametrize(
    "kwargs", [{"temperature": 0.0}, {"temperature": -1.0}, {"threshold": 0.0}, {"threshold": 1.0}]
)
def test_straight_through_bad_args(kwargs):
    with pytest.raises(ValueError):
        IndependentBernoulli(logits=torch.zeros(3)).straight_through(**kwargs)


def test_relaxed_sample_and_density():
    torch.manual_seed(6)
    logits = (_logits(3) * 3).requires_grad_()
    rel = IndependentBernoulli(logits=logits).relaxed(temperature=0.7)
    assert isinstance(rel, IndependentRelaxedBernoulli) and rel.has_rsample
    u = rel.rsample((100,))
    assert u.shape == (100, 3, D)
    assert ((u > 0) & (u < 1)).all()
    expected = RelaxedBernoulli(torch.tensor(0.7), logits=logits).log_prob(u).sum(-1)
    torch.testing.assert_close(rel.log_prob(u), expected, rtol=1e-4, atol=1e-4)
    u.sum().backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad != 0).all()


def test_straight_through_extreme_logits():
    torch.manual_seed(7)
    logits = torch.tensor([[-1e3, -50.0, 0.0, 50.0, 1e3]]).requires_grad_()
    z = IndependentBernoulli(logits=logits).straight_through().rsample((10,))
    torch.testing.assert_close(
        z[:, 0, [0, 1, 3, 4]].detach(), torch.tensor([0.0, 0.0, 1.0, 1.0]).expand(10, 4)
    )
    z.sum().backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("dtype", [torch.bool, torch.int64])
def test_log_prob_takes_bool_and_integer_masks(dtype):
    d = IndependentBernoulli(logits=_logits(3))
    mask = torch.tensor([1, 0, 1, 1, 0]).expand(3, D)
    torch.testing.assert_close(d.log_prob(mask.to(dtype)), d.log_prob(mask.float()))


def test_relaxed_log_prob_is_finite_at_the_ends_of_the_support():
    # The support is the closed [0, 1]; torch's RelaxedBernoulli also gives finite values there.
    d = IndependentRelaxedBernoulli(logits=_logits(), temperature=0.5, validate_args=True)
    ends = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.5])
    assert torch.isfinite(d.log_prob(ends)).all()
    ours = d.log_prob(torch.tensor([1e-3, 0.5, 0.2, 0.9, 0.999]))
    theirs = RelaxedBernoulli(torch.tensor(0.5), logits=_logits())
    torch.testing.assert_close(
        ours, theirs.log_prob(torch.tensor([1e-3, 0.5, 0.2, 0.9, 0.999])).sum(-1)
    )
    # Draws below eps (17 % at temperature 0.1) keep their density: only the ends are moved.
    small = torch.full((D,), 1e-10)
    d_small = IndependentRelaxedBernoulli(logits=_logits(dtype=torch.float64), temperature=0.1)
    torch.testing.assert_close(
        IndependentRelaxedBernoulli(logits=_logits(), temperature=0.1).log_prob(small),
        d_small.log_prob(small.double()).float(),
    )
