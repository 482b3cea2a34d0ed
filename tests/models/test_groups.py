import functools
import re

import pyro.poutine as poutine
import pytest
import torch

import lexppl
from lexppl.distributions import IndependentBernoulli, KSubset
from lexppl.imputers import ConstantImputer
from lexppl.infer import PathwiseBound
from lexppl.models import LEX, CategoricalLikelihood, Identity, PatchGrid, PixelGrid
from lexppl.nets import MLP, ConvPredictor, UNetSelector

# ------------------------------------------------------------------ the grouping objects
# A 4x4 image cut into 2x2 patches: groups 0 1 / 2 3 (row-major).
GRID = PatchGrid((1, 4, 4), (2, 2))


def test_patch_grid_takes_a_numpy_integer_patch():
    import numpy as np

    assert PatchGrid((1, 4, 4), np.int64(2)).patch == (2, 2)


def test_patch_grid_sizes():
    assert GRID.num_groups == 4
    assert GRID.grid_shape == (2, 2)
    groups = PatchGrid((3, 8, 16), 4)
    assert groups.patch == (4, 4) and groups.num_groups == 8 and groups.channels == 3
    assert PatchGrid((1, 6, 4), (3, 1)).grid_shape == (2, 4)


def test_expand_exact_values():
    z = torch.tensor([1.0, 0.0, 0.0, 1.0])
    expected = torch.tensor(
        [[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]]
    )
    assert torch.equal(GRID.expand(z), expected[None])
    values = torch.tensor([1.0, 2.0, 3.0, 4.0])
    expected = torch.tensor(
        [[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0], [3.0, 3.0, 4.0, 4.0]]
    )
    assert torch.equal(GRID.expand(values), expected[None])


def test_expand_shares_groups_across_channels_and_vectorises():
    groups = PatchGrid((3, 4, 6), (2, 3))  # 2x2 grid of 2x3 patches
    z = torch.randint(2, (5, 7, 4)).float()  # (L, N, G)
    image = groups.expand(z)
    assert image.shape == (5, 7, 3, 4, 6)
    for g, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        patch = image[..., 2 * i : 2 * i + 2, 3 * j : 3 * j + 3]
        assert torch.equal(patch, z[..., g, None, None, None].expand_as(patch))
    # one loop-free call equals a call per particle
    assert torch.equal(image[2, 3], groups.expand(z[2, 3]))


def test_reduce_image_and_grid():
    importance = torch.tensor([[0.1, 0.2, 0.3, 0.4], [1.0, 0.0, 0.0, 0.0]])
    image = GRID.reduce(importance)
    assert image.shape == (2, 1, 4, 4)
    assert torch.equal(image, GRID.expand(importance))
    assert image[0, 0, 3, 1] == 0.3 and image[0, 0, 0, 3] == 0.2
    grid = GRID.reduce(importance, grid=True)
    assert grid.shape == (2, 2, 2)
    assert torch.equal(grid[0], torch.tensor([[0.1, 0.2], [0.3, 0.4]]))


def test_pool_is_the_patch_mean_and_inverts_expand():
    pixels = torch.arange(16.0).reshape(4, 4)
    assert torch.equal(GRID.pool(pixels), torch.tensor([2.5, 4.5, 10.5, 12.5]))
    groups = PatchGrid((2, 4, 6), (2, 3))
    z = torch.rand(3, 4)
    assert torch.allclose(groups.pool(groups.expand(z)), z[:, None].expand(3, 2, 4))


def test_gradients_flow_through_expand():
    groups = PatchGrid((2, 4, 4), (2, 2))
    z = torch.rand(3, 4, requires_grad=True)
    weights = torch.randn(3, 2, 4, 4)
    (groups.expand(z) * weights).sum().backward()
    expected = weights.sum(1).reshape(3, 2, 2, 2, 2).sum((2, 4)).flatten(1)  # sum per patch
    assert torch.allclose(z.grad, expected)


def test_straight_through_mask_keeps_its_gradient():
    logits = torch.randn(2, 4, requires_grad=True)
    probs = logits.sigmoid()
    hard = (probs > 0.5).float()
    z = hard + probs - probs.detach()
    image = GRID.expand(z)
    assert torch.allclose(image.detach(), GRID.expand(hard))
    image.sum().backward()
    assert logits.grad is not None and (logits.grad != 0).all()


def test_pixel_grid_is_one_group_per_pixel():
    groups = PixelGrid((3, 2, 5))
    assert groups.num_groups == 10 and groups.patch == (1, 1)
    z = torch.rand(4, 10)
    image = groups.expand(z)
    assert image.shape == (4, 3, 2, 5)
    assert torch.equal(image[:, 1], z.reshape(4, 2, 5))
    assert torch.equal(groups.pool(image[:, 0]), z)


