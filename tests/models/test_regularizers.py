import math

import pyro
import pytest
import torch
from torch.distributions import Bernoulli, Independent

from lexppl.distributions import IndependentBernoulli, KSubset
from lexppl.models import ContinuityPenalty, L1Penalty, RationalePenalty


def test_l1_penalty_mean_and_sum():
    d = IndependentBernoulli(probs=torch.tensor([[0.2, 0.4, 0.9], [0.0, 1.0, 0.5]]))
    assert torch.allclose(L1Penalty(0.3)(d), 0.3 * torch.tensor([0.5, 0.5]))
    assert torch.allclose(L1Penalty(0.3, reduction="sum")(d), 0.3 * torch.tensor([1.5, 1.5]))
    # exact k-subset marginals sum to k
    k = KSubset(logits=torch.randn(2, 5), k=2)
    assert torch.allclose(L1Penalty(1.0, reduction="sum")(k), torch.full((2,), 2.0), atol=1e-5)


def test_continuity_penalty_on_hand_built_masks():
    # Deterministic masks (p in {0, 1}): the penalty counts the switches exactly.
    d = IndependentBernoulli(probs=torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]))
    assert torch.equal(ContinuityPenalty(1.0)(d), torch.tensor([2.0, 0.0]))
    assert torch.allclose(ContinuityPenalty(0.5, reduction="mean")(d), torch.tensor([1 / 3, 0.0]))
    # p = (0.5, 0.5): P(z1 != z2) = 1/2; p = (0.2, 0.7): 0.2 + 0.7 - 2 * 0.14 = 0.62.
    d = IndependentBernoulli(probs=torch.tensor([[0.5, 0.5], [0.2, 0.7]]))
    assert torch.allclose(ContinuityPenalty(2.0)(d), torch.tensor([1.0, 1.24]))
    # A single position has no pair: no penalty.
    assert ContinuityPenalty(1.0, "mean")(IndependentBernoulli(probs=torch.ones(3, 1))).eq(0).all()


def test_continuity_penalty_is_the_expectation_of_the_switch_count():
    torch.manual_seed(0)
    probs = torch.rand(3, 7)
    d = IndependentBernoulli(probs=probs)
    z = d.sample((20000,))
    switches = (z[..., 1:] - z[..., :-1]).abs().sum(-1)  # (S, 3)
    mc, se = switches.mean(0), switches.std(0) / math.sqrt(20000)
    exact = ContinuityPenalty(1.0)(d)
    assert ((exact - mc).abs() < 4 * se).all()
    # the same expectation for torch's Independent(Bernoulli)
    assert torch.allclose(ContinuityPenalty(1.0)(Independent(Bernoulli(probs=probs), 1)), exact)


def test_continuity_penalty_gradient_flows_to_the_logits():
    logits = torch.zeros(1, 3, requires_grad=True)
    ContinuityPenalty(1.0)(IndependentBernoulli(logits=logits)).sum().backward()
    # at p = 1/2 everywhere d/dp_t E|z_t - z_(t-1)| = 1 - 2 p_(t-1) = 0
    assert torch.allclose(logits.grad, torch.zeros(1, 3), atol=1e-7)
    logits = torch.tensor([[3.0, 0.0, 3.0]], requires_grad=True)
    ContinuityPenalty(1.0)(IndependentBernoulli(logits=logits)).sum().backward()
    assert logits.grad[0, 1] < 0  # a gap between selected positions is pushed to fill


def test_rationale_penalty_is_lei_et_al_parametrisation():
    d = IndependentBernoulli(probs=torch.tensor([[1.0, 0.0, 1.0, 1.0]]))
    # λ1 ||z||_1 + λ1 c Σ|Δz| = 0.1 * 3 + 0.1 * 2 * 2
    assert torch.allclose(RationalePenalty(0.1, 2.0)(d), torch.tensor([0.7]))
    assert RationalePenalty().sparsity == 3e-4 and RationalePenalty().coherence == 2.0


def test_penalty_enters_the_lex_model_as_a_factor():
    from lexppl.imputers import ConstantImputer
    from lexppl.models import LEX, CategoricalLikelihood
    from lexppl.nets import MLP

    torch.manual_seed(0)
    lex = LEX(
        MLP(4, 4, (8,)),
        MLP(4, 2, (8,)),
        ConstantImputer(0.0),
        IndependentBernoulli,
        CategoricalLikelihood(),
        regularizer=ContinuityPenalty(0.5),
    )
    x = torch.randn(6, 4)
    trace = pyro.poutine.trace(lex.model).get_trace(x)
    penalty = trace.nodes["penalty"]["fn"].log_prob(torch.zeros(6))
    assert torch.allclose(penalty, -ContinuityPenalty(0.5)(lex.mask_distribution(x)))


@pytest.mark.parametrize(
    "build",
    [
        lambda: ContinuityPenalty(-1.0),
        lambda: ContinuityPenalty(float("nan")),
        lambda: ContinuityPenalty(1.0, reduction="max"),
        lambda: L1Penalty(1.0, reduction="median"),
        lambda: RationalePenalty(-1.0),
        lambda: RationalePenalty(0.1, coherence=-2.0),
    ],
)
def test_bad_arguments_raise_value_error(build):
    with pytest.raises(ValueError):
        build()


def test_continuity_refuses_dependent_masks():
    with pytest.raises(ValueError, match="KSubset"):
        ContinuityPenalty(1.0)(KSubset(logits=torch.zeros(2, 4), k=2))
