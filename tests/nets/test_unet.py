import numpy as np
import pytest
import torch
from torch import nn

from lexppl.models import PatchGrid, PixelGrid
from lexppl.nets import UNet, UNetSelector


@pytest.mark.parametrize(
    "depth, channels, size", [(3, (1, 1), (8, 16)), (3, (3, 2), (16, 24)), (5, (3, 1), (32, 64))]
)
def test_unet_output_shapes(depth, channels, size):
    net = UNet(channels[0], channels[1], depth=depth, base_channels=4)
    out = net(torch.randn(2, channels[0], *size))
    assert out.shape == (2, channels[1], *size)
    assert len(net.encoder) == depth + 1 and len(net.decoder) == depth


def test_unet_default_width_follows_the_paper_depths():
    net = UNet(depth=5)
    assert net.encoder[-1][0].out_channels == 16 * 2**5
    assert UNet().depth == 3


def test_unet_pads_and_crops_sizes_that_are_not_multiples():
    net = UNet(1, 1, depth=3, base_channels=4)
    assert net(torch.randn(2, 1, 28, 56)).shape == (2, 1, 28, 56)  # the Switching Panels size
    assert net(torch.randn(1, 1, 13, 9)).shape == (1, 1, 13, 9)


def test_unet_without_padding_refuses_sizes_that_are_not_multiples():
    net = UNet(1, 1, depth=3, base_channels=4, pad=False)
    assert net(torch.randn(1, 1, 16, 8)).shape == (1, 1, 16, 8)
    with pytest.raises(ValueError, match=r"divisible by 2\*\*depth = 8; got H=28, W=56"):
        net(torch.randn(1, 1, 28, 56))


def test_unet_refuses_wrong_channels():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\); got \(2, 1, 8, 8\)"):
        UNet(3, 1, depth=1, base_channels=2)(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match="depth"):
        UNet(depth=0)


def test_unet_is_differentiable_and_uses_skip_connections():
    torch.manual_seed(0)
    net = UNet(1, 1, depth=2, base_channels=4)
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    net(x)[0, 0, 0, 0].backward()
    # a corner logit depends on the corner pixel (through the first skip connection) and
    # not on the other image of the batch
    assert x.grad[0, 0, 0, 0] != 0
    assert (x.grad[1] == 0).all()


def test_unet_selector_averages_pixel_logits_over_patches():
    groups = PatchGrid((2, 8, 16), (4, 4))
    selector = UNetSelector(groups, depth=2, base_channels=4)
    x = torch.randn(3, 2, 8, 16)
    logits = selector(x)
    assert logits.shape == (3, 8)
    pixels = selector.unet(x)[:, 0]
    assert torch.allclose(logits[:, 1], pixels[:, :4, 4:8].mean((-1, -2)), atol=1e-6)
    assert torch.allclose(logits[:, 6], pixels[:, 4:, 8:12].mean((-1, -2)), atol=1e-6)


def test_unet_selector_on_a_pixel_grid_is_the_per_pixel_unet():
    groups = PixelGrid((1, 28, 56))
    selector = UNetSelector(groups, depth=3, base_channels=2)
    x = torch.randn(2, 1, 28, 56)
    assert torch.equal(selector(x), selector.unet(x).flatten(1))
    assert selector.num_groups == 28 * 56


def test_unet_selector_refuses_images_that_do_not_fit():
    selector = UNetSelector(PatchGrid((1, 8, 16), (4, 4)), depth=2, base_channels=2)
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 16\); got \(2, 1, 8, 12\)"):
        selector(torch.randn(2, 1, 8, 12))
    with pytest.raises(TypeError, match="PatchGrid"):
        UNetSelector((4, 4))


def test_unet_takes_numpy_sizes():
    net = UNet(np.int64(3), np.int64(2), depth=np.int64(1), base_channels=np.int64(4))
    assert net(torch.randn(1, 3, 8, 8)).shape == (1, 2, 8, 8)
    with pytest.raises(ValueError, match="base_channels to be an int >= 1 but got True"):
        UNet(base_channels=True)


def test_unet_batch_norm_in_training_takes_one_image_with_a_one_pixel_bottleneck():
    # Depth 5 pads 28 x 28 to 32 x 32, so the bottleneck is 1 x 1: one image has one value per
    # channel there, no variance (torch raises). Its batch norm then uses the running
    # statistics, as in evaluation, and leaves them unchanged, as MLP's does for one row.
    torch.manual_seed(0)
    net = UNet(1, 1, depth=5, base_channels=2, batch_norm=True)
    for _ in range(3):
        net(torch.randn(4, 1, 28, 28))
    bottleneck = [m for m in net.encoder[-1] if isinstance(m, nn.BatchNorm2d)]
    before = [(m.running_mean.clone(), m.running_var.clone()) for m in bottleneck]
    assert net(torch.randn(1, 1, 28, 28)).shape == (1, 1, 28, 28)
    for norm, (mean, var) in zip(bottleneck, before):
        torch.testing.assert_close((norm.running_mean, norm.running_var), (mean, var))
    h = torch.randn(1, bottleneck[0].num_features, 1, 1)
    expected = bottleneck[0].eval()(h)
    torch.testing.assert_close(bottleneck[0].train()(h), expected)
    # With more than one value per channel, training still normalises by the batch.
    wider = torch.randn(1, bottleneck[0].num_features, 2, 1)
    normalised = bottleneck[0](wider)
    torch.testing.assert_close(normalised.mean((0, 2, 3)), bottleneck[0].bias)
