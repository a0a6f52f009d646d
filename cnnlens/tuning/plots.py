"""Figures of the tuning tools: polar tuning curves, layer summaries, the hierarchy over depth and the
invariance curves. Each returns a matplotlib ``Figure`` whose title names model, weights and layers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .curves import TuningResult, UnitTuning
    from .depth import Hierarchy
    from .invariant import Invariance

__all__ = ["plot_hierarchy", "plot_invariance", "plot_osi_comparison", "plot_tuning"]

CLASS_COLORS = {"simple": "tab:blue", "complex": "tab:orange", "unselective": "0.6"}
KINDS = ("all", "polar", "summary", "unit")


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _polar(ax: Any, u: UnitTuning, orientations: Sequence[float], *, small: bool = True) -> None:
    """The orientation curve of ``u`` on a polar axis, mirrored to 360 degrees; angles grow
    clockwise, as from +x towards +y (down) in an image."""
    theta = np.deg2rad(np.asarray(orientations, dtype=float))
    r = np.asarray(u.orientation_curve, dtype=float)
    ang = np.concatenate([theta, theta + math.pi, theta[:1]])
    rad = np.concatenate([r, r, r[:1]])
    color = CLASS_COLORS[u.classification]
    ax.set_theta_direction(-1)
    ax.plot(ang, rad, color=color, lw=1.2)
    ax.fill(ang, rad, color=color, alpha=0.25)
    if u.responsive:
        top = float(r.max()) or 1.0
        pref = math.radians(u.preferred_orientation_deg)
        ax.plot([pref, pref + math.pi], [top, top], ls="none", marker="o", ms=2.5 if small else 4, color="k")
    ax.set_xticks(np.deg2rad([0, 45, 90, 135, 180, 225, 270, 315]) if not small else [])
    ax.set_yticks([])
    ax.grid(alpha=0.3)
    ratio = "-" if u.modulation_ratio is None else f"{u.modulation_ratio:.2f}"
    where = f"{u.unit.channel}" if small else str(u.unit)
    ax.set_title(f"{where}  OSI {u.osi:.2f}\nF1/F0 {ratio} {u.classification[0].upper()}", fontsize=7 if small else 9, pad=2 if small else 8)


def _pick(units: Sequence[UnitTuning], n: int) -> list[UnitTuning]:
    """The ``n`` units with the largest peak response (responsive first), in channel order."""
    order = sorted(range(len(units)), key=lambda i: (not units[i].responsive, -units[i].peak_response))[:n]
    return [units[i] for i in sorted(order)]


def _log_x(ax: Any) -> None:
    """A log x axis labelled with plain numbers (0.05, 0.1, 0.2)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _hist(ax: Any, values: Sequence[float], bins: Any, *, label: str | None = None, color: str | None = None, alpha: float = 0.7) -> None:
    data = [v for v in values if v is not None and math.isfinite(v)]
    ax.hist(data, bins=bins, color=color, alpha=alpha, label=label, edgecolor="white", linewidth=0.4)


def _summary_axes(fig: Figure, spec: Any, result: TuningResult, row: int = 0) -> None:
    units = result.units
    live = [u for u in units if u.responsive]
    s = result.summary()
    ax = fig.add_subplot(spec[row, 0])
    _hist(ax, [u.osi for u in live], np.linspace(0, 1, 21), color="tab:green")
    ax.axvline(result.osi_threshold, color="k", ls=":", lw=1)
    med = s["median_osi"]
    ax.set_title(f"OSI = 1 - circular variance (median {med:.2f})" if med is not None else "OSI", fontsize=9)
    ax.set_xlabel("OSI", fontsize=8)
    ax.set_ylabel("units", fontsize=8)
    ax = fig.add_subplot(spec[row, 1])
    for cls in ("simple", "complex", "unselective"):
        _hist(ax, [u.modulation_ratio for u in live if u.classification == cls], np.linspace(0, 2, 21), color=CLASS_COLORS[cls], label=f"{cls} ({s['counts'][cls]})")
    ax.axvline(1.0, color="k", ls=":", lw=1)
    ax.set_title("modulation ratio F1/F0 (>1 simple, <1 complex)", fontsize=9)
    ax.set_xlabel("F1/F0", fontsize=8)
    ax.legend(fontsize=7, frameon=False)
    ax = fig.add_subplot(spec[row, 2])
    step = 180.0 / max(1, len(result.orientations))
    _hist(ax, [u.preferred_orientation_deg for u in live if u.classification != "unselective"], np.arange(-step / 2, 180 + step / 2, step), color="tab:purple")
    ax.set_title("preferred orientation (selective units)", fontsize=9)
    ax.set_xlabel("degrees (0 = vertical stripes)", fontsize=8)
    ax.set_xticks([0, 45, 90, 135, 180])
    ax = fig.add_subplot(spec[row, 3])
    freqs = [u.preferred_frequency for u in live]
    if freqs:
        lo, hi = min(freqs), max(freqs)
        edges = np.geomspace(lo / 1.2, hi * 1.2, 13) if hi > lo else np.asarray([lo / 1.2, lo * 1.2])
        _hist(ax, freqs, edges, color="tab:red")
        _log_x(ax)
    ax.set_title("preferred spatial frequency", fontsize=9)
    ax.set_xlabel("cycles / pixel", fontsize=8)
    for a in fig.axes[-4:]:
        a.tick_params(labelsize=7)


