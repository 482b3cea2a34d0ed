import functools
import math

import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import Predictive, Trace_ELBO, TraceGraph_ELBO

from lexppl.distributions import IndependentBernoulli, KSubset
from lexppl.imputers import (
    ConstantImputer,
    GaussianImputer,
    GaussianMixtureImputer,
    KMeansDatasetImputer,
    MarginalImputer,
    MixtureOfLogisticsImputer,
    VAEACImputer,
)
from lexppl.models import (
    LEX,
    BernoulliLikelihood,
    CategoricalLikelihood,
    L1Penalty,
    NormalLikelihood,
)
from lexppl.nets import MLP

D, N = 6, 5


def make_lex(family=IndependentBernoulli, imputer=None, likelihood=None, out=3, **kwargs):
    return LEX(
        MLP(D, D, (8,)),
        MLP(D, out, (8,)),
        imputer or ConstantImputer(),
        family,
        likelihood or CategoricalLikelihood(),
        **kwargs,
    )


def sample_sites(trace):
    return {
        n: s
        for n, s in trace.nodes.items()
        if s["type"] == "sample" and hasattr(s["fn"], "batch_shape")
    }


def test_sites_and_shapes_with_particles():
    lex = make_lex(functools.partial(KSubset, k=2), GaussianImputer())
    x, y = torch.randn(N, D), torch.randint(3, (N,))
    trace = poutine.trace(lex.model).get_trace(x, y, num_masks=4, num_imputations=3)
    sites = sample_sites(trace)
    assert sites["mask"]["value"].shape == (4, N, D)
    assert sites["imputation"]["value"].shape == (3, 4, N, D)
    assert sites["y"]["fn"].batch_shape == (3, 4, N)
    assert sites["y"]["is_observed"]


def test_default_call_has_the_shapes_of_one_draw():
    lex = make_lex()
    trace = poutine.trace(lex.model).get_trace(torch.randn(N, D))
    sites = sample_sites(trace)
    assert sites["mask"]["value"].shape == (N, D)
    assert sites["y"]["value"].shape == (N,)


@pytest.mark.parametrize(
    "family", [IndependentBernoulli, functools.partial(KSubset, k=3)], ids=["bernoulli", "subset"]
)
def test_particles_are_distinct_masks_and_imputations(family):
    # The L masks (and K imputations) of one datum differ: the bound is not silently L = 1.
    lex = make_lex(family, GaussianImputer())
    x = torch.randn(N, D)
    trace = poutine.trace(lex.model).get_trace(x, None, num_masks=8, num_imputations=4)
    masks = sample_sites(trace)["mask"]["value"]  # (8, N, D)
    for n in range(N):
        assert torch.unique(masks[:, n], dim=0).shape[0] > 1
    imputations = sample_sites(trace)["imputation"]["value"]  # (4, 8, N, D)
    assert not torch.allclose(imputations[0], imputations[1])
    # ... while kept features are exactly x in every particle
    kept = masks.expand(4, -1, -1, -1) > 0.5
    assert torch.equal(imputations[kept], x.expand(4, 8, N, D)[kept])


def test_predictive_and_conditioning_the_mask():
    lex = make_lex()
    x = torch.randn(N, D)
    samples = Predictive(lex.model, num_samples=7)(x)
    assert samples["mask"].shape == (7, N, D)
    assert samples["y"].shape == (7, N)

    # Turning every feature off with 0-imputation makes the predictor see the same input for
    # every datum, so the prediction cannot depend on x; keeping every feature shows it x.
    def logits_given(mask):
        conditioned = poutine.condition(lex.model, data={"mask": mask})
        return poutine.trace(conditioned).get_trace(x).nodes["y"]["fn"].logits

    off = logits_given(torch.zeros(N, D))
    on = logits_given(torch.ones(N, D))
    assert torch.allclose(off, off[:1].expand_as(off))
    assert torch.allclose(on, torch.log_softmax(lex.predictor(x), -1), atol=1e-6)
    assert not torch.allclose(on, off)


def test_do_and_prefixed_sites_compose_in_a_larger_model():
    first, second = make_lex(name="first"), make_lex(name="second")
    x = torch.randn(N, D)

    def bigger(x):
        first.model(x)
        second.model(x)

    trace = poutine.trace(bigger).get_trace(x)
    assert {"first.mask", "second.mask", "first.y", "second.y"} <= set(trace.nodes)
    intervened = poutine.do(first.model, data={"first.mask": torch.ones(N, D)})
    x_tilde = intervened(x)
    assert torch.equal(x_tilde, x)


