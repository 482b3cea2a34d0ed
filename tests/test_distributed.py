"""Data-parallel training (lexppl.distributed) with two gloo processes on CPU."""

import json
import logging
import multiprocessing
import os
import socket
import subprocess
import sys
import traceback
import warnings

import pytest
import torch

from lexppl import LEX, fit
from lexppl.checkpoint import load_checkpoint
from lexppl.distributed import DistributedContext, context_from_environment, fingerprint, shard
from lexppl.distributions import IndependentBernoulli
from lexppl.imputers import ConstantImputer
from lexppl.infer import EnumerateBound, PathwiseBound, ReinforceBound
from lexppl.models import CategoricalLikelihood
from lexppl.models.examples import explainable_cox, make_survival_data
from lexppl.nets import MLP

D, WORLD_SIZE, TIMEOUT = 3, 2, 120
# 13 rows in global batches of 4: the last batch has one row, so rank 1's shard of it is empty.
SETTINGS = dict(epochs=3, batch_size=4, lr=0.05)
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def make_model(seed=0, dtype=torch.float64):
    # Enumeration over all 2^3 masks with 0-imputation: the loss and its gradient are exact
    # functions of the data, so one process and two must reach the same parameters.
    torch.manual_seed(seed)
    model = LEX(
        MLP(D, D, (8,)), MLP(D, 2, (8,)), ConstantImputer(), IndependentBernoulli,
        CategoricalLikelihood(),
    )  # fmt: skip
    return model.to(dtype)


def data(n=13):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, D, generator=g, dtype=torch.float64)
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).long()


def params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, port, out_dir):
    # One process of a torchrun-like launch: the same environment variables, then lexppl.fit.
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE), LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(1)
    out = {}
    try:
        x, y = data()
        # Rank 1 starts from other weights: fit must start every replica from rank 0's.
        model = make_model(seed=rank)
        result = fit(model, EnumerateBound(), x, y, distributed=True, **SETTINGS)
        out["enumerate"] = (params(model), result.losses)

        # A stochastic estimator, interrupted after 2 epochs and resumed, against one run
        # (in float32: a resumed ReinforceBound rounds its moving-average baseline to the
        # default dtype, which makes float64 resumes inexact even in one process).
        x32, stochastic = x.float(), dict(SETTINGS, lr=0.02, seed=5, distributed=True)
        model = make_model(dtype=torch.float32)
        fit(model, ReinforceBound(2), x32, y, **stochastic)
        out["reinforce"] = params(model)
        run_dir = os.path.join(out_dir, "run")
        first = dict(stochastic, epochs=2)
        fit(make_model(dtype=torch.float32), ReinforceBound(2), x32, y, run_dir=run_dir, **first)
        model = make_model(dtype=torch.float32)
        result = fit(model, ReinforceBound(2), x32, y, run_dir=run_dir, resume=True, **stochastic)
        out["resumed"] = (params(model), result.resumed_from)

        # Steps that would not be the one-process step are refused on every process: batch
        # norm normalises by each shard, and a Cox likelihood's risk sets would shrink to it.
        # A frozen part's batch norm uses its running statistics and trains nowhere.
        torch.manual_seed(0)
        batch_norm = LEX(
            MLP(D, D, (8,)), MLP(D, 2, (8,), batch_norm=True), ConstantImputer(),
            IndependentBernoulli, CategoricalLikelihood(),
        ).double()  # fmt: skip
        try:
            fit(batch_norm, EnumerateBound(), x, y, distributed=True, **SETTINGS)
        except ValueError as error:
            out["batch norm"] = str(error)
        frozen = dict(SETTINGS, epochs=1, freeze=("predictor",))
        fit(batch_norm, EnumerateBound(), x, y, distributed=True, **frozen)
        cox = explainable_cox(D, k=2, hidden=(8,))
        x_cox, y_cox, _ = make_survival_data(16, num_features=D)
        try:
            fit(cox, PathwiseBound(), x_cox, y_cox, distributed=True, **SETTINGS)
        except ValueError as error:
            out["cox"] = str(error)

        # Different data on one process: a clear error on every process, not a hang.
        try:
            fit(make_model(), EnumerateBound(), x, y if rank == 0 else 1 - y, distributed=True)
        except ValueError as error:
            out["mismatch"] = str(error)
        torch.distributed.destroy_process_group()
    except BaseException:
        out["error"] = traceback.format_exc()
    torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))


