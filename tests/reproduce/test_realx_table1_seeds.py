import dataclasses
import math

import pytest
from scipy.stats import t as student_t

from lexppl.distributions import IndependentBernoulli
from lexppl.imputers import ConstantImputer, GaussianImputer
from lexppl.reproduce import run
from lexppl.reproduce.realx_table1 import SETTINGS, _build, run_dataset
from lexppl.reproduce.realx_table1_seeds import MATCHED, METHODS, paired_differences, summarise


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("realx-table1-seeds")
    rows = run("realx-table1-seeds", out, quick=True, seed=0)
    return out, rows


def test_quick_run_writes_every_seed_method_and_dataset(quick, read_csv):
    out, rows = quick
    for name in ("per_seed.csv", "results.csv", "results.md", "differences.csv", "settings.json"):
        assert (out / name).exists()
    per_seed = read_csv(out / "per_seed.csv")
    methods = [*METHODS[:-1], MATCHED, METHODS[-1]]
    expected = {(s, d, m) for s in ("0", "1") for d in ("S1", "S2", "S3") for m in methods}
    assert {(r["seed"], r["dataset"], r["method"]) for r in per_seed} == expected
    assert len(per_seed) == len(expected)
    # The summary: one row per dataset and method, each over both seeds.
    assert [(r["dataset"], r["method"]) for r in rows] == [
        (d, m) for d in ("S1", "S2", "S3") for m in methods
    ]
    assert all(r["seeds"] == 2 for r in rows)
    differences = read_csv(out / "differences.csv")
    # Per dataset: LEX-MI at k = 5 and at the matched k in 4 metrics, TRUTH in 3.
    assert len(differences) == 3 * (4 + 4 + 3)
    assert {r["comparison"] for r in differences} == {
        f"{m} − REAL-X" for m in ("LEX-MI", MATCHED, "TRUTH")
    }
    markdown = (out / "results.md").read_text()
    assert "Paired differences" in markdown and "Seeds 0, 1" in markdown


def test_seed_zero_gives_the_rows_of_the_single_run(quick, read_csv):
    # Seed 0's rows are what realx-table1 (the same settings, seed 0) writes for those methods.
    out, _ = quick
    per_seed = [r for r in read_csv(out / "per_seed.csv") if r["seed"] == "0"]
    settings = SETTINGS["quick"]
    for dataset in ("s1", "s3"):
        single = run_dataset(dataset, settings, 0, "cpu", methods=METHODS)
        ours = {r["method"]: r for r in per_seed if r["dataset"] == dataset.upper()}
        for row in single:
            label = row["method"]
            if "(λ=" in label:  # realx-table1's extra λ: not trained here
                continue
            if label.startswith("LEX-MI ("):
                label = MATCHED
            metrics = ("CFSR", "TPR", "FDR", "ACC", "eACC", "eACC (mask)", "eACC (exact)")
            for metric in (*metrics, "mean selected"):
                value = row[metric]
                assert math.isclose(float(ours[label][metric]), value, abs_tol=1e-9) or (
                    math.isnan(value) and ours[label][metric] == "nan"
                )


def test_lexmi_alone_given_realx_size_trains_the_matched_row():
    # Without REAL-X in the run, its size is given: LEX-MI gets its extra row at that size,
    # and its k = 5 row is unchanged.
    settings = SETTINGS["quick"]
    matched = run_dataset("s1", settings, 0, "cpu", ("LEX-MI",), realx_selected=6.8)
    alone = run_dataset("s1", settings, 0, "cpu", ("LEX-MI",))
    assert [r["k/λ"] for r in matched] == ["k=5", "k=7"]
    assert [r["k/λ"] for r in alone] == ["k=5"]
    assert matched[1]["mean selected"] == 7.0
    for metric in ("TPR", "eACC", "eACC (exact)"):
        assert matched[0][metric] == pytest.approx(alone[0][metric], abs=1e-9)


