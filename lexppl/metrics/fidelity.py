"""
Fidelity, robustness, cost and sanity metrics of explanations.

Definitions follow the project notes ``notes/baseline-papers-extraction.md`` (cited below as
"notes §x"), which extract them from the papers and the authors' code:

- post-hoc accuracy / FS-M and FU-M: L2X (Chen et al., ICML 2018, post-hoc accuracy, and
  ``Jianbo-Lab/L2X`` ``validate_explanation.py``; notes §3.9) and AIL (Liang et al., KDD 2020,
  ``langlrsw/MEED``; notes §2.6);
- FS-A / FU-A: AIL (notes §2.6);
- max-sensitivity (SEN): Yeh et al. (NeurIPS 2019), as used by AIL (notes §2.6);
- explanation time (TPS): AIL, L2X's clock time (notes §2.6, §3.9);
- model-randomisation check: Adebayo et al. (NeurIPS 2018), reported by AIL (notes §2.6).

The EVAL-X metrics eACC / eAUROC live in :class:`lexppl.methods.EvalX`.

Conventions: masks are binary, 1 = selected, of shape ``(N, D)`` or ``(S, N, D)`` (``S`` mask
samples per instance). With ``S`` samples a metric is computed per sample and then averaged over
samples, as in :mod:`lexppl.metrics.prediction`. Scores are fractions in ``[0, 1]``, not
percentages (AIL reports them ×100). Masking replaces the unselected features by ``fill``
(0, the zero imputation of L2X, AIL and REAL-X: ``x ⊙ s + (1 − s) · fill``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from scipy.stats import rankdata
from torch import Tensor, nn

from lexppl.inputs import as_inputs
from lexppl.metrics.selection import ArrayLike, _as_tensor
from lexppl.nets import eval_mode, module_device, module_dtype
from lexppl.numerics import flush_denormals

__all__ = [
    "agreement_per_sample",
    "black_box_fidelity",
    "explanation_similarity_per_instance",
    "explanation_time",
    "fs_a",
    "fs_m",
    "fu_a",
    "fu_m",
    "mask_inputs",
    "max_sensitivity",
    "max_sensitivity_per_instance",
    "model_randomisation_check",
    "posthoc_accuracy",
    "retrained_fidelity",
    "uniform_perturbations",
]

ExplainFn = Callable[[Tensor], Tensor]


# --------------------------------------------------------------------------- helpers
def _labels(probs: ArrayLike, argname: str) -> torch.Tensor:
    """Argmax class of probabilities (or logits) ``(..., C)``; ``(...,)`` integer labels kept."""
    probs = _as_tensor(probs, argname)
    if probs.dim() == 0:
        raise ValueError(f"{argname} must have shape (N, C), (S, N, C) or (N,); got a scalar")
    if probs.dim() == 1:  # already class labels
        return _integer_labels(probs, argname)
    if probs.shape[-1] == 1:
        raise ValueError(_ONE_COLUMN.format(argname, tuple(probs.shape)))
    return probs.argmax(-1)


# The argmax of one column is always 0, so every decision would agree.
_ONE_COLUMN = (
    "{} has one output column {}, whose argmax is always class 0: pass probabilities or logits "
    "of every class (..., C) with C >= 2, or class labels (N,)"
)


def _integer_labels(labels: Tensor, argname: str) -> Tensor:
    # 1-D values are class decisions; truncating P(y = 1) or scores to integers would be
    # silently wrong.
    if labels.is_floating_point() and not bool((labels == labels.round()).all()):
        raise ValueError(
            f"{argname} is 1-D, so it must hold integer class labels; got non-integer values "
            f"(pass probabilities or logits as (N, C))"
        )
    return labels.long()


def _shape(value) -> tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, "shape") else tuple(np.shape(value))


def mask_inputs(x: Tensor, masks: Tensor, fill: float = 0.0, complement: bool = False) -> Tensor:
    """
    Inputs with the unselected features replaced: ``x ⊙ s + (1 − s) · fill``.

    :param x: inputs ``(N, ...)``.
    :param masks: binary masks ``(N, D)`` or ``(S, N, D)`` with ``D = x[0].numel()``.
    :param float fill: the value of the removed features (0 in L2X / AIL / REAL-X).
    :param bool complement: keep the *unselected* features instead (``s → 1 − s``), the input
        of FU-M / FU-A.
    :returns: ``(N, ...)`` or ``(S, N, ...)``, on ``x``'s device and dtype (float32 for an
        array, as the explainers take them).
    """
    x = as_inputs(x, finite=False)  # arithmetic only: non-finite values pass through
    masks = torch.as_tensor(masks, device=x.device)
    if x.dim() < 2:
        raise ValueError(f"x must have shape (N, ...); got {tuple(x.shape)}")
    n, d = x.shape[0], x[0].numel()
    if masks.dim() not in (2, 3) or tuple(masks.shape[-2:]) != (n, d):
        raise ValueError(
            f"masks must have shape (N, D) or (S, N, D) with N={n}, D={d} "
            f"(x has shape {tuple(x.shape)}); got {tuple(masks.shape)}"
        )
    if not bool(((masks == 0) | (masks == 1)).all()):
        raise ValueError("masks must be binary with entries in {0, 1} (1 = selected)")
    s = masks.to(x.dtype).reshape((*masks.shape[:-1], *x.shape[1:]))
    if complement:
        s = 1 - s
    return s * x + (1 - s) * fill


def _predict(
    black_box: Callable, inputs: Tensor, event_ndim: int, batch_size: int | None
) -> Tensor:
    """Call ``black_box`` on inputs ``(..., *event)`` flattened to rows; returns its decisions
    ``(...)``: the argmax of probabilities or logits ``(M, C)``, or class labels ``(M,)``."""
    batch_shape = inputs.shape[: inputs.dim() - event_ndim]
    flat = inputs.reshape((-1, *inputs.shape[inputs.dim() - event_ndim :]))
    size = flat.shape[0] if batch_size is None else int(batch_size)
    outs = []
    # A torch module runs on its own device and dtype, in eval mode (batch norm statistics
    # untouched, no dropout), as the explainers query black boxes.
    device = module_device(black_box, flat.device)
    dtype = module_dtype(black_box, flat.dtype)
    with torch.no_grad(), eval_mode(black_box):
        for begin in range(0, flat.shape[0], size):
            chunk = flat[begin : begin + size]
            if isinstance(black_box, nn.Module):
                chunk = chunk.to(device, dtype)
            out = torch.as_tensor(black_box(chunk)).detach().cpu()
            if out.dim() not in (1, 2) or out.shape[0] != chunk.shape[0]:
                raise ValueError(
                    f"black_box must map inputs ({chunk.shape[0]}, ...) to probabilities or "
                    f"logits ({chunk.shape[0]}, C) or class labels ({chunk.shape[0]},); got "
                    f"{tuple(out.shape)}"
                )
            if out.dim() == 2 and out.shape[1] == 1:
                raise ValueError(_ONE_COLUMN.format("black_box's output", tuple(out.shape)))
            outs.append(out.argmax(-1) if out.dim() == 2 else _integer_labels(out, "black_box"))
    return torch.cat(outs).reshape(batch_shape)


# --------------------------------------------------------------------------- FS-M / FU-M
def agreement_per_sample(probs_full: ArrayLike, probs_masked: ArrayLike) -> torch.Tensor:
    """
    Top-1 agreement of the masked-input decision with the full-input decision, per mask sample:
    ``mean_i 1[argmax p(x̃_i) = argmax p(x_i)]``.

    :param probs_full: black-box probabilities (or logits) on the full inputs ``(N, C)``, or its
        class decisions ``(N,)``.
    :param probs_masked: black-box probabilities on masked inputs ``(N, C)`` or ``(S, N, C)``.
    :returns: float64 tensor ``(S,)`` (``S = 1`` for ``(N, C)``).
    """
    full_shape, masked_shape = _shape(probs_full), _shape(probs_masked)
    if len(full_shape) >= 2 and len(masked_shape) >= 2 and full_shape[-1] != masked_shape[-1]:
        raise ValueError(
            f"probs_full and probs_masked must have the same number of classes; got "
            f"{full_shape[-1]} and {masked_shape[-1]}"
        )
    full = _labels(probs_full, "probs_full")
    masked = _labels(probs_masked, "probs_masked")
    if full.dim() != 1:
        raise ValueError(f"probs_full must have shape (N, C) or (N,); got {full_shape}")
    if masked.dim() == 1:
        masked = masked.unsqueeze(0)
    if masked.dim() != 2 or masked.shape[-1] != full.shape[0]:
        raise ValueError(
            f"probs_masked must have shape (N, C) or (S, N, C) with N={full.shape[0]}; "
            f"got {masked_shape}"
        )
    if full.shape[0] == 0:
        raise ValueError("probs_full must contain at least one instance")
    return (masked == full).to(torch.float64).mean(-1)


def posthoc_accuracy(probs_full: ArrayLike, probs_selected: ArrayLike) -> float:
    """
    L2X's post-hoc accuracy = AIL's FS-M (fidelity of the selected features to the model).

    .. math:: \\mathrm{FS\\text{-}M} = \\frac1N \\sum_i
        \\mathbb 1\\big[\\arg\\max M(x_i \\odot s_i) = \\arg\\max M(x_i)\\big]

    Source: L2X paper (post-hoc accuracy) and code ``validate_explanation.py``:
    ``mean(argmax(pred_val) == argmax(model(x_val_selected)))`` (notes §3.9); AIL (Liang et
    al. 2020; notes §2.6, "exactly L2X's post-hoc accuracy"). **Higher is better.** The
    masked input is zero-padded, so it is out of the black box's training distribution (notes
    §1.4); compare with EVAL-X's eACC.

    :param probs_full: the black box on full inputs, ``(N, C)`` (or decisions ``(N,)``).
    :param probs_selected: the black box on selected-only inputs ``x ⊙ s``, ``(N, C)`` or
        ``(S, N, C)``; averaged over the ``S`` mask samples.
    :returns: a fraction in ``[0, 1]``.
    """
    return float(agreement_per_sample(probs_full, probs_selected).mean())


#: AIL's name for :func:`posthoc_accuracy`.
fs_m = posthoc_accuracy


def fu_m(probs_full: ArrayLike, probs_unselected: ArrayLike) -> float:
    """
    AIL's FU-M (fidelity of the unselected features to the model). **Lower is better.**

    .. math:: \\mathrm{FU\\text{-}M} = \\frac1N \\sum_i
        \\mathbb 1\\big[\\arg\\max M(x_i \\odot (1 - s_i)) = \\arg\\max M(x_i)\\big]

    Source: AIL (Liang et al. 2020) and ``langlrsw/MEED`` (notes §2.6). The same agreement
    as FS-M but with the selected features *removed*: a good explanation takes away what the
    model needs, so its decision changes and FU-M is low; an explanation that misses the
    informative features leaves them in the complement and gives a high FU-M (near 1).

    :param probs_full: the black box on full inputs, ``(N, C)`` (or decisions ``(N,)``).
    :param probs_unselected: the black box on ``x ⊙ (1 − s)``, ``(N, C)`` or ``(S, N, C)``.
    :returns: a fraction in ``[0, 1]``.
    """
    return float(agreement_per_sample(probs_full, probs_unselected).mean())


def black_box_fidelity(
    black_box: Callable[[Tensor], Tensor],
    x: Tensor,
    masks: Tensor,
    fill: float = 0.0,
    batch_size: int | None = None,
) -> dict[str, float]:
    """
    FS-M (= post-hoc accuracy) and FU-M of ``masks`` for ``black_box``, in one call.

    Evaluates ``black_box`` on ``x``, on ``x ⊙ s + (1 − s)·fill`` and on
    ``x ⊙ (1 − s) + s·fill`` (vectorised over the ``S`` mask samples, in chunks of
    ``batch_size`` rows) and computes :func:`posthoc_accuracy`'s and :func:`fu_m`'s agreement
    from its decisions (the argmax of probabilities or logits, or labels given as such).

    :param black_box: maps inputs ``(M, ...)`` to probabilities or logits ``(M, C)``, or to
        class labels ``(M,)``: a torch module, or e.g. ``clf.predict_proba`` (it receives
        tensors, which scikit-learn accepts on the CPU).
    :param x: inputs ``(N, ...)``. :param masks: binary ``(N, D)`` or ``(S, N, D)``.
    :returns: ``{"fs_m": float, "fu_m": float}``.
    """
    x = as_inputs(x)
    event_ndim = x.dim() - 1
    full = _predict(black_box, x, event_ndim, batch_size)
    selected = _predict(black_box, mask_inputs(x, masks, fill), event_ndim, batch_size)
    unselected = _predict(
        black_box, mask_inputs(x, masks, fill, complement=True), event_ndim, batch_size
    )
    # Decisions (N,) and (N,) or (S, N): per-sample agreement, then its mean over the S
    # samples, the order (and rounding) of posthoc_accuracy and fu_m.
    return {
        "fs_m": float((selected == full).to(torch.float64).mean(-1).mean()),
        "fu_m": float((unselected == full).to(torch.float64).mean(-1).mean()),
    }


# --------------------------------------------------------------------------- FS-A / FU-A
def _default_factory():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000)


@flush_denormals()
def _train_torch(model: nn.Module, inputs: Tensor, soft: Tensor, epochs, batch_size, lr, seed):
    generator = torch.Generator().manual_seed(seed)
    device = next(iter(model.parameters())).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(inputs.shape[0], generator=generator)
        for begin in range(0, inputs.shape[0], batch_size):
            index = order[begin : begin + batch_size]
            logits = model(inputs[index].to(device))
            # Soft-target cross-entropy: AIL trains A' on the soft outputs M(x_train).
            loss = -(soft[index].to(device) * torch.log_softmax(logits, -1)).sum(-1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()
    return model


def retrained_fidelity(
    x_train: Tensor,
    masks_train: Tensor,
    targets_train: ArrayLike,
    x_test: Tensor,
    masks_test: Tensor,
    targets_test: ArrayLike,
    model_factory: Callable[[], object] | None = None,
    *,
    complement: bool = False,
    fill: float = 0.0,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
) -> float:
    """
    Accuracy of a *fresh* approximator retrained on masked inputs (AIL's FS-A / FU-A).

    .. math:: \\mathrm{FS\\text{-}A} = \\frac1{N_{test}} \\sum_i \\mathbb 1\\big[
        \\arg\\max A'_s(x_i \\odot s_i) = \\arg\\max M(x_i)\\big],
        \\quad A'_s \\text{ trained on } \\{(x_j \\odot s_j, M(x_j))\\}_{j \\in train}

    Source: AIL (Liang et al. 2020) and ``langlrsw/MEED`` (notes §2.6): ``A'`` has ``M``'s
    architecture and is trained with cross-entropy on the soft ``M(x_train)`` (12 epochs
    Adadelta on MNIST, 5 epochs RMSprop on IMDB), then scored against ``argmax M(x_test)``.
    With ``complement=True`` the inputs are ``x ⊙ (1 − s)``: FU-A.

    :param x_train, x_test: inputs ``(N, ...)``.
    :param masks_train: binary ``(N, D)``; ``(S, N, D)`` trains on all ``S·N`` masked rows
        (targets repeated).
    :param masks_test: binary ``(N, D)`` or ``(S, N, D)`` (scored per sample, then averaged).
    :param targets_train, targets_test: the black box's outputs ``(N, C)`` (probabilities) or
        decisions ``(N,)``; true labels may be given instead to measure plain accuracy.
    :param model_factory: zero-argument callable returning a fresh approximator:

        - an sklearn-style estimator (``fit(X, y)``, ``predict(X)``), trained on the flattened
          masked inputs and the *hard* targets ``argmax M(x_train)`` (sklearn classifiers take
          no soft labels). Default: ``LogisticRegression(max_iter=1000)`` — a cheap, convex
          stand-in for AIL's retrained copy of ``M``; it needs both classes in the targets;
        - a :class:`torch.nn.Module` mapping ``(M, ...)`` to logits ``(M, C)``, trained with Adam
          for ``epochs`` at ``lr`` (mini-batches of ``batch_size`` shuffled with ``seed``; the
          factory owns the initialisation) on the soft-target cross-entropy as in AIL (hard
          targets are one-hot encoded).
    :param bool complement: retrain on the unselected features (FU-A).
    :param float fill: value of removed features (0 in AIL).
    :returns: a fraction in ``[0, 1]``.
    """
    x_train, x_test = torch.as_tensor(x_train), torch.as_tensor(x_test)
    tr = mask_inputs(x_train, masks_train, fill, complement).detach().cpu()
    te = mask_inputs(x_test, masks_test, fill, complement).detach().cpu()
    n_train, event = x_train.shape[0], tuple(x_train.shape[1:])
    tr_rows = tr.reshape((-1, *event))
    reps = tr_rows.shape[0] // n_train
    test_lead = te.shape[: te.dim() - len(event)]
    te_rows = te.reshape((-1, *event))
    t_train = _as_tensor(targets_train, "targets_train")
    hard_test = _labels(targets_test, "targets_test")
    if t_train.shape[0] != n_train or hard_test.shape[0] != x_test.shape[0]:
        raise ValueError("targets_train / targets_test must have one row per instance of x")
    hard_train = _labels(t_train, "targets_train").repeat(reps)

    model = (model_factory or _default_factory)()
    if isinstance(model, nn.Module):
        device = next(iter(model.parameters())).device
        with torch.no_grad(), eval_mode(model):
            num_classes = model(tr_rows[:1].float().to(device)).shape[-1]
        labels = torch.cat([hard_train, hard_test.flatten()])
        num_targets = t_train.shape[1] if t_train.dim() == 2 else int(labels.max()) + 1
        if num_targets > num_classes or (t_train.dim() == 2 and num_targets != num_classes):
            raise ValueError(
                f"the approximator returns {num_classes} logits per row, but the targets have "
                f"{num_targets} classes"
            )
        if t_train.dim() == 2:
            # Soft targets weight a cross-entropy: logits (negative weights) would leave the
            # loss unbounded below.
            if not bool((t_train >= 0).all()) or not torch.allclose(
                t_train.sum(-1).double(), torch.ones(n_train, dtype=torch.float64), atol=1e-3
            ):
                raise ValueError(
                    "targets_train (N, C) must be class probabilities (rows >= 0 summing to 1) "
                    "to train a torch approximator; apply a softmax to logits first"
                )
            soft = t_train.to(torch.float32).repeat(reps, 1)
        else:
            soft = torch.nn.functional.one_hot(hard_train, num_classes).to(torch.float32)
        _train_torch(model, tr_rows.float(), soft, epochs, batch_size, lr, seed)
        with torch.no_grad():
            pred = torch.cat(
                [
                    model(te_rows[i : i + 4096].float().to(device)).argmax(-1).cpu()
                    for i in range(0, te_rows.shape[0], 4096)
                ]
            )
    else:
        if not (hasattr(model, "fit") and hasattr(model, "predict")):
            raise TypeError(
                "model_factory must return a torch nn.Module or an sklearn-style estimator with "
                f"fit and predict; got {type(model).__name__}"
            )
        model.fit(tr_rows.reshape(tr_rows.shape[0], -1).numpy(), hard_train.numpy())
        pred = torch.as_tensor(
            np.asarray(model.predict(te_rows.reshape(te_rows.shape[0], -1).numpy()))
        )
    pred = pred.long().reshape(test_lead)
    if pred.dim() == 1:
        pred = pred.unsqueeze(0)
    return float((pred == hard_test).to(torch.float64).mean(-1).mean())


def fs_a(
    x_train,
    masks_train,
    targets_train,
    x_test,
    masks_test,
    targets_test,
    model_factory=None,
    **kwargs,
) -> float:
    """
    AIL's FS-A: accuracy (agreement with ``argmax M(x_test)``) of an approximator retrained on
    the **selected** features only. **Higher is better**; read it together with :func:`fu_a`
    (notes §2.6: good features give high FS-A *and* low FU-A). See :func:`retrained_fidelity`.
    """
    return retrained_fidelity(
        x_train,
        masks_train,
        targets_train,
        x_test,
        masks_test,
        targets_test,
        model_factory,
        complement=False,
        **kwargs,
    )


def fu_a(
    x_train,
    masks_train,
    targets_train,
    x_test,
    masks_test,
    targets_test,
    model_factory=None,
    **kwargs,
) -> float:
    """
    AIL's FU-A: accuracy of an approximator retrained on the **unselected** features only,
    ``x ⊙ (1 − s)``. **Lower is better** (the complement should not suffice to recover the
    model's decision). See :func:`retrained_fidelity`.
    """
    return retrained_fidelity(
        x_train,
        masks_train,
        targets_train,
        x_test,
        masks_test,
        targets_test,
        model_factory,
        complement=True,
        **kwargs,
    )


# --------------------------------------------------------------------------- SEN
def uniform_perturbations(x: Tensor, radius: float, num_draws: int, seed: int = 0) -> Tensor:
    """
    The noise of :func:`max_sensitivity`: ``δ ~ U(−radius, radius)`` i.i.d. per coordinate,
    shape ``(num_draws, *x.shape)``, drawn on the CPU from ``torch.Generator().manual_seed(seed)``
    (so results do not depend on the device) and returned on ``x``'s device and dtype (float32
    for an array).
    """
    x = as_inputs(x)
    if not isinstance(num_draws, int) or num_draws < 1:
        raise ValueError(f"num_draws must be an int >= 1; got {num_draws!r}")
    if not radius >= 0:
        raise ValueError(f"radius must be >= 0; got {radius!r}")
    generator = torch.Generator().manual_seed(int(seed))
    u = torch.rand((num_draws, *x.shape), generator=generator, dtype=torch.float64)
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    return ((2 * u - 1) * radius).to(device=x.device, dtype=dtype)


def max_sensitivity_per_instance(
    explain_fn: ExplainFn,
    x: Tensor,
    radius: float = 0.2,
    num_draws: int = 50,
    seed: int = 0,
    *,
    relative: bool = False,
    batch_size: int | None = None,
) -> torch.Tensor:
    """
    Max-sensitivity of each instance's explanation (Yeh et al. 2019, as AIL's SEN).

    .. math:: \\mathrm{SEN}(x_i) = \\max_{j \\le J} \\lVert \\Phi(x_i + \\delta_j) -
        \\Phi(x_i) \\rVert_2, \\qquad \\delta_j \\sim U(-r, r)^D

    (divided by :math:`\\lVert \\Phi(x_i) \\rVert_2` when ``relative=True``, AIL's normalisation;
    AIL then reports the mean ×100). Source: notes §2.6; AIL code uses ``ε = 0.2``, ``J = 50``
    (our defaults). **Pitfall (notes §2.6, §4.5):** the AIL code resets the running max inside the
    loop and so returns the *last* draw's change; this is the true maximum over the ``J`` draws.

    All draws are explained in one call of ``explain_fn`` on ``(J·N, ...)`` inputs (or in
    chunks of ``batch_size`` rows). AIL evaluates its explainer with the *clean* model output
    kept fixed; an ``explain_fn`` that needs that should close over it.

    :param explain_fn: maps inputs ``(M, ...)`` to explanations ``(M, ...)`` (importance maps,
        logits or masks; cast to float64 and flattened per instance). Must be deterministic.
    :param x: inputs ``(N, ...)``. :param float radius: ``r``. :param int num_draws: ``J``.
    :param int seed: seeds the noise (see :func:`uniform_perturbations`).
    :param bool relative: divide by ``‖Φ(x_i)‖₂`` (AIL); instances with a zero explanation then
        give ``inf`` (or ``nan`` if nothing changes).
    :returns: float64 tensor ``(N,)`` on the CPU. Lower is better.
    """
    x = as_inputs(x)
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"x must have shape (N, ...) with N >= 1; got {tuple(x.shape)}")
    delta = uniform_perturbations(x, radius, num_draws, seed)
    base = _explain(explain_fn, x, batch_size)  # (N, E)
    perturbed = _explain(
        explain_fn, (x.unsqueeze(0) + delta).reshape((-1, *x.shape[1:])), batch_size
    )
    perturbed = perturbed.reshape(num_draws, x.shape[0], -1)
    if perturbed.shape[-1] != base.shape[-1]:
        raise ValueError("explain_fn returned explanations of different sizes for x and x + δ")
    change = torch.linalg.vector_norm(perturbed - base, dim=-1).amax(0)  # max over draws
    if relative:
        change = change / torch.linalg.vector_norm(base, dim=-1)
    return change


def max_sensitivity(
    explain_fn: ExplainFn,
    x: Tensor,
    radius: float = 0.2,
    num_draws: int = 50,
    seed: int = 0,
    *,
    relative: bool = False,
    batch_size: int | None = None,
) -> float:
    """
    SEN: the mean over instances of :func:`max_sensitivity_per_instance` (AIL: mean over test
    instances of the per-instance maximum; notes §2.6). **Lower is better.** A fraction, not %.
    """
    return float(
        max_sensitivity_per_instance(
            explain_fn, x, radius, num_draws, seed, relative=relative, batch_size=batch_size
        ).mean()
    )


def _explain(explain_fn: ExplainFn, x: Tensor, batch_size: int | None) -> Tensor:
    size = x.shape[0] if batch_size is None else int(batch_size)
    outs = []
    # No torch.no_grad() here: gradient explainers (saliency, integrated gradients) need autograd.
    for begin in range(0, x.shape[0], size):
        out = torch.as_tensor(explain_fn(x[begin : begin + size]))
        if out.shape[0] != min(size, x.shape[0] - begin):
            raise ValueError(
                f"explain_fn must return one explanation per input row; got shape "
                f"{tuple(out.shape)} for {min(size, x.shape[0] - begin)} rows"
            )
        outs.append(out.detach().cpu().to(torch.float64).reshape(out.shape[0], -1))
    result = torch.cat(outs)
    if bool(torch.isnan(result).any()):
        raise ValueError("explain_fn returned NaN values")
    return result


# --------------------------------------------------------------------------- time
def explanation_time(explain_fn: ExplainFn, x: Tensor, repeats: int = 5, warmup: int = 1) -> float:
    """
    Wall-clock seconds per instance to explain ``x`` (AIL's TPS; L2X's clock time divided by
    the number of instances; notes §2.6, §3.9).

    Times ``explain_fn(x)`` with :func:`time.perf_counter` ``repeats`` times after ``warmup``
    untimed calls (CUDA is synchronised before reading the clock when ``x`` is on a GPU), and
    returns the **median** time divided by ``N``. Training time is not included. For timing
    targets, use ``benchmarks/`` rather than unit tests (DESIGN §5).

    :param explain_fn: maps ``(N, ...)`` inputs to explanations.
    :param x: inputs ``(N, ...)``. :param int repeats: timed calls (>= 1).
    :param int warmup: untimed calls first (>= 0).
    :returns: seconds per instance (> 0).
    """
    x = as_inputs(x)
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1; got {repeats!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0; got {warmup!r}")
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"x must have shape (N, ...) with N >= 1; got {tuple(x.shape)}")
    cuda = x.is_cuda

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(x.device)

    # Autograd stays on: gradient explainers need it, and it is part of their cost.
    for _ in range(warmup):
        explain_fn(x)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        explain_fn(x)
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / x.shape[0]


# --------------------------------------------------------------------------- sanity check
def explanation_similarity_per_instance(
    a: ArrayLike, b: ArrayLike, method: str = "spearman"
) -> torch.Tensor:
    """
    Per-instance similarity of two explanations of the same inputs.

    - ``"spearman"``: Spearman rank correlation (Pearson correlation of the ranks, ties given
      their average rank via :func:`scipy.stats.rankdata`), the score of Adebayo et al. (2018);
    - ``"cosine"``: cosine similarity, AIL's score of binary masks (notes §2.6).

    :param a, b: explanations ``(N, ...)`` of equal shape (flattened per instance).
    :returns: float64 tensor ``(N,)``; ``nan`` where undefined (a constant explanation for
        Spearman, an all-zero one for cosine).
    """
    a, b = _as_tensor(a, "a"), _as_tensor(b, "b")
    if a.shape != b.shape or a.dim() < 1 or a.shape[0] == 0:
        raise ValueError(
            f"a and b must have the same shape (N, ...) with N >= 1; got {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    if method == "spearman":
        a = torch.as_tensor(rankdata(a.numpy(), axis=1), dtype=torch.float64)
        b = torch.as_tensor(rankdata(b.numpy(), axis=1), dtype=torch.float64)
        a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    elif method != "cosine":
        raise ValueError(f"unknown method {method!r}; expected 'spearman' or 'cosine'")
    denominator = torch.linalg.vector_norm(a, dim=1) * torch.linalg.vector_norm(b, dim=1)
    numerator = (a * b).sum(1)
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-300), torch.nan)


def model_randomisation_check(
    explain_fn_trained: ExplainFn,
    explain_fn_random: ExplainFn,
    x: Tensor,
    method: str = "spearman",
) -> float:
    """
    Model-randomisation sanity check (Adebayo et al., *Sanity Checks for Saliency Maps*,
    NeurIPS 2018): similarity between the explanations of the trained model and of the same
    explainer applied to a model with randomised weights.

    .. math:: \\frac1N \\sum_i \\rho_S\\big(E_{trained}(x_i), E_{random}(x_i)\\big)

    with :math:`\\rho_S` the Spearman rank correlation over features (``method="spearman"``,
    Adebayo et al.) or the cosine similarity (``method="cosine"``, AIL's score on binary masks;
    notes §2.6). **Lower means the explanation depends on the model** (passes the check); ≈ 1
    means it does not. Instances where the similarity is undefined (constant explanations) are
    left out of the mean.

    :param explain_fn_trained, explain_fn_random: map ``(N, ...)`` inputs to explanations.
    :param x: inputs ``(N, ...)``.
    :returns: the mean similarity in ``[-1, 1]``.
    :raises ValueError: if the similarity is undefined for every instance.
    """
    x = as_inputs(x)
    a = torch.as_tensor(explain_fn_trained(x)).detach().cpu()  # autograd on: gradient explainers
    b = torch.as_tensor(explain_fn_random(x)).detach().cpu()
    values = explanation_similarity_per_instance(a, b, method)
    defined = ~torch.isnan(values)
    if not bool(defined.any()):
        raise ValueError("the similarity is undefined for every instance (constant explanations)")
    return float(values[defined].mean())
