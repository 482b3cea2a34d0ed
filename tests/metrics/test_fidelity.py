import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression

from lexppl.metrics import (
    agreement_per_sample,
    black_box_fidelity,
    explanation_similarity_per_instance,
    explanation_time,
    fs_a,
    fs_m,
    fu_a,
    fu_m,
    mask_inputs,
    max_sensitivity,
    max_sensitivity_per_instance,
    model_randomisation_check,
    posthoc_accuracy,
    uniform_perturbations,
)

FULL = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])  # decisions 0, 1, 0, 1


# ----------------------------------------------------------------------------- FS-M / FU-M
def test_posthoc_accuracy_is_one_when_decisions_agree():
    # Different probabilities, same argmax 0, 1, 0, 1 -> 4 of 4 agree.
    selected = torch.tensor([[0.6, 0.4], [0.1, 0.9], [0.99, 0.01], [0.45, 0.55]])
    assert posthoc_accuracy(FULL, selected) == 1.0
    assert fs_m is posthoc_accuracy


def test_posthoc_accuracy_half_when_half_differ():
    # Decisions 0, 0, 1, 1 vs full 0, 1, 0, 1: instances 0 and 3 agree -> 2 / 4 = 0.5.
    selected = torch.tensor([[0.7, 0.3], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8]])
    assert posthoc_accuracy(FULL, selected) == 0.5


def test_posthoc_accuracy_averages_over_mask_samples():
    # Sample 1 agrees on 4 / 4, sample 2 on 1 / 4 (only instance 0): mean (1 + 0.25) / 2.
    selected = torch.stack([FULL, torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.1]])])
    torch.testing.assert_close(
        agreement_per_sample(FULL, selected), torch.tensor([1.0, 0.25], dtype=torch.float64)
    )
    assert posthoc_accuracy(FULL, selected) == pytest.approx(0.625)
    # Decisions may be given instead of probabilities; numpy works too.
    assert posthoc_accuracy(np.array([0, 1, 0, 1]), selected.numpy()) == pytest.approx(0.625)


def test_agreement_rejects_bad_shapes():
    with pytest.raises(ValueError, match="probs_masked"):
        posthoc_accuracy(FULL, torch.rand(3, 2))
    with pytest.raises(ValueError, match="probs_full"):
        posthoc_accuracy(torch.rand(2, 4, 2), torch.rand(4, 2))
    with pytest.raises(ValueError, match="NaN"):
        posthoc_accuracy(FULL, torch.full((4, 2), float("nan")))


def _black_box(x):
    # Logistic model that only uses feature 0: P(y = 1) = sigmoid(4 x0).
    p = torch.sigmoid(4 * x[..., 0])
    return torch.stack([1 - p, p], -1)


def test_fu_m_direction():
    # Inputs where feature 0 decides the class (x0 = ±1); features 1, 2 are noise.
    x = torch.tensor([[1.0, 5.0, -3.0], [-1.0, 2.0, 4.0], [1.0, -2.0, 1.0], [-1.0, 0.5, 0.5]])
    good = torch.tensor([[1.0, 0.0, 0.0]]).expand(4, 3)  # selects the informative feature
    bad = torch.tensor([[0.0, 1.0, 1.0]]).expand(4, 3)  # selects only noise
    good_scores = black_box_fidelity(_black_box, x, good)
    bad_scores = black_box_fidelity(_black_box, x, bad)
    # Good: x ⊙ s keeps x0 -> same decisions, FS-M = 1. x ⊙ (1 - s) zeroes x0 -> P = 0.5 for
    # all, argmax 0 (first index on ties): agrees only for the 2 class-0 instances, FU-M = 0.5.
    assert good_scores == {"fs_m": 1.0, "fu_m": 0.5}
    # Bad: the reverse: FS-M = 0.5 and FU-M = 1 (removing noise leaves the decision intact).
    assert bad_scores == {"fs_m": 0.5, "fu_m": 1.0}
    # Lower FU-M is better: the explanation that removes the informative feature has LOW FU-M.
    assert good_scores["fu_m"] < bad_scores["fu_m"]
    # fu_m on precomputed probabilities gives the same number.
    unselected = _black_box(mask_inputs(x, good, complement=True))
    assert fu_m(_black_box(x), unselected) == 0.5


