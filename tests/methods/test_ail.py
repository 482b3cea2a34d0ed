import importlib
import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from lexppl.distributions import KSubset
from lexppl.imputers import ConstantImputer
from lexppl.infer import ConcreteBound
from lexppl.methods import AIL, AILConvNet, ail
from lexppl.methods.ail_meed import (
    flip_targets,
    gradient_x_input,
    merge_prior_logits,
    sliced_wasserstein,
    warm_start_weight,
)
from lexppl.models import PatchGrid, PixelGrid, SoftTargetLikelihood
from lexppl.models.groups import Identity

ail_module = importlib.import_module("lexppl.methods.ail_meed")
SMALL = dict(selector_hidden=(16,), approximator_hidden=(16,))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Logistic(nn.Module):
    """A fixed two-class black box: P(y = 1 | x) = sigmoid(w · x)."""

    def __init__(self, weights):
        super().__init__()
        self.linear = nn.Linear(len(weights), 1, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([weights]))

    def forward(self, x):
        p = torch.sigmoid(self.linear(x.flatten(1))).squeeze(-1)
        return torch.stack([1 - p, p], dim=-1)


# ---------------------------------------------------------------------------- the terms
def test_warm_start_weight_fades_as_one_over_epoch_plus_one():
    assert [warm_start_weight(m) for m in range(4)] == [1.0, 0.5, 1 / 3, 0.25]
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError):
            warm_start_weight(bad)


def test_merged_prior_is_equation_12():
    torch.manual_seed(0)
    logits, prior_scores = torch.randn(3, 6), torch.randn(3, 6)
    z, r = torch.softmax(logits, -1), torch.softmax(prior_scores, -1)
    for m in (1, 2, 5):
        unnormalised = (z**m * r) ** (1 / (m + 1))
        expected = unnormalised / unnormalised.sum(-1, keepdim=True)
        merged = torch.softmax(merge_prior_logits(logits, r.log(), m), -1)
        assert torch.allclose(merged, expected, atol=1e-6)
    assert torch.allclose(torch.softmax(merge_prior_logits(logits, r.log(), 0), -1), r)
    late = torch.softmax(merge_prior_logits(logits, r.log(), 10_000), -1)
    assert torch.allclose(late, z, atol=1e-3)


def test_flipped_targets():
    y = torch.tensor([[0.9, 0.1], [0.3, 0.7]])
    assert torch.allclose(flip_targets(y), torch.tensor([[0.1, 0.9], [0.7, 0.3]]))
    y3 = torch.tensor([[0.5, 0.3, 0.2]])
    assert torch.allclose(flip_targets(y3), torch.tensor([[0.25, 0.35, 0.4]]))
    with pytest.raises(ValueError):
        flip_targets(torch.ones(3))


def test_sliced_wasserstein_on_hand_built_batches():
    # One dimension: every direction is ±1 and SWD is the 1-Wasserstein distance between the
    # empirical distributions {0, 1, 2} and {1, 2, 3}, i.e. 1, whatever the order of the rows.
    p = torch.tensor([[2.0], [0.0], [1.0]])
    q = torch.tensor([[1.0], [3.0], [2.0]])
    assert sliced_wasserstein(p, q, num_projections=7).item() == pytest.approx(1.0)
    # A shift by c along one axis of R^2: the projection on θ moves by c·θ_1, so SWD is
    # c · E|θ_1| = c · 2/π for θ uniform on the circle; 20000 directions, tolerance 4 s.e.
    torch.manual_seed(0)
    a = torch.randn(50, 2)
    b = a + torch.tensor([3.0, 0.0])
    value = sliced_wasserstein(a, b, num_projections=20000).item()
    se = 3.0 * math.sqrt(0.5 - (2 / math.pi) ** 2) / math.sqrt(20000)
    assert abs(value - 3.0 * 2 / math.pi) < 4 * se
    assert sliced_wasserstein(a, a[torch.randperm(50)], 16).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        sliced_wasserstein(a, b[:10])
    with pytest.raises(ValueError):
        sliced_wasserstein(a, b, num_projections=0)


def test_gradient_x_input_matches_the_analytic_gradient():
    # M(x) = (1 - σ(w·x), σ(w·x)): ∂M_1/∂x = σ(1-σ) w and ∂M_0/∂x = -σ(1-σ) w.
    w = [1.0, -2.0, 0.5]
    black_box = Logistic(w)
    x = torch.tensor([[1.0, 0.5, -2.0], [-1.0, -1.0, 0.0]])
    s = torch.sigmoid(x @ torch.tensor(w))
    expected = (s * (1 - s)).unsqueeze(1) * (x * torch.tensor(w)).abs()
    assert torch.allclose(gradient_x_input(black_box, x), expected, atol=1e-6)
    # Images: summed over channels, then pooled over each group (here one group per pixel).
    images = torch.randn(2, 2, 2, 2)
    image_box = Logistic(torch.randn(8).tolist())
    per_feature = gradient_x_input(image_box, images.flatten(1)).reshape(2, 2, 2, 2)
    pooled = gradient_x_input(image_box, images, groups=PixelGrid((2, 2, 2)))
    assert torch.allclose(pooled, per_feature.sum(1).flatten(1), atol=1e-6)
    with pytest.raises(ValueError, match="torch module"):
        gradient_x_input(lambda x: x, x)


