"""Faithfulness of attribution maps: the deletion and insertion curves of Petsiuk et al. 2018 (RISE).

**Deletion** removes pixels in the order of the map, most important first, replacing them with the
normalization mean (Petsiuk et al. set them to 0 in the normalized input, which is the same); the
target class's softmax probability is recorded after each step. A map that finds the evidence makes
the probability fall fast: a *small* area under the curve is good. **Insertion** starts from a
blurred copy of the image (torchvision's ``gaussian_blur``: sigma 5 pixels at 224 px as in Petsiuk
et al., scaled with the image, on a ``2 round(sigma) + 1`` kernel -- 11 x 11 at 224 px, the Gaussian
cut at about one sigma -- with reflect padding) and reveals the original pixels in the same order: a
*large* area is good.

Every method is compared with a **random map** of its own grain, a map that knows nothing about the
image: ``random`` is uniform noise per pixel, the baseline of the pixel-grained methods (saliency,
integrated gradients, SmoothGrad, the guided ones); ``random-grid`` is uniform noise on the grid of
the Grad-CAM layer (or 1/32 of the image, a CNN's usual stride, when there is none) upsampled
bilinearly as Grad-CAM is, the baseline of Grad-CAM, Grad-CAM++ and occlusion. The grain matters:
grey pixels scattered over the image are far from anything the network was trained on, so deleting
pixels in a random *pixel* order drives the probability down within the first 10-20 % of pixels
whatever the order, while removing smooth regions leaves the rest of the image intact; a coarse map
compared with pixel noise would lose for its grain, not for where it looks.

Pixels the map ranks equal (Grad-CAM's zeros) are taken in a random order, so that ties do not sweep
the image from the top. The x axis is the fraction of pixels removed or revealed,
``0, 1/steps, ..., 1``; the area is the trapezoid rule on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import seeds
from ..checks import check_int
from ..errors import CnnlensError
from ..hooks import eval_mode
from ..layers import model_device, model_dtype
from ..pixelnet import pixel_net
from ..progress import progress_bar
from ..registry import ModelInfo
from ..results import Result

if TYPE_CHECKING:
    from .maps import Attribution

__all__ = ["BASELINES", "CURVES", "RANDOM", "RANDOM_GRID", "Faithfulness", "area", "baseline_of", "deletion_insertion", "pixel_order", "random_maps"]

CURVES = ("deletion", "insertion")
RANDOM = "random"  # uniform noise per pixel
RANDOM_GRID = "random-grid"  # uniform noise on the class-activation layer's grid, upsampled bilinearly
BASELINES = (RANDOM, RANDOM_GRID)
COARSE = ("gradcam", "gradcam++", "occlusion")  # the methods compared with random-grid


def baseline_of(method: str) -> str:
    """The random map ``method`` is compared with (its grain: module docstring)."""
    return RANDOM_GRID if method in COARSE else RANDOM


def random_maps(n: int, size: tuple[int, int], grid: tuple[int, int] | None, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """``{"random": (N, H, W) noise, "random-grid": (N, H, W) noise on grid, upsampled}``; grid None:
    1/32 of the image (at least 2 x 2)."""
    h, w = size
    gh, gw = grid or (max(2, -(-h // 32)), max(2, -(-w // 32)))
    coarse = torch.rand(n, 1, gh, gw, generator=generator)
    return {
        RANDOM: torch.rand(n, h, w, generator=generator),
        RANDOM_GRID: F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[:, 0],
    }


def pixel_order(saliency: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Pixel indices of an ``(H, W)`` map, largest value first, ties in a random order."""
    flat = saliency.reshape(-1).float()
    perm = torch.randperm(flat.numel(), generator=generator)
    order = torch.argsort(flat[perm], descending=True, stable=True)
    return perm[order]


def area(curve: torch.Tensor) -> torch.Tensor:
    """Area under curves ``(..., steps + 1)`` sampled at fractions ``0..1`` (trapezoid rule)."""
    steps = curve.shape[-1] - 1
    if steps < 1:
        return curve[..., 0]
    return (curve.sum(-1) - (curve[..., 0] + curve[..., -1]) / 2) / steps


def blur_sigma(size: tuple[int, int]) -> float:
    """Petsiuk et al.'s sigma 5 at 224 px, scaled to the image."""
    return 5.0 * min(size) / 224.0


def _blur(x: torch.Tensor) -> torch.Tensor:
    import torchvision.transforms.v2.functional as TF

    sigma = blur_sigma((x.shape[-2], x.shape[-1]))
    k = 2 * max(1, round(sigma)) + 1
    return TF.gaussian_blur(x, kernel_size=[k, k], sigma=[sigma, sigma])


