"""Figures of attribution maps, their faithfulness curves and the randomization test.

Maps are drawn over the image with a colour map whose opacity follows the map's value (positive
part, scaled to its 99.5th percentile), so that weak attributions leave the image visible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .crp import ConceptRelevance
    from .faithfulness import Faithfulness
    from .maps import Attribution
    from .sanity import RandomizationTest

__all__ = ["draw_relevance", "plot_concept_relevance", "draw_faithfulness", "draw_maps", "draw_randomization", "overlay", "percent", "plot_attribution", "plot_faithfulness", "plot_overview", "plot_randomization", "scaled"]

CMAP = "jet"
BASELINE_STYLES = ({"color": "grey", "linestyle": "--"}, {"color": "black", "linestyle": ":"})  # random, random-grid
SIGNED = ("integrated-gradients", "occlusion", "lrp")  # maps with a sign: the positive part is drawn


def scaled(saliency: torch.Tensor, percentile: float = 99.5) -> torch.Tensor:
    """The positive part of a map divided by its ``percentile`` (values in [0, 1])."""
    v = saliency.detach().float().clamp_min(0)
    positive = v[v > 0]
    if positive.numel() == 0:
        return v
    top = float(torch.quantile(positive[:: max(1, positive.numel() // 100_000)], percentile / 100))
    return (v / top).clamp(0, 1) if top > 0 else v


def overlay(image: torch.Tensor, saliency: torch.Tensor) -> Any:
    """An ``(H, W, 3)`` array: ``image`` with the map over it in :data:`CMAP`, opacity by value."""
    import matplotlib
    import numpy as np

    img = image.detach().float().cpu()
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    base = img.permute(1, 2, 0).numpy()
    v = scaled(saliency).cpu().numpy()
    colour = matplotlib.colormaps[CMAP](v)[..., :3]
    alpha = (0.75 * v)[..., None]
    return np.clip(base * (1 - alpha) + colour * alpha, 0, 1)


def _image(ax: Any, image: torch.Tensor) -> None:
    img = image.detach().float().cpu()
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
    ax.set_xticks([])
    ax.set_yticks([])


def _short(name: str, limit: int = 28) -> str:
    from pathlib import Path

    text = Path(name).name if not name.startswith("images[") else name
    return text if len(text) <= limit else text[: limit - 3] + "..."


def percent(p: float) -> str:
    """A probability as a percentage that stays readable when small: ``78.5 %``, ``0.0031 %``, ``<0.001 %``."""
    value = 100 * float(p)
    if value >= 0.1 or value == 0:
        return f"{value:.1f} %"
    return f"{value:.2g} %" if value >= 0.001 else "<0.001 %"


def _class_line(r: Attribution, i: int) -> str:
    target = f"{r.target_names[i]} ({percent(r.target_probability[i])})"
    line = f"target: {target}" if r.target_given[i] else f"top: {target}"
    if r.target_given[i] and int(r.predicted[i]) != int(r.targets[i]):
        line += f"\ntop: {r.predicted_names[i]} ({percent(r.predicted_probability[i])})"
    return line


def draw_maps(axes: Any, r: Attribution, i: int, *, captions: bool = True) -> None:
    """Image ``i`` then each method's map over it, on a row of axes."""
    _image(axes[0], r.images[i])
    axes[0].set_title(f"{_short(r.image_names[i])}\n{_class_line(r, i)}" if captions else _class_line(r, i), fontsize=8)
    for ax, m in zip(axes[1:], r.methods):
        ax.imshow(overlay(r.images[i], r.by_method[m][i]))
        ax.set_xticks([])
        ax.set_yticks([])
        label = m + (" (positive part)" if m in SIGNED else "")
        if m in ("gradcam", "gradcam++", "guided-gradcam") and r.layer:
            label += f"\n{r.layer}"
        ax.set_title(label, fontsize=8)


def _title(r: Attribution | Faithfulness | RandomizationTest, what: str) -> str:
    layer = getattr(r, "layer", None)
    return f"{what}: {r.info.label}" + (f", layer {layer}" if layer else "")


