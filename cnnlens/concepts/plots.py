"""Figures of concepts: each concept's feature visualization and top crops, its heatmaps on an
image, and TCAV scores against random concepts."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from .discover import ConceptMaps, Concepts
    from .tcav import TCAVResult

__all__ = ["plot_concept_maps", "plot_concepts", "plot_tcav"]


def _hwc(t: torch.Tensor) -> np.ndarray:
    t = t.detach().float().cpu().clamp(0, 1)
    if t.shape[0] == 1:
        t = t.expand(3, *t.shape[1:])
    return t.permute(1, 2, 0).numpy()


def plot_concepts(c: Concepts, *, concepts: Sequence[int] | None = None, crops: bool = True) -> Any:
    """One row per concept: its feature visualization (when rendered), then its top crops (strongest
    first); the row is labelled with the concept, its importance and the classes it raises most.
    ``crops=False`` draws no image of the folder: the visualization beside the concept's strongest
    channels and classes (a figure that can be published when the images cannot)."""
    from matplotlib.figure import Figure

    from ..units.patch_results import extract_crops

    result = c.patches
    if crops and not result.crops:
        extract_crops(result)
    shown = list(range(c.n)) if concepts is None else list(concepts)
    vis = c.visualizations is not None
    if not crops and not vis:
        raise ValueError("a figure without crops needs the feature visualizations: discover(..., settings=ConceptSettings(visualize=True))")
    k = max(1, result.k) if crops else 4
    cols = k + (1 if vis else 0)
    cell = 1.05
    label_w = 2.3
    head = [
        f"{c.label}: {c.n} concepts of {c.layer} ({c.method.upper()} of {c.n_rows} activation vectors of {c.n_images} images, "
        f"{c.explained:.0%} of the squared activation explained)",
        (f"rows: {'feature visualization of the direction | ' if vis else ''}top {k} receptive-field crops "
         f"({result.receptive_field.size[0]} px) by the concept's activation" if crops else
         "rows: feature visualization of the direction | its strongest channels (weight) and the classes it raises most (share)")
        + "; importance = mean gradient x concept" + ("" if c.target is None else f" for class {c.target}"),
    ]
    text = "\n".join(part for line in head for part in textwrap.wrap(line, int((cols * cell + label_w) * 14)))
    top_h = 0.25 + 0.17 * (text.count("\n") + 1)
    fig = Figure(figsize=(cols * cell + label_w, len(shown) * cell + top_h), dpi=110)
    gs = fig.add_gridspec(len(shown), cols, left=label_w / (cols * cell + label_w), right=0.995, bottom=0.005,
                          top=1 - top_h / (len(shown) * cell + top_h), wspace=0.04, hspace=0.08)  # fmt: skip
    for r, i in enumerate(shown):
        cut = result.crops.get(i, []) if crops else []
        if not crops:
            ax = fig.add_subplot(gs[r, 1:])
            ax.axis("off")
            chans = ", ".join(f"{ch} ({w:.2f})" for ch, w in c.top_channels(i, 6))
            classes = ", ".join(f"{c.class_label(cl)} {s:.0%}" for cl, s in c.classes.get(i, [])[:5]) or "-"
            best = result.patches.get(i, [])
            top = f"; best activation {best[0].activation:.4g} on {best[0].image.split('/')[-1]}" if best else ""
            ax.text(0.0, 0.5, "\n".join(textwrap.wrap(f"channels: {chans}{top}", 72) + textwrap.wrap(f"raises: {classes}", 72)),
                    va="center", ha="left", fontsize=7, transform=ax.transAxes)  # fmt: skip
        for j in range(cols if crops else 1):
            ax = fig.add_subplot(gs[r, j])
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if vis and j == 0:
                ax.imshow(_hwc(c.visualizations[i]))  # type: ignore[index]
                for side in ax.spines.values():
                    side.set_visible(True)
                    side.set_color("#3060c0")
            else:
                q = j - (1 if vis else 0)
                if q < len(cut):
                    ax.imshow(_hwc(cut[q]), interpolation="nearest")
            if j == 0:
                imp = "" if c.importance is None else f"importance {c.importance[i]:+.3g}"
                classes = ", ".join(f"{c.class_label(cl)} {s:.0%}" for cl, s in c.classes.get(i, [])[:2])
                lines = [f"concept {i}", imp, *textwrap.wrap(classes, 26)[:2]]
                ax.set_ylabel("\n".join(x for x in lines if x), rotation=0, ha="right", va="center", fontsize=7, labelpad=6)
    fig.suptitle(text, fontsize=8, y=1 - 0.05 / (len(shown) * cell + top_h))
    return fig


def plot_concept_maps(m: ConceptMaps, *, columns: int = 5) -> Any:
    """The image and each concept's heatmap over it."""
    from matplotlib.figure import Figure

    n = m.maps.shape[0]
    panels = n + 1
    cols = min(columns, panels)
    rows = -(-panels // cols)
    fig = Figure(figsize=(2.2 * cols, 2.35 * rows + 0.45), dpi=100)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    img = _hwc(m.image)
    axes.flat[0].imshow(img)
    axes.flat[0].set_title("image", fontsize=8)
    top = float(m.maps.max()) or 1.0
    for i in range(n):
        ax = axes.flat[i + 1]
        ax.imshow(img * 0.45 + 0.275)
        ax.imshow(m.maps[i].numpy(), cmap="magma", alpha=0.7, vmin=0, vmax=top)
        ax.set_title(f"concept {i} (max {float(m.grid[i].max()):.3g})", fontsize=8)
    name = m.info.get("model", "model")
    fig.suptitle(f"{name}: concept activations at {m.layer}, upsampled (one colour scale)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_tcav(t: TCAVResult) -> Any:
    """The concept's TCAV scores beside a random concept's, one dot per random set, with the p-value."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 3.6), dpi=100)
    ax = fig.subplots()
    rng = np.random.default_rng(0)
    for x, values, colour in ((0, t.scores, "#c04020"), (1, t.null, "#808080")):
        ax.bar(x, float(np.mean(values)), width=0.6, color=colour, alpha=0.35)
        ax.errorbar(x, float(np.mean(values)), yerr=float(np.std(values, ddof=1)) if len(values) > 1 else 0, color=colour, capsize=6)
        ax.scatter(x + rng.uniform(-0.15, 0.15, len(values)), values, s=12, color=colour, zorder=3)
    ax.axhline(0.5, color="k", lw=0.6, ls=":")
    ax.set_xticks([0, 1], [t.concept, f"{len(t.null)} random concepts"])
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"TCAV score: share of {t.n_images} images\nwith a positive directional derivative", fontsize=8)
    verdict = "significant" if t.significant else "not significant"
    ax.set_title(f"{t.info.get('model', 'model')} {t.layer}, class {t.class_label}\np = {t.p_value:.2g} ({verdict} at {t.alpha:g}), "
                 f"{len(t.scores)} random sets", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig
