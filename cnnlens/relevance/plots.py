"""Figures of concept relevance: the image, the full LRP heatmap and the conditional heatmaps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .conditional import ConceptRelevance

__all__ = ["draw_relevance", "plot_concept_relevance"]

CMAP = "bwr"  # red: relevance for the class, blue: against it (the LRP literature's colours)


def draw_relevance(ax: Any, heatmap: torch.Tensor, title: str) -> None:
    """A signed heatmap, symmetric around 0 at its 99.5th percentile of ``|R|``."""
    h = heatmap.detach().float().cpu()
    flat = h.abs().flatten()
    top = float(torch.quantile(flat[:: max(1, flat.numel() // 100_000)], 0.995)) if flat.numel() else 0.0
    top = top or float(flat.max()) or 1.0
    ax.imshow(h.numpy(), cmap=CMAP, vmin=-top, vmax=top)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_concept_relevance(r: ConceptRelevance, *, columns: int = 4) -> Any:
    """The image, its full heatmap, and one heatmap per shown channel with its share."""
    import matplotlib.pyplot as plt

    from ..attribution.plots import percent

    panels = 2 + len(r.channels)
    cols = min(columns + 2, panels)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    img = r.image.float()
    ax = axes.flat[0]
    ax.axis("on")
    ax.imshow(img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).clamp(0, 1).numpy(), cmap="gray" if img.shape[0] == 1 else None)
    ax.set_title(f"{'target' if r.given else 'top'}: {r.target_name}\n({percent(r.probability)})", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    axes.flat[1].axis("on")
    draw_relevance(axes.flat[1], r.heatmap, f"LRP ({r.composite})\nsum {r.input_total:.3g} of logit {r.explained:.3g}")
    share = r.share
    for i, (c, h) in enumerate(zip(r.channels, r.heatmaps)):
        ax = axes.flat[2 + i]
        ax.axis("on")
        draw_relevance(ax, h, f"{r.layer}:{c}\n{100 * float(share[c]):.1f} % of the layer")
    name = r.info.name if r.info else "model"
    fig.suptitle(f"{name}: concept relevance at {r.layer} (red for, blue against)", fontsize=9)
    fig.tight_layout()
    return fig
