import os
import stat

import pytest
import torch

from lexppl import __version__
from lexppl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def test_round_trip_carries_version_and_config(tmp_path):
    path = save_checkpoint(tmp_path / "a" / "c.pt", {"config": {"k": 3}, "w": torch.ones(2)})
    state = load_checkpoint(path)
    assert state["lexppl_version"] == __version__ and state["config"] == {"k": 3}
    assert not list(path.parent.glob(".*.tmp"))  # the temporary file was renamed away


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "bad.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "bad.pt")
    torch.save({"w": torch.ones(1)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a lexppl checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    assert issubclass(CheckpointError, ValueError)


def test_truncated_file_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"w": torch.randn(1000)})
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_saved_file_has_the_mode_of_an_ordinary_file(tmp_path):
    # The temporary file is owner-only; the checkpoint must not stay so after the rename.
    previous = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "m.pt", {"x": 1})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_damaged_weights_are_refused_by_their_checksum(tmp_path):
    # torch.load reads a zip entry without checking its CRC: flipped bytes in the weights
    # would load as other numbers.
    import zipfile

    path = save_checkpoint(tmp_path / "ok.pt", {"weights": torch.arange(512.0)})
    with zipfile.ZipFile(path) as archive:
        entry = next(i for i in archive.infolist() if i.filename.endswith("data/0"))
    data = bytearray(path.read_bytes())
    start = entry.header_offset + 30 + len(entry.filename.encode()) + len(entry.extra)
    data[start + 100 : start + 164] = bytes(64)  # inside the stored (uncompressed) tensor
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"entry '.*data/0' is corrupt \(checksum"):
        load_checkpoint(path)


def test_versions_and_objects_a_checkpoint_cannot_hold(tmp_path):
    newer = tmp_path / "newer.pt"
    torch.save({"lexppl_version": "99.0.0"}, newer)
    with pytest.raises(
        CheckpointError, match=f"lexppl 99.0.0, newer than this lexppl {__version__}"
    ):
        load_checkpoint(newer)
    torch.save({"lexppl_version": 3}, tmp_path / "number.pt")
    with pytest.raises(CheckpointError, match=r"not a lexppl checkpoint \(its version is 3"):
        load_checkpoint(tmp_path / "number.pt")
    torch.save({"lexppl_version": __version__, "k": range(3)}, tmp_path / "objects.pt")
    with pytest.raises(CheckpointError, match="weights_only=True refuses"):
        load_checkpoint(tmp_path / "objects.pt")