def test_black_box_fidelity_vectorised_over_samples_and_batches():
    x = torch.tensor([[1.0, 5.0, -3.0], [-1.0, 2.0, 4.0]])
    masks = torch.tensor([[[1.0, 0, 0], [1, 0, 0]], [[0, 1, 1], [0, 1, 1]]])  # (S=2, N=2, D=3)
    # Sample 1: FS-M 1, FU-M 0.5; sample 2: FS-M 0.5, FU-M 1 -> means 0.75 and 0.75.
    assert black_box_fidelity(_black_box, x, masks, batch_size=3) == {"fs_m": 0.75, "fu_m": 0.75}


def test_fidelity_of_a_label_black_box_equals_that_of_its_probabilities():
    # A 1-D output is a class decision (e.g. sklearn's predict), not one column whose argmax
    # would always be 0.
    x = torch.tensor([[1.0, 5.0, -3.0], [-1.0, 2.0, 4.0], [1.0, -2.0, 1.0], [-1.0, 0.5, 0.5]])
    masks = torch.tensor([[[1.0, 0, 0]] * 4, [[0.0, 1, 1]] * 4])  # (S=2, N=4, D=3)
    by_label = black_box_fidelity(lambda v: _black_box(v).argmax(-1), x, masks)
    assert by_label == black_box_fidelity(_black_box, x, masks)
    assert by_label == {"fs_m": 0.75, "fu_m": 0.75}


def test_fidelity_rejects_ambiguous_or_mismatched_outputs():
    p1 = FULL[:, 1].numpy()  # P(y = 1), 1-D: not class labels
    with pytest.raises(ValueError, match="integer class labels"):
        posthoc_accuracy(p1, FULL)
    with pytest.raises(ValueError, match="integer class labels"):
        fu_m(FULL, p1)
    with pytest.raises(ValueError, match="same number of classes"):
        fu_m(FULL, torch.cat([FULL, FULL], 1))
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="integer class labels"):
        black_box_fidelity(lambda v: _black_box(v)[:, 1], x, torch.ones(4, 3))
    with pytest.raises(ValueError, match=r"black_box must map inputs \(4, ...\)"):
        black_box_fidelity(lambda v: _black_box(v)[:2], x, torch.ones(4, 3))
    x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        black_box_fidelity(_black_box, x, torch.ones(4, 3))


def test_fidelity_refuses_a_single_output_column():
    # The argmax of one column is always 0: every decision would agree (FS-M = FU-M = 1).
    with pytest.raises(ValueError, match="one output column"):
        posthoc_accuracy(FULL[:, 1:], FULL[:, 1:])
    with pytest.raises(ValueError, match="one output column"):
        fu_m(FULL.argmax(-1), FULL[:, 1:])
    with pytest.raises(ValueError, match="one output column"):
        black_box_fidelity(lambda v: _black_box(v)[:, 1:], torch.randn(4, 3), torch.ones(4, 3))


def test_fidelity_queries_a_torch_black_box_in_eval_mode_on_its_dtype():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2), torch.nn.Softmax(-1)
    ).train()
    x, masks = torch.randn(8, 3), torch.bernoulli(torch.full((5, 8, 3), 0.5))
    statistics = net[1].running_mean.clone()
    scores = black_box_fidelity(net, x, masks, batch_size=3)
    torch.testing.assert_close(net[1].running_mean, statistics, rtol=0, atol=0)
    assert net.training and scores == black_box_fidelity(net.eval(), x, masks)
    assert black_box_fidelity(net.double(), x, masks) == scores


def test_fidelity_takes_float64_arrays_as_float32_inputs():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Softmax(-1))  # float32 weights
    x = np.random.default_rng(0).normal(size=(6, 3))  # float64, as numpy makes them
    assert black_box_fidelity(net, x, np.ones((6, 3)))["fs_m"] == 1.0
    assert max_sensitivity(net, x, num_draws=3) >= 0.0


def test_mask_inputs_fill_and_complement():
    x = torch.tensor([[1.0, 2.0, 3.0]])
    s = torch.tensor([[1.0, 0.0, 1.0]])
    torch.testing.assert_close(mask_inputs(x, s), torch.tensor([[1.0, 0.0, 3.0]]))
    torch.testing.assert_close(mask_inputs(x, s, fill=-1.0), torch.tensor([[1.0, -1.0, 3.0]]))
    torch.testing.assert_close(mask_inputs(x, s, complement=True), torch.tensor([[0.0, 2.0, 0.0]]))
    # Image-shaped inputs take flat (N, D) masks.
    img = torch.arange(4.0).reshape(1, 2, 2)
    torch.testing.assert_close(
        mask_inputs(img, torch.tensor([[0.0, 1, 1, 0]])), torch.tensor([[[0.0, 1], [2, 0]]])
    )
    with pytest.raises(ValueError, match="binary"):
        mask_inputs(x, torch.full((1, 3), 0.5))
    with pytest.raises(ValueError, match="shape"):
        mask_inputs(x, torch.ones(1, 4))