def test_gradient_x_input_pools_channel_level_and_patch_groupings():
    # Identity((C, H, W)) has a mask entry per channel and pixel, so its scores are the
    # per-feature ones; PatchGrid shares an entry by the channels of a patch: the channel sum of
    # the patch means. Both give one score per mask entry, (N, G).
    torch.manual_seed(0)
    shape = (2, 4, 4)
    images = torch.randn(3, *shape)
    black_box = Logistic(torch.randn(32).tolist())
    per_feature = gradient_x_input(black_box, images)
    by_feature = gradient_x_input(black_box, images, groups=Identity(shape))
    assert by_feature.shape == (3, 32)
    assert torch.allclose(by_feature, per_feature, atol=1e-7)
    patches = gradient_x_input(black_box, images, groups=PatchGrid(shape, 2))
    expected = per_feature.reshape(3, 2, 2, 2, 2, 2).mean(dim=(3, 5)).sum(1).flatten(1)
    assert patches.shape == (3, 4)
    assert torch.allclose(patches, expected, atol=1e-7)
    # The default GI prior of ail() with that grouping.
    method = ail(black_box, shape, 2, k=3, groups=Identity(shape), **SMALL)
    result = method.train(images, epochs=1, optimizer="adam")
    assert math.isfinite(result.losses[0])
    assert method.select(images).shape == (3, 32)


class TokenBox(nn.Module):
    """A text black box on token ids: an embedding of ``x.long()``, not differentiable in x."""

    def __init__(self, vocabulary=20):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, 4)
        self.linear = nn.Linear(4, 2)

    def forward(self, x):
        return torch.softmax(self.linear(self.embedding(x.long()).mean(1)), -1)


def test_gradient_x_input_names_a_black_box_not_differentiable_in_its_input():
    torch.manual_seed(0)
    x = torch.randint(0, 20, (8, 5)).float()
    black_box = TokenBox()
    message = "not differentiable in its input.*prior=None"
    with pytest.raises(ValueError, match=message):
        gradient_x_input(black_box, x)
    method = ail(black_box, 5, 2, k=2, **SMALL)
    with pytest.raises(ValueError, match=message):
        method.train(x, epochs=1, optimizer="adam")
    # Frozen weights: the output has no graph at all, same error.
    black_box.requires_grad_(False)
    with pytest.raises(ValueError, match=message):
        gradient_x_input(black_box, x)
    # The remedy the message gives.
    method = ail(black_box, 5, 2, k=2, prior=None, **SMALL)
    assert math.isfinite(method.train(x, epochs=1, optimizer="adam").losses[0])


def test_float64_black_box_on_float32_data():
    # The black box gets the data in its own precision; its outputs come back in the data's.
    torch.manual_seed(0)
    x = torch.randn(10, 3)
    weights = [1.0, -2.0, 0.5]
    black_box = Logistic(weights).double()
    probs = ail_module.black_box_probabilities(black_box, x)
    assert probs.dtype == torch.float32
    assert torch.allclose(probs, Logistic(weights)(x), atol=1e-6)
    scores = gradient_x_input(black_box, x)
    assert scores.dtype == torch.float32
    assert torch.allclose(scores, gradient_x_input(Logistic(weights), x), atol=1e-6)
    method = ail(black_box, 3, 2, k=1, **SMALL)
    assert math.isfinite(method.train(x, epochs=1, optimizer="adam").losses[0])
    assert method.select(x).shape == (10, 3)


