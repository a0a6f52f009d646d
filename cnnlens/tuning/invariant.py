"""How much each layer's representation of real images changes under translation, rotation, scale,
brightness and contrast (after Goodfellow et al. 2009, "Measuring invariances in deep networks", and
the layer-wise distances of Zeiler & Fergus 2014).

For each image the model sees its usual view (the shorter side resized, the centre cropped) and
the same view transformed: translated, rotated or zoomed within the resized photo (so a shifted view
shows more of the photo, not a border; where a view leaves the photo it is mirrored), or with
brightness added or contrast reduced. The similarity of a layer's activations for the original
``a`` and the transformed ``b`` is their *centred cosine*,

    cos(a - m, b - m),   m = the layer's mean activation over the original images,

which is 1 for the same activations and about 0 for the activations of two different images (the
mean removed, different images are uncorrelated), so layers and models with very different
activation statistics (a trained network and its random initialisation) compare on one scale.
"""

from __future__ import annotations

from pathlib import Path

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_int, check_seed
from ..errors import CnnlensError, did_you_mean
from ..folders import iter_batches, select_images
from ..hooks import eval_mode, forward_until
from ..layers import get_layer, model_device, model_dtype
from ..pixelnet import image_preprocessing, unwrap
from ..pixels import Preprocessing, as_pixels
from ..progress import progress_bar
from ..receptive_field import ReceptiveField
from ..registry import ModelInfo, default_layers, model_info
from ..results import Result
from ..registry import random_init_like
from .common import TRANSFORM_UNITS, check_numbers
from .engine import layer_fields

__all__ = ["FAMILIES", "TRANSFORM_UNITS", "Invariance", "default_transforms", "invariance", "transform_views"]

FAMILIES = ("translation", "rotation", "scale", "brightness", "contrast")
_DEFAULTS = {
    "translation": (0.0, 0.01, 0.02, 0.04, 0.08, 0.16),  # fractions of the image side, rounded to whole pixels
    "rotation": (0.0, 2.0, 5.0, 10.0, 20.0, 45.0, 90.0),
    "scale": (1.0, 1.1, 1.25, 1.5, 2.0),
    "brightness": (0.0, 0.05, 0.1, 0.2, 0.3, 0.4),
    "contrast": (0.0, 0.1, 0.25, 0.5, 0.75),
}
_IDENTITY = {"translation": 0.0, "rotation": 0.0, "scale": 1.0, "brightness": 0.0, "contrast": 0.0}
_BOUNDS = {"translation": (-4096.0, 4096.0), "rotation": (-360.0, 360.0), "scale": (0.05, 20.0), "brightness": (-1.0, 1.0), "contrast": (0.0, 1.0)}


def default_transforms(size: int) -> dict[str, list[float]]:
    """The default sizes of each transform for a ``size``-pixel input (shifts in whole pixels, up
    to 16 % of the side; rotations up to 90 degrees; zoom up to 2; brightness up to +0.4; contrast
    down to a quarter)."""
    out = {}
    for family, values in _DEFAULTS.items():
        if family == "translation":
            values = tuple(sorted({float(round(v * size)) for v in values}))
        out[family] = list(values)
    return out


def _check_transforms(transforms: Any, size: int) -> dict[str, list[float]]:
    defaults = default_transforms(size)
    if transforms is None:
        return defaults
    if isinstance(transforms, str):
        transforms = [transforms]
    if isinstance(transforms, dict):
        items = dict(transforms)
    elif isinstance(transforms, (list, tuple)):
        items = {name: None for name in transforms}
    else:
        raise CnnlensError(f"transforms must be names or a dict of name -> sizes, not {type(transforms).__name__}", param="transforms")
    if not items:
        raise CnnlensError(f"transforms is empty; give one or more of {', '.join(FAMILIES)}", param="transforms")
    out = {}
    for name, values in items.items():
        if name not in FAMILIES:
            raise CnnlensError(f"transforms: unknown transform {name!r}{did_you_mean(str(name), FAMILIES)}; one of {', '.join(FAMILIES)}", param="transforms")
        if values is None:
            out[name] = defaults[name]
            continue
        low, high = _BOUNDS[name]
        vals = check_numbers(values, "transforms", low=low, high=high)
        out[name] = sorted(set([_IDENTITY[name], *vals]), key=lambda v: abs(v - _IDENTITY[name]))
    return out


