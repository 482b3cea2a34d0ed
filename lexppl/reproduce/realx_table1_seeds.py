"""
REAL-X Table 1's claims over regenerated datasets: REAL-X, L2X, INVASE and LEX-MI on S1–S3 with
several seeds, and the paired differences LEX-MI − REAL-X.

:mod:`lexppl.reproduce.realx_table1` is one training run per method, as REAL-X Table 1 is. Its
standard errors are over test instances: they say how well that one run is measured, not how
much a rerun would move. The LEX paper reports its synthetic experiments as mean and standard
deviation over 5 generated datasets (LEX §4.1, Fig. 3). This experiment does the same for the
rows the claims are about. For each seed :math:`s \\in \\{seed, \\dots, seed + n - 1\\}` and
each dataset it runs :func:`~lexppl.reproduce.realx_table1.run_dataset` with seed :math:`s`:
new training, validation and test data, new evaluators, new initialisations, the same settings
as ``realx-table1`` except that only the paper's λ is trained. With :math:`s = 0` its rows are
``realx-table1``'s. The methods: REAL-X, INVASE (the paper's λ), L2X (the paper's k), LEX-MI at
k = 5 and at REAL-X's mean selection size rounded ("LEX-MI (REAL-X's k)", the same selection
credit; k may differ between seeds), and TRUTH.

It reports:

- **per dataset and method**: every metric's mean over the :math:`n` seeds and its standard
  error :math:`\\mathrm{sd}/\\sqrt n`;
- **paired differences** :math:`\\Delta_s = m_s(\\text{LEX-MI}) - m_s(\\text{REAL-X})` for
  TPR, eACC, eACC (mask) and eACC (exact), and TRUTH − REAL-X in the three eACC: paired, as
  both rows are scored on seed :math:`s`'s test set by its evaluators. The mean
  :math:`\\bar\\Delta`, its standard error :math:`\\mathrm{SE}` and a one-sided verdict:
  "≥ 0" if :math:`\\bar\\Delta \\ge 0`; "not significantly < 0" if
  :math:`\\bar\\Delta + t_{0.95,\\,n-1}\\,\\mathrm{SE} \\ge 0` (a one-sided t-test at 5 % does
  not reject :math:`\\mathbb E\\,\\Delta \\ge 0`); otherwise "< 0".

Runs go to a pool of worker processes, one (seed, dataset) per task; each worker uses
``torch.get_num_threads() // workers`` threads (at least 1). Results do not depend on the
number of workers. ``out/per_seed.csv`` has every run's row with its seed, ``out/results.csv``
/ ``results.md`` the means, ``out/differences.csv`` the paired differences.

**References**

[1] N. Jethani, M. Sudarshan, Y. Aphinyanaphongs, R. Ranganath, *Have We Learned to Explain?*,
    AISTATS 2021, Table 1.
[2] H. Senetaire, D. Garreau, J. Frellsen, P.-A. Mattei, *Explainability as statistical
    inference*, ICML 2023, §4.1 and Fig. 3.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import multiprocessing
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import torch
from scipy.stats import t as student_t

from lexppl.reproduce import realx_table1 as table1
from lexppl.reproduce.report import markdown_table, write_csv, write_results

__all__ = ["METHODS", "SETTINGS", "SeedSettings", "paired_differences", "run", "summarise"]

logger = logging.getLogger(__name__)

#: The methods of the claims, in :data:`lexppl.reproduce.realx_table1.METHODS` order.
METHODS = ("REAL-X", "L2X", "INVASE", "LEX-MI", "TRUTH")
#: The row of LEX-MI at REAL-X's mean selection size (its k varies with the seed).
MATCHED = "LEX-MI (REAL-X's k)"
#: Metrics averaged over seeds (percentages except the AUROCs, as in realx-table1).
_METRICS = (
    *table1.METRICS,
    "eAUROC (mask)",
    "eACC (mask)",
    "eAUROC (exact)",
    "eACC (exact)",
    "mean selected",
    "distinct masks",
)
#: Rows compared with REAL-X, seed by seed, and in which metrics.
_COMPARED = {
    "LEX-MI": ("TPR", "eACC", "eACC (mask)", "eACC (exact)"),
    MATCHED: ("TPR", "eACC", "eACC (mask)", "eACC (exact)"),
    "TRUTH": ("eACC", "eACC (mask)", "eACC (exact)"),
}
_TITLE = "REAL-X Table 1's claims over regenerated datasets: mean ± SE over seeds"


@dataclass(frozen=True)
class SeedSettings:
    """A seeds study: ``num_seeds`` runs of ``table`` (realx-table1's settings) in ``workers``
    processes."""

    table: table1.Settings
    num_seeds: int
    workers: int


def _only_the_papers_lambda(settings: table1.Settings) -> table1.Settings:
    return dataclasses.replace(settings, lambda_grid=())


SETTINGS = {
    "default": SeedSettings(_only_the_papers_lambda(table1.SETTINGS["default"]), 5, 2),
    "quick": SeedSettings(_only_the_papers_lambda(table1.SETTINGS["quick"]), 2, 2),
}


# ---------------------------------------------------------------------------- runs
def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def _run_one(seed: int, dataset: str, quick: bool, device: str) -> list[dict]:
    """One seed's rows of one dataset, with a ``seed`` column and the matched LEX-MI row named
    :data:`MATCHED`."""
    settings = SETTINGS["quick" if quick else "default"].table
    rows = table1.run_dataset(dataset, settings, seed, device, methods=METHODS)
    for row in rows:
        row["seed"] = seed
    realx = next(row for row in rows if row["method"] == "REAL-X")
    lex = [row for row in rows if row["method"].startswith("LEX-MI")]
    if len(lex) == 1:  # REAL-X selected 5 on average: k = 5 is also the matched k
        lex.append({**lex[0]})
    lex[1]["method"] = MATCHED
    rows = [row for row in rows if not row["method"].startswith("LEX-MI")] + lex
    logger.info(
        "seed %d %s done: REAL-X selects %.1f, LEX-MI's matched %s",
        seed,
        dataset.upper(),
        realx["mean selected"],
        lex[1]["k/λ"],
    )
    return rows


def _order(row: dict) -> tuple:
    method = row["method"]
    rank = METHODS.index("LEX-MI") + 0.5 if method == MATCHED else METHODS.index(method)
    return (row["dataset"], rank, row.get("seed", 0))


# ---------------------------------------------------------------------------- statistics
def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    # Mean and its standard error sd / √n over the finite values (NaN where undefined).
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    if len(values) < 2:
        return values[0], math.nan
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def summarise(per_seed: Sequence[dict]) -> list[dict]:
    """
    Mean and standard error over seeds of every metric, per dataset and method: one row per
    (dataset, method) of ``per_seed`` (rows as :func:`run` writes to ``per_seed.csv``), with
    columns ``METRIC`` (the mean), ``METRIC SE``, ``seeds`` (how many) and, for REAL-X Table
    1's metrics, ``METRIC (paper)`` (the published number; None for our rows). NaN (a metric a
    method has not, such as TRUTH's ACC) stays NaN.
    """
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in sorted(per_seed, key=_order):
        groups[(row["dataset"], row["method"])].append(row)
    reference = table1.reference()
    summary = []
    for (dataset, method), rows in groups.items():
        settings = sorted({str(row["k/λ"]) for row in rows})
        out = {"dataset": dataset, "method": method, "k/λ": ", ".join(settings)}
        out["seeds"] = len(rows)
        for metric in _METRICS:
            # A metric a run did not record (an older per_seed.csv) counts as NaN.
            mean, se = _mean_se([float(row.get(metric, math.nan)) for row in rows])
            out[metric], out[f"{metric} SE"] = mean, se
            if metric in table1.METRICS:
                out[f"{metric} (paper)"] = reference.get((metric, method, dataset.lower()))
        summary.append(out)
    return summary


def paired_differences(per_seed: Sequence[dict]) -> list[dict]:
    """
    The paired differences with REAL-X over seeds, per dataset: LEX-MI at k = 5
    (``"LEX-MI"``) and at REAL-X's selection size (:data:`MATCHED`) in TPR, eACC,
    eACC (mask) and eACC (exact); TRUTH, the ground truth, in the three eACC (how the evaluators
    rank a perfect explanation against REAL-X's). Each row: ``dataset, comparison, metric, seeds``,
    ``ours`` and ``REAL-X`` (the means), ``difference`` (the mean of the per-seed
    differences), ``SE`` and ``verdict`` (see the module docstring). Seeds missing either row
    are skipped.
    """
    by_key = {(row["dataset"], row["method"], int(row["seed"])): row for row in per_seed}
    datasets = sorted({row["dataset"] for row in per_seed})
    seeds = sorted({int(row["seed"]) for row in per_seed})
    rows = []
    for dataset in datasets:
        for method, metrics in _COMPARED.items():
            pairs = [
                (by_key[(dataset, method, s)], by_key[(dataset, "REAL-X", s)])
                for s in seeds
                if (dataset, method, s) in by_key and (dataset, "REAL-X", s) in by_key
            ]
            for metric in metrics:
                ours = [float(a.get(metric, math.nan)) for a, _ in pairs]
                theirs = [float(b.get(metric, math.nan)) for _, b in pairs]
                difference, se = _mean_se([a - b for a, b in zip(ours, theirs)])
                rows.append(
                    {
                        "dataset": dataset,
                        "comparison": f"{method} − REAL-X",
                        "metric": metric,
                        "seeds": len(pairs),
                        "ours": _mean_se(ours)[0],
                        "REAL-X": _mean_se(theirs)[0],
                        "difference": difference,
                        "SE": se,
                        "verdict": _verdict(difference, se, len(pairs)),
                    }
                )
    return rows


def _verdict(difference: float, se: float, n: int) -> str:
    if math.isnan(difference):
        return "–"
    if difference >= 0:
        return "≥ 0"
    if n >= 2 and se > 0 and difference + student_t.ppf(0.95, n - 1) * se >= 0:
        return "not significantly < 0"
    return "< 0"


# ---------------------------------------------------------------------------- report
def _summary_columns() -> list[str]:
    columns = ["dataset", "method", "k/λ", "seeds"]
    for metric in _METRICS:
        columns += [metric, f"{metric} SE"]
        columns += [f"{metric} (paper)"] if metric in table1.METRICS else []
    return columns


def _notes(s: SeedSettings, quick: bool, seeds: Sequence[int], seconds: float, diffs) -> str:
    t = s.table
    return f"""
## Paired differences with REAL-X

{markdown_table(diffs)}

Differences and SE in points (percent). Verdict: "≥ 0" if the mean difference is ≥ 0; "not
significantly < 0" if a one-sided t-test at 5 % (t with seeds − 1 degrees of freedom) does not
reject a difference ≥ 0; otherwise "< 0".

## Settings{" (quick smoke run, not a reproduction)" if quick else ""}

Seeds {", ".join(map(str, seeds))}: each draws new data (`lexppl.data.load(..., seed=s)`), new
evaluators and new initialisations; seed 0 gives `realx-table1`'s rows. Per seed and dataset, the
settings of `realx-table1` ({t.n_train:,} / {t.n_val:,} / {t.n_test:,} instances;
{t.epochs} epochs, LEX-MI {t.lex_epochs}, Adam {t.lr:g}, batch {t.batch_size}; REAL-X's predictor
pre-trained {t.pretrain_epochs} epochs; evaluators {t.evalx_epochs} epochs; INVASE
{t.invase_activation.upper()}, L2X {t.l2x_activation.upper()}), but only the paper's λ. Methods:
REAL-X, INVASE at the paper's λ, L2X at the paper's k, LEX-MI at k = {t.lex_k} and at REAL-X's mean
selection size rounded ("{MATCHED}"; "k/λ" lists the k of the seeds), TRUTH (the ground
truth, scored by the evaluators). Each cell: the mean over seeds; "SE": its standard error,
sd / √seeds, where sd is the spread between seeds; "(paper)": REAL-X Table 1 (one run per
method). Percentages except AUROCs. Per-seed rows in `per_seed.csv`.
{s.workers} worker processes; total wall time {seconds / 60:.1f} min.
"""


def run(out: Path, root: str | None, quick: bool, seed: int, device: str) -> list[dict]:
    """
    Run REAL-X, L2X, INVASE, LEX-MI and TRUTH on S1–S3 for seeds ``seed, …, seed + n − 1`` and
    write ``out/per_seed.csv``, ``out/results.csv`` / ``results.md`` (means ± SE over seeds, the
    paired differences, settings), ``out/differences.csv`` and ``out/settings.json``.

    ``root`` is unused (the data are synthetic). Returns the summary rows.
    """
    s = SETTINGS["quick" if quick else "default"]
    seeds = list(range(seed, seed + s.num_seeds))
    tasks = [(seed_, dataset) for seed_ in seeds for dataset in table1.DATASETS]
    workers = max(1, min(s.workers, len(tasks)))
    threads = max(1, torch.get_num_threads() // workers)
    started = time.perf_counter()
    per_seed: list[dict] = []
    # "spawn": a fresh interpreter per worker, safe with torch's threads and with CUDA.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, context, initializer=_init_worker, initargs=(threads,)
    ) as pool:
        futures = [pool.submit(_run_one, *task, quick, device) for task in tasks]
        for done, future in enumerate(as_completed(futures), 1):
            per_seed += future.result()
            logger.info(
                "%d/%d runs done, %.1f min", done, len(tasks), (time.perf_counter() - started) / 60
            )
    return _write_report(out, per_seed, quick, seeds, time.perf_counter() - started, device)


def _write_report(
    out: Path, per_seed: list[dict], quick: bool, seeds: list[int], seconds: float, device: str
) -> list[dict]:
    """Write every output file of :func:`run` from the per-seed rows; returns the summary."""
    s = SETTINGS["quick" if quick else "default"]
    per_seed = sorted(per_seed, key=_order)
    summary = summarise(per_seed)
    diffs = paired_differences(per_seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "per_seed.csv", per_seed, ["seed", *table1._columns()])
    write_csv(out / "differences.csv", diffs, list(diffs[0]))
    write_results(
        out, summary, _TITLE, _notes(s, quick, seeds, seconds, diffs), columns=_summary_columns()
    )
    config = {**dataclasses.asdict(s), "seeds": seeds, "device": device, "wall_seconds": seconds}
    (out / "settings.json").write_text(json.dumps(config, indent=2))
    return summary
