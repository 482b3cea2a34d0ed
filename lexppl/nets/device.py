"""The device and dtype of a torch module the user gave (a black box, an evaluator), so that data
can be moved to it whichever device they are on and whatever precision they chose; and torch's
random generators seeded for a block, on every device they live on."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["check_device", "module_device", "module_dtype", "torch_seed"]


@contextlib.contextmanager
def torch_seed(seed: int, device: str | torch.device) -> Iterator[None]:
    """Seed torch's global generator (and ``device``'s, for CUDA) inside the block, e.g. for
    the initialisation and training of a comparator's network or an evaluator's imputations,
    and give the caller's state back afterwards."""
    # torch.manual_seed seeds every initialised CUDA device too: fork them all.
    cuda = torch.cuda.is_initialized() or torch.device(device).type == "cuda"
    with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if cuda else []):
        torch.manual_seed(seed)
        yield


def module_device(module: object, default: torch.device) -> torch.device:
    """The device of ``module``'s first parameter or buffer; ``default`` for a module without
    any (e.g. a closed-form response) or for a plain callable."""
    if isinstance(module, nn.Module):
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            return tensor.device
    return default


def module_dtype(module: object, default: torch.dtype) -> torch.dtype:
    """The dtype of ``module``'s first floating parameter or buffer, in which inputs must reach
    it (a float64 model refuses float32 inputs); ``default`` for a module without any or for a
    plain callable."""
    if isinstance(module, nn.Module):
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
    return default


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device`, or a ValueError that names the problem: an
    unknown device, or an accelerator this machine does not have (rather than torch's error
    from deep inside the first tensor moved there).

    The CPU is always accepted, CUDA and MPS when torch reports them available; any other
    device type (``"xpu"``, ``"hip"``, ``"meta"``, ...) only if a value can be put on it,
    computed with and read back."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"Unknown device {device!r}; expected e.g. 'cpu', 'cuda', 'cuda:1' or 'mps'."
        ) from None
    if resolved.type == "cpu":
        return resolved
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {device!r}: CUDA is not available on this machine.")
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"device {device!r}: this machine has {count} CUDA device(s).")
        return resolved
    if resolved.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {device!r}: MPS is not available on this machine.")
        return resolved
    # torch knows many device types that a given build or machine cannot use, and says so
    # only at the first tensor (an AssertionError, NotImplementedError, ...): probe with one.
    # Reading the value back also refuses "meta", whose tensors hold no data.
    try:
        torch.zeros(1, device=resolved).add(1).cpu()
    except Exception as error:
        # torch's first sentence says why; the rest lists backends and build instructions.
        reason = (str(error).splitlines() or [""])[0].split(". ")[0]
        raise ValueError(
            f"device {device!r} cannot be used on this machine: torch cannot compute there "
            f"({type(error).__name__}: {reason}). Use e.g. 'cpu', 'cuda' or 'mps'."
        ) from None
    return resolved
