import math

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score
from torch import nn

from lexppl.data import TrueResponse, load
from lexppl.imputers import ConstantImputer, GaussianImputer, MarginalImputer
from lexppl.methods import EvalX
from lexppl.metrics import accuracy
from lexppl.models import BernoulliLikelihood
from lexppl.nets import MLP, ConvPredictor


@pytest.fixture(scope="module")
def s3_evalx():
    train, test = load("s3", "train", n=2000), load("s3", "test", n=2000)
    torch.manual_seed(0)
    evalx = EvalX(MLP(11, 2, hidden=(64, 64)))
    evalx.fit(train.x, train.y, epochs=8, batch_size=250, lr=1e-2, seed=0)
    return evalx, test


def _random_masks_like(truth, seed):
    # For each instance, a uniformly random subset with as many features as its true mask.
    g = torch.Generator().manual_seed(seed)
    ranks = torch.rand(truth.shape, generator=g).argsort(-1).argsort(-1)
    return (ranks < truth.sum(-1, keepdim=True)).float()


def test_evalx_true_masks_beat_random_masks_of_the_same_size(s3_evalx):
    evalx, test = s3_evalx
    random_masks = _random_masks_like(test.truth, seed=1)
    assert torch.equal(random_masks.sum(-1), test.truth.sum(-1))
    true_scores = evalx.score(test.x, test.y, test.truth)
    random_scores = evalx.score(test.x, test.y, random_masks)
    # Measured (n = 2000 train / 2000 test, 8 epochs of 250, 2 x 64 MLP, CPU): true masks
    # eACC 0.772, eAUROC 0.845; random 5-feature masks eACC 0.628, eAUROC 0.666
    # (S3 Bayes ceiling: ACC 0.823, AUROC 0.903; notes §4.4).
    assert true_scores["eacc"] > random_scores["eacc"] + 0.08
    assert true_scores["eauroc"] > random_scores["eauroc"] + 0.08
    assert true_scores["eacc"] > 0.72


def test_evalx_is_frozen_and_refuses_unfitted():
    evalx = EvalX(MLP(3, 2, hidden=(4,)))
    with pytest.raises(NotFittedError, match="not fitted"):
        evalx.predict_proba(torch.zeros(2, 3), torch.ones(2, 3))
    x, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    evalx.fit(x, y, epochs=1, batch_size=16)
    assert not any(p.requires_grad for p in evalx.parameters())
    assert not evalx.training


def test_decayed_parameters_limit_the_decay_to_the_parameters_returned():
    # One Adam step under a decay far above the loss gradient moves every decayed entry by lr
    # towards 0; a parameter spared by ``decayed_parameters`` follows the loss alone.
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    torch.manual_seed(0)
    evalx = EvalX(MLP(3, 2, hidden=(4,)))
    first, last = evalx.predictor[0].weight, evalx.predictor[-1].weight
    before_first, before_last = first.detach().clone(), last.detach().clone()
    evalx.fit(
        x,
        y,
        epochs=1,
        batch_size=16,
        lr=1e-4,
        weight_decay=1e4,
        decayed_parameters=lambda model: [model.predictor[0].weight],
    )
    assert (first.abs() < before_first.abs()).all()
    assert not (last.abs() < before_last.abs()).all()


def test_predict_proba_shapes_and_vectorisation(s3_evalx):
    evalx, test = s3_evalx
    x = test.x[:50]
    masks = torch.bernoulli(
        torch.full((3, 50, 11), 0.5), generator=torch.Generator().manual_seed(0)
    )
    probs = evalx.predict_proba(x, masks)
    assert probs.shape == (3, 50, 2)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, 50))
    # Vectorised over S = mask by mask, and chunked = unchunked.
    for s in range(3):
        torch.testing.assert_close(probs[s], evalx.predict_proba(x, masks[s]))
    torch.testing.assert_close(probs, evalx.predict_proba(x, masks, batch_size=60))
    # The masked-out features are imputed by 0 (the default ConstantImputer(0.0)).
    manual = torch.softmax(evalx.predictor(x * masks[0]), -1)
    torch.testing.assert_close(probs[0], manual)
    # Boolean masks work; soft masks and bad shapes are refused with a clear message.
    torch.testing.assert_close(evalx.predict_proba(x, masks[0].bool()), probs[0])
    with pytest.raises(ValueError, match="binary"):
        evalx.predict_proba(x, torch.full((50, 11), 0.5))
    with pytest.raises(ValueError, match="shape"):
        evalx.predict_proba(x, torch.ones(50, 10))


