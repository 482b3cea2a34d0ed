"""The LEX bound: exact value by enumeration, ordering L_1 <= L_L <= log p(y|x), estimators."""

import functools
import itertools
import math
import warnings

import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import SVI, RenyiELBO

from lexppl.distributions import IndependentBernoulli, KSubset
from lexppl.imputers import ConstantImputer, GaussianImputer
from lexppl.infer import EnumerateBound, PathwiseBound, ReinforceBound, VimcoBound
from lexppl.models import LEX, CategoricalLikelihood
from lexppl.nets import MLP

D = 4


def tiny_lex(family=IndependentBernoulli, imputer=None, seed=0):
    torch.manual_seed(seed)
    # Wide logits so that different masks give clearly different likelihoods.
    predictor = MLP(D, 3, (16,))
    with torch.no_grad():
        for p in predictor.parameters():
            p.mul_(3.0)
    return LEX(
        MLP(D, D, (8,)), predictor, imputer or ConstantImputer(0.5), family, CategoricalLikelihood()
    )


def brute_force_log_likelihood(lex, x, y):
    """log sum_z p(z|x) p(y | x_tilde(z)) with a Python loop over all masks (the oracle)."""
    probs = torch.sigmoid(lex.selector(x))  # (N, D)
    total = torch.zeros(x.shape[0])
    for bits in itertools.product([0.0, 1.0], repeat=D):
        z = torch.tensor(bits).expand_as(x)
        p_z = (probs * z + (1 - probs) * (1 - z)).prod(-1)
        x_tilde = z * x + (1 - z) * 0.5
        p_y = torch.softmax(lex.predictor(x_tilde), -1).gather(-1, y[:, None]).squeeze(-1)
        total = total + p_z * p_y
    return total.log()


def test_enumeration_is_the_exact_log_likelihood():
    lex = tiny_lex()
    x, y = torch.randn(6, D), torch.randint(3, (6,))
    with torch.no_grad():
        exact = brute_force_log_likelihood(lex, x, y)
        terms = EnumerateBound().bound_terms(lex.model, lex.guide, x, y)
    assert torch.allclose(terms.per_datum, exact, atol=1e-5)
    assert math.isclose(
        EnumerateBound().loss(lex.model, lex.guide, x, y), -exact.sum().item(), rel_tol=1e-5
    )


def test_enumeration_over_k_subsets_is_exact():
    lex = tiny_lex(functools.partial(KSubset, k=2))
    x, y = torch.randn(5, D), torch.randint(3, (5,))
    family = lex.mask_distribution(x)
    support = family.enumerate_support(expand=False).reshape(-1, D)
    with torch.no_grad():
        expected = torch.stack(
            [
                family.log_prob(z.expand_as(x))
                + torch.log_softmax(lex.predictor(z * x + (1 - z) * 0.5), -1)
                .gather(-1, y[:, None])
                .squeeze(-1)
                for z in support
            ]
        ).logsumexp(0)
        got = EnumerateBound().bound_terms(lex.model, lex.guide, x, y).per_datum
    assert support.shape[0] == math.comb(D, 2)
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize(
    "bound_class",
    [PathwiseBound, functools.partial(PathwiseBound, method="marginal"), ReinforceBound],
    ids=["pathwise", "pathwise-marginal", "reinforce"],
)
def test_bound_tightens_with_L_and_stays_below_the_likelihood(bound_class):
    # One datum replicated R times: its R per-datum values are independent draws of the
    # L-sample bound estimator, so their mean estimates E[L_L] with a standard error.
    lex = tiny_lex(seed=1)
    R = 20000
    x, y = torch.randn(1, D).expand(R, D), torch.tensor([1]).expand(R)
    with torch.no_grad():
        exact = brute_force_log_likelihood(lex, x[:1], y[:1]).item()
        means, ses = [], []
        for L in (1, 2, 8):
            values = bound_class(num_masks=L).bound_terms(lex.model, lex.guide, x, y).per_datum
            means.append(values.mean().item())
            ses.append(values.std().item() / math.sqrt(R))
    for (m1, s1), (m2, s2) in zip(zip(means, ses), zip(means[1:], ses[1:])):
        assert m2 - m1 > 4 * math.hypot(s1, s2), (means, ses)  # strictly rising in L
    assert means[-1] <= exact + 4 * ses[-1], (means, exact)
    # the gap closes: L = 8 is nearer the exact value than L = 1
    assert exact - means[-1] < exact - means[0]


