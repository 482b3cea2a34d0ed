"""Which evaluator can tell a true explanation from REAL-X's on S3: EVAL-X variants side by side.

In ``lexppl reproduce realx-table1`` the paper's EVAL-X (0-imputation, trained on Bernoulli(1/2)
masks; Jethani et al. 2021, eq. 5) gives REAL-X's selections on S3 a higher eACC than the
ground-truth selection itself. This benchmark asks whether that is the evaluator's training
(budget, weight decay, data), its imputation or its input. Per seed, REAL-X (λ = 0.1) and
LEX-MI (k = 5) are trained exactly as in that table (``SETTINGS["default"]``, the seeds study's
seeds, so their selections are the study's). The frozen selections are then scored by the
evaluators below, all with the table's architecture (2 × 200 MLP) and batch (1000):

- ``0-imputed``: the table's evaluator, on the 10,000 training instances, 100 epochs of Adam
  1e-3 with weight decay 1e-3;
- ``paper's budget``: the same for 1,000 epochs at Adam 1e-4 (the REAL-X paper's synthetic setting);
- ``no decay, 300 epochs`` and ``no decay, 1,000 epochs``: Adam 1e-3 without weight decay,
  trained 3 and 10 times as long;
- ``200k``: the table's training on 200,000 fresh S3 instances, 20 epochs (4,000 steps);
- ``-5-imputed``: a constant outside the features' support, as the REAL-X paper's footnote
  suggests;
- ``mask-aware``: ``EvalX(..., mask_as_input=True)``, the table's "eACC (mask)" column.

Besides each eACC, the table gives each evaluator's **held-out eq. 5**
(:meth:`~lexppl.methods.EvalX.log_likelihood` on the 10,000 validation instances, 16 masks
each): how well it fits :math:`F(y \\mid x_R)` over random subsets, the criterion by which one
would choose an evaluator's training without looking at any explainer. A second table gives
that objective for realx-table1's own two evaluators on S1–S3. Cells are means ± SE
over seeds (sd / √seeds); differences are paired by seed. One eACC on 10,000 test instances
has a binomial SE of about 0.4 points. Bayes accuracy on S3 is 82.3 %. Results go to
``benchmarks/results/evalx_variants.{json,md}``.

Run: ``.venv/bin/python benchmarks/evalx_variants.py`` (5 seeds, about 20 minutes with 2
workers).
"""

from __future__ import annotations

import functools

import torch
from seed_study import mean_se, run_seeds, seed_parser, write_results

from lexppl.data import load
from lexppl.imputers import ConstantImputer
from lexppl.methods import EvalX, lex_multiple_imputation, realx
from lexppl.nets import MLP
from lexppl.reproduce.realx_table1 import DATASETS, SETTINGS, fit_evaluators

NUM_FEATURES, NUM_CLASSES = 11, 2
SELECTIONS = ("REAL-X", "LEX-MI", "TRUTH", "ALL")
#: Evaluator -> (training data, epochs, Adam lr, weight decay, imputed constant, mask as input).
VARIANTS = {
    "0-imputed (the table's)": ("train", 100, 1e-3, 1e-3, 0.0, False),
    "0-imputed, paper's budget": ("train", 1000, 1e-4, 1e-3, 0.0, False),
    "0-imputed, no decay, 300 epochs": ("train", 300, 1e-3, 0.0, 0.0, False),
    "0-imputed, no decay, 1,000 epochs": ("train", 1000, 1e-3, 0.0, 0.0, False),
    "0-imputed, 200k": ("fresh", 20, 1e-3, 1e-3, 0.0, False),
    "-5-imputed": ("train", 100, 1e-3, 1e-3, -5.0, False),
    "mask-aware": ("train", 100, 1e-3, 1e-3, 0.0, True),
}
# realx-table1 seeds S3 (dataset index 2) with seed + 200 for its evaluators, and REAL-X and
# LEX-MI (method indices 0 and 4) with seed + 201 and seed + 205.
EVALUATOR_OFFSET, REALX_OFFSET, LEX_OFFSET = 200, 201, 205