def test_eauroc_is_the_mean_of_per_mask_aurocs(s3_evalx):
    evalx, test = s3_evalx
    x, y = test.x[:400], test.y[:400]
    # S = 4 hard Bernoulli(1/2) mask samples (what the REAL-X code scores for its selector).
    masks = torch.bernoulli(
        torch.full((4, 400, 11), 0.5), generator=torch.Generator().manual_seed(2)
    )
    scores = evalx.score(x, y, masks)
    probs = evalx.predict_proba(x, masks).numpy()
    per_mask_auroc = [roc_auc_score(y.numpy(), probs[s, :, 1]) for s in range(4)]
    per_mask_acc = [np.mean(probs[s].argmax(-1) == y.numpy()) for s in range(4)]
    assert scores["eauroc"] == pytest.approx(np.mean(per_mask_auroc))
    assert scores["eacc"] == pytest.approx(np.mean(per_mask_acc))
    # ... which is not the AUROC of the mask-averaged probabilities in general.
    assert scores["eauroc"] != pytest.approx(roc_auc_score(y.numpy(), probs.mean(0)[:, 1]))


def _fixed_evaluator(weight, bias):
    # A linear evaluator with the given parameters, marked fitted without training.
    predictor = torch.nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        predictor.weight.copy_(torch.tensor(weight))
        predictor.bias.copy_(torch.tensor(bias))
    evalx = EvalX(predictor)
    evalx.fitted_.fill_(True)
    return evalx.requires_grad_(False).eval()


def test_log_likelihood_of_an_evaluator_that_ignores_its_input():
    # Logits (0, log 3) whatever the mask: p = (1/4, 3/4), so the mean log-likelihood of
    # labels (0, 1, 1, 1) is (log 1/4 + 3 log 3/4) / 4, exactly.
    evalx = _fixed_evaluator([[0.0, 0.0], [0.0, 0.0]], [0.0, math.log(3.0)])
    x, y = torch.randn(4, 2), torch.tensor([0, 1, 1, 1])
    expected = (math.log(0.25) + 3 * math.log(0.75)) / 4
    assert evalx.log_likelihood(x, y, num_masks=3) == pytest.approx(expected, rel=1e-6)


def test_log_likelihood_averages_over_bernoulli_half_masks():
    # One feature x = 1 and label 1; logits (0, 2 x): a kept feature gives log sigmoid(2), a
    # dropped one (0-imputed) log 1/2, each with probability 1/2 under eq. 5's masks. The
    # estimate is a mean of N * S such draws: its SE is |difference| / 2 / sqrt(N * S).
    evalx = _fixed_evaluator([[0.0], [2.0]], [0.0, 0.0])
    n, num_masks = 500, 8
    x, y = torch.ones(n, 1), torch.ones(n, dtype=torch.long)
    kept, dropped = math.log(1 / (1 + math.exp(-2.0))), math.log(0.5)
    expected = (kept + dropped) / 2
    se = abs(kept - dropped) / 2 / math.sqrt(n * num_masks)
    estimate = evalx.log_likelihood(x, y, num_masks=num_masks, seed=3)
    assert abs(estimate - expected) < 4 * se
    # The masks come from ``seed`` alone, whether drawn at once or in chunks of 3 masks.
    assert evalx.log_likelihood(x, y, num_masks=num_masks, seed=3) == estimate
    chunked = evalx.log_likelihood(x, y, num_masks=num_masks, seed=3, batch_size=3 * n)
    assert chunked == pytest.approx(estimate, rel=1e-6)