def _frame(source: Any, prep: Preprocessing, size: int) -> torch.Tensor:
    """The photo resized (shorter side) as the model's weights expect, not cropped: ``(C, H, W)``,
    with a shorter side of at least ``size``."""
    frame = as_pixels(source, prep, fit="resize", name="images")[0]
    if min(frame.shape[-2:]) < size:
        import torchvision.transforms.v2.functional as TF

        frame = TF.resize(frame, [size], antialias=True).clamp(0, 1)
    return frame


def transform_views(frame: torch.Tensor, transforms: dict[str, Sequence[float]], size: int) -> tuple[torch.Tensor, list[tuple[str, float]]]:
    """The ``size`` x ``size`` centre view of ``frame`` (``(C, H, W)`` pixels) and every transformed view.

    Returns ``(views, labels)``: ``views[0]`` is the untransformed centre crop (the same pixels as the
    model's usual centre crop), then one view per ``(family, magnitude)`` of ``labels`` (identities
    left out). Translations move the content right by the shift, rotations turn it about the
    centre by the angle, zoom magnifies it about the centre; all sample the resized photo
    bilinearly with mirrored borders. Brightness adds to every pixel, contrast scales each pixel's
    distance from the image mean by ``1 - reduction``; both clip to [0, 1].
    """
    c, h, w = frame.shape
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    labels: list[tuple[str, float]] = []
    affine: list[tuple[float, float, float]] = [(0.0, 0.0, 1.0)]  # (shift, angle, zoom)
    photometric: list[tuple[str, float]] = []
    for family, values in transforms.items():
        for v in values:
            if v == _IDENTITY[family]:
                continue
            labels.append((family, float(v)))
            if family == "translation":
                affine.append((float(v), 0.0, 1.0))
            elif family == "rotation":
                affine.append((0.0, float(v), 1.0))
            elif family == "scale":
                affine.append((0.0, 0.0, float(v)))
            else:
                photometric.append((family, float(v)))
    device, dtype = frame.device, frame.dtype
    centre = (size - 1) / 2
    d = torch.arange(size, device=device, dtype=torch.float64) - centre
    dy, dx = torch.meshgrid(d, d, indexing="ij")
    grids = []
    for shift, angle, zoom in affine:
        a = math.radians(angle)
        # source = centre + R(-a) (d / zoom) - shift
        sx = (math.cos(a) * dx + math.sin(a) * dy) / zoom - shift
        sy = (-math.sin(a) * dx + math.cos(a) * dy) / zoom
        x = left + centre + sx
        y = top + centre + sy
        grids.append(torch.stack([(2 * x + 1) / w - 1, (2 * y + 1) / h - 1], dim=-1))
    grid = torch.stack(grids)  # float64: a whole-pixel shift lands on pixel centres exactly
    source = frame.to(torch.float64).unsqueeze(0).expand(len(grids), -1, -1, -1)
    geometric = F.grid_sample(source, grid, mode="bilinear", padding_mode="reflection", align_corners=False).to(dtype)
    geometric[0] = frame[:, top : top + size, left : left + size]  # the exact centre crop
    base = geometric[0]
    extra = []
    for family, v in photometric:
        if family == "brightness":
            extra.append((base + v).clamp(0, 1))
        else:
            mean = base.mean()
            extra.append((mean + (1 - v) * (base - mean)).clamp(0, 1))
    views = torch.cat([geometric, torch.stack(extra)]) if extra else geometric
    order = [lab for lab in labels if lab[0] in ("translation", "rotation", "scale")] + [lab for lab in labels if lab[0] in ("brightness", "contrast")]
    return views.clamp(0, 1), order


