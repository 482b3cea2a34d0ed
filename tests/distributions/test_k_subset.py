import math

import numpy as np
import pyro
import pytest
import torch
from scipy.stats import chisquare

from lexppl.distributions import (
    KSubset,
    KSubsetStraightThrough,
    RelaxedKSubset,
    hard_topk,
    relaxed_topk,
)

F64 = torch.float64


def _category_index(samples, support):
    """Index in ``support`` (C, D) of each mask in ``samples`` (n, D)."""
    match = (samples.unsqueeze(-2) == support).all(-1)
    assert (match.sum(-1) == 1).all()
    return match.double().argmax(-1)


def _chisquare_pvalue(samples, support, probs):
    n = samples.shape[0]
    counts = np.bincount(_category_index(samples, support).numpy(), minlength=support.shape[0])
    expected = probs.numpy() * n
    expected *= n / expected.sum()
    assert expected.min() >= 5, "too few samples for a chi-square test"
    return chisquare(counts, expected).pvalue


# ----- construction -----


@pytest.mark.parametrize("k", [0, 6, -1])
def test_k_out_of_range(k):
    with pytest.raises(ValueError, match=rf"1 <= k <= D; got k={k}, D=5"):
        KSubset(logits=torch.zeros(5), k=k)


@pytest.mark.parametrize("k", [2.0, 2.5, "2", None, True])
def test_k_not_int(k):
    with pytest.raises(ValueError, match="k must be an int"):
        KSubset(logits=torch.zeros(5), k=k)


def test_param_errors():
    with pytest.raises(ValueError, match="Either `logits` or `probs`"):
        KSubset(k=1)
    with pytest.raises(ValueError, match="Either `logits` or `probs`"):
        KSubset(logits=torch.zeros(3), probs=torch.full((3,), 0.5), k=1)
    with pytest.raises(ValueError, match="at least one dimension"):
        KSubset(logits=torch.tensor(0.0), k=1)


def test_probs_parameterisation():
    probs = torch.tensor([0.2, 0.5, 0.7, 0.9], dtype=F64)
    a, b = KSubset(probs=probs, k=2), KSubset(logits=torch.logit(probs), k=2)
    z = a.enumerate_support()
    torch.testing.assert_close(a.log_prob(z), b.log_prob(z))
    torch.testing.assert_close(a.mean, b.mean)


# ----- shapes and pyro -----


def test_shapes_and_expand():
    torch.manual_seed(0)
    D, k = 7, 3
    d = KSubset(logits=torch.randn(3, D), k=k)
    assert d.batch_shape == (3,) and d.event_shape == (D,)
    z = d.sample((5,))
    assert z.shape == (5, 3, D) and z.dtype == torch.float32
    assert d.log_prob(z).shape == (5, 3)
    e = d.expand((4, 3))
    assert e.batch_shape == (4, 3) and e.k == k
    assert e.sample().shape == (4, 3, D)
    assert e.sample((2,)).shape == (2, 4, 3, D)
    assert e.log_prob(z[0]).shape == (4, 3)
    assert e.mean.shape == (4, 3, D) and e.log_normalizer.shape == (4, 3)
    torch.testing.assert_close(e.log_prob(z[0]), d.log_prob(z[0]).expand(4, 3))
    for other in (d.straight_through(), d.relaxed(), d.relaxed(method="max_of_k")):
        ex = other.expand((4, 3))
        assert ex.k == k and ex.temperature == other.temperature
        assert ex.rsample((2,)).shape == (2, 4, 3, D)
        assert other.rsample().shape == (3, D)


@pytest.mark.parametrize("method", [None, "straight_through"])
def test_pyro_plates(method):
    torch.manual_seed(1)
    dist = KSubset(logits=torch.zeros(3, 12), k=4)
    if method is not None:
        dist = getattr(dist, method)()
    with pyro.plate("data", 3, dim=-1), pyro.plate("masks", 4, dim=-2):
        z = pyro.sample("mask", dist)
    assert z.shape == (4, 3, 12)
    assert (z.sum(-1) == 4).all()
    for n in range(3):  # 495 equally likely masks: 4 identical particles has prob. 495^-3
        assert any(not torch.equal(z[0, n], z[l, n]) for l in range(1, 4))


# ----- exactness against enumeration (float64) -----