def test_fitted_evaluator_beats_the_label_prior_on_held_out_data(s3_evalx):
    # A constant predictor at the test labels' own frequency p scores
    # p log p + (1 - p) log(1 - p) (-0.692 on this test draw); the fitted evaluator, which sees
    # half the features on average, must do better on eq. 5. Measured: -0.635, a gap of 0.056;
    # the estimate's SE is about 0.01 (per-instance sd about 0.4 over 2,000 instances).
    evalx, test = s3_evalx
    p = test.y.float().mean().item()
    prior = p * math.log(p) + (1 - p) * math.log(1 - p)
    held_out = evalx.log_likelihood(test.x, test.y, num_masks=4)
    assert held_out > prior + 0.02


def test_log_likelihood_rejects_bad_arguments(s3_evalx):
    evalx, test = s3_evalx
    x, y = test.x[:10], test.y[:10]
    with pytest.raises(ValueError, match="num_masks"):
        evalx.log_likelihood(x, y, num_masks=0)
    with pytest.raises(ValueError, match="one label per row"):
        evalx.log_likelihood(x, y[:9])
    with pytest.raises(ValueError, match="class indices"):
        evalx.log_likelihood(x, torch.full((10,), 2))
    with pytest.raises(NotFittedError, match="not fitted"):
        EvalX(MLP(11, 2, hidden=(4,))).log_likelihood(x, y)


def test_evalx_takes_arrays_as_the_explainers_do_and_names_bad_input(s3_evalx):
    pandas = pytest.importorskip("pandas")
    evalx, test = s3_evalx
    x, y, masks = test.x[:50], test.y[:50], test.truth[:50]
    expected = evalx.score(x, y, masks)
    frame = pandas.DataFrame(x.double().numpy())  # float64, as pandas and numpy make them
    assert evalx.score(frame, pandas.Series(y.numpy()), masks.numpy()) == expected
    assert evalx.log_likelihood(x.double().numpy(), y.numpy()) == evalx.log_likelihood(x, y)
    soft = torch.nn.functional.one_hot(y, 2).float()  # (N, C) targets, as the metrics take
    assert evalx.score(x, soft, masks)["eacc"] == expected["eacc"]
    nan = x.clone()
    nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        evalx.score(nan, y, masks)
    with pytest.raises(ValueError, match="x contains NaN"):
        evalx.log_likelihood(nan, y)
    with pytest.raises(ValueError, match="integer class indices"):
        EvalX(MLP(11, 2, hidden=(4,))).fit(x, y + 0.5, epochs=1)
    with pytest.raises(ValueError, match=r"shape \(50,\)"):
        evalx.score(x, y[:10], masks)
    with pytest.raises(ValueError, match="Unknown device 'gpu'"):
        EvalX(MLP(11, 2, hidden=(4,))).fit(x, y, epochs=1, device="gpu")


def test_evalx_bernoulli_likelihood_and_custom_fill():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    y = (x[:, 0] > 0).float()
    evalx = EvalX(MLP(3, 1, hidden=(8,)), ConstantImputer(-5.0), BernoulliLikelihood())
    evalx.fit(x, y, epochs=2, batch_size=32)
    masks = torch.tensor([[1.0, 0.0, 1.0]]).expand(64, 3)
    probs = evalx.predict_proba(x, masks)
    assert probs.shape == (64, 2)
    manual = torch.sigmoid(evalx.predictor(torch.where(masks.bool(), x, -5.0)))[:, 0]
    torch.testing.assert_close(probs[:, 1], manual)
    assert set(evalx.score(x, y.long(), masks)) == {"eacc", "eauroc"}
    with pytest.raises(TypeError, match="likelihood"):
        EvalX(MLP(3, 1), likelihood=torch.nn.Identity())


def test_evalx_state_dict_round_trip(s3_evalx):
    evalx, test = s3_evalx
    restored = EvalX(MLP(11, 2, hidden=(64, 64)))
    restored.load_state_dict(evalx.state_dict())
    masks = test.truth[:20]
    torch.testing.assert_close(
        restored.predict_proba(test.x[:20], masks), evalx.predict_proba(test.x[:20], masks)
    )


