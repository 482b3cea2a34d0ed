"""
Floating-point settings for training on the CPU.

A weight whose input is always 0 (the border pixels of MNIST) gets no gradient from the data,
and weight decay shrinks it towards 0 until it is *subnormal* (below
``torch.finfo(torch.float32).tiny``, about 1.2e-38). Many x86 CPUs compute with subnormal operands
tens of times more slowly, so a matrix product with such a weight matrix slows down although
its result does not change: on MNIST, an L2X training step went from 10 ms to 50 ms after four
epochs. TensorFlow, in which the baselines' code is written, flushes subnormals to zero in its
CPU kernels by default; :func:`flush_denormals` does the same for a block of torch code, and
:func:`lexppl.fit`, the evaluators' and comparators' training loops and every reproduction run
inside it. The benchmark ``benchmarks/denormals.py`` measures the difference.

The setting is per thread, and torch offers no way to reach the threads of its intra-op pool:
with ``torch.get_num_threads() > 1``, the parts of a parallel operation computed by the other
threads still see subnormals (see :func:`flush_denormals`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["flush_denormals", "flushing_denormals"]


def flushing_denormals() -> bool:
    """Whether torch currently flushes subnormal floats to zero on the CPU (this thread)."""
    # torch has a setter and no getter: probe with a subnormal float32.
    return torch.tensor([1e-39]).mul(1.0).item() == 0.0


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """
    Flush subnormal floats to zero on the CPU inside the block (or the decorated function), as
    TensorFlow does, and restore the previous setting afterwards.

    Values smaller in magnitude than ``torch.finfo(dtype).tiny`` become 0: results change only
    below that size, and products with always-zero inputs stop running slowly.
    ``torch.set_flush_denormal`` acts on the calling thread; where the CPU does not support it,
    this does nothing. CUDA kernels are not affected.

    **Limitation: the calling thread only.** torch's intra-op worker threads keep their own
    setting, and torch has no call that reaches them, so with ``torch.get_num_threads() > 1``
    an operation split across threads flushes only the part the calling thread computes (with
    2 threads, half of a large elementwise product's subnormal results survive). The flushing
    is complete with ``torch.set_num_threads(1)``; otherwise the slow-down is reduced, not
    removed. :func:`flushing_denormals` reports the calling thread's setting only.

    Example::

        with flush_denormals():
            for xb, yb in loader:
                ...
    """
    before = flushing_denormals()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if not before:
            torch.set_flush_denormal(False)
