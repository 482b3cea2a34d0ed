"""ConcreteBound: soft masks through a constant imputation, pathwise gradients, its refusals."""

import functools
import math

import pyro
import pytest
import torch

from lexppl.distributions import IndependentBernoulli, KSubset
from lexppl.imputers import ConstantImputer, GaussianImputer, MarginalImputer
from lexppl.infer import ConcreteBound
from lexppl.models import LEX, CategoricalLikelihood
from lexppl.nets import MLP

D = 4
SUBSET = functools.partial(KSubset, k=2)


def tiny_lex(family=IndependentBernoulli, imputer=None, seed=0):
    torch.manual_seed(seed)
    return LEX(
        MLP(D, D, (8,)),
        MLP(D, 3, (16,)),
        imputer or ConstantImputer(0.5),
        family,
        CategoricalLikelihood(),
    )


@pytest.mark.parametrize(
    ("family", "method"),
    [(IndependentBernoulli, "topk"), (SUBSET, "topk"), (SUBSET, "max_of_k")],
    ids=["bernoulli", "subset-topk", "subset-max_of_k"],
)
@pytest.mark.parametrize("num_masks", [1, 3])
def test_concrete_gradients_are_finite_and_nonzero(family, method, num_masks):
    lex = tiny_lex(family)
    x, y = torch.randn(8, D), torch.randint(3, (8,))
    bound = ConcreteBound(num_masks, temperature=0.5, method=method)
    pyro.set_rng_seed(0)
    loss = bound.differentiable_loss(lex.model, lex.guide, x, y)
    assert math.isfinite(loss.item())
    loss.backward()
    for part in (lex.selector, lex.predictor):
        grad = part[0].weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    pyro.set_rng_seed(0)  # same soft masks: loss() reports the surrogate's value
    assert math.isclose(bound.loss(lex.model, lex.guide, x, y), loss.item(), rel_tol=1e-6)


def test_soft_max_of_k_masks_reach_the_imputation():
    lex = tiny_lex(SUBSET, seed=1)
    x, y = torch.randn(6, D), torch.randint(3, (6,))
    bound = ConcreteBound(num_masks=2, temperature=0.5, method="max_of_k")
    model_trace, _ = bound._get_trace(lex.model, lex.guide, (x, y), {})
    masks = model_trace.nodes["mask"]["value"]
    assert masks.shape == (2, 6, D) and masks.requires_grad
    assert ((masks > 0) & (masks < 1)).all()
    assert ((masks > 0.01) & (masks < 0.99)).any()  # really soft, not rounded
    imputed = model_trace.nodes["imputation"]["value"]
    assert torch.allclose(imputed, masks * x + (1 - masks) * 0.5)


def test_concrete_refuses_multiple_imputation():
    x, y = torch.randn(4, D), torch.randint(3, (4,))
    for imputer in (GaussianImputer(), MarginalImputer().fit(torch.randn(10, D))):
        lex = tiny_lex(imputer=imputer)
        name = type(imputer).__name__
        with pytest.raises(ValueError, match=f"single \\(constant\\) imputation, got {name}"):
            ConcreteBound(2).differentiable_loss(lex.model, lex.guide, x, y)

    # A model that is not the bound method lex.model: refused from its traced imputation site.
    lex = tiny_lex(imputer=GaussianImputer())

    def model(x, y=None, **kwargs):
        return lex.model(x, y, **kwargs)

    with pytest.raises(ValueError, match="random fill distribution"):
        ConcreteBound(2).loss(model, lex.guide, x, y)
    constant = tiny_lex()

    def constant_model(x, y=None, **kwargs):
        return constant.model(x, y, **kwargs)

    assert math.isfinite(ConcreteBound(2).loss(constant_model, constant.guide, x, y))


def test_concrete_validates_its_settings():
    with pytest.raises(ValueError, match="concrete relaxation method"):
        ConcreteBound(method="gumbel")
    with pytest.raises(ValueError, match="temperature"):
        ConcreteBound(temperature=0.0)
    with pytest.raises(ValueError, match="num_masks"):
        ConcreteBound(num_masks=0)
    bound = ConcreteBound(2, temperature=0.3, method="max_of_k")
    assert (bound.num_masks, bound.num_imputations) == (2, 1)
    assert (bound.temperature, bound.method) == (0.3, "max_of_k")