def test_evalx_mask_as_input_feeds_the_mask_beside_the_imputed_input():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 3, generator=g), torch.randint(0, 2, (40,), generator=g)
    evalx = EvalX(MLP(6, 2, hidden=(8,)), mask_as_input=True).fit(x, y, epochs=1, batch_size=20)
    masks = (torch.rand(40, 3, generator=g) < 0.5).float()
    manual = torch.softmax(evalx.predictor(torch.cat([x * masks, masks], -1)), -1)
    torch.testing.assert_close(evalx.predict_proba(x, masks), manual)
    # (S, N, D) masks: each sample scored as its own (N, D) batch.
    stacked = torch.stack([masks, 1 - masks])
    flipped = evalx.predict_proba(x, 1 - masks)
    torch.testing.assert_close(evalx.predict_proba(x, stacked)[1], flipped)


def test_mask_as_input_tells_an_observed_zero_from_a_missing_feature():
    # y = x1 with x1 in {0, 1}. 0-imputed, a missing x1 looks like an observed 0, so the best
    # 0-imputed evaluator gives P(y=1 | shown 0) = P(missing, y=1) / P(shown 0) = 1/4 / 3/4
    # = 1/3 even when x1 = 0 was observed; seeing the mask, it can give ~0.
    g = torch.Generator().manual_seed(0)
    x1 = torch.randint(0, 2, (2000, 1), generator=g).float()
    x = torch.cat([x1, torch.randn(2000, 1, generator=g)], -1)
    y = x1[:, 0].long()
    observed_zero = (x1[:, 0] == 0) & (torch.arange(2000) < 200)
    masks = torch.ones(int(observed_zero.sum()), 2)
    p_one = {}
    for mask_as_input in (False, True):
        torch.manual_seed(0)
        evalx = EvalX(MLP(4 if mask_as_input else 2, 2, hidden=(32,)), mask_as_input=mask_as_input)
        evalx.fit(x, y, epochs=30, batch_size=200, lr=1e-2, seed=0)
        p_one[mask_as_input] = float(evalx.predict_proba(x[observed_zero], masks)[:, 1].mean())
    # Measured (seed 0, CPU): 0.368 without the mask, 0.001 with it.
    assert 0.2 < p_one[False] < 0.45, p_one
    assert p_one[True] < 0.05, p_one


def test_from_predictor_freezes_a_given_predictor_without_fitting():
    torch.manual_seed(0)
    predictor = torch.nn.Linear(3, 2)
    evaluator = EvalX.from_predictor(predictor)
    assert bool(evaluator.fitted_) and not evaluator.training
    assert not any(p.requires_grad for p in evaluator.parameters())
    x = torch.randn(5, 3)
    masks = torch.tensor([[1.0, 0.0, 1.0]]).expand(5, 3)
    expected = torch.softmax(predictor(x * masks), dim=-1)  # 0-imputed by default
    assert torch.allclose(evaluator.predict_proba(x, masks), expected)
    with pytest.raises(ValueError, match="needs a fitted imputer; fit the MarginalImputer"):
        EvalX.from_predictor(predictor, MarginalImputer())


def test_exact_evaluator_with_every_feature_is_the_bayes_classifier():
    data = load("s3", "test", seed=0, n=2000)
    exact = EvalX.from_predictor(TrueResponse("s3"), GaussianImputer())
    scores = exact.score(data.x, data.y, torch.ones_like(data.truth), num_imputations=2)
    assert scores["eacc"] == accuracy(data.probs, data.y)


def test_exact_evaluator_matches_quadrature_of_the_left_out_feature():
    # L2X's orange skin: P(y = 1 | x) = sigmoid(4 - x1^2 - ... - x4^2). With x4 left out,
    # F(y = 1 | x1..x3) = E_u sigmoid(4 - s - u^2), u ~ N(0, 1), s = x1^2 + x2^2 + x3^2:
    # 60-node Gauss-Hermite quadrature is exact to float precision here.
    data = load("orange", "test", seed=0, n=20)
    masks = torch.ones(20, 10)
    masks[:, 3] = 0.0
    exact = EvalX.from_predictor(TrueResponse("orange"), GaussianImputer())
    draws = 4000
    torch.manual_seed(0)
    estimate = exact.predict_proba(data.x, masks, num_imputations=draws)[:, 1].double()
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    weights = torch.from_numpy(weights / math.sqrt(2 * math.pi))
    s = data.x[:, :3].double().pow(2).sum(-1, keepdim=True)
    values = torch.sigmoid(4.0 - s - torch.from_numpy(nodes) ** 2)  # (20, 60)
    mean = values @ weights
    se = ((values**2 @ weights - mean**2).clamp_min(0) / draws).sqrt()
    # Each instance's Monte Carlo mean within 4 of its standard errors (float32 sums: 1e-6).
    assert ((estimate - mean).abs() <= 4 * se + 1e-6).all()
    # Leaving x4 out changes the answer wherever x4 is far from its expected square.
    full = torch.softmax(TrueResponse("orange")(data.x), -1)[:, 1].double()
    assert ((full - mean).abs() > 8 * se)[data.x[:, 3].pow(2).sub(1).abs() > 1].all()


