import numpy as np
import pytest
import torch

pytest.importorskip("lime")

from lexppl.comparators import LIME


class TwoFeatures(torch.nn.Module):
    """p(y = 1 | x) = sigmoid(3 x_0 - 2 x_1): only features 0 and 1 matter."""

    def forward(self, x):
        logit = 3 * x[:, 0] - 2 * x[:, 1]
        return torch.stack([torch.sigmoid(-logit), torch.sigmoid(logit)], -1)


def test_features_of_the_model_rank_top():
    x = torch.randn(300, 6, generator=torch.Generator().manual_seed(0))
    lime = LIME(TwoFeatures(), x, num_samples=1000)
    masks = lime.select(x[:20], k=2)
    assert masks[:, :2].eq(1).all()


def test_numpy_black_box_and_continuous_features():
    x = torch.randn(300, 6, generator=torch.Generator().manual_seed(1))
    model = TwoFeatures()

    def predict_proba(inputs: np.ndarray) -> np.ndarray:
        return model(torch.as_tensor(inputs, dtype=torch.float32)).numpy()

    lime = LIME(predict_proba, x, num_samples=1000, discretize_continuous=False)
    scores = lime.attribute(x[:10], target=1)
    # Class 1 grows with x_0 and falls with x_1: the local linear fit has those signs.
    assert scores[:, 0].gt(0).all() and scores[:, 1].lt(0).all()
    assert scores[:, :2].abs().min() > scores[:, 2:].abs().max()


def test_seeded_lime_is_reproducible():
    x = torch.randn(100, 4, generator=torch.Generator().manual_seed(2))
    first = LIME(TwoFeatures(), x, num_samples=200, seed=3).attribute(x[:3])
    second = LIME(TwoFeatures(), x, num_samples=200, seed=3).attribute(x[:3])
    torch.testing.assert_close(first, second)


def test_bad_input_is_rejected():
    x = torch.randn(50, 4)
    lime = LIME(TwoFeatures(), x, num_samples=100)
    with pytest.raises(ValueError, match="has 5 features, but the explainer was built for 4"):
        lime.attribute(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="NaN"):
        lime.attribute(torch.tensor([[0.0, float("nan"), 0.0, 0.0]]))
    with pytest.raises(ValueError, match="class probabilities"):
        LIME(torch.nn.Linear(4, 2), x).attribute(x[:1])
    with pytest.raises(ValueError, match="num_samples must be an int >= 2"):
        LIME(TwoFeatures(), x, num_samples=0)


def test_a_random_state_seed_is_lime_s_own():
    x = torch.randn(100, 4, generator=torch.Generator().manual_seed(4))
    lime = LIME(TwoFeatures(), x, num_samples=200, seed=np.random.RandomState(0))
    assert lime.attribute(x[:2]).shape == (2, 4)


def test_a_rows_explanation_depends_on_that_row_only():
    # Seeded afresh per row: the same row gives the same scores alone, in a batch and when
    # explained again, so that max-sensitivity at radius 0 is 0.
    x = torch.randn(100, 4, generator=torch.Generator().manual_seed(4))
    lime = LIME(TwoFeatures(), x, num_samples=200, seed=5)
    batch = lime.attribute(x[:3])
    torch.testing.assert_close(lime.attribute(x[:3]), batch, rtol=0, atol=0)
    torch.testing.assert_close(lime.attribute(x[2:3]), batch[2:], rtol=0, atol=0)
