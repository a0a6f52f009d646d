"""Where images fall in each layer's feature space: a 2-D map per layer (PCA, or t-SNE with
scikit-learn), coloured by label.

The features of a layer are its channels averaged over positions (as for the probes). PCA is
computed in float64 on the centred features (the map's axes are the first two principal
components, with the share of variance each explains); t-SNE (van der Maaten & Hinton 2008) is
scikit-learn's, started from the PCA map and seeded, on the standardized features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..checks import check_int, check_seed
from ..errors import CnnlensError, did_you_mean
from ..folders import LabelledImages, select_images
from ..registry import info_label, model_info
from ..results import Result
from .features import collect_pooled, image_sources, labelled_images, make_tap

__all__ = ["EMBED_METHODS", "Embedding", "embed", "pca_2d", "tsne_class"]

EMBED_METHODS = ("pca", "tsne")


def embed(
    model: nn.Module,
    images: Any,
    *,
    layers: str | Sequence[str] | None = None,
    labels: str | Path | Sequence[int] | None = None,
    method: str = "pca",
    batch_size: int = 64,
    limit: int | None = None,
    seed: int | None = 0,
    progress: bool = True,
) -> Embedding:
    """A 2-D map of the images in each layer's feature space.

    Args:
        model: a model from :func:`cnnlens.create_model` or any image ``nn.Module``.
        images: a folder, image files or pixels; a labelled folder (class subfolders, a labels CSV,
            MNIST IDX) or :class:`cnnlens.folders.LabelledImages` colours the points by class.
        layers: layer names (``logits``: the output); default: ten stages by depth.
        labels: a labels CSV for a flat folder, or one class index per image.
        method: ``"pca"`` or ``"tsne"`` (needs scikit-learn: ``pip install cnnlens[embed]``).
        seed: t-SNE's seed.

    Returns:
        :class:`Embedding`: ``coords[layer]`` (``(N, 2)``), the labels, ``figure()`` with one panel per layer.
    """
    if not isinstance(method, str) or method.strip().lower() not in EMBED_METHODS:
        raise CnnlensError(f"method {method!r} unknown: use {' or '.join(EMBED_METHODS)}{did_you_mean(str(method), EMBED_METHODS)}", param="method")
    method = method.strip().lower()
    batch_size = check_int(batch_size, "batch_size", low=1, high=65_536)
    seed = check_seed(seed)
    if method == "tsne":
        tsne_class()  # refuse before the work when scikit-learn is missing
    names, sources, ys, class_names, notes = _images(images, labels, limit)
    if len(sources) < 3:
        raise CnnlensError(f"images: a 2-D map needs at least 3 images, got {len(sources)}", param="images")
    tap = make_tap(model, layers, images=images)
    (features,) = collect_pooled([tap], sources, batch_size=batch_size, progress=progress, desc="embed features")
    coords, explained = {}, {}
    for name in tap.layers:
        xy, share = pca_2d(features[name])
        if method == "tsne":
            xy = _tsne(features[name], xy, seed)
        coords[name], explained[name] = xy, share
    return Embedding(coords=coords, names=names, labels=ys, class_names=class_names, method=method, explained=explained,
                     info=model_info(model).to_dict(), features={n: int(f.shape[1]) for n, f in features.items()}, seed=seed, notes=notes)  # fmt: skip


def _images(images: Any, labels: Any, limit: int | None) -> tuple[list[str], list[Any], list[int] | None, dict[int, str], list[str]]:
    """Names, sources, labels (or None), class names and notes of ``images``."""
    labelled: LabelledImages | None = None
    if isinstance(images, LabelledImages) or (isinstance(labels, (str, Path))):
        labelled = labelled_images(images, labels, limit)
    elif isinstance(images, (str, Path)) and Path(images).is_dir() and labels is None:
        try:
            labelled = labelled_images(images, None, limit)
        except CnnlensError:
            labelled = None  # a plain folder: points without colours
    if labelled is not None:
        sources = image_sources(labelled)
        names = [str(s) if not isinstance(s, torch.Tensor) else f"images[{i}]" for i, s in enumerate(sources)]
        class_names: dict[int, str] = {}
        if labelled.paths is not None and labelled.source:
            root = Path(labelled.source)
            for p, y in zip(labelled.paths, labelled.labels):
                if Path(p).parent != root:
                    class_names.setdefault(int(y), Path(p).parent.name)
        return names, sources, list(labelled.labels), class_names, labelled.notes()
    chosen = select_images(images, limit)
    ys = None
    if labels is not None:
        ys = [int(v) for v in labels]
        if len(ys) != len(chosen):
            raise CnnlensError(f"labels: {len(ys)} labels for {len(chosen)} images", param="labels")
    return list(chosen), list(chosen.values()), ys, {}, []


def pca_2d(x: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    """The first two principal components of ``(N, D)`` features (float64, centred; signs fixed so
    that the largest coordinate of each is positive) and the share of the variance each explains."""
    x = x.double()
    x = x - x.mean(0)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    k = min(2, vh.shape[0])
    coords = x @ vh[:k].T
    for j in range(k):
        if coords[:, j].abs().max() > 0 and coords[coords[:, j].abs().argmax(), j] < 0:
            coords[:, j] = -coords[:, j]
    if k < 2:
        coords = torch.cat([coords, torch.zeros(len(x), 2 - k, dtype=coords.dtype)], 1)
    total = float((s**2).sum())
    share = [float(s[j] ** 2) / total if total > 0 else 0.0 for j in range(k)] + [0.0] * (2 - k)
    return coords, share


def tsne_class() -> Any:
    """scikit-learn's ``TSNE``, or a one-line error saying how to install it."""
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        raise CnnlensError("method tsne needs scikit-learn: pip install 'cnnlens[embed]' (or use method pca)", param="method") from None
    return TSNE