def test_lexmi_with_bernoulli_masks_is_one_row_at_realx_lambda():
    # REAL-X's selector family and penalty at the paper's λ for REAL-X on S3 (0.1): one row
    # labelled by λ, whatever REAL-X's size, with REAL-X's mean-reduced L1 on its Bernoulli
    # probabilities.
    settings = dataclasses.replace(SETTINGS["quick"], lex_parametrisation="bernoulli")
    rows = run_dataset("s3", settings, 0, "cpu", ("LEX-MI",), realx_selected=6.8)
    assert [r["k/λ"] for r in rows] == ["λ=0.1"]
    assert rows[0]["val ACC per k/λ"].startswith("λ=0.1: ")
    model = _build("LEX-MI", 0.1, settings).model
    assert model.mask_family is IndependentBernoulli
    assert model.regularizer.strength == 0.1 and model.regularizer.reduction == "mean"
    assert isinstance(model.imputer, GaussianImputer)


@pytest.fixture
def training_calls(monkeypatch) -> list[tuple[str, str, dict]]:
    """The presets' calls of ``pretrain_predictor`` and ``fit``, as they happen: ``(name,
    the model's imputer class name, keyword arguments)``."""
    import lexppl.methods.presets as presets

    calls = []

    def spy(name, real):
        def call(model, *args, **kwargs):
            calls.append((name, type(model.imputer).__name__, kwargs))
            return real(model, *args, **kwargs)

        return call

    monkeypatch.setattr(presets, "pretrain_predictor", spy("pretrain", presets.pretrain_predictor))
    monkeypatch.setattr(presets, "fit", spy("fit", presets.fit))
    return calls


def test_lexmi_as_realx_with_gaussian_imputation_changes_only_the_imputer(training_calls):
    # REAL-X's preset at its λ on S1 (0.05), Gaussian imputation in place of 0, trained as
    # REAL-X: the predictor pre-trained for pretrain_epochs with that imputer, then frozen
    # while the selector trains for REAL-X's epochs (not LEX-MI's).
    settings = dataclasses.replace(
        SETTINGS["quick"], lex_parametrisation="realx", epochs=3, lex_epochs=1, pretrain_epochs=2
    )
    rows = run_dataset("s1", settings, 0, "cpu", ("LEX-MI",), realx_selected=6.8)
    assert [r["k/λ"] for r in rows] == ["λ=0.05"]
    calls = training_calls
    assert [c[:2] for c in calls] == [("pretrain", "GaussianImputer"), ("fit", "GaussianImputer")]
    assert calls[0][2]["epochs"] == 2
    assert calls[1][2]["epochs"] == 3 and calls[1][2]["freeze"] == ("predictor",)
    method = _build("LEX-MI", 0.05, settings)
    realx_model = _build("REAL-X", 0.05, settings).model
    assert isinstance(realx_model.imputer, ConstantImputer)
    assert method.model.mask_family is realx_model.mask_family is IndependentBernoulli
    assert method.model.regularizer.strength == realx_model.regularizer.strength == 0.05
    assert method.bound.tuning.eta.item() == 1.0 and method.name == "realx"


def test_lexmi_bernoulli_pretrained_pretrains_then_trains_both_networks(training_calls):
    # As "bernoulli" (LEX-MI's preset, relaxed gradient, lex_epochs) at REAL-X's λ on S1, but
    # the predictor first pre-trained alone with Gaussian imputation for pretrain_epochs, and
    # then not frozen.
    settings = dataclasses.replace(
        SETTINGS["quick"],
        lex_parametrisation="bernoulli-pretrained",
        epochs=3,
        lex_epochs=1,
        pretrain_epochs=2,
    )
    rows = run_dataset("s1", settings, 0, "cpu", ("LEX-MI",), realx_selected=6.8)
    assert [r["k/λ"] for r in rows] == ["λ=0.05"]
    calls = training_calls
    assert [c[:2] for c in calls] == [("pretrain", "GaussianImputer"), ("fit", "GaussianImputer")]
    assert calls[0][2]["epochs"] == 2
    assert calls[1][2]["epochs"] == 1 and calls[1][2]["freeze"] == ()
    method = _build("LEX-MI", 0.05, settings)
    assert method.model.mask_family is IndependentBernoulli
    assert method.name == "lex_multiple_imputation"


