"""Training throughput of LEX (images per second) on the built-in panels and a 28 x 56 stand-in.

One training step is exactly what :func:`lexppl.fit` does per mini-batch: the bound on
``L = --num-masks`` masks per image, backward, one Adam step, with two pathwise estimators:
``simple``, the straight-through gradient through the exact k-subset marginals with exact
samples (``PathwiseBound(method="marginal")``, the demo's; both need an O(D k) recursion over
the D pixels), and ``relaxed``, Gumbel top-k samples with the relaxed top-k gradient
(``PathwiseBound(method="relaxed")``, the LEX paper's, App. E.2). The model is the
LEX paper's Switching Panels architecture (App. D): a per-pixel U-Net selector (3 down- and
up-sampling steps, 16 base filters) and a convolutional predictor (blocks of 32 and 64
filters), k = 10% of the pixels, for each imputation of the demo: 0, marginal (other images'
pixels) and the mixture of logistics. Inputs:

- ``panels-digits 8x16``: the built-in Switching Panels (the demo's data), imputers fitted on
  its training split;
- ``stand-in 28x56``: random intensities on the 1/255 grid in the shape of SP-MNIST
  (no real data needed; the cost of a step does not depend on the pixel values), imputers
  fitted on ``--fit-rows`` such rows.

The configurations are interleaved (every repeat times one step of each) so that all see the
same machine state. Throughput is ``batch_size / median step time`` in images per second
(``L`` times as many imputed inputs go through the predictor); images per CPU-second divides by
the process's CPU time instead, which a busy machine inflates much less. Results go to
``benchmarks/results/throughput.{json,md}``.

Run: ``.venv/bin/python benchmarks/throughput.py [--repeats 10] [--threads 1] [--device cpu]``.
The stored table: ``.venv/bin/python benchmarks/throughput.py --repeats 5`` (its json records
``"repeats": 5``).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from _options import parse_device

from lexppl import LEX
from lexppl.data import load
from lexppl.distributions import KSubset
from lexppl.imputers import ConstantImputer, MarginalImputer, MixtureOfLogisticsImputer
from lexppl.infer import PathwiseBound
from lexppl.models import CategoricalLikelihood, PixelGrid
from lexppl.nets import ConvPredictor, UNetSelector

RESULTS = Path(__file__).parent / "results"
SELECTION_RATE = 0.1
#: Components of the mixture of logistics (its fit needs at least one row for each).
COMPONENTS = 10
#: Imputer name -> constructor; the mixture of logistics with a short fit (its imputation cost
#: does not depend on how long it was fitted).
IMPUTERS = {
    "0": lambda: ConstantImputer(0.0),
    "marginal": MarginalImputer,
    "mixture_of_logistics": lambda: MixtureOfLogisticsImputer(n_components=COMPONENTS, epochs=2),
}
#: Estimator name -> PathwiseBound method.
ESTIMATORS = {"simple": "marginal", "relaxed": "relaxed"}


def inputs(size: str, batch_size: int, fit_rows: int) -> tuple[torch.Tensor, ...]:
    """``(x, y, fit_data)`` for one input size: a training batch and the imputers' data."""
    if size == "8x16":
        train = load("panels-digits", "train", seed=0)
        return train.x[:batch_size], train.y[:batch_size], train.x
    g = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 256, (batch_size + fit_rows, 1, 28, 56), generator=g)
    x = levels.float() / 255
    y = torch.randint(0, 10, (batch_size,), generator=g)
    return x[:batch_size], y, x[batch_size:]


def build(imputer, image_shape: tuple[int, int, int]) -> LEX:
    torch.manual_seed(0)
    groups = PixelGrid(image_shape)
    k = max(1, round(SELECTION_RATE * groups.num_groups))
    return LEX(
        UNetSelector(groups, depth=3, base_channels=16),
        ConvPredictor(image_shape[0], 10, channels=(32, 64), image_size=image_shape[1:]),
        imputer,
        functools.partial(KSubset, k=k),
        CategoricalLikelihood(),
        groups=groups,
    )


