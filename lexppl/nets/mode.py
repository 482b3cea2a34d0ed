"""A context in which a module runs in eval mode, each submodule's own mode restored after."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

__all__ = ["eval_mode"]


@contextlib.contextmanager
def eval_mode(module: object) -> Iterator[object]:
    """
    Run ``module`` in eval mode inside the block, then give every submodule back the mode it
    had (``module.train(flag)`` would not: it sets one flag on all of them). A no-op for a
    plain callable (e.g. a black box's ``predict_proba``).

    Used where the library traces a model outside training (checking targets, setting up a
    guide) or queries a black box, so that the call leaves batch norm running statistics as
    they were and runs without dropout.
    """
    if not isinstance(module, nn.Module):
        yield module
        return
    modes = {sub: sub.training for sub in module.modules()}
    module.eval()
    try:
        yield module
    finally:
        for sub, training in modes.items():
            sub.training = training
