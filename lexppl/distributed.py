r"""
Data-parallel training over several processes (GPUs or machines) for :func:`lexppl.fit`.

With :math:`W` processes and a global mini-batch :math:`B` of :math:`m` rows, process
:math:`r` evaluates the bound on its shard :math:`B_r` (:math:`B` split in :math:`W` contiguous
parts; every process draws the same :math:`B`, because the shuffling generator has the same
seed everywhere) and the summed gradient

.. math::

    \sum_{r=1}^{W} \nabla \frac{1}{m} \sum_{n \in B_r} \ell_n
        = \nabla \frac{1}{m} \sum_{n \in B} \ell_n

is exactly the gradient of the single-process loss on :math:`B` (the bound is a sum over the
data). With equal shards of :math:`m / W` rows this is the average over processes of the
shards' mean-loss gradients, the usual data-parallel rule. Every process then takes the same
optimiser step from the same parameters, so the replicas never drift apart. Random draws
(masks, imputations) use a different stream on every process (seed ``seed + rank``). The
estimators' own objectives (the REBAR/RELAX variance term) are sums over the data too, so their
gradients combine the same way. Whatever makes a datum's term depend on the other rows of its
batch breaks that sum, since each process sees only its shard: :func:`lexppl.fit` refuses batch
normalisation in a trained part and likelihoods that declare ``couples_data`` (the Cox partial
likelihood) when there is more than one process.

Processes are started by ``torchrun``, which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`setup` reads them and initialises the default
process group (backend ``"nccl"`` for CUDA devices, ``"gloo"`` on CPU) unless the script has
already done so.

Example (``torchrun --nproc_per_node=2 train.py``; the same script runs alone with ``python``)::

    import torch.distributed
    from lexppl import fit

    fit(model, bound, x, y, batch_size=1000, device="cuda", distributed=True)
    if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
        torch.save(model.state_dict(), "model.pt")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()

.. note:: Why an explicit all-reduce and not :class:`~torch.nn.parallel.DistributedDataParallel`:
    DDP synchronises gradients only for a backward pass that follows a call of the *wrapped
    module's* ``forward`` (that call arms its reducer). A LEX bound instead runs
    ``model.model`` and the proposal through Pyro's poutine handlers (with two gloo processes,
    a bound evaluated on ``ddp.module.model`` left the gradients different on each process),
    and the trainable tensors
    live in three places: the LEX networks (plain modules registered with ``pyro.module``, or
    ``PyroModule``), an optional proposal guide, and the estimator's own parameters (control
    variates, learned baselines), which are not in any ``nn.Module``. Some parameters may also
    get no gradient in a step (a proposal whose sites are not used, or a process whose shard of
    the last, short batch is empty), which DDP only tolerates with ``find_unused_parameters``.
    One explicit all-reduce of the optimiser's gradients after ``backward`` does not depend on
    how the graph was built. It does not overlap communication with the backward pass as DDP's
    buckets do, so very large networks may synchronise more slowly than under DDP (not
    measured).
"""

from __future__ import annotations

import logging
import math
import os
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "DistributedContext",
    "all_gather",
    "all_reduce_gradients",
    "broadcast_from_main",
    "check_same_everywhere",
    "context_from_environment",
    "fingerprint",
    "run_on_main",
    "setup",
    "shard",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a data-parallel run.

    :param int rank: global index of the process, ``0 <= rank < world_size``.
    :param int world_size: number of processes :math:`W`.
    :param int local_rank: index of the process on its machine (its GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """Whether there is more than one process (collectives are needed)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and logs (rank 0)."""
        return self.rank == 0


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"Environment variable {name}={value!r} is not an integer; it is set by torchrun."
        ) from None


def context_from_environment() -> DistributedContext:
    """The context of an initialised process group, else of torchrun's environment variables,
    else a single process (rank 0 of 1)."""
    local_rank = _env_int("LOCAL_RANK")
    if dist.is_available() and dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
        return DistributedContext(rank, world_size, rank if local_rank is None else local_rank)
    rank, world_size = _env_int("RANK"), _env_int("WORLD_SIZE")
    if rank is None and world_size is None:
        return DistributedContext()
    if rank is None or world_size is None:
        raise ValueError(
            "Found only one of RANK and WORLD_SIZE in the environment; start the processes "
            "with torchrun, which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and "
            "MASTER_PORT."
        )
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(
            f"Expected 0 <= RANK < WORLD_SIZE but got RANK={rank}, WORLD_SIZE={world_size}."
        )
    return DistributedContext(rank, world_size, rank if local_rank is None else local_rank)