def test_unknown_lexmi_mask_distribution_is_refused_before_training():
    with pytest.raises(ValueError, match="Unknown lex_parametrisation 'gumbel'"):
        dataclasses.replace(SETTINGS["quick"], lex_parametrisation="gumbel")


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown methods"):
        run_dataset("s1", SETTINGS["quick"], 0, "cpu", methods=("REAL-X", "LIME"))


def _rows(method, values, metric="TPR"):
    return [
        {"dataset": "S1", "method": method, "seed": s, "k/λ": "k=5", metric: v}
        for s, v in enumerate(values)
    ]


def test_paired_differences_are_seed_by_seed():
    # Differences 1, 2, 3: mean 2, SE = sd / √3 = 1 / √3; the unpaired spread (10 between
    # seeds) must not enter.
    realx = _rows("REAL-X", [50.0, 60.0, 70.0])
    lex = _rows("LEX-MI", [51.0, 62.0, 73.0])
    for row in realx + lex:
        row.update({"eACC": 0.0, "eACC (mask)": 0.0})
    diffs = paired_differences(realx + lex)
    tpr = next(d for d in diffs if d["metric"] == "TPR" and d["comparison"] == "LEX-MI − REAL-X")
    assert tpr["seeds"] == 3
    assert tpr["difference"] == pytest.approx(2.0)
    assert tpr["SE"] == pytest.approx(1 / math.sqrt(3))
    assert tpr["ours"] == pytest.approx(62.0) and tpr["REAL-X"] == pytest.approx(60.0)
    assert tpr["verdict"] == "≥ 0"
    # No matched-k or TRUTH rows: those comparisons have no seeds.
    others = [d for d in diffs if not d["comparison"].startswith("LEX-MI −")]
    assert len(others) == 4 + 3 and all(d["seeds"] == 0 and d["verdict"] == "–" for d in others)


@pytest.mark.parametrize(
    "differences, verdict",
    [
        ([-1.0, 0.0, 1.0, 2.0], "≥ 0"),  # mean 0.5
        ([-3.0, -1.0, 1.0], "not significantly < 0"),  # mean -1, SE 1.15: t = -0.87
        ([-3.0, -2.5, -2.0], "< 0"),  # mean -2.5, SE 0.29: t = -8.7
    ],
)
def test_verdict_is_a_one_sided_t_test(differences, verdict):
    realx = _rows("REAL-X", [0.0] * len(differences))
    lex = _rows("LEX-MI", differences)
    for row in realx + lex:
        row.update({"eACC": 0.0, "eACC (mask)": 0.0})
    tpr = next(d for d in paired_differences(realx + lex) if d["metric"] == "TPR")
    assert tpr["verdict"] == verdict
    # The boundary: the verdict flips where the mean is t_{0.95, n-1} standard errors below 0.
    n = len(differences)
    if verdict != "≥ 0":
        critical = student_t.ppf(0.95, n - 1)
        assert (tpr["difference"] / tpr["SE"] < -critical) == (verdict == "< 0")


def test_summarise_gives_mean_and_standard_error_over_seeds():
    rows = _rows("REAL-X", [50.0, 60.0, 70.0])
    for row in rows:
        row.update({m: 1.0 for m in ("CFSR", "FDR", "AUROC", "eAUROC", "ACC", "eACC")})
        row.update({"eAUROC (mask)": 0.5, "eACC (mask)": 0.5, "mean selected": 4.0})
        row["distinct masks"] = 2
    (summary,) = summarise(rows)
    assert summary["seeds"] == 3 and summary["k/λ"] == "k=5"
    assert summary["TPR"] == pytest.approx(60.0)
    assert summary["TPR SE"] == pytest.approx(10.0 / math.sqrt(3))
    assert summary["CFSR SE"] == 0.0
    assert summary["TPR (paper)"] == 98.4  # REAL-X Table 1, S1
    assert summary["eACC (mask)"] == 0.5 and "eACC (mask) (paper)" not in summary
    # A metric the rows do not have (an older per_seed.csv: no exact evaluator) is NaN.
    assert math.isnan(summary["eACC (exact)"]) and math.isnan(summary["eACC (exact) SE"])
    # A metric a method has not (TRUTH's ACC) stays NaN.
    for row in rows:
        row["ACC"] = math.nan
    assert math.isnan(summarise(rows)[0]["ACC"])