def test_imputation_particles_tighten_the_bound():
    lex = tiny_lex(imputer=GaussianImputer(), seed=2)
    R = 20000
    x, y = torch.randn(1, D).expand(R, D), torch.tensor([0]).expand(R)
    with torch.no_grad():
        one = PathwiseBound(1, 1).bound_terms(lex.model, lex.guide, x, y).per_datum
        many = PathwiseBound(1, 8).bound_terms(lex.model, lex.guide, x, y).per_datum
    se = math.hypot(one.std().item(), many.std().item()) / math.sqrt(R)
    assert many.mean() - one.mean() > 4 * se


class _RecordLogits(torch.nn.Module):
    # Keeps the selector's output so that per-datum gradients can be read from one backward.
    def __init__(self, selector):
        super().__init__()
        self.selector = selector

    def forward(self, x):
        self.logits = self.selector(x)
        self.logits.retain_grad()
        return self.logits


def exact_jensen_bound(lex, x, y):
    """L_1 = sum_z p(z|x) log p(y | x_tilde(z)) by enumeration, per datum."""
    family = lex.mask_distribution(x)
    support = family.enumerate_support(expand=False).reshape(-1, D)
    terms = []
    for z in support:
        z = z.expand_as(x)
        log_py = torch.log_softmax(lex.predictor(z * x + (1 - z) * 0.5), -1)
        terms.append(family.log_prob(z).exp() * log_py.gather(-1, y[:, None]).squeeze(-1))
    return torch.stack(terms).sum(0)


@pytest.mark.parametrize(
    "family", [IndependentBernoulli, functools.partial(KSubset, k=2)], ids=["bernoulli", "subset"]
)
def test_reinforce_gradient_is_unbiased_for_the_selector(family):
    # With L = 1 the bound is L_1 = E_z[log p(y|x_tilde)]; the mean of R REINFORCE estimates
    # of its gradient w.r.t. the selector's logits lies within 4 standard errors of the exact
    # gradient computed by enumeration.
    lex = tiny_lex(family, seed=3)
    lex.selector = _RecordLogits(lex.selector)
    x, y = torch.randn(1, D), torch.tensor([2])
    exact_jensen_bound(lex, x, y).sum().backward()
    exact = lex.selector.logits.grad[0].clone()
    R = 20000
    bound = ReinforceBound(num_masks=1)
    bound.baseline = exact_jensen_bound(lex, x, y).item()  # fixed, mask-independent
    loss = bound.differentiable_loss(lex.model, lex.guide, x.expand(R, D), y.expand(R))
    (-loss).backward()  # one backward: row n of the logits' gradient is datum n's estimate
    grads = lex.selector.logits.grad
    mean, se = grads.mean(0), grads.std(0) / math.sqrt(R)
    assert ((mean - exact).abs() <= 4 * se).all(), (mean, exact, se)


def test_estimators_give_selector_gradients_but_renyi_does_not():
    lex = tiny_lex(seed=4)
    x, y = torch.randn(8, D), torch.randint(3, (8,))
    for bound in (
        PathwiseBound(4),
        PathwiseBound(4, method="marginal"),
        ReinforceBound(4),
        EnumerateBound(),
    ):
        lex.zero_grad()
        bound.differentiable_loss(lex.model, lex.guide, x, y).backward()
        grad = lex.selector[0].weight.grad
        assert grad is not None and grad.abs().sum() > 0 and torch.isfinite(grad).all()


def test_pyro_renyi_iwae_gives_a_discrete_mask_proposal_no_gradient():
    # On record: Pyro's IWAE (RenyiELBO, alpha=0) drops the score-function term of
    # non-reparameterisable guide sites, so a learned mask proposal q_phi(z|x) gets exactly
    # zero gradient, while the bound it proposes for does depend on phi. Hence lexppl's own
    # estimators.
    lex = tiny_lex(seed=4)
    proposal = MLP(D, D, (8,))
    x, y = torch.randn(8, D), torch.randint(3, (8,))

    def mask_guide(x, y=None, **kwargs):
        pyro.module("proposal", proposal)
        with pyro.plate("data", x.shape[0], dim=-1):
            pyro.sample("mask", IndependentBernoulli(logits=proposal(x)))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pyro notes that the imputation site has no guide
        RenyiELBO(alpha=0, num_particles=4, max_plate_nesting=3).loss_and_grads(
            lex.model, mask_guide, x, y
        )
    assert lex.predictor[0].weight.grad.abs().sum() > 0  # the predictor does get gradients
    for p in proposal.parameters():
        assert p.grad is None or p.grad.abs().max() == 0