def _launch(out_dir):
    # Forked processes start in milliseconds (spawned ones would re-import torch and pyro);
    # they run only torch and gloo, never the parent's other threads.
    context = multiprocessing.get_context("fork")
    port = _free_port()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*multi-threaded.*fork", DeprecationWarning)
        processes = [
            context.Process(target=_worker, args=(r, port, out_dir)) for r in range(WORLD_SIZE)
        ]
        for process in processes:
            process.start()
    for process in processes:
        process.join(TIMEOUT)
    hung = [process for process in processes if process.is_alive()]
    for process in hung:
        process.kill()
    if hung:
        pytest.fail(f"{len(hung)} training process(es) did not finish within {TIMEOUT} s")
    assert [process.exitcode for process in processes] == [0] * WORLD_SIZE
    outs = [torch.load(os.path.join(out_dir, f"rank{r}.pt")) for r in range(WORLD_SIZE)]
    for rank, out in enumerate(outs):
        assert "error" not in out, f"rank {rank} failed:\n{out['error']}"
    return outs


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ddp")


@pytest.fixture(scope="module")
def reference():
    # One process on the same global batches. Run before forking, so that the two processes
    # also inherit the modules torch imports on first use (torch._dynamo, by Adam: seconds).
    x, y = data()
    model = make_model()
    result = fit(model, EnumerateBound(), x, y, **SETTINGS)
    return params(model), result.losses


@pytest.fixture(scope="module")
def two_processes(reference, out_dir):
    return _launch(str(out_dir))


def test_two_processes_match_one_process_on_the_same_global_batch(reference, two_processes):
    expected, expected_losses = reference
    (rank0, losses0), (rank1, losses1) = (out["enumerate"] for out in two_processes)
    assert torch.equal(rank0, rank1)  # the replicas take identical steps
    # Float64: only the summation order of the gradients differs from one process.
    torch.testing.assert_close(rank0, expected, rtol=1e-10, atol=1e-12)
    # fit accumulates the epoch loss in a float32 scalar: float32 rounding there.
    torch.testing.assert_close(losses0, expected_losses, rtol=1e-6, atol=0.0)
    assert losses1 == losses0
    # The check has teeth: training on one shard's rows per step (no gradient exchange) ends
    # far from both.
    x, y = data()
    shard_only = make_model()
    fit(shard_only, EnumerateBound(), x, y, **dict(SETTINGS, batch_size=2))
    assert (params(shard_only) - rank0).abs().max() > 1e-3


def test_distributed_resume_continues_every_process_exactly(two_processes, tmp_path):
    for out in two_processes:
        resumed, resumed_from = out["resumed"]
        assert resumed_from == 2
        assert torch.equal(resumed, out["reinforce"])  # rank streams and baselines restored
    # Masks are drawn with seed + rank, yet the replicas stay identical.
    assert torch.equal(two_processes[0]["reinforce"], two_processes[1]["reinforce"])


def test_only_rank_zero_writes_the_run_dir(two_processes, out_dir, tmp_path, caplog):
    run_dir = out_dir / "run"
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]  # written once
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state["config"]["world_size"] == 2 and len(state["ranks"]) == 2
    saved = make_model(dtype=torch.float32)
    saved.load_state_dict(state["model"])
    assert torch.equal(params(saved), two_processes[0]["resumed"][0])
    # One process can take over a two-process checkpoint (random streams are re-seeded).
    (tmp_path / "checkpoint.pt").write_bytes((run_dir / "checkpoint.pt").read_bytes())
    x, y = data()
    with caplog.at_level(logging.WARNING, logger="lexppl.train"):
        settings = dict(SETTINGS, epochs=4, lr=0.02, seed=5, run_dir=tmp_path, resume=True)
        model = make_model(dtype=torch.float32)
        result = fit(model, ReinforceBound(2), x.float(), y, **settings)
    assert result.resumed_from == 3 and result.epochs_run == 1
    assert "written by 2 processes, resumed with 1" in caplog.text