@dataclass(repr=False)
class Invariance(Result):
    """What :func:`invariance` returns.

    Attributes:
        similarity: ``similarity[layer][family]`` the mean centred cosine over the images, one value
            per size of ``transforms[family]`` (1 at the identity).
        spread: the same, standard deviation over the images.
        baseline_similarity, baseline_spread: the same for the random initialisation (``None`` when
            not measured).
        rf_sizes: each layer's receptive-field side in pixels (``None``: global or unknown).
    """

    layers: list[str]
    transforms: dict[str, list[float]]
    similarity: dict[str, dict[str, list[float | None]]]
    spread: dict[str, dict[str, list[float | None]]]
    rf_sizes: dict[str, int | None]
    n_images: int
    image_size: int
    info: ModelInfo
    baseline_similarity: dict[str, dict[str, list[float | None]]] | None = None
    baseline_spread: dict[str, dict[str, list[float | None]]] | None = None
    baseline_info: ModelInfo | None = None
    warnings: list[str] = field(default_factory=list)

    def score(self, family: str, *, baseline: bool = False, sizes: Sequence[float] | None = None) -> dict[str, float | None]:
        """Per layer, the mean similarity over the non-identity sizes of ``family`` (or only over
        ``sizes``, which must be among them): 1 = fully invariant, 0 = as different as another image."""
        table = self.baseline_similarity if baseline else self.similarity
        if table is None:
            raise CnnlensError("no baseline was measured; call invariance(..., baseline=True)", param="baseline")
        if family not in self.transforms:
            raise CnnlensError(f"family {family!r} was not measured{did_you_mean(family, list(self.transforms))}", param="family")
        measured = self.transforms[family]
        if sizes is not None:
            missing = [v for v in sizes if float(v) not in measured]
            if missing:
                raise CnnlensError(f"sizes {missing} of {family} were not measured; measured: {measured}", param="sizes")
        keep = [k for k, v in enumerate(measured) if v != _IDENTITY[family] and (sizes is None or v in [float(x) for x in sizes])]
        out: dict[str, float | None] = {}
        for layer in self.layers:
            vals = [table[layer][family][k] for k in keep if table[layer][family][k] is not None]
            out[layer] = float(sum(vals) / len(vals)) if vals else None  # type: ignore[arg-type]
        return out

    def to_dict(self) -> dict[str, Any]:
        def rounded(table: dict[str, dict[str, list[float | None]]] | None) -> Any:
            if table is None:
                return None
            return {layer: {f: [None if v is None else round(v, 6) for v in vals] for f, vals in fams.items()} for layer, fams in table.items()}

        out: dict[str, Any] = {
            **self.info.to_dict(),
            "layers": self.layers,
            "rf_sizes": self.rf_sizes,
            "n_images": self.n_images,
            "image_size": self.image_size,
            "measure": "centred cosine similarity of original and transformed activations (mean over images)",
            "transforms": {f: list(v) for f, v in self.transforms.items()},
            "transform_units": {f: TRANSFORM_UNITS[f] for f in self.transforms},
            "similarity": rounded(self.similarity),
            "spread": rounded(self.spread),
            "scores": {f: self.score(f) for f in self.transforms},
        }
        if self.baseline_similarity is not None and self.baseline_info is not None:
            out["baseline"] = {
                **self.baseline_info.to_dict(),
                "similarity": rounded(self.baseline_similarity),
                "spread": rounded(self.baseline_spread),
                "scores": {f: self.score(f, baseline=True) for f in self.transforms},
            }
        out["warnings"] = list(self.warnings)
        return out

    def to_text(self) -> str:
        """Per layer, the score of each transform (mean similarity over its sizes); with a baseline,
        ``trained / random init``."""
        head = ["layer", "RF px", *self.transforms]
        scores = {f: self.score(f) for f in self.transforms}
        base = {f: self.score(f, baseline=True) for f in self.transforms} if self.baseline_similarity is not None else None

        def cell(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f}"

        rows = []
        for layer in self.layers:
            cells = [layer, str(self.rf_sizes.get(layer) or "global")]
            for f in self.transforms:
                cells.append(cell(scores[f][layer]) + (f" / {cell(base[f][layer])}" if base is not None else ""))
            rows.append(cells)
        widths = [max(len(c) for c in col) for col in zip(head, *rows)]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) for cells in [head, *rows]]
        what = f"{self.info.label}" + (f" / {self.baseline_info.weights_label}" if base is not None and self.baseline_info is not None else "")
        return "\n".join([f"{what}: mean similarity to the original over each transform's sizes ({self.n_images} images)", *lines])

    def figure(self, *, title: str | None = None) -> Any:
        """One panel per transform: similarity against the size of the transform, a line per layer
        (darker = deeper), random initialisation dashed (:func:`cnnlens.tuning.plot_invariance`)."""
        from .plots import plot_invariance

        return plot_invariance(self, title=title)

    def _summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.info.name, "weights": self.info.weights_label, "layers": self.layers, "images": self.n_images}
        if "translation" in self.transforms:
            out["translation_score"] = {k: None if v is None else round(v, 3) for k, v in self.score("translation").items()}
            if self.baseline_similarity is not None:
                out["translation_score_random_init"] = {k: None if v is None else round(v, 3) for k, v in self.score("translation", baseline=True).items()}
        return out


