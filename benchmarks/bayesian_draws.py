"""Posterior explanations of a Bayesian selector: batched weight draws against one at a time.

``BayesianLEX.posterior_importance(x, S)`` returns :math:`\\mathbb E[Z \\mid x, \\gamma_s]` for
S draws :math:`\\gamma_s \\sim q_\\phi`. It draws all S from one call of the autoguide under a
vectorised plate and runs the selector on several draws per call (``torch.func.vmap``, chunks of
about 2^14 rows). The reference is the one-draw-at-a-time loop it replaced: ``sample_weights()``
then the selector, S times. Both sides use the same trained model (the LEX paper's 2 x 200
selector, k = 5, S3) and run interleaved; the table gives median times over the repeats and
their ratio.
Results go to ``benchmarks/results/bayesian_draws.{json,md}``.

Run: ``.venv/bin/python benchmarks/bayesian_draws.py [--repeats 7] [--threads 1] [--device
cpu]``; the stored table is the plain command.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from _options import parse_device, require_at_least

from lexppl import LEXExplainer
from lexppl.data import load

RESULTS = Path(__file__).parent / "results"
#: (inputs N, weight draws S)
SIZES = ((100, 100), (1000, 20), (1000, 100), (10000, 20))


def one_draw_at_a_time(model, x: torch.Tensor, num_samples: int) -> torch.Tensor:
    """The reference: one guide call and one selector call per draw."""
    return torch.stack(
        [model._mask_distribution_given(x, model.sample_weights()).mean for _ in range(num_samples)]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per side and size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    require_at_least(parser, [("--repeats", args.repeats, 1), ("--threads", args.threads, 1)])
    device = parse_device(parser, args.device)
    torch.set_num_threads(args.threads)

    train, test = load("s3", "train"), load("s3", "test")
    explainer = LEXExplainer(
        k=5,
        imputer="gaussian",
        estimator="simple",
        epochs=2,
        bayesian=True,
        num_masks=4,
        device=args.device,
    ).fit(train.x[:5000], train.y[:5000])
    model = explainer.model_
    rows = []
    with torch.no_grad():
        for n, draws in SIZES:
            x = test.x[:n].to(device)
            sides = {
                "one at a time": lambda x=x, draws=draws: one_draw_at_a_time(model, x, draws),
                "batched": lambda x=x, draws=draws: model.posterior_importance(x, draws),
            }
            times = {name: [] for name in sides}
            for _ in range(args.repeats):
                for name, side in sides.items():
                    if device.type == "cuda":  # time the work, not its asynchronous launch
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                    side()
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    times[name].append(time.perf_counter() - start)
            loop, batched = (statistics.median(times[name]) for name in sides)
            rows.append(
                {
                    "n": n,
                    "draws": draws,
                    "one_at_a_time_ms": 1e3 * loop,
                    "batched_ms": 1e3 * batched,
                    "ratio": loop / batched,
                }
            )
            print(rows[-1])

    footer = (
        f"S3 test inputs, LEX k = 5 with bayesian=True (2 x 200 selector, AutoNormal), median "
        f"of {args.repeats} interleaved repeats, {device}, {args.threads} thread(s), torch "
        f"{torch.__version__}, {platform.processor() or platform.machine()}. "
        "That both give the same explanation for the same draws is tested in "
        "tests/models/test_bayesian.py::test_posterior_draws_are_batched_and_equal_one_draw_at_a_time."
    )
    lines = [
        "| N inputs | S draws | one at a time (ms) | batched (ms) | ratio |",
        "|---|---|---|---|---|",
        *(
            f"| {r['n']} | {r['draws']} | {r['one_at_a_time_ms']:.0f} | {r['batched_ms']:.0f} "
            f"| **{r['ratio']:.2f}** |"
            for r in rows
        ),
        "",
        footer,
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bayesian_draws.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "bayesian_draws.json").write_text(
        json.dumps({"rows": rows, "device": str(device), "note": footer}, indent=1)
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
