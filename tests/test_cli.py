"""The ``lexppl`` command line, run in-process through :func:`lexppl.cli.main`."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lexppl.cli import main
from lexppl.demo import METHODS

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from fixtures import write_mnist_root

# Small settings that keep every training run to about a second.
FAST = [
    "--threads",
    "1",
    "--n-train",
    "300",
    "--n-test",
    "100",
    "--num-samples",
    "10",
    "--epochs",
    "1",
    "--batch-size",
    "100",
    "--num-masks",
    "2",
]


# LEX._register_params warns when the predictor is frozen (fix_predictor); not a CLI concern.
def assert_one_line_error(code: int, err: str, expected: str, status: int = 2) -> None:
    assert code == status
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lexppl: error: ")
    assert expected in lines[0]
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """One trained model shared by the explain and evaluate tests."""
    out = tmp_path_factory.mktemp("train")
    assert main(["train", "-q", "--dataset", "s3", "--k", "5", *FAST, "--out", str(out)]) == 0
    return out / "model.pt"


def test_train_writes_model_and_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        ["train", "--dataset", "s3", "--k", "5", "--imputer", "gaussian", *FAST, "--out", str(out)]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert (out / "model.pt").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "s3" and metrics["n"] == 100 and metrics["num_samples"] == 10
    for key in ("acc", "auroc", "tpr", "fdr", "fpr", "control_flow_rate"):
        assert 0.0 <= metrics[key] <= 1.0
    assert 1.0 <= metrics["median_rank"] <= 11.0
    assert "TPR (%)" in captured.out and "CF rate (%)" in captured.out
    assert "training LEX on s3" in captured.err  # INFO log on stderr


def test_train_config_file_and_override(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text(
        'dataset = "s3"\nk = 3\nimputer = "constant"\nepochs = 1\nbatch_size = 100\n'
        "num_masks = 2\nn_train = 300\nn_test = 50\nnum_samples = 5\n"
        f'out = "{(tmp_path / "from-config").as_posix()}"\n'
    )
    assert main(["train", "-q", "--config", str(config), "--k", "4"]) == 0
    capsys.readouterr()
    from lexppl import LEXExplainer

    explainer = LEXExplainer.load(tmp_path / "from-config" / "model.pt")
    assert explainer.k == 4 and explainer.imputer == "constant"


def test_train_a_preset_by_name_and_distributed_without_torchrun(tmp_path, capsys):
    # A preset fixes its own mask family (INVASE: Bernoulli, no k); --distributed outside
    # torchrun is an ordinary one-process run. (INVASE fixes num_masks: FAST without it.)
    out = tmp_path / "invase"
    code = main(
        [
            "train",
            "-q",
            "--dataset",
            "s3",
            "--method",
            "invase",
            "--l1",
            "0.1",
            *FAST[:-2],
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    code = main(
        [
            "train",
            "-q",
            "--dataset",
            "s3",
            "--k",
            "3",
            "--distributed",
            *FAST,
            "--out",
            str(tmp_path / "ddp"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    from lexppl import LEXExplainer

    assert LEXExplainer.load(out / "model.pt").method == "invase"
    assert LEXExplainer.load(tmp_path / "ddp" / "model.pt").distributed is True


def test_example_config_is_valid():
    from lexppl.cli import _read_config

    config = _read_config(str(Path(__file__).parents[1] / "configs" / "s3-gaussian.toml"))
    assert config["dataset"] == "s3" and config["imputer"] == "gaussian"


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_explain_round_trip(checkpoint, tmp_path, suffix, capsys):
    x = np.random.default_rng(0).standard_normal((7, 11))
    source = tmp_path / f"x{suffix}"
    if suffix == ".npy":
        np.save(source, x)
    else:
        np.savetxt(source, x, delimiter=",")
    for select in (False, True):
        target = tmp_path / f"out-{select}{suffix}"
        code = main(
            [
                "explain",
                "--checkpoint",
                str(checkpoint),
                "--input",
                str(source),
                "--output",
                str(target),
                *(["--select"] if select else []),
            ]
        )
        assert code == 0, capsys.readouterr().err
        result = np.load(target) if suffix == ".npy" else np.loadtxt(target, delimiter=",")
        assert result.shape == (7, 11)
        if select:
            assert set(np.unique(result)) <= {0, 1}
            np.testing.assert_array_equal(result.sum(1), 5)  # k = 5
        else:
            assert ((result >= 0) & (result <= 1)).all()
            np.testing.assert_allclose(result.sum(1), 5, atol=1e-3)


def test_explain_csv_with_header(checkpoint, tmp_path):
    source = tmp_path / "x.csv"
    rows = "\n".join(",".join(["0.5"] * 11) for _ in range(3))
    source.write_text(",".join(f"x{i + 1}" for i in range(11)) + "\n" + rows + "\n")
    target = tmp_path / "out.npy"
    args = [
        "explain",
        "--checkpoint",
        str(checkpoint),
        "--input",
        str(source),
        "--output",
        str(target),
    ]
    assert main([*args, "--skip-header"]) == 0
    assert np.load(target).shape == (3, 11)
    assert main(args) == 2  # the header is not numeric


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_and_threads_go_before_or_after_the_command(checkpoint, capsys, where):
    command = ["evaluate", "--checkpoint", str(checkpoint), "--dataset", "s3", "--n", "40"]
    options = ["-q", "--threads", "1"]
    argv = options + command if where == "before" else command + options
    assert main(argv) == 0
    assert capsys.readouterr().err == ""  # no INFO log
    assert main(command) == 0
    assert "evaluating" in capsys.readouterr().err  # the INFO log without -q


def test_evaluate_prints_table(checkpoint, capsys):
    code = main(
        [
            "evaluate",
            "--checkpoint",
            str(checkpoint),
            "--dataset",
            "s3",
            "--n",
            "80",
            "--num-samples",
            "5",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    for name in ("ACC (%)", "AUROC", "TPR (%)", "FDR (%)", "FPR (%)", "CF rate (%)", "median rank"):
        assert name in captured.out


def test_demo_writes_table_and_figures(tmp_path, capsys):
    out = tmp_path / "demo"
    threads = torch.get_num_threads()
    code = main(
        [
            "demo",
            "-q",
            "--rates",
            "0.25,0.5",
            "--epochs",
            "1",
            "--n-train",
            "64",
            "--n-test",
            "20",
            "--num-samples",
            "3",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert torch.get_num_threads() == threads  # the demo's one thread is not left behind
    methods = list(METHODS)
    table, _, others = captured.out.partition("Other selection rates")
    assert "selection rate 0.5;" in table  # the table is at the rate closest to the truth
    for text, rate, k in [(table, "0.5", "64"), (others, "0.25", "32")]:
        lines = [line.split() for line in text.splitlines()]
        for method in methods:
            (cells,) = [c for c in lines if " ".join(c[: len(method.split())]) == method]
            assert cells[len(method.split()) : len(method.split()) + 2] == [rate, k]
    assert "TPR (%)" in table and "FDR (%)" in table and "ACC (%)" in table
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(row["method"], float(row["selection_rate"])) for row in rows] == [
        (method, rate) for rate in (0.25, 0.5) for method in methods
    ]
    for row in rows:
        # with k of 128 pixels always selected, TPR = k/64 * (1 - FDR) exactly, per mask
        tpr, fdr, k = float(row["TPR"]), float(row["FDR"]), int(row["k"])
        assert tpr == pytest.approx(k / 64 * (1 - fdr))
        assert 0 <= float(row["ACC"]) <= 1
    assert "| mixture of logistics imputation |" in (out / "results.md").read_text()
    figures = ["curves.png", *(f"importance-{m.replace(' ', '-')}.png" for m in methods)]
    for name in figures:
        assert (out / name).stat().st_size > 1000, name


@pytest.mark.parametrize(
    "rates, expected",
    [
        ("0,0.5", "selection rates must lie in (0, 1]"),
        ("0.5,1.5", "selection rates must lie in (0, 1]"),
        ("0.5,0.501", "give distinct rates"),
    ],
)
def test_error_demo_bad_rates(rates, expected, tmp_path, capsys):
    code = main(["demo", "-q", "--rates", rates, "--out", str(tmp_path / "demo")])
    assert_one_line_error(code, capsys.readouterr().err, expected)
    assert not (tmp_path / "demo").exists()


def test_usage_error_demo_rates_not_numbers(capsys):
    assert main(["demo", "--rates", "ten"]) == 2
    assert "comma-separated numbers" in capsys.readouterr().err


def test_error_unknown_dataset(capsys):
    code = main(["train", "--dataset", "nope", *FAST])
    assert_one_line_error(code, capsys.readouterr().err, "unknown dataset name 'nope'")


def test_error_unknown_imputer(capsys):
    code = main(["train", "--dataset", "s3", "--k", "5", "--imputer", "magic", *FAST])
    assert_one_line_error(code, capsys.readouterr().err, "Unknown imputer 'magic'")


def test_error_k_larger_than_d(capsys):
    code = main(["train", "--dataset", "s3", "--k", "12", *FAST])
    assert_one_line_error(code, capsys.readouterr().err, "k=12 for D=11")


def test_error_unknown_config_key(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text('dataset = "s3"\nimputation = "gaussian"\n')
    code = main(["train", "--config", str(config)])
    assert_one_line_error(code, capsys.readouterr().err, "unknown key(s) ['imputation']")


@pytest.mark.parametrize(
    "line, expected",
    [
        ('lr = "fast"', "lr must be a number >= 0; got 'fast'"),
        ("selector_hidden = 5", "selector_hidden must be a sequence of layer sizes >= 1"),
        ("selector_hidden = [0]", "selector_hidden must be a sequence of layer sizes >= 1"),
        ("epochs = 2.5", "epochs must be an int >= 1"),
        ('bayesian = "yes"', "bayesian must be True or False"),
        ('task = "regression"', "needs task='classification'"),
    ],
)
def test_error_config_value_of_the_wrong_type(tmp_path, capsys, line, expected):
    config = tmp_path / "bad.toml"
    config.write_text(f'dataset = "s3"\nk = 5\n{line}\n')
    code = main(["train", "--config", str(config), "--out", str(tmp_path / "run")])
    assert_one_line_error(code, capsys.readouterr().err, expected)
    assert not (tmp_path / "run").exists()  # refused before any training


@pytest.mark.parametrize(
    "line, expected",
    [
        ('imputer = ["gaussian"]', "imputer in config"),
        ('estimator = ["pathwise"]', "estimator in config"),
        ("mask = {a = 1}", "mask in config"),
        ('dataset = ["s3"]', "dataset in config"),
        ("out = 5", "out in config"),
        ('num_samples = "x"', "num_samples in config"),
        ('n_test = "x"', "n_test in config"),
        ("num_samples = 0", "num_samples in config"),
        ('root = ["data"]', "root in config"),
    ],
)
def test_error_config_name_or_count_of_the_wrong_type(tmp_path, capsys, line, expected):
    # Names must be strings (a list made the explainer's option lookup raise "unhashable type");
    # counts are checked before training and saving, not after.
    key = line.split()[0]
    settings = {
        "dataset": '"s3"',
        "k": "2",
        "epochs": "1",
        "n_train": "100",
        "n_test": "20",
        "num_samples": "5",
        "out": f'"{(tmp_path / "run").as_posix()}"',
    }
    settings[key] = line.partition(" = ")[2]
    config = tmp_path / "bad.toml"
    config.write_text("".join(f"{name} = {value}\n" for name, value in settings.items()))
    code = main(["train", "--config", str(config)])
    err = capsys.readouterr().err
    assert_one_line_error(code, err, expected)
    assert "Logging error" not in err
    assert not (tmp_path / "run").exists()  # refused before any training


def test_error_unforeseen_option_type_is_one_line(monkeypatch, capsys):
    # A TypeError from checking the options (a type no CLI check foresaw) is still one line.
    from lexppl.explainer import LEXExplainer

    def validate(self):
        raise TypeError("unhashable type: 'list'")

    monkeypatch.setattr(LEXExplainer, "_validate_params", validate)
    code = main(["train", "--dataset", "s3", "--k", "2", *FAST])
    assert_one_line_error(code, capsys.readouterr().err, "unhashable type: 'list'")


@pytest.mark.parametrize("device", ["gpu", "cuda:7" if torch.cuda.is_available() else "cuda"])
@pytest.mark.parametrize("command", ["demo", "reproduce", "explain", "evaluate"])
def test_error_bad_device_every_command(tmp_path, capsys, command, device):
    out = tmp_path / "out"
    argv = {
        "demo": ["demo", "--epochs", "1", "--n-train", "20", "--n-test", "10", "--out", str(out)],
        "reproduce": ["reproduce", "realx-table1", "--quick", "--out", str(out)],
        "explain": ["explain", "--checkpoint", "m.pt", "--input", "x.npy", "--output", "o.npy"],
        "evaluate": ["evaluate", "--checkpoint", "m.pt", "--dataset", "s3"],
    }[command]
    code = main([*argv, "--device", device])
    assert_one_line_error(code, capsys.readouterr().err, f"device {device!r}")
    assert not out.exists()


@pytest.mark.parametrize("device", ["foo", "cuda:7" if torch.cuda.is_available() else "cuda"])
def test_error_bad_device_is_named(checkpoint, tmp_path, capsys, device):
    # Not "the checkpoint is corrupt": the device is what is wrong.
    code = main(
        ["evaluate", "--checkpoint", str(checkpoint), "--dataset", "s3", "--device", device]
    )
    assert_one_line_error(code, capsys.readouterr().err, f"device {device!r}")
    code = main(["train", "--dataset", "s3", "--k", "5", *FAST, "--device", device])
    assert_one_line_error(code, capsys.readouterr().err, f"device {device!r}")


def test_error_empty_npy_input(checkpoint, tmp_path, capsys):
    (tmp_path / "x.npy").write_bytes(b"")
    code = main(
        [
            "explain",
            "--checkpoint",
            str(checkpoint),
            "--input",
            str(tmp_path / "x.npy"),
            "--output",
            str(tmp_path / "o.npy"),
        ]
    )
    assert_one_line_error(code, capsys.readouterr().err, "as a .npy array")


def test_error_bad_toml(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text("dataset = \n")
    code = main(["train", "--config", str(config)])
    assert_one_line_error(code, capsys.readouterr().err, "cannot parse config")


def test_error_missing_checkpoint(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 11)))
    code = main(
        [
            "explain",
            "--checkpoint",
            str(tmp_path / "missing.pt"),
            "--input",
            str(tmp_path / "x.npy"),
            "--output",
            str(tmp_path / "o.npy"),
        ]
    )
    assert_one_line_error(code, capsys.readouterr().err, "checkpoint not found")


def test_error_corrupt_checkpoint(tmp_path, capsys):
    corrupt = tmp_path / "model.pt"
    corrupt.write_bytes(b"\x80\x02 this is not a torch checkpoint \xff\x00" * 10)
    code = main(["evaluate", "--checkpoint", str(corrupt), "--dataset", "s3"])
    assert_one_line_error(code, capsys.readouterr().err, "cannot read checkpoint")


@pytest.mark.parametrize(
    "content, expected",
    [
        (np.zeros((3, 10)), "has 10 features per row but the model expects 11"),
        (np.where(np.eye(3, 11) == 1, np.nan, 0.0), "contains NaN or infinite values"),
    ],
    ids=["wrong-feature-count", "nan"],
)
@pytest.mark.parametrize("suffix", [".csv", ".npy"])
def test_error_bad_input(checkpoint, tmp_path, capsys, content, expected, suffix):
    source = tmp_path / f"x{suffix}"
    if suffix == ".npy":
        np.save(source, content)
    else:
        np.savetxt(source, content, delimiter=",")
    code = main(
        [
            "explain",
            "--checkpoint",
            str(checkpoint),
            "--input",
            str(source),
            "--output",
            str(tmp_path / "o.csv"),
        ]
    )
    assert_one_line_error(code, capsys.readouterr().err, expected)
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("option", ["--input", "--output"])
def test_error_unknown_extension(checkpoint, tmp_path, capsys, option):
    files = {"--input": tmp_path / "x.npy", "--output": tmp_path / "o.npy"}
    np.save(files["--input"], np.zeros((2, 11)))
    files[option] = tmp_path / "file.xlsx"
    code = main(
        [
            "explain",
            "--checkpoint",
            str(checkpoint),
            "--input",
            str(files["--input"]),
            "--output",
            str(files["--output"]),
        ]
    )
    assert_one_line_error(code, capsys.readouterr().err, "unknown")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train", "--epochs", "zero"], "argument --epochs: expected an integer, got 'zero' (see"),
        (["train", "--k", "0"], "expected an integer >= 1, got 0 (see lexppl train --help)"),
        (["explain"], "the following arguments are required: --checkpoint"),
        (["reproduce"], "required: EXPERIMENT (see lexppl reproduce --help)"),
        (["demo", "--rates", "ten"], "comma-separated numbers"),
        (["--bogus"], "unrecognized arguments: --bogus (see lexppl --help)"),
        (["train", "--bogus"], "unrecognized arguments: --bogus (see lexppl train --help)"),
        (["--threads", "0", "demo"], "argument --threads"),
        ([], "required: COMMAND (see lexppl --help)"),
        (["-q"], "required: COMMAND (see lexppl --help)"),
    ],
)
def test_usage_error_is_one_line(capsys, argv, expected):
    # As the module docstring promises: no usage block before the error, exit status 2.
    assert_one_line_error(main(argv), capsys.readouterr().err, expected)


def test_help_offers_only_what_the_cli_can_run(capsys):
    assert main(["train", "--help"]) == 0
    train_help = " ".join(capsys.readouterr().out.split())
    assert main(["evaluate", "--help"]) == 0
    evaluate_help = " ".join(capsys.readouterr().out.split())
    for text in (train_help, evaluate_help):
        assert "--root DIR" in text and "panels-mnist" in text
        assert "celeba-smile" not in text
    assert "ail" not in train_help.partition("published preset (")[2].partition(")")[0]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--method", "ail", "--k", "2"], "method 'ail' explains a black box"),
        (["--dataset", "celeba-smile", "--k", "2"], "'celeba-smile' is not available"),
        (["--dataset", "panels-mnist", "--k", "2"], "give --root DIR"),
    ],
)
def test_error_method_or_dataset_the_cli_cannot_run(tmp_path, capsys, argv, expected):
    if "--dataset" not in argv:
        argv = [*argv, "--dataset", "s3"]
    code = main(["train", *argv, *FAST, "--out", str(tmp_path / "run")])
    assert_one_line_error(code, capsys.readouterr().err, expected)
    assert not (tmp_path / "run").exists()


def test_train_and_evaluate_panels_mnist_from_root(tmp_path, capsys):
    # SP-MNIST from a tiny IDX folder: root from the config for train, --root for evaluate.
    root = tmp_path / "data"
    write_mnist_root(root, num_train=50, num_test=10)
    out = tmp_path / "run"
    config = tmp_path / "panels.toml"
    config.write_text(
        f'dataset = "panels-mnist"\nroot = "{root.as_posix()}"\nk = 50\nepochs = 1\n'
        f'num_masks = 2\nbatch_size = 100\nnum_samples = 3\nout = "{out.as_posix()}"\n'
    )
    code = main(["train", "-q", "--threads", "1", "--config", str(config)])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "panels-mnist" and metrics["n"] == 10
    argv = ["evaluate", "-q", "--checkpoint", str(out / "model.pt"), "--dataset", "panels-fashion"]
    code = main([*argv, "--root", str(root), "--num-samples", "3"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "TPR (%)" in captured.out


def test_help_via_python_m():
    result = subprocess.run(
        [sys.executable, "-m", "lexppl", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for command in ("train", "explain", "evaluate", "demo"):
        assert command in result.stdout


@pytest.mark.filterwarnings("default::lexppl.EmptySelectionWarning")
def test_a_warning_is_one_line(tmp_path, capsys):
    # S1 with Gaussian imputation at REAL-X's λ: the Bernoulli selector stops selecting.
    options = ["--mask", "bernoulli", "--l1", "0.05", "--imputer", "gaussian", "--lr", "1e-3"]
    options += ["--epochs", "5", "--batch-size", "200", "--n-train", "2000", "--n-test", "100"]
    options += ["--num-samples", "10", "--threads", "1", "--out", str(tmp_path)]
    assert main(["train", "-q", "--dataset", "s1", *options]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("lexppl: warning: The trained selector keeps no feature for ")
