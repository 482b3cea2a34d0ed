"""Exact LEX objectives by enumeration, the oracle for every gradient estimator's test.

For a LEX model with a *deterministic* imputation (constant), the L-mask bound

    L_L(x, y) = E_{z^1..z^L iid p(z|x)} [ log (1/L) sum_l p(y | x_tilde(z^l)) ]

is a finite sum over all |S|^L tuples of masks in the support S, so it and its gradient are
exact (autograd through the sum). Use tiny problems: |S|^L terms per datum.
"""

import itertools
import math

import torch


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