def _flat(record: Any, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    return {layer: record[layer].flatten(1).double() for layer in layers}


def _measure(
    net: nn.Module,
    prep: Preprocessing,
    sources: list[Any],
    layers: list[str],
    transforms: dict[str, list[float]],
    size: int,
    batch_size: int,
    bar: Any,
) -> tuple[dict[str, dict[str, list[float | None]]], dict[str, dict[str, list[float | None]]]]:
    device = model_device(net)
    dtype = model_dtype(net)

    def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = prep.normalize(x.to(device=device, dtype=dtype))
        return _flat(forward_until(net, x, layers), layers)

    with eval_mode(net), torch.no_grad():
        # pass 1: the mean activation of each layer over the original views
        total: dict[str, torch.Tensor] = {}
        for _, x in iter_batches(sources, prep, batch_size=batch_size):
            for layer, a in run(x).items():
                total[layer] = total.get(layer, 0) + a.sum(0)  # type: ignore[operator]
            bar.update(1)
        mean = {layer: t / len(sources) for layer, t in total.items()}
        # pass 2: every view of every image, compared with its original
        sums: dict[str, dict[tuple[str, float], list[float]]] = {layer: {} for layer in layers}
        for source in sources:
            views, labels = transform_views(_frame(source, prep, size), transforms, size)
            acts: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
            for start in range(0, views.shape[0], batch_size):
                for layer, a in run(views[start : start + batch_size]).items():
                    acts[layer].append(a)
            for layer in layers:
                a = torch.cat(acts[layer]) - mean[layer]
                ref, rest = a[0], a[1:]
                denom = ref.norm() * rest.norm(dim=1)
                cos = torch.where(denom > 0, (rest @ ref) / denom.clamp_min(1e-300), torch.full_like(denom, float("nan")))
                for lab, v in zip(labels, cos.tolist()):
                    sums[layer].setdefault(lab, []).append(v)
            bar.update(1)
    similarity: dict[str, dict[str, list[float | None]]] = {}
    spread: dict[str, dict[str, list[float | None]]] = {}
    for layer in layers:
        similarity[layer], spread[layer] = {}, {}
        for family, values in transforms.items():
            sims: list[float | None] = []
            sds: list[float | None] = []
            for v in values:
                if v == _IDENTITY[family]:
                    sims.append(1.0)
                    sds.append(0.0)
                    continue
                vals = [x for x in sums[layer].get((family, float(v)), []) if math.isfinite(x)]
                mu = sum(vals) / len(vals) if vals else None
                sims.append(mu)
                sds.append(math.sqrt(sum((x - mu) ** 2 for x in vals) / len(vals)) if vals and mu is not None else None)
            similarity[layer][family] = sims
            spread[layer][family] = sds
    return similarity, spread


def invariance(
    model: nn.Module,
    images: Any,
    layers: Sequence[str] | str | None = None,
    *,
    transforms: Sequence[str] | dict[str, Sequence[float]] | None = None,
    baseline: bool | nn.Module = True,
    seed: int | None = 0,
    limit: int | None = None,
    size: int | None = None,
    preprocessing: Preprocessing | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> Invariance:
    """How much each layer's activations of real images change under translation, rotation, scale,
    brightness and contrast, for the model and (``baseline``) the same architecture at random init.

    Args:
        model: any image model; left exactly as it was.
        images: a folder (flat or class subfolders), image files, or pixels (at least 2 images).
        layers: dotted layer names, shallow to deep (default: five layers spread over the depth,
            ``cnnlens.default_layers(model, "invert")``).
        transforms: names from ``translation``, ``rotation``, ``scale``, ``brightness``,
            ``contrast`` (default sizes from :func:`default_transforms`), or a dict of name -> sizes
            (shift in pixels, degrees, zoom factor, brightness added, contrast reduction); the
            identity is always added as the first point.
        baseline: also measure the architecture at random initialisation (``True``:
            :func:`~cnnlens.tuning.random_init_like` with ``seed``; skipped when the model is itself a
            random init) or the model given; ``False``: only the model.
        limit: use this many images, spread evenly over the sorted folder.
        size, preprocessing: the input size and normalization (default the model's).
        batch_size: images per forward pass.
        progress: report progress on stderr.

    Returns:
        :class:`Invariance`: ``similarity[layer][family]`` per transform size, ``score(family)``
        per layer, the same for the baseline, and a figure with both.
    """
    if not isinstance(baseline, (bool, nn.Module)):
        raise CnnlensError(f"baseline must be True, False or a model, not {type(baseline).__name__}", param="baseline")
    seed = check_seed(seed)
    batch_size = check_int(batch_size, "batch_size", low=1)
    net, _ = unwrap(model)
    prep = image_preprocessing(model, preprocessing, size)
    side = prep.input_size[-1]
    families = _check_transforms(transforms, side)
    if layers is None:
        layers = default_layers(net, "invert")
    names = list(dict.fromkeys([layers] if isinstance(layers, str) else list(layers)))
    if not names:
        raise CnnlensError("layers is empty; give one or more layer names", param="layers")
    for name in names:
        try:
            get_layer(net, name)
        except CnnlensError as exc:
            raise CnnlensError(f"layers: {exc}", param="layers") from None
    sources = list(select_images(images, limit).values())
    if len(sources) < 2:
        what = f"{images} is one image" if isinstance(images, (str, Path)) and Path(images).is_file() else (
            f"{images} holds {len(sources)} image" + ("" if len(sources) == 1 else "s") if isinstance(images, (str, Path)) else f"{len(sources)} image given"
        )  # fmt: skip
        raise CnnlensError(f"images: {what}; give a folder of at least 2 images (the similarity is centred on their mean activation)", param="images")
    notes = []
    if len(sources) < 8:
        notes.append(f"only {len(sources)} images: the mean activation that centres the similarity is rough; 16 or more are better")
    fields = layer_fields(net, names, prep)
    rf_sizes = {n: (max(rf.size) if isinstance(rf, ReceptiveField) else None) for n, (rf, _) in fields.items()}
    info = model_info(model)
    others: list[nn.Module] = [model]
    base_info = None
    if baseline is not False:
        if baseline is True and info.random_init:
            notes.append("the model is itself a random initialisation: no separate baseline")
        else:
            other = random_init_like(model, seed) if baseline is True else baseline
            others.append(other)
            base_info = model_info(other)
    steps = len(others) * (math.ceil(len(sources) / batch_size) + len(sources))
    results = []
    with progress_bar(steps, f"invariance of {len(names)} layers", enabled=progress, unit="step") as bar:
        for m in others:
            inner, _ = unwrap(m)
            results.append(_measure(inner, prep, sources, names, families, side, batch_size, bar))
    (sim, spread), base = results[0], (results[1] if len(results) > 1 else (None, None))
    return Invariance(
        layers=names,
        transforms=families,
        similarity=sim,
        spread=spread,
        rf_sizes=rf_sizes,
        n_images=len(sources),
        image_size=side,
        info=info,
        baseline_similarity=base[0],
        baseline_spread=base[1],
        baseline_info=base_info,
        warnings=notes,
    )