CASES = [(1, 1), (3, 1), (3, 2), (5, 1), (5, 2), (5, 5), (6, 3), (8, 1), (8, 4), (8, 7)]


@pytest.mark.parametrize("D,k", CASES)
def test_enumeration_normalised_and_marginals(D, k):
    torch.manual_seed(10 * D + k)
    logits = 2.0 * torch.randn(2, D, dtype=F64)
    d = KSubset(logits=logits, k=k)
    support = d.enumerate_support()
    assert support.shape == (math.comb(D, k), 2, D)
    assert (support.sum(-1) == k).all()
    assert torch.unique(support[:, 0], dim=0).shape[0] == math.comb(D, k)
    lp = d.log_prob(support)
    assert lp.shape == (math.comb(D, k), 2)
    # brute-force normaliser
    brute = torch.logsumexp((support * logits).sum(-1), dim=0)
    torch.testing.assert_close(d.log_normalizer, brute, atol=1e-10, rtol=1e-10)
    p = lp.exp()
    torch.testing.assert_close(p.sum(0), torch.ones(2, dtype=F64), atol=1e-5, rtol=0)
    marginals = (p.unsqueeze(-1) * support).sum(0)
    torch.testing.assert_close(d.mean, marginals, atol=1e-6, rtol=0)
    torch.testing.assert_close(d.mean.sum(-1), torch.full((2,), float(k), dtype=F64))
    torch.testing.assert_close(d.variance, marginals * (1 - marginals), atol=1e-6, rtol=0)
    torch.testing.assert_close(d.entropy(), -(p * lp).sum(0), atol=1e-8, rtol=0)
    # mode = most probable mask = top-k logits
    best = support.gather(0, lp.argmax(0).view(1, 2, 1).expand(1, 2, D)).squeeze(0)
    torch.testing.assert_close(d.mode, best)


def test_mean_is_differentiable():
    torch.manual_seed(11)
    logits = torch.randn(2, 6, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda l: KSubset(logits=l, k=3).mean, (logits,))
    assert torch.autograd.gradcheck(lambda l: KSubset(logits=l, k=2).log_normalizer, (logits,))
    assert torch.autograd.gradgradcheck(lambda l: KSubset(logits=l, k=3).mean, (logits,))
    # d log e_k / d logits = marginals
    d = KSubset(logits=logits, k=3)
    (grad,) = torch.autograd.grad(d.log_normalizer.sum(), logits)
    torch.testing.assert_close(grad, d.mean.detach())


# torch.func's first import warns about torch.jit.script, inside torch
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
@pytest.mark.parametrize("D,k", [(5, 1), (6, 3), (6, 6), (8, 5)])
@pytest.mark.parametrize("scale", [0.1, 2.0, 20.0])
def test_hessian_of_log_prob_is_minus_the_covariance(D, k, scale):
    # An exponential family in the logits: the Hessian of log p(z) is -Cov(Z), the same for
    # every z. Checked against the covariance by enumeration, in both autograd modes (the
    # Laplace approximation of a Bayesian selector needs it); it was NaN at every scale.
    torch.manual_seed(20 * D + k)
    logits = scale * torch.randn(D, dtype=F64)
    d = KSubset(logits=logits, k=k)
    support = d.enumerate_support()
    p = d.log_prob(support).exp()
    mean = p @ support
    covariance = (support * p[:, None]).T @ support - torch.outer(mean, mean)
    z = support[0]
    hessian = torch.autograd.functional.hessian(
        lambda a: KSubset(logits=a, k=k).log_prob(z), logits
    )
    torch.testing.assert_close(hessian, -covariance, atol=1e-10, rtol=1e-8)
    forward_mode = torch.func.hessian(lambda a: KSubset(logits=a, k=k).log_prob(z))(logits)
    torch.testing.assert_close(forward_mode, -covariance, atol=1e-10, rtol=1e-8)


def test_log_prob_wrong_sum():
    logits = torch.randn(5)
    bad = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0])
    d = KSubset(logits=logits, k=2, validate_args=False)
    assert d.log_prob(bad) == -math.inf
    with pytest.raises(ValueError):
        KSubset(logits=logits, k=2, validate_args=True).log_prob(bad)


