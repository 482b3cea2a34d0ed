import math

import numpy as np
import pytest
import torch

from lexppl.metrics import (
    control_flow_rate,
    control_flow_rate_per_instance,
    false_discovery_rate,
    false_discovery_rate_per_instance,
    false_positive_rate,
    median_rank,
    median_rank_per_instance,
    true_positive_rate,
    true_positive_rate_per_instance,
)

# Two instances over D = 4 features; truth {0, 1} and {2}.
TRUTH = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])


def test_perfect_selection():
    assert true_positive_rate(TRUTH, TRUTH) == 1.0
    assert false_discovery_rate(TRUTH, TRUTH) == 0.0
    assert false_positive_rate(TRUTH, TRUTH) == 0.0


def test_empty_selection():
    empty = torch.zeros(2, 4)
    assert true_positive_rate(empty, TRUTH) == 0.0
    # No selection -> FDR 0 by convention.
    assert false_discovery_rate(empty, TRUTH) == 0.0
    assert false_positive_rate(empty, TRUTH) == 0.0


def test_half_right_selection():
    masks = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
    # Instance 0: selects {0, 2}, truth {0, 1}: TPR 1/2, FDR 1/2, FPR 1/2.
    # Instance 1: selects {1, 2}, truth {2}:    TPR 1,   FDR 1/2, FPR 1/3.
    assert true_positive_rate(masks, TRUTH) == pytest.approx((0.5 + 1.0) / 2)
    assert false_discovery_rate(masks, TRUTH) == pytest.approx(0.5)
    assert false_positive_rate(masks, TRUTH) == pytest.approx((0.5 + 1 / 3) / 2)
    torch.testing.assert_close(
        true_positive_rate_per_instance(masks, TRUTH), torch.tensor([0.5, 1.0], dtype=torch.float64)
    )


def test_average_over_samples():
    masks = torch.stack(
        [
            TRUTH,  # sample 0: perfect, TPR (1, 1), FDR (0, 0)
            torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]),
            # sample 1: instance 0 TPR 1/2, FDR 1/2; instance 1 empty: TPR 0, FDR 0
        ]
    )
    # Per instance: TPR (3/4, 1/2), FDR (1/4, 0).
    torch.testing.assert_close(
        true_positive_rate_per_instance(masks, TRUTH),
        torch.tensor([0.75, 0.5], dtype=torch.float64),
    )
    torch.testing.assert_close(
        false_discovery_rate_per_instance(masks, TRUTH),
        torch.tensor([0.25, 0.0], dtype=torch.float64),
    )
    assert true_positive_rate(masks, TRUTH) == pytest.approx(0.625)
    assert false_discovery_rate(masks, TRUTH) == pytest.approx(0.125)


def test_numpy_and_bool_inputs():
    masks = np.array([[True, False, True, False], [False, True, True, False]])
    assert true_positive_rate(masks, TRUTH.numpy()) == pytest.approx(0.75)


def test_empty_truth_excluded():
    truth = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    masks = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    per_instance = true_positive_rate_per_instance(masks, truth)
    assert per_instance[0] == 1.0 and math.isnan(per_instance[1])
    # Only instance 0 counts.
    assert true_positive_rate(masks, truth) == 1.0
    assert math.isnan(true_positive_rate(masks, torch.zeros(2, 3)))
    # Instance 1 selected 2 features, both false: FDR (0 + 1) / 2.
    assert false_discovery_rate(masks, truth) == pytest.approx(0.5)


def test_control_flow_rate():
    masks = torch.zeros(2, 3, 11)
    masks[0, :, 10] = 1.0  # sample 0 selects x11 for all 3 instances
    masks[1, 0, 10] = 1.0  # sample 1 selects it for instance 0 only
    # 4 of the 6 (sample, instance) pairs select x11.
    assert control_flow_rate(masks) == pytest.approx(4 / 6)
    torch.testing.assert_close(
        control_flow_rate_per_instance(masks), torch.tensor([1.0, 0.5, 0.5], dtype=torch.float64)
    )
    assert control_flow_rate(masks[0]) == 1.0
    assert control_flow_rate(masks, feature=0) == 0.0
    with pytest.raises(ValueError, match="feature must be in"):
        control_flow_rate(masks, feature=11)


def test_median_rank():
    truth = torch.tensor([[1.0, 1.0, 0.0, 0.0]] * 3)
    importance = torch.tensor(
        [
            [4.0, 3.0, 2.0, 1.0],  # ranks 1, 2 -> median 1.5 (optimum)
            [1.0, 2.0, 3.0, 4.0],  # ranks 4, 3 -> median 3.5
            [1.0, 1.0, 1.0, 1.0],  # all tied: every rank 2.5 -> median 2.5
        ]
    )
    torch.testing.assert_close(
        median_rank_per_instance(importance, truth),
        torch.tensor([1.5, 3.5, 2.5], dtype=torch.float64),
    )
    assert median_rank(importance, truth) == pytest.approx((1.5 + 3.5 + 2.5) / 3)


def test_median_rank_partial_ties_and_odd_count():
    # Scores 5, 5, 1, 0: the tie shares ranks 1 and 2 -> 1.5 each.
    # Truth {0, 1, 2}: ranks 1.5, 1.5, 3 -> median 1.5.
    importance = np.array([[5.0, 5.0, 1.0, 0.0]])
    truth = np.array([[1, 1, 1, 0]])
    assert median_rank(importance, truth) == pytest.approx(1.5)


def test_shape_errors():
    with pytest.raises(ValueError, match=r"masks of shape \(2, 3\).*truth of shape \(2, 4\)"):
        true_positive_rate(torch.zeros(2, 3), TRUTH)
    with pytest.raises(ValueError, match="masks of shape"):
        false_discovery_rate(torch.zeros(5, 3, 4), TRUTH)
    with pytest.raises(ValueError, match="masks must have shape"):
        false_positive_rate(torch.zeros(1, 1, 2, 4), TRUTH)
    with pytest.raises(ValueError, match="truth must have shape"):
        true_positive_rate(TRUTH, TRUTH[0])
    with pytest.raises(ValueError, match="importance and truth"):
        median_rank(torch.zeros(2, 3), TRUTH)


def test_value_errors():
    with pytest.raises(ValueError, match="masks must be binary"):
        true_positive_rate(torch.full((2, 4), 0.5), TRUTH)
    with pytest.raises(ValueError, match="truth must be binary"):
        true_positive_rate(TRUTH, 2 * TRUTH)
    bad = TRUTH.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="masks contains NaN"):
        true_positive_rate(bad, TRUTH)
    with pytest.raises(ValueError, match="importance contains NaN"):
        median_rank(bad, TRUTH)