def draw_faithfulness(fig: Any, f: Faithfulness, index: int | None = None) -> None:
    """Deletion and insertion curves (of image ``index`` or the mean over images) into ``fig``."""
    axes = fig.subplots(1, len(f.curves), squeeze=False)[0]
    x = f.fractions.numpy()
    baseline_of = f.baseline

    # each method beside its own random baseline: grouped by baseline in the legend, the baseline's
    # line in the group's style, each method's label naming the baseline it is compared with
    methods = [m for m in f.methods if m not in f.baselines]
    order = [m for b in f.baselines for m in (b, *[m for m in methods if baseline_of(m) == b])]
    order += [m for m in f.methods if m not in order]
    for ax, curve in zip(axes, f.curves):
        for m in order:
            ys = f.curves[curve][m]
            y = (ys[index] if index is not None else ys.mean(0)).numpy()
            a = float(f.auc(curve, m)[index]) if index is not None else float(f.auc(curve, m).mean())
            if m in f.baselines:
                style = BASELINE_STYLES[f.baselines.index(m) % 2]
                users = [u for u in methods if baseline_of(u) == m]
                label = f"{m} ({a:.3f}): baseline of {', '.join(users)}" if users else f"{m} ({a:.3f})"
            else:
                style = {"linestyle": "-" if baseline_of(m) == f.baselines[0] else "-."}
                b = baseline_of(m)
                ab = float(f.auc(curve, b)[index]) if index is not None else float(f.auc(curve, b).mean())
                label = f"{m} ({a:.3f}) vs {b} ({ab:.3f})"
            ax.plot(x, y, label=label, **style)
        better = "lower" if curve == "deletion" else "higher"
        ax.set_title(f"{curve} ({'mean of ' + str(len(f.image_names)) + ' images' if index is None else 'this image'}; area {better} is better)", fontsize=8)
        ax.set_xlabel(f"fraction of pixels {'removed' if curve == 'deletion' else 'revealed'}", fontsize=8)
        ax.set_ylabel("probability of the target", fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, title="method (area)", title_fontsize=6)


def draw_randomization(fig: Any, t: RandomizationTest, *, max_columns: int = 6) -> None:
    """The rank-correlation curve and the first image's maps along the cascade, into ``fig``."""
    import numpy as np

    top, bottom = fig.subfigures(2, 1, height_ratios=[2.4, max(1, len(t.methods)) * 1.0])
    ax = top.subplots()
    steps = np.arange(len(t.blocks) + 1)
    for m in t.methods:
        mean = t.mean_curve(m).numpy()
        std = t.correlations[m].std(0).numpy() if t.correlations[m].shape[0] > 1 else np.zeros_like(mean)
        ax.plot(steps, mean, marker="o", markersize=3, label=m)
        ax.fill_between(steps, mean - std, mean + std, alpha=0.15)
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_xticks(steps)
    ax.set_xticklabels(["(trained)", *t.blocks], rotation=70, fontsize=6, ha="right")
    ax.set_ylabel("rank correlation with\nthe trained map", fontsize=8)
    ax.set_ylim(-0.3, 1.05)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title(f"blocks re-initialised from the top, cumulatively ({len(t.image_names)} images, mean and std)", fontsize=8)
    cols = sorted({round(k * len(t.blocks) / max(1, max_columns - 1)) for k in range(max_columns)})
    grid = bottom.subplots(len(t.methods), len(cols) + 1, squeeze=False)
    for r, (row, m) in enumerate(zip(grid, t.methods)):
        _image(row[0], t.example_image)
        row[0].set_ylabel(m, fontsize=8)
        for ax2, k in zip(row[1:], cols):
            ax2.imshow(scaled(t.examples[m][k].abs()).numpy(), cmap="gray", vmin=0, vmax=1)
            ax2.set_xticks([])
            ax2.set_yticks([])
            if r == 0:
                ax2.set_title("trained" if k == 0 else f"to {t.blocks[k - 1]}", fontsize=7)
    grid[0][0].set_title("image", fontsize=7)


