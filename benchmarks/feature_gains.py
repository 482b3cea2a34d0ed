"""What each true S3 feature is worth to each evaluator, against REAL-X's penalty per feature.

REAL-X's selector (Jethani et al. 2021, eq. 6, at its released code's scale λ·mean_j s_j in place
of the paper's λ‖s‖₀) maximises log q(y | m(x, s)) − λ·mean_j s_j with
q its predictor trained on Bernoulli(1/2) masks and 0-imputation. Keeping feature j is worth it
for an instance when the expected gain in log-likelihood exceeds λ / D (0.1 / 11 ≈ 0.009 nats
on S3). This benchmark measures, per seed, for every true branch feature x3..x10 and on the
test instances whose true selection contains it, the gain of adding it to the rest of the truth:

    log q(y | x_truth) − log q(y | x_truth without j),

under REAL-X's own pre-trained predictor, the paper's 0-imputed EVAL-X, the mask-aware EVAL-X
and the exact F(y | x_R) (512 N(0, 1) draws of the features left out), split by whether
|x_j| < 0.5 (near the imputed 0). Beside it, how often REAL-X (λ = 0.1) and LEX-MI (k = 5),
trained as realx-table1 trains them (``evalx_variants.train_explainers``), keep feature j on
those instances, split the same way.

    .venv/bin/python benchmarks/feature_gains.py      # seeds 0-4, about 10 min with 2 workers

Cells are means ± SE over seeds (sd / √seeds). Results go to
``benchmarks/results/feature_gains.{json,md}``.
"""

from __future__ import annotations

import functools

import torch
from evalx_variants import train_explainers
from seed_study import mean_se, run_seeds, seed_parser, write_results

from lexppl.data import load
from lexppl.methods import EvalX
from lexppl.reproduce.realx_table1 import SETTINGS, exact_evaluator, fit_evaluators

FEATURES = range(2, 10)  # 0-based: x3..x10, the branch features (x11 is in every truth)
NEAR_ZERO = 0.5  # |x_j| below this counts as near the imputed constant 0
NUM_IMPUTATIONS = 512  # draws per instance for F(y | x_R), as realx-table1's exact column
LAMBDA = 0.1  # REAL-X's λ on S3 (the paper's)
EVALUATORS = ("REAL-X's predictor", "EVAL-X (0-imputed)", "EVAL-X (mask-aware)", "exact F")
EXPLAINERS = ("REAL-X", "LEX-MI")
SPLITS = ("all", "|x| < 0.5", "|x| ≥ 0.5")


def _log_likelihood(evaluator: EvalX, x, y, masks, imputations: int) -> torch.Tensor:
    probs = evaluator.predict_proba(x, masks.float(), num_imputations=imputations).cpu()
    return probs.gather(-1, y.long().unsqueeze(-1)).squeeze(-1).clamp_min(1e-12).log()


def _by_split(values: torch.Tensor, near_zero: torch.Tensor) -> dict[str, float]:
    parts = {"all": values, SPLITS[1]: values[near_zero], SPLITS[2]: values[~near_zero]}
    return {name: float(part.float().mean()) for name, part in parts.items()}