def test_identity_groups():
    assert torch.equal(Identity().expand(z := torch.rand(3, 5)), z)
    groups = Identity((2, 3))
    assert groups.num_groups == 6
    assert groups.expand(torch.arange(6.0)).shape == (2, 3)
    assert torch.equal(groups.pool(groups.expand(z := torch.rand(4, 6))), z)
    with pytest.raises(ValueError, match=r"G = 6"):
        groups.expand(torch.rand(4, 5))


@pytest.mark.parametrize(
    "image_shape, patch, match",
    [
        ((1, 10, 16), (4, 4), r"image_shape=\(1, 10, 16\).*not divisible by patch=\(4, 4\)"),
        ((1, 8, 15), (4, 4), r"W=15"),
        ((8, 16), (4, 4), r"3 entries"),
    ],
)
def test_grid_that_does_not_tile_the_image_is_refused(image_shape, patch, match):
    with pytest.raises(ValueError, match=match):
        PatchGrid(image_shape, patch)


@pytest.mark.parametrize(
    "shape, hint",
    [
        ((2, 1, 10, 16), r"H=10, W=16 cannot be tiled by 4x4 patches"),
        ((2, 1, 12, 16), r"size 12x16 instead of 8x16"),
        ((2, 3, 8, 16), r"3 channels instead of 1"),
        ((2, 128), r"inputs must be images"),
    ],
)
def test_check_input_names_expected_and_received_shapes(shape, hint):
    groups = PatchGrid((1, 8, 16), (4, 4))
    groups.check_input(torch.zeros(2, 1, 8, 16))
    expected = re.escape(f"expects inputs of shape (N, 1, 8, 16); got {shape}")
    with pytest.raises(ValueError, match=expected) as info:
        groups.check_input(torch.zeros(shape))
    assert info.match(hint)


def test_group_count_is_checked():
    with pytest.raises(ValueError, match=r"G = 4 groups; got \(2, 5\)"):
        GRID.expand(torch.rand(2, 5))
    with pytest.raises(ValueError, match=r"\(\.\.\., 4, 4\); got \(2, 4, 5\)"):
        GRID.pool(torch.rand(2, 4, 5))


# ------------------------------------------------------------------ LEX with groups
IMAGE = (1, 8, 16)
N = 4


def make_lex(groups=None, mask_as_input=False, k=2):
    groups = groups or PatchGrid(IMAGE, (4, 4))
    return LEX(
        UNetSelector(groups, depth=2, base_channels=4),
        ConvPredictor(2 if mask_as_input else 1, 3, channels=(4, 8), image_size=IMAGE[1:]),
        ConstantImputer(),
        functools.partial(KSubset, k=k),
        CategoricalLikelihood(),
        groups=groups,
        mask_as_input=mask_as_input,
    )


def test_lex_with_patch_groups_traces_group_masks():
    lex = make_lex()
    x, y = torch.randn(N, *IMAGE), torch.randint(3, (N,))
    trace = poutine.trace(lex.model).get_trace(x, y, num_masks=3)
    mask, imputation = trace.nodes["mask"], trace.nodes["imputation"]
    assert mask["value"].shape == (3, N, 8)
    assert mask["fn"].event_shape == (8,)
    assert imputation["value"].shape == (3, N, *IMAGE)
    assert trace.nodes["y"]["fn"].batch_shape == (3, N)
    # the imputation keeps exactly the pixels of the selected patches
    kept = lex.groups.expand(mask["value"])
    assert torch.equal(imputation["value"], kept * x)
    assert (kept.sum((-1, -2, -3)) == 2 * 16).all()  # k = 2 patches of 4x4 pixels


def test_lex_with_groups_and_mask_as_input():
    lex = make_lex(mask_as_input=True)
    x = torch.randn(N, *IMAGE)
    trace = poutine.trace(lex.model).get_trace(x, num_masks=2, num_imputations=2)
    assert trace.nodes["imputation"]["value"].shape == (2, 2, N, *IMAGE)
    assert trace.nodes["y"]["fn"].logits.shape == (2, 2, N, 3)


def test_lex_conditioned_on_a_group_mask():
    lex = make_lex()
    x = torch.randn(N, *IMAGE)
    z = torch.zeros(N, 8)
    z[:, [0, 5]] = 1.0
    x_tilde = poutine.condition(lex.model, data={"mask": z})(x)
    assert torch.equal(x_tilde[:, :, :4, :4], x[:, :, :4, :4])
    assert torch.equal(x_tilde[:, :, 4:, 4:8], x[:, :, 4:, 4:8])
    assert (x_tilde[:, :, :4, 4:] == 0).all()


