"""The built-in Switching Panels demo (:mod:`lexppl.demo`): its settings, and (slow) its claim
at the true selection rate. A tiny end-to-end run of `lexppl demo` is in tests/test_cli.py."""

import pytest
import torch

from lexppl.demo import SELECTION_RATES, TRUE_SELECTION_RATE, closest_rate, run_demo


def test_closest_rate():
    assert closest_rate([0.1, 0.25, 0.5]) == 0.5
    assert closest_rate([0.1, 0.3, 0.6]) == 0.6
    assert closest_rate([0.4, 0.6]) == 0.4  # a tie goes to the smaller rate
    assert closest_rate([0.2], target=0.9) == 0.2


def test_default_rates_include_the_true_rate():
    assert closest_rate(SELECTION_RATES) == TRUE_SELECTION_RATE


@pytest.mark.parametrize(
    "options, expected",
    [
        (dict(rates=[]), "rates is empty"),
        (dict(rates=[float("nan")]), "must lie in (0, 1]"),
        (dict(epochs=0), "epochs must be an int >= 1"),
        (dict(pretrain_epochs=-1), "pretrain_epochs must be an int >= 0"),
        (dict(num_samples=2.5), "num_samples must be an int >= 1"),
    ],
)
def test_bad_settings_raise_before_training(options, expected, tmp_path):
    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        run_demo(tmp_path / "demo", **options)
    assert not (tmp_path / "demo").exists()


def test_unknown_method_raises(tmp_path):
    with pytest.raises(ValueError, match="valid names are"):
        run_demo(tmp_path / "demo", methods=["gaussian imputation"])


@pytest.mark.slow
def test_multiple_imputation_selects_less_outside_the_digit_panel(tmp_path):
    # The demo's claim at the true selection rate, with its default settings and seed 0: the
    # mixture of logistics puts fewer of its pixels in the photograph than 0-imputation. A
    # per-image FDR lies in [0, 1], so each mean over the n test images has a standard error
    # of at most 0.5 / sqrt(n); the gap must exceed 3 standard errors of the difference.
    methods = ["0-imputation", "mixture of logistics imputation"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as `lexppl demo` runs it
    try:
        rows = run_demo(tmp_path / "demo", rates=[TRUE_SELECTION_RATE], methods=methods)
    finally:
        torch.set_num_threads(threads)
    fdr = {row["method"]: row["FDR"] for row in rows}
    n = 359  # test images
    assert fdr[methods[0]] - fdr[methods[1]] > 3 * (2 * 0.25 / n) ** 0.5