def setup(device: str | torch.device) -> tuple[DistributedContext, torch.device]:
    """
    Join the data-parallel run this process belongs to and choose its device.

    Reads the context with :func:`context_from_environment`. For more than one process it
    initialises the default process group from torchrun's variables (``init_method="env://"``)
    if the script has not already called :func:`torch.distributed.init_process_group`, with
    backend ``"nccl"`` when ``device`` is CUDA and ``"gloo"`` otherwise. A CUDA device given
    without an index becomes ``cuda:LOCAL_RANK``, so that each process on a machine gets its
    own GPU. The group is left open for later calls of :func:`lexppl.fit`; end the script with
    :func:`torch.distributed.destroy_process_group`.

    :returns: the context and the device this process trains on.
    """
    device = torch.device(device)
    context = context_from_environment()
    if not context.active:
        return context, device
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this PyTorch build.")
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", context.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if name not in os.environ:
                raise ValueError(
                    f"{name} is not set: start the processes with torchrun (or set "
                    f"MASTER_ADDR and MASTER_PORT) to train on {context.world_size} processes."
                )
        dist.init_process_group(
            backend, init_method="env://", rank=context.rank, world_size=context.world_size
        )
        logger.info(
            "process %d of %d joined the %s process group on %s",
            context.rank,
            context.world_size,
            backend,
            device,
        )
    return context, device


def shard(index: Tensor, context: DistributedContext) -> Tensor:
    """This process's contiguous part of a global mini-batch ``index`` (``W`` parts whose sizes
    differ by at most one; some are empty when ``index`` has fewer than ``W`` rows)."""
    return index.tensor_split(context.world_size)[context.rank]


def all_reduce_gradients(params: Iterable[nn.Parameter]) -> None:
    """
    Sum the gradients of ``params`` over all processes, in place (one collective per dtype).

    A parameter without a gradient on any process keeps ``grad = None`` (an optimiser skips it,
    as it would in one process); one with a gradient somewhere gets the sum, a process without
    one contributing zeros.
    """
    buckets: dict[tuple[torch.dtype, torch.device], list[nn.Parameter]] = {}
    for p in params:
        if p.grad is not None and p.grad.is_sparse:
            raise ValueError("Distributed training does not support sparse gradients.")
        buckets.setdefault((p.dtype, p.device), []).append(p)
    for (dtype, device), group in buckets.items():
        has_grad = torch.tensor([p.grad is not None for p in group], dtype=dtype, device=device)
        flat = torch.cat(
            [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in group]
            + [has_grad]
        )
        dist.all_reduce(flat)
        grads, has_grad = flat[: -len(group)], flat[-len(group) :]
        for p, g, used in zip(group, grads.split([p.numel() for p in group]), has_grad.tolist()):
            p.grad = g.view_as(p) if used > 0 else None  # views of the reduced buffer


def broadcast_from_main(tensors: Iterable[Tensor]) -> None:
    """Overwrite ``tensors`` (parameters, buffers) with rank 0's values, in place."""
    with torch.no_grad():
        for t in tensors:
            dist.broadcast(t.data, src=0)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b))
    return a == b


def check_same_everywhere(settings: dict[str, Any]) -> None:
    """
    Raise a ``ValueError`` on every process when ``settings`` (plain Python values) differ
    between processes, naming the settings and the ranks; otherwise the processes would wait
    for each other forever (a different number of steps) or silently train on different data.
    """
    gathered: list[dict[str, Any] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, settings)
    differing = sorted(
        {
            key
            for other in gathered[1:]
            for key in settings
            if not _same(gathered[0].get(key), other.get(key))
        }
    )
    if differing:
        detail = "; ".join(
            f"{key}: " + ", ".join(f"rank {r}={g.get(key)!r}" for r, g in enumerate(gathered))
            for key in differing
        )
        raise ValueError(
            f"The processes of a distributed run must call fit with the same data and "
            f"settings, but these differ: {detail}."
        )


def fingerprint(t: Tensor) -> str:
    """
    A checksum of a tensor's shape, dtype and values, to compare data across processes and
    with a checkpoint's run: the CRC-32 of its bytes in row-major order, so any rearrangement
    of the values (rows, columns, a flipped image) changes it, unlike sums of the values.

    The same values in the same shape and dtype give the same string on every process and
    device (the bytes are read on the CPU, in a contiguous copy).
    """
    data = t.detach().cpu().contiguous().reshape(-1)
    # uint8 views exist for every dtype, bfloat16 and bool included, whereas numpy has none.
    crc = zlib.crc32(data.view(torch.uint8).numpy())
    return f"{str(t.dtype).removeprefix('torch.')} {tuple(t.shape)} crc32={crc:08x}"


def run_on_main(fn: Callable[[], T], context: DistributedContext) -> T:
    """Call ``fn`` on rank 0 only and hand its result to every process (an exception it raises
    is raised on every process, so that none is left waiting)."""
    if not context.active:
        return fn()
    box: list[Any] = [None]
    if context.is_main:
        try:
            box[0] = (True, fn())
        except Exception as error:  # re-raised below, on every process
            box[0] = (False, error)
    dist.broadcast_object_list(box, src=0)
    ok, value = box[0]
    if not ok:
        raise value
    return value


def all_gather(value: T, context: DistributedContext) -> Sequence[T]:
    """Every process's ``value`` (any picklable object), in rank order."""
    if not context.active:
        return [value]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered
