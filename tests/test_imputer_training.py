"""Longer runs: LEX learns with every imputer (``make test-slow``).

S3 with each tabular imputer (the imputer fitted on the validation split), and scikit-learn's
8x8 digits (intensities in [0, 1]) with the image imputers. Budget per model: 15 epochs of
5,000 S3 rows (batch 100, lr 3e-4, L = 4, straight-through through the exact marginals).
Floors: selecting 5 of 11 features at random gives TPR 5/11 = 0.45; S3's majority class is 54 %;
digits' chance level is 10 %.
"""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from lexppl import LEXExplainer
from lexppl.data import load
from lexppl.metrics import accuracy, true_positive_rate

pytestmark = pytest.mark.slow

SETTINGS = dict(
    estimator="simple", num_masks=4, batch_size=100, lr=3e-4, weight_decay=0.0, epochs=15, seed=0
)


@pytest.mark.parametrize(
    "imputer",
    [
        "constant",
        "mean",
        "gaussian",
        "marginal",
        "gmm",
        "gmm_means",
        "gmm_dataset",
        "kmeans_dataset",
        "vaeac",
    ],
)
def test_lex_learns_on_s3_with_each_imputer(imputer):
    train, val, test = (
        load("s3", "train", n=5000),
        load("s3", "val", n=2000),
        load("s3", "test", n=1000),
    )
    explainer = LEXExplainer(k=5, imputer=imputer, **SETTINGS)
    explainer.fit(train.x, train.y, imputer_data=val.x)
    torch.manual_seed(0)
    masks = torch.as_tensor(explainer.sample_masks(test.x, num_samples=20))
    tpr = true_positive_rate(masks, test.truth)
    acc = accuracy(torch.as_tensor(explainer.predict_proba(test.x, num_samples=20)), test.y)
    print(f"S3 {imputer}: TPR {tpr:.3f}, ACC {acc:.3f}")
    assert tpr >= 0.6 and acc >= 0.65


@pytest.mark.parametrize(
    "imputer", ["mixture_of_logistics", "mixture_of_logistics_means", "vaeac", "gmm"]
)
def test_lex_learns_on_digits_with_image_imputers(imputer):
    X, y = load_digits(return_X_y=True)
    X = np.round(X / 16 * 255) / 255  # intensities on the 1/255 grid
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    train, held, test = order[:1200], order[1200:1500], order[1500:]
    explainer = LEXExplainer(k=16, imputer=imputer, **dict(SETTINGS, epochs=30, batch_size=50))
    explainer.fit(X[train], y[train], imputer_data=X[held])
    acc = accuracy(
        torch.as_tensor(explainer.predict_proba(X[test], num_samples=20)), torch.as_tensor(y[test])
    )
    print(f"digits {imputer}: ACC {acc:.3f} with 16 of 64 pixels")
    assert acc >= 0.5