def plot_attribution(r: Attribution, i: int, *, sanity: bool = False, title: str | None = None) -> Any:
    """Image ``i`` with each method's map over it; its deletion/insertion curves below when computed,
    and with ``sanity`` the randomization test."""
    import matplotlib.pyplot as plt

    cols = 1 + len(r.methods)
    parts = [("maps", 3.0)]
    if r.faithfulness is not None:
        parts.append(("faithfulness", 3.0))
    if sanity and r.sanity is not None:
        parts.append(("sanity", 2.4 + 1.0 * len(r.sanity.methods)))
    fig = plt.figure(figsize=(max(2.3 * cols, 8.0), sum(h for _, h in parts)), layout="constrained")
    subs = fig.subfigures(len(parts), 1, height_ratios=[h for _, h in parts], squeeze=False)[:, 0] if len(parts) > 1 else [fig]
    for sub, (kind, _) in zip(subs, parts):
        if kind == "maps":
            draw_maps(sub.subplots(1, cols, squeeze=False)[0], r, i)
        elif kind == "faithfulness":
            draw_faithfulness(sub, r.faithfulness, i)  # type: ignore[arg-type]
        else:
            draw_randomization(sub, r.sanity)  # type: ignore[arg-type]
    fig.suptitle(title or _title(r, "attribution maps"), fontsize=10)
    return fig


def plot_overview(r: Attribution, *, max_images: int = 6, title: str | None = None) -> Any:
    """Up to ``max_images`` rows of maps, then the mean faithfulness curves and the randomization test when computed."""
    import matplotlib.pyplot as plt

    rows = min(r.images.shape[0], max_images)
    cols = 1 + len(r.methods)
    parts = [("maps", 2.3 * rows)]
    if r.faithfulness is not None:
        parts.append(("faithfulness", 3.0))
    if r.sanity is not None:
        parts.append(("sanity", 2.4 + 1.0 * len(r.sanity.methods)))
    fig = plt.figure(figsize=(max(2.2 * cols, 8.0), sum(h for _, h in parts) + 0.6), layout="constrained")
    subs = fig.subfigures(len(parts), 1, height_ratios=[h for _, h in parts], squeeze=False)[:, 0] if len(parts) > 1 else [fig]
    for sub, (kind, _) in zip(subs, parts):
        if kind == "maps":
            grid = sub.subplots(rows, cols, squeeze=False)
            for i in range(rows):
                draw_maps(grid[i], r, i)
        elif kind == "faithfulness":
            draw_faithfulness(sub, r.faithfulness)  # type: ignore[arg-type]
        else:
            draw_randomization(sub, r.sanity)  # type: ignore[arg-type]
    more = f" (first {rows} of {r.images.shape[0]} images)" if rows < r.images.shape[0] else ""
    fig.suptitle(title or _title(r, "attribution maps") + more, fontsize=10)
    return fig


def plot_faithfulness(f: Faithfulness, index: int | None = None, *, title: str | None = None) -> Any:
    """Deletion and insertion curves with their areas (of image ``index``, or the mean)."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(9.0, 3.6), layout="constrained")
    draw_faithfulness(fig, f, index)
    what = "deletion and insertion (Petsiuk et al. 2018)"
    fig.suptitle(title or _title(f, what) + (f"\n{f.image_names[index]}" if index is not None else ""), fontsize=10)
    return fig


def plot_randomization(t: RandomizationTest, *, max_columns: int = 6, title: str | None = None) -> Any:
    """The cascading randomization test: correlation curve and the maps of the first image."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(max(8.0, 1.4 * (max_columns + 1)), 3.0 + 1.25 * len(t.methods)), layout="constrained")
    draw_randomization(fig, t, max_columns=max_columns)
    fig.suptitle(title or _title(t, "model randomization test (Adebayo et al. 2018)"), fontsize=10)
    return fig


# -- concept relevance -------------------------------------------------------------------------------

RELEVANCE_CMAP = "bwr"  # red: relevance for the class, blue: against it (the LRP literature's colours)


def draw_relevance(ax: Any, heatmap: torch.Tensor, title: str) -> None:
    """A signed heatmap, symmetric around 0 at its 99.5th percentile of ``|R|``."""
    h = heatmap.detach().float().cpu()
    flat = h.abs().flatten()
    top = float(torch.quantile(flat[:: max(1, flat.numel() // 100_000)], 0.995)) if flat.numel() else 0.0
    top = top or float(flat.max()) or 1.0
    ax.imshow(h.numpy(), cmap=RELEVANCE_CMAP, vmin=-top, vmax=top)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_concept_relevance(r: ConceptRelevance, *, columns: int = 4) -> Any:
    """The image, its full heatmap, and one heatmap per shown channel with its share."""
    import matplotlib.pyplot as plt

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
