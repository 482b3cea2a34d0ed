"""The worked examples of :mod:`lexppl.models.examples` train and find their relevant features.

TPR floors (k = 3 of D = 8 features, chance 3/8), measured with exactly these settings over
data/fit seeds 0-9 (regression), 0-5 (hierarchical) and 0-8 (Cox); each floor sits below the
worst seed:

- regression: TPR 0.859-0.995 (sigma 0.21-0.80) -> floor 0.80;
- hierarchical: TPR 0.959-0.998, centred group effects within 0.055 of the truth, tau
  0.80-2.48 -> floors 0.90, 0.3, 0.5;
- Cox: TPR 0.959-0.999 -> floor 0.90.

The Cox partial likelihood is checked by hand on a 6-datum batch with tied times (Breslow)
and on one without ties.
"""

import math

import pytest
import torch

from lexppl import fit, pretrain_predictor
from lexppl.infer import (
    EnumerateBound,
    PathwiseBound,
    RebarBound,
    ReinforceBound,
    RelaxBound,
    VimcoBound,
)
from lexppl.metrics import true_positive_rate
from lexppl.models.examples import (
    CoxLikelihood,
    CoxPartialLikelihood,
    HierarchicalLEX,
    explainable_cox,
    explainable_regression,
    fit_hierarchical,
    make_hierarchical_data,
    make_regression_data,
    make_survival_data,
)

D, K = 8, 3


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tpr(lex, x, truth):
    torch.manual_seed(0)
    return true_positive_rate(lex.explain(x, num_samples=20), truth)


def test_explainable_regression_finds_the_relevant_features():
    x, y, _ = make_regression_data(1000, seed=0)
    x_test, _, truth = make_regression_data(500, seed=100)
    torch.manual_seed(0)
    lex = explainable_regression(D, K)
    settings = dict(batch_size=250, lr=1e-2, weight_decay=0.0, seed=0)
    pretrain_predictor(lex, x, y, epochs=15, **settings)
    fit(lex, PathwiseBound(4), x, y, epochs=100, **settings)
    tpr = _tpr(lex, x_test, truth)
    print(f"regression TPR {tpr:.3f}, sigma {lex.likelihood.scale.item():.3f}")
    assert tpr >= 0.80
    assert lex.likelihood.scale.item() < 1.0  # the noise scale moved from its start at 1


def test_hierarchical_lex_finds_features_and_group_effects():
    x, y, groups, effects, _ = make_hierarchical_data(600, seed=0)
    torch.manual_seed(0)
    model = HierarchicalLEX(D, K, num_groups=6).init_from_data(y, groups)
    fit_hierarchical(model, PathwiseBound(4), x, y, groups, steps=400, warmup=100, lr=1e-2)
    x_test, _, _, _, truth = make_hierarchical_data(500, seed=100)
    tpr = _tpr(model.lex, x_test, truth)
    # The predictor's bias and mu trade off: only the centred effects are identified.
    error = (model.q_loc - model.q_loc.mean()) - (effects - effects.mean())
    print(f"hierarchical TPR {tpr:.3f}, max centred effect error {error.abs().max():.3f}")
    assert tpr >= 0.90
    assert error.abs().max() < 0.3
    assert model.tau.item() > 0.5  # partial pooling did not collapse the group scale


def test_hierarchical_model_has_a_global_term_in_the_bound():
    x, y, groups, _, _ = make_hierarchical_data(20, seed=1)
    model = HierarchicalLEX(D, K, num_groups=6)
    terms = PathwiseBound(2).bound_terms(model.model, model.guide, x, y, groups)
    assert terms.per_datum.shape == (20,)
    assert terms.global_term.requires_grad and terms.global_term.ne(0)
    terms.total.backward()
    assert model.q_loc.grad.abs().sum() > 0 and model.log_tau.grad is not None