def test_works_with_pyro_svi():
    lex = tiny_lex(seed=5)
    x, y = torch.randn(16, D), torch.randint(3, (16,))
    svi = SVI(lex.model, lex.guide, pyro.optim.Adam({"lr": 1e-2}), PathwiseBound(2))
    before = lex.predictor[0].weight.detach().clone()
    losses = [svi.step(x, y) for _ in range(3)]
    assert all(math.isfinite(v) for v in losses)
    assert not torch.equal(before, lex.predictor[0].weight)


def test_surrogate_value_is_the_bound():
    lex = tiny_lex(seed=6)
    x, y = torch.randn(8, D), torch.randint(3, (8,))
    pyro.set_rng_seed(0)
    value = ReinforceBound(3).differentiable_loss(lex.model, lex.guide, x, y).item()
    pyro.set_rng_seed(0)
    assert math.isclose(value, ReinforceBound(3).loss(lex.model, lex.guide, x, y), rel_tol=1e-6)


@pytest.mark.parametrize("method", ["relaxed", "marginal"])
@pytest.mark.parametrize(
    "family", [IndependentBernoulli, functools.partial(KSubset, k=2)], ids=["bernoulli", "subset"]
)
def test_pathwise_particles_are_distinct_discrete_masks(family, method):
    # Under the estimator's own handler the L masks of a datum differ and stay discrete.
    lex = tiny_lex(family, imputer=GaussianImputer())
    bound = PathwiseBound(num_masks=8, num_imputations=2, method=method)
    x, y = torch.randn(5, D), torch.randint(3, (5,))
    model_trace, _ = bound._get_trace(lex.model, lex.guide, (x, y), {})
    masks = model_trace.nodes["mask"]["value"]
    assert masks.shape == (8, 5, D) and masks.requires_grad
    assert set(masks.detach().unique().tolist()) <= {0.0, 1.0}
    for n in range(5):
        assert torch.unique(masks[:, n].detach(), dim=0).shape[0] > 1
    if family is not IndependentBernoulli:
        assert (masks.sum(-1) == 2).all()


def test_marginal_straight_through_samples_the_exact_k_subset_law():
    # method="marginal" draws masks from the model's own KSubset law: the frequency of each of
    # the C(4, 2) = 6 subsets matches exp(log_prob) within 4 binomial standard errors.
    lex = tiny_lex(functools.partial(KSubset, k=2), seed=7)
    R = 20000
    x, y = torch.randn(1, D).expand(R, D), torch.zeros(R, dtype=torch.long)
    model_trace, _ = PathwiseBound(method="marginal")._get_trace(lex.model, lex.guide, (x, y), {})
    masks = model_trace.nodes["mask"]["value"].detach()
    family = lex.mask_distribution(x[:1])
    for z in family.enumerate_support(expand=False).reshape(-1, D):
        p = family.log_prob(z).exp().item()
        frequency = (masks == z).all(-1).float().mean().item()
        assert abs(frequency - p) < 4 * math.sqrt(p * (1 - p) / R)


def test_enumerate_refuses_large_supports_and_bad_settings():
    torch.manual_seed(0)
    big = LEX(
        MLP(30, 30), MLP(30, 2), ConstantImputer(), IndependentBernoulli, CategoricalLikelihood()
    )
    with pytest.raises(ValueError, match="enumerate"):
        EnumerateBound().loss(big.model, big.guide, torch.randn(2, 30), torch.zeros(2).long())
    with pytest.raises(ValueError, match="num_masks"):
        PathwiseBound(num_masks=0)
    with pytest.raises(ValueError, match="temperature"):
        PathwiseBound(temperature=0.0)
    with pytest.raises(ValueError, match="straight-through method"):
        PathwiseBound(method="gumbel")
    with pytest.raises(ValueError, match="baseline_decay"):
        ReinforceBound(baseline_decay=1.5)


