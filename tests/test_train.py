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


def _dies_after(steps):
    # A PathwiseBound that kills the run after a number of steps, in the middle of an epoch
    # (the bound itself, not a subclass: a resumed run must use the checkpoint's bound).
    bound = PathwiseBound(num_masks=3)
    loss, remaining = bound.differentiable_loss, [steps]

    def dying(*args, **kwargs):
        if remaining[0] == 0:
            raise _Interrupt
        remaining[0] -= 1
        return loss(*args, **kwargs)

    bound.differentiable_loss = dying
    return bound


def test_resume_after_a_crash_mid_epoch_gives_the_same_parameters(tmp_path):
    x, y = data()
    settings = dict(epochs=4, batch_size=32, lr=1e-2, seed=3)
    reference = make_model()
    fit(reference, PathwiseBound(num_masks=3), x, y, **settings)

    crashed = make_model()
    with pytest.raises(_Interrupt):  # 3 steps per epoch: dies in epoch 3
        fit(crashed, _dies_after(7), x, y, run_dir=tmp_path, **settings)
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


def test_fit_refuses_a_bayesian_lex():
    # fit would build the optimiser before the autoguide's lazily created parameters (so the
    # posterior would never move) and count the KL term in every mini-batch.
    from lexppl.models import BayesianLEX

    x, y = data()
    torch.manual_seed(0)
    model = BayesianLEX(
        MLP(D, D, (8,)), MLP(D, 2, (8,)), GaussianImputer(), IndependentBernoulli,
        CategoricalLikelihood(),
    )  # fmt: skip
    with pytest.raises(ValueError, match="fit_bayesian"):
        fit(model, PathwiseBound(2), x, y, epochs=1)


def test_fit_refuses_a_guide_its_bound_does_not_train():
    from lexppl.guides import MaskProposal
    from lexppl.infer import EnumerateBound, ReweightedWakeSleepBound, VimcoBound

    x, y = data()
    assert VimcoBound.trains_proposal and ReweightedWakeSleepBound.trains_proposal
    for bound in (PathwiseBound(2), ReinforceBound(2), EnumerateBound()):
        assert not bound.trains_proposal
        model = make_model()
        proposal = MaskProposal.from_prior(model, D, num_classes=2, hidden=(8,))
        with pytest.raises(ValueError, match="VimcoBound or ReweightedWakeSleepBound"):
            fit(model, bound, x, y, guide=proposal, epochs=1)


def _two_epoch_run(run_dir):
    x, y = data()
    settings = dict(epochs=2, batch_size=32, lr=1e-2, seed=3, run_dir=run_dir)
    fit(make_model(), PathwiseBound(2), x, y, **settings)
    return x, y, settings


def test_resume_refuses_other_settings_or_data(tmp_path):
    x, y, settings = _two_epoch_run(tmp_path)
    resumed = dict(settings, epochs=3, resume=True)
    changes = {
        "lr": dict(lr=0.0),
        "batch_size": dict(batch_size=16),
        "seed": dict(seed=4),
        "freeze": dict(freeze=("predictor",)),
    }
    for key, change in changes.items():
        with pytest.raises(ValueError, match=rf"other settings or data: .*{key} \(checkpoint"):
            fit(make_model(), PathwiseBound(2), x, y, **dict(resumed, **change))
    with pytest.raises(ValueError, match=r"num_masks \(checkpoint 2, now 5\)"):
        fit(make_model(), PathwiseBound(5), x, y, **resumed)
    # The same values with two columns swapped: other data, though every row sum is the same.
    with pytest.raises(ValueError, match=r"x fingerprint \(checkpoint"):
        fit(make_model(), PathwiseBound(2), x[:, [1, 0, *range(2, D)]], y, **resumed)
    with pytest.raises(ValueError, match=r"already trained 2 epochs\. Ask for epochs >= 2"):
        fit(make_model(), PathwiseBound(2), x, y, **dict(resumed, epochs=1))
    # Equal epochs: the finished run's model, and nothing trained.
    model = make_model(seed=99)
    result = fit(model, PathwiseBound(2), x, y, **dict(resumed, epochs=2))
    assert result.resumed_from == 2 and result.epochs_run == 0 and len(result.losses) == 2
    finished = make_model()
    finished.load_state_dict(load_checkpoint(tmp_path / "checkpoint.pt")["model"])
    assert torch.equal(params(model), params(finished))


def test_resume_reads_a_checkpoint_without_the_newer_settings(tmp_path):
    # A checkpoint written before the data fingerprints and the metrics records were kept in
    # it: missing settings are not differences, and its log is cut back to its epochs (an
    # older run wrote the log first, so a kill could leave one line too many).
    from lexppl.checkpoint import save_checkpoint

    x, y, settings = _two_epoch_run(tmp_path)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    for key in ("x fingerprint", "y fingerprint", "guide"):
        del state["config"][key]
    del state["metrics"]
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    log = tmp_path / "metrics.jsonl"
    log.write_text(log.read_text() + json.dumps({"epoch": 3, "loss": 1.0}) + "\n")
    result = fit(make_model(), PathwiseBound(2), x, y, **dict(settings, epochs=3, resume=True))
    assert result.resumed_from == 2 and result.epochs_run == 1
    assert [json.loads(line)["epoch"] for line in log.read_text().splitlines()] == [1, 2, 3]


def test_a_new_run_replaces_an_earlier_run_in_its_run_dir(tmp_path):
    x, y, settings = _two_epoch_run(tmp_path)
    fit(make_model(), PathwiseBound(2), x, y, **dict(settings, epochs=1, lr=5e-2))
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1]
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["epoch"] == 1 and state["config"]["lr"] == 5e-2


@pytest.mark.parametrize("killed", ["before", "after"])
def test_a_run_killed_around_its_checkpoint_resumes_with_one_log_line_per_epoch(
    tmp_path, monkeypatch, killed
):
    # Killed while (before) or just after (after) writing the checkpoint of epoch 2: the
    # resumed log has every epoch once.
    import lexppl.train

    save = lexppl.train.save_checkpoint

    def dies_at_epoch_2(path, state):
        if state["epoch"] == 2 and killed == "before":
            raise _Interrupt
        save(path, state)
        if state["epoch"] == 2:
            raise _Interrupt

    x, y = data()
    settings = dict(epochs=4, batch_size=32, lr=1e-2, seed=5, run_dir=tmp_path)
    monkeypatch.setattr(lexppl.train, "save_checkpoint", dies_at_epoch_2)
    with pytest.raises(_Interrupt):
        fit(make_model(), PathwiseBound(2), x, y, **settings)
    monkeypatch.setattr(lexppl.train, "save_checkpoint", save)
    fit(make_model(), PathwiseBound(2), x, y, resume=True, **settings)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in records] == [1, 2, 3, 4]
    losses = load_checkpoint(tmp_path / "checkpoint.pt")["losses"]
    assert [record["loss"] for record in records] == losses


def test_fit_refuses_empty_data_and_casts_integer_inputs():
    x, y = data()
    with pytest.raises(ValueError, match="no rows"):
        fit(make_model(), PathwiseBound(), x[:0], y[:0], epochs=1)
    counts = (x * 10).round().long()
    settings = dict(epochs=1, batch_size=32, seed=2)
    cast, floats = make_model(), make_model()
    fit(cast, PathwiseBound(2), counts, y, **settings)
    fit(floats, PathwiseBound(2), counts.float(), y, **settings)
    assert torch.equal(params(cast), params(floats))
