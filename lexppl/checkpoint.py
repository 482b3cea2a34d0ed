"""Atomic checkpoints that carry their config and the library version."""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from lexppl._version import __version__
from lexppl.nets.device import check_device

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or not a lexppl checkpoint."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus the library version) to ``path`` atomically: a partly written
    file never replaces a good one, because the data goes to a temporary file in the same
    folder that is then renamed over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {**state, "lexppl_version": __version__}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file owner-only; give it the mode open() would (0o666 less the
        # umask), so that a saved model can be shared like any other file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    :raises CheckpointError: when the file is missing, corrupt, or not a lexppl checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if (
        map_location is not None
        and not callable(map_location)
        and not isinstance(map_location, dict)
    ):
        map_location = check_device(map_location)  # a bad device is not a corrupt file
    _check_archive(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        if "Weights only load failed" in str(error):  # readable, but not tensors and data only
            raise CheckpointError(
                f"cannot read checkpoint {path}: it holds objects that loading with "
                f"weights_only=True refuses, so it was not written by lexppl's save"
            ) from None
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is corrupt, truncated or not a torch "
            f"checkpoint ({type(error).__name__})"
        ) from None
    if not isinstance(state, dict) or "lexppl_version" not in state:
        raise CheckpointError(f"{path} is not a lexppl checkpoint (no lexppl_version entry).")
    written = state["lexppl_version"]
    if not isinstance(written, str):
        raise CheckpointError(f"{path} is not a lexppl checkpoint (its version is {written!r}).")
    if _release(written) > _release(__version__):
        raise CheckpointError(
            f"{path} was written by lexppl {written}, newer than this lexppl {__version__}: "
            f"upgrade lexppl to read it."
        )
    return state


def _check_archive(path: Path) -> None:
    """Compare every entry of a checkpoint's zip archive with its stored CRC: torch.load does
    not, so damaged weights would otherwise load without an error."""
    if not zipfile.is_zipfile(path):
        return  # torch.load names what is wrong with a file that is no archive at all
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as error:
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is corrupt or truncated "
            f"({type(error).__name__})"
        ) from None
    if damaged is not None:
        raise CheckpointError(
            f"cannot read checkpoint {path}: its entry {damaged!r} is corrupt (checksum mismatch)."
        )


def _release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string, ``"1.2.3.dev4"`` -> ``(1, 2, 3)``."""
    match = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(part) for part in match.group().split(".")) if match else (0,)
