import pytest
import torch

pytest.importorskip("captum")

from lexppl.comparators import InputXGradient, Saliency


@pytest.fixture
def linear():
    torch.manual_seed(0)
    return torch.nn.Linear(5, 3)


def test_input_x_gradient_of_a_linear_model_is_w_times_x(linear):
    x = torch.randn(8, 5)
    for c in range(3):
        expected = linear.weight[c].detach() * x
        torch.testing.assert_close(InputXGradient(linear).attribute(x, target=c), expected)


def test_default_target_is_the_predicted_class(linear):
    x = torch.randn(8, 5)
    predicted = linear(x).argmax(-1)
    expected = linear.weight.detach()[predicted] * x
    torch.testing.assert_close(InputXGradient(linear).attribute(x), expected)
    torch.testing.assert_close(InputXGradient(linear).attribute(x, target=predicted), expected)


def test_saliency_of_a_linear_model_is_abs_w(linear):
    x = torch.randn(4, 5)
    scores = Saliency(linear).attribute(x, target=2)
    torch.testing.assert_close(scores, linear.weight[2].detach().abs().expand(4, 5))
    masks = Saliency(linear).select(x, k=2, target=2)
    top = linear.weight[2].abs().topk(2).indices
    assert masks[:, top].eq(1).all() and masks.sum(-1).eq(2).all()


def test_gradient_comparators_reject_bad_input(linear):
    with pytest.raises(ValueError, match="NaN"):
        InputXGradient(linear).attribute(torch.full((2, 5), float("nan")))
    with pytest.raises(ValueError, match="must be a torch module"):
        Saliency(lambda x: x)
    with pytest.raises(ValueError, match=r"target must be in \[0, 3\)"):
        Saliency(linear).attribute(torch.zeros(2, 5), target=3)
    with pytest.raises(ValueError, match=r"shape \(N, \.\.\.\)"):
        Saliency(linear).attribute(torch.zeros(5))
    with pytest.raises(ValueError, match="numeric array"):
        Saliency(linear).attribute([["a"] * 5])


def test_gradient_comparators_take_arrays_like_the_other_comparators(linear):
    pandas = pytest.importorskip("pandas")
    x = torch.randn(4, 5)
    expected = InputXGradient(linear).attribute(x)
    for rows in (x.numpy().astype("float64"), pandas.DataFrame(x.numpy()), x.tolist()):
        torch.testing.assert_close(InputXGradient(linear).attribute(rows), expected)


@pytest.mark.parametrize("method", [InputXGradient, Saliency])
def test_a_model_in_training_mode_is_explained_in_eval_mode(method):
    # Batch norm in training mode would update its statistics and normalise each row by the
    # rest of the batch; the model is queried in eval mode and handed back in its own mode.
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4)).train()
    x = torch.randn(16, 5)
    statistics = model[1].running_mean.clone()
    scores = method(model).attribute(x)
    torch.testing.assert_close(model[1].running_mean, statistics, rtol=0, atol=0)
    assert model.training and model[1].training
    torch.testing.assert_close(method(model).attribute(x[:8]), scores[:8])
    torch.testing.assert_close(method(model.eval()).attribute(x), scores)