@dataclass(repr=False)
class Faithfulness(Result):
    """Deletion and insertion curves per method and image (module docstring).

    Attributes:
        curves: ``curves[curve][method]`` is ``(N, steps + 1)``: the target's probability after each
            step; ``method`` includes the random baselines (``"random"``, ``"random-grid"``) the
            methods are compared with.
        fractions: ``(steps + 1,)`` the fraction of pixels removed (deletion) or revealed (insertion).
        targets, target_names: the class each curve follows.
    """

    info: ModelInfo
    methods: tuple[str, ...]
    fractions: torch.Tensor
    curves: dict[str, dict[str, torch.Tensor]]
    image_names: list[str]
    targets: torch.Tensor
    target_names: list[str]
    blur_sigma: float
    seed: int | None = None
    layer: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def baselines(self) -> tuple[str, ...]:
        """The random maps among :attr:`methods`, in the order of :data:`BASELINES`."""
        return tuple(b for b in BASELINES if b in self.methods)

    @property
    def steps(self) -> int:
        return int(self.fractions.numel() - 1)

    def auc(self, curve: str, method: str) -> torch.Tensor:
        """``(N,)`` areas under ``curve`` of ``method``."""
        return area(self.curves[curve][method])

    def mean_auc(self) -> dict[str, dict[str, float]]:
        """``{curve: {method: mean area over the images}}``."""
        return {c: {m: float(self.auc(c, m).mean()) for m in self.methods} for c in self.curves}

    def baseline(self, method: str) -> str:
        """The random map ``method`` is compared with (:func:`baseline_of`)."""
        return baseline_of(method)

    def better_than_random(self, curve: str, method: str) -> float:
        """Share of images where ``method`` beats its random map (:func:`baseline_of`; deletion:
        smaller area; insertion: larger)."""
        a, r = self.auc(curve, method), self.auc(curve, baseline_of(method))
        return float(((a < r) if curve == "deletion" else (a > r)).float().mean())

    def to_dict(self) -> dict[str, Any]:
        means = self.mean_auc()
        summary = {
            c: {
                m: {
                    "mean_auc": means[c][m],
                    "std_auc": float(self.auc(c, m).std()) if len(self.image_names) > 1 else 0.0,
                    **({} if m in BASELINES else {"baseline": baseline_of(m), "better_than_random": self.better_than_random(c, m)}),
                    "mean_curve": self.curves[c][m].mean(0),
                }
                for m in self.methods
            }
            for c in self.curves
        }
        return {
            **self.info.to_dict(),
            "layer": self.layer,
            "steps": self.steps,
            "fractions": self.fractions,
            "deletion_fill": "normalization mean",
            "insertion_start": f"Gaussian blur, sigma {self.blur_sigma:.3g} px, {2 * max(1, round(self.blur_sigma)) + 1}x{2 * max(1, round(self.blur_sigma)) + 1} kernel, reflect padding",
            "score": "softmax probability of the target class",
            "baselines": {RANDOM: "uniform noise per pixel", RANDOM_GRID: "uniform noise on the layer's grid, upsampled bilinearly"},
            "seed": self.seed,
            "curves": summary,
            "images": [
                {
                    "image": name,
                    "target": int(self.targets[i]),
                    "target_name": self.target_names[i],
                    "auc": {c: {m: float(self.auc(c, m)[i]) for m in self.methods} for c in self.curves},
                }
                for i, name in enumerate(self.image_names)
            ],
        }

    def figure(self, index: int | None = None, *, title: str | None = None) -> Any:
        """The curves (of image ``index``, or the mean over the images) with their areas in the legend."""
        from .plots import plot_faithfulness

        return plot_faithfulness(self, index, title=title)

    def _summary(self) -> dict[str, Any]:
        means = self.mean_auc()
        return {
            "model": self.info.label,
            "images": len(self.image_names),
            **{f"{c} auc": {m: round(v, 4) for m, v in means[c].items()} for c in self.curves},
        }


def _check_curves(curves: str | Sequence[str]) -> tuple[str, ...]:
    items = [curves] if isinstance(curves, str) else list(curves)
    bad = [c for c in items if c not in CURVES]
    if bad or not items:
        raise CnnlensError(f"curves must be deletion, insertion or both, not {bad[0] if bad else 'nothing'!r}", param="curves")
    return tuple(c for c in CURVES if c in items)


