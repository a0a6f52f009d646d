"""Linear probes (Alain & Bengio 2016): how linearly readable a labelling is from each layer.

The recipe, fixed so that numbers compare across layers, models and papers:

1. the features of a layer are its channels averaged over positions (a ``(N, C)`` matrix; a
   fully connected layer's outputs as they are);
2. ``folds``-fold cross-validation, stratified by class, from a seeded permutation;
3. in each fold the features are standardized with the training images' mean and standard
   deviation, and a multinomial logistic regression (softmax, with a bias) is fitted in float64
   by L-BFGS (strong-Wolfe line search, up to 500 iterations) on the mean cross-entropy plus
   ``weight_decay / 2 · ‖W‖²``;
4. the accuracy is the share of images classified right when they were held out (every image is
   held out once), with its binomial standard error ``sqrt(p (1 - p) / N)``; ``chance`` is the share
   of the most frequent class (what always answering it scores).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..checks import check_int, check_number, check_seed
from ..errors import CnnlensError
from ..registry import info_label, model_info, random_init_like
from ..results import Result
from ..seeds import generator
from .features import collect_pooled, image_sources, labelled_images, make_tap

__all__ = ["LayerProbe", "Probe", "fit_probe", "probe", "stratified_folds"]


def probe(
    model: nn.Module,
    data: Any,
    *,
    layers: str | Sequence[str] | None = None,
    labels: str | Path | None = None,
    baseline: bool | nn.Module = False,
    folds: int = 5,
    weight_decay: float = 1e-3,
    batch_size: int = 64,
    limit: int | None = None,
    seed: int | None = 0,
    progress: bool = True,
) -> Probe:
    """Held-out accuracy of a linear classifier on each layer's features (see the module docstring).

    Args:
        model: a model from :func:`cnnlens.create_model` or any image ``nn.Module``.
        data: labelled images: a folder (class subfolders, a flat folder with ``labels``, MNIST IDX
            files) or :class:`cnnlens.folders.LabelledImages`.
        layers: layer names (``logits``: the output); default: ten stages by depth.
        labels: a CSV of filename and class index for a flat folder (default ``DATA/labels.csv``).
        baseline: also probe the architecture at random initialisation (``True``:
            :func:`cnnlens.registry.random_init_like` with ``seed``) or the model given.
        folds: folds of the cross-validation (2 to 20); weight_decay: the L2 penalty.
        seed: the folds (and the random initialisation of the baseline).

    Returns:
        :class:`Probe`: per layer the accuracy, its standard error and the accuracy of each fold,
        for the model and the baseline; ``figure()`` draws accuracy against depth.
    """
    folds = check_int(folds, "folds", low=2, high=20)
    weight_decay = check_number(weight_decay, "weight_decay", low=0.0)
    batch_size = check_int(batch_size, "batch_size", low=1, high=65_536)
    seed = check_seed(seed)
    if not isinstance(baseline, (bool, nn.Module)):
        raise CnnlensError(f"baseline must be True, False or a model, not {type(baseline).__name__}", param="baseline")
    dataset = labelled_images(data, labels, limit)
    y_raw = torch.tensor(dataset.labels, dtype=torch.long)
    classes, y = torch.unique(y_raw, return_inverse=True)
    counts = torch.bincount(y)
    if len(classes) < 2:
        raise CnnlensError(f"data: the images hold {len(classes)} class; a probe needs two or more", param="data")
    if len(dataset) < 2 * folds or int(counts.min()) < 1:
        raise CnnlensError(f"data: {len(dataset)} images are too few for {folds} folds; give more images or fewer folds", param="data")
    tap = make_tap(model, layers)
    taps = [tap]
    notes = list(dataset.notes())
    other: nn.Module | None = None
    if baseline is not False:
        if baseline is True and model_info(model).random_init:
            notes.append("the model is itself a random initialisation: no separate baseline")
        else:
            other = random_init_like(model, seed) if baseline is True else baseline
            taps.append(make_tap(other, list(tap.layers), "layers"))
    if int(counts.min()) < folds:
        notes.append(f"{int((counts < folds).sum())} class(es) have fewer than {folds} images: some folds hold none of them")
    features = collect_pooled(taps, image_sources(dataset), batch_size=batch_size, progress=progress, desc="probe features")
    assignment = stratified_folds(y, folds, seed)
    rows = [[_probe_layer(name, feats[name], y, assignment, weight_decay) for name in t.layers] for t, feats in zip(taps, features)]
    return Probe(
        layers=list(tap.layers), rows=rows[0], baseline_rows=rows[1] if len(rows) > 1 else None,
        info=model_info(model).to_dict(), baseline_info=model_info(other).to_dict() if other is not None else None,
        n_images=len(dataset), n_classes=len(classes), chance=float(counts.max()) / len(dataset), folds=folds,
        weight_decay=weight_decay, seed=seed, notes=notes,
    )  # fmt: skip


def stratified_folds(y: torch.Tensor, folds: int, seed: int | None) -> torch.Tensor:
    """The fold of each example: a seeded permutation, then each class dealt round-robin over the folds."""
    order = torch.randperm(len(y), generator=generator(seed))
    fold = torch.empty(len(y), dtype=torch.long)
    dealt: dict[int, int] = {}
    offset: dict[int, int] = {}
    for i in order.tolist():  # a class's k-th image (in the permuted order) goes to fold (k + its offset) % folds
        c = int(y[i])
        if c not in offset:
            offset[c] = len(offset) % folds  # classes start on different folds, so small classes spread
        fold[i] = (dealt.get(c, 0) + offset[c]) % folds
        dealt[c] = dealt.get(c, 0) + 1
    return fold


def fit_probe(x: torch.Tensor, y: torch.Tensor, n_classes: int, weight_decay: float = 1e-3, max_iter: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W, b)`` of a multinomial logistic regression on ``x`` (float64) by full-batch L-BFGS."""
    x = x.double()
    w = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12, history_size=20,
                            line_search_fn="strong_wolfe")  # fmt: skip

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(x @ w + b, y) + 0.5 * weight_decay * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def _probe_layer(name: str, feats: torch.Tensor, y: torch.Tensor, fold: torch.Tensor, weight_decay: float) -> LayerProbe:
    x = feats.double()
    n_classes = int(y.max()) + 1
    right = torch.zeros(len(y), dtype=torch.bool)
    per_fold = []
    for f in range(int(fold.max()) + 1):
        test = fold == f
        train = ~test
        if not bool(test.any()):
            continue
        mean = x[train].mean(0)
        std = x[train].std(0, unbiased=False).clamp_min(1e-8)
        w, b = fit_probe((x[train] - mean) / std, y[train], n_classes, weight_decay)
        pred = (((x[test] - mean) / std) @ w + b).argmax(1)
        right[test] = pred == y[test]
        per_fold.append(float((pred == y[test]).double().mean()))
    p = float(right.double().mean())
    return LayerProbe(name, p, math.sqrt(p * (1 - p) / len(y)), per_fold, int(feats.shape[1]))