def train_explainers(train, settings, seed: int, device: str = "cpu") -> dict:
    """REAL-X (λ = 0.1) and LEX-MI (k = 5) as realx-table1 trains them on S3 with ``seed``,
    on ``device``."""
    common = dict(lr=settings.lr, batch_size=settings.batch_size, device=device)
    torch.manual_seed(seed + REALX_OFFSET)
    realx_method = realx(
        NUM_FEATURES,
        NUM_CLASSES,
        lam=0.1,
        selector_hidden=settings.selector_hidden,
        predictor_hidden=settings.predictor_hidden,
    )
    realx_method.train(
        train.x,
        train.y,
        epochs=settings.epochs,
        pretrain_epochs=settings.pretrain_epochs,
        seed=seed + REALX_OFFSET,
        **common,
    )
    torch.manual_seed(seed + LEX_OFFSET)
    lex_method = lex_multiple_imputation(
        NUM_FEATURES,
        NUM_CLASSES,
        k=settings.lex_k,
        num_masks=settings.lex_num_masks,
        pathwise_method=settings.lex_pathwise_method,
        selector_hidden=settings.lex_selector_hidden,
        predictor_hidden=settings.lex_predictor_hidden,
    )
    lex_method.train(train.x, train.y, epochs=settings.lex_epochs, seed=seed + LEX_OFFSET, **common)
    return {"REAL-X": realx_method.model, "LEX-MI": lex_method.model}


def fit_evaluator(name: str, data: dict, settings, seed: int, device: str = "cpu") -> EvalX:
    """The evaluator ``name`` of :data:`VARIANTS`, fitted on ``data[...]`` on ``device`` and
    frozen."""
    split, epochs, lr, weight_decay, fill, with_mask = VARIANTS[name]
    torch.manual_seed(seed + EVALUATOR_OFFSET)
    width = 2 * NUM_FEATURES if with_mask else NUM_FEATURES
    evaluator = EvalX(
        MLP(width, NUM_CLASSES, settings.predictor_hidden),
        ConstantImputer(fill),
        mask_as_input=with_mask,
    )
    return evaluator.fit(
        data[split].x,
        data[split].y,
        epochs=epochs,
        batch_size=settings.batch_size,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
        device=device,
    )


def table_evaluators_fit(seed: int, device: str = "cpu") -> dict:
    """Held-out eq. 5 of realx-table1's two evaluators, as that table trains them with
    ``seed`` (on ``device``), on each of S1–S3: ``{dataset: {"0-imputed": ...,
    "mask-aware": ...}}``."""
    settings = SETTINGS["default"]
    fits = {}
    for dataset in DATASETS:
        train = load(dataset, "train", seed=seed, n=settings.n_train)
        val = load(dataset, "val", seed=seed, n=settings.n_val)
        evaluators = fit_evaluators(dataset, train, settings, seed, device)
        fits[dataset.upper()] = {
            name: evaluators[key].log_likelihood(val.x, val.y)
            for name, key in [("0-imputed", "EVAL-X"), ("mask-aware", "EVAL-X+mask")]
        }
    return fits


def run_seed(seed: int, n_fresh: int = 200_000, device: str = "cpu") -> dict:
    """Every evaluator of :data:`VARIANTS` on S3 drawn with ``seed``: its held-out eq. 5 and
    its eACC (%) of each selection in :data:`SELECTIONS` (``"variants"``); and
    :func:`table_evaluators_fit` (``"table evaluators"``); everything trained on ``device``."""
    torch.set_num_threads(1)
    settings = SETTINGS["default"]
    data = {
        split: load("s3", split, seed=seed, n=n)
        for split, n in [
            ("train", settings.n_train),
            ("val", settings.n_val),
            ("test", settings.n_test),
        ]
    }
    # Independent of train, val and test for every seed (those draw with ``seed`` itself).
    data["fresh"] = load("s3", "train", seed=7 + 1000 * seed, n=n_fresh)
    test = data["test"]
    explainers = train_explainers(data["train"], settings, seed, device)
    with torch.no_grad():  # each explainer's selection: its selector's mode, as in the table
        x = test.x.to(device)
        masks = {name: m.eval().mask_distribution(x).mode.cpu() for name, m in explainers.items()}
    masks["TRUTH"] = test.truth.float()
    masks["ALL"] = torch.ones_like(masks["TRUTH"])
    result = {}
    for name in VARIANTS:
        evaluator = fit_evaluator(name, data, settings, seed, device)
        row = {"held-out eq. 5": evaluator.log_likelihood(data["val"].x, data["val"].y)}
        for selection in SELECTIONS:
            row[selection] = 100 * evaluator.score(test.x, test.y, masks[selection])["eacc"]
        result[name] = row
    return {"variants": result, "table evaluators": table_evaluators_fit(seed, device)}


