"""Overhead of the Pyro LEX objective against a plain-PyTorch implementation of the same bound.

Both sides train the same selector and predictor (the paper's 2 x 200 and 3 x 200 MLPs) on the
same S3 batch with the same estimator: k-subset masks (k = 5) drawn by Gumbel top-k with the
relaxed top-k straight-through gradient, Gaussian imputation, L = 10 mask particles, Adam. Steps
of the two are interleaved so that both see the same machine state; the ratio of median step
times is written to ``benchmarks/results/overhead.{json,md}``.

Run: ``.venv/bin/python benchmarks/overhead.py [--steps 200] [--device cpu]``.
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

from lexppl import LEX
from lexppl.data import load
from lexppl.distributions import KSubset
from lexppl.distributions.relaxed import gumbel_noise, hard_topk, relaxed_topk
from lexppl.imputers import GaussianImputer
from lexppl.infer import PathwiseBound
from lexppl.models import CategoricalLikelihood
from lexppl.nets import MLP

RESULTS = Path(__file__).parent / "results"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--num-masks", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device, L, k, tau = torch.device(args.device), args.num_masks, 5, 0.5

    data = load("s3", "train", n=args.batch_size)
    x, y = data.x.to(device), data.y.to(device)
    torch.manual_seed(0)
    selector, predictor = MLP(11, 11, (200, 200)), MLP(11, 2, (200, 200, 200))
    lex = LEX(
        copy.deepcopy(selector),
        copy.deepcopy(predictor),
        GaussianImputer(),
        functools.partial(KSubset, k=k),
        CategoricalLikelihood(),
    ).to(device)
    selector, predictor = selector.to(device), predictor.to(device)
    bound = PathwiseBound(num_masks=L, temperature=tau)
    plain_opt = torch.optim.Adam([*selector.parameters(), *predictor.parameters()], lr=1e-4)
    pyro_opt = torch.optim.Adam(lex.parameters(), lr=1e-4)

    def pyro_step():
        loss = bound.differentiable_loss(lex.model, lex.guide, x, y) / x.shape[0]
        pyro_opt.zero_grad(set_to_none=True)
        loss.backward()
        pyro_opt.step()

    def plain_step():
        loss = plain_loss(selector, predictor, x, y, L, k, tau)
        plain_opt.zero_grad(set_to_none=True)
        loss.backward()
        plain_opt.step()

    def timed(step):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for _ in range(10):  # warm-up
        pyro_step(), plain_step()
    times = {"pyro": [], "plain": []}
    for i in range(args.steps):
        order = [("pyro", pyro_step), ("plain", plain_step)]
        for name, step in order if i % 2 == 0 else order[::-1]:
            times[name].append(timed(step))
    pyro_ms = 1e3 * statistics.median(times["pyro"])
    plain_ms = 1e3 * statistics.median(times["plain"])
    result = {
        "pyro_step_ms": round(pyro_ms, 3),
        "plain_step_ms": round(plain_ms, 3),
        "ratio": round(pyro_ms / plain_ms, 3),
        "target_ratio": 1.15,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "num_masks": L,
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "overhead.md").write_text(
        "| objective | median step (ms) |\n|---|---|\n"
        f"| lexppl PathwiseBound (Pyro) | {pyro_ms:.2f} |\n"
        f"| plain PyTorch, same bound | {plain_ms:.2f} |\n"
        f"| **ratio** (target <= 1.15) | **{pyro_ms / plain_ms:.3f}** |\n\n"
        f"S3, batch {args.batch_size}, L = {L}, k = 5, {args.steps} interleaved steps, "
        f"{device}, torch {torch.__version__}, {torch.get_num_threads()} threads.\n"
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