def curves_of(
    pixnet: nn.Module,
    x: torch.Tensor,
    maps: dict[str, torch.Tensor],
    targets: torch.Tensor,
    *,
    fill: torch.Tensor,
    steps: int,
    curves: Sequence[str],
    generator: torch.Generator,
    batch_size: int,
) -> dict[str, dict[str, torch.Tensor]]:
    """Curves of one batch of images ``x`` ``(N, C, H, W)`` on ``pixnet`` (pixels in [0, 1])."""
    n, _, h, w = x.shape
    total = h * w
    counts = torch.round(torch.arange(steps + 1, dtype=torch.float64) * total / steps).long()
    blurred = _blur(x) if "insertion" in curves else None
    out: dict[str, dict[str, list[torch.Tensor]]] = {c: {m: [] for m in maps} for c in curves}
    for i in range(n):
        stacks: list[torch.Tensor] = []
        keys: list[tuple[str, str]] = []
        for method, m in maps.items():
            rank = torch.empty(total, dtype=torch.long)
            rank[pixel_order(m[i], generator)] = torch.arange(total)
            masks = (rank.view(1, h, w) < counts.view(-1, 1, 1)).to(x.device).unsqueeze(1)  # (S+1, 1, H, W)
            for c in curves:
                if c == "deletion":
                    stacks.append(torch.where(masks, fill, x[i : i + 1]))
                else:
                    stacks.append(torch.where(masks, x[i : i + 1], blurred[i : i + 1]))  # type: ignore[index]
                keys.append((c, method))
        batch = torch.cat(stacks)
        with torch.no_grad():
            probs = torch.cat([F.softmax(pixnet(chunk).float(), 1)[:, int(targets[i])] for chunk in batch.split(batch_size)])
        for k, (c, method) in enumerate(keys):
            out[c][method].append(probs[k * (steps + 1) : (k + 1) * (steps + 1)].cpu())
    return {c: {m: torch.stack(v) for m, v in per.items()} for c, per in out.items()}


def deletion_insertion(
    model: nn.Module,
    attribution: Attribution,
    *,
    steps: int = 16,
    curves: str | Sequence[str] = CURVES,
    batch_size: int = 32,
    seed: int | None = 0,
    progress: bool = True,
) -> Faithfulness:
    """Deletion and insertion curves of every map of ``attribution``, and of random maps of their grain.

    Args:
        model: the model the maps were computed on (as given to :func:`cnnlens.attribution.attribute`).
        attribution: the maps, images and targets (:class:`~cnnlens.attribution.Attribution`).
        steps: points of each curve after the first (16: 1/16 of the pixels per step).
        curves: ``"deletion"``, ``"insertion"`` or both.
        batch_size: images per forward pass.
        seed: draws the random maps and the order among equal values.
        progress: report progress (bar on a terminal, a line every 10 s elsewhere).

    Returns:
        :class:`Faithfulness`; ``to_dict()`` has the mean areas and, per method, the share of images
        where it beats its random map.
    """
    steps = check_int(steps, "steps", low=1, high=100_000)
    which = _check_curves(curves)
    batch_size = check_int(batch_size, "batch_size", low=1, high=65536)
    generator = seeds.generator(seed) or torch.Generator()  # None: a generator's fixed default seed, as before
    prep = attribution.preprocessing
    pixnet = pixel_net(model, prep)
    device = model_device(model)
    dtype = model_dtype(model)
    images = attribution.images
    n, c, h, w = images.shape
    fill = torch.tensor(prep.mean, dtype=dtype, device=device).view(1, c, 1, 1)  # what the network sees as 0
    grid = (attribution.grid.height, attribution.grid.width) if attribution.grid is not None else None
    baselines = sorted({baseline_of(m) for m in attribution.methods}, key=BASELINES.index)
    noise = random_maps(n, (h, w), grid, generator)
    parts: list[dict[str, dict[str, torch.Tensor]]] = []
    per_image = max(1, batch_size // (len(attribution.methods) + len(baselines)))
    with eval_mode(model), progress_bar(n, "deletion/insertion curves", enabled=progress, unit="image") as bar:
        for start in range(0, n, per_image):
            sl = slice(start, min(n, start + per_image))
            maps = {m: attribution.by_method[m][sl] for m in attribution.methods}
            maps.update({b: noise[b][sl] for b in baselines})
            x = images[sl].to(device, dtype)
            parts.append(curves_of(pixnet, x, maps, attribution.targets[sl], fill=fill, steps=steps, curves=which, generator=generator, batch_size=batch_size))
            bar.update(sl.stop - sl.start)
    merged = {cv: {m: torch.cat([p[cv][m] for p in parts]) for m in parts[0][cv]} for cv in which}
    return Faithfulness(
        info=attribution.info,
        methods=(*attribution.methods, *baselines),
        fractions=torch.arange(steps + 1, dtype=torch.float32) / steps,
        curves=merged,
        image_names=list(attribution.image_names),
        targets=attribution.targets.clone(),
        target_names=list(attribution.target_names),
        blur_sigma=blur_sigma((h, w)),
        seed=seed,
        layer=attribution.layer,
    )
