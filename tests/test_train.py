import functools
import json

import pytest
import torch

from lexppl import LEX, fit, pretrain_predictor
from lexppl.checkpoint import CheckpointError, load_checkpoint
from lexppl.distributions import IndependentBernoulli, KSubset
from lexppl.imputers import GaussianImputer
from lexppl.infer import PathwiseBound, ReinforceBound
from lexppl.models import CategoricalLikelihood
from lexppl.nets import MLP

D = 6


def make_model(seed=0):
    torch.manual_seed(seed)
    return LEX(
        MLP(D, D, (16,)),
        MLP(D, 2, (16,)),
        GaussianImputer(),
        functools.partial(KSubset, k=2),
        CategoricalLikelihood(),
    )


def data(n=96):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, D, generator=g)
    return x, (x[:, 0] > 0).long()


def params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


class _Interrupt(Exception):
    pass


class _DiesAfter(PathwiseBound):
    # A bound that kills the run after a number of steps, in the middle of an epoch.
    def __init__(self, steps):
        super().__init__(num_masks=3)
        self.steps = steps

    def differentiable_loss(self, *args, **kwargs):
        if self.steps == 0:
            raise _Interrupt
        self.steps -= 1
        return super().differentiable_loss(*args, **kwargs)


def test_resume_after_a_crash_mid_epoch_gives_the_same_parameters(tmp_path):
    x, y = data()
    settings = dict(epochs=4, batch_size=32, lr=1e-2, seed=3)
    reference = make_model()
    fit(reference, PathwiseBound(num_masks=3), x, y, **settings)

    crashed = make_model()
    with pytest.raises(_Interrupt):  # 3 steps per epoch: dies in epoch 3
        fit(crashed, _DiesAfter(7), x, y, run_dir=tmp_path, **settings)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 2

    resumed = make_model(seed=99)  # different init: everything comes from the checkpoint
    result = fit(
        resumed, PathwiseBound(num_masks=3), x, y, run_dir=tmp_path, resume=True, **settings
    )
    assert result.resumed_from == 2 and result.epochs_run == 2
    assert torch.equal(params(resumed), params(reference))
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


def test_reinforce_baseline_is_restored_on_resume(tmp_path):
    x, y = data()
    settings = dict(epochs=3, batch_size=48, lr=1e-2, seed=0)
    reference = make_model()
    fit(reference, ReinforceBound(2), x, y, **settings)
    partial = make_model()
    fit(partial, ReinforceBound(2), x, y, run_dir=tmp_path, **dict(settings, epochs=1))
    resumed = make_model()
    fit(resumed, ReinforceBound(2), x, y, run_dir=tmp_path, resume=True, **settings)
    assert torch.equal(params(resumed), params(reference))


def test_training_reduces_the_loss_and_freeze_keeps_a_part_fixed():
    x, y = data(256)
    model = make_model()
    before = params(model.predictor).clone()
    result = fit(
        model, PathwiseBound(2), x, y, epochs=3, batch_size=64, lr=1e-2, freeze=("predictor",)
    )
    assert torch.equal(params(model.predictor), before)
    assert all(p.requires_grad for p in model.parameters())  # unfrozen afterwards
    result = fit(model, PathwiseBound(2), x, y, epochs=15, batch_size=64, lr=1e-2)
    assert result.losses[-1] < result.losses[0]


def test_a_frozen_predictor_keeps_its_batch_norm_statistics():
    # Freezing makes the predictor a fixed function: in train mode its batch norm would
    # normalise by the batch and overwrite a black box's running statistics.
    x, y = data(256)
    torch.manual_seed(0)
    model = LEX(
        MLP(D, D, (16,)),
        MLP(D, 2, (16,), batch_norm=True),
        GaussianImputer(),
        functools.partial(KSubset, k=2),
        CategoricalLikelihood(),
    )
    before = [b.clone() for b in model.predictor.buffers()]
    fit(model, PathwiseBound(2), x, y, epochs=2, batch_size=64, freeze=("predictor",))
    assert all(torch.equal(b, a) for b, a in zip(before, model.predictor.buffers()))
    fit(model, PathwiseBound(2), x, y, epochs=1, batch_size=64)
    assert not all(torch.equal(b, a) for b, a in zip(before, model.predictor.buffers()))


