"""How much an amortised mask proposal q(z|x, y) tightens the LEX bound on S3.

LEX (k = 5, Gaussian multiple imputation, the "simple" estimator; the settings of
``tests/test_learning.py``) is trained on S3's 10,000 training instances, then frozen. A
:class:`~lexppl.guides.MaskProposal` started at the prior is trained on the same data by
reweighted wake-sleep (L = 16 masks, K = 4 imputations per mask in the wake phase). On 2,000
test instances, the bound :math:`\\mathcal L_{L,K}` with masks from the prior
:math:`p_\\gamma(z|x)` and from the proposal :math:`q_\\phi(z|x, y)` is estimated at
L = 1, 2, 4 with K = 16 imputations per mask (K large so that the comparison is about masks,
not imputation noise), each averaged over ``--repeats`` independent draws per instance. The
gain is the per-instance difference (paired), reported with its standard error over
instances; ``room`` is :math:`\\mathcal L_{64,16} - \\mathcal L_{L,16}` under the prior, an
estimate of how much any proposal could gain.

Results go to ``benchmarks/results/proposal.{json,md}``.

Run: ``.venv/bin/python benchmarks/proposal.py [--proposal-epochs 40] [--repeats 10] [--device
cpu]``; the stored table is the plain command.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import pyro
import torch
from _options import parse_device, require_at_least

from lexppl import LEXExplainer, fit
from lexppl.data import load
from lexppl.guides import MaskProposal
from lexppl.infer import ReinforceBound, ReweightedWakeSleepBound

RESULTS = Path(__file__).parent / "results"
IMPUTATIONS = 16  # per mask, in evaluation
MODEL_SETTINGS = dict(
    k=5,
    imputer="gaussian",
    estimator="simple",
    num_masks=4,
    batch_size=100,
    lr=3e-4,
    weight_decay=0.0,
    epochs=40,
    seed=0,
)


@torch.no_grad()
def bound_per_instance(bound, model, guide, x, y, repeats: int) -> torch.Tensor:
    """The bound of every instance, averaged over ``repeats`` independent draws, ``(N,)``."""
    return torch.stack(
        [bound.bound_terms(model, guide, x, y).per_datum for _ in range(repeats)]
    ).mean(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proposal-epochs", type=int, default=40)
    parser.add_argument("--wake-masks", type=int, default=16)
    parser.add_argument("--wake-imputations", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=10, help="draws per test instance")
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    require_at_least(
        parser,
        [
            ("--proposal-epochs", args.proposal_epochs, 1),
            ("--wake-masks", args.wake_masks, 1),
            ("--wake-imputations", args.wake_imputations, 1),
            ("--repeats", args.repeats, 1),
            ("--n-test", args.n_test, 2),  # the gain's standard error needs two instances
        ],
    )
    device = parse_device(parser, args.device)
    torch.set_num_threads(1)

    train, test = load("s3", "train"), load("s3", "test", n=args.n_test)
    start = time.perf_counter()
    lex = LEXExplainer(**MODEL_SETTINGS, device=args.device).fit(train.x, train.y).model_
    model_seconds = time.perf_counter() - start

    # The proposal's initial network: fit hands the global generator back as it found it, and
    # torch seeds that at random in every process.
    torch.manual_seed(0)
    proposal = MaskProposal.from_prior(lex, train.x.shape[1], num_classes=2, hidden=(200, 200))
    start = time.perf_counter()
    fit(
        lex,
        ReweightedWakeSleepBound(args.wake_masks, args.wake_imputations),
        train.x,
        train.y,
        epochs=args.proposal_epochs,
        batch_size=100,
        lr=1e-3,
        weight_decay=0.0,
        guide=proposal,
        freeze=("selector", "predictor"),
        device=device,
        seed=0,
    )
    proposal_seconds = time.perf_counter() - start

    x, y = test.x.float().to(device), test.y.to(device)
    pyro.set_rng_seed(1)
    best = bound_per_instance(
        ReinforceBound(64, IMPUTATIONS).to(device), lex.model, lex.guide, x, y, args.repeats
    )
    rows = []
    for L in (1, 2, 4):
        prior = bound_per_instance(
            ReinforceBound(L, IMPUTATIONS).to(device), lex.model, lex.guide, x, y, args.repeats
        )
        guided = bound_per_instance(
            ReweightedWakeSleepBound(L, IMPUTATIONS).to(device),
            lex.model,
            proposal,
            x,
            y,
            args.repeats,
        )
        gain = guided - prior
        rows.append(
            {
                "L": L,
                "prior": prior.mean().item(),
                "proposal": guided.mean().item(),
                "gain": gain.mean().item(),
                "gain_se": gain.std().item() / math.sqrt(len(gain)),
                "room": (best - prior).mean().item(),
            }
        )

    RESULTS.mkdir(exist_ok=True)
    settings = {
        **vars(args),
        "model": MODEL_SETTINGS,
        "evaluation_imputations": IMPUTATIONS,
        "model_seconds": model_seconds,
        "proposal_seconds": proposal_seconds,
        "torch": torch.__version__,
    }
    (RESULTS / "proposal.json").write_text(
        json.dumps({"settings": settings, "rows": rows}, indent=2)
    )
    lines = [
        "# Amortised mask proposal vs prior proposal on S3",
        "",
        f"LEX trained {model_seconds:.0f} s, proposal (RWS, L={args.wake_masks}, "
        f"K={args.wake_imputations}, {args.proposal_epochs} epochs) {proposal_seconds:.0f} s; "
        f"{args.n_test} test instances, K={IMPUTATIONS} imputations per mask, "
        f"{args.repeats} draws per instance; {device}, one thread, torch {torch.__version__}. "
        "Gain = proposal − prior (paired, ± 1 SE).",
        "",
        "| L | bound, prior proposal | bound, learned proposal | gain | gain / SE | room |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['L']} | {row['prior']:.4f} | {row['proposal']:.4f} | "
            f"{row['gain']:+.4f} ± {row['gain_se']:.4f} | {row['gain'] / row['gain_se']:.1f} | "
            f"{row['room']:.4f} |"
        )
    (RESULTS / "proposal.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
