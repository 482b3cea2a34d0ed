import csv
import math

import pytest
from torch import nn

from lexppl.data import TrueResponse, load
from lexppl.imputers import GaussianImputer
from lexppl.methods import EvalX
from lexppl.metrics import accuracy
from lexppl.reproduce import run
from lexppl.reproduce.realx_table1 import (
    DATASETS,
    METHODS,
    METRICS,
    SETTINGS,
    _build,
    exact_evaluator,
    fit_evaluators,
    reference,
)

PAPER_METHODS = ("REAL-X", "L2X", "INVASE", "BASE-X")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("realx-table1")
    rows = run("realx-table1", out, quick=True, seed=0)
    return out, rows


def test_reference_holds_the_papers_table():
    ref = reference()
    for metric in (*METRICS, "k or lambda"):
        for method in PAPER_METHODS:
            for dataset in DATASETS:
                assert math.isfinite(ref[(metric, method, dataset)])
    assert len(ref) == 8 * 4 * 3
    # A few cells checked against the paper's Table 1.
    assert ref[("CFSR", "REAL-X", "s2")] == 100.0
    assert ref[("TPR", "REAL-X", "s1")] == 98.4
    assert ref[("CFSR", "L2X", "s3")] == 61.5
    assert ref[("FDR", "INVASE", "s3")] == 1.1
    assert ref[("eAUROC", "INVASE", "s1")] == 0.740
    assert ref[("eACC", "BASE-X", "s2")] == 68.8
    assert ref[("k or lambda", "BASE-X", "s2")] == 0.125
    assert ref[("k or lambda", "L2X", "s3")] == 5


def test_reference_file_names_its_source():
    import importlib.resources

    text = (
        importlib.resources.files("lexppl.reproduce.references")
        .joinpath("realx_table1.csv")
        .read_text()
    )
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "Have We Learned to Explain" in header and "Table 1" in header and "2021" in header
    body = [line for line in text.splitlines() if not line.startswith("#")]
    rows = list(csv.DictReader(body))
    assert rows and all("Table 1" in row["source"] for row in rows)


def test_quick_run_writes_every_method_dataset_and_metric(quick, read_csv):
    out, rows = quick
    assert (out / "results.md").exists() and (out / "results.csv").exists()
    table = read_csv(out / "results.csv")
    assert len(table) == len(rows)
    # One row per method at the paper's k / λ, plus one per other λ tried: REAL-X on S3, and
    # INVASE and BASE-X everywhere (the paper's λ is 0.05 for REAL-X on S1 and S2 only).
    main = {(d.upper(), m) for d in DATASETS for m in METHODS}
    extra = {(d, f"{m} (λ=0.05)") for d in ("S1", "S2", "S3") for m in ("INVASE", "BASE-X")}
    extra.add(("S3", "REAL-X (λ=0.05)"))
    # LEX-MI at REAL-X's mean selection size, rounded, when that is not k = 5.
    for r in rows:
        matched = round(r["mean selected"])
        if r["method"] == "REAL-X" and matched != 5:
            extra.add((r["dataset"], f"LEX-MI (k={matched})"))
    assert [(r["dataset"], r["method"]) for r in table].count(("S1", "INVASE")) == 1
    assert {(r["dataset"], r["method"]) for r in table} == main | extra
    assert len(table) == len(main) + len(extra)
    ref = reference()
    for row in table:
        dataset, method = row["dataset"].lower(), row["method"]
        for metric in METRICS:
            if method == "TRUTH" and metric in ("ACC", "AUROC"):
                assert row[metric] == "nan"  # no predictor of its own
                continue
            ours = float(row[metric])
            assert math.isfinite(ours)
            assert 0.0 <= ours <= (1.0 if "AUROC" in metric else 100.0)
            published = row[f"{metric} (paper)"]
            if method in PAPER_METHODS:
                assert float(published) == ref[(metric, method, dataset)]
            else:
                assert published == ""
        # The mask-aware evaluator's columns (ours only).
        assert 0.0 <= float(row["eACC (mask)"]) <= 100.0
        assert 0.0 <= float(row["eAUROC (mask)"]) <= 1.0
        # The exact evaluator's: a selection holding every feature the response uses (TRUTH,
        # FULL) gets the Bayes classifier's accuracy on the test set.
        assert 0.0 <= float(row["eACC (exact)"]) <= 100.0
        assert 0.0 <= float(row["eAUROC (exact)"]) <= 1.0
        if method in ("TRUTH", "FULL"):
            test = load(dataset, "test", seed=0, n=SETTINGS["quick"].n_test)
            bayes = 100 * accuracy(test.probs, test.y)
            assert float(row["eACC (exact)"]) == pytest.approx(bayes, abs=1e-9)
    markdown = (out / "results.md").read_text()
    assert "REAL-X Table 1" in markdown and "epochs" in markdown
    for metric in METRICS:
        assert f"| {metric} (paper) |" in markdown


