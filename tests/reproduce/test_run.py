import json

import pytest

import lexppl.reproduce.realx_table1 as realx_table1
from lexppl.reproduce import run
from lexppl.reproduce.report import write_results


@pytest.fixture
def earlier_run(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.md").write_text("seed 0, complete")
    (out / "settings.json").write_text(json.dumps({"seed": 0}))
    return out


def test_a_run_cut_short_leaves_no_earlier_settings(earlier_run, monkeypatch):
    # An earlier run's settings.json must not sit beside the partial results of a later run in
    # the same folder, where it would describe the wrong seed.
    def cut_short(**kwargs):
        write_results(kwargs["out"], [{"dataset": "S1"}], "partial", "**Partial: up to S1.**")
        raise KeyboardInterrupt

    monkeypatch.setattr(realx_table1, "run", cut_short)
    with pytest.raises(KeyboardInterrupt):
        run("realx-table1", earlier_run, seed=7)
    assert "Partial" in (earlier_run / "results.md").read_text()
    assert not (earlier_run / "settings.json").exists()


def test_a_run_refused_before_any_result_keeps_the_earlier_one_whole(earlier_run, tmp_path):
    # A bad --root is refused before anything is written: the earlier run stays as it was.
    with pytest.raises(ValueError, match="--root"):
        run("realx-mnist", earlier_run, root=tmp_path / "nowhere", quick=True)
    assert (earlier_run / "results.md").read_text() == "seed 0, complete"
    assert json.loads((earlier_run / "settings.json").read_text()) == {"seed": 0}
