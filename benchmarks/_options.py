"""Checks of the benchmarks' command-line options, made before any work starts: a bad value
stops the script at once with argparse's one-line error naming the option."""

from __future__ import annotations

import argparse
from collections.abc import Iterable

import torch

from lexppl.nets import check_device


def require_at_least(
    parser: argparse.ArgumentParser, bounds: Iterable[tuple[str, float, float]]
) -> None:
    """``parser.error`` for the first ``(option, value, least)`` whose value is below least."""
    for option, value, least in bounds:
        if value < least:
            parser.error(f"{option} must be at least {least}; got {value}")


def parse_device(parser: argparse.ArgumentParser, device: str) -> torch.device:
    """``device`` checked by :func:`lexppl.nets.check_device`, or ``parser.error`` saying why."""
    try:
        return check_device(device)
    except ValueError as error:
        parser.error(str(error))