def test_fit_evaluators_gives_the_papers_and_the_mask_aware_evalx():
    settings = SETTINGS["quick"]
    train = load("s3", "train", seed=0, n=settings.n_train)
    evaluators = fit_evaluators("s3", train, settings, seed=0, device="cpu")
    assert set(evaluators) == {"EVAL-X", "EVAL-X+mask"}
    assert all(isinstance(e, EvalX) and not e.training for e in evaluators.values())
    assert not evaluators["EVAL-X"].mask_as_input and evaluators["EVAL-X+mask"].mask_as_input
    # The same seed gives the same evaluator (the table and the benchmarks share them).
    again = fit_evaluators("s3", train, settings, seed=0, device="cpu")
    masks = train.truth.float()
    for name, evaluator in evaluators.items():
        assert evaluator.predict_proba(train.x, masks).equal(
            again[name].predict_proba(train.x, masks)
        )
    with pytest.raises(ValueError, match="unknown dataset 's4'"):
        fit_evaluators("s4", train, settings, seed=0, device="cpu")


def test_exact_evaluator_is_the_true_response_under_gaussian_imputation():
    exact = exact_evaluator("s2", "cpu")
    assert isinstance(exact.predictor, TrueResponse) and exact.predictor.name == "s2"
    assert isinstance(exact.imputer, GaussianImputer) and not exact.training
    with pytest.raises(ValueError, match="unknown dataset 'xor'"):
        exact_evaluator("xor", "cpu")


def test_l2x_and_invase_use_the_activation_of_their_code_on_switch_data():
    # L2X's and INVASE's released code use SELU on their switch / Syn4-Syn6 data, of which S1-S3
    # are the INVASE form; the other methods use ReLU.
    settings = SETTINGS["default"]

    def activations(net):
        return {type(layer) for layer in net.modules() if isinstance(layer, (nn.ReLU, nn.SELU))}

    for name, value, expected in [
        ("L2X", 4, nn.SELU),
        ("INVASE", 0.2, nn.SELU),
        ("REAL-X", 0.1, nn.ReLU),
    ]:
        model = _build(name, value, settings).model
        assert activations(model.selector) == activations(model.predictor) == {expected}


def test_quick_run_tries_the_papers_k_and_lambda(quick):
    _, rows = quick
    by_key = {(r["dataset"], r["method"]): r for r in rows}
    assert by_key[("S1", "L2X")]["k/λ"] == "k=4" and by_key[("S3", "L2X")]["k/λ"] == "k=5"
    # λ methods: the paper's λ (the method's row) and 0.05 (an extra row) are both trained.
    tried = by_key[("S2", "BASE-X")]["val ACC per k/λ"]
    assert tried.startswith("λ=0.05: ") and "; λ=0.125: " in tried
    assert by_key[("S2", "BASE-X")]["k/λ"] == "λ=0.125"
    assert by_key[("S2", "BASE-X (λ=0.05)")]["k/λ"] == "λ=0.05"
    assert by_key[("S3", "REAL-X")]["k/λ"] == "λ=0.1"
    assert by_key[("S1", "REAL-X")]["val ACC per k/λ"].startswith("λ=0.05: ")
    assert "; " not in by_key[("S1", "REAL-X")]["val ACC per k/λ"]  # paper's λ is 0.05
    for dataset in DATASETS:
        # L2X and LEX-MI select exactly k features; FULL selects all 11, hence x11.
        for method in ("L2X", "LEX-MI"):
            row = by_key[(dataset.upper(), method)]
            assert row["mean selected"] == float(row["k/λ"].removeprefix("k="))
        full = by_key[(dataset.upper(), "FULL")]
        assert full["mean selected"] == 11.0 and full["CFSR"] == 100.0 and full["TPR"] == 100.0
        truth = by_key[(dataset.upper(), "TRUTH")]
        assert truth["CFSR"] == 100.0 and truth["TPR"] == 100.0 and truth["FDR"] == 0.0
        # S1 / S2: 3 or 5 true features by branch; S3: always 5.
        if dataset == "s3":
            assert truth["mean selected"] == 5.0
        else:
            assert 3.0 < truth["mean selected"] < 5.0


def _diff_se(a: dict, b: dict, metric: str) -> float:
    # Standard error of a difference of two test-set estimates (binomial SE for CFSR / eACC,
    # SE of the per-instance mean for TPR), treated as independent.
    return math.hypot(a[f"{metric} SE"], b[f"{metric} SE"])


def _lex_at_realx_size(rows: list[dict], dataset: str) -> dict:
    # LEX-MI at k = REAL-X's mean selection size, rounded: the extra row, or the k = 5 row.
    realx = next(r for r in rows if (r["dataset"], r["method"]) == (dataset, "REAL-X"))
    k = round(realx["mean selected"])
    label = "LEX-MI" if k == 5 else f"LEX-MI (k={k})"
    return next(r for r in rows if (r["dataset"], r["method"]) == (dataset, label))