@pytest.mark.parametrize("mask_as_input", [False, True])
def test_evalx_fits_and_scores_images(mask_as_input):
    # Images (N, C, H, W): the training masks are flat (N, C*H*W) and must be laid onto x, as
    # in scoring; with the mask as input, the predictor sees it as a second channel.
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 8, 8, generator=g)
    y = (x.mean((1, 2, 3)) > 0.5).long()
    torch.manual_seed(0)
    predictor = ConvPredictor(2 if mask_as_input else 1, 2, channels=(4,), image_size=(8, 8))
    evalx = EvalX(predictor, mask_as_input=mask_as_input).fit(x, y, epochs=2, batch_size=8)
    masks = (torch.rand(3, 16, 64, generator=g) < 0.5).float()
    assert set(evalx.score(x, y, masks)) == {"eacc", "eauroc"}
    # Flat masks and masks shaped like the images give the same probabilities.
    probs = evalx.predict_proba(x, masks[0])
    torch.testing.assert_close(evalx.predict_proba(x, masks[0].reshape(x.shape)), probs)
    imputed = x * masks[0].reshape(x.shape)
    inputs = torch.cat([imputed, masks[0].reshape(x.shape)], 1) if mask_as_input else imputed
    torch.testing.assert_close(probs, torch.softmax(evalx.predictor(inputs), -1))
    assert evalx.log_likelihood(x, y, num_masks=2) < 0.0


def test_evalx_takes_float64_tensors_with_a_float32_predictor_and_vice_versa():
    # Inputs are cast to the predictor's dtype, as LEXExplainer does for a black box.
    g = torch.Generator().manual_seed(0)
    x = torch.rand(32, 4, generator=g, dtype=torch.float64)
    y = (x[:, 0] > 0.5).long()
    masks = (torch.rand(32, 4, generator=g) < 0.5).float()
    fitted = []
    for inputs in (x, x.float()):
        torch.manual_seed(0)
        fitted.append(EvalX(MLP(4, 2, (8,))).fit(inputs, y, epochs=2, batch_size=16))
    for a, b in zip(*(evalx.parameters() for evalx in fitted)):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b)
    evalx = fitted[0]
    probs = evalx.predict_proba(x, masks)
    assert probs.dtype == torch.float32
    torch.testing.assert_close(probs, evalx.predict_proba(x.float(), masks))
    assert evalx.score(x, y, masks) == evalx.score(x.float(), y, masks)
    assert evalx.log_likelihood(x, y) == evalx.log_likelihood(x.float(), y)
    double = EvalX.from_predictor(MLP(4, 2, (8,)).double())
    assert double.predict_proba(x.float(), masks).dtype == torch.float64


def test_log_likelihood_seeds_the_imputations_and_leaves_the_global_rng_alone():
    # A multiple imputer draws from torch's global generator: seed gives the same value at
    # every call, a different seed another one, and the caller's RNG state is given back.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    evalx = EvalX.from_predictor(MLP(4, 2, (8,)), GaussianImputer().fit(x))
    before = torch.get_rng_state()
    first = evalx.log_likelihood(x, y, seed=0)
    assert torch.equal(torch.get_rng_state(), before)
    torch.rand(3)  # another global state: the value must not depend on it
    assert evalx.log_likelihood(x, y, seed=0) == first
    assert evalx.log_likelihood(x, y, seed=1) != first


