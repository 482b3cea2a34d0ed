"""The device of a torch module the user gave (a black box, an evaluator), so that data can be
moved to it whichever device they are on."""

from __future__ import annotations

import itertools

import torch
from torch import nn

__all__ = ["module_device"]


def module_device(module: object, default: torch.device) -> torch.device:
    """The device of ``module``'s first parameter or buffer; ``default`` for a module without
    any (e.g. a closed-form response) or for a plain callable."""
    if isinstance(module, nn.Module):
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            return tensor.device
    return default
