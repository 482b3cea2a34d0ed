"""One training loop for every LEX regime: plain torch over a bound's differentiable loss."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyro
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from lexppl import distributed as dist_utils
from lexppl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lexppl.distributions import IndependentBernoulli
from lexppl.infer.bound import ImportanceWeightedBound
from lexppl.infer.reinforce import ReinforceBound
from lexppl.models.bayesian import BayesianLEX
from lexppl.models.lex import LEX
from lexppl.nets.device import check_device
from lexppl.nets.mode import eval_mode
from lexppl.numerics import flush_denormals

__all__ = ["FitResult", "fit", "pretrain_predictor"]

logger = logging.getLogger(__name__)

#: Adam settings of every LEX experiment (paper App. D).
DEFAULT_LR, DEFAULT_WEIGHT_DECAY = 1e-4, 1e-3


@dataclass
class FitResult:
    """What :func:`fit` returns: per-epoch mean training loss (negated bound per datum)."""

    losses: list[float] = field(default_factory=list)
    epochs_run: int = 0
    resumed_from: int = 0


def _check_xy(x: Tensor, y: Tensor) -> None:
    if x.dim() < 2:
        raise ValueError(f"x must have shape (n_samples, ...); got {tuple(x.shape)}.")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"x and y have different lengths: {x.shape[0]} and {y.shape[0]}.")
    if x.shape[0] == 0:
        raise ValueError("x and y have no rows: training needs at least one datum.")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError("x contains NaN or infinite values.")
    if y.is_floating_point() and not torch.isfinite(y).all():
        raise ValueError("y contains NaN or infinite values.")


def _check_targets_in_support(model: LEX, x: Tensor, y: Tensor, device) -> None:
    # Trace the model with validation on the rows holding the extreme targets, so that a label
    # out of range (or a non-binary Bernoulli target) is reported before training starts.
    if y.is_floating_point() or y.numel() == 0:
        return
    rows = torch.stack([y.argmin(), y.argmax()])
    # In eval mode, so that this two-row trace leaves batch norm statistics as they were.
    try:
        with torch.no_grad(), pyro.validation_enabled(True), eval_mode(model):
            trace = pyro.poutine.trace(model.model).get_trace(
                x[rows].to(device), y[rows].to(device)
            )
            trace.compute_log_prob(lambda name, site: site["is_observed"])
    except ValueError as error:
        if "support" not in str(error):
            raise
        raise ValueError(
            f"y has labels outside the likelihood's support: min {int(y.min())}, max "
            f"{int(y.max())} (e.g. class indices must lie in [0, number of classes))."
        ) from None


@flush_denormals()
def fit(
    model: LEX,
    bound: ImportanceWeightedBound,
    x: Tensor,
    y: Tensor,
    *,
    epochs: int = 10,
    batch_size: int = 1000,
    lr: float = DEFAULT_LR,
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
    decayed_parameters: Callable[[LEX], Iterable[Tensor]] | None = None,
    freeze: Iterable[str] = (),
    guide: nn.Module | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    distributed: bool = False,
) -> FitResult:
    r"""
    Maximise ``bound`` for ``model`` on ``(x, y)`` with Adam, in plain torch.

    Each step draws a mini-batch, evaluates ``bound.differentiable_loss(model.model,
    model.guide, x_b, y_b)`` divided by the batch size (a mean over data, so the learning rate
    does not depend on the batch size) and takes one optimiser step.

    :param LEX model: the model to train (moved to ``device``). A
        :class:`~lexppl.models.BayesianLEX` is refused: train it with
        :func:`~lexppl.models.fit_bayesian`.
    :param bound: a :class:`~lexppl.infer.ImportanceWeightedBound` (pathwise, reinforce, ...).
    :param x: inputs ``(n, ...)``, ``n >= 1`` (integers are cast to the default float dtype);
        :param y: targets ``(n,)`` (class indices or values).
    :param int epochs: passes over the data.
    :param int batch_size: mini-batch size.
    :param float lr: Adam learning rate (paper: 1e-4). :param float weight_decay: (paper: 1e-3),
        Adam's coupled decay, which adds ``weight_decay * p`` to each gradient: an L2 penalty
        :math:`\tfrac{1}{2}\,\text{weight\_decay}\,\|p\|^2` per datum.
    :param decayed_parameters: a function of ``model`` returning the parameters the decay
        reaches (e.g. only the weight matrices, as a Keras ``kernel_regularizer`` does); the
        others, and those of ``guide``, are not decayed. Default: every trained parameter.
    :param freeze: names of LEX parts kept fixed, e.g. ``("predictor",)`` for the fixed-θ regime;
        they also run in eval mode (batch norm statistics kept, dropout off).
    :param guide: a proposal module (e.g. :class:`~lexppl.guides.MaskProposal`) used instead of
        the prior proposal ``model.guide``; its parameters are trained too, which only the bounds
        with ``trains_proposal`` do (:class:`~lexppl.infer.VimcoBound`,
        :class:`~lexppl.infer.ReweightedWakeSleepBound`): the others are refused.
    :param device: ``"cpu"``, ``"cuda"``, ...
    :param int seed: seeds torch (hence Pyro) and the shuffling.
    :param run_dir: when given, writes an atomic ``checkpoint.pt`` after every epoch, then
        that epoch's line of ``metrics.jsonl``. Without ``resume`` the run is a new one: an
        earlier run's ``checkpoint.pt`` and ``metrics.jsonl`` there are deleted (with a logged
        warning).
    :param bool resume: continue from ``run_dir/checkpoint.pt`` if it exists (else start a
        new run); the result is the same as an uninterrupted run with the same seed. The data
        and settings must be the checkpoint's (a ``ValueError`` lists those that differ),
        except ``epochs``, which may grow (equal: the finished run's model is restored),
        ``device`` and the number of processes. ``metrics.jsonl`` is rewritten to the
        checkpoint's epochs.
    :param bool progress: show a progress bar.
    :param bool distributed: data-parallel training over the processes started by
        ``torchrun`` (see :mod:`lexppl.distributed`): joins the process group (``"nccl"`` on
        CUDA, ``"gloo"`` on CPU; a CUDA ``device`` without index becomes ``cuda:LOCAL_RANK``),
        and every process, given the same ``x``, ``y`` and settings, trains on its
        ``batch_size / world_size`` rows of each global mini-batch of ``batch_size`` rows; the
        gradients are summed so that each step equals the one-process step on the whole batch
        (up to floating-point reduction order). ``batch_size`` must be divisible by the number
        of processes. That equality needs per-datum terms, so with more than one process
        models that train batch normalisation (each process would normalise by its own
        shard's statistics) and likelihoods that declare ``couples_data`` (a Cox partial
        likelihood, whose risk sets would shrink to a shard) are refused. Masks and
        imputations are drawn with seed ``seed + rank``. Only rank 0
        writes ``run_dir`` and shows progress; every process returns the same model and
        losses. Without torchrun's variables (``RANK``, ``WORLD_SIZE``) the run is an ordinary
        one-process run, so one script serves both.

    .. note:: With ``distributed=True`` the loss must be a sum over the data, as the bounds of
        :mod:`lexppl.infer` are for LEX models; an estimator's running statistics (the
        moving-average REINFORCE baseline) are kept by each process from its own shards.
    """
    if isinstance(model, BayesianLEX):
        raise ValueError(
            "fit trains point estimates: it would neither set up a BayesianLEX's variational "
            "posterior (its autoguide, built on first use) nor weight its KL term once per "
            "pass over the data. Train it with lexppl.models.fit_bayesian."
        )
    if guide is not None and not getattr(bound, "trains_proposal", False):
        raise ValueError(
            f"{type(bound).__name__} does not train a mask proposal: it would weigh the "
            f"guide's draws and leave its parameters as they are. Train a guide with "
            f"VimcoBound or ReweightedWakeSleepBound, or leave guide=None to propose the masks "
            f"from the model's prior."
        )
    _check_xy(x, y)
    if not x.is_floating_point():  # counts, pixel values: the networks compute in floats
        x = x.to(torch.get_default_dtype())
    for name, value in [("epochs", epochs), ("batch_size", batch_size)]:
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"Expected {name} to be an int >= 1 but got {value!r}.")
    if distributed:
        context = dist_utils.context_from_environment()
        if batch_size % context.world_size:
            raise ValueError(
                f"batch_size={batch_size} is the global mini-batch and must be divisible by the "
                f"number of processes ({context.world_size}), each of which gets an equal share."
            )
        context, device = dist_utils.setup(device)
    else:
        context = dist_utils.DistributedContext()
        world_size = dist_utils.context_from_environment().world_size
        if world_size > 1:
            logger.warning(
                "fit runs in one of %d processes (torchrun) with distributed=False: each "
                "process trains its own model on all the data.",
                world_size,
            )
    device = check_device(device)
    model.to(device)
    if hasattr(bound, "to"):  # the estimator's baseline networks and control variates
        bound.to(device)
    freeze = tuple(freeze)
    for part in freeze:
        if not isinstance(getattr(model, part, None), nn.Module):
            raise ValueError(f"Cannot freeze {part!r}: LEX has no module of that name.")
    # Remember the flags so that a user's module (a black box) is left as it was found.
    frozen = {p: p.requires_grad for part in freeze for p in getattr(model, part).parameters()}
    _check_targets_in_support(model, x, y, device)
    if guide is not None:
        guide.to(device)
    if context.active:
        _check_data_parallel(model, guide, bound, freeze, x, y, device, context, batch_size)
    proposal_params = list(guide.parameters()) if guide is not None else []
    trained = [p for p in model.parameters() if p.requires_grad and p not in frozen]
    trained += [p for p in proposal_params if p.requires_grad]
    if decayed_parameters is None:
        groups = [{"params": trained}]
    else:
        decayed = {id(p) for p in decayed_parameters(model)}
        groups = [
            {"params": [p for p in trained if id(p) in decayed]},
            {"params": [p for p in trained if id(p) not in decayed], "weight_decay": 0.0},
        ]
    # The estimator's own parameters (control variates, learned baselines) train alongside,
    # without weight decay: it would bias them, and they are not part of the model.
    estimator_params = [p for p in bound.parameters() if p.requires_grad]
    if estimator_params:
        groups.append({"params": estimator_params, "weight_decay": 0.0})
    optimizer = torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    trainable = [p for group in groups for p in group["params"]]

    # What the run was asked to do, stored in every checkpoint beside the library version and
    # compared on resume; the fingerprints tell other data from the run's own.
    config = {
        "bound": type(bound).__name__,
        "num_masks": bound.num_masks,
        "num_imputations": bound.num_imputations,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "decayed parameters": sum(p.numel() for p in groups[0]["params"]),
        "freeze": list(freeze),
        "guide": type(guide).__name__ if guide is not None else None,
        "seed": seed,
        "x fingerprint": dist_utils.fingerprint(x),
        "y fingerprint": dist_utils.fingerprint(y),
        "device": str(device),
        "world_size": context.world_size,
    }
    if context.active:
        run = {"resume": resume, "run_dir given": run_dir is not None}
        _join_replicas(model, guide, bound, {**config, **run})

    guide_fn = guide if guide is not None else model.guide
    pyro.set_rng_seed(seed + context.rank)
    shuffle = torch.Generator().manual_seed(seed)
    result, start, state = FitResult(), 0, None
    run_dir = Path(run_dir) if run_dir is not None else None
    checkpoint_path = run_dir / "checkpoint.pt" if run_dir is not None else None
    if resume:
        if checkpoint_path is None:
            raise ValueError("resume=True needs a run_dir holding checkpoint.pt.")
        # Rank 0 reads the checkpoint and hands it to the others (no shared file system needed).
        state = dist_utils.run_on_main(
            lambda: (
                load_checkpoint(checkpoint_path, map_location="cpu" if context.active else device)
                if checkpoint_path.exists()
                else None
            ),
            context,
        )
        if state is not None:
            _check_same_run(state, config, epochs, checkpoint_path)
            _restore(state, model, optimizer, bound, shuffle)
            _restore_rank(state, bound, context, seed)
            if guide is not None:
                guide.load_state_dict(state.get("guide", {}))
            start = result.resumed_from = state["epoch"]
            result.losses = list(state["losses"])
            if start == epochs and context.is_main:
                logger.info("the run in %s has already trained all %d epochs.", run_dir, epochs)
    records = []  # metrics.jsonl's lines, kept in the checkpoint too
    if run_dir is not None and context.is_main:
        records = _start_metrics_log(run_dir, state, resume)
    n = x.shape[0]
    for p in frozen:
        p.requires_grad_(False)
    try:
        show = progress and context.is_main
        bar = tqdm(range(start, epochs), disable=not show, desc="lex", unit="epoch")
        for epoch in bar:
            model.train()
            # A frozen part is a fixed function: its batch norm keeps its running statistics
            # and its dropout is off, as Keras does for a non-trainable layer.
            for part in freeze:
                getattr(model, part).eval()
            order = torch.randperm(n, generator=shuffle)
            total, started = torch.zeros((), device=device), time.perf_counter()
            for begin in range(0, n, batch_size):
                index = order[begin : begin + batch_size]
                # Distributed: this process's rows; the loss stays divided by the global batch
                # size, so that the gradients summed over processes are the full batch's.
                local = dist_utils.shard(index, context) if context.active else index
                optimizer.zero_grad(set_to_none=True)
                if len(local):  # a shard of the last, short batch may be empty
                    xb, yb = x[local].to(device), y[local].to(device)
                    loss = bound.differentiable_loss(model.model, guide_fn, xb, yb) / len(index)
                    loss.backward()
                    total += loss.detach() * len(index)  # no .item() in the inner loop
                if context.active:
                    dist_utils.all_reduce_gradients(trainable)
                optimizer.step()
            if context.active:
                torch.distributed.all_reduce(total)
            epoch_loss = (total / n).item()
            if not math.isfinite(epoch_loss):
                raise FloatingPointError(f"the training loss became {epoch_loss} at epoch {epoch}.")
            result.losses.append(epoch_loss)
            result.epochs_run += 1
            bar.set_postfix(loss=f"{epoch_loss:.4f}")
            if context.is_main:
                logger.debug("epoch %d loss %.5f", epoch + 1, epoch_loss)
            # Every process's random streams and estimator state, for an exact resume.
            ranks = (
                dist_utils.all_gather(_rank_state(bound, device), context)
                if context.active and run_dir is not None
                else None
            )
            if run_dir is not None and context.is_main:
                records.append(
                    {
                        "epoch": epoch + 1,
                        "loss": epoch_loss,
                        "seconds": round(time.perf_counter() - started, 4),
                    }
                )
                save_checkpoint(
                    checkpoint_path,
                    {
                        "config": config,
                        "epoch": epoch + 1,
                        "losses": result.losses,
                        "metrics": records,
                        "model": model.state_dict(),
                        "guide": guide.state_dict() if guide is not None else {},
                        "optimizer": optimizer.state_dict(),
                        "bound": bound.state_dict(),
                        "torch_rng": torch.get_rng_state(),
                        "shuffle_rng": shuffle.get_state(),
                        "cuda_rng": torch.cuda.get_rng_state_all()
                        if torch.cuda.is_available()
                        else [],
                        **({"ranks": ranks} if ranks is not None else {}),
                    },
                )
                # After the checkpoint: a run killed in between has the epoch in its
                # checkpoint, whose records rewrite the log on resume, never twice in the log.
                with open(run_dir / _METRICS_FILE, "a") as f:
                    f.write(json.dumps(records[-1]) + "\n")
    finally:
        for p, requires_grad in frozen.items():
            p.requires_grad_(requires_grad)
    if context.active:
        # Any buffer a step updates follows rank 0, as under DDP.
        dist_utils.broadcast_from_main(model.buffers())
    model.eval()
    return result


def _join_replicas(model, guide, bound, settings: dict) -> None:
    # Refuse processes that would train on different data or settings (they would hang or
    # drift), then start every replica from rank 0's parameters, as DDP does. The settings
    # hold the data's fingerprints.
    tensors = [*model.parameters(), *model.buffers(), *bound.parameters()]
    if guide is not None:
        tensors += [*guide.parameters(), *guide.buffers()]
    dist_utils.check_same_everywhere(
        {
            **{key: value for key, value in settings.items() if key != "device"},
            "parameter and buffer shapes": [(tuple(t.shape), str(t.dtype)) for t in tensors],
        }
    )
    dist_utils.broadcast_from_main(tensors)


def _check_data_parallel(model, guide, bound, freeze, x, y, device, context, batch_size) -> None:
    # Data parallelism equals the one-process step only for a loss that is a sum of per-datum
    # terms, each computed from its own datum alone. Trained batch norm and a likelihood that
    # couples the data break that silently, so they are refused.
    modules = [("", model)] + ([("guide", guide)] if guide is not None else [])
    modules += [(f"bound.{key}", m) for key, m in vars(bound).items() if isinstance(m, nn.Module)]
    in_frozen_part = {id(m) for part in freeze for m in getattr(model, part).modules()}
    batch_norms = [
        ".".join(filter(None, (prefix, name))) or type(module).__name__
        for prefix, root in modules
        for name, module in root.named_modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
        # a frozen part runs in eval mode, on its running statistics (if it keeps them)
        and (id(module) not in in_frozen_part or module.running_mean is None)
    ]
    if batch_norms:
        raise ValueError(
            f"Distributed training cannot train batch normalisation ({', '.join(batch_norms)}): "
            f"each of the {context.world_size} processes would normalise by the statistics of "
            f"its own {batch_size // context.world_size} rows, so a step would not be the "
            f"one-process step on the whole batch. Train in one process, build the networks "
            f"without batch norm (e.g. MLP(..., batch_norm=False)), or freeze the LEX part "
            f"that has it."
        )
    # Such a likelihood (a Cox partial likelihood's risk sets) would only see each shard.
    with torch.no_grad(), eval_mode(model):
        trace = pyro.poutine.trace(model.model).get_trace(x[:2].to(device), y[:2].to(device))
    coupling = [
        f"{name!r} ({type(site['fn']).__name__})"
        for name, site in trace.nodes.items()
        if site["type"] == "sample"
        and site["is_observed"]
        and getattr(site["fn"], "couples_data", False)
    ]
    if coupling:
        raise ValueError(
            f"Distributed training cannot use a likelihood that couples the data: site "
            f"{', '.join(coupling)} makes each datum's term depend on the other rows of its "
            f"batch, but each of the {context.world_size} processes would see only its own "
            f"shard of it, which changes the objective. Train in one process "
            f"(distributed=False)."
        )


# The per-epoch log written to run_dir.
_METRICS_FILE = "metrics.jsonl"

# Settings a resumed run may change: the epochs to reach (checked separately), the device,
# and the number of processes (random streams are then re-seeded, see _restore_rank).
_RESUMABLE_CHANGES = ("epochs", "device", "world_size")


def _check_same_run(state: dict, config: dict, epochs: int, path: Path) -> None:
    # Keys an older checkpoint does not carry are not differences.
    saved = state.get("config", {})
    differing = [
        f"{key} (checkpoint {saved[key]!r}, now {value!r})"
        for key, value in config.items()
        if key not in _RESUMABLE_CHANGES and key in saved and saved[key] != value
    ]
    if differing:
        raise ValueError(
            f"Cannot resume from {path}: it was written by a run with other settings or data: "
            f"{'; '.join(differing)}. Continue it with the same data and settings (only epochs "
            f"may grow), or start a new run with resume=False or another run_dir."
        )
    if state["epoch"] > epochs:
        raise ValueError(
            f"Cannot resume from {path} with epochs={epochs}: its run has already trained "
            f"{state['epoch']} epochs. Ask for epochs >= {state['epoch']}, or start a new run "
            f"with resume=False or another run_dir."
        )


def _start_metrics_log(run_dir: Path, state: dict | None, resume: bool) -> list[dict]:
    # The log holds one line per epoch of the checkpoint it belongs to, and nothing else: a
    # fresh run starts over, and a resumed one goes back to its checkpoint's epochs (a run
    # killed between the two writes has an epoch in one and not the other).
    log, checkpoint = run_dir / _METRICS_FILE, run_dir / "checkpoint.pt"
    if not resume:
        found = [path.name for path in (checkpoint, log) if path.exists()]
        if found:
            logger.warning(
                "%s holds an earlier run; resume=False starts a new one and deletes its %s.",
                run_dir,
                " and ".join(found),
            )
        checkpoint.unlink(missing_ok=True)
        log.unlink(missing_ok=True)
        return []
    if state is None:
        records = []
    elif "metrics" in state:
        records = list(state["metrics"])
    else:  # a checkpoint written before the records were kept in it: trust the log's lines
        lines = log.read_text().splitlines() if log.exists() else []
        records = []
        for line in lines[: state["epoch"]]:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill
                break
    if records or log.exists():
        tmp = log.with_name(f".{log.name}.tmp")
        tmp.write_text("".join(json.dumps(record) + "\n" for record in records))
        os.replace(tmp, log)  # never a half-written log
    return records


def _rank_state(bound, device) -> dict:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {"torch_rng": torch.get_rng_state(), "cuda_rng": cuda, "bound": bound.state_dict()}


def _restore_rank(state, bound, context, seed) -> None:
    # A distributed checkpoint holds each process's random state and estimator state; with the
    # same number of processes every process continues exactly where it stopped.
    ranks = state.get("ranks")
    saved_world_size = state.get("config", {}).get("world_size", 1)
    if saved_world_size == context.world_size:
        if ranks is not None:
            own = ranks[context.rank]
            bound.load_state_dict(own["bound"])
            torch.set_rng_state(own["torch_rng"].cpu())
            if own["cuda_rng"] is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state(own["cuda_rng"].cpu())
        return
    if context.is_main:
        logger.warning(
            "checkpoint written by %d processes, resumed with %d: parameters and optimiser "
            "state are restored, random streams are re-seeded (not an exact continuation).",
            saved_world_size,
            context.world_size,
        )
    pyro.set_rng_seed(seed + context.rank + context.world_size * state["epoch"])


def _restore(state, model, optimizer, bound, shuffle) -> None:
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        bound.load_state_dict(state.get("bound", {}))
        torch.set_rng_state(state["torch_rng"].cpu())
        shuffle.set_state(state["shuffle_rng"].cpu())
        if state.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
    except (KeyError, RuntimeError) as error:
        raise CheckpointError(f"checkpoint does not match this model: {error}") from None


class _HalfSelector(nn.Module):
    # Logits 0 everywhere: every feature (or group of features) kept with probability 1/2.
    def __init__(self, num_logits: int | None = None) -> None:
        super().__init__()
        self.num_logits = num_logits

    def forward(self, x: Tensor) -> Tensor:
        size = self.num_logits if self.num_logits is not None else x[0].numel()
        return torch.zeros(x.shape[0], size, dtype=x.dtype, device=x.device)


def pretrain_predictor(model: LEX, x: Tensor, y: Tensor, **fit_kwargs) -> FitResult:
    r"""
    Train ``model.predictor`` on inputs whose features are kept independently with probability
    1/2 (or, with ``model.groups``, whose groups are) and imputed by ``model.imputer`` otherwise:
    the "surrogate" of REAL-X and the EVAL-X
    objective :math:`\mathbb E_{z \sim \mathcal B(1/2)}[\log p_\theta(y \mid \tilde x(x, z))]`
    (Jethani et al. 2021, eq. 5). The selector is untouched. Keyword arguments go to :func:`fit`.
    """
    groups = model.groups
    random_masks = LEX(
        _HalfSelector(None if groups is None else groups.num_groups),
        model.predictor,
        model.imputer,
        IndependentBernoulli,
        model.likelihood,
        name=f"{model.name}.pretrain" if model.name else "pretrain",
        groups=groups,
        mask_as_input=model.mask_as_input,
    )
    return fit(random_masks, ReinforceBound(), x, y, **fit_kwargs)
