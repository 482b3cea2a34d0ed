"""evaluate_explainer: matching the dataset's labels to the classes the explainer was fitted on."""

import numpy as np
import pytest
import torch

from lexppl import LEXExplainer
from lexppl.data import MaskedDataset
from lexppl.data.synthetic import make_s3
from lexppl.evaluation import evaluate_explainer

TINY = dict(epochs=1, selector_hidden=(4,), predictor_hidden=(4,), batch_size=100, k=3)


@pytest.fixture(scope="module")
def s3():
    return make_s3(100, torch.Generator().manual_seed(0))


def test_string_classes_are_matched_in_numpy_and_unseen_labels_named(s3):
    # Labels "neg" / "pos" cannot be a torch tensor; the dataset's 0 / 1 are not among them.
    explainer = LEXExplainer(**TINY).fit(s3.x.numpy(), np.where(s3.y.numpy() == 1, "pos", "neg"))
    with pytest.raises(ValueError, match=r"labels the model never saw \(model classes: \['neg'"):
        evaluate_explainer(explainer, s3, num_samples=2)


def test_labels_are_mapped_to_the_explainer_classes(s3):
    # Fitted on labels 3 and 8, the predictor's column j is classes_[j]: a dataset labelled 3
    # and 8 scores as the same data labelled 0 and 1 under an explainer fitted on those.
    relabelled = MaskedDataset(s3.x, torch.where(s3.y == 1, 8, 3), s3.truth, name="s3-38")
    scores = []
    for data in (s3, relabelled):
        explainer = LEXExplainer(**TINY, seed=0).fit(data.x.numpy(), data.y.numpy())
        scores.append(evaluate_explainer(explainer, data, num_samples=2, seed=0))
    assert explainer.classes_.tolist() == [3, 8]
    assert scores[0] == scores[1]