def test_explainable_cox_finds_the_relevant_features():
    x, y, _ = make_survival_data(1000, seed=0)
    x_test, _, truth = make_survival_data(500, seed=100)
    torch.manual_seed(0)
    lex = explainable_cox(D, K)
    fit(lex, PathwiseBound(4), x, y, epochs=40, batch_size=250, lr=1e-2, weight_decay=0.0)
    tpr = _tpr(lex, x_test, truth)
    print(f"Cox TPR {tpr:.3f}")
    assert tpr >= 0.90


@pytest.mark.parametrize(
    "bound",
    [ReinforceBound(2), VimcoBound(2), RebarBound(2), RelaxBound(2), EnumerateBound()],
    ids=lambda bound: type(bound).__name__,
)
def test_cox_is_refused_by_bounds_that_pair_a_datum_with_its_own_masks(bound):
    # A Cox term depends on the masks of its whole risk set: these estimators would drop the
    # cross terms of the selector's gradient (enumeration even its value).
    x, y, _ = make_survival_data(20, seed=0)
    lex = explainable_cox(D, K)
    with pytest.raises(ValueError, match="couples the data"):
        bound.differentiable_loss(lex.model, lex.guide, x, y)


def test_cox_keeps_the_value_of_score_function_bounds_and_trains_pathwise():
    x, y, _ = make_survival_data(20, seed=0)
    lex = explainable_cox(D, K)
    with torch.no_grad():  # a value is fine: each datum's masks are drawn as the bound's are
        assert torch.isfinite(ReinforceBound(2).differentiable_loss(lex.model, lex.guide, x, y))
    loss = PathwiseBound(2).differentiable_loss(lex.model, lex.guide, x, y)
    loss.backward()
    assert all(p.grad is not None for p in lex.selector.parameters())


def _hand_cox(r, time, event):
    # Breslow: the risk set of i is every j with t_j >= t_i, ties included.
    terms = []
    for i in range(len(r)):
        if not event[i]:
            terms.append(0.0)
            continue
        den = sum(math.exp(r[j]) for j in range(len(r)) if time[j] >= time[i])
        terms.append(r[i] - math.log(den))
    return terms


@pytest.mark.parametrize(
    "time",
    [[2.0, 1.0, 2.0, 3.0, 1.0, 0.5], [2.5, 1.0, 2.0, 3.0, 1.5, 0.5]],
    ids=["ties", "no-ties"],
)
def test_cox_partial_likelihood_matches_a_hand_computation(time):
    r = [0.5, -1.0, 0.3, 2.0, 0.1, -0.4]
    event = [1, 1, 0, 1, 1, 0]
    y = torch.tensor([time, event], dtype=torch.float64).T
    log_prob = CoxPartialLikelihood(torch.tensor(r, dtype=torch.float64)).log_prob(y)
    expected = torch.tensor(_hand_cox(r, time, event), dtype=torch.float64)
    torch.testing.assert_close(log_prob, expected)
    # Particle batches: every row is scored with its own risk sets.
    rows = torch.tensor([r, [0.0] * 6, [1.0, 2.0, 3.0, -1.0, 0.0, 0.5]], dtype=torch.float64)
    batched = CoxLikelihood()(rows.unsqueeze(-1)).log_prob(y)
    assert batched.shape == (3, 6)
    for row, lp in zip(rows.tolist(), batched, strict=True):
        torch.testing.assert_close(lp, torch.tensor(_hand_cox(row, time, event)).to(lp))


def test_cox_partial_likelihood_rejects_bad_targets():
    cox = CoxPartialLikelihood(torch.zeros(3), validate_args=True)
    with pytest.raises(ValueError, match="shape"):
        cox.log_prob(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="0 or 1"):
        cox.log_prob(torch.tensor([[1.0, 2.0], [1.0, 0.0], [2.0, 1.0]]))


def test_cox_predict_says_why_it_cannot_sample():
    # LEX.predict draws y; a partial likelihood has no sampler, and torch's bare error is empty.
    x, _, _ = make_survival_data(5, seed=0)
    lex = explainable_cox(D, K)
    with pytest.raises(NotImplementedError, match=r"cannot be sampled.*LEX\.predict"):
        lex.predict(x, num_samples=2)
