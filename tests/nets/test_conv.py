import numpy as np
import pytest
import torch

from lexppl.nets import ConvPredictor


def test_switching_panels_predictor_shapes():
    net = ConvPredictor()  # App. D: 2 blocks of 32 and 64 filters on 28x56 panels
    assert net(torch.randn(5, 1, 28, 56)).shape == (5, 10)
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
    pools = [m for m in net.features if isinstance(m, torch.nn.AvgPool2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64]
    assert len(pools) == 2
    assert net.classifier.in_features == 64 * 7 * 14


def test_leading_particle_dims_are_flattened_and_restored():
    net = ConvPredictor(2, 3, channels=(4, 8), image_size=(8, 16))
    x = torch.randn(2, 3, 4, 2, 8, 16)
    out = net(x)
    assert out.shape == (2, 3, 4, 3)
    assert torch.allclose(out[1, 2], net(x[1, 2]), atol=1e-6)


def test_odd_sizes_and_more_blocks():
    net = ConvPredictor(3, 2, channels=(4, 4, 4, 4), image_size=(20, 18))
    assert net(torch.randn(2, 3, 20, 18)).shape == (2, 2)
    assert net.classifier.in_features == 4 * 1 * 1


def test_wrong_inputs_are_refused():
    net = ConvPredictor(1, 10, channels=(4,), image_size=(8, 8))
    with pytest.raises(ValueError, match=r"\(M, 1, 8, 8\); got \(2, 1, 8, 9\)"):
        net(torch.randn(2, 1, 8, 9))
    with pytest.raises(ValueError, match=r"\(M, 1, 8, 8\); got \(64,\)"):
        net(torch.randn(64))
    with pytest.raises(ValueError, match="too small"):
        ConvPredictor(channels=(4, 4, 4), image_size=(4, 4))
    with pytest.raises(ValueError, match="channels"):
        ConvPredictor(channels=())


def test_numpy_sizes_are_taken_and_sizes_below_one_refused():
    net = ConvPredictor(np.int64(1), np.int64(3), np.array([4, 8]), np.array([8, 8]))
    assert net.channels == (4, 8) and net.image_size == (8, 8)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    with pytest.raises(ValueError, match=r"channels\[1\] to be an int >= 1 but got 0"):
        ConvPredictor(channels=(4, 0))
    with pytest.raises(ValueError, match=r"image_size\[0\] to be an int >= 1 but got 8\.5"):
        ConvPredictor(channels=(4,), image_size=(8.5, 8))
    with pytest.raises(ValueError, match="num_classes to be an int >= 1 but got False"):
        ConvPredictor(num_classes=False)