@pytest.mark.parametrize("D,k", [(6, 3), (5, 1), (7, 5), (4, 4)])
def test_sample_chisquare(D, k):
    torch.manual_seed(100 + 10 * D + k)
    n = 20000
    logits = torch.randn(2, D, dtype=F64)
    d = KSubset(logits=logits, k=k)
    samples = d.sample((n,))
    assert (samples.sum(-1) == k).all()
    support = d.enumerate_support(expand=False).squeeze(1)
    probs = d.log_prob(d.enumerate_support()).exp()
    for b in range(2):  # each batch element follows its own law
        if support.shape[0] == 1:
            assert (samples[:, b] == support[0]).all()
            continue
        assert _chisquare_pvalue(samples[:, b], support, probs[:, b]) > 1e-3


def test_enumerate_support_refuses_large():
    d = KSubset(logits=torch.zeros(30), k=15)
    with pytest.raises(ValueError, match=r"D=30, k=15"):
        d.enumerate_support()


# ----- large D, extreme logits -----


@pytest.mark.parametrize("scale", [50.0, 1e3])
def test_large_extreme_logits_finite(scale):
    torch.manual_seed(12)
    D, k = 1568, 157
    sign = torch.randint(0, 2, (2, D)) * 2.0 - 1.0
    logits = (scale * sign + torch.randn(2, D)).requires_grad_()
    d = KSubset(logits=logits, k=k)
    z = d.sample((3,))
    assert z.shape == (3, 2, D) and (z.sum(-1) == k).all()
    lp = d.log_prob(z)
    assert torch.isfinite(lp).all() and (lp <= 1e-3).all()
    assert torch.isfinite(d.log_normalizer).all()
    mean = d.mean
    assert torch.isfinite(mean).all()
    torch.testing.assert_close(mean.sum(-1).detach(), torch.full((2,), float(k)), rtol=1e-5, atol=0)
    assert torch.isfinite(d.entropy()).all()
    (grad,) = torch.autograd.grad(lp.sum() + mean.square().sum(), logits)
    assert torch.isfinite(grad).all()
    assert torch.isfinite(d.log_prob(d.mode)).all()
    # straight-through at this size
    zst = d.straight_through().rsample()
    assert (zst.sum(-1) == k).all()
    (grad,) = torch.autograd.grad((zst * torch.randn(D)).sum(), logits)
    assert torch.isfinite(grad).all() and (grad != 0).any()


# ----- pathwise replacements -----


def test_straight_through_exact_k_and_gradient():
    torch.manual_seed(13)
    D, k = 10, 3
    logits = torch.randn(4, D, requires_grad=True)
    st = KSubset(logits=logits, k=k).straight_through(temperature=0.5)
    assert isinstance(st, KSubsetStraightThrough) and st.has_rsample
    z = st.rsample((6,))
    assert z.shape == (6, 4, D)
    assert ((z == 0) | (z == 1)).all() and (z.sum(-1) == k).all()
    (z * torch.randn(D)).sum().backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad != 0).all()
    exact = KSubset(logits=logits.detach(), k=k)
    torch.testing.assert_close(st.log_prob(z.detach()), exact.log_prob(z.detach()))
    assert (st.sample().sum(-1) == k).all()


def test_straight_through_k1_is_exact():
    # Gumbel top-1 is the softmax categorical, which is KSubset with k = 1.
    torch.manual_seed(14)
    D, n = 5, 20000
    logits = torch.randn(D, dtype=F64)
    d = KSubset(logits=logits, k=1)
    samples = d.straight_through().sample((n,))
    support = d.enumerate_support()
    assert _chisquare_pvalue(samples, support, d.log_prob(support).exp()) > 1e-3


def test_relaxed_topk_matches_hard_topk_at_low_temperature():
    scores = torch.tensor([[0.3, 2.0, -1.0, 1.2, 0.9]])
    soft = relaxed_topk(scores, 2, temperature=1e-3)
    torch.testing.assert_close(soft, hard_topk(scores, 2))


@pytest.mark.parametrize("method", ["topk", "max_of_k"])
def test_relaxed(method):
    torch.manual_seed(15)
    D, k = 10, 3
    logits = torch.randn(4, D, requires_grad=True)
    rel = KSubset(logits=logits, k=k).relaxed(temperature=0.5, method=method)
    assert isinstance(rel, RelaxedKSubset) and rel.has_rsample
    u = rel.rsample((6,))
    assert u.shape == (6, 4, D)
    assert (u >= 0).all()
    if method == "topk":  # entries may exceed 1 slightly (Xie & Ermon, unclipped)
        torch.testing.assert_close(u.sum(-1), torch.full((6, 4), float(k)))
    else:
        assert (u <= 1).all()
    (u * torch.randn(D)).sum().backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad != 0).any()
    with pytest.raises(NotImplementedError, match="no tractable density"):
        rel.log_prob(u)


