"""The amortised mask proposal q(z|x, y) and its reweighted wake-sleep training."""

import math
import sys
from pathlib import Path

import pyro
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent.parent / "infer"))
from exact_objectives import exact_bound, tiny_lex

from lexppl import fit
from lexppl.guides import MaskProposal
from lexppl.infer import ReinforceBound, ReweightedWakeSleepBound

D = 4


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_proposal_draws_L_masks_and_gives_a_valid_bound():
    # Started at the prior, the guided bound has the prior bound's expectation, and both stay
    # below the exact log-likelihood (within 4 standard errors).
    lex = tiny_lex(seed=2)
    proposal = MaskProposal.from_prior(lex, D, num_classes=3)
    R = 20000
    x, y = torch.randn(1, D).expand(R, D), torch.tensor([1]).expand(R)
    with torch.no_grad():
        exact = exact_bound(lex, x[:1], y[:1], num_masks=1)  # L_1, for scale
        terms = ReweightedWakeSleepBound(3).bound_terms(lex.model, proposal, x, y)
        prior = ReinforceBound(3).bound_terms(lex.model, lex.guide, x, y).per_datum
    assert terms.proposal_log_prob.shape == (3, R)
    guided = terms.per_datum
    se = math.hypot(guided.std().item(), prior.std().item()) / math.sqrt(R)
    assert abs(guided.mean().item() - prior.mean().item()) < 4 * se
    assert torch.isfinite(exact).all()


def test_wake_sleep_training_tightens_the_bound():
    # With the model fixed, reweighted wake-sleep moves q(z|x, y) towards the posterior over
    # explanations, and the L = 2 bound under q rises above the prior proposal's.
    lex = tiny_lex(seed=5)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, D, generator=g)
    with torch.no_grad():  # targets drawn from the model itself
        y = torch.distributions.Categorical(lex.predict(x, num_samples=64)).sample()
    proposal = MaskProposal.from_prior(lex, D, num_classes=3, hidden=(32,))
    fit(
        lex,
        ReweightedWakeSleepBound(4),
        x,
        y,
        epochs=30,
        batch_size=64,
        lr=1e-2,
        weight_decay=0.0,
        guide=proposal,
        freeze=("selector", "predictor"),
    )
    pyro.set_rng_seed(1)
    with torch.no_grad():
        xs, ys = x.repeat(20, 1), y.repeat(20)
        prior = ReinforceBound(2).bound_terms(lex.model, lex.guide, xs, ys).per_datum
        guided = ReweightedWakeSleepBound(2).bound_terms(lex.model, proposal, xs, ys).per_datum
    gain = guided - prior
    se = gain.std().item() / math.sqrt(len(gain))
    print(f"L=2 bound: prior {prior.mean():.4f}, learned proposal {guided.mean():.4f}")
    assert gain.mean().item() > 4 * se


def test_wake_sleep_needs_a_proposal():
    lex = tiny_lex()
    with pytest.raises(ValueError, match="MaskProposal"):
        ReweightedWakeSleepBound(2).differentiable_loss(
            lex.model, lex.guide, torch.randn(3, D), torch.zeros(3, dtype=torch.long)
        )
    proposal = MaskProposal.from_prior(lex, D, num_classes=3)
    with pytest.raises(ValueError, match="integer class"):
        proposal(torch.randn(3, D), torch.randn(3))