def check_claims(rows: list[dict]) -> None:
    """The claims of REAL-X Table 1, and LEX's, that the default reproduction bears out
    (seed 0; see results/realx-table1/results.md). A difference counts when it exceeds 3 SE.
    Not borne out, hence not asserted: INVASE's CFSR on S1 at λ = 0.05 (100 %), the λ the
    paper's rule picks here; LEX-MI's TPR on S1, at k = 5 and at REAL-X's size k = 7 (94.8 and
    97.4 % against REAL-X's 99.0 %, which selects 7.0 features; on the previous machine 94.2
    and 97.6 against 95.6 %: one training run, whose test-set SE does not cover the spread
    between training seeds; over five seeds the claim holds, see test_realx_table1_seeds.py);
    LEX-MI's eACC on S3 under the paper's 0-imputed EVAL-X (77.5 % against 79.8 %; that
    evaluator puts REAL-X's selections above the ground truth's 78.4 %, where the exact
    evaluator F(y | x_R) gives LEX-MI 81.4 %, REAL-X 81.3 % and the truth 82.2 %)."""
    by_key = {(r["dataset"], r["method"]): r for r in rows}
    for dataset in ("S1", "S2", "S3"):
        realx, l2x = by_key[(dataset, "REAL-X")], by_key[(dataset, "L2X")]
        # REAL-X always selects the control-flow feature x11 (paper: 100.0 on S1-S3).
        assert realx["CFSR"] >= 99.0
        # L2X's control-flow rate is well below REAL-X's (paper: 24.3 / 31.2 / 61.5; ours,
        # with SELU networks as L2X's code on switch data, 51.3 / 68.8 / 34.2).
        assert realx["CFSR"] - l2x["CFSR"] > 3 * _diff_se(realx, l2x, "CFSR")
    # INVASE drops x11 (paper: 41.1 / 47.2 / 37.6): at the paper's λ on S1-S3 (on S1 with an
    # empty selection), and at λ = 0.05 on S2 and S3.
    invase_rows = [(d, "INVASE") for d in ("S1", "S2", "S3")]
    invase_rows += [(d, "INVASE (λ=0.05)") for d in ("S2", "S3")]
    for dataset, method in invase_rows:
        realx, invase = by_key[(dataset, "REAL-X")], by_key[(dataset, method)]
        assert realx["CFSR"] - invase["CFSR"] > 3 * _diff_se(realx, invase, "CFSR")
    for dataset in ("S2", "S3"):
        # ... and does so instance-wise, by branch, with few false discoveries (paper: FDR
        # 3.1 / 1.1), not with one global mask.
        invase = by_key[(dataset, "INVASE")]
        assert invase["distinct masks"] > 1 and invase["mean selected"] > 1.0
        assert invase["FDR"] < 5.0
    for dataset in ("S1", "S2", "S3"):
        realx, lex = by_key[(dataset, "REAL-X")], by_key[(dataset, "LEX-MI")]
        matched = _lex_at_realx_size(rows, dataset)
        # LEX-MI's TPR is at least REAL-X's, at the same selection size and at k = 5, on S2
        # and S3.
        if dataset != "S1":
            for ours in (matched, lex):
                assert ours["TPR"] >= realx["TPR"] - 3 * _diff_se(ours, realx, "TPR")
        # eACC no worse than REAL-X's: under the paper's EVAL-X on S1 and S2, and under the
        # mask-aware EVAL-X and the exact evaluator on S1-S3 (both LEX-MI rows; exact, S1:
        # 71.7 and 72.4 against 72.9 %, within 3 SE).
        metrics = ["eACC (mask)", "eACC (exact)"]
        metrics += [] if dataset == "S3" else ["eACC"]
        for metric in metrics:
            for ours in (lex, matched):
                assert ours[metric] >= realx[metric] - 3 * _diff_se(ours, realx, metric)
    for dataset in ("S1", "S3"):
        # The mask-aware evaluator ranks the ground truth above REAL-X's selections (S2: by
        # 1.9 points, 2.9 SE, not asserted).
        realx, truth = by_key[(dataset, "REAL-X")], by_key[(dataset, "TRUTH")]
        metric = "eACC (mask)"
        assert truth[metric] - realx[metric] > 3 * _diff_se(truth, realx, metric)
    for dataset in ("S1", "S2", "S3"):
        # The exact evaluator gives the truth and all features alike the Bayes classifier's
        # accuracy, and REAL-X's selections no more.
        realx, truth = by_key[(dataset, "REAL-X")], by_key[(dataset, "TRUTH")]
        assert truth["eACC (exact)"] == by_key[(dataset, "FULL")]["eACC (exact)"]
        assert truth["eACC (exact)"] >= realx["eACC (exact)"]


@pytest.mark.slow
def test_default_reproduction_claims(tmp_path):
    # The default reproduction (about 22 minutes on one thread, unloaded).
    check_claims(run("realx-table1", tmp_path, quick=False, seed=0))