def test_relaxed_unknown_method():
    with pytest.raises(ValueError, match="'topk', 'max_of_k'"):
        KSubset(logits=torch.zeros(5), k=2).relaxed(method="sparsemax")


@pytest.mark.parametrize("temperature", [0.0, -0.5, float("nan")])
def test_bad_temperature(temperature):
    d = KSubset(logits=torch.zeros(5), k=2)
    with pytest.raises(ValueError, match="temperature"):
        d.straight_through(temperature)
    with pytest.raises(ValueError, match="temperature"):
        d.relaxed(temperature)


@pytest.mark.parametrize(
    "logits",
    [
        [-math.inf, 1.0, 0.0, 2.0],
        [1.0, 0.0, 2.0, 0.5, -math.inf, -math.inf],
        [-math.inf, -math.inf, 1.0, 0.0, -3.0],
        [-2000.0, -math.inf, 0.5, -2500.0, 0.0],  # finite logits far below the others
    ],
    ids=["one", "two-last", "two-first", "far"],
)
@pytest.mark.parametrize("k", [1, 2])
def test_minus_infinite_logits_are_never_selected_and_scores_stay_finite(logits, k):
    # A feature at logit -inf cannot be selected: masks with it score -inf, the others keep
    # finite log-probabilities that sum to 1 (k = 1 is the categorical), the marginals and the
    # entropy are those of the enumeration, and every gradient is finite.
    logits = torch.tensor(logits, dtype=F64, requires_grad=True)
    d = KSubset(logits=logits, k=k)
    support = d.enumerate_support()
    log_prob = d.log_prob(support)
    with_it = (support[:, logits.isneginf()] == 1).any(-1)
    assert (log_prob[with_it] == -math.inf).all() and torch.isfinite(log_prob[~with_it]).all()
    torch.testing.assert_close(log_prob.exp().sum(), torch.tensor(1.0, dtype=F64))
    p = log_prob[~with_it].exp()
    torch.testing.assert_close(d.entropy(), -(p * log_prob[~with_it]).sum())
    torch.testing.assert_close(d.mean, (p[:, None] * support[~with_it]).sum(0))
    if k == 1:
        categorical = torch.distributions.Categorical(logits=logits)
        torch.testing.assert_close(log_prob, categorical.log_prob(support.argmax(-1)))
    loss = d.entropy() + log_prob[~with_it].sum() + d.mean.sum() + d.log_normalizer
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.isfinite(grad).all() and (grad[logits.isneginf()] == 0).all()
    torch.manual_seed(0)
    assert (d.sample((2000,))[:, logits.isneginf()] == 0).all()
    finite = ~logits.isneginf()
    if (logits[finite].max() - logits[finite].min()) < 700:  # the tables' second-order range
        # Second derivatives too (REBAR uses them): the Hessian of log Z over the finite
        # logits is that of a KSubset without the -inf features.
        def log_z(free):
            return KSubset(
                logits=torch.where(finite, logits.new_zeros(()), logits).masked_scatter(
                    finite, free
                ),
                k=k,
            ).log_normalizer

        def log_z_without(free):
            return KSubset(logits=free, k=k).log_normalizer

        free = logits.detach()[finite]
        hessian = torch.autograd.functional.hessian(log_z, free)
        torch.testing.assert_close(hessian, torch.autograd.functional.hessian(log_z_without, free))


@pytest.mark.parametrize("logits", [[1.0, -math.inf, -math.inf], [-math.inf] * 3])
def test_fewer_than_k_selectable_features_are_refused(logits):
    with pytest.raises(ValueError, match="at least k = 2 selectable features"):
        KSubset(logits=torch.tensor(logits), k=2, validate_args=True)
    with pytest.raises(ValueError, match="at least k = 2 selectable features"):
        KSubset(probs=torch.sigmoid(torch.tensor(logits)), k=2, validate_args=True)