# ----------------------------------------------------------------------------- FS-A / FU-A
def _retrain_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] > 0).long()  # the "black box" decision: sign of feature 0
    return x, torch.nn.functional.one_hot(y, 2).float()


def test_fs_a_fu_a_by_informativeness():
    x_tr, m_tr = _retrain_data(400, 0)
    x_te, m_te = _retrain_data(200, 1)
    informative = torch.tensor([1.0, 0, 0, 0]).expand(400, 4)
    informative_te = torch.tensor([1.0, 0, 0, 0]).expand(200, 4)
    # Retrained on feature 0 alone, logistic regression recovers sign(x0): FS-A ≈ 1.
    assert fs_a(x_tr, informative, m_tr, x_te, informative_te, m_te) > 0.97
    # Retrained on features 1-3 (independent of y): chance level, FU-A ≈ 0.5 (lower = better).
    assert fu_a(x_tr, informative, m_tr, x_te, informative_te, m_te) < 0.65
    # A custom sklearn factory works the same.
    factory = lambda: LogisticRegression(max_iter=200)  # noqa: E731
    assert fs_a(x_tr, informative, m_tr, x_te, informative_te, m_te, factory) > 0.97


def test_fs_a_with_torch_factory_and_soft_targets():
    x_tr, m_tr = _retrain_data(400, 0)
    x_te, m_te = _retrain_data(200, 1)
    masks_tr = torch.tensor([1.0, 0, 0, 0]).expand(400, 4)
    masks_te = torch.tensor([1.0, 0, 0, 0]).expand(2, 200, 4)  # S = 2 test samples
    soft = 0.8 * m_tr + 0.1  # soft black-box outputs, e.g. (0.9, 0.1)

    def factory():
        torch.manual_seed(0)
        return torch.nn.Linear(4, 2)

    score = fs_a(x_tr, masks_tr, soft, x_te, masks_te, m_te, factory, epochs=10, lr=0.05)
    assert score > 0.95
    # Logits as soft targets would weight the cross-entropy negatively: refused.
    with pytest.raises(ValueError, match="must be class probabilities"):
        fs_a(x_tr, masks_tr, soft.log(), x_te, masks_te, m_te, factory, epochs=1)
    # The number of classes is the approximator's, even when the training labels miss one.
    three = lambda: torch.nn.Linear(4, 3)  # noqa: E731
    labels_tr, labels_te = m_tr.argmax(-1), m_te.argmax(-1)
    score = fs_a(x_tr, masks_tr, labels_tr, x_te, masks_te, labels_te, three, epochs=10, lr=0.05)
    assert score > 0.9
    with pytest.raises(ValueError, match="returns 3 logits per row, but the targets have 4"):
        fs_a(x_tr, masks_tr, labels_tr + 2, x_te, masks_te, labels_te, three, epochs=1)


# ----------------------------------------------------------------------------- SEN
def test_uniform_perturbations_range_and_seed():
    x = torch.zeros(3, 2)
    d = uniform_perturbations(x, 0.2, 50, seed=1)
    assert d.shape == (50, 3, 2)
    assert float(d.abs().max()) <= 0.2
    torch.testing.assert_close(d, uniform_perturbations(x, 0.2, 50, seed=1))


def test_max_sensitivity_takes_the_max_not_the_last_draw():
    x = torch.zeros(1, 2)
    radius, draws, seed = 1.0, 20, 3
    delta = uniform_perturbations(x, radius, draws, seed)[:, 0, 0]  # feature 0 of each draw
    top2 = delta.topk(2).values
    threshold = float(top2.mean())  # between the largest and the second largest δ_0
    winner = int(delta.argmax())
    assert winner != draws - 1  # the spike is not on the last draw

    def explain(z):
        # E(x') = 10 if x'_0 > threshold else 0: E(0) = 0, so only the winning draw changes E,
        # by ||(10, 10) - 0||_2 = 10 √2; every other draw (including the last) changes it by 0.
        return 10.0 * (z > threshold).any(-1, keepdim=True).float().expand(-1, 2)

    assert max_sensitivity(explain, x, radius, draws, seed) == pytest.approx(10 * 2**0.5)
    # The AIL code's "last sample" would give the last draw's change: 0.
    last = torch.linalg.vector_norm(explain(x + delta[-1]) - explain(x))
    assert float(last) == 0.0


