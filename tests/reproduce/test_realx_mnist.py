import csv
import importlib.resources
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from lexppl.cli import main
from lexppl.methods import Method
from lexppl.reproduce import run
from lexppl.reproduce.realx_mnist import (
    METHODS,
    SETTINGS,
    _build,
    encoding_signature,
    load_mnist,
    reference,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from fixtures import write_mnist_root

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist-root")
    write_mnist_root(root, num_train=60, num_test=30, folders=("MNIST",))
    return root


@pytest.fixture(scope="module")
def quick(tmp_path_factory, mnist_root):
    out = tmp_path_factory.mktemp("realx-mnist")
    rows = run("realx-mnist", out, root=mnist_root, quick=True, seed=0)
    return out, rows


def test_reference_holds_the_papers_table():
    ref = reference()
    # Every cell of REAL-X Table 2 (FULL has no eACC / eAUROC / k).
    assert len(ref) == 2 + 4 * 5
    assert ref[("FULL", "acc")] == 97.8 and ref[("FULL", "auroc")] == 0.999
    assert ("FULL", "eacc") not in ref
    assert ref[("REAL-X", "eacc")] == 86.7 and ref[("REAL-X", "eauroc")] == 0.989
    assert ref[("REAL-X", "k_or_lambda")] == 5.0
    assert ref[("L2X", "acc")] == 96.0 and ref[("L2X", "eacc")] == 11.4
    assert ref[("L2X", "k_or_lambda")] == 1
    assert ref[("INVASE", "eacc")] == 50.3 and ref[("INVASE", "k_or_lambda")] == 10.0
    assert ref[("BASE-X", "acc")] == 92.8 and ref[("BASE-X", "eauroc")] == 0.899


def test_reference_file_names_its_source():
    text = (
        importlib.resources.files("lexppl.reproduce.references")
        .joinpath("realx_mnist.csv")
        .read_text()
    )
    header = " ".join(line[1:].strip() for line in text.splitlines() if line.startswith("#"))
    assert "Have We Learned to Explain" in header and "Table 2" in header and "2021" in header
    rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
    assert [row["method"] for row in rows] == list(METHODS)
    assert all("Table 2" in row["source"] for row in rows)


def test_quick_run_writes_every_method_beside_the_paper(quick, read_csv):
    out, rows = quick
    table = read_csv(out / "results.csv")
    assert [row["method"] for row in table] == [row["method"] for row in rows] == list(METHODS)
    ref = reference()
    for row in table:
        for label, metric, top in [
            ("ACC", "acc", 100.0),
            ("AUROC", "auroc", 1.0),
            ("eACC", "eacc", 100.0),
            ("eAUROC", "eauroc", 1.0),
        ]:
            paper = ref.get((row["method"], metric))
            assert (row[f"{label} (paper)"] == "") == (paper is None)
            if paper is not None:
                assert float(row[f"{label} (paper)"]) == paper
            if row["method"] == "FULL" and metric.startswith("e"):
                assert row[label] == ""  # FULL is not scored by EVAL-X
                continue
            assert 0.0 <= float(row[label]) <= top
        # The mask-aware evaluator (not in the paper) scores every method but FULL.
        for label, top in [("eACC (mask)", 100.0), ("eAUROC (mask)", 1.0)]:
            if row["method"] == "FULL":
                assert row[label] == ""
            else:
                assert 0.0 <= float(row[label]) <= top
        # The share of images whose selected pixels are all 0, and ACC on the others.
        if row["method"] == "FULL":
            assert row["dark selections"] == row["ACC (lit)"] == ""
        else:
            assert 0.0 <= float(row["dark selections"]) <= 100.0
            assert row["ACC (lit)"] == "" or 0.0 <= float(row["ACC (lit)"]) <= 100.0
    selected = {row["method"]: float(row["mean pixels selected"]) for row in table}
    assert selected["L2X"] == 1.0  # k = 1: exactly one pixel per image
    assert selected["FULL"] == 784.0
    markdown = (out / "results.md").read_text()
    assert "REAL-X Table 2" in markdown and "quick smoke run" in markdown
    settings = json.loads((out / "settings.json").read_text())
    assert settings["n_train"] == SETTINGS["quick"].n_train and settings["seed"] == 0


def _selector_widths(method: Method) -> list[int]:
    return [m.out_features for m in method.model.selector.modules() if isinstance(m, nn.Linear)]


def test_l2x_has_the_papers_selector_and_trains_without_decay(monkeypatch, mnist_root, tmp_path):
    # L2X has no released MNIST code: the paper's 3 x 200 selector, no weight decay. The other
    # methods keep the REAL-X example code's 2 x 100 selector and their presets' decay.
    assert _selector_widths(_build("L2X", SETTINGS["default"])[0]) == [200, 200, 200, 784]
    assert _selector_widths(_build("REAL-X", SETTINGS["default"])[0]) == [100, 100, 784]
    calls = {}
    train = Method.train

    def recording_train(self, x, y, **kwargs):
        calls[self.name] = kwargs
        return train(self, x, y, **kwargs)

    monkeypatch.setattr(Method, "train", recording_train)
    run("realx-mnist", tmp_path, root=mnist_root, quick=True, seed=0)
    assert calls["l2x"]["weight_decay"] == SETTINGS["default"].l2x_weight_decay == 0.0
    assert not any("weight_decay" in calls[name] for name in ("realx", "invase", "basex"))


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="--root"):
        run("realx-mnist", tmp_path / "out", root=None, quick=True)
    with pytest.raises(ValueError, match="--root"):
        run("realx-mnist", tmp_path / "out", root=tmp_path, quick=True)  # no IDX files


