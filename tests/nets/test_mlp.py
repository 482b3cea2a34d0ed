"""MLP: shapes over leading dimensions, activations, batch normalisation."""

import numpy as np
import pytest
import torch
from torch import nn

from lexppl.nets import MLP


def test_mlp_maps_the_last_dimension_and_keeps_leading_ones():
    net = MLP(5, 3, (7, 7))
    assert net(torch.randn(2, 4, 5)).shape == (2, 4, 3)
    assert net(torch.randn(5)).shape == (3,)


def test_mlp_rejects_bad_sizes_and_activations():
    with pytest.raises(ValueError, match="in_features"):
        MLP(0, 3)
    with pytest.raises(ValueError, match="Unknown activation 'gelu'"):
        MLP(5, 3, activation="gelu")


def test_batch_norm_pools_every_leading_dimension():
    torch.manual_seed(0)
    net = MLP(5, 3, (6,), batch_norm=True)
    norms = [m for m in net if isinstance(m, nn.BatchNorm1d)]
    assert len(norms) == 1
    x = torch.randn(3, 8, 5) * 4 + 2  # (particles, batch, features)
    hidden = net[1](net[0](x))
    # In training mode the normalised hidden units have mean 0 and variance 1 over all 24 rows,
    # exactly as BatchNorm1d on the flattened (24, 6) input.
    expected = nn.functional.batch_norm(hidden.reshape(-1, 6), None, None, training=True)
    torch.testing.assert_close(net[2](hidden), expected.reshape(3, 8, 6))
    assert net(x).shape == (3, 8, 3)


def test_batch_norm_uses_running_statistics_in_eval_mode():
    torch.manual_seed(1)
    net = MLP(5, 2, (6,), batch_norm=True)
    for _ in range(20):
        net(torch.randn(64, 5))
    net.eval()
    x = torch.randn(4, 5)
    # Evaluation is per row: one instance's output does not depend on the others in its batch.
    torch.testing.assert_close(net(x)[:1], net(x[:1]))


def test_batch_norm_in_training_takes_a_batch_of_one_row():
    # An epoch whose size leaves a remainder of one ends on a one-row batch, which has no
    # variance: it is normalised by the running statistics, which it leaves unchanged.
    torch.manual_seed(2)
    net = MLP(5, 2, (6,), batch_norm=True)
    for _ in range(5):
        net(torch.randn(64, 5))
    norm = net[2]
    before = norm.running_mean.clone(), norm.running_var.clone()
    x = torch.randn(1, 1, 5)  # (particles, batch, features)
    out = net(x)
    torch.testing.assert_close((norm.running_mean, norm.running_var), before)
    net.eval()
    torch.testing.assert_close(out, net(x))


def test_mlp_takes_numpy_sizes_and_refuses_sizes_below_one():
    # np.prod(image_shape) is an np.int64: a size like any other, stored as a Python int.
    net = MLP(np.prod((1, 2, 2)), np.int64(3), hidden=np.array([5, 6]))
    assert net.in_features == 4 and type(net.in_features) is int
    assert [m.out_features for m in net if isinstance(m, nn.Linear)] == [5, 6, 3]
    assert net(torch.randn(2, 4)).shape == (2, 3)
    with pytest.raises(ValueError, match=r"hidden\[1\] to be an int >= 1 but got 0"):
        MLP(4, 2, hidden=(3, 0))
    with pytest.raises(ValueError, match="in_features to be an int >= 1 but got True"):
        MLP(True, 2)
    with pytest.raises(ValueError, match=r"out_features to be an int >= 1 but got 2\.0"):
        MLP(4, 2.0)
