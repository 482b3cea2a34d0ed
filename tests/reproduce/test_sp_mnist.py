import csv
import json
import math
import sys
from pathlib import Path

import pytest

from lexppl.cli import main
from lexppl.reproduce import run
from lexppl.reproduce.sp_mnist import METHODS, SETTINGS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from fixtures import write_mnist_root

REAL_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
COLUMNS = ["method", "selection_rate", "k", "TPR", "TPR_se", "FDR", "FDR_se", "ACC", "ACC_se"]


def _check_row(row):
    assert row["k"] == round(row["selection_rate"] * 98)  # 4 x 4 patches of 28 x 56
    for name in ("TPR", "FDR", "ACC"):
        assert 0.0 <= row[name] <= 1.0
    # Every sampled mask has exactly k patches and every target panel 49, so per image
    # TPR = (1 - FDR) k / 49; the averages over images keep the identity.
    assert math.isclose(row["TPR"], (1 - row["FDR"]) * row["k"] / 49, rel_tol=1e-9)


def test_quick_run_writes_results_csv_markdown_and_figures(tmp_path):
    root = tmp_path / "data"
    write_mnist_root(root, num_train=40, num_test=10)
    out = tmp_path / "out"
    rows = run("sp-mnist", out=out, root=root, quick=True, seed=0)

    rates = SETTINGS["quick"].rates
    assert [(r["method"], r["selection_rate"]) for r in rows] == [
        (m, rate) for rate in rates for m in METHODS
    ]
    for row in rows:
        _check_row(row)
    with open(out / "results.csv") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0])[: len(COLUMNS)] == COLUMNS
    assert len(table) == len(rows)
    for line, row in zip(table, rows):
        assert line["method"] == row["method"]
        assert math.isclose(float(line["FDR"]), row["FDR"])
    markdown = (out / "results.md").read_text()
    assert "| method | selection_rate | k | TPR |" in markdown
    assert "Finding at rate 0.1: FDR mixture of logistics" in markdown
    assert (out / "curves.png").stat().st_size > 0
    for method in METHODS:
        assert (out / f"importance-{method.replace(' ', '-')}.png").stat().st_size > 0
    settings = json.loads((out / "settings.json").read_text())  # written last, as every table's
    assert settings["seed"] == 0 and settings["rates"] == list(rates)


def test_missing_root_names_the_option(tmp_path):
    with pytest.raises(ValueError, match="--root"):
        run("sp-mnist", out=tmp_path, root=None, quick=True)


def test_cli_without_root_fails_with_one_line(tmp_path, capsys):
    status = main(["reproduce", "sp-mnist", "--quick", "--out", str(tmp_path)])
    assert status == 2
    assert "--root" in capsys.readouterr().err
    assert not (tmp_path / "results.csv").exists()


@pytest.mark.slow
def test_default_reproduction_on_real_data(tmp_path):
    if not ((REAL_DATA / "mnist").is_dir() and (REAL_DATA / "fashion").is_dir()):
        pytest.skip(f"real MNIST / Fashion-MNIST not found under {REAL_DATA}")
    # 10 to 30 minutes on one thread, depending on the load of the machine.
    rows = run("sp-mnist", out=tmp_path, root=REAL_DATA, seed=0)
    assert len(rows) == len(METHODS) * len(SETTINGS["default"].rates)
    for row in rows:
        _check_row(row)
    assert (tmp_path / "curves.png").stat().st_size > 0
    # No assertion of the paper's finding (mixture of logistics with the lowest FDR near a 10 %
    # rate): the recorded runs show it with seeds 0 and 3 and not with 1 and 2 (results/README.md),
    # and seed 0 showed it only after subnormals were flushed (FDR at rate 0.1 before: mixture of
    # logistics 0.123, 0-imputation 0.132, surrogate 0-imputation 0.053; after: 0.047, 0.229,
    # 0.358).