def _unit_figure(result: TuningResult, u: UnitTuning, title: str) -> Figure:
    fig = _figure(13, 3.6)
    spec = fig.add_gridspec(1, 4, left=0.04, right=0.98, top=0.78, bottom=0.17, wspace=0.35)
    ax = fig.add_subplot(spec[0, 0], projection="polar")
    _polar(ax, u, result.orientations, small=False)
    layer = next(layer for layer in result.layers if u in layer.units)
    ax = fig.add_subplot(spec[0, 1])
    ax.plot(layer.frequencies, u.frequency_curve, "o-", color="tab:red", ms=3)
    ax.axvline(u.preferred_frequency, color="k", ls=":", lw=1)
    _log_x(ax)
    ax.set_xlabel("cycles / pixel", fontsize=8)
    ax.set_title(f"frequency tuning at {u.preferred_orientation_deg:.1f} deg\npreferred {u.preferred_frequency:.3g} c/px = {u.preferred_frequency_cycles_per_rf:.2g} c/RF", fontsize=9)
    ax = fig.add_subplot(spec[0, 2])
    ax.plot(result.phases + [360.0], u.phase_response + u.phase_response[:1], "o-", color=CLASS_COLORS[u.classification], ms=3)
    ax.axhline(max(u.blank_response, 0.0) if result.rectify else u.blank_response, color="0.5", ls="--", lw=1, label="blank")
    ax.set_xticks([0, 90, 180, 270, 360])
    ax.set_xlabel("spatial phase (deg)", fontsize=8)
    ratio = "-" if u.modulation_ratio is None else f"{u.modulation_ratio:.2f}"
    ax.set_title(f"response over phase: F1/F0 {ratio} ({u.classification})", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    ax = fig.add_subplot(spec[0, 3])
    if u.contrast_response is not None:
        ax.plot(result.contrasts, u.contrast_response, "o-", color="tab:green", ms=3)
        _log_x(ax)
        if u.c50 is not None:
            ax.axvline(u.c50, color="k", ls=":", lw=1)
        ax.set_title("contrast response" + (f" (c50 {u.c50:.2g})" if u.c50 is not None else ""), fontsize=9)
    else:
        ax.set_title("contrast response not measured", fontsize=9)
    ax.set_xlabel("contrast", fontsize=8)
    for a in fig.axes:
        a.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_tuning(result: TuningResult, *, kind: str | None = None, unit: Any = None, max_units: int = 24, title: str | None = None) -> Figure:
    """The figure of :class:`~cnnlens.tuning.TuningResult` (see its ``figure``)."""
    from ..errors import CnnlensError, did_you_mean

    if unit is not None:
        u = result[unit]
        return _unit_figure(result, u, title or f"{result.info.label}: {u.unit}")
    units = result.units
    kind = kind or ("unit" if len(units) == 1 else "all")
    if kind not in KINDS:
        raise CnnlensError(f"kind {kind!r} unknown{did_you_mean(str(kind), KINDS)}; one of {', '.join(KINDS)}", param="kind")
    s = result.summary()
    head = (
        f"{result.title}: {s['n_units']} units, {s['counts']['simple']} simple, {s['counts']['complex']} complex, "
        f"{s['counts']['unselective']} unselective (OSI < {result.osi_threshold:g})"
    )
    if kind == "unit":
        return _unit_figure(result, units[0], title or f"{result.info.label}: {units[0].unit}")
    shown = _pick(units, max_units) if kind in ("all", "polar") else []
    ncols = min(8, max(1, len(shown)))
    nrows = math.ceil(len(shown) / ncols) if shown else 0
    summary_rows = 1 if kind in ("all", "summary") else 0
    height = 1.75 * nrows + 3.0 * summary_rows + 0.9
    fig = _figure(max(13.0, 1.7 * ncols), height)
    ratios = [1.75] * nrows + [3.0] * summary_rows
    spec = fig.add_gridspec(nrows + summary_rows, 1, height_ratios=ratios, top=1 - 0.75 / height, bottom=0.45 / height, left=0.05, right=0.98, hspace=0.45)
    if shown:
        polar = spec[:nrows, 0].subgridspec(nrows, ncols, hspace=0.75, wspace=0.25)
        for k, u in enumerate(shown):
            ax = fig.add_subplot(polar[k // ncols, k % ncols], projection="polar")
            _polar(ax, u, result.orientations)
    if summary_rows:
        _summary_axes(fig, spec[nrows, 0].subgridspec(1, 4, wspace=0.3), result)
    note = "polar: tuning response over orientation (wave-vector angle, clockwise from +x as in the image); S simple, C complex, U unselective"
    fig.suptitle(title or f"{head}\n{note if shown else ''}".strip(), fontsize=9)
    return fig


def plot_osi_comparison(results: Sequence[TuningResult], *, title: str | None = None) -> Figure:
    """Histograms of OSI and F1/F0 of several tuning results over each other (a trained layer
    against the same layer at random initialisation), with their medians."""
    fig = _figure(11, 3.8)
    ax1, ax2 = fig.subplots(1, 2)
    colors = ["tab:blue", "tab:gray", "tab:orange", "tab:green"]
    for k, r in enumerate(results):
        live = [u for u in r.units if u.responsive]
        s = r.summary()
        label = r.info.weights_label
        _hist(ax1, [u.osi for u in live], np.linspace(0, 1, 26), color=colors[k % 4], alpha=0.55, label=f"{label} (median {s['median_osi']:.2f})" if s["median_osi"] is not None else label)
        ratio = s["median_modulation_ratio"]
        _hist(ax2, [u.modulation_ratio for u in live], np.linspace(0, 2, 26), color=colors[k % 4], alpha=0.55, label=f"{label} (median {ratio:.2f})" if ratio is not None else label)
    ax1.set_xlabel("OSI = 1 - circular variance", fontsize=9)
    ax2.set_xlabel("modulation ratio F1/F0", fontsize=9)
    ax2.axvline(1.0, color="k", ls=":", lw=1)
    ax1.set_ylabel("units", fontsize=9)
    for ax, where in ((ax1, "upper right"), (ax2, "upper left")):  # clear of the bars: OSI piles up low, F1/F0 high
        ax.set_ylim(0, ax.get_ylim()[1] * 1.3)  # room for the legend
        ax.legend(fontsize=8, frameon=False, loc=where)
        ax.tick_params(labelsize=8)
    names = ", ".join(dict.fromkeys(layer.layer for r in results for layer in r.layers))
    fig.suptitle(title or f"{results[0].info.name} {names}: trained against random initialisation", fontsize=10)
    fig.tight_layout()
    return fig


def _depth_colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(0.85 - 0.75 * k / max(1, n - 1)) for k in range(n)]


def plot_hierarchy(h: Hierarchy, *, title: str | None = None) -> Figure:
    """Per layer (x, shallow to deep): shares of orientation-selective, simple and complex units;
    median OSI and F1/F0; receptive-field size. The random initialisation, when measured, dashed."""
    fig = _figure(14, 4.8)
    ax1, ax2, ax3 = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.3, 1.0, 0.8]})
    x = np.arange(len(h.rows))
    labels = [f"{r.layer}\n{r.rf_size}px" for r in h.rows]

    def values(rows: Sequence[Any], key: str) -> list[float]:
        return [np.nan if getattr(r, key) is None else getattr(r, key) for r in rows]

    series = [("share_selective", "orientation-selective", "tab:green"), ("share_simple", "simple (F1/F0 > 1)", CLASS_COLORS["simple"]), ("share_complex", "complex (F1/F0 < 1)", CLASS_COLORS["complex"])]
    for key, label, color in series:
        ax1.plot(x, values(h.rows, key), "o-", color=color, label=label)
        if h.baseline_rows is not None:
            ax1.plot(x, values(h.baseline_rows, key), "o--", color=color, alpha=0.6, mfc="white")
    ax1.set_ylim(-0.02, 1.02)
    ax1.set_ylabel("share of units", fontsize=9)
    ax1.set_title("classes of units per layer" + (" (dashed: random init)" if h.baseline_rows is not None else ""), fontsize=9)
    ax1.legend(fontsize=8, frameon=False)
    for key, label, color in (("median_osi", "median OSI", "tab:green"), ("median_modulation_ratio", "median F1/F0", "tab:purple")):
        ax2.plot(x, values(h.rows, key), "o-", color=color, label=label)
        if h.baseline_rows is not None:
            ax2.plot(x, values(h.baseline_rows, key), "o--", color=color, alpha=0.6, mfc="white")
    ax2.axhline(1.0, color="k", ls=":", lw=1)
    ax2.set_title("medians over responsive units", fontsize=9)
    ax2.legend(fontsize=8, frameon=False)
    ax3.bar(x, [r.rf_size for r in h.rows], color="0.6")
    ax3.set_yscale("log")
    ax3.set_title("receptive field (pixels)", fontsize=9)
    many = len(h.rows) > 5
    for ax in (ax1, ax2, ax3):
        ax.set_xticks(x, labels, fontsize=7, rotation=45 if many else 0, ha="right" if many else "center")
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(alpha=0.25)
    t = h.tuning
    grid = f"{len(t.orientations)} orientations x {len(t.layers[0].frequencies) if t.layers else 0} frequencies x {len(t.phases)} phases, full-field gratings"
    base = f"; dashed: {h.baseline_info.label}" if h.baseline_info is not None else ""
    fig.suptitle(title or f"{h.info.label}: tuning over depth\n{grid}{base}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_invariance(inv: Invariance, *, title: str | None = None) -> Figure:
    """One panel per transform: the similarity of transformed and original activations against the
    size of the transform, a line per layer (lighter = shallower, darker = deeper); the random
    initialisation dashed."""
    from .common import TRANSFORM_UNITS

    families = list(inv.transforms)
    fig = _figure(3.2 * len(families) + 0.6, 4.6)
    axes = np.atleast_1d(fig.subplots(1, len(families), sharey=True))
    colors = _depth_colors(len(inv.layers))
    for ax, family in zip(axes, families):
        xs = inv.transforms[family]
        for color, layer in zip(colors, inv.layers):
            ys = [np.nan if v is None else v for v in inv.similarity[layer][family]]
            rf = inv.rf_sizes.get(layer)
            ax.plot(xs, ys, "o-", color=color, ms=3, lw=1.4, label=f"{layer} ({rf} px)" if rf else f"{layer} (global)")
            if inv.baseline_similarity is not None:
                yb = [np.nan if v is None else v for v in inv.baseline_similarity[layer][family]]
                ax.plot(xs, yb, "o--", color=color, ms=3, lw=1.0, alpha=0.7, mfc="white")
        ax.set_title(family, fontsize=10)
        ax.set_xlabel(TRANSFORM_UNITS[family], fontsize=8)
        ax.axhline(0.0, color="0.5", lw=0.6)
        ax.grid(alpha=0.25)
        ax.tick_params(labelsize=8)
    tables = [inv.similarity] + ([inv.baseline_similarity] if inv.baseline_similarity is not None else [])
    lowest = min((v for t in tables for fams in t.values() for vals in fams.values() for v in vals if v is not None), default=0.0)
    axes[0].set_ylim(min(-0.1, lowest - 0.05), 1.03)
    axes[0].set_ylabel("similarity to the original\n(centred cosine; 0 = another image)", fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    if inv.baseline_similarity is not None:
        from matplotlib.lines import Line2D

        handles += [Line2D([], [], color="k", lw=1.4), Line2D([], [], color="k", ls="--", lw=1.0)]
        labels += [f"solid: {inv.info.weights_label}", f"dashed: {inv.baseline_info.weights_label if inv.baseline_info is not None else 'random init'}"]
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8, frameon=False)
    rows = math.ceil(len(labels) / min(len(labels), 4))
    fig.suptitle(title or f"{inv.info.label}: invariance of each layer over {inv.n_images} images at {inv.image_size} px", fontsize=10)
    fig.tight_layout(rect=(0, 0.02 + 0.055 * rows, 1, 1))
    return fig