def test_importance_explain_predict():
    lex = make_lex(functools.partial(KSubset, k=2))
    x = torch.randn(N, D)
    importance = lex.importance(x)
    assert importance.shape == (N, D)
    assert torch.allclose(importance.sum(-1), torch.full((N,), 2.0), atol=1e-5)
    masks = lex.explain(x, num_samples=11)
    assert masks.shape == (11, N, D) and (masks.sum(-1) == 2).all()
    probs = lex.predict(x, num_samples=9)
    assert probs.shape == (N, 3)
    assert torch.allclose(probs.sum(-1), torch.ones(N), atol=1e-5)


def test_bernoulli_and_normal_likelihoods():
    x = torch.randn(N, D)
    lex = make_lex(likelihood=BernoulliLikelihood(), out=1)
    assert lex.predict(x, num_samples=3).shape == (N,)
    reg = make_lex(likelihood=NormalLikelihood(), out=1)
    trace = poutine.trace(reg.model).get_trace(x, torch.randn(N), num_masks=2)
    assert trace.nodes["y"]["fn"].batch_shape == (2, N)
    assert reg.predict(x, num_samples=4).shape == (N,)


def test_custom_likelihood_callable():
    lex = make_lex(likelihood=lambda out: pyro.distributions.Poisson(out.exp().squeeze(-1)), out=1)
    trace = poutine.trace(lex.model).get_trace(torch.randn(N, D), torch.ones(N))
    assert trace.nodes["y"]["fn"].batch_shape == (N,)


def test_penalty_factor_is_exact_expected_l1():
    lex = make_lex(regularizer=L1Penalty(0.3))
    x = torch.randn(N, D)
    trace = poutine.trace(lex.model).get_trace(x)
    trace.compute_log_prob()
    probs = torch.sigmoid(lex.selector(x))
    assert torch.allclose(trace.nodes["penalty"]["log_prob"], -0.3 * probs.mean(-1), atol=1e-6)


# Imputers (small fits on data of intensities in [0, 1]); only the constant and Gaussian ones
# have a log-density of their imputations.
PRIOR_GUIDE_IMPUTERS = {
    "constant": lambda X: ConstantImputer(0.5),
    "gaussian": lambda X: GaussianImputer(),
    "marginal": lambda X: MarginalImputer().fit(X),
    "gmm": lambda X: GaussianMixtureImputer(2).fit(X),
    "kmeans-dataset": lambda X: KMeansDatasetImputer(2).fit(X),
    "mixture-of-logistics": lambda X: MixtureOfLogisticsImputer(2, epochs=1).fit(X),
    "vaeac": lambda X: VAEACImputer(latent_dim=2, hidden=8, epochs=1).fit(X),
}


@pytest.mark.parametrize("name", list(PRIOR_GUIDE_IMPUTERS))
def test_pyro_elbos_with_the_prior_guide_take_every_imputer(name):
    # Pyro scores every sample site, but the imputation site is masked out (most fills have no
    # density; proposed from the model, it cancels): Trace_ELBO's loss is exactly
    # -log p(y|x~) - penalty at the drawn x~, its value before the mask for a constant imputer.
    # The Pyro-vs-enumeration check of prior_guide is in tests/infer/test_bound.py.
    torch.manual_seed(0)
    data = torch.rand(40, D)
    lex = make_lex(imputer=PRIOR_GUIDE_IMPUTERS[name](data), regularizer=L1Penalty(0.1))
    x, y = data[:N], torch.randint(3, (N,))
    pyro.set_rng_seed(1)
    loss = Trace_ELBO().loss(lex.model, lex.prior_guide, x, y)
    pyro.set_rng_seed(1)  # the same draws: Trace_ELBO runs the guide, then replays the model
    guide_trace = poutine.trace(lex.prior_guide).get_trace(x, y)
    model_trace = poutine.trace(poutine.replay(lex.model, trace=guide_trace)).get_trace(x, y)
    model_trace.compute_log_prob()
    assert torch.equal(model_trace.nodes["imputation"]["log_prob"], torch.zeros(N))
    expected = -(
        model_trace.nodes["y"]["log_prob_sum"] + model_trace.nodes["penalty"]["log_prob_sum"]
    )
    assert math.isfinite(loss) and math.isclose(loss, expected.item(), rel_tol=1e-6)
    TraceGraph_ELBO().loss_and_grads(lex.model, lex.prior_guide, x, y)
    grad = lex.selector[0].weight.grad
    assert grad is not None and torch.isfinite(grad).all()