# ---------------------------------------------------------------------------- the method
def test_ail_is_the_l2x_lex_model_with_an_output_conditioned_selector():
    torch.manual_seed(0)
    black_box = nn.Sequential(nn.Linear(4, 3), nn.Softmax(-1))
    method = ail(black_box, 4, 3, k=2, prior=None, **SMALL)
    assert isinstance(method, AIL) and method.name == "ail"
    assert isinstance(method.model.imputer, ConstantImputer)
    assert isinstance(method.model.likelihood, SoftTargetLikelihood)
    assert isinstance(method.model.mask_family(torch.zeros(1, 4)), KSubset)
    assert isinstance(method.bound, ConcreteBound) and method.bound.method == "max_of_k"
    assert method.bound.temperature == 0.5
    # L_s of AIL eq. 6 is exactly the concrete-bound loss of the LEX model (same noise).
    x = torch.randn(50, 4)
    y = black_box(x).detach()
    torch.manual_seed(1)
    bound_loss = method.bound.differentiable_loss(method.model.model, method.model.guide, x, y)
    torch.manual_seed(1)
    v = method.relaxed_mask(method.model.selector(x))
    assert torch.allclose(method.selected_loss(x, y, v).sum(), bound_loss)
    # The selector sees M(x): changing the black box changes the explainer's scores.
    before = method.scores(x[:5])
    with torch.no_grad():
        black_box[0].weight.mul_(-1.0)
    assert not torch.allclose(before, method.scores(x[:5]))
    # The black box is not part of the model's weights.
    assert not any(key.startswith("selector.black_box") for key in method.model.state_dict())


def test_shapes_flat_and_images():
    torch.manual_seed(0)
    x = torch.randn(40, 5)
    method = ail(Logistic([1.0, 0.0, 0.0, 0.0, 1.0]), (5,), 2, k=2, **SMALL)
    result = method.train(x, epochs=2, batch_size=20, optimizer="adam")
    assert result.epochs_run == 2 and len(result.selected_losses) == 2
    assert all(math.isfinite(v) for v in result.losses + result.complement_losses)
    masks = method.select(x)
    assert masks.shape == (40, 5) and (masks.sum(1) == 2).all()
    assert method.scores(x).shape == (40, 5)
    assert torch.allclose(method.importance(x).sum(1), torch.full((40,), 2.0), atol=1e-4)

    images = torch.rand(16, 1, 8, 8)
    net = AILConvNet((1, 8, 8), 2)
    black_box = nn.Sequential(net, nn.Softmax(-1)).eval()
    method = ail(black_box, (1, 8, 8), 2, k=5, adversarial_loss="sliced_wasserstein")
    assert isinstance(method.model.groups, PixelGrid)
    result = method.train(images, epochs=1, batch_size=8)
    assert math.isfinite(result.losses[0])
    masks = method.select(images)
    assert masks.shape == (16, 64) and (masks.sum(1) == 5).all()
    assert method.model.importance_map(images).shape == (16, 1, 8, 8)
    assert not black_box.training  # queried in eval mode and left as it was


def test_callable_black_box_returning_numpy_probabilities():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4)).astype(np.float32)
    clf = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    method = ail(clf.predict_proba, 4, 2, k=1, prior=None, **SMALL)
    result = method.train(torch.as_tensor(X), epochs=1, batch_size=100, optimizer="adam")
    assert math.isfinite(result.losses[0])
    assert method.select(torch.as_tensor(X[:3])).shape == (3, 4)
    with pytest.raises(ValueError, match="gradient_x_input"):
        ail(clf.predict_proba, 4, 2, k=1)


def _copies_problem(n, seed):
    # x1 is a copy of x0; M(x) = σ(4 x0 + x2). With k = 2, {x0, x2} or {x1, x2} predict M best,
    # but leave the copy in the complement; {x0, x1} leaves only the weak x2 there.
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    x[:, 1] = x[:, 0]
    return x


def test_adversarial_term_moves_the_redundant_copy_into_the_selection():
    x, x_test = _copies_problem(1000, 0), _copies_problem(500, 1)
    black_box = Logistic([4.0, 0.0, 1.0, 0.0])
    both_copies = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        method = ail(black_box, 4, 2, k=2, adversarial_weight=weight, prior=None, **SMALL)
        method.train(x, epochs=12, batch_size=100, optimizer="adam", lr=1e-2, seed=0)
        masks = method.select(x_test)
        both_copies[weight] = ((masks[:, 0] == 1) & (masks[:, 1] == 1)).float().mean().item()
    # Measured (seed 0, 1 thread): 0.0 without the adversary, 1.0 with it.
    assert both_copies[1.0] > 0.9
    assert both_copies[0.0] < 0.5


def test_training_uses_the_epoch_schedule_of_the_warm_start(monkeypatch):
    seen = []
    real = ail_module.merge_prior_logits
    monkeypatch.setattr(
        ail_module, "merge_prior_logits", lambda l, p, m: seen.append(m) or real(l, p, m)
    )
    torch.manual_seed(0)
    x = torch.randn(30, 3)
    method = ail(Logistic([1.0, -1.0, 0.0]), 3, 2, k=1, prior_loss_weight=0.1, **SMALL)
    method.train(x, epochs=3, batch_size=15, optimizer="adam")
    # Two batches per epoch, two steps (approximators, explainer) per batch: m = 1, 2, 3.
    assert seen == [1] * 4 + [2] * 4 + [3] * 4


