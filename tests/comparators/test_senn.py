import pytest
import torch

from lexppl.comparators import SENN


def two_feature_data(n=2000, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=generator)
    y = (3 * x[:, 0] - 2 * x[:, 1] > 0).long()
    return x, y


def test_forward_is_theta_times_x():
    torch.manual_seed(0)
    senn = SENN(4, 3, hidden=(8,), add_bias=False)
    x = torch.randn(5, 4)
    theta = senn.relevance(x)
    assert theta.shape == (5, 4, 3)
    torch.testing.assert_close(senn(x), (theta * x.unsqueeze(-1)).sum(1))


def test_forward_adds_the_constant_concepts_relevance():
    torch.manual_seed(0)
    senn = SENN(4, 3, hidden=(8,))
    x = torch.randn(5, 4)
    theta = senn.parametriser(x).reshape(5, 5, 3)  # features, then the constant
    torch.testing.assert_close(senn.relevance(x), theta[:, :4])
    torch.testing.assert_close(senn(x), (theta[:, :4] * x.unsqueeze(-1)).sum(1) + theta[:, 4])


def test_senn_explains_a_model_with_intercepts():
    # A linear softmax model with intercepts: its log-odds against class 0 have slopes
    # W_c - W_0. Without the constant concept f(0) = 0 for every class and the relevances
    # absorb the intercepts: relative error 1.67 here with add_bias=False, 0.17 with it.
    torch.manual_seed(0)
    linear = torch.nn.Linear(4, 3)
    with torch.no_grad():
        linear.bias.copy_(torch.tensor([2.0, -1.0, 0.0]))
    black_box = torch.nn.Sequential(linear, torch.nn.Softmax(-1))
    x, test_x = torch.randn(1000, 4), torch.randn(500, 4)
    senn = SENN(4, 3, hidden=(32,), robustness=0.1)
    senn.fit(x, black_box=black_box, epochs=15, batch_size=50, lr=3e-3)
    with torch.no_grad():
        theta = senn.relevance(test_x)
    contrasts = theta[..., 1:] - theta[..., :1]  # (N, D, C - 1)
    slopes = (linear.weight[1:] - linear.weight[:1]).detach().T.expand_as(contrasts)
    assert float((contrasts - slopes).norm() / slopes.norm()) < 0.4


def test_robustness_penalty_is_zero_for_constant_relevances():
    senn = SENN(4, 2, hidden=(8,))
    with torch.no_grad():  # theta(x) = bias: f is linear and its gradient is theta
        for layer in senn.parametriser:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.zero_()
        senn.parametriser[-1].bias.normal_()
    _, penalty = senn._penalty(torch.randn(7, 4))
    assert penalty.item() == pytest.approx(0.0, abs=1e-12)


def test_robustness_penalty_matches_autograd():
    torch.manual_seed(1)
    senn = SENN(3, 2, hidden=(8,))
    x = torch.randn(4, 3)
    jacobian = torch.func.vmap(torch.func.jacrev(lambda row: senn(row[None])[0]))(x)  # (N, C, D)
    expected = (jacobian - senn.relevance(x).transpose(1, 2)).pow(2).sum((1, 2)).mean()
    _, penalty = senn._penalty(x)
    torch.testing.assert_close(penalty, expected)


def test_senn_trained_on_labels_finds_the_relevant_features():
    x, y = two_feature_data()
    senn = SENN(6, 2, hidden=(32,)).fit(x, y, epochs=10, batch_size=100, lr=3e-3)
    test_x, test_y = two_feature_data(200, seed=1)
    accuracy = float((senn.predict_proba(test_x).argmax(-1) == test_y).float().mean())
    masks = senn.select(test_x, k=2)
    assert accuracy > 0.9
    assert float(masks[:, :2].mean()) > 0.9


def test_senn_mimics_a_black_box():
    x, _ = two_feature_data()

    def black_box(inputs):
        logit = 3 * inputs[:, 0] - 2 * inputs[:, 1]
        p = 1 / (1 + torch.exp(-torch.as_tensor(logit)))
        return torch.stack([1 - p, p], -1).numpy()

    senn = SENN(6, 2, hidden=(32,)).fit(x, black_box=black_box, epochs=10, lr=3e-3)
    assert float(senn.select(x[:200], k=2)[:, :2].mean()) > 0.9
    assert senn.losses_[-1] < senn.losses_[0]


def test_bad_input_is_rejected():
    x, y = two_feature_data(20)
    senn = SENN(6, 2, hidden=(8,))
    with pytest.raises(ValueError, match="exactly one of labels y or a black_box"):
        senn.fit(x)
    with pytest.raises(ValueError, match=r"y must hold integer class labels of shape \(20,\)"):
        senn.fit(x, y[:5])
    with pytest.raises(ValueError, match=r"y must be in \[0, 2\)"):
        senn.fit(x, y + 1)
    with pytest.raises(ValueError, match="got an array of <U1"):
        senn.fit(x, ["a", "b"] * 10)
    with pytest.raises(ValueError, match="has 5 features, but the explainer was built for 6"):
        senn.attribute(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="NaN"):
        senn.attribute(torch.full((2, 6), float("nan")))
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        SENN(6, 1)
    with pytest.raises(ValueError, match="SENN is not fitted"):
        senn.attribute(x)
    with pytest.raises(ValueError, match="SENN is not fitted"):
        senn.select(x, 2)
    fitted = SENN(6, 2, hidden=(8,)).fit(x, y, epochs=1)
    restored = SENN(6, 2, hidden=(8,))
    restored.load_state_dict(fitted.state_dict())  # a saved SENN loads as fitted
    torch.testing.assert_close(restored.attribute(x), fitted.attribute(x))
    older = {k: v for k, v in fitted.state_dict().items() if k != "fitted_"}  # before the flag
    restored = SENN(6, 2, hidden=(8,))
    restored.load_state_dict(older)
    torch.testing.assert_close(restored.attribute(x), fitted.attribute(x))


def test_weights_without_the_constant_concept_name_add_bias():
    x, y = two_feature_data(50)
    old = SENN(6, 2, hidden=(8,), add_bias=False).fit(x, y, epochs=1)
    with pytest.raises(RuntimeError, match=r"add_bias=False"):
        SENN(6, 2, hidden=(8,)).load_state_dict(old.state_dict())
    assert SENN(6, 2, (8,), 1e-2, "cpu").add_bias  # the arguments before it keep their places


def test_each_fit_starts_afresh_from_its_seed():
    import random

    x, y = two_feature_data(200)
    first = SENN(6, 2, hidden=(8,)).fit(x, y, epochs=2, seed=3)
    second = SENN(6, 2, hidden=(8,))  # its initial network draws from the caller's generator
    state = (torch.get_rng_state(), random.getstate())
    second.fit(x, y, epochs=2, seed=3)
    assert torch.equal(torch.get_rng_state(), state[0]) and random.getstate() == state[1]
    assert second.losses_ == first.losses_
    torch.testing.assert_close(second.attribute(x), first.attribute(x), rtol=0, atol=0)
    second.fit(x, y, epochs=2, seed=3)  # a refit trains a new network, not the fitted one
    assert second.losses_ == first.losses_
