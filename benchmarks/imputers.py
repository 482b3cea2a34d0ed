"""Imputation throughput of every imputer in :mod:`lexppl.imputers`, measured in one run.

For each imputer and each input size (8 x 16 = 128 and 28 x 56 = 1568 features, random data in
[0, 1]), the imputer is fitted (when it needs data) on ``--fit-rows`` rows with settings chosen
to fit in seconds (few mixture components and EM iterations, one training epoch). Then
``imputer(x, z).sample()`` is timed on ``--batch-size`` inputs with ``L = --num-masks`` mask
particles, ``z ~ Bernoulli(0.5)``, the imputers interleaved so that all see the same machine
state. Throughput is imputed inputs (``L * N``) per second over the median of the timed calls.
Imputers that cannot be built or fitted are listed as skipped with the reason. Results go to
``benchmarks/results/imputers.{json,md}``.

Run: ``.venv/bin/python benchmarks/imputers.py [--repeats 25] [--threads 1] [--device cpu]``;
the stored table is the plain command.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import pkgutil
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch
from _options import parse_device, require_at_least

import lexppl.imputers as imputers
from lexppl.imputers import Imputer

RESULTS = Path(__file__).parent / "results"
SIZES = {"8x16": (8, 16), "28x56": (28, 56)}

#: Constructor settings that keep fitting short, applied to any imputer that accepts them.
FAST_SETTINGS = {
    "n_components": 5,
    "n_clusters": 5,
    "max_iter": 10,
    "epochs": 1,
    "n_init": 1,
}
#: Explicit constructions where the defaults are not what should be measured.
SPECIAL = {"ConstantImputer": lambda: imputers.ConstantImputer(0.0)}


def imputer_classes() -> list[type[Imputer]]:
    """Every public imputer class of the modules of :mod:`lexppl.imputers` (exported or not)."""
    found = {}
    for module_info in pkgutil.iter_modules(imputers.__path__):
        module = importlib.import_module(f"{imputers.__name__}.{module_info.name}")
        for name, obj in vars(module).items():
            public = not name.startswith("_") and obj is not Imputer
            if public and isinstance(obj, type) and issubclass(obj, Imputer):
                found[obj.__qualname__] = obj
    order = list(imputers.__all__)
    return sorted(found.values(), key=lambda c: (c.__name__ not in order, c.__module__, c.__name__))


def build(cls: type[Imputer]) -> Imputer:
    if cls.__name__ in SPECIAL:
        return SPECIAL[cls.__name__]()
    parameters = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in FAST_SETTINGS.items() if k in parameters})


def fit_imputer(cls, data: torch.Tensor, device) -> tuple[Imputer, float]:
    imputer = build(cls)
    start = time.perf_counter()
    if imputer.requires_fit or cls.__name__ == "GaussianImputer":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. sklearn's ConvergenceWarning at max_iter=10
            imputer.fit(data)
    return imputer.to(device), time.perf_counter() - start


def timed_call(imputer, x, z, device) -> float:
    """Seconds of one ``imputer(x, z).sample()``."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        imputer(x, z).sample()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--num-masks", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--fit-rows", type=int, default=500)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (1 is robust on a busy box)"
    )
    args = parser.parse_args()
    # The mixtures and clusterings need at least one row per component or cluster.
    least_rows = max(FAST_SETTINGS["n_components"], FAST_SETTINGS["n_clusters"])
    require_at_least(
        parser,
        [
            ("--batch-size", args.batch_size, 1),
            ("--num-masks", args.num_masks, 1),
            ("--repeats", args.repeats, 1),
            ("--fit-rows", args.fit_rows, least_rows),
            ("--threads", args.threads, 1),
        ],
    )
    device = parse_device(parser, args.device)
    torch.set_num_threads(args.threads)
    n, L = args.batch_size, args.num_masks

    classes = imputer_classes()
    rows, skipped = [], []
    for size, (h, w) in SIZES.items():
        d = h * w
        g = torch.Generator().manual_seed(0)
        train = torch.rand(args.fit_rows, d, generator=g)
        x = torch.rand(n, d, generator=g).to(device)
        z = torch.bernoulli(torch.full((L, n, d), 0.5), generator=g).to(device)
        fitted = {}
        for cls in classes:
            torch.manual_seed(0)
            try:
                imputer, fit_seconds = fit_imputer(cls, train, device)
                for _ in range(2):  # warm-up
                    timed_call(imputer, x, z, device)
            except Exception as error:  # report and move on
                skipped.append({"imputer": cls.__name__, "size": size, "reason": repr(error)})
                print(f"skip {cls.__name__} at {size}: {error!r}")
                continue
            fitted[cls.__name__] = (imputer, fit_seconds, [])
        # interleaved: every repeat times each imputer once, so all see the same machine state
        for _ in range(args.repeats):
            for imputer, _, times in fitted.values():
                times.append(timed_call(imputer, x, z, device))
        for name, (_, fit_seconds, times) in fitted.items():
            seconds = statistics.median(times)
            rows.append(
                {
                    "imputer": name,
                    "size": size,
                    "features": d,
                    "fit_s": round(fit_seconds, 3),
                    "median_call_ms": round(1e3 * seconds, 3),
                    "imputations_per_s": round(L * n / seconds),
                }
            )
            print(
                f"{name:32s} {size:6s} fit {fit_seconds:7.2f} s   "
                f"{1e3 * seconds:9.3f} ms/call   {L * n / seconds:12.0f} imputations/s"
            )

    result = {
        "rows": rows,
        "skipped": skipped,
        "batch_size": n,
        "num_masks": L,
        "repeats": args.repeats,
        "fit_rows": args.fit_rows,
        "fast_settings": FAST_SETTINGS,
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "imputers.json").write_text(json.dumps(result, indent=2) + "\n")
    table = {(r["imputer"], r["size"]): r for r in rows}
    names = list(dict.fromkeys(r["imputer"] for r in rows))
    lines = [
        "| imputer | 8x16 (128 features): imputations/s | ms/call | "
        "28x56 (1568 features): imputations/s | ms/call | fit s (8x16 / 28x56) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        cells = []
        for size in SIZES:
            r = table.get((name, size))
            cells += (
                [f"{r['imputations_per_s']:,}", f"{r['median_call_ms']:.2f}"] if r else ["-"] * 2
            )
        fits = " / ".join(
            f"{table[(name, s)]['fit_s']:.2f}" if (name, s) in table else "-" for s in SIZES
        )
        lines.append(f"| {name} | {' | '.join(cells)} | {fits} |")
    lines.append("")
    lines.append(
        f"`imputer(x, z).sample()` with N = {n} inputs and L = {L} mask particles "
        f"(z ~ Bernoulli(0.5)); median of {args.repeats} calls; random data in [0, 1]; fitted on "
        f"{args.fit_rows} rows with {FAST_SETTINGS} where accepted; {device}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads."
    )
    for s in skipped:
        lines.append(f"\nSkipped {s['imputer']} at {s['size']}: {s['reason']}")
    markdown = "\n".join(lines) + "\n"
    (RESULTS / "imputers.md").write_text(markdown)
    print()
    print(markdown)


if __name__ == "__main__":
    main()
