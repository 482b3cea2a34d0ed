"""What the seed-study benchmarks share: one run per seed in worker processes, means ± SE over
seeds, and the results written beside the others (``benchmarks/results/NAME.{json,md}``).

Not a benchmark itself; ``evalx_variants.py``, ``evalx_exact.py`` and ``lexmi_gradients.py``
import it (run them as scripts, from any folder).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def mean_se(values: list[float]) -> tuple[float, float]:
    """The mean and its standard error sd / √n."""
    return statistics.mean(values), statistics.stdev(values) / math.sqrt(len(values))


def seed_parser(description: str, seeds: int, first_seed: bool = False) -> argparse.ArgumentParser:
    """A parser with ``--seeds`` (default ``seeds``) and ``--workers`` (default 2); with
    ``first_seed``, also ``--first-seed`` (default 0), for scripts whose reports name it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, default=seeds, help="how many seeds")
    if first_seed:
        parser.add_argument(
            "--first-seed", type=int, default=0, help="the first (fresh seeds for a confirmation)"
        )
    parser.add_argument("--workers", type=int, default=2)
    return parser


def run_seeds(
    parser: argparse.ArgumentParser, args: argparse.Namespace, run_seed: Callable[[int], dict]
) -> tuple[list[dict], float]:
    """``run_seed(s)`` for the ``args.seeds`` seeds from ``args.first_seed`` (0 if the parser
    has no ``--first-seed``) on, in ``args.workers`` fresh processes ("spawn": safe with torch's
    threads); returns the results and the wall time in seconds."""
    if args.seeds < 2:
        parser.error(f"--seeds must be at least 2 (a standard error needs two); got {args.seeds}")
    first = getattr(args, "first_seed", 0)
    if first < 0:
        parser.error(f"--first-seed must be at least 0; got {first}")
    seeds = range(first, first + args.seeds)
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        per_seed = pool.map(run_seed, seeds)
    return per_seed, time.perf_counter() - started


def write_results(name: str, record: dict, text: str) -> None:
    """``record`` (with the torch version added) to ``NAME.json`` and ``text`` to ``NAME.md`` in
    :data:`RESULTS`; ``text`` is printed too."""
    RESULTS.mkdir(exist_ok=True)
    record = {**record, "torch": torch.__version__}
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2, default=str))
    (RESULTS / f"{name}.md").write_text(text)
    print(text, end="")