@dataclass(frozen=True)
class LayerProbe:
    """One layer's probe: held-out ``accuracy``, its standard error, the accuracy of each fold, the feature width."""

    layer: str
    accuracy: float
    stderr: float
    fold_accuracy: list[float]
    features: int

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "accuracy": self.accuracy, "stderr": self.stderr, "fold_accuracy": self.fold_accuracy, "features": self.features}


@dataclass(repr=False)
class Probe(Result):
    """What :func:`probe` returns: a :class:`LayerProbe` per layer, and per layer of the baseline."""

    layers: list[str]
    rows: list[LayerProbe]
    baseline_rows: list[LayerProbe] | None
    info: dict[str, Any]
    baseline_info: dict[str, Any] | None
    n_images: int
    n_classes: int
    chance: float
    folds: int
    weight_decay: float
    seed: int | None
    notes: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:  # type: ignore[override]
        return list(self.notes)

    def accuracy(self, layer: str, *, baseline: bool = False) -> float:
        """The held-out accuracy of ``layer`` (of the baseline with ``baseline=True``)."""
        rows = self.baseline_rows if baseline else self.rows
        if rows is None:
            raise CnnlensError("this probe has no baseline; run it with baseline=True", param="baseline")
        for row in rows:
            if row.layer == layer:
                return row.accuracy
        from ..errors import did_you_mean

        raise CnnlensError(f"layer {layer!r} was not probed{did_you_mean(layer, self.layers)}", param="layer")

    @property
    def recipe(self) -> str:
        return (f"channels averaged over positions, standardized; softmax regression (L2 {self.weight_decay:g}) by L-BFGS; "
                f"{self.folds}-fold stratified cross-validation (seed {self.seed})")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.info,
            "baseline": self.baseline_info,
            "n_images": self.n_images,
            "n_classes": self.n_classes,
            "chance": self.chance,
            "recipe": self.recipe,
            "layers": [r.to_dict() for r in self.rows],
            "baseline_layers": [r.to_dict() for r in self.baseline_rows] if self.baseline_rows is not None else None,
        }

    def _summary(self) -> dict[str, Any]:
        best = max(self.rows, key=lambda r: r.accuracy)
        return {"model": info_label(self.info), "n_images": self.n_images, "n_classes": self.n_classes, "chance": self.chance,
                "best_layer": best.layer, "best_accuracy": best.accuracy}  # fmt: skip

    def to_text(self) -> str:
        lines = [f"linear probe of {info_label(self.info)}: {self.n_images} images, {self.n_classes} classes, chance {100 * self.chance:.1f} %",
                 f"({self.recipe})", ""]  # fmt: skip
        width = max(len(n) for n in self.layers) + 2
        head = f"{'layer':<{width}}{'features':>9}  {'accuracy':>15}"
        if self.baseline_rows is not None:
            head += f"  {info_label(self.baseline_info or {}):>30}"
        lines.append(head)
        for i, row in enumerate(self.rows):
            line = f"{row.layer:<{width}}{row.features:>9}  {100 * row.accuracy:>7.1f} ± {100 * row.stderr:4.1f} %"
            if self.baseline_rows is not None:
                b = self.baseline_rows[i]
                line += f"  {100 * b.accuracy:>22.1f} ± {100 * b.stderr:4.1f} %"
            lines.append(line)
        return "\n".join(lines)

    def figure(self, *, title: str | None = None) -> Any:
        """Held-out accuracy against depth (± one standard error), the baseline beside, chance dashed."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(self.layers) + 2), 3.8), layout="constrained")
        xs = list(range(len(self.layers)))
        series = [(self.rows, info_label(self.info), "C0")]
        if self.baseline_rows is not None:
            series.append((self.baseline_rows, info_label(self.baseline_info or {}), "C3"))
        for rows, label, colour in series:
            acc = [100 * r.accuracy for r in rows]
            err = [100 * r.stderr for r in rows]
            ax.errorbar(xs, acc, yerr=err, marker="o", ms=4, capsize=3, color=colour, label=label)
        ax.axhline(100 * self.chance, ls="--", color="grey", lw=1, label=f"chance (most frequent class) {100 * self.chance:.0f} %")
        ax.set_xticks(xs, self.layers, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("held-out accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        ax.set_title(title or f"linear probe by depth: {self.n_images} images, {self.n_classes} classes, {self.folds}-fold", fontsize=9)
        return fig