def test_processes_with_different_data_get_a_clear_error(two_processes):
    for out in two_processes:
        assert "must call fit with the same data" in out["mismatch"]
        assert "y fingerprint" in out["mismatch"]


def test_models_whose_shards_do_not_add_up_are_refused(two_processes):
    for out in two_processes:
        assert "cannot train batch normalisation (predictor.2)" in out["batch norm"]
        assert "couples the data: site 'y' (CoxPartialLikelihood)" in out["cox"]


def test_fingerprint_tells_rearranged_data_apart():
    # Every sum of the values is the same for these, which a checksum of sums would miss.
    x = torch.randn(20, 6, generator=torch.Generator().manual_seed(0))
    assert fingerprint(x[:, [1, 0, 2, 3, 4, 5]]) != fingerprint(x)
    assert fingerprint(x.flip(-1)) != fingerprint(x)
    assert fingerprint(x.double()) != fingerprint(x)
    assert fingerprint(x.reshape(10, 12)) != fingerprint(x)
    # Equal data give equal fingerprints, however they are laid out in memory.
    assert fingerprint(x.T.contiguous().T) == fingerprint(x.clone())


def test_batch_size_must_be_divisible_by_the_number_of_processes(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    x, y = data()
    with pytest.raises(ValueError, match=r"batch_size=5 .* divisible by the number of proc"):
        fit(make_model(), EnumerateBound(), x, y, batch_size=5, distributed=True)
    assert not torch.distributed.is_initialized()  # refused before joining any group


def test_without_torchrun_distributed_is_an_ordinary_run(monkeypatch):
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    x, y = data()
    one, other = make_model(), make_model()
    fit(one, ReinforceBound(2), x, y, **SETTINGS)
    fit(other, ReinforceBound(2), x, y, distributed=True, **SETTINGS)
    assert torch.equal(params(one), params(other))
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(ValueError, match="only one of RANK and WORLD_SIZE"):
        context_from_environment()


def test_under_torchrun_without_distributed_each_process_trains_alone(monkeypatch, caplog):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    x, y = data()
    with caplog.at_level(logging.WARNING, logger="lexppl.train"):
        result = fit(make_model(), EnumerateBound(), x, y, epochs=1)
    assert result.epochs_run == 1 and not torch.distributed.is_initialized()
    assert "one of 2 processes (torchrun) with distributed=False" in caplog.text


def test_shards_cover_each_global_batch_once():
    index = torch.arange(10)
    parts = [shard(index, DistributedContext(r, 4)) for r in range(4)]
    assert [len(p) for p in parts] == [3, 3, 2, 2]
    assert torch.equal(torch.cat(parts), index)
    short = [shard(index[:1], DistributedContext(r, 2)) for r in range(2)]
    assert [len(p) for p in short] == [1, 0]


_TORCHRUN_SCRIPT = """
import sys
import torch
import torch.distributed
sys.path.insert(0, {tests!r})
import test_distributed as t
from lexppl import fit
from lexppl.infer import EnumerateBound

torch.set_num_threads(1)
x, y = t.data()
model = t.make_model()
fit(model, EnumerateBound(), x, y, distributed=True, **t.SETTINGS)
if torch.distributed.get_rank() == 0:
    torch.save(t.params(model), {out!r})
torch.distributed.destroy_process_group()
"""


@pytest.mark.slow
def test_torchrun_launch_matches_one_process(reference, tmp_path):
    # The real launcher: torchrun --standalone (a rendezvous on this machine only).
    script, out = tmp_path / "train.py", tmp_path / "params.pt"
    tests = os.path.dirname(os.path.abspath(__file__))
    script.write_text(_TORCHRUN_SCRIPT.format(tests=tests, out=str(out)))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", str(script)]
    subprocess.run(command, check=True, timeout=300, capture_output=True)
    torch.testing.assert_close(torch.load(out), reference[0], rtol=1e-10, atol=1e-12)