def test_pretraining_on_random_masks_trains_only_the_predictor():
    x, y = data(256)
    model = make_model()
    selector_before = params(model.selector).clone()
    predictor_before = params(model.predictor).clone()
    pretrain_predictor(model, x, y, epochs=2, batch_size=64, lr=1e-2)
    assert torch.equal(params(model.selector), selector_before)
    assert not torch.equal(params(model.predictor), predictor_before)


def test_bad_input_gets_clear_errors(tmp_path):
    x, y = data()
    model = make_model()
    with pytest.raises(ValueError, match="labels outside"):
        fit(model, PathwiseBound(), x, y + 5, epochs=1)
    with pytest.raises(ValueError, match="NaN"):
        fit(model, PathwiseBound(), x.masked_fill(x > 2, float("nan")), y, epochs=1)
    with pytest.raises(ValueError, match="lengths"):
        fit(model, PathwiseBound(), x, y[:-1], epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, PathwiseBound(), x, y, epochs=0)
    with pytest.raises(ValueError, match="freeze"):
        fit(model, PathwiseBound(), x, y, epochs=1, freeze=("decoder",))
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        fit(model, PathwiseBound(), x, y, epochs=1, run_dir=tmp_path, resume=True)


def test_estimator_parameters_are_trained_by_fit():
    # A learned REINFORCE baseline is optimised by fit alongside the model.
    x, y = data(128)
    baseline = torch.nn.Linear(D, 1)
    before = baseline.weight.detach().clone()
    bound = ReinforceBound(2, baseline_net=baseline)
    fit(make_model(), bound, x, y, epochs=2, batch_size=32, lr=1e-2)
    assert not torch.equal(baseline.weight, before)


def test_pretraining_masks_whole_groups_of_an_image_model():
    # With PatchGrid groups the random masks are drawn per patch, not per pixel.
    from lexppl.imputers import ConstantImputer
    from lexppl.models import PatchGrid
    from lexppl.nets import MLP

    groups = PatchGrid((1, 4, 4), (2, 2))
    seen = []

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Flatten(), MLP(16, 2, (8,)))

        def forward(self, x):
            seen.append(x.detach())
            return self.net(x)

    selector = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4))
    model = LEX(
        selector,
        Recorder(),
        ConstantImputer(0.0),
        IndependentBernoulli,
        CategoricalLikelihood(),
        groups=groups,
    )
    x = torch.rand(64, 1, 4, 4) + 1.0  # no pixel is 0: the zeros are the imputed ones
    y = torch.randint(2, (64,))
    pretrain_predictor(model, x, y, epochs=1, batch_size=64, lr=1e-2)
    dropped = (seen[0] == 0).float().reshape(-1, 1, 2, 2, 2, 2)  # (n, c, gh, ph, gw, pw)
    per_patch = dropped.sum((3, 5))  # each patch all dropped (4) or all kept (0)
    assert ((per_patch == 0) | (per_patch == 4)).all()
    assert 0 < dropped.mean() < 1


def _shrunk_after_one_strong_decay_step(**fit_kwargs):
    # With weight decay far above the loss gradient, Adam's first step moves every decayed
    # entry by lr towards 0; an entry the decay does not reach follows the loss alone.
    x, y = data()
    model = make_model()
    first, last = model.selector[0].weight, model.selector[-1].weight
    before = [first.detach().abs(), last.detach().abs()]
    fit(
        model,
        PathwiseBound(2),
        x,
        y,
        epochs=1,
        batch_size=len(y),
        lr=1e-4,
        weight_decay=1e4,
        **fit_kwargs,
    )
    return [(p.detach().abs() < b).all().item() for p, b in zip((first, last), before)]


def test_decayed_parameters_limit_weight_decay_to_the_parameters_it_returns():
    assert _shrunk_after_one_strong_decay_step() == [True, True]
    only_first = _shrunk_after_one_strong_decay_step(
        decayed_parameters=lambda model: [model.selector[0].weight]
    )
    assert only_first == [True, False]