def test_enumerate_refuses_a_guide_that_proposes_the_mask():
    # Its draws would be replayed over the enumerated support: the sum over masks would run
    # over a few proposed masks instead, neither log p(y|x) nor a bound on it.
    from lexppl.guides import MaskProposal

    lex = tiny_lex()
    proposal = MaskProposal.from_prior(lex, D, num_classes=3, hidden=(8,))
    x, y = torch.randn(5, D), torch.randint(3, (5,))
    with pytest.raises(ValueError, match="guide proposes the mask site"):
        EnumerateBound().loss(lex.model, proposal, x, y)
    svi = SVI(lex.model, proposal, pyro.optim.Adam({"lr": 0.01}), EnumerateBound())
    with pytest.raises(ValueError, match="guide proposes the mask site"):
        svi.step(x, y)


def test_enumeration_agrees_with_pyro_trace_enum_elbo():
    # Where Pyro's own enumeration applies (a deterministic imputation, hidden from the trace),
    # TraceEnum_ELBO computes the same exact objective and gradient as EnumerateBound.
    from pyro.infer import TraceEnum_ELBO, config_enumerate

    lex = tiny_lex(seed=1)
    x, y = torch.randn(6, D), torch.randint(3, (6,))
    enumerated = config_enumerate(poutine.block(lex.model, hide=["imputation"]), "parallel")

    def empty_guide(*args, **kwargs):
        pass

    pyro_elbo = TraceEnum_ELBO(max_plate_nesting=1)
    pyro_loss = pyro_elbo.differentiable_loss(enumerated, empty_guide, x, y)
    (pyro_grad,) = torch.autograd.grad(pyro_loss, lex.selector[0].weight)
    ours = EnumerateBound().differentiable_loss(lex.model, lex.guide, x, y)
    (our_grad,) = torch.autograd.grad(ours, lex.selector[0].weight)
    assert torch.allclose(pyro_loss, ours, atol=1e-5)
    assert torch.allclose(pyro_grad, our_grad, atol=1e-6)


def test_estimators_by_name():
    from lexppl.infer import ESTIMATORS, make_bound

    assert isinstance(make_bound("vimco", num_masks=3), VimcoBound)
    simple = make_bound("simple", num_masks=2)
    assert isinstance(simple, PathwiseBound) and simple.method == "marginal"
    assert set(ESTIMATORS) >= {"pathwise", "reinforce", "vimco", "rebar", "relax", "enumerate"}
    with pytest.raises(ValueError, match="valid choices"):
        make_bound("rebarr")


def test_global_latents_with_an_autoguide_match_pyro_trace_elbo():
    # Latents drawn by a guide (e.g. Bayesian selector weights) enter the bound as an ELBO term
    # log p - log q, auxiliary autoguide sites and their Jacobians included: with one particle
    # the value equals Pyro's Trace_ELBO on the same draw.
    import pyro.distributions as dist
    from pyro.infer import Trace_ELBO
    from pyro.infer.autoguide import AutoNormal

    from lexppl.infer.bound import ImportanceWeightedBound

    class PlainBound(ImportanceWeightedBound):
        def _surrogate(self, terms):
            return terms.total

    def model(x, y=None, num_masks=1, num_imputations=1):
        w = pyro.sample("w", dist.LogNormal(0.0, 1.0))  # constrained: the guide has a Jacobian
        with pyro.plate("data", x.shape[0], dim=-1):
            pyro.sample("y", dist.Normal(w * x, 1.0), obs=y)

    guide = AutoNormal(model)
    x, y = torch.randn(5), torch.randn(5)
    guide(x, y)
    with pyro.validation_enabled(False):  # a model without a mask site, for this check only
        pyro.set_rng_seed(0)
        ours = PlainBound().loss(model, guide, x, y)
    pyro.set_rng_seed(0)
    reference = Trace_ELBO().loss(model, guide, x, y)
    assert math.isclose(ours, reference, rel_tol=1e-5)


