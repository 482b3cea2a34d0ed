import json

import pytest

import lexppl.reproduce.realx_table1 as realx_table1
from lexppl.reproduce import run


def test_a_run_cut_short_leaves_no_earlier_settings(tmp_path, monkeypatch):
    # An earlier run's settings.json must not sit beside the partial results of a later run in
    # the same folder, where it would describe the wrong seed.
    out = tmp_path / "out"
    out.mkdir()
    (out / "settings.json").write_text(json.dumps({"seed": 0}))

    def cut_short(**kwargs):
        (kwargs["out"] / "results.md").write_text("**Partial: up to S1.**")
        raise KeyboardInterrupt

    monkeypatch.setattr(realx_table1, "run", cut_short)
    with pytest.raises(KeyboardInterrupt):
        run("realx-table1", out, seed=7)
    assert (out / "results.md").exists()
    assert not (out / "settings.json").exists()