def test_the_prior_steers_the_first_epoch():
    # A prior concentrated on feature 2: at m = 1 the sampler's masks (eq. 12) pick it, while
    # the untrained explainer's own scores do not favour it.
    torch.manual_seed(0)
    x = torch.randn(200, 4)
    prior = lambda x: torch.tensor([0.0, 0.0, 20.0, 0.0]).expand(x.shape[0], 4)  # noqa: E731
    method = ail(Logistic([1.0, 1.0, 1.0, 1.0]), 4, 2, k=1, prior=prior, **SMALL)
    y = ail_module.black_box_probabilities(method.black_box, x)
    log_prior = method._prior_logits(x)
    logits = method.explainer(x, y).detach()
    merged = merge_prior_logits(logits, log_prior, 1)
    with_prior = method.relaxed_mask(merged).argmax(1)
    without = method.relaxed_mask(logits).argmax(1)
    assert (with_prior == 2).float().mean() > 0.95
    assert (without == 2).float().mean() < 0.6


def test_black_box_weights_are_not_trained():
    torch.manual_seed(0)
    black_box = Logistic([1.0, 2.0, 3.0])
    black_box.train()
    method = ail(black_box, 3, 2, k=1, **SMALL)
    method.train(torch.randn(20, 3), epochs=1, batch_size=10, optimizer="adam")
    assert torch.equal(black_box.linear.weight, torch.tensor([[1.0, 2.0, 3.0]]))
    assert black_box.training


@pytest.mark.parametrize(
    "build",
    [
        lambda bb: ail(bb, 3, 2, k=0),
        lambda bb: ail(bb, 3, 2, k=4),
        lambda bb: ail(bb, 3, 1, k=1),
        lambda bb: ail(bb, (3, 2), 2, k=1),
        lambda bb: ail(bb, 3, 2, k=1, adversarial_loss="wasserstein"),
        lambda bb: ail(bb, 3, 2, k=1, adversarial_weight=-1.0),
        lambda bb: ail(bb, 3, 2, k=1, prior_loss_weight=-0.1),
        lambda bb: ail(bb, 3, 2, k=1, temperature=0.0),
        lambda bb: ail(bb, 3, 2, k=1, num_projections=0),
        lambda bb: ail(bb, 3, 2, k=1, prior="smoothgrad"),
        lambda bb: ail("not callable", 3, 2, k=1),
    ],
)
def test_bad_arguments_raise_value_error(build):
    with pytest.raises(ValueError):
        build(Logistic([1.0, 0.0, 0.0]))


def test_bad_training_inputs_raise_value_error():
    method = ail(Logistic([1.0, 0.0, 0.0]), 3, 2, k=1, prior=None, **SMALL)
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="shape"):
        method.train(torch.randn(10, 4), epochs=1)
    with pytest.raises(ValueError, match="NaN"):
        method.train(torch.full((10, 3), float("nan")), epochs=1)
    with pytest.raises(ValueError, match="labels"):
        method.train(x, torch.zeros(10, dtype=torch.long), epochs=1)
    with pytest.raises(ValueError, match="probabilities"):
        method.train(x, torch.ones(10, 2), epochs=1)
    with pytest.raises(ValueError, match="num_classes"):
        method.train(x, torch.full((10, 3), 1 / 3), epochs=1)
    with pytest.raises(ValueError, match="optimizer"):
        method.train(x, epochs=1, optimizer="sgd")
    with pytest.raises(ValueError, match="epochs"):
        method.train(x, epochs=0)
    bad_prior = ail(Logistic([1.0, 0.0, 0.0]), 3, 2, k=1, prior=lambda x: x[:, :2], **SMALL)
    with pytest.raises(ValueError, match="prior"):
        bad_prior.train(x, epochs=1)
    logits_box = ail(nn.Linear(3, 2), 3, 2, k=1, prior=None, **SMALL)
    with pytest.raises(ValueError, match="softmax"):
        logits_box.train(x, epochs=1)


def test_scores_with_the_clean_output_kept_fixed():
    torch.manual_seed(0)
    black_box = Logistic([2.0, -1.0, 0.0])
    method = ail(black_box, 3, 2, k=1, prior=None, **SMALL)
    x = torch.randn(5, 3)
    y = ail_module.black_box_probabilities(black_box, x)
    assert torch.allclose(method.scores(x, y), method.scores(x))
    shifted = x + 0.5
    fixed = method.scores(shifted, y)
    assert torch.allclose(fixed, method.explainer(shifted, y))
    assert not torch.allclose(fixed, method.scores(shifted))
    with pytest.raises(ValueError, match="shape"):
        method.scores(x, y[:3])