def test_log_likelihood_draws_imputations_independent_of_the_masks():
    # q(y=1) = sigmoid(3 s), s the sum of the imputed N(0, 1) values at x = 0: s is symmetric, so
    # with the same draws log q(y=1) - log q(y=0) averages 3 mean(s), 0 up to Monte Carlo error
    # (SE 3 sqrt(Var s / (N M)), Var s = D / 2 dropped features on average). Imputations seeded
    # with the masks' own stream were biased: -7.1 against -1.2 nats.
    class ScaledSum(nn.Module):
        def forward(self, x):
            return 3 * x.sum(-1, keepdim=True)

    n, d, num_masks = 500, 10, 16
    x = torch.zeros(n, d)
    evalx = EvalX.from_predictor(ScaledSum(), GaussianImputer(), BernoulliLikelihood())
    ones = evalx.log_likelihood(x, torch.ones(n), num_masks=num_masks, seed=0)
    zeros = evalx.log_likelihood(x, torch.zeros(n), num_masks=num_masks, seed=0)
    se = 3 * math.sqrt(d / 2 / (n * num_masks))
    assert abs(ones - zeros) < 4 * se, (ones, zeros, se)
    # A negative seed is a seed too, as it was before the imputations had their own stream.
    assert evalx.log_likelihood(x, torch.ones(n), num_masks=2, seed=-1) < 0


def test_predict_proba_batch_size_counts_mask_samples_instances_and_imputations():
    torch.manual_seed(0)
    x = torch.randn(100, 4)
    predictor = MLP(4, 2, (8,))
    rows = []
    predictor.register_forward_hook(lambda module, inputs, output: rows.append(len(inputs[0])))
    evalx = EvalX.from_predictor(predictor, GaussianImputer().fit(x))
    masks = (torch.rand(20, 100, 4) < 0.5).float()
    # S * N * K = 20 * 100 * 8 imputed inputs in all, whichever way they are sliced.
    for batch_size in (200, 10, 3, np.int64(1600)):
        rows.clear()
        probs = evalx.predict_proba(x, masks, num_imputations=8, batch_size=batch_size)
        assert probs.shape == (20, 100, 2)
        assert max(rows) <= batch_size and sum(rows) == 20 * 100 * 8, (batch_size, rows[:3])
    with pytest.raises(ValueError, match="batch_size must be an int >= 1; got 0"):
        evalx.predict_proba(x, masks, batch_size=0)
    with pytest.raises(ValueError, match="num_imputations must be an int >= 1"):
        evalx.predict_proba(x, masks, num_imputations=0)


@pytest.mark.parametrize("mask_as_input", [False, True])
def test_predict_proba_in_slices_equals_predict_proba_at_once(mask_as_input):
    # A deterministic imputer gives the same probabilities however the S * N * K inputs are
    # sliced: by mask samples, by instances, or by imputations.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 3, generator=g)
    torch.manual_seed(0)
    predictor = MLP(6 if mask_as_input else 3, 2, (8,))
    evalx = EvalX.from_predictor(predictor, ConstantImputer(0.5), mask_as_input=mask_as_input)
    masks = (torch.rand(4, 7, 3, generator=g) < 0.5).float()
    whole = evalx.predict_proba(x, masks, num_imputations=3)
    for batch_size in (1, 2, 5, 21, 22, 60):
        sliced = evalx.predict_proba(x, masks, num_imputations=3, batch_size=batch_size)
        torch.testing.assert_close(sliced, whole)


def test_predict_proba_gives_each_submodule_its_own_mode_back():
    evalx = EvalX.from_predictor(MLP(3, 2, (4,), batch_norm=True))
    evalx.imputer.train()  # mixed modes, which one flag for the whole evaluator would lose
    evalx.predict_proba(torch.randn(5, 3), torch.ones(5, 3))
    assert evalx.imputer.training and not evalx.training and not evalx.predictor.training


def test_score_refuses_inputs_without_rows():
    evalx = EvalX.from_predictor(MLP(3, 2, (4,)))
    with pytest.raises(ValueError, match=r"x has no rows \(shape \(0, 3\)\)"):
        evalx.score(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), torch.zeros(0, 3))
    with pytest.raises(ValueError, match="x has no rows"):
        evalx.log_likelihood(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