def test_bad_arguments():
    with pytest.raises(TypeError, match="imputer"):
        LEX(MLP(D, D), MLP(D, 2), "zero", IndependentBernoulli, CategoricalLikelihood())
    with pytest.raises(ValueError, match="L1Penalty"):
        L1Penalty(-1.0)


def test_mask_as_input_feeds_the_mask_to_the_predictor():
    torch.manual_seed(0)
    lex = LEX(
        MLP(D, D, (8,)),
        MLP(2 * D, 3, (8,)),
        ConstantImputer(),
        IndependentBernoulli,
        CategoricalLikelihood(),
        mask_as_input=True,
    )
    x = torch.zeros(N, D)  # with x = 0 and 0-imputation, only the mask tells masks apart

    def logits_given(mask):
        conditioned = poutine.condition(lex.model, data={"mask": mask})
        return poutine.trace(conditioned).get_trace(x, num_masks=2).nodes["y"]["fn"].logits

    masks = torch.stack([torch.zeros(N, D), torch.ones(N, D)])
    logits = logits_given(masks)
    assert logits.shape == (2, N, 3)
    assert not torch.allclose(logits[0], logits[1])


def test_svi_trains_a_second_unnamed_model_in_the_same_session():
    # Both register under "lex.*" in Pyro's global store. pyro.module keeps a taken name's
    # tensors, so SVI used to optimise the first model's parameters for the second (a silent
    # no-op); the model that runs now claims the names.
    from pyro.infer import SVI

    from lexppl.infer import PathwiseBound

    x, y = torch.randn(16, D), torch.randint(3, (16,))
    pyro.clear_param_store()
    for seed in (0, 1):
        torch.manual_seed(seed)
        lex = make_lex()
        before = [
            p.detach().clone() for p in (*lex.selector.parameters(), *lex.predictor.parameters())
        ]
        svi = SVI(lex.model, lex.guide, pyro.optim.Adam({"lr": 1e-2}), PathwiseBound(2))
        for _ in range(3):
            svi.step(x, y)
        after = [*lex.selector.parameters(), *lex.predictor.parameters()]
        assert all(not torch.equal(a, b) for a, b in zip(after, before)), f"model {seed}"
    pyro.clear_param_store()


def test_models_sharing_a_module_under_two_names_can_be_replaced():
    # A pre-training model and the main one share their predictor under two names in Pyro's
    # store (as REAL-X's preset does); a second such pair must claim both names.
    x, y = torch.randn(4, D), torch.randint(3, (4,))
    pyro.clear_param_store()
    for _ in range(2):
        lex = make_lex()
        pretrain = LEX(
            lex.selector,
            lex.predictor,
            ConstantImputer(),
            IndependentBernoulli,
            CategoricalLikelihood(),
            name="pretrain",
        )
        pretrain.model(x, y)
        lex.model(x, y)
        store = pyro.get_param_store()
        assert store["lex.predictor$$$0.weight"] is lex.predictor[0].weight
        assert store["pretrain.predictor$$$0.weight"] is lex.predictor[0].weight
    pyro.clear_param_store()


@pytest.mark.parametrize("bayesian", [False, True])
def test_predict_in_chunks_averages_every_mask_once(bayesian, monkeypatch):
    # With few rows per call allowed, predict runs 100 masks in chunks (here of 3 and a last
    # of 1 mask): the result must be the plain mean of p(y | x~) over the 100 masks drawn.
    from lexppl.models import BayesianLEX
    from lexppl.models import lex as lex_module

    monkeypatch.setattr(lex_module, "_PREDICT_ROWS", 3 * N)

    class Recording(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.inputs = MLP(D, 3, (8,)), []

        def forward(self, x_tilde):
            self.inputs.append(x_tilde)
            return self.net(x_tilde)

    torch.manual_seed(0)
    predictor = Recording()
    parts = (MLP(D, D, (8,)), predictor, ConstantImputer(), IndependentBernoulli)
    model = (BayesianLEX if bayesian else LEX)(*parts, CategoricalLikelihood())
    x = torch.randn(N, D)
    if bayesian:
        model.init_guide(x)  # traces the model once
        predictor.inputs.clear()
        probs = model.predict(x, num_samples=100, num_weight_samples=2)
        draws = 200
    else:
        probs = model.predict(x, num_samples=100)
        draws = 100
    seen = torch.cat([rows.reshape(-1, N, D) for rows in predictor.inputs])
    assert seen.shape == (draws, N, D)
    expected = torch.softmax(predictor.net(seen), -1).mean(0)
    assert torch.allclose(probs, expected, atol=1e-6)
