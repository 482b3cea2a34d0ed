"""Exact LEX objectives by enumeration, the oracle for every gradient estimator's test.

For a LEX model with a *deterministic* imputation (constant), the L-mask bound

    L_L(x, y) = E_{z^1..z^L iid p(z|x)} [ log (1/L) sum_l p(y | x_tilde(z^l)) ]

is a finite sum over all |S|^L tuples of masks in the support S, so it and its gradient are
exact (autograd through the sum). Use tiny problems: |S|^L terms per datum.
"""

import itertools
import math

import torch

from lexppl.distributions import IndependentBernoulli
from lexppl.imputers import ConstantImputer
from lexppl.models import LEX, CategoricalLikelihood
from lexppl.nets import MLP


def mask_support(lex, x):
    """All masks of the support, shape (S, D), and their log-probabilities (S, N)."""
    family = lex.mask_distribution(x)
    D = family.event_shape[-1]
    support = family.enumerate_support(expand=False).reshape(-1, D)
    log_p = torch.stack([family.log_prob(z.expand(x.shape[0], D)) for z in support])
    return support, log_p


def exact_bound(lex, x, y, num_masks=1):
    """Exact L_L per datum, shape (N,), differentiable w.r.t. every parameter of ``lex``.

    Only for deterministic imputations: the imputation is the imputer's sample (identical
    across draws)."""
    support, log_p = mask_support(lex, x)
    log_lik = []
    for z in support:
        z = z.expand_as(x)
        x_tilde = lex.imputer(x, z).rsample()
        log_lik.append(lex.likelihood(lex.predictor(x_tilde)).log_prob(y))
    log_lik = torch.stack(log_lik)  # (S, N)
    total = torch.zeros(x.shape[0], dtype=log_lik.dtype)
    for tuple_ in itertools.product(range(len(support)), repeat=num_masks):
        index = list(tuple_)
        weight = log_p[index].sum(0).exp()  # prod_l p(z^l | x)
        value = log_lik[index].logsumexp(0) - math.log(num_masks)
        total = total + weight * value
    return total


def exact_selector_gradient(lex, x, y, parameter, num_masks=1):
    """d/d parameter of sum_n L_L(x_n, y_n)."""
    (grad,) = torch.autograd.grad(exact_bound(lex, x, y, num_masks).sum(), parameter)
    return grad


# ---------------------------------------------------------------- the estimators' test harness
# Shared by the unbiasedness tests: a tiny LEX with a fixed predictor, and per-datum gradient
# estimates read from one backward pass over many copies of one datum.

TINY_D = 4
REPLICAS = 20000  # copies of one datum: REPLICAS independent gradient estimates


def tiny_lex(family=IndependentBernoulli, seed=0, imputer=None):
    """A LEX on 4 features with a fixed predictor whose wide logits make masks matter."""
    torch.manual_seed(seed)
    predictor = MLP(TINY_D, 3, (16,))
    with torch.no_grad():
        for p in predictor.parameters():
            p.mul_(3.0)
    predictor.requires_grad_(False)
    imputer = imputer or ConstantImputer(0.5)
    return LEX(MLP(TINY_D, TINY_D, (8,)), predictor, imputer, family, CategoricalLikelihood())


class RecordLogits(torch.nn.Module):
    """Wraps a selector and keeps its output so that per-datum gradients can be read."""

    def __init__(self, selector):
        super().__init__()
        self.selector = selector

    def forward(self, x):
        self.logits = self.selector(x)
        self.logits.retain_grad()
        return self.logits


def logit_gradients(lex, bound, x, y):
    """Row n: the estimator's gradient of datum n's bound w.r.t. its selector logits."""
    selector = lex.selector
    lex.selector = RecordLogits(selector)
    try:
        (-bound.differentiable_loss(lex.model, lex.guide, x, y)).backward()
        return lex.selector.logits.grad.detach()
    finally:
        lex.selector = selector
        for p in bound.parameters():
            p.grad = None


def logit_gradient_estimates(lex, bound, x, y, replicas=REPLICAS):
    """``replicas`` independent estimates for the single datum ``(x, y)``, shape (R, D)."""
    return logit_gradients(lex, bound, x.expand(replicas, x.shape[-1]), y.expand(replicas))


def exact_guided_bound(lex, proposal, x, y, num_masks=1):
    """Exact L_L per datum (N,) with masks proposed by ``proposal`` (a MaskProposal):
    E_{z^1..z^L iid q(z|x,y)} [log (1/L) sum_l p(y|x_tilde(z^l)) p(z^l|x) / q(z^l|x,y)],
    differentiable w.r.t. the proposal's parameters (deterministic imputation only)."""
    support, log_p = mask_support(lex, x)
    q = lex.mask_family(proposal.logits(x, y))
    log_q = torch.stack([q.log_prob(z.expand_as(x)) for z in support])  # (S, N)
    log_lik = torch.stack(
        [
            lex.likelihood(lex.predictor(lex.imputer(x, z.expand_as(x)).rsample())).log_prob(y)
            for z in support
        ]
    )
    log_w = log_lik + log_p - log_q
    total = torch.zeros(x.shape[0], dtype=log_w.dtype)
    for tuple_ in itertools.product(range(len(support)), repeat=num_masks):
        index = list(tuple_)
        total = total + log_q[index].sum(0).exp() * (
            log_w[index].logsumexp(0) - math.log(num_masks)
        )
    return total
