"""
Figures for explanations: per-feature selection rates and importance maps over images.

Figures are built with matplotlib's object-oriented API on the Agg canvas, so nothing here
touches pyplot's global state or opens a window: every function returns a
:class:`matplotlib.figure.Figure` that the caller saves (``fig.savefig("rates.png")``) or, when
an ``ax`` is given, draws into that axes and returns its figure.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["importance_map", "selection_rate_curves", "selection_rates"]

logger = logging.getLogger(__name__)

#: Instances are split by their ground-truth pattern (e.g. the branches of S1-S3) when there
#: are at most this many distinct patterns; otherwise one panel shows all instances.
MAX_TRUTH_GROUPS = 4


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _as_array(value, argname: str) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensors
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{argname} must be a numeric array; got {type(value).__name__}.") from (
            error
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{argname} contains NaN or infinite values.")
    return array


def _masks_as_snd(masks, name: str) -> np.ndarray:
    masks = _as_array(masks, f"masks[{name!r}]")
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise ValueError(f"masks[{name!r}] must have shape (N, D) or (S, N, D); got {masks.shape}.")
    if masks.shape[1] == 0:
        raise ValueError(f"masks[{name!r}] has no instances.")
    return masks


def selection_rates(
    masks_by_name: Mapping[str, np.ndarray],
    truth: np.ndarray | None = None,
    feature_names: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """
    Grouped bars of the per-feature selection rate of one or more explainers.

    The rate of feature ``d`` is the fraction of (mask sample, instance) pairs that select it.
    With a ground truth whose rows take at most :data:`MAX_TRUTH_GROUPS` distinct patterns (the
    two branches of S1-S3, say) and no ``ax``, the instances are split by pattern into one panel
    each, with the pattern's true features shaded; otherwise a single panel shows the rates over
    all instances, with the per-feature rate of the ground truth drawn as black ticks.

    :param masks_by_name: explainer name -> binary masks of shape ``(S, N, D)`` (``S`` samples
        per instance) or ``(N, D)``; every entry must have the same ``N`` and ``D``.
    :param truth: optional ground-truth masks ``(N, D)`` (1 = relevant feature).
    :param feature_names: ``D`` names for the x axis (default ``x1 ... xD``).
    :param ax: draw a single panel into this axes instead of a new figure.
    :returns: the figure.
    :raises ValueError: on empty input, mismatched shapes or NaN values.
    """
    if not masks_by_name:
        raise ValueError("masks_by_name is empty; give at least one explainer's masks.")
    masks = {str(name): _masks_as_snd(value, str(name)) for name, value in masks_by_name.items()}
    shapes = {name: m.shape[1:] for name, m in masks.items()}
    num, dim = next(iter(shapes.values()))
    if any(shape != (num, dim) for shape in shapes.values()):
        raise ValueError(f"all masks must share (N, D); got {shapes}.")
    if truth is not None:
        truth = _as_array(truth, "truth")
        if truth.shape != (num, dim):
            raise ValueError(f"truth must have shape (N, D) = {(num, dim)}; got {truth.shape}.")
    if feature_names is None:
        feature_names = [f"x{d + 1}" for d in range(dim)]
    feature_names = [str(name) for name in feature_names]
    if len(feature_names) != dim:
        raise ValueError(f"feature_names must have {dim} entries; got {len(feature_names)}.")

    groups: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    if truth is not None and ax is None:
        patterns, inverse = np.unique(truth, axis=0, return_inverse=True)
        inverse = np.asarray(inverse).reshape(-1)
        if len(patterns) <= MAX_TRUTH_GROUPS:
            order = sorted(range(len(patterns)), key=lambda i: tuple(np.flatnonzero(patterns[i])))
            for index in order:
                pattern, members = patterns[index], inverse == index
                true_names = [feature_names[d] for d in np.flatnonzero(pattern)]
                title = (
                    f"instances with ground truth {{{', '.join(true_names)}}} "
                    f"(n={int(members.sum())})"
                )
                groups.append((title, members, pattern))
    if not groups:
        groups.append((f"all instances (n={num})", np.ones(num, dtype=bool), None))

    if ax is None:
        figure = _new_figure(
            max(6.0, 0.45 * dim * max(1, len(masks)) ** 0.5 + 3), 2.8 * len(groups) + 0.6
        )
        axes = figure.subplots(len(groups), 1, squeeze=False)[:, 0]
    else:
        figure, axes = ax.figure, [ax]

    positions = np.arange(dim)
    width = 0.8 / len(masks)
    colors = [f"C{i % 10}" for i in range(len(masks))]
    for panel, (title, members, pattern) in zip(axes, groups):
        if pattern is not None:
            for d in np.flatnonzero(pattern):
                panel.axvspan(
                    d - 0.5,
                    d + 0.5,
                    color="0.88",
                    zorder=0,
                    label="true feature" if d == np.flatnonzero(pattern)[0] else None,
                )
        for i, (name, m) in enumerate(masks.items()):
            rates = m[:, members].mean(axis=(0, 1))
            panel.bar(
                positions - 0.4 + width * (i + 0.5),
                rates,
                width,
                label=name,
                color=colors[i],
                zorder=2,
            )
        if truth is not None and pattern is None:
            truth_rates = truth[members].mean(0)
            panel.hlines(
                truth_rates,
                positions - 0.45,
                positions + 0.45,
                colors="black",
                linewidth=1.5,
                zorder=3,
                label="ground truth",
            )
        panel.set_xticks(positions, feature_names)
        panel.set_xlim(-0.6, dim - 0.4)
        panel.set_ylim(0, 1.05)
        panel.set_ylabel("selection rate")
        panel.set_title(title, fontsize="medium")
    axes[0].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return figure


def importance_map(
    importance: np.ndarray,
    image: np.ndarray | None = None,
    ax: Axes | None = None,
    alpha: float = 0.6,
    cmap: str = "inferno",
) -> Figure:
    """
    Heat map of an importance map (e.g. :math:`\\mathbb E[Z|x]`), optionally over its image.

    :param importance: importance of shape ``(H, W)`` or ``(N, H, W)``; ``N`` maps are drawn
        side by side (at most 8 per row).
    :param image: optional image(s) under the map: ``(H, W)``, ``(H, W, C)`` with ``C`` in
        {1, 3, 4}, or the same with a leading ``N`` matching ``importance``. Drawn in grey
        (or colour), with the heat map on top at transparency ``alpha``.
    :param ax: draw a single map into this axes (needs ``N = 1``).
    :param float alpha: opacity of the heat map over an image.
    :param str cmap: matplotlib colour map of the heat map.
    :returns: the figure.
    :raises ValueError: on shapes that do not match, or NaN values.
    """
    importance = _as_array(importance, "importance")
    if importance.ndim == 2:
        importance = importance[None]
    if importance.ndim != 3 or 0 in importance.shape:
        raise ValueError(f"importance must have shape (H, W) or (N, H, W); got {importance.shape}.")
    count, height, width = importance.shape
    images = None
    if image is not None:
        images = _as_array(image, "image")
        if images.shape[-2:] == (height, width):  # (H, W) or (N, H, W)
            images = images[..., None]
        if images.ndim == 3:
            images = np.broadcast_to(images, (count, *images.shape))
        if (
            images.ndim != 4
            or images.shape[:3] != (count, height, width)
            or images.shape[-1] not in (1, 3, 4)
        ):
            raise ValueError(
                f"image must have shape (H, W), (H, W, C) or with a leading N, matching "
                f"importance {importance.shape} and C in (1, 3, 4); got {np.shape(image)}."
            )
    if ax is not None and count != 1:
        raise ValueError(f"ax draws a single map, but importance holds {count}.")

    vmin, vmax = float(importance.min()), float(importance.max())
    if vmax == vmin:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    if ax is None:
        ncols = min(count, 8)
        nrows = -(-count // ncols)
        figure = _new_figure(2.2 * ncols + 0.8, 2.2 * nrows)
        axes = list(figure.subplots(nrows, ncols, squeeze=False).ravel())
    else:
        figure, axes = ax.figure, [ax]
    artist = None
    for index, panel in enumerate(axes):
        panel.set_axis_off()
        if index >= count:
            continue
        if images is not None:
            picture = images[index]
            low, high = float(picture.min()), float(picture.max())
            picture = (picture - low) / (high - low) if high > low else np.zeros_like(picture)
            if picture.shape[-1] == 1:
                panel.imshow(picture[..., 0], cmap="gray", vmin=0, vmax=1)
            else:
                panel.imshow(picture)
        artist = panel.imshow(
            importance[index],
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
            alpha=alpha if images is not None else 1.0,
        )
    figure.colorbar(artist, ax=axes, shrink=0.8, label="importance")
    return figure


def selection_rate_curves(
    rows: Sequence[Mapping[str, float | str]],
    metrics: Sequence[str] = ("TPR", "FDR", "ACC"),
    rate: str = "selection_rate",
    method: str = "method",
) -> Figure:
    """
    One panel per metric against the selection rate, one line per method (LEX paper Fig. 3, 5).

    :param rows: one mapping per (method, selection rate) run, e.g.
        ``{"method": "0-imputation", "selection_rate": 0.1, "TPR": 0.8, "FDR": 0.2,
        "ACC": 0.95}``. An optional ``"<metric>_se"`` entry draws ± that standard error as a
        band (e.g. over seeds or regenerated datasets).
    :param metrics: the keys plotted, one panel each, in this order.
    :param str rate: the key of the x axis.
    :param str method: the key naming the line.
    :returns: the figure.
    :raises ValueError: on no rows, or a row lacking the rate, the method or a metric.
    """
    if not rows:
        raise ValueError("rows is empty; give one row per (method, selection rate).")
    if not metrics:
        raise ValueError("metrics is empty; name at least one metric to plot.")
    for index, row in enumerate(rows):
        missing = [key for key in (rate, method, *metrics) if key not in row]
        if missing:
            raise ValueError(f"rows[{index}] lacks {missing}; it has {sorted(row)}.")
        try:  # numbers, or numeric strings as csv.DictReader gives them (a results.csv)
            float(row[rate])
        except (TypeError, ValueError):
            raise ValueError(
                f"rows[{index}][{rate!r}] must be a number; got {row[rate]!r}."
            ) from None
    names = list(dict.fromkeys(str(row[method]) for row in rows))
    figure = _new_figure(3.4 * len(metrics) + 1.6, 3.0)
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    for panel, metric in zip(axes, metrics):
        for name in names:
            mine = [row for row in rows if str(row[method]) == name]
            mine = sorted(mine, key=lambda r: float(r[rate]))
            x = np.array([float(row[rate]) for row in mine])
            y = _as_array([row[metric] for row in mine], f"rows[{metric!r}]")
            (line,) = panel.plot(x, y, marker="o", markersize=3, label=name)
            if all(f"{metric}_se" in row for row in mine):
                se = _as_array([row[f"{metric}_se"] for row in mine], f"rows[{metric + '_se'!r}]")
                panel.fill_between(x, y - se, y + se, color=line.get_color(), alpha=0.2)
        panel.set_xlabel("selection rate" if rate == "selection_rate" else rate)
        panel.set_title(metric, fontsize="medium")
        panel.grid(alpha=0.3)
    axes[-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return figure
