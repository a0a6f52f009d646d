"""Figures for filters, patches and projections (matplotlib ``Figure`` objects; nothing is shown).

Grids are composed as one numpy array (cells separated by a white gutter) and drawn with nearest
neighbour interpolation, so 7x7 filters and 59x59 patches stay crisp at any size.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .deconv import Projection
    from .filters import Filters
    from .patch_results import PatchResult

__all__ = ["filter_grid", "plot_filters", "plot_patches", "plot_projection", "signed_to_rgb", "strongest"]

GUTTER = 1.0  # white


def signed_to_rgb(t: torch.Tensor, *, percentile: float = 100.0) -> torch.Tensor:
    """Map a signed tensor to [0, 1] with 0 at mid-grey: ``0.5 + 0.5 * t / s``, ``s`` the given
    percentile of ``|t|`` (100 = the maximum; the contrast normalization of one filter or one map)."""
    t = t.detach().float().cpu()
    mag = t.abs().flatten()
    if mag.numel() == 0:
        return t
    s = float(mag.max()) if percentile >= 100 else float(torch.quantile(mag, percentile / 100.0))
    if s <= 0:
        return torch.full_like(t, 0.5)
    return (0.5 + 0.5 * t / s).clamp(0, 1)


def _compose(cells: list[list[np.ndarray | None]], gutter: int = 1) -> np.ndarray:
    """Rows of ``(h, w, 3)`` cells (None = blank) into one image with white gutters."""
    h = max(c.shape[0] for row in cells for c in row if c is not None)
    w = max(c.shape[1] for row in cells for c in row if c is not None)
    ncols = max(len(row) for row in cells)
    out = np.full((len(cells) * (h + gutter) + gutter, ncols * (w + gutter) + gutter, 3), GUTTER, dtype=np.float32)
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            if cell is None:
                continue
            top, left = gutter + r * (h + gutter), gutter + c * (w + gutter)
            out[top : top + cell.shape[0], left : left + cell.shape[1]] = cell
    return out


def _hwc(t: torch.Tensor) -> np.ndarray:
    t = t.detach().float().cpu()
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.shape[0] == 1:
        t = t.expand(3, *t.shape[1:])
    return t.permute(1, 2, 0).numpy()


def _figure(array: np.ndarray, *, min_width: int = 900, max_width: int = 1800, extra_h: float = 0.0, extra_w: float = 0.0) -> tuple[Figure, float]:
    from matplotlib.figure import Figure

    h, w = array.shape[:2]
    scale = max(1, min(math.ceil(min_width / w), max(1, max_width // w)))
    dpi = 100
    fig = Figure(figsize=(w * scale / dpi + extra_w, h * scale / dpi + extra_h), dpi=dpi)
    return fig, scale


def filter_grid(filters: Filters, *, max_filters: int | None = None, max_inputs: int = 16, ncols: int | None = None) -> tuple[np.ndarray, list[int], list[int] | None]:
    """The grid image of :func:`plot_filters` as an ``(H, W, 3)`` array, the filter indices shown
    (row-major) and, for deeper layers, the input channels shown as columns."""

    w = filters.weight
    if filters.first_layer:
        order = list(range(w.shape[0])) if max_filters is None else strongest(w, max_filters)
        ncols = ncols or math.ceil(math.sqrt(len(order) * 1.5))
        cells = [_hwc(signed_to_rgb(w[i])) for i in order]
        rows = [cells[i : i + ncols] for i in range(0, len(cells), ncols)]
        return _compose(rows), order, None
    order = strongest(w, max_filters or 16)
    energy = w[order].pow(2).sum(dim=(2, 3)).sum(0)  # per input channel, over the shown filters
    inputs = torch.argsort(energy, descending=True, stable=True)[: max_inputs].tolist()
    rows = []
    for i in order:
        s = float(w[i, inputs].abs().max()) or 1.0  # one scale per filter (row): channels compare
        rows.append([_hwc((0.5 + 0.5 * w[i, ch] / s).clamp(0, 1)) for ch in inputs])
    return _compose(rows), order, inputs


def plot_filters(filters: Filters, *, max_filters: int | None = None, max_inputs: int = 16, ncols: int | None = None, title: str | None = None) -> Figure:
    """First layer: every filter as an RGB (or grey) patch in pixel space, each filter
    contrast-normalized with 0 at grey. Deeper layers: the strongest filters by norm as rows, their
    input channels as grayscale columns (the input channels with the most energy in the shown
    filters). The title names model, weights (or "random init") and layer."""
    from ..registry import info_label

    grid, order, inputs = filter_grid(filters, max_filters=max_filters, max_inputs=max_inputs, ncols=ncols)
    deep = inputs is not None
    fig, _ = _figure(grid, min_width=700, max_width=1400, extra_h=1.2 if deep else 0.8, extra_w=0.7 if deep else 0.0)
    ax = fig.add_axes((0.08, 0.07, 0.9, 0.82) if deep else (0.01, 0.01, 0.98, 0.87))
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    r2 = filters.mean_gabor_r2
    stats = f", mean Gabor R\u00b2 {r2:.2f}" if r2 is not None else ""
    if inputs is None:
        space = "pixel space" if filters.first_layer else "raw weights"
        head = f"layer {filters.layer}: {len(order)} filters {tuple(filters.weight.shape[1:])} in {space}{stats}"
    else:
        kh, kw = filters.weight.shape[-2:]
        cell_h = (grid.shape[0] - 1) / len(order)
        cell_w = (grid.shape[1] - 1) / len(inputs)
        ax.set_yticks([0.5 + cell_h * (r + 0.5) for r in range(len(order))], [str(i) for i in order], fontsize=7)
        ax.set_xticks([0.5 + cell_w * (c + 0.5) for c in range(len(inputs))], [str(i) for i in inputs], fontsize=7)
        ax.tick_params(length=0)
        ax.set_ylabel("filter (output channel)", fontsize=8)
        ax.set_xlabel("input channel", fontsize=8)
        head = f"layer {filters.layer}: strongest {len(order)} filters (rows) x {len(inputs)} input channels, {kh}x{kw}{stats}"
    label = info_label(filters.info) if filters.info is not None else None
    fig.suptitle(title or (f"{label}\n{head}" if label else head), fontsize=10)
    return fig


def plot_patches(result: PatchResult, *, title: str | None = None, percentile: float = 99.5) -> Figure:
    """One row per channel: its top-k receptive-field crops, strongest first; with projections
    (:func:`~cnnlens.units.add_projections`) the row shows the k projections, then the k crops
    (Zeiler & Fergus 2014, fig. 2). The title names model, weights (or "random init"), layer and
    the rule for border units; rows are labelled with their unit (``LAYER:CHANNEL``)."""
    if not result.crops:
        raise ValueError("plot_patches needs the crops: use result.figure(), which cuts them")
    rows = []
    with_proj = bool(result.projections)
    k = max(1, result.k)
    blank = result.by == "relevance" and any(p.activation > 0 for c in result.channels for p in result.patches[c])
    for c in result.channels:
        crops = [_hwc(t) for t in result.crops[c]]
        if blank:  # an image that gave the unit no relevance is no example of it: left blank
            crops = [None if p.activation <= 0 else crop for p, crop in zip(result.patches[c], crops)]  # type: ignore[misc]
        crops += [None] * (k - len(crops))  # type: ignore[list-item]
        if with_proj:
            proj = [_hwc(signed_to_rgb(g, percentile=percentile)) for g in result.projections[c]]
            proj += [None] * (k - len(proj))  # type: ignore[list-item]
            rows.append([*proj, None, *crops])
        else:
            rows.append(crops)
    grid = _compose(rows, gutter=max(1, result.receptive_field.size[0] // 16))
    rf = result.receptive_field
    what = f"{result.method} projections | crops" if with_proj else "crops"
    border = (
        "every position counts" if result.min_inside <= 0 else
        "only fields wholly inside the image count" if result.min_inside >= 1 else
        f"only fields at least {result.min_inside:.0%} inside the image count"
    )  # fmt: skip
    lines = [
        result.label,
        f"layer {result.layer}: top {k} of {result.n_images} images per {'channel' if result.by in ('activation', 'relevance') else result.by}{result.ranked_by_text}; {what} of the {rf.size[0]}x{rf.size[1]} px receptive field",
        f"units: {border}; grey = beyond the image border" + ("; blank = no further image gave the unit positive relevance" if result.by == "relevance" else ""),
    ]
    probe, _ = _figure(grid, min_width=700, max_width=1600)
    text = title or _wrapped(lines, probe.get_figwidth() + 0.9, 9)
    n_lines = text.count("\n") + 1
    fig, _ = _figure(grid, min_width=700, max_width=1600, extra_h=0.25 + 0.18 * n_lines, extra_w=0.9)
    top = 1 - (0.12 + 0.18 * n_lines) / fig.get_figheight()
    ax = fig.add_axes((0.09, 0.01, 0.9, top - 0.01))
    ax.imshow(grid, interpolation="nearest")
    cell_h = grid.shape[0] / len(result.channels)
    dead = set(result.dead_channels)
    labels = [result.unit_name(c) + (" (dead)" if c in dead else "") for c in result.channels]
    ax.set_yticks([cell_h * (r + 0.5) for r in range(len(result.channels))], labels, fontsize=7)
    ax.set_xticks([])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.suptitle(text, fontsize=9)
    return fig


def _wrapped(lines: list[str], width_in: float, fontsize: float) -> str:
    """``lines`` joined by newlines, each wrapped to a figure ``width_in`` inches wide."""
    import textwrap

    chars = max(40, int(width_in * 72 / (0.55 * fontsize)))
    return "\n".join(part for line in lines for part in textwrap.wrap(line, chars))


def plot_projection(projection: Projection, *, percentile: float = 99.5, title: str | None = None) -> Figure:
    """The image beside each method's projection (signed, 0 = grey, each scaled by its own
    ``percentile`` of ``|g|``), with the unit's receptive-field box drawn on every panel. The title
    names model, weights, unit and activation, and says when the unit is dead or when the methods
    equal the gradient (no ReLU-family nonlinearity)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from ..registry import info_label

    p = projection
    panels = [("image", _hwc(p.image.clamp(0, 1)))]
    for method, g in p.projections.items():
        diff = p.relative_difference.get(method)
        sub = "" if method == "gradient" or diff is None else f"\nrelative difference from gradient {diff:.2f}"
        panels.append((method + sub, _hwc(signed_to_rgb(g, percentile=percentile))))
    h, w = p.image.shape[-2:]
    notes = list(p.warnings)
    unit = f"logits:{p.unit.name or p.unit.channel}" if p.unit.is_logits else str(p.unit)
    rf = f", {p.box[2] - p.box[0]}x{p.box[3] - p.box[1]} px field (cyan)" if p.box is not None else ""
    head = f"{info_label(p.info)}: unit {unit}, activation {p.activation:.4g}{rf}"
    width = 3.6 * len(panels)
    text = title or _wrapped([head, *notes], width, 9)
    fig = Figure(figsize=(width, 3.6 * h / w + 0.75 + 0.17 * (text.count("\n") + 1)), dpi=100)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, arr) in zip(axes, panels):
        ax.imshow(arr, interpolation="nearest")
        if p.box is not None:
            top, left, bottom, right = p.box
            ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False, edgecolor="cyan", linewidth=1.2))
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(text, fontsize=9)
    fig.tight_layout()
    return fig


def strongest(weight: torch.Tensor, n: int) -> list[int]:
    """Indices of the ``n`` output filters with the largest L2 norm, strongest first (the order of the plots)."""
    norms = weight.flatten(1).norm(dim=1)
    return torch.argsort(norms, descending=True, stable=True)[:n].tolist()