def check_claims(summary: list[dict], differences: list[dict]) -> None:
    """The claims of REAL-X Table 1, and LEX's, that the default seeds study bears out (seeds
    0-4; see results/realx-table1-seeds/results.md). "Below" is a one-sided t-test at 5 % on
    the seeds. Not borne out, hence not asserted: LEX-MI's eACC at k = 5 on S3 under the
    paper's 0-imputed EVAL-X (76.2 % against REAL-X's 77.7 %, 1.4 ± 0.3 points lower; the same
    evaluator gives the ground truth itself 77.2 %); LEX-MI's eACC on S1 under the exact
    evaluator (71.7 % against 72.6 %, 0.9 ± 0.2 lower; at REAL-X's size 0.6 ± 0.1): in three
    seeds of five REAL-X keeps x1..x6 and x11 for every instance, the union of both branches,
    which the exact evaluator, blind to superfluous features, scores as the truth."""
    by_key = {(r["dataset"], r["method"]): r for r in summary}
    seeds = by_key[("S1", "REAL-X")]["seeds"]
    critical = student_t.ppf(0.95, seeds - 1)
    for dataset in ("S1", "S2", "S3"):
        realx = by_key[(dataset, "REAL-X")]
        # REAL-X selects x11 for every instance (paper: 100.0 on S1-S3) ...
        assert realx["CFSR"] >= 99.0
        # ... L2X and INVASE do not (paper: 24.3 / 31.2 / 61.5 and 41.1 / 47.2 / 37.6).
        for method in ("L2X", "INVASE"):
            other = by_key[(dataset, method)]
            se = math.hypot(realx["CFSR SE"], other["CFSR SE"])
            assert realx["CFSR"] - other["CFSR"] > critical * se
    verdict = {(d["dataset"], d["comparison"], d["metric"]): d["verdict"] for d in differences}
    lex, matched = "LEX-MI − REAL-X", f"{MATCHED} − REAL-X"
    for dataset in ("S1", "S2", "S3"):
        # LEX-MI's TPR is at least REAL-X's at k = 5, and not significantly lower at REAL-X's
        # own selection size.
        assert verdict[(dataset, lex, "TPR")] == "≥ 0"
        assert verdict[(dataset, matched, "TPR")] != "< 0"
        # eACC no worse within noise: under the mask-aware evaluator on S1-S3, and under the
        # paper's on S1 and S2 (S3: at the matched k only).
        assert verdict[(dataset, lex, "eACC (mask)")] != "< 0"
        assert verdict[(dataset, matched, "eACC (mask)")] != "< 0"
        assert verdict[(dataset, matched, "eACC")] != "< 0"
        if dataset != "S3":
            assert verdict[(dataset, lex, "eACC")] != "< 0"
        # The mask-aware and the exact evaluators put the ground truth at or above REAL-X's
        # selections.
        assert verdict[(dataset, "TRUTH − REAL-X", "eACC (mask)")] == "≥ 0"
        assert verdict[(dataset, "TRUTH − REAL-X", "eACC (exact)")] == "≥ 0"
        # Under the exact evaluator, F(y | x_R) itself, LEX-MI's eACC is no worse on S2 and S3
        # (S3: +0.6 ± 0.6, where the paper's EVAL-X gives -1.4 ± 0.3).
        if dataset != "S1":
            assert verdict[(dataset, lex, "eACC (exact)")] != "< 0"
            assert verdict[(dataset, matched, "eACC (exact)")] != "< 0"


@pytest.mark.slow
def test_default_seeds_study_claims(tmp_path, read_csv):
    # The default study: 5 seeds × S1-S3 (about 45 minutes on two cores, two workers).
    summary = run("realx-table1-seeds", tmp_path, quick=False, seed=0)
    check_claims(summary, read_csv(tmp_path / "differences.csv"))