def _tsne(feats: torch.Tensor, start: torch.Tensor, seed: int | None) -> torch.Tensor:
    x = feats.double()
    x = (x - x.mean(0)) / x.std(0, unbiased=False).clamp_min(1e-8)
    start = start / start[:, 0].std().clamp_min(1e-12) * 1e-4  # scikit-learn's scale for an initial map
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
    tsne = tsne_class()(n_components=2, init=start.numpy(), perplexity=perplexity, random_state=seed if seed is not None else None)
    return torch.from_numpy(tsne.fit_transform(x.numpy())).double()


@dataclass(repr=False)
class Embedding(Result):
    """What :func:`embed` returns: per layer the 2-D coordinates of every image."""

    coords: dict[str, torch.Tensor]
    names: list[str]
    labels: list[int] | None
    class_names: dict[int, str]
    method: str
    explained: dict[str, list[float]]
    info: dict[str, Any]
    features: dict[str, int]
    seed: int | None = 0
    notes: list[str] = field(default_factory=list)

    @property
    def layers(self) -> list[str]:
        return list(self.coords)

    @property
    def warnings(self) -> list[str]:  # type: ignore[override]
        return list(self.notes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.info,
            "method": self.method,
            "images": self.names,
            "labels": self.labels,
            "class_names": {str(k): v for k, v in sorted(self.class_names.items())},
            "layers": {
                name: {"features": self.features[name], "coords": xy.tolist(),
                       **({"explained_variance": self.explained[name]} if self.method == "pca" else {})}
                for name, xy in self.coords.items()
            },
        }  # fmt: skip

    def _summary(self) -> dict[str, Any]:
        return {"model": info_label(self.info), "method": self.method, "n_images": len(self.names), "layers": self.layers,
                "classes": len(set(self.labels)) if self.labels is not None else None}  # fmt: skip

    def to_text(self) -> str:
        lines = [f"{self.method.upper()} maps of {len(self.names)} images in {len(self.coords)} layers of {info_label(self.info)}"]
        if self.method == "pca":
            width = max(len(n) for n in self.coords) + 2
            lines += ["", f"{'layer':<{width}}{'features':>9}  {'variance on PC1, PC2':>22}"]
            for name in self.coords:
                a, b = self.explained[name]
                lines.append(f"{name:<{width}}{self.features[name]:>9}  {100 * a:>10.1f} %, {100 * b:5.1f} %")
        return "\n".join(lines)

    def figure(self, *, title: str | None = None, columns: int | None = None) -> Any:
        """One panel per layer, points coloured by class (a legend with up to 20 classes)."""
        import matplotlib.pyplot as plt

        n = len(self.coords)
        cols = columns or min(5, n)
        rows = -(-n // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows + 0.6), layout="constrained", squeeze=False)
        classes = sorted(set(self.labels)) if self.labels is not None else []
        many = len(classes) > 20
        cmap = plt.get_cmap("viridis" if many else ("tab10" if len(classes) <= 10 else "tab20"))
        colour = {c: cmap(i / max(1, len(classes) - 1)) if many else cmap(i) for i, c in enumerate(classes)}
        for ax, (name, xy) in zip(axes.flat, self.coords.items()):
            pts = xy.numpy()
            if self.labels is None:
                ax.scatter(pts[:, 0], pts[:, 1], s=6, color="C0", alpha=0.7, linewidths=0)
            else:
                for c in classes:
                    keep = [i for i, y in enumerate(self.labels) if y == c]
                    ax.scatter(pts[keep, 0], pts[keep, 1], s=6, color=colour[c], alpha=0.75, linewidths=0,
                               label=self.class_names.get(c, str(c)))  # fmt: skip
            sub = f"\nPC1 {100 * self.explained[name][0]:.0f} %, PC2 {100 * self.explained[name][1]:.0f} %" if self.method == "pca" else ""
            ax.set_title(f"{name}{sub}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in list(axes.flat)[n:]:
            ax.axis("off")
        if classes and not many:
            handles, texts = axes.flat[0].get_legend_handles_labels()
            fig.legend(handles, texts, loc="outside lower center", ncols=min(len(classes), 6), fontsize=7, markerscale=2)
        fig.suptitle(title or f"{self.method.upper()} of each layer's features: {info_label(self.info)}, {len(self.names)} images", fontsize=9)
        return fig

