"""eACC on S3 under the exact evaluator F(y | x_R), beside the two trained EVAL-X of realx-table1.

EVAL-X (Jethani et al. 2021, eq. 5) trains a predictor on Bernoulli(1/2)-masked inputs; at its
optimum the predictor is F(y | x_R), the label's law given the selected features alone. On S3
that function is known: the features are i.i.d. N(0, 1), so

    F(y | x_R) = E_{x_rest ~ N(0, I)} P(y | x_R, x_rest),

which ``EvalX.from_predictor(TrueResponse("s3"), GaussianImputer())`` estimates with 512 draws
per instance. This benchmark scores, per seed, the same selections with three evaluators:

- ``0-imputed``: the paper's EVAL-X, as realx-table1 trains it (its "eACC" column);
- ``mask-aware``: the EVAL-X that also sees the mask (its "eACC (mask)" column);
- ``exact``: F(y | x_R) itself, free of any training's error.

Selections: REAL-X (λ = 0.1) and LEX-MI (k = 5), trained as in realx-table1 with the seeds
study's seeds (``evalx_variants.train_explainers``); TRUTH (x11 and the active branch's 4
features); ``TRUTH − near-0``: TRUTH without its branch features whose value is within 0.5 of
0, the imputed constant; ``TRUTH − random``: TRUTH without as many of its branch features,
chosen at random (the control: the same number of features left out, regardless of value).
Under F, leaving a feature out can only lose accuracy in expectation; a 0-imputed evaluator
cannot tell an observed value near 0 from a missing one.

Also per seed, without any explainer: each trained evaluator's mean absolute error
|q(y = 1 | m(x, r)) − F(y = 1 | x_R)| over the 10,000 test instances and 4 Bernoulli(1/2)
masks each; and, on the x11 < 0 (orange-skin) branch, the mean |x_j| of the branch features
REAL-X and LEX-MI keep and of those they leave out.

Cells are means ± SE over seeds (sd / √seeds); differences are paired by seed. Results go to
``benchmarks/results/evalx_exact.{json,md}``.

Run: ``.venv/bin/python benchmarks/evalx_exact.py`` (15 seeds, the 15 of
``lexmi_gradients.py --seeds 15``; about 33 minutes with 2 workers).
"""

from __future__ import annotations

import functools

import torch
from evalx_variants import train_explainers
from seed_study import mean_se, run_seeds, seed_parser, write_results

from lexppl.data import load
from lexppl.methods import EvalX
from lexppl.reproduce.realx_table1 import SETTINGS, exact_evaluator, fit_evaluators

EVALUATORS = ("0-imputed", "mask-aware", "exact")
SELECTIONS = ("REAL-X", "LEX-MI", "TRUTH", "TRUTH − near-0", "TRUTH − random")
NEAR_ZERO = 0.5  # |x_j| below this counts as near the imputed constant 0
NUM_IMPUTATIONS = 512  # draws per instance for F(y | x_R)
NUM_RANDOM_MASKS = 4  # Bernoulli(1/2) masks per test instance for the evaluators' error
CONTROL, ORANGE = 10, [2, 3, 4, 5]  # 0-based: x11, and x3..x6 (S3's branch at x11 < 0)