def run_seed(seed: int, device: str = "cpu") -> dict:
    """Gains per evaluator and selection rates per explainer, per feature and split; every
    model on ``device``."""
    torch.set_num_threads(1)
    settings = SETTINGS["default"]
    train = load("s3", "train", seed=seed, n=settings.n_train)
    test = load("s3", "test", seed=seed, n=settings.n_test)
    models = train_explainers(train, settings, seed, device)
    trained = fit_evaluators("s3", train, settings, seed, device)
    realx = models["REAL-X"]
    evaluators = {
        EVALUATORS[0]: EvalX.from_predictor(realx.predictor, realx.imputer, realx.likelihood),
        EVALUATORS[1]: trained["EVAL-X"],
        EVALUATORS[2]: trained["EVAL-X+mask"],
        EVALUATORS[3]: exact_evaluator("s3", device),
    }
    with torch.no_grad():
        x = test.x.to(device)
        selections = {
            name: models[name].mask_distribution(x).mode.bool().cpu() for name in EXPLAINERS
        }
    truth = test.truth.bool()
    result = {"gain": {}, "kept": {}}
    for j in FEATURES:
        rows = truth[:, j]
        x, y, full = test.x[rows], test.y[rows], truth[rows]
        without = full.clone()
        without[:, j] = False
        near_zero = x[:, j].abs() < NEAR_ZERO
        feature = f"x{j + 1}"
        with torch.no_grad():
            for name, evaluator in evaluators.items():
                draws = NUM_IMPUTATIONS if name == "exact F" else 1
                gain = _log_likelihood(evaluator, x, y, full, draws) - _log_likelihood(
                    evaluator, x, y, without, draws
                )
                result["gain"].setdefault(name, {})[feature] = _by_split(gain, near_zero)
        for name, masks in selections.items():
            kept = masks[rows][:, j]
            result["kept"].setdefault(name, {})[feature] = _by_split(kept, near_zero)
    return result


def summarise(per_seed: list[dict], kind: str) -> dict:
    """``{name: {feature: {split: (mean, se)}}}`` over seeds for ``kind`` ("gain" or "kept")."""
    names = per_seed[0][kind]
    return {
        name: {
            feature: {
                split: mean_se([seed[kind][name][feature][split] for seed in per_seed])
                for split in SPLITS
            }
            for feature in names[name]
        }
        for name in names
    }


def report(per_seed: list[dict], workers: int, seconds: float, device: str = "cpu") -> str:
    """Two tables: the gains (nats) and the explainers' keep rates (%)."""
    features = [f"x{j + 1}" for j in FEATURES]
    lines = [
        "# What each true S3 feature is worth to each evaluator, and who keeps it",
        "",
        f"## Gain of adding the feature to the rest of the truth (nats; REAL-X's penalty per "
        f"feature λ / D = {LAMBDA / 11:.4f})",
        "",
    ]
    header = "| evaluator | split | " + " | ".join(features) + " |"
    rule = "|---|---|" + "---:|" * len(features)
    for kind, scale, fmt in [("gain", 1.0, "{:+.4f} ± {:.4f}"), ("kept", 100.0, "{:.0f} ± {:.0f}")]:
        if kind == "kept":
            lines += ["## Kept by the explainer (% of the instances whose truth has it)", ""]
        lines += [header.replace("evaluator", "evaluator" if kind == "gain" else "explainer")]
        lines.append(rule)
        for name, by_feature in summarise(per_seed, kind).items():
            for split in SPLITS:
                cells = [
                    fmt.format(scale * by_feature[f][split][0], scale * by_feature[f][split][1])
                    for f in features
                ]
                lines.append(f"| {name} | {split} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(
        f"S3, {len(per_seed)} seeds (data, explainers and trained evaluators as in `lexppl "
        f"reproduce realx-table1-seeds`); mean ± SE over seeds; 10,000 test instances per seed, "
        f"each feature's columns over the half whose true selection contains it. "
        f"REAL-X at λ = {LAMBDA:g}, its selection 1[π > 1/2]; LEX-MI k = 5, its top 5. "
        f"exact F: {NUM_IMPUTATIONS} N(0, 1) draws of the left-out features per instance. "
        f"{device}, {workers} workers of 1 thread, torch {torch.__version__}, "
        f"{seconds / 60:.1f} min."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = seed_parser(__doc__.splitlines()[0], seeds=5)
    args = parser.parse_args()
    per_seed, seconds = run_seeds(parser, args, functools.partial(run_seed, device=args.device))
    record = {
        "per_seed": per_seed,
        "gain": summarise(per_seed, "gain"),
        "kept": summarise(per_seed, "kept"),
        "device": args.device,
        "workers": args.workers,
        "seconds": seconds,
    }
    write_results("feature_gains", record, report(per_seed, args.workers, seconds, args.device))


if __name__ == "__main__":
    main()