def summarise(per_seed: list[dict]) -> list[dict]:
    """One row per evaluator: means ± SE over seeds, and eACC gaps to REAL-X paired by seed."""
    rows = []
    for name in VARIANTS:
        results = [seed["variants"][name] for seed in per_seed]
        row = {"evaluator": name}
        for column in ("held-out eq. 5", *SELECTIONS):
            row[column] = mean_se([result[column] for result in results])
        for selection in ("TRUTH", "LEX-MI"):
            gaps = [result[selection] - result["REAL-X"] for result in results]
            row[f"{selection} − REAL-X"] = mean_se(gaps)
        rows.append(row)
    return rows


def summarise_table_evaluators(per_seed: list[dict]) -> list[dict]:
    """One row per dataset: realx-table1's two evaluators' held-out eq. 5, means ± SE over
    seeds, and their difference paired by seed."""
    rows = []
    for dataset in (d.upper() for d in DATASETS):
        fits = [seed["table evaluators"][dataset] for seed in per_seed]
        rows.append(
            {
                "dataset": dataset,
                "0-imputed": mean_se([fit["0-imputed"] for fit in fits]),
                "mask-aware": mean_se([fit["mask-aware"] for fit in fits]),
                "mask-aware − 0-imputed": mean_se(
                    [fit["mask-aware"] - fit["0-imputed"] for fit in fits]
                ),
            }
        )
    return rows


def report(per_seed: list[dict], workers: int, seconds: float, device: str = "cpu") -> str:
    """The markdown tables of :func:`summarise` and :func:`summarise_table_evaluators`, with the
    run's settings."""
    columns = ("held-out eq. 5", *SELECTIONS, "TRUTH − REAL-X", "LEX-MI − REAL-X")
    decimals = {"held-out eq. 5": 4}
    lines = [
        "# EVAL-X variants on S3: their own held-out objective, and their eACC (%) of four "
        "selections",
        "",
        "| evaluator | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for row in summarise(per_seed):
        cells = []
        for column in columns:
            mean, se = row[column]
            places = decimals.get(column, 2)
            cells.append(f"{mean:.{places}f} ± {se:.{places}f}")
        lines.append(f"| {row['evaluator']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"S3, {len(per_seed)} seeds (data and explainers as in `lexppl reproduce "
        "realx-table1-seeds`); mean ± SE over seeds, differences paired by seed. Held-out eq. 5: "
        "mean log q(y | m(x, r)) in nats over the 10,000 validation instances and 16 "
        "Bernoulli(1/2) masks each (higher is better). REAL-X (λ = 0.1) and LEX-MI (k = 5) "
        "trained as in `lexppl reproduce realx-table1`; TRUTH: the ground-truth selection "
        "(x11 and the active branch's 4 features); ALL: every feature. Evaluators as in "
        f"`benchmarks/evalx_variants.py`. {device}, {workers} workers of 1 thread, torch "
        f"{torch.__version__}, {seconds / 60:.1f} min.",
        "",
        "## realx-table1's two evaluators on S1–S3: held-out eq. 5 (nats)",
        "",
        "| dataset | 0-imputed (EVAL-X) | mask-aware (EVAL-X+mask) | mask-aware − 0-imputed |",
        "|---|---:|---:|---:|",
    ]
    for row in summarise_table_evaluators(per_seed):
        cells = [f"{row[c][0]:.4f} ± {row[c][1]:.4f}" for c in list(row)[1:]]
        lines.append(f"| {row['dataset']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Each evaluator trained as `lexppl reproduce realx-table1` trains it "
        "(`realx_table1.fit_evaluators`, the same seeds), scored on its dataset's 10,000 "
        "validation instances with 16 masks each; difference paired by seed.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = seed_parser(__doc__.splitlines()[0], seeds=5)
    args = parser.parse_args()
    run = functools.partial(run_seed, device=args.device)
    per_seed, seconds = run_seeds(parser, args, run)
    record = {
        "per_seed": per_seed,
        "summary": summarise(per_seed),
        "table evaluators": summarise_table_evaluators(per_seed),
        "device": args.device,
        "workers": args.workers,
        "seconds": seconds,
    }
    text = report(per_seed, args.workers, seconds, args.device)
    write_results("evalx_variants", record, text)


if __name__ == "__main__":
    main()