def test_fit_moves_the_estimators_own_networks_with_the_model():
    # fit(device=...) calls bound.to(device), so baseline networks and control variates follow
    # the model. .to is checked with a dtype here (no GPU on the test machine).
    from lexppl.infer import RebarBound
    from lexppl.train import fit

    reinforce = ReinforceBound(
        1, baseline_net=MLP(3, 2, (4,)), baseline_likelihood=CategoricalLikelihood()
    )
    assert reinforce.to(torch.float64) is reinforce
    assert all(p.dtype == torch.float64 for p in reinforce.parameters())
    rebar = RebarBound().to(torch.float64)
    assert all(p.dtype == torch.float64 for p in rebar.parameters())
    calls = []

    class Recording(ReinforceBound):
        def to(self, *args, **kwargs):
            calls.append(args)
            return super().to(*args, **kwargs)

    lex = tiny_lex()
    x = torch.randn(20, D)
    fit(lex, Recording(), x, torch.randint(3, (20,)), epochs=1, batch_size=10, device="cpu")
    assert calls == [(torch.device("cpu"),)]


# ------------------------------------------------------------ inside larger models and handlers
COMPOSITION_BOUNDS = {
    "enumerate": lambda: EnumerateBound(),
    "pathwise": lambda: PathwiseBound(3, method="marginal"),
    "reinforce": lambda: ReinforceBound(3),
    "vimco": lambda: VimcoBound(3),
}


def _loss_and_grad(bound, model, lex, x, y, seed=0):
    lex.zero_grad()
    pyro.set_rng_seed(seed)
    loss = bound.differentiable_loss(model, lex.guide, x, y)
    loss.backward()
    return loss.item(), torch.cat([p.grad.flatten() for p in lex.selector.parameters()])


