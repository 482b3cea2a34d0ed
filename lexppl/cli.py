"""
The ``lexppl`` command line: ``train``, ``explain``, ``evaluate`` and ``demo``.

Examples::

    lexppl train --dataset s3 --k 5 --imputer gaussian --epochs 30 --out runs/s3
    lexppl train --config configs/s3-gaussian.toml --epochs 5      # flags override the file
    lexppl explain --checkpoint runs/s3/model.pt --input x.csv --output importance.csv
    lexppl evaluate --checkpoint runs/s3/model.pt --dataset s3 --split test
    lexppl demo                          # Switching Panels, four imputations (as paper Fig. 5)

Every subcommand logs its progress at INFO level on stderr (``-q`` hides it, ``-v`` adds
progress bars). Errors a user can fix (bad options, missing or corrupt files, wrong shapes)
are reported as a single line ``lexppl: error: <message>`` with exit status 2; an interrupt
exits with status 1. A usage error (an unknown option, a bad option value) is one line too,
``lexppl: error: <message> (see lexppl COMMAND --help)``, with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from lexppl import data as lexdata
from lexppl._version import __version__
from lexppl.evaluation import evaluate_explainer
from lexppl.explainer import ESTIMATORS, IMPUTERS, MASKS, METHODS, LEXExplainer
from lexppl.nets import check_device

__all__ = ["main"]

logger = logging.getLogger(__name__)

PROG = "lexppl"

#: CPU threads per subcommand when --threads is not given (None: torch's default). The demo's
#: mini-batches of 64 small images run faster on one thread than on contended cores.
_DEFAULT_THREADS: dict[str, int | None] = {"demo": 1}

#: Keys of a ``train`` config file beyond the LEXExplainer parameters.
_RUN_KEYS = ("dataset", "root", "n_train", "n_test", "num_samples", "out")

#: Config keys whose value is a name or a path (a string), and those whose value is a count (an
#: int >= 1) or a seed (an int >= 0). The explainer checks the types of its other options.
_STRING_KEYS = (
    "dataset",
    "root",
    "out",
    "method",
    "mask",
    "imputer",
    "estimator",
    "regime",
    "task",
    "device",
)
_INT_KEYS = {"n_train": 1, "n_test": 1, "num_samples": 1, "seed": 0}

#: Methods that ``train`` cannot run, and why.
_CLI_UNSUPPORTED_METHODS = {
    "ail": "method 'ail' explains a black box, which the command line cannot take; fit it from "
    "Python: LEXExplainer(method='ail', k=...).fit(X, black_box=model)",
}
_CLI_METHODS = [name for name in METHODS if name not in _CLI_UNSUPPORTED_METHODS]

#: Datasets that ``train`` and ``evaluate`` cannot use, and why.
_CLI_UNSUPPORTED_DATASETS = {
    "celeba-smile": "dataset 'celeba-smile' is not available on the command line: its ground "
    "truth marks 4x4 patches of RGB images, which an explainer of single input entries cannot "
    "select; load it from Python (lexppl.data.load)",
}
#: Datasets read from a data folder (``--root``).
_ROOT_DATASETS = ("panels-mnist", "panels-fashion")
_CLI_DATASETS = [name for name in sorted(lexdata.DATASETS) if name not in _CLI_UNSUPPORTED_DATASETS]

#: Display name, metrics.json key and whether the value is shown as a percentage.
_METRIC_ROWS = [
    ("ACC", "acc", True),
    ("AUROC", "auroc", False),
    ("TPR", "tpr", True),
    ("FDR", "fdr", True),
    ("FPR", "fpr", True),
    ("CF rate", "control_flow_rate", True),
    ("median rank", "median_rank", False),
]


def _format_value(value: float, percent: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.2f}" if percent else f"{value:.3f}"


def _metrics_table(metrics: dict[str, float]) -> str:
    """A two-column text table of the metrics present in ``metrics`` (rates in %)."""
    rows = [
        (f"{name} (%)" if percent else name, _format_value(metrics[key], percent))
        for name, key, percent in _METRIC_ROWS
        if key in metrics
    ]
    width = max(len("metric"), *(len(name) for name, _ in rows))
    value_width = max(len("value"), *(len(value) for _, value in rows))
    lines = [
        f"{'metric':<{width}}  {'value':>{value_width}}",
        f"{'-' * width}  {'-' * value_width}",
    ]
    lines += [f"{name:<{width}}  {value:>{value_width}}" for name, value in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- helpers
def _load_split(
    name: str, split: str, seed: int, n: int | None, root: str | None = None
) -> lexdata.MaskedDataset:
    """A split of a named dataset with each input flattened to one row of D features (images
    too: the explainer selects single pixels), whose ground truth is flattened alike."""
    if name in _CLI_UNSUPPORTED_DATASETS:
        raise ValueError(_CLI_UNSUPPORTED_DATASETS[name] + ".")
    if name in _ROOT_DATASETS and root is None:
        raise ValueError(
            f"dataset {name!r} is read from files: give --root DIR (or root in the config), a "
            "folder with torchvision's MNIST/raw/ and FashionMNIST/raw/, or mnist/ and fashion/ "
            "with the IDX files."
        )
    dataset = lexdata.load(name, split=split, root=root, seed=seed, n=n)
    if dataset.x.dim() == 2:
        return dataset
    if math.prod(dataset.mask_shape) != dataset.num_features:
        raise ValueError(
            f"dataset {name!r} has a ground truth of shape {dataset.mask_shape} for inputs of "
            f"shape {tuple(dataset.x.shape[1:])}; the command line needs one truth entry per "
            "input entry."
        )
    return lexdata.MaskedDataset(
        dataset.x.flatten(1),
        dataset.y,
        dataset.truth.flatten(1),
        probs=dataset.probs,
        name=dataset.name,
        num_classes=dataset.num_classes,
        feature_names=dataset.feature_names,
    )


def _write_json(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in content.items()}
    path.write_text(json.dumps(clean, indent=2) + "\n")


def _explainer_params() -> set[str]:
    return set(LEXExplainer().get_params())


def _make_explainer(params: dict[str, Any], n_features: int) -> LEXExplainer:
    """Build an explainer and check its options against the data before any training, so that
    a bad option fails at once with the explainer's own message."""
    params = dict(params)
    for key in ("selector_hidden", "predictor_hidden"):
        if key in params and isinstance(params[key], list):
            params[key] = tuple(params[key])
    explainer = LEXExplainer(**params)
    explainer._validate_params()
    # The presets (method != "lex") check their own k.
    if (
        explainer.method == "lex"
        and explainer.mask == "subset"
        and not 1 <= int(explainer.k) <= n_features
    ):
        raise ValueError(
            f"k must satisfy 1 <= k <= D; got k={explainer.k} for D={n_features} features."
        )
    return explainer


