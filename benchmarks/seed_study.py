"""What the seed-study benchmarks share: one run per seed in worker processes, means ± SE over
seeds, and the results written beside the others (``benchmarks/results/NAME.{json,md}``).

Not a benchmark itself; ``evalx_variants.py``, ``evalx_exact.py``, ``feature_gains.py``,
``lexmi_gradients.py`` and ``realx_budget.py`` import it (run them as scripts, from any folder).
Each of them takes ``--seeds``, ``--workers`` (default 2) and ``--device`` (default cpu), and
records the device in its json and its table's footer.
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
from _options import parse_device

RESULTS = Path(__file__).parent / "results"


def mean_se(values: list[float]) -> tuple[float, float]:
    """The mean and its standard error sd / √n."""
    return statistics.mean(values), statistics.stdev(values) / math.sqrt(len(values))


def seed_parser(description: str, seeds: int, first_seed: bool = False) -> argparse.ArgumentParser:
    """A parser with ``--seeds`` (default ``seeds``), ``--workers`` (default 2) and
    ``--device`` (default "cpu"); with ``first_seed``, also ``--first-seed`` (default 0), for
    scripts whose reports name it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, default=seeds, help="how many seeds")
    if first_seed:
        parser.add_argument(
            "--first-seed", type=int, default=0, help="the first (fresh seeds for a confirmation)"
        )
    parser.add_argument("--workers", type=int, default=2, help="processes, one seed each at a time")
    parser.add_argument("--device", default="cpu", help="where every model trains and scores")
    return parser


def run_seeds(
    parser: argparse.ArgumentParser, args: argparse.Namespace, run_seed: Callable[[int], dict]
) -> tuple[list[dict], float]:
    """``run_seed(s)`` for the ``args.seeds`` seeds from ``args.first_seed`` (0 if the parser
    has no ``--first-seed``) on, in ``args.workers`` fresh processes ("spawn": safe with torch's
    threads); returns the results and the wall time in seconds. The options are checked first:
    a bad one ends the run with ``parser.error`` before any seed starts."""
    if args.seeds < 2:
        parser.error(f"--seeds must be at least 2 (a standard error needs two); got {args.seeds}")
    first = getattr(args, "first_seed", 0)
    if first < 0:
        parser.error(f"--first-seed must be at least 0; got {first}")
    if args.workers < 1:
        parser.error(f"--workers must be at least 1; got {args.workers}")
    parse_device(parser, args.device)
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
