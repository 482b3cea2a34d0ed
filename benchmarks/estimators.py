"""Gradient variance and time per step of every mask-gradient estimator, in one run.

For each problem — S3 (11 features, k = 5) and a 128-feature problem (y depends on 8 of
128 standard-normal features, k = 8) — and each mask family, every estimator computes the
gradient of the same loss w.r.t. the selector's parameters ``R`` times on the same batch with
fixed networks and 0-imputation (so that every estimator applies). Reported: the total
variance of the selector gradient (sum of per-coordinate variances over the R draws), the
ratio to plain REINFORCE's, and the median wall time of one step (forward and backward).
Results go to ``benchmarks/results/estimators.{json,md}``.

Run: ``.venv/bin/python benchmarks/estimators.py [--repeats 50] [--batch-size 100] [--device
cpu]``; the stored table is the plain command.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from pathlib import Path

import torch
from _options import parse_device

from lexppl import LEX
from lexppl.data import load
from lexppl.distributions import IndependentBernoulli, KSubset
from lexppl.imputers import ConstantImputer
from lexppl.infer import (
    ConcreteBound,
    PathwiseBound,
    RebarBound,
    ReinforceBound,
    RelaxBound,
    VimcoBound,
)
from lexppl.models import CategoricalLikelihood
from lexppl.nets import MLP

RESULTS = Path(__file__).parent / "results"
L = 4  # masks per datum for every estimator


def estimators(family_name: str, num_features: int):
    """Estimator name -> bound, for one mask family (every estimator takes both families)."""
    return {
        "reinforce": lambda: ReinforceBound(L),
        "vimco": lambda: VimcoBound(L),
        "pathwise": lambda: PathwiseBound(L),
        "simple": lambda: PathwiseBound(L, method="marginal"),
        "concrete": lambda: ConcreteBound(L),
        "rebar": lambda: RebarBound(L),
        "rebar-realx": lambda: RebarBound.realx(L),
        "relax": lambda: RelaxBound(L, num_features=num_features),
    }


def problem_128(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 128, generator=g)
    logits = x[:, :4].sum(-1) - x[:, 4:8].abs().sum(-1) + 3.2
    y = torch.bernoulli(torch.sigmoid(logits), generator=g).long()
    return x, y


def measure(lex, bound, x, y, repeats):
    params = list(lex.selector.parameters())
    cuda = x.device.type == "cuda"
    grads, times = [], []
    for _ in range(repeats):
        if cuda:  # CUDA runs asynchronously: time the work, not its launch
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss = bound.differentiable_loss(lex.model, lex.guide, x, y) / x.shape[0]
        step = torch.autograd.grad(loss, params, allow_unused=True)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        grads.append(
            torch.cat(
                [
                    (g if g is not None else torch.zeros_like(p)).flatten()
                    for g, p in zip(step, params)
                ]
            )
        )
    grads = torch.stack(grads)
    return grads.var(0).sum().item(), 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50, help="gradient draws per estimator")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.repeats < 2:
        parser.error(f"--repeats must be at least 2 (a variance needs two); got {args.repeats}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1; got {args.batch_size}")
    device = parse_device(parser, args.device)
    torch.set_num_threads(1)

    s3 = load("s3", "train", n=args.batch_size)
    problems = {"S3 (D=11, k=5)": (s3.x, s3.y, 5), "D=128, k=8": (*problem_128(args.batch_size), 8)}
    rows = []
    for problem, (x, y, k) in problems.items():
        D = x.shape[1]
        x, y = x.to(device), y.to(device)
        for family_name, family in [
            ("bernoulli", IndependentBernoulli),
            ("subset", functools.partial(KSubset, k=k)),
        ]:
            torch.manual_seed(0)
            lex = LEX(
                MLP(D, D, (200, 200)),
                MLP(D, 2, (200, 200, 200)),
                ConstantImputer(),
                family,
                CategoricalLikelihood(),
            ).to(device)
            results = {}
            for name, make in estimators(family_name, D).items():
                torch.manual_seed(1)
                bound = make().to(device)  # with its baselines and control variates, if any
                for _ in range(3):  # warm-up (and the moving-average baseline)
                    bound.differentiable_loss(lex.model, lex.guide, x, y)
                results[name] = measure(lex, bound, x, y, args.repeats)
            reference = results["reinforce"][0]
            for name, (variance, ms) in results.items():
                rows.append(
                    {
                        "problem": problem,
                        "family": family_name,
                        "estimator": name,
                        "variance": variance,
                        "variance_vs_reinforce": variance / reference,
                        "ms_per_step": ms,
                    }
                )
                print(
                    f"{problem:16s} {family_name:9s} {name:12s} var {variance:10.4g} "
                    f"({variance / reference:7.3f} x REINFORCE)  {ms:7.2f} ms"
                )

    RESULTS.mkdir(exist_ok=True)
    meta = {
        "repeats": args.repeats,
        "batch_size": args.batch_size,
        "num_masks": L,
        "device": str(device),
        "threads": 1,
        "torch": torch.__version__,
    }
    (RESULTS / "estimators.json").write_text(
        json.dumps({"settings": meta, "rows": rows}, indent=2) + "\n"
    )
    lines = [
        "| problem | family | estimator | gradient variance | vs REINFORCE | ms / step |",
        "|---|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['problem']} | {r['family']} | {r['estimator']} | {r['variance']:.4g} | "
        f"{r['variance_vs_reinforce']:.3f} | {r['ms_per_step']:.2f} |"
        for r in rows
    ]
    lines += [
        "",
        f"Selector-gradient variance over {args.repeats} draws on one batch of "
        f"{args.batch_size}, L = {L} masks, 0-imputation, fixed untrained networks "
        f"(2 x 200 selector, 3 x 200 predictor), {device}, one CPU thread. Biased estimators "
        f"(pathwise, simple, concrete) trade variance for bias; see tests/infer.",
    ]
    (RESULTS / "estimators.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
