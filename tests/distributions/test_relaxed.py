import pytest
import torch

from lexppl.distributions import KSubset, relaxed_topk

F64 = torch.float64


def reference_relaxed_topk(scores, k, temperature):
    # Xie & Ermon's recursion with log(1 - p_i) written as log Σ_{j≠i} p_j for every i,
    # one exclusion mask per entry: slow, but exact in log space and independent of the library.
    D = scores.shape[-1]
    excluded = torch.eye(D, dtype=torch.bool)
    alpha, total = scores, torch.zeros_like(scores)
    for _ in range(k):
        a = alpha / temperature
        log_p = a - a.logsumexp(-1, keepdim=True)
        total = total + log_p.exp()
        others = a.unsqueeze(-2).masked_fill(excluded, float("-inf")).logsumexp(-1)
        alpha = alpha + others - a.logsumexp(-1, keepdim=True)
    return total


@pytest.mark.parametrize("lead", [20.0, 40.0])
@pytest.mark.parametrize("temperature", [1.0, 0.5, 0.1])
def test_relaxed_topk_drops_a_saturated_leader(lead, temperature):
    # When the leader's softmax rounds to 1, log(1 - p) must still remove it, so the next
    # softmax picks the runner-up, and the runner-up keeps its gradient.
    scores = torch.tensor([lead, 0.0, -1.0, -2.0])
    exact = scores.to(F64).requires_grad_()
    expected = reference_relaxed_topk(exact, 2, temperature)
    weights = torch.arange(4.0)
    (expected_grad,) = torch.autograd.grad((expected * weights.to(F64)).sum(), exact)
    for dtype in (torch.float32, F64):
        x = scores.to(dtype).requires_grad_()
        soft = relaxed_topk(x, 2, temperature)
        (grad,) = torch.autograd.grad((soft * weights.to(dtype)).sum(), x)
        torch.testing.assert_close(soft.to(F64), expected.detach(), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(grad.to(F64), expected_grad, atol=1e-5, rtol=1e-4)


def test_relaxed_topk_agrees_with_the_reference_on_random_scores():
    torch.manual_seed(0)
    scores = torch.randn(200, 7, dtype=F64) * 3
    for k in (1, 3, 7):
        torch.testing.assert_close(
            relaxed_topk(scores, k, 0.5), reference_relaxed_topk(scores, k, 0.5)
        )


def test_relaxed_k_subset_with_a_confident_leader_selects_k_features():
    # The relaxed k-subset of a selector sure of one feature still spreads the other k - 1.
    torch.manual_seed(1)
    relaxed = KSubset(logits=torch.tensor([20.0, 0.0, -1.0, -2.0]), k=2).relaxed(0.1)
    mean = relaxed.rsample((4000,)).mean(0)
    assert mean[0] <= 1.0 + 1e-6
    torch.testing.assert_close(mean.sum(), torch.tensor(2.0))
    assert mean[1] > 0.5


def test_relaxed_topk_with_minus_infinite_scores_stays_finite():
    # Scores at -inf are features that cannot be selected; k may reach the finite ones' count.
    x = torch.tensor([float("-inf"), 1.0, 3.0, float("-inf")], requires_grad=True)
    soft = relaxed_topk(x, 2, 0.5)
    torch.testing.assert_close(soft, torch.tensor([0.0, 1.0, 1.0, 0.0]))
    (grad,) = torch.autograd.grad((soft * torch.arange(4.0)).sum(), x)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("k", [0, 5, 2.0, True])
def test_relaxed_topk_refuses_k_outside_one_to_d(k):
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 4\]"):
        relaxed_topk(torch.zeros(4), k, 0.5)
