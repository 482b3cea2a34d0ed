import numpy as np
import pytest
import torch

pytest.importorskip("shap")

from lexppl.comparators import KernelSHAP


class TwoFeatures(torch.nn.Module):
    """p(y = 1 | x) = sigmoid(3 x_0 - 2 x_1): only features 0 and 1 matter."""

    def forward(self, x):
        logit = 3 * x[:, 0] - 2 * x[:, 1]
        return torch.stack([torch.sigmoid(-logit), torch.sigmoid(logit)], -1)


def test_features_of_the_model_rank_top():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 6, generator=generator)
    shap = KernelSHAP(TwoFeatures(), x, num_background=10)
    masks = shap.select(x[:20], k=2)
    assert masks[:, :2].eq(1).all()


def test_exact_on_a_linear_model_with_a_small_background():
    # Every coalition is enumerated for D = 6, so the values are exact: for f(x) = W x + c and
    # background rows b, phi_{d,c} = W_{c,d} (x_d - mean(b_d)).
    generator = torch.Generator().manual_seed(1)
    weight = torch.randn(2, 6, generator=generator)
    background = torch.randn(5, 6, generator=generator)
    x = torch.randn(4, 6, generator=generator)

    def logits(inputs: np.ndarray) -> np.ndarray:
        return inputs @ weight.double().numpy().T + np.array([0.5, -1.0])

    shap = KernelSHAP(logits, background, num_background=10)
    for c in range(2):
        expected = weight[c] * (x - background.mean(0))
        torch.testing.assert_close(shap.attribute(x, target=c), expected, atol=1e-5, rtol=1e-4)


def test_kmeans_and_sample_summaries_keep_num_background_rows():
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(2))
    for summary in ("kmeans", "sample"):
        shap = KernelSHAP(TwoFeatures(), x, num_background=7, summary=summary)
        assert shap._explainer.data.data.shape == (7, 3)


def test_seeded_sampling_is_reproducible():
    x = torch.randn(30, 12, generator=torch.Generator().manual_seed(3))
    model = torch.nn.Sequential(torch.nn.Linear(12, 2), torch.nn.Softmax(-1))
    first = KernelSHAP(model, x, num_background=3, nsamples=100, seed=5).attribute(x[:2])
    second = KernelSHAP(model, x, num_background=3, nsamples=100, seed=5).attribute(x[:2])
    torch.testing.assert_close(first, second)


def test_bad_input_is_rejected(capsys):
    x = torch.randn(20, 4)
    shap = KernelSHAP(TwoFeatures(), x, num_background=5)
    with pytest.raises(ValueError, match="has 3 features, but the explainer was built for 4"):
        shap.attribute(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="NaN"):
        shap.attribute(torch.full((1, 4), float("nan")))
    with pytest.raises(ValueError, match="unknown summary"):
        KernelSHAP(TwoFeatures(), x, summary="median")
    with pytest.raises(ValueError, match="NaN"):
        KernelSHAP(TwoFeatures(), torch.full((3, 4), float("nan")))
    with pytest.raises(ValueError, match=r"shape \(n_samples, n_classes\)"):
        KernelSHAP(lambda a: a.sum(1), x)
    assert capsys.readouterr().out == ""  # our error only, not shap's line on stdout too


def test_a_rows_explanation_depends_on_that_row_only():
    x = torch.randn(100, 12, generator=torch.Generator().manual_seed(6))
    explainer = KernelSHAP(TwoFeatures(), x, nsamples=100, seed=7)
    batch = explainer.attribute(x[:3])
    torch.testing.assert_close(explainer.attribute(x[2:3]), batch[2:], rtol=0, atol=0)