def make_step(model: LEX, bound: PathwiseBound, x: torch.Tensor, y: torch.Tensor):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-3)

    def step() -> None:
        loss = bound.differentiable_loss(model.model, model.guide, x, y) / x.shape[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def timed(step, device: torch.device) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process) of one step."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-masks", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--fit-rows", type=int, default=500)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (1 is robust on a busy box)"
    )
    args = parser.parse_args()
    # The 8x16 batch is the first --batch-size images of the panels' training split.
    panels = len(load("panels-digits", "train", seed=0).x)
    for option, value, least, most in [
        ("--batch-size", args.batch_size, 1, panels),
        ("--num-masks", args.num_masks, 1, None),
        ("--repeats", args.repeats, 1, None),
        ("--fit-rows", args.fit_rows, COMPONENTS, None),
        ("--threads", args.threads, 1, None),
    ]:
        if value < least:
            parser.error(f"{option} must be at least {least}; got {value}")
        if most is not None and value > most:
            parser.error(
                f"{option} must be at most {most} (the panels' training split); got {value}"
            )
    device = parse_device(parser, args.device)
    torch.set_num_threads(args.threads)
    n, L = args.batch_size, args.num_masks

    load_before = os.getloadavg()[0]
    steps = {}
    for size in ("8x16", "28x56"):
        x, y, fit_data = inputs(size, n, args.fit_rows)
        x, y = x.to(device), y.to(device)
        for name, make in IMPUTERS.items():
            imputer = make()
            if imputer.requires_fit:
                imputer.fit(fit_data)
            for estimator, method in ESTIMATORS.items():
                model = build(copy.deepcopy(imputer), tuple(x.shape[1:])).to(device)
                model.train()
                step = make_step(model, PathwiseBound(num_masks=L, method=method), x, y)
                for _ in range(2):  # warm-up
                    step()
                steps[(size, name, estimator)] = (step, [])
    for _ in range(args.repeats):
        for step, times in steps.values():
            times.append(timed(step, device))

    rows = []
    for (size, name, estimator), (_, times) in steps.items():
        seconds = statistics.median(wall for wall, _ in times)
        cpu_seconds = statistics.median(cpu for _, cpu in times)
        rows.append(
            {
                "input": "panels-digits 8x16" if size == "8x16" else "stand-in 28x56",
                "imputer": name,
                "estimator": estimator,
                "median_step_ms": round(1e3 * seconds, 2),
                "images_per_s": round(n / seconds, 1),
                "median_step_cpu_ms": round(1e3 * cpu_seconds, 2),
                "images_per_cpu_s": round(n / cpu_seconds, 1),
            }
        )
        print(
            f"{size:6s} {name:22s} {estimator:8s} {1e3 * seconds:9.2f} ms/step "
            f"{n / seconds:9.1f} images/s {n / cpu_seconds:9.1f} images/CPU-s"
        )
    table = {(r["input"].split()[-1], r["imputer"], r["estimator"]): r for r in rows}
    pairs = [(name, estimator) for name in IMPUTERS for estimator in ESTIMATORS]
    ratios = {
        f"{name}/{estimator}": round(
            table[("8x16", name, estimator)]["images_per_cpu_s"]
            / table[("28x56", name, estimator)]["images_per_cpu_s"],
            2,
        )
        for name, estimator in pairs
    }
    result = {
        "rows": rows,
        "ratio_8x16_over_28x56": ratios,
        "batch_size": n,
        "num_masks": L,
        "selection_rate": SELECTION_RATE,
        "estimators": ESTIMATORS,
        "repeats": args.repeats,
        "fit_rows": args.fit_rows,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "| imputation | estimator | panels-digits 8x16: images/s (per CPU-s) | ms/step | "
        "stand-in 28x56: images/s (per CPU-s) | ms/step | ratio 8x16 / 28x56 (CPU) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, estimator in pairs:
        small, large = table[("8x16", name, estimator)], table[("28x56", name, estimator)]
        lines.append(
            f"| {name} | {estimator} | {small['images_per_s']:,.1f} "
            f"({small['images_per_cpu_s']:,.1f}) | {small['median_step_ms']:.2f} | "
            f"{large['images_per_s']:,.1f} ({large['images_per_cpu_s']:,.1f}) | "
            f"{large['median_step_ms']:.2f} | {ratios[f'{name}/{estimator}']:.2f} |"
        )
    lines += [
        "",
        f"One training step of LEX (U-Net selector depth 3 / 16 filters, conv predictor 32-64, "
        f"k-subset masks at {SELECTION_RATE:.0%} of the pixels, Adam) on a batch of {n} images "
        f"with L = {L} masks each; simple = straight-through through the exact k-subset "
        f"marginals (the demo's), relaxed = Gumbel top-k with the relaxed top-k gradient; median "
        f"of {args.repeats} interleaved steps; {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads. The 28x56 inputs are random intensities (SP-MNIST's "
        f"shape). images/s is over wall-clock time, per CPU-s over this process's CPU time (what "
        f"an idle core would give); the 1-minute load average was {load_before:.1f} at the start "
        f"and {os.getloadavg()[0]:.1f} at the end of the run.",
    ]
    markdown = "\n".join(lines) + "\n"
    (RESULTS / "throughput.md").write_text(markdown)
    print()
    print(markdown)


if __name__ == "__main__":
    main()