def test_lex_explanations_with_groups():
    lex = make_lex()
    x = torch.randn(N, *IMAGE)
    importance = lex.importance(x)
    assert importance.shape == (N, 8)
    assert torch.allclose(importance.sum(-1), torch.full((N,), 2.0), atol=1e-4)
    assert lex.explain(x, num_samples=5).shape == (5, N, 8)
    image = lex.importance_map(x)
    assert image.shape == (N, *IMAGE)
    assert torch.equal(image, lex.groups.expand(importance))
    assert lex.importance_map(x, grid=True).shape == (N, 2, 4)
    assert lex.predict(x, num_samples=4).shape == (N, 3)


def test_importance_map_without_groups_has_the_input_shape():
    lex = LEX(
        MLP(6, 6, (8,)),
        MLP(6, 3, (8,)),
        ConstantImputer(),
        IndependentBernoulli,
        CategoricalLikelihood(),
    )
    x = torch.randn(N, 6)
    assert torch.equal(lex.importance_map(x), lex.importance(x))


def test_flat_selector_with_identity_groups_explains_images_per_feature():
    lex = LEX(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 3 * 4, 24)),
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 3 * 4, 3)),
        ConstantImputer(),
        IndependentBernoulli,
        CategoricalLikelihood(),
        groups=Identity((2, 3, 4)),
    )
    x = torch.randn(N, 2, 3, 4)
    trace = poutine.trace(lex.model).get_trace(x, num_masks=2)
    assert trace.nodes["mask"]["value"].shape == (2, N, 24)
    assert trace.nodes["imputation"]["value"].shape == (2, N, 2, 3, 4)
    assert lex.importance_map(x).shape == (N, 2, 3, 4)


@pytest.mark.parametrize(
    "shape, hint",
    [((N, 1, 10, 16), "cannot be tiled"), ((N, 3, 8, 16), "channels"), ((N, 1, 8, 12), "size")],
)
def test_lex_model_refuses_images_that_do_not_fit_the_grid(shape, hint):
    lex = make_lex()
    with pytest.raises(ValueError, match=r"expects inputs of shape \(N, 1, 8, 16\)") as info:
        lex.model(torch.randn(shape), num_masks=3)
    assert info.match(hint)
    assert str(tuple(shape)) in str(info.value)
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 16\)"):
        lex.importance(torch.randn(shape))


def test_lex_refuses_a_selector_with_the_wrong_number_of_groups():
    groups = PatchGrid(IMAGE, (4, 4))
    lex = LEX(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(128, 5)),
        ConvPredictor(1, 3, channels=(4,), image_size=IMAGE[1:]),
        ConstantImputer(),
        IndependentBernoulli,
        CategoricalLikelihood(),
        groups=groups,
    )
    with pytest.raises(ValueError, match=r"event shape \(8,\).*gave \(5,\)"):
        lex.model(torch.randn(N, *IMAGE))


def test_lex_refuses_a_groups_argument_of_the_wrong_type():
    with pytest.raises(TypeError, match="FeatureGroups"):
        LEX(
            MLP(4, 4),
            MLP(4, 2),
            ConstantImputer(),
            IndependentBernoulli,
            CategoricalLikelihood(),
            groups=(4, 4),
        )


def test_lex_with_unet_and_conv_predictor_trains():
    groups = PatchGrid(IMAGE, (4, 4))
    lex = LEX(
        UNetSelector(groups, depth=3, base_channels=4),
        ConvPredictor(1, 10, channels=(4, 8), image_size=IMAGE[1:]),
        ConstantImputer(),
        functools.partial(KSubset, k=2),
        CategoricalLikelihood(),
        groups=groups,
    )
    x, y = torch.rand(8, *IMAGE), torch.randint(10, (8,))
    trace = poutine.trace(lex.model).get_trace(x, y, num_masks=3)
    assert trace.nodes["mask"]["value"].shape == (3, 8, 8)
    assert trace.nodes["imputation"]["value"].shape == (3, 8, *IMAGE)

    bound = PathwiseBound(num_masks=2, method="marginal")
    loss = bound.differentiable_loss(lex.model, lex.guide, x, y)
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in lex.selector.parameters()]
    assert all(g is not None for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    lex.zero_grad()

    before = [p.detach().clone() for p in lex.selector.parameters()]
    result = lexppl.fit(lex, bound, x, y, epochs=1, batch_size=4, lr=1e-2)
    assert len(result.losses) == 1 and all(torch.isfinite(torch.tensor(result.losses)))
    assert any(not torch.equal(b, p) for b, p in zip(before, lex.selector.parameters()))


def test_groupings_compare_by_value():
    assert PatchGrid((1, 8, 8), 2) == PatchGrid((1, 8, 8), (2, 2))
    assert PixelGrid((1, 4, 4)) == PatchGrid((1, 4, 4), 1)
    assert PatchGrid((1, 8, 8), 2) != PatchGrid((1, 8, 8), 4)
    assert len({Identity((3,)), Identity((3,)), GRID}) == 2
    assert "patch=(2, 2)" in repr(GRID)
