"""
Reproductions of the papers' tables and figures, run by ``lexppl reproduce NAME``.

Each experiment is a module with a function
``run(out: Path, root: str | None, quick: bool, seed: int, device: str) -> list[dict]``
that trains what it needs, writes ``results.csv`` and ``results.md`` (ours beside the
published numbers) with :func:`lexppl.reproduce.report.write_results`, and returns the rows.
``quick=True`` is the seconds-long version the test suite runs; the default is the
reduced-budget reproduction whose settings each module's docstring states.

Modules are imported only when their experiment is run, so ``import lexppl`` stays light.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from lexppl.numerics import flush_denormals

__all__ = ["EXPERIMENTS", "run"]

#: Experiment name -> (module, one-line description).
EXPERIMENTS: dict[str, tuple[str, str]] = {
    "realx-table1": (
        "lexppl.reproduce.realx_table1",
        "REAL-X Table 1: every method on S1-S3 (control flow, TPR, FDR, AUROC, eAUROC, ACC, eACC)",
    ),
    "realx-table1-seeds": (
        "lexppl.reproduce.realx_table1_seeds",
        "REAL-X Table 1's claims over 5 seeds: REAL-X, L2X, INVASE, LEX-MI (mean ± SE, paired)",
    ),
    "realx-mnist": (
        "lexppl.reproduce.realx_mnist",
        "REAL-X Table 2 on MNIST: FULL, REAL-X, L2X k=1, INVASE, BASE-X (ACC/AUROC/eACC/eAUROC)",
    ),
    "mnist38": (
        "lexppl.reproduce.mnist38",
        "MNIST 3 vs 8: L2X post-hoc accuracy and AIL Table 3 (FS-M/FU-M/FS-A/FU-A/SEN)",
    ),
    "sp-mnist": (
        "lexppl.reproduce.sp_mnist",
        "LEX Fig. 5: TPR/FDR/ACC against the selection rate on SP-MNIST",
    ),
}


def run(
    name: str,
    out: str | os.PathLike,
    root: str | os.PathLike | None = None,
    quick: bool = False,
    seed: int = 0,
    device: str = "cpu",
) -> list[dict]:
    """
    Run the experiment ``name`` (a key of :data:`EXPERIMENTS`), writing into ``out``. Its
    ``settings.json`` is written last, and an earlier run's is removed when the first results
    are written (:func:`~lexppl.reproduce.report.write_results`): from lexppl 0.2.0 on, a
    folder whose results have no ``settings.json`` beside them holds a run that was cut short
    (the stored ``results/sp-mnist`` predates sp-mnist writing one).

    :raises ValueError: for an unknown experiment name.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; expected one of {sorted(EXPERIMENTS)}")
    module = importlib.import_module(EXPERIMENTS[name][0])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # Also covers the experiments' own training loops (FULL, the black boxes).
    with flush_denormals():
        return module.run(
            out=out,
            root=None if root is None else os.fspath(root),
            quick=quick,
            seed=seed,
            device=device,
        )