def test_missing_test_files_are_named(tmp_path):
    # Only the training files are there: the message names the test files, not the ones present.
    write_mnist_root(tmp_path, folders=("MNIST",))
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / "MNIST" / "raw" / name).unlink()
    load_mnist(tmp_path, "mnist", train=True)
    with pytest.raises(ValueError, match=r"test IDX files.*t10k-images-idx3-ubyte and t10k-labels"):
        load_mnist(tmp_path, "mnist", train=False)


def test_cli_reports_a_missing_root(tmp_path, capsys):
    assert main(["reproduce", "realx-mnist", "--quick", "--out", str(tmp_path / "o")]) == 2
    assert "--root" in capsys.readouterr().err


def test_load_mnist_scales_pixels(mnist_root):
    x, y = load_mnist(mnist_root, "mnist", train=False)
    assert x.shape == (30, 28, 28) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(x.max()) > 0.9
    assert y.tolist() == [i % 10 for i in range(30)]


def _rows(full, l2x_acc, l2x_eacc, realx_eacc):
    return [
        {"method": "FULL", "ACC": full},
        {"method": "REAL-X", "ACC": 93.0, "eACC": realx_eacc},
        {"method": "L2X", "ACC": l2x_acc, "eACC": l2x_eacc},
    ]


def test_encoding_signature_criteria():
    shown = encoding_signature(_rows(97.8, 96.0, 11.4, 86.7), chance=0.1135, n_test=10_000)
    assert shown["l2x_acc_high"] and shown["l2x_eacc_near_chance"] and shown["realx_eacc_high"]
    assert shown["chance_pct"] == pytest.approx(11.35)
    # L2X that does not reach FULL's accuracy, L2X that does not encode, REAL-X that fails.
    assert not encoding_signature(_rows(97.8, 80.0, 11.4, 86.7), 0.1135, 10_000)["l2x_acc_high"]
    missed = encoding_signature(_rows(97.8, 96.0, 60.0, 86.7), 0.1135, 10_000)
    assert not missed["l2x_eacc_near_chance"]
    assert not encoding_signature(_rows(97.8, 96.0, 11.4, 40.0), 0.1135, 10_000)["realx_eacc_high"]


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="../shared/data/mnist absent")
def test_default_run_shows_the_encoding_gap(tmp_path):
    # About 21 minutes on one thread. Asserts what the default run (seed 0, 1 thread) showed:
    # FULL 97.5 %, L2X ACC 96.3 % (within 5 points of FULL, the paper's selection rule) with eACC
    # 12.0 %, REAL-X eACC 93.8 %. L2X alone with the same settings at training seeds 0 and 1
    # gave 95.8 and 95.2 % ACC, 97.5 % on lit selections in both; the bounds are the lowest of
    # the three less 2.5 binomial SE (lit), and FULL - 5 (ACC). Before L2X got the paper's 3 x 200
    # selector and no weight decay (it had the preset's decay, from L2X's synthetic code), two
    # machines gave 87.8 and 81.1 %: with decay it used 18 pixel positions, without 50.
    rows = run("realx-mnist", tmp_path, root=SHARED_DATA, quick=False, seed=0)
    by_method = {row["method"]: row for row in rows}
    assert by_method["FULL"]["ACC"] > 96.0
    signature = json.loads((tmp_path / "settings.json").read_text())["signature"]
    assert signature["l2x_eacc_near_chance"] is True
    assert signature["realx_eacc_high"] is True
    l2x = by_method["L2X"]
    assert signature["l2x_acc_high"] is True
    assert l2x["ACC"] - l2x["eACC"] > 50.0  # the selection encodes
    assert l2x["ACC (lit)"] > 97.1
    realx = by_method["REAL-X"]
    assert realx["ACC"] - realx["eACC"] < 5.0  # REAL-X's selections do not
    # The mask-aware evaluator (not in the paper) tells the same story (L2X 13.2 %, REAL-X
    # 92.3 %): telling observed zeros from unselected pixels does not undo the encoding.
    assert l2x["ACC"] - l2x["eACC (mask)"] > 50.0
    assert realx["ACC"] - realx["eACC (mask)"] < 5.0
    assert math.isfinite(realx["eAUROC"]) and realx["eAUROC"] > 0.95
