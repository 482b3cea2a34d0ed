"""Training steps with subnormal floats flushed to zero against steps without, on images.

Image pixels that are 0 in every training image give their first-layer weights no gradient from
the data; weight decay shrinks those weights until they are subnormal floats (below
``torch.finfo(torch.float32).tiny``), and CPU matrix products slow down although their results
do not change. The benchmark trains realx-mnist's L2X (k = 1, 2 x 100 selector, 2 x 200
predictor, Adam 1e-3 with weight decay 1e-3, batch 100) without flushing for ``--warmup-steps``
steps, counts the subnormal parameters, and then times steps from that same state with and
without :func:`lexppl.numerics.flush_denormals`, in interleaved blocks so that both see the same
machine state. The ratio of median step times goes to ``benchmarks/results/denormals.{json,md}``.

Data: MNIST from ``--root`` (the folder of ``../shared/data``), else scikit-learn's 8 x 8 digits
(three of whose 64 pixels are always 0).

CPU only, on purpose, so there is no ``--device``: flushing subnormals to zero
(``torch.set_flush_denormal``, which :func:`~lexppl.numerics.flush_denormals` sets) is a setting
of the CPU's floating-point unit, CUDA kernels ignore it, and the slowdown it removes is the CPU's.

Run: ``.venv/bin/python benchmarks/denormals.py [--root ../shared/data] [--warmup-steps 3000]
[--steps 300] [--block 50] [--threads 1]``; the stored ``denormals`` table is the plain command,
``denormals_mnist`` the one with ``--root ../shared/data``.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from _options import require_at_least

from lexppl.methods import l2x
from lexppl.numerics import flush_denormals

RESULTS = Path(__file__).parent / "results"


def load_images(root: str | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Flattened images in [0, 1], labels and the data's name."""
    if root is not None:
        from lexppl.reproduce.realx_mnist import load_mnist

        x, y = load_mnist(root, "mnist", train=True)
        return x.flatten(1), y, "MNIST (60,000 x 784)"
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return torch.tensor(x, dtype=torch.float32) / 16.0, torch.tensor(y), "digits (1,797 x 64)"


def subnormal_count(module: torch.nn.Module) -> int:
    tiny = torch.finfo(torch.float32).tiny
    return sum(int(((p.abs() < tiny) & (p != 0)).sum()) for p in module.parameters())


class Trainer:
    """One L2X model and its Adam state, stepping through shuffled mini-batches."""

    def __init__(self, method, x, y, batch_size, seed):
        self.model, self.bound = method.model, method.bound
        self.x, self.y, self.batch_size = x, method.targets(y), batch_size
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, weight_decay=1e-3)
        self.generator = torch.Generator().manual_seed(seed)

    def step(self) -> None:
        rows = torch.randint(len(self.x), (self.batch_size,), generator=self.generator)
        loss = self.bound.differentiable_loss(
            self.model.model, self.model.guide, self.x[rows], self.y[rows]
        )
        self.optimizer.zero_grad(set_to_none=True)
        (loss / self.batch_size).backward()
        self.optimizer.step()

    def timed_steps(self, steps: int) -> list[float]:
        times = []
        for _ in range(steps):
            started = time.perf_counter()
            self.step()
            times.append(time.perf_counter() - started)
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="folder holding MNIST (default: digits)")
    parser.add_argument("--warmup-steps", type=int, default=3000)
    parser.add_argument("--steps", type=int, default=300, help="timed steps per setting")
    parser.add_argument(
        "--block", type=int, default=50, help="steps per interleaved block (divides --steps)"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    require_at_least(
        parser,
        [
            ("--warmup-steps", args.warmup_steps, 0),
            ("--steps", args.steps, 1),
            ("--block", args.block, 1),
            ("--threads", args.threads, 1),
        ],
    )
    # Whole blocks only, so that each setting is timed for exactly --steps steps.
    if args.steps % args.block:
        parser.error(f"--block ({args.block}) must divide --steps ({args.steps})")
    if args.root is not None and not Path(args.root).is_dir():
        parser.error(f"--root {args.root!r} is not a folder")
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(False)
    x, y, data_name = load_images(args.root)
    torch.manual_seed(0)
    method = l2x(x.shape[1], 10, k=1, temperature=0.5)
    warm = Trainer(method, x, y, batch_size=100, seed=0)
    started = time.perf_counter()
    warm.timed_steps(args.warmup_steps)
    warmup_seconds = time.perf_counter() - started
    subnormal = subnormal_count(warm.model)
    total = sum(p.numel() for p in warm.model.parameters())

    # Two copies of the warmed-up state, one per setting.
    trainers = {"flushed": copy.deepcopy(warm), "not flushed": copy.deepcopy(warm)}
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(args.steps // args.block):
        with flush_denormals():
            times["flushed"] += trainers["flushed"].timed_steps(args.block)
        times["not flushed"] += trainers["not flushed"].timed_steps(args.block)
    median_ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    result = {
        "data": data_name,
        "warmup_steps": args.warmup_steps,
        "warmup_seconds": round(warmup_seconds, 1),
        "subnormal_parameters_after_warmup": subnormal,
        "parameters": total,
        "timed_steps_per_setting": len(times["flushed"]),
        "median_step_ms": {name: round(value, 2) for name, value in median_ms.items()},
        "speedup": round(median_ms["not flushed"] / median_ms["flushed"], 2),
        "device": "cpu",
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
    }
    RESULTS.mkdir(exist_ok=True)
    stem = "denormals" if args.root is None else "denormals_mnist"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Training steps with subnormals flushed to zero, against steps without",
        "",
        f"realx-mnist's L2X (k = 1) on {data_name}, batch 100, Adam 1e-3, weight decay 1e-3, "
        f"{args.threads} thread(s). After {args.warmup_steps} steps without flushing "
        f"({warmup_seconds:.0f} s), {subnormal:,} of the {total:,} parameters are subnormal. "
        f"Then {len(times['flushed'])} steps per setting from that state, interleaved in "
        f"blocks of {args.block}.",
        "",
        "| setting | median step (ms) |",
        "|---|---|",
        *(f"| {name} | {value:.2f} |" for name, value in median_ms.items()),
        "",
        f"Not flushed / flushed: **{result['speedup']:.2f}×** "
        f"(torch {torch.__version__}, {result['machine']}).",
        "",
    ]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
