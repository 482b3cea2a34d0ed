"""Overhead of the Pyro LEX objective against a plain-PyTorch implementation of the same bound.

Both sides train the same selector and predictor (the paper's 2 x 200 and 3 x 200 MLPs) on the
same S3 batch with the same estimator: k-subset masks (k = 5) drawn by Gumbel top-k with the
relaxed top-k straight-through gradient, Gaussian imputation, L mask particles, Adam. What the
Pyro side adds per step (tracing the model and the guide in Python) costs the same at any batch
size, so it weighs more on small steps and the ratio depends on the step's size: one run
measures several (batch, L) settings side by side, by default batch 100 (the README example's)
and 1000, each with L = 4 (the README example's) and L = 10. Every round times one step of each
side of every setting, the two sides of a setting in alternating order, so that all see the same
machine state. The ratio of median step times per setting, and whether it meets the target (at
most 1.15), goes to ``benchmarks/results/overhead.{json,md}``.

Run: ``.venv/bin/python benchmarks/overhead.py [--settings 100x4,100x10,1000x4,1000x10]
[--steps 200] [--threads 1] [--device cpu]``; the stored table is the plain command.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import platform
import statistics
import time
from pathlib import Path

import torch
from _options import parse_device, require_at_least

from lexppl import LEX
from lexppl.data import load
from lexppl.distributions import KSubset
from lexppl.distributions.relaxed import gumbel_noise, hard_topk, relaxed_topk
from lexppl.imputers import GaussianImputer
from lexppl.infer import PathwiseBound
from lexppl.models import CategoricalLikelihood
from lexppl.nets import MLP

RESULTS = Path(__file__).parent / "results"
K, TEMPERATURE = 5, 0.5
TARGET_RATIO = 1.15
#: (batch size, L) pairs measured by default.
DEFAULT_SETTINGS = "100x4,100x10,1000x4,1000x10"


def plain_loss(selector, predictor, x, y, L, k, temperature):
    """The L-mask bound written directly in torch (no Pyro)."""
    logits = selector(x).expand(L, *x.shape)
    scores = logits + gumbel_noise(logits.shape, logits)
    hard = hard_topk(scores.detach(), k)
    soft = relaxed_topk(scores, k, temperature)
    z = hard + (soft - soft.detach())
    x_tilde = z * x + (1 - z) * torch.randn_like(z)
    log_py = torch.log_softmax(predictor(x_tilde), -1).gather(-1, y.expand(L, -1)[..., None])
    bound = log_py.squeeze(-1).logsumexp(0) - math.log(L)
    return -bound.mean()


def parse_settings(text: str) -> list[tuple[int, int]]:
    """``"100x4,1000x10"`` -> ``[(100, 4), (1000, 10)]``; a ValueError names a bad entry."""
    settings = []
    for entry in text.split(","):
        batch, _, masks = entry.strip().partition("x")
        if not (batch.isdigit() and masks.isdigit()):
            raise ValueError(f"{entry!r} is not BATCHxL (e.g. 100x4)")
        setting = (int(batch), int(masks))
        if min(setting) < 1:
            raise ValueError(f"{entry!r}: the batch size and L must be at least 1")
        if setting in settings:
            raise ValueError(f"{entry!r} is given twice")
        settings.append(setting)
    return settings


def make_steps(batch_size: int, L: int, device: torch.device):
    """One Adam step of the Pyro bound and one of the plain bound, from the same initial
    networks on the same batch of ``batch_size`` S3 instances with ``L`` masks."""
    data = load("s3", "train", n=batch_size)
    x, y = data.x.to(device), data.y.to(device)
    torch.manual_seed(0)  # the same initial networks in every setting
    selector, predictor = MLP(11, 11, (200, 200)), MLP(11, 2, (200, 200, 200))
    lex = LEX(
        copy.deepcopy(selector),
        copy.deepcopy(predictor),
        GaussianImputer(),
        functools.partial(KSubset, k=K),
        CategoricalLikelihood(),
    ).to(device)
    selector, predictor = selector.to(device), predictor.to(device)
    bound = PathwiseBound(num_masks=L, temperature=TEMPERATURE)
    plain_opt = torch.optim.Adam([*selector.parameters(), *predictor.parameters()], lr=1e-4)
    pyro_opt = torch.optim.Adam(lex.parameters(), lr=1e-4)

    def pyro_step():
        loss = bound.differentiable_loss(lex.model, lex.guide, x, y) / x.shape[0]
        pyro_opt.zero_grad(set_to_none=True)
        loss.backward()
        pyro_opt.step()

    def plain_step():
        loss = plain_loss(selector, predictor, x, y, L, K, TEMPERATURE)
        plain_opt.zero_grad(set_to_none=True)
        loss.backward()
        plain_opt.step()

    return pyro_step, plain_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--settings",
        default=DEFAULT_SETTINGS,
        help=f"comma-separated BATCHxL pairs (default {DEFAULT_SETTINGS})",
    )
    parser.add_argument("--steps", type=int, default=200, help="timed steps per side and setting")
    parser.add_argument("--warmup-steps", type=int, default=10, help="untimed steps first")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (1 is robust on a busy box)"
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    try:
        settings = parse_settings(args.settings)
    except ValueError as error:
        parser.error(f"--settings: {error}")
    require_at_least(
        parser,
        [
            ("--steps", args.steps, 1),
            ("--warmup-steps", args.warmup_steps, 0),
            ("--threads", args.threads, 1),
        ],
    )
    device = parse_device(parser, args.device)
    torch.set_num_threads(args.threads)

    steps = {setting: make_steps(*setting, device) for setting in settings}

    def timed(step):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for pyro_step, plain_step in steps.values():
        for _ in range(args.warmup_steps):
            pyro_step(), plain_step()
    times = {setting: {"pyro": [], "plain": []} for setting in settings}
    # Every round times each side of every setting once, so that all see the same machine
    # state; within a setting the order alternates so that neither side always runs second.
    for i in range(args.steps):
        for setting, (pyro_step, plain_step) in steps.items():
            order = [("pyro", pyro_step), ("plain", plain_step)]
            for name, step in order if i % 2 == 0 else order[::-1]:
                times[setting][name].append(timed(step))
    rows = []
    for (batch_size, L), sides in times.items():
        pyro_ms = 1e3 * statistics.median(sides["pyro"])
        plain_ms = 1e3 * statistics.median(sides["plain"])
        rows.append(
            {
                "batch_size": batch_size,
                "num_masks": L,
                "pyro_step_ms": round(pyro_ms, 3),
                "plain_step_ms": round(plain_ms, 3),
                "ratio": round(pyro_ms / plain_ms, 3),
                "target_met": pyro_ms / plain_ms <= TARGET_RATIO,
            }
        )
    result = {
        "rows": rows,
        "target_ratio": TARGET_RATIO,
        "steps": args.steps,
        "warmup_steps": args.warmup_steps,
        "k": K,
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "| batch | L | lexppl PathwiseBound (Pyro), median step (ms) | plain PyTorch, same bound "
        f"(ms) | **ratio** | ≤ {TARGET_RATIO} |",
        "|---:|---:|---:|---:|---:|---|",
        *(
            f"| {r['batch_size']} | {r['num_masks']} | {r['pyro_step_ms']:.2f} | "
            f"{r['plain_step_ms']:.2f} | **{r['ratio']:.3f}** | "
            f"{'yes' if r['target_met'] else 'no'} |"
            for r in rows
        ),
        "",
        f"S3, k = {K}, relaxed top-k straight-through (τ = {TEMPERATURE}), Gaussian imputation, "
        f"Adam; {args.steps} interleaved steps per side and setting after {args.warmup_steps} "
        f"untimed ones; {device}, torch {torch.__version__}, {torch.get_num_threads()} "
        f"thread(s), {platform.machine()}.",
    ]
    (RESULTS / "overhead.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
