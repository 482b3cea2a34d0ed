import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from lexppl.metrics import accuracy, accuracy_per_sample, auroc, auroc_per_sample

Y = torch.tensor([0, 1, 1, 0])


def test_accuracy_single():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    # Argmax predictions 0, 1, 0, 0 vs labels 0, 1, 1, 0: 3 of 4 correct.
    assert accuracy(probs, Y) == pytest.approx(0.75)


def test_accuracy_averaged_over_samples():
    probs = torch.tensor(
        [
            [[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]],  # all 4 correct -> 1.0
            [[0.1, 0.9], [0.8, 0.2], [0.4, 0.6], [0.7, 0.3]],  # 2 of 4 correct -> 0.5
        ]
    )
    torch.testing.assert_close(
        accuracy_per_sample(probs, Y), torch.tensor([1.0, 0.5], dtype=torch.float64)
    )
    assert accuracy(probs, Y) == pytest.approx(0.75)


def test_soft_targets_use_argmax():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    soft = torch.tensor([[0.8, 0.2], [0.3, 0.7], [0.45, 0.55], [0.9, 0.1]])
    assert accuracy(probs, soft) == accuracy(probs, Y)
    assert auroc(probs, soft) == auroc(probs, Y)


def test_auroc_binary_by_hand():
    # Positive-class scores: negatives {0.1, 0.3}, positives {0.8, 0.2}.
    # Of the 4 (pos, neg) pairs, 3 are ordered correctly: 0.8>0.1, 0.8>0.3, 0.2>0.1.
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.8, 0.2], [0.7, 0.3]])
    assert auroc(probs, Y) == pytest.approx(0.75)


def test_auroc_averaged_over_samples():
    rng = np.random.default_rng(0)
    scores = rng.random((3, 50, 2))
    probs = scores / scores.sum(-1, keepdims=True)
    y = rng.integers(0, 2, 50)
    direct = [roc_auc_score(y, probs[s, :, 1]) for s in range(3)]
    np.testing.assert_allclose(auroc_per_sample(probs, y).numpy(), direct)
    assert auroc(probs, y) == pytest.approx(np.mean(direct))


def test_auroc_multiclass_micro():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4), size=(2, 40))
    y = rng.integers(0, 4, 40)
    one_hot = np.eye(4)[y]
    # Micro one-vs-rest average = AUROC of the flattened indicators vs scores.
    direct = [roc_auc_score(one_hot.ravel(), probs[s].ravel()) for s in range(2)]
    assert auroc(probs, y) == pytest.approx(np.mean(direct))


def test_auroc_of_logits_is_that_of_their_probabilities():
    # A per-row offset changes logits but not their softmax; binary AUROC ranks by the margin
    # (the log-odds), and with more classes pooled logits are refused.
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(60, 2, generator=generator) + 3 * torch.randn(60, 1, generator=generator)
    y = torch.randint(0, 2, (60,), generator=generator)
    assert auroc(logits, y) == pytest.approx(auroc(logits.softmax(-1), y))
    assert auroc(logits, y) == pytest.approx(roc_auc_score(y, logits[:, 1] - logits[:, 0]))
    with pytest.raises(ValueError, match="must be class probabilities"):
        auroc(torch.randn(40, 4, generator=generator), torch.arange(40) % 4)


def test_auroc_of_tiny_probabilities_keeps_their_order():
    # p1 - p0 would round every p1 < 1e-16 to the same -1: the probability itself ranks them.
    p1 = torch.tensor([1e-30, 1e-25, 1e-20, 1e-18], dtype=torch.float64)
    probs = torch.stack([1 - p1, p1], -1)
    assert auroc(probs, torch.tensor([0, 0, 1, 1])) == 1.0


def test_auroc_single_class():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    with pytest.raises(ValueError, match="both classes"):
        auroc(probs, torch.tensor([1, 1]))


def test_shape_errors():
    probs = torch.full((4, 2), 0.5)
    with pytest.raises(ValueError, match=r"labels y of shape \(3,\).*probs of shape \(4, 2\)"):
        accuracy(probs, torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="soft targets y of shape"):
        accuracy(probs, torch.full((4, 3), 1 / 3))
    with pytest.raises(ValueError, match="probs must have shape"):
        auroc(torch.full((4,), 0.5), Y)
    with pytest.raises(ValueError, match="probs must have shape"):
        auroc(torch.full((1, 1, 4, 2), 0.5), Y)
    with pytest.raises(ValueError, match="labels y must be integers"):
        accuracy(probs, torch.tensor([0, 1, 2, 0]))
    bad = probs.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="probs contains NaN"):
        accuracy(bad, Y)
