import pytest
import torch

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
