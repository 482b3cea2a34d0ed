"""Explanation speed and TPR of LEX against KernelSHAP and LIME on S3, in one run.

One black box (the paper's 3 x 200 MLP predictor, trained on S3's labels) is explained by:

- LEX, post hoc (surrogate regime, LEX §2.5): ``LEXExplainer(k=5, imputer="gaussian").fit(X,
  black_box=f)`` on the 10,000 training instances, then ``select`` on all 10,000 test
  instances;
- KernelSHAP (``shap``, k-means background of 10 rows, ``nsamples="auto"``: every coalition of
  the 11 features, so exact for that background) and LIME (``lime``, 5000 samples) on the first
  ``--n-explain`` test instances;
- extras: gradient x input (Captum, on the black box's logits) and FastSHAP (trained in torch
  on the training instances) on all test instances.

Each method's top-5 features by |score| (LEX: its selection) are scored by TPR against S3's
ground truth (5 true features per instance, so FDR = 1 - TPR). Times are wall-clock seconds on
one thread; a method's time per explanation is its total time over the instances divided by
their number (LEX's batched ``select``; its one-row-at-a-time latency is reported beside it).
The KernelSHAP time for 10,000 instances is its measured time per instance times 10,000
(extrapolated, not run). Results go to ``benchmarks/results/explain_speed.{json,md}``.

Run: ``.venv/bin/python benchmarks/explain_speed.py [--epochs 40] [--n-explain 200] [--device
cpu]``; the stored table is the plain command.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # single thread for numpy's BLAS (shap, lime) too

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _options import parse_device, require_at_least  # noqa: E402
from torch import nn  # noqa: E402

from lexppl import LEXExplainer  # noqa: E402
from lexppl.comparators import (  # noqa: E402
    LIME,
    FastSHAP,
    InputXGradient,
    KernelSHAP,
    top_k_selection,
)
from lexppl.data import load  # noqa: E402
from lexppl.distributions import hard_topk  # noqa: E402
from lexppl.metrics import explanation_time, true_positive_rate_per_instance  # noqa: E402
from lexppl.nets import MLP  # noqa: E402

RESULTS = Path(__file__).parent / "results"
K = 5  # S3: every instance has 5 true features (its branch's 4 and the control feature x11)


def train_black_box(x, y, epochs: int, seed: int) -> nn.Module:
    """The paper's 3 x 200 predictor trained on labels; returns it with a softmax on top."""
    torch.manual_seed(seed)
    net = MLP(x.shape[1], 2, (200, 200, 200))
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for index in torch.randperm(len(x), generator=generator).split(100):
            loss = nn.functional.cross_entropy(net(x[index]), y[index])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    net.eval().requires_grad_(False)
    return net


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def tpr_summary(masks, truth) -> dict[str, float]:
    per_instance = true_positive_rate_per_instance(masks, truth)
    n = len(per_instance)
    return {
        "tpr": float(per_instance.mean()),
        "tpr_se": float(per_instance.std() / math.sqrt(n)),
        "n": n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40, help="LEX training epochs")
    parser.add_argument("--black-box-epochs", type=int, default=20)
    parser.add_argument("--fastshap-epochs", type=int, default=20)
    parser.add_argument("--n-train", type=int, default=10000)
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--n-explain", type=int, default=200, help="instances for SHAP/LIME")
    parser.add_argument("--lime-samples", type=int, default=5000)
    parser.add_argument("--shap-background", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    require_at_least(
        parser,
        [
            ("--epochs", args.epochs, 1),
            ("--black-box-epochs", args.black_box_epochs, 1),
            ("--fastshap-epochs", args.fastshap_epochs, 1),
            ("--n-train", args.n_train, 1),
            ("--n-test", args.n_test, 2),  # a TPR's standard error needs two instances
            ("--n-explain", args.n_explain, 2),
            ("--lime-samples", args.lime_samples, 1),
            ("--shap-background", args.shap_background, 1),
            ("--seed", args.seed, 0),
        ],
    )
    # KernelSHAP and LIME explain the first --n-explain test instances, which must exist for
    # the report's "same instances" to be true.
    if args.n_explain > args.n_test:
        parser.error(f"--n-explain ({args.n_explain}) must not exceed --n-test ({args.n_test})")
    # The report names a background of that many k-means centres; with fewer training
    # instances KernelSHAP would use them all instead.
    if args.shap_background > args.n_train:
        parser.error(
            f"--shap-background ({args.shap_background}) must not exceed --n-train ({args.n_train})"
        )
    device = parse_device(parser, args.device)
    torch.set_num_threads(1)
    train = load("s3", "train", n=args.n_train, seed=args.seed)
    test = load("s3", "test", n=args.n_test, seed=args.seed)
    subset = slice(0, args.n_explain)
    rows: dict[str, dict] = {}

    # ---------------------------------------------------------------- the black box
    logits_net, t_black_box = timed(
        lambda: train_black_box(train.x, train.y, args.black_box_epochs, args.seed)
    )
    logits_net = logits_net.to(device)
    black_box = nn.Sequential(logits_net, nn.Softmax(-1)).eval()
    with torch.no_grad():
        accuracy = float((logits_net(test.x.to(device)).argmax(-1).cpu() == test.y).float().mean())
    print(f"black box: test accuracy {accuracy:.3f}, trained in {t_black_box:.1f} s")

    # ---------------------------------------------------------------- LEX (surrogate post hoc)
    explainer = LEXExplainer(
        k=K,
        imputer="gaussian",
        estimator="simple",
        epochs=args.epochs,
        batch_size=100,
        lr=3e-4,
        weight_decay=0.0,
        num_masks=4,
        device=args.device,
        seed=args.seed,
    )
    _, t_train = timed(lambda: explainer.fit(train.x, black_box=black_box))
    x_test = test.x.to(device)
    explainer.select(x_test)  # warm-up
    per_batched = explanation_time(explainer.select, x_test, repeats=5)
    single = test.x[: args.n_explain]
    per_single = explanation_time(
        lambda x: [explainer.select(x[i : i + 1]) for i in range(len(x))], single, repeats=3
    )
    selector = explainer.model_.selector

    def selector_top_k(x):  # the network alone: selector forward and top-k, no API checks
        with torch.no_grad():
            return hard_topk(selector(x), K)

    per_network = explanation_time(selector_top_k, x_test, repeats=5)
    lex_masks = torch.as_tensor(explainer.select(x_test))
    rows["LEX"] = {
        "seconds_per_explanation": per_batched,
        "seconds_per_explanation_one_row_at_a_time": per_single,
        "seconds_per_explanation_selector_network_only": per_network,
        "train_seconds": t_train,
        "subset": tpr_summary(lex_masks[subset], test.truth[subset]),
        "all": tpr_summary(lex_masks, test.truth),
    }
    print(f"LEX: trained in {t_train:.1f} s, {1e6 * per_batched:.2f} µs per explanation")

    # ---------------------------------------------------------------- KernelSHAP and LIME
    for name, make in [
        ("KernelSHAP", lambda: KernelSHAP(black_box, train.x, args.shap_background, device=device)),
        ("LIME", lambda: LIME(black_box, train.x, args.lime_samples, device=device)),
    ]:
        method, t_setup = timed(make)
        scores, t_explain = timed(lambda method=method: method.attribute(single))
        masks = top_k_selection(scores, K)
        rows[name] = {
            "seconds_per_explanation": t_explain / len(single),
            "setup_seconds": t_setup,
            "subset": tpr_summary(masks, test.truth[subset]),
        }
        print(f"{name}: {1e3 * t_explain / len(single):.1f} ms per explanation")

    # ---------------------------------------------------------------- extras on all instances
    gradient = InputXGradient(logits_net, device=device)
    scores, t_explain = timed(lambda: gradient.attribute(x_test))
    masks = top_k_selection(scores, K)
    rows["gradient x input"] = {
        "seconds_per_explanation": t_explain / len(x_test),
        "subset": tpr_summary(masks[subset], test.truth[subset]),
        "all": tpr_summary(masks, test.truth),
    }
    fastshap = FastSHAP(black_box, train.num_features, device=device)
    _, t_train_fs = timed(
        lambda: fastshap.fit(train.x, epochs=args.fastshap_epochs, batch_size=256, seed=args.seed)
    )
    scores, t_explain = timed(lambda: fastshap.attribute(x_test))
    masks = top_k_selection(scores, K)
    rows["FastSHAP"] = {
        "seconds_per_explanation": t_explain / len(x_test),
        "train_seconds": t_train_fs,
        "subset": tpr_summary(masks[subset], test.truth[subset]),
        "all": tpr_summary(masks, test.truth),
    }

    write(rows, args, accuracy, t_black_box)


def write(rows, args, accuracy, t_black_box) -> None:
    lex, shap_row, lime_row = rows["LEX"], rows["KernelSHAP"], rows["LIME"]
    network = lex["seconds_per_explanation_selector_network_only"]
    n = args.n_test
    ratio = shap_row["seconds_per_explanation"] / lex["seconds_per_explanation"]
    ratio_single = (
        shap_row["seconds_per_explanation"] / lex["seconds_per_explanation_one_row_at_a_time"]
    )
    lex_total = lex["train_seconds"] + n * lex["seconds_per_explanation"]
    shap_total = n * shap_row["seconds_per_explanation"]
    lex_tpr = lex["subset"]["tpr"]
    targets = {
        "speed_ratio_vs_kernelshap": ratio,
        "speed_ratio_target": 10000,
        "speed_ratio_met": ratio >= 10000,
        "lex_train_plus_explain_seconds": lex_total,
        "kernelshap_explain_seconds_extrapolated": shap_total,
        "train_plus_explain_met": lex_total < shap_total,
        "tpr_met": lex_tpr >= shap_row["subset"]["tpr"] and lex_tpr >= lime_row["subset"]["tpr"],
    }
    result = {
        "methods": rows,
        "targets": targets,
        "speed_ratio_one_row_at_a_time": ratio_single,
        "speed_ratio_selector_network_only": shap_row["seconds_per_explanation"] / network,
        "black_box_test_accuracy": accuracy,
        "black_box_train_seconds": t_black_box,
        "settings": {
            **vars(args),
            "k": K,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.machine(),
            "load_average_at_end": os.getloadavg()[0],
            "cpu_count": os.cpu_count(),
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "explain_speed.json").write_text(json.dumps(result, indent=2) + "\n")

    def fmt_time(seconds: float) -> str:
        if seconds < 1e-3:
            return f"{1e6 * seconds:.2f} µs"
        return f"{1e3 * seconds:.1f} ms"

    def fmt_tpr(summary) -> str:
        return f"{100 * summary['tpr']:.1f} ± {100 * summary['tpr_se']:.1f}"

    lines = [
        "| method | time per explanation | training | TPR (%), "
        f"first {args.n_explain} test instances | TPR (%), all {n} |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        train_s = f"{row['train_seconds']:.1f} s" if "train_seconds" in row else "—"
        every = fmt_tpr(row["all"]) if "all" in row else "—"
        lines.append(
            f"| {name} | {fmt_time(row['seconds_per_explanation'])} | {train_s} | "
            f"{fmt_tpr(row['subset'])} | {every} |"
        )
    lines += [
        "",
        "| target | measured | met |",
        "|---|---|---|",
        f"| LEX explanation ≥ 10,000× faster than KernelSHAP | {ratio:,.0f}× "
        f"(selector network alone: {shap_row['seconds_per_explanation'] / network:,.0f}×; "
        f"one `select` call per row: {ratio_single:,.0f}×) | "
        f"{'yes' if targets['speed_ratio_met'] else 'no'} |",
        f"| LEX training + explaining {n:,} < KernelSHAP explaining them | "
        f"{lex_total:.0f} s vs {shap_total:.0f} s (extrapolated from {args.n_explain}) | "
        f"{'yes' if targets['train_plus_explain_met'] else 'no'} |",
        f"| LEX TPR ≥ KernelSHAP's and LIME's (same {args.n_explain} instances) | "
        f"{fmt_tpr(lex['subset'])} vs {fmt_tpr(shap_row['subset'])} and "
        f"{fmt_tpr(lime_row['subset'])} | {'yes' if targets['tpr_met'] else 'no'} |",
        "",
        f"S3, black box: 3 × 200 MLP (test accuracy {100 * accuracy:.1f} %), "
        f"{args.n_train:,} training / {n:,} test instances, k = {K}. LEX: surrogate regime, "
        f"Gaussian imputation, {args.epochs} epochs; time per explanation = batched `select` "
        f"over all test instances (median of 5). KernelSHAP: k-means background of "
        f"{args.shap_background} rows, nsamples='auto' (all coalitions); LIME: "
        f"{args.lime_samples} samples. TPR ± standard error. {args.device}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} thread; 1-minute load average at the "
        f"end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (times grow with it, ratios "
        f"less so: every method ran in this one process).",
    ]
    (RESULTS / "explain_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