@pytest.mark.parametrize("name", COMPOSITION_BOUNDS)
def test_poutine_scale_multiplies_each_datum_bound_and_its_gradient(name):
    # poutine.scale(s), e.g. N / B for a mini-batch, multiplies the log-likelihood bound of each
    # datum, not the log-weights inside its log-mean-exp (which would change the bound itself).
    lex = tiny_lex()
    x, y = torch.randn(6, D), torch.randint(3, (6,))
    loss, grad = _loss_and_grad(COMPOSITION_BOUNDS[name](), lex.model, lex, x, y)
    scaled = poutine.scale(lex.model, scale=10.0)
    loss_10, grad_10 = _loss_and_grad(COMPOSITION_BOUNDS[name](), scaled, lex, x, y)
    assert math.isclose(loss_10, 10 * loss, rel_tol=1e-5)
    assert torch.allclose(grad_10, 10 * grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", COMPOSITION_BOUNDS)
def test_poutine_mask_leaves_data_out(name):
    lex = tiny_lex()
    x, y = torch.randn(6, D), torch.randint(3, (6,))
    keep = torch.tensor([True, False, True, True, False, False])
    masked = poutine.mask(lex.model, mask=keep)
    with torch.no_grad():
        terms = COMPOSITION_BOUNDS[name]().bound_terms(masked, lex.guide, x, y)
    assert (terms.per_datum[~keep] == 0).all()
    if name == "enumerate":  # exact: the bound of the kept rows alone
        exact = brute_force_log_likelihood(lex, x[keep], y[keep])
        assert torch.allclose(terms.per_datum[keep], exact, atol=1e-5)
        loss = EnumerateBound().loss(masked, lex.guide, x, y)
        assert math.isclose(loss, -exact.sum().item(), rel_tol=1e-5)
    # the rows left out have no say in the gradient: other values there (same draws) change
    # nothing
    _, grad = _loss_and_grad(COMPOSITION_BOUNDS[name](), masked, lex, x, y)
    x_other, y_other = x.clone(), y.clone()
    x_other[~keep], y_other[~keep] = torch.randn(3, D), (y[~keep] + 1) % 3
    _, grad_other = _loss_and_grad(COMPOSITION_BOUNDS[name](), masked, lex, x_other, y_other)
    assert torch.allclose(grad, grad_other, atol=1e-6)
    if name == "enumerate":
        _, grad_kept = _loss_and_grad(EnumerateBound(), lex.model, lex, x[keep], y[keep])
        assert torch.allclose(grad, grad_kept, atol=1e-5)


def test_sites_outside_the_data_plate_count_once():
    # A larger model: a global observation and a factor next to a LEX block. Their log-density
    # is added once to the bound, not to every datum's weight.
    import pyro.distributions as dist

    lex = tiny_lex()
    x, y = torch.randn(6, D), torch.randint(3, (6,))
    calibration = torch.tensor(0.3)

    def larger(x, y=None, **particles):
        pyro.sample("calibration", dist.Normal(0.0, 1.0), obs=calibration)
        pyro.factor("prior_term", torch.tensor(-1.0))
        return lex.model(x, y, **particles)

    with torch.no_grad():
        exact = brute_force_log_likelihood(lex, x, y).sum().item()
        extra = dist.Normal(0.0, 1.0).log_prob(calibration).item() - 1.0
        for name, make in COMPOSITION_BOUNDS.items():
            terms = make().bound_terms(larger, lex.guide, x, y)
            plain = make().bound_terms(lex.model, lex.guide, x, y)
            if name == "enumerate":
                assert math.isclose(terms.total.item(), exact + extra, rel_tol=1e-5)
            assert math.isclose(terms.global_term.item(), extra, rel_tol=1e-5)
            assert terms.per_datum.shape == plain.per_datum.shape == (6,)


def test_plates_and_blocks_the_bound_cannot_pair_are_refused():
    x, y = torch.randn(6, D), torch.randint(3, (6,))
    first, second = tiny_lex(), tiny_lex(seed=1)
    second.name = "second"

    def two_blocks(x, y=None, **particles):
        first.model(x, y, **particles)
        second.model(x, y, **particles)

    with pytest.raises(ValueError, match="enumerates one mask site"):
        EnumerateBound().loss(two_blocks, first.guide, x, y)
    assert math.isfinite(PathwiseBound(2).loss(two_blocks, first.guide, x, y))

    def different_rows(x, y=None, **particles):
        first.model(x, y, **particles)
        second.model(x[:4], y[:4], **particles)

    with pytest.raises(ValueError, match="different sizes"):
        PathwiseBound(2).loss(different_rows, first.guide, x, y)

    def replicated(x, y=None, **particles):  # a plate where the bound keeps its particles
        with pyro.plate("replicates", 2, dim=-2):
            first.model(x, y, **particles)

    with pytest.raises(ValueError, match="not its LEX model's data plate"):
        PathwiseBound(1).loss(replicated, first.guide, x, y)

    per_datum_scale = poutine.scale(first.model, scale=torch.ones(6))
    with pytest.raises(ValueError, match="one number"):
        PathwiseBound(2).loss(per_datum_scale, first.guide, x, y)


def test_pyro_elbos_train_a_lex_model_with_its_prior_guide():
    # With LEX.prior_guide, Pyro's Trace_ELBO estimates L_1 = sum_n E_z[log p(y_n | x~(z))] and
    # TraceGraph_ELBO's selector gradient is a score-function estimate of its gradient: checked
    # against L_1 and its gradient by enumeration (constant imputation), within 4.5 SE.
    from pyro.infer import Trace_ELBO, TraceGraph_ELBO

    lex = tiny_lex()
    x, y = torch.randn(5, D), torch.randint(3, (5,))
    weight = lex.selector[0].weight

    def exact_l1():
        probs = torch.sigmoid(lex.selector(x))
        total = torch.zeros(())
        for bits in itertools.product([0.0, 1.0], repeat=D):
            z = torch.tensor(bits).expand_as(x)
            p_z = (probs * z + (1 - probs) * (1 - z)).prod(-1)
            log_p_y = torch.log_softmax(lex.predictor(z * x + (1 - z) * 0.5), -1)
            total = total + (p_z * log_p_y.gather(-1, y[:, None]).squeeze(-1)).sum()
        return total

    value = exact_l1()
    (exact_grad,) = torch.autograd.grad(-value, weight)
    pyro.set_rng_seed(0)
    draws = 400
    losses = torch.tensor(
        [Trace_ELBO().loss(lex.model, lex.prior_guide, x, y) for _ in range(draws)]
    )
    se = losses.std() / draws**0.5
    assert abs(losses.mean() + value.item()) < 4.5 * se
    grads = []
    for _ in range(draws):
        weight.grad = None
        TraceGraph_ELBO().loss_and_grads(lex.model, lex.prior_guide, x, y)
        grads.append(weight.grad.clone())
    grads = torch.stack(grads)
    z = (grads.mean(0) - exact_grad) / (grads.std(0) / draws**0.5).clamp_min(1e-12)
    assert z.abs().max() < 4.5, z