def test_max_sensitivity_identity_by_hand():
    # E = identity: the change of draw j is ||δ_j||; SEN = max_j ||δ_j||, per instance.
    x = torch.randn(4, 3)
    delta = uniform_perturbations(x, 0.2, 10, seed=0)
    expected = torch.linalg.vector_norm(delta, dim=-1).amax(0).to(torch.float64)
    got = max_sensitivity_per_instance(lambda z: z, x, 0.2, 10, seed=0, batch_size=7)
    torch.testing.assert_close(got, expected)
    # Relative (AIL): divided by ||E(x_i)||.
    rel = max_sensitivity_per_instance(lambda z: z, x, 0.2, 10, seed=0, relative=True)
    torch.testing.assert_close(rel, expected / torch.linalg.vector_norm(x.double(), dim=-1))
    # A constant explanation is perfectly robust.
    assert max_sensitivity(lambda z: torch.ones_like(z), x) == 0.0


# ----------------------------------------------------------------------------- time
def test_explanation_time_positive():
    x = torch.randn(8, 5)
    seconds = explanation_time(lambda z: torch.softmax(z @ torch.ones(5, 5), -1), x, repeats=3)
    assert seconds > 0
    with pytest.raises(ValueError, match="repeats"):
        explanation_time(lambda z: z, x, repeats=0)


# ----------------------------------------------------------------------------- sanity check
def test_model_randomisation_check():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 10, generator=g)
    w_trained = torch.randn(10, 10, generator=g)
    w_random = torch.randn(10, 10, generator=g)

    def trained(z):
        return (z @ w_trained).abs()

    def randomised(z):
        return (z @ w_random).abs()

    # Identical explainers: Spearman 1 for every instance.
    assert model_randomisation_check(trained, trained, x) == pytest.approx(1.0)
    # An explainer of an unrelated (randomised) model: near 0, far below 1.
    assert abs(model_randomisation_check(trained, randomised, x)) < 0.2
    # A monotone transform keeps the ranks: still 1 (rank correlation, not Pearson).
    assert model_randomisation_check(trained, lambda z: trained(z) ** 3, x) == pytest.approx(1.0)


def test_similarity_matches_scipy_and_cosine_by_hand():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.1, 0.5, 0.5, 0.2]])
    b = torch.tensor([[4.0, 3.0, 1.0, 2.0], [0.3, 0.1, 0.9, 0.9]])
    got = explanation_similarity_per_instance(a, b)
    expected = [spearmanr(a[i], b[i]).statistic for i in range(2)]  # ties averaged
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))
    # Cosine of binary masks (AIL): (1,1,0,0)·(1,0,1,0) = 1, norms √2·√2 -> 0.5.
    masks_a = torch.tensor([[1.0, 1, 0, 0]])
    masks_b = torch.tensor([[1.0, 0, 1, 0]])
    assert float(
        explanation_similarity_per_instance(masks_a, masks_b, "cosine")[0]
    ) == pytest.approx(0.5)
    # Constant explanations are undefined for Spearman.
    assert torch.isnan(explanation_similarity_per_instance(torch.ones(1, 3), a[:1, :3])).all()
    with pytest.raises(ValueError, match="undefined"):
        model_randomisation_check(torch.ones_like, torch.ones_like, torch.randn(2, 3))
    with pytest.raises(ValueError, match="method"):
        explanation_similarity_per_instance(a, b, "pearson")


def test_gradient_explainers_work_with_autograd():
    # Saliency |∂f/∂x| of f(x) = sum(x^2) is 2|x|: the metrics must not disable autograd.
    def saliency(z):
        z = z.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad((z**2).sum(), z)
        return grad.abs()

    x = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    # Each δ coordinate is within ±0.1, so 2|x + δ| changes by at most 0.2 per coordinate.
    assert 0 < max_sensitivity(saliency, x, radius=0.1, num_draws=5) <= 0.2 * 2**0.5
    assert explanation_time(saliency, x, repeats=2) > 0
    assert model_randomisation_check(saliency, saliency, x) == pytest.approx(1.0)