def truth_variants(x: torch.Tensor, truth: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """TRUTH without its near-0 branch features, and without as many chosen at random."""
    branch = truth.bool().clone()
    branch[:, CONTROL] = False
    near_zero = branch & (x.abs() < NEAR_ZERO)
    # Random control: rank the branch features by a uniform key; drop as many as near_zero has.
    generator = torch.Generator().manual_seed(seed)
    keys = torch.rand(x.shape, generator=generator).masked_fill(~branch, 2.0)
    rank = keys.argsort(-1).argsort(-1)
    random_drop = rank < near_zero.sum(-1, keepdim=True)
    return {
        "TRUTH − near-0": truth * ~near_zero,
        "TRUTH − random": truth * ~random_drop,
    }


def _exact_probs(exact: EvalX, x: torch.Tensor, masks: torch.Tensor, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)  # the same imputation draws for every selection (common numbers)
    # One forward pass for all draws, as when the stored table was made (its batch_size of 10,000
    # then counted masked inputs, not imputations): slicing would draw them in another order.
    return exact.predict_proba(x, masks, num_imputations=NUM_IMPUTATIONS)


def run_seed(seed: int, device: str = "cpu") -> dict:
    """The three evaluators' eACC (%) of each selection in :data:`SELECTIONS` on S3 drawn with
    ``seed``, the trained evaluators' error against F, and the |x_j| kept and left out; every
    model on ``device``."""
    torch.set_num_threads(1)
    settings = SETTINGS["default"]
    train = load("s3", "train", seed=seed, n=settings.n_train)
    test = load("s3", "test", seed=seed, n=settings.n_test)
    explainers = train_explainers(train, settings, seed, device)
    with torch.no_grad():  # each explainer's selection: its selector's mode, as in the table
        x = test.x.to(device)
        masks = {name: m.eval().mask_distribution(x).mode.cpu() for name, m in explainers.items()}
    masks["TRUTH"] = test.truth.float()
    masks.update(truth_variants(test.x, masks["TRUTH"], seed))

    trained = fit_evaluators("s3", train, settings, seed, device)
    evaluators = {"0-imputed": trained["EVAL-X"], "mask-aware": trained["EVAL-X+mask"]}
    exact = exact_evaluator("s3", device)  # EvalX.from_predictor(TrueResponse, GaussianImputer)
    eacc = {}
    for selection in SELECTIONS:
        mask = masks[selection]
        row = {
            name: 100 * ev.score(test.x, test.y, mask)["eacc"] for name, ev in evaluators.items()
        }
        probs = _exact_probs(exact, test.x, mask, seed).cpu()  # the labels are on the CPU
        row["exact"] = 100 * float((probs.argmax(-1) == test.y).float().mean())
        eacc[selection] = row

    generator = torch.Generator().manual_seed(seed)
    random_masks = (
        torch.rand((NUM_RANDOM_MASKS, *test.x.shape), generator=generator) < 0.5
    ).float()
    target = _exact_probs(exact, test.x, random_masks, seed)[..., 1]
    error = {
        name: float((ev.predict_proba(test.x, random_masks)[..., 1] - target).abs().mean())
        for name, ev in evaluators.items()
    }

    orange = test.x[:, CONTROL] < 0
    values = test.x[orange][:, ORANGE].abs()
    magnitude = {}
    for name in ("REAL-X", "LEX-MI"):
        kept = masks[name][orange][:, ORANGE].bool()
        magnitude[name] = {
            "kept": float(values[kept].mean()),
            "left out": float(values[~kept].mean()),
        }
    return {"seed": seed, "eACC": eacc, "error vs F": error, "|x| orange branch": magnitude}


def summarise(per_seed: list[dict]) -> dict:
    """Means ± SE over seeds: eACC per selection and evaluator, each selection minus TRUTH and
    LEX-MI minus REAL-X (paired by seed), the evaluators' error and the |x_j| kept / left out."""
    eacc, minus_truth = {}, {}
    for selection in SELECTIONS:
        eacc[selection] = {
            e: mean_se([s["eACC"][selection][e] for s in per_seed]) for e in EVALUATORS
        }
        minus_truth[selection] = {
            e: mean_se([s["eACC"][selection][e] - s["eACC"]["TRUTH"][e] for s in per_seed])
            for e in EVALUATORS
        }
    lex_minus_realx = {
        e: mean_se([s["eACC"]["LEX-MI"][e] - s["eACC"]["REAL-X"][e] for s in per_seed])
        for e in EVALUATORS
    }
    error = {e: mean_se([s["error vs F"][e] for s in per_seed]) for e in EVALUATORS[:2]}
    magnitude = {
        name: {
            part: mean_se([s["|x| orange branch"][name][part] for s in per_seed])
            for part in ("kept", "left out")
        }
        for name in ("REAL-X", "LEX-MI")
    }
    return {
        "eACC": eacc,
        "minus TRUTH": minus_truth,
        "LEX-MI − REAL-X": lex_minus_realx,
        "error vs F": error,
        "|x| orange branch": magnitude,
    }


def _cell(pair: tuple[float, float], places: int = 2, sign: bool = False) -> str:
    mean, se = pair
    return f"{mean:{'+' if sign else ''}.{places}f} ± {se:.{places}f}"


def report(per_seed: list[dict], workers: int, seconds: float, device: str = "cpu") -> str:
    """The markdown tables of :func:`summarise`, with the run's settings."""
    summary = summarise(per_seed)
    header = " | ".join(f"eACC {e}" for e in EVALUATORS)
    lines = [
        "# S3: eACC (%) under the exact evaluator F(y | x_R) and the two trained EVAL-X",
        "",
        f"| selection | {header} | " + " | ".join(f"− TRUTH, {e}" for e in EVALUATORS) + " |",
        "|---|" + "---:|" * (2 * len(EVALUATORS)),
    ]
    for selection in SELECTIONS:
        cells = [_cell(summary["eACC"][selection][e]) for e in EVALUATORS]
        cells += [_cell(summary["minus TRUTH"][selection][e], sign=True) for e in EVALUATORS]
        lines.append(f"| {selection} | " + " | ".join(cells) + " |")
    cells = [_cell(summary["LEX-MI − REAL-X"][e], sign=True) for e in EVALUATORS]
    lines += [
        f"| **LEX-MI − REAL-X** | {' | '.join(cells)} | | | |",
        "",
        "Trained evaluators' mean |q(y = 1 | m(x, r)) − F(y = 1 | x_R)| over Bernoulli(1/2) "
        "masks (no explainer involved): "
        + "; ".join(f"{e} {_cell(summary['error vs F'][e], 4)}" for e in EVALUATORS[:2])
        + ".",
        "",
        "Mean |x_j| of the orange-skin branch's features (x3..x6, instances with x11 < 0) that "
        "each explainer keeps and leaves out: "
        + "; ".join(
            f"{name} {_cell(m['kept'], 3)} kept, {_cell(m['left out'], 3)} left out"
            for name, m in summary["|x| orange branch"].items()
        )
        + " (all values: E|x| = 0.798).",
        "",
        f"S3, {len(per_seed)} seeds (data, explainers and trained evaluators as in `lexppl "
        "reproduce realx-table1-seeds`); mean ± SE over seeds, differences paired by seed; "
        "10,000 test instances per seed (one eACC has a binomial SE of about 0.4 points). "
        f"exact: {NUM_IMPUTATIONS} N(0, 1) draws of the left-out features per instance. "
        f"TRUTH − near-0 leaves out the branch features with |x_j| < {NEAR_ZERO}; TRUTH − random "
        f"as many, at random. Bayes accuracy on S3: 82.3 %. {device}, {workers} workers of 1 "
        f"thread, torch {torch.__version__}, {seconds / 60:.1f} min.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = seed_parser(__doc__.splitlines()[0], seeds=15)
    args = parser.parse_args()
    per_seed, seconds = run_seeds(parser, args, functools.partial(run_seed, device=args.device))
    record = {
        "per_seed": per_seed,
        "summary": summarise(per_seed),
        "device": args.device,
        "workers": args.workers,
        "seconds": seconds,
    }
    write_results("evalx_exact", record, report(per_seed, args.workers, seconds, args.device))


if __name__ == "__main__":
    main()