def _read_config(path: str) -> dict[str, Any]:
    """Read a flat TOML config for ``train``; unknown keys are an error listing valid ones."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"config file not found: {file}")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ValueError(
                "reading TOML configs needs Python >= 3.11 or the tomli package."
            ) from None
    try:
        with open(file, "rb") as f:
            config = tomllib.load(f)
    except ValueError as error:  # tomllib.TOMLDecodeError, invalid UTF-8
        raise ValueError(f"cannot parse config {file}: {error}") from None
    valid = _explainer_params() | set(_RUN_KEYS)
    unknown = sorted(set(config) - valid)
    if unknown:
        raise ValueError(
            f"unknown key(s) {unknown} in config {file}; valid keys are {sorted(valid)}."
        )
    _check_config_types(config, file)
    return config


def _check_config_types(config: dict[str, Any], file: Path) -> None:
    """Names and paths are strings, counts and seeds ints: checked before any training, so that
    a wrong value (a list, a table, a string for a number) is named with its key."""
    for key in _STRING_KEYS:
        if key in config and not isinstance(config[key], str):
            raise ValueError(f"{key} in config {file} must be a string; got {config[key]!r}.")
    for key, low in _INT_KEYS.items():
        value = config.get(key, low)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{key} in config {file} must be an int >= {low}; got {value!r}.")


def _read_input(path: str, skip_header: bool) -> np.ndarray:
    """Read a numeric 2-D array from ``.csv`` (comma-separated, no header unless
    ``skip_header``) or ``.npy``; a 1-D array is one row."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".npy"):
        raise ValueError(f"unknown input extension {file.suffix!r} for {file}; use .csv or .npy.")
    if not file.is_file():
        raise FileNotFoundError(f"input file not found: {file}")
    if suffix == ".csv":
        try:
            array = np.loadtxt(
                file, delimiter=",", dtype=np.float64, ndmin=2, skiprows=1 if skip_header else 0
            )
        except ValueError as error:
            hint = "" if skip_header else " (use --skip-header if the file has a header row)"
            raise ValueError(f"cannot read {file} as numeric CSV: {error}{hint}") from None
    else:
        try:
            array = np.load(file, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:  # EOFError: an empty file
            raise ValueError(f"cannot read {file} as a .npy array: {error}") from None
        if array.dtype.kind not in "biuf":
            raise ValueError(f"{file} holds {array.dtype} values; expected numbers.")
        if array.ndim == 1:
            array = array[None, :]
    if array.ndim != 2:
        raise ValueError(
            f"{file} must hold a 2-D array (n_samples, n_features); got shape {array.shape}."
        )
    if array.shape[0] == 0:
        raise ValueError(f"{file} holds no rows.")
    if not np.isfinite(array).all():
        raise ValueError(f"{file} contains NaN or infinite values.")
    return array.astype(np.float32)


def _write_output(path: Path, array: np.ndarray, integer: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".npy":
        np.save(path, array)
    else:
        np.savetxt(path, array, delimiter=",", fmt="%d" if integer else "%.6g")


# ---------------------------------------------------------------------------- train
def _flag_params(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line (those left at ``None`` are not given)."""
    names = [
        "method",
        "mask",
        "k",
        "l1",
        "imputer",
        "estimator",
        "num_masks",
        "num_imputations",
        "epochs",
        "batch_size",
        "lr",
        "weight_decay",
        "pretrain_epochs",
        "fix_predictor",
        "seed",
        "device",
        "distributed",
        "dataset",
        "n_train",
        "n_test",
        "num_samples",
        "out",
        "root",
    ]
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _cmd_train(args: argparse.Namespace) -> int:
    settings = _read_config(args.config) if args.config else {}
    settings.update(_flag_params(args))
    if args.verbose:
        settings["verbose"] = True
    if "dataset" not in settings:
        raise ValueError(
            "train needs a dataset: give --dataset NAME or a config with "
            f"'dataset'; valid names are {sorted(lexdata.DATASETS)}."
        )
    dataset = settings.pop("dataset")
    n_train, n_test = settings.pop("n_train", None), settings.pop("n_test", None)
    num_samples = settings.pop("num_samples", 100)
    out = Path(settings.pop("out", f"runs/train-{dataset}"))
    root = settings.pop("root", None)
    seed = settings.get("seed", 0)
    if settings.get("method") in _CLI_UNSUPPORTED_METHODS:
        raise ValueError(_CLI_UNSUPPORTED_METHODS[settings["method"]] + ".")

    train = _load_split(dataset, "train", seed, n_train, root)
    try:
        explainer = _make_explainer(settings, train.num_features)
    except TypeError as error:  # a value of a type no check above foresaw: still one line
        source = f" (from --config {args.config})" if args.config else ""
        raise ValueError(f"an option has a value of the wrong type{source}: {error}") from None
    if explainer.task != "classification":  # refuse before training, not after
        raise ValueError(
            f"train evaluates the explainer on {dataset}'s class labels, so it needs "
            f"task='classification'; train regression explainers from Python (LEXExplainer)."
        )
    logger.info(
        "training LEX on %s (%d instances): %s",
        dataset,
        len(train),
        ", ".join(f"{k}={v}" for k, v in sorted(settings.items())),
    )
    explainer.fit(train.x.numpy(), train.y.numpy())
    if explainer.distributed and torch.distributed.is_initialized():
        rank = torch.distributed.get_rank()
        torch.distributed.destroy_process_group()
        if rank != 0:  # every process holds the same model; rank 0 saves and evaluates it
            return 0
    model_path = out / "model.pt"
    explainer.save(model_path)
    logger.info("saved %s", model_path)

    test = _load_split(dataset, "test", seed, n_test, root)
    logger.info(
        "evaluating on the test split (%d instances, %d masks each)", len(test), num_samples
    )
    metrics = evaluate_explainer(explainer, test, num_samples=num_samples, seed=seed)
    metrics = {
        "dataset": dataset,
        "split": "test",
        **metrics,
        "final_loss": explainer.losses_[-1] if explainer.losses_ else None,
    }
    _write_json(out / "metrics.json", metrics)
    print(_metrics_table(metrics))
    logger.info("wrote %s", out / "metrics.json")
    return 0


# ---------------------------------------------------------------------------- explain
def _cmd_explain(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.suffix.lower() not in (".csv", ".npy"):
        raise ValueError(
            f"unknown output extension {output.suffix!r} for {output}; use .csv or .npy."
        )
    explainer = LEXExplainer.load(args.checkpoint, device=args.device)
    x = _read_input(args.input, args.skip_header)
    if x.shape[1] != explainer.n_features_in_:
        raise ValueError(
            f"{args.input} has {x.shape[1]} features per row but the model expects "
            f"{explainer.n_features_in_}."
        )
    if args.select:
        result = explainer.select(x)
    else:
        result = explainer.explain(x)
    _write_output(output, result, integer=args.select)
    logger.info(
        "wrote %s %s of shape %s",
        "selections" if args.select else "importances",
        output,
        result.shape,
    )
    return 0


# ---------------------------------------------------------------------------- evaluate
def _cmd_evaluate(args: argparse.Namespace) -> int:
    explainer = LEXExplainer.load(args.checkpoint, device=args.device)
    dataset = _load_split(args.dataset, args.split, args.seed, args.n, args.root)
    if dataset.num_features != explainer.n_features_in_:
        raise ValueError(
            f"dataset {args.dataset!r} has {dataset.num_features} features but the model in "
            f"{args.checkpoint} was trained on {explainer.n_features_in_}."
        )
    logger.info(
        "evaluating %s on %s/%s (%d instances, %d masks each)",
        args.checkpoint,
        args.dataset,
        args.split,
        len(dataset),
        args.num_samples,
    )
    metrics = evaluate_explainer(explainer, dataset, num_samples=args.num_samples, seed=args.seed)
    print(_metrics_table(metrics))
    return 0


# ---------------------------------------------------------------------------- demo
def _rates(text: str) -> list[float]:
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 0.1,0.25,0.5; got {text!r}"
        ) from None
    if not rates:
        raise argparse.ArgumentTypeError("expected at least one selection rate")
    return rates


def _demo_table(rows: Sequence[dict[str, Any]]) -> str:
    """A text table of TPR, FDR and ACC (in %) with one line per row."""
    names = ["method", "rate", "k", "TPR (%)", "FDR (%)", "ACC (%)"]
    cells = [
        [
            str(row["method"]),
            f"{row['selection_rate']:g}",
            str(row["k"]),
            *(_format_value(row[key], True) for key in ("TPR", "FDR", "ACC")),
        ]
        for row in rows
    ]
    widths = [max(len(names[i]), *(len(c[i]) for c in cells)) for i in range(len(names))]

    def line(values: Sequence[str]) -> str:
        first = f"{values[0]:<{widths[0]}}"
        return "  ".join([first, *(f"{v:>{w}}" for v, w in zip(values[1:], widths[1:]))])

    return "\n".join([line(names), line(["-" * w for w in widths]), *map(line, cells)])


def _cmd_demo(args: argparse.Namespace) -> int:
    from lexppl.demo import TRUE_SELECTION_RATE, closest_rate, run_demo

    out = Path(args.out)
    logger.info(
        "demo: LEX on the built-in Switching Panels with four imputations at selection rates "
        "%s, %d epochs each",
        ", ".join(f"{rate:g}" for rate in args.rates),
        args.epochs,
    )
    rows = run_demo(
        out,
        rates=args.rates,
        epochs=args.epochs,
        pretrain_epochs=args.pretrain_epochs if args.pretrain_epochs is not None else args.epochs,
        n_train=args.n_train,
        n_test=args.n_test,
        num_samples=args.num_samples,
        seed=args.seed,
        device=args.device,
        progress=args.verbose,
    )
    rate = closest_rate([row["selection_rate"] for row in rows])
    print(
        f"Switching Panels (panels-digits), selection rate {rate:g}; the digit panel is "
        f"{TRUE_SELECTION_RATE:g} of the image (FDR: selected pixels outside it)."
    )
    print(_demo_table([row for row in rows if row["selection_rate"] == rate]))
    others = [row for row in rows if row["selection_rate"] != rate]
    if others:
        print("\nOther selection rates (see curves.png):")
        print(_demo_table(others))
    logger.info(
        "wrote %s, %s, curves.png and importance-*.png", out / "results.md", out / "results.csv"
    )
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from lexppl.reproduce import run

    out = Path(args.out or f"runs/reproduce-{args.experiment}")
    rows = run(
        args.experiment,
        out=out,
        root=args.root,
        quick=args.quick,
        seed=args.seed,
        device=args.device,
    )
    print((out / "results.md").read_text())
    logger.info("wrote %d rows to %s and %s", len(rows), out / "results.csv", out / "results.md")
    return 0


# ---------------------------------------------------------------------------- parser
def _usage_line(prog: str, message: str) -> str:
    """A usage error as the one line the module docstring promises, pointing to ``--help``."""
    return f"{PROG}: error: {_one_line(message)} (see {prog} --help)"


class _Parser(argparse.ArgumentParser):
    """An argument parser (its sub-parsers too) that reports a usage error in one line instead of
    argparse's usage block followed by the error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, _usage_line(self.prog, message) + "\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _common_options(suppress: bool) -> argparse.ArgumentParser:
    """-v / -q / --threads, accepted before the command and after it. After it they are
    ``SUPPRESS``ed when not given, so that they do not overwrite what came before it."""
    common = argparse.ArgumentParser(add_help=False)
    flag = dict(default=argparse.SUPPRESS) if suppress else dict(default=False)
    verbosity = common.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-v", "--verbose", action="store_true", help="show progress bars during training", **flag
    )
    verbosity.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="only print results and errors (no INFO log)",
        **flag,
    )
    common.add_argument(
        "--threads",
        type=_positive_int,
        default=argparse.SUPPRESS if suppress else None,
        help="torch CPU threads (default: torch's choice; 1 for demo, whose small batches "
        "run fastest on one thread)",
    )
    return common


def _build_parser() -> argparse.ArgumentParser:
    datasets = ", ".join(_CLI_DATASETS)
    root_help = "data folder of panels-mnist and panels-fashion (torchvision's MNIST/raw/ and "
    root_help += "FashionMNIST/raw/, or mnist/ and fashion/ with the IDX files)"
    common = _common_options(suppress=True)
    parser = _Parser(
        prog=PROG,
        description="LEX (Latent Variable as Explanation) as a Pyro model: train, apply and "
        "evaluate self-explaining predictors.",
        parents=[_common_options(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # Not required=True: argparse would then report a missing command before an unknown option
    # given with it (lexppl --bogus); main reports both.
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    # train ------------------------------------------------------------------------
    train = commands.add_parser(
        "train",
        parents=[common],
        help="train a LEX explainer on a built-in dataset",
        description="Train LEX on the train split of a dataset, save OUT/model.pt, evaluate "
        "on the test split and write OUT/metrics.json. Options not given fall "
        "back to --config, then to LEXExplainer's defaults.",
    )
    train.add_argument(
        "--config",
        metavar="FILE.toml",
        help="TOML file whose keys are LEXExplainer parameters plus dataset, root, "
        "n_train, n_test, num_samples and out; flags override it",
    )
    train.add_argument("--dataset", help=f"dataset name ({datasets})")
    train.add_argument("--root", metavar="DIR", help=root_help)
    train.add_argument(
        "--method", help=f"LEX or a published preset ({', '.join(_CLI_METHODS)}; default lex)"
    )
    train.add_argument("--mask", help=f"mask family ({', '.join(MASKS)})")
    train.add_argument("--k", type=_positive_int, help="number of selected features (subset)")
    train.add_argument("--l1", type=float, help="L1 penalty λ on the mean selection")
    train.add_argument("--imputer", help=f"imputation ({', '.join(IMPUTERS)})")
    train.add_argument("--estimator", help=f"gradient estimator ({', '.join(ESTIMATORS)})")
    train.add_argument("--num-masks", type=_positive_int, help="mask samples L per datum")
    train.add_argument("--num-imputations", type=_positive_int, help="imputations K per mask")
    train.add_argument("--epochs", type=_positive_int, help="training epochs")
    train.add_argument("--batch-size", type=_positive_int, help="mini-batch size")
    train.add_argument("--lr", type=float, help="Adam learning rate")
    train.add_argument("--weight-decay", type=float, help="Adam weight decay")
    train.add_argument(
        "--pretrain-epochs",
        type=_non_negative_int,
        help="predictor pretraining epochs on random masks",
    )
    train.add_argument(
        "--fix-predictor",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the predictor fixed while training the selector",
    )
    train.add_argument(
        "--seed", type=_non_negative_int, help="seed of the data splits and the model (default 0)"
    )
    train.add_argument("--device", help="torch device, e.g. cpu or cuda (default cpu)")
    train.add_argument(
        "--distributed",
        action="store_true",
        default=None,
        help="data-parallel training over the processes of torchrun (--batch-size is global)",
    )
    train.add_argument(
        "--n-train",
        type=_positive_int,
        help="number of training instances (default: the whole split)",
    )
    train.add_argument(
        "--n-test", type=_positive_int, help="number of test instances (default: the whole split)"
    )
    train.add_argument(
        "--num-samples", type=_positive_int, help="sampled masks per test instance (default 100)"
    )
    train.add_argument("--out", metavar="DIR", help="output folder (default runs/train-DATASET)")
    train.set_defaults(handler=_cmd_train)

    # explain ----------------------------------------------------------------------
    explain = commands.add_parser(
        "explain",
        parents=[common],
        help="explain the rows of a file with a trained model",
        description="Write the importance map E[Z|x] (or, with --select, the most probable 0/1 "
        "selection) of every row of INPUT.",
    )
    explain.add_argument(
        "--checkpoint", required=True, metavar="PATH", help="model.pt written by `lexppl train`"
    )
    explain.add_argument(
        "--input",
        required=True,
        metavar="FILE",
        help=".csv (numeric, comma-separated) or .npy, shape (n, D)",
    )
    explain.add_argument("--output", required=True, metavar="FILE", help=".csv or .npy")
    explain.add_argument(
        "--select", action="store_true", help="write binary selections instead of importances"
    )
    explain.add_argument(
        "--skip-header", action="store_true", help="skip the first line of a CSV input"
    )
    explain.add_argument("--device", default="cpu", help="torch device (default cpu)")
    explain.set_defaults(handler=_cmd_explain)

    # evaluate ---------------------------------------------------------------------
    evaluate = commands.add_parser(
        "evaluate",
        parents=[common],
        help="score a trained model on a dataset",
        description="Print ACC, AUROC (predictions from sampled masks, averaged over masks), "
        "TPR, FDR, FPR, the control-flow rate (S1-S3) and the median rank.",
    )
    evaluate.add_argument(
        "--checkpoint", required=True, metavar="PATH", help="model.pt written by `lexppl train`"
    )
    evaluate.add_argument("--dataset", required=True, help=f"dataset name ({datasets})")
    evaluate.add_argument("--root", metavar="DIR", help=root_help)
    evaluate.add_argument("--split", default="test", help="train, val or test (default test)")
    evaluate.add_argument(
        "--num-samples",
        type=_positive_int,
        default=100,
        help="sampled masks per instance (default 100)",
    )
    evaluate.add_argument("--n", type=_positive_int, help="number of instances (default all)")
    evaluate.add_argument(
        "--seed", type=_non_negative_int, default=0, help="data and sampling seed (default 0)"
    )
    evaluate.add_argument("--device", default="cpu", help="torch device (default cpu)")
    evaluate.set_defaults(handler=_cmd_evaluate)

    # demo -------------------------------------------------------------------------
    from lexppl import demo as demo_module

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="LEX on the built-in Switching Panels with four imputations (as the paper's Fig. 5)",
        description="Train LEX on the built-in Switching Panels (8x16 images: a digit beside a "
        "photograph patch) with 0-imputation, surrogate 0-imputation, marginal and "
        "mixture-of-logistics imputation at a few selection rates; print TPR / FDR / ACC at the "
        "rate closest to the true one (0.5) and write OUT/results.{md,csv}, OUT/curves.png and "
        "OUT/importance-*.png. A few minutes on one CPU thread.",
    )
    demo.add_argument(
        "--rates",
        type=_rates,
        default=list(demo_module.SELECTION_RATES),
        metavar="R1,R2,...",
        help="selection rates k/128 (default "
        + ",".join(f"{r:g}" for r in demo_module.SELECTION_RATES)
        + ")",
    )
    demo.add_argument(
        "--epochs",
        type=_positive_int,
        default=demo_module.EPOCHS,
        help=f"epochs of every run (default {demo_module.EPOCHS})",
    )
    demo.add_argument(
        "--pretrain-epochs",
        type=_non_negative_int,
        help="surrogate pretraining epochs (default: --epochs)",
    )
    demo.add_argument(
        "--n-train", type=_positive_int, help="training images (default: the whole split, 1078)"
    )
    demo.add_argument(
        "--n-test", type=_positive_int, help="test images (default: the whole split, 359)"
    )
    demo.add_argument(
        "--num-samples",
        type=_positive_int,
        default=100,
        help="sampled masks per test image (default 100)",
    )
    demo.add_argument("--seed", type=_non_negative_int, default=0, help="seed (default 0)")
    demo.add_argument("--device", default="cpu", help="torch device (default cpu)")
    demo.add_argument(
        "--out", default="runs/demo", metavar="DIR", help="output folder (default runs/demo)"
    )
    demo.set_defaults(handler=_cmd_demo)

    # reproduce --------------------------------------------------------------------
    from lexppl.reproduce import EXPERIMENTS

    reproduce = commands.add_parser(
        "reproduce",
        parents=[common],
        help="rerun a paper's table or figure and print it beside the published numbers",
        description="Experiments: "
        + "; ".join(f"{name}: {text}" for name, (_, text) in sorted(EXPERIMENTS.items()))
        + ". Writes OUT/results.csv and OUT/results.md.",
    )
    reproduce.add_argument("experiment", choices=sorted(EXPERIMENTS), metavar="EXPERIMENT")
    reproduce.add_argument(
        "--root",
        metavar="DIR",
        help="data folder for the MNIST experiments (torchvision's layout, or mnist/ and "
        "fashion/ with the IDX files)",
    )
    reproduce.add_argument(
        "--quick", action="store_true", help="a seconds-long version (what the tests run)"
    )
    reproduce.add_argument("--seed", type=_non_negative_int, default=0, help="seed (default 0)")
    reproduce.add_argument("--device", default="cpu", help="torch device (default cpu)")
    reproduce.add_argument(
        "--out", metavar="DIR", help="output folder (default runs/reproduce-EXPERIMENT)"
    )
    reproduce.set_defaults(handler=_cmd_reproduce)
    return parser


# ---------------------------------------------------------------------------- entry point
def _one_line(error: BaseException) -> str:
    message = " ".join(str(error).split())
    return message or type(error).__name__


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # A warning is one line too, like an error: no file name, line number or source line.
    print(f"{PROG}: warning: {_one_line(message)}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    """
    Run the ``lexppl`` command line.

    :param argv: the arguments after the program name (default ``sys.argv[1:]``).
    :returns: the exit status: 0 on success, 2 for a usage or input error (reported as one
        line ``lexppl: error: <message>`` on stderr), 1 when interrupted. Warnings are one line
        ``lexppl: warning: <message>`` each.
    """
    parser = _build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors
        return exit_.code if isinstance(exit_.code, int) else 2
    if unknown or args.command is None:
        prog = PROG if args.command is None else f"{PROG} {args.command}"
        if unknown:
            message = f"unrecognized arguments: {' '.join(unknown)}"
        else:
            message = "the following arguments are required: COMMAND"
        print(_usage_line(prog, message), file=sys.stderr)
        return 2

    package_logger = logging.getLogger("lexppl")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    previous_level = package_logger.level
    package_logger.addHandler(handler)
    # Under torchrun only rank 0 reports progress; the other processes log warnings only.
    quiet = args.quiet or os.environ.get("RANK", "0") != "0"
    package_logger.setLevel(logging.WARNING if quiet else logging.INFO)
    previous_threads = torch.get_num_threads()
    threads = args.threads if args.threads is not None else _DEFAULT_THREADS.get(args.command)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with warnings.catch_warnings():  # restores the caller's showwarning afterwards
            warnings.showwarning = _show_warning
            if getattr(args, "device", None) is not None:  # every command that takes --device
                check_device(args.device)
            return args.handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted", file=sys.stderr)
        return 1
    except (ValueError, OSError, ArithmeticError) as error:  # incl. CheckpointError, TOML
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous_level)
        torch.set_num_threads(previous_threads)


if __name__ == "__main__":
    sys.exit(main())
