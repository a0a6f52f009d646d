"""What a patches run gives: the :class:`Patch` and :class:`PatchResult` (written as an index that
:func:`load_index` reads back), the receptive-field boxes cut out of the images and pasted back
(:func:`crop_box`, :func:`paste_box`, :func:`replay`), the border rule (:func:`border_mask`) and
the projections of the patches (:func:`add_projections`). The mining itself is
:mod:`cnnlens.units.patches`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import CnnlensError
from ..folders import prepare_image, select_images
from ..hooks import eval_mode, forward_until
from ..layers import model_device, model_dtype
from ..pixelnet import unwrap
from ..pixels import Preprocessing
from ..progress import progress_bar
from ..receptive_field import ReceptiveField
from ..registry import info_label
from ..results import Result

__all__ = [
    "MIN_INSIDE",
    "Patch",
    "PatchResult",
    "add_projections",
    "border_mask",
    "crop_box",
    "extract_crops",
    "load_index",
    "paste_box",
    "patch_images",
    "receptive_field_from_dict",
    "replay",
]

MIN_INSIDE = 0.5  # default share of a unit's receptive field that must lie inside the image
BOX_RULE = (
    "top, left, bottom, right in the resized and centre-cropped image; bottom/right exclusive; "
    "outside the image the crop is padded with the normalization mean"
)


@dataclass(frozen=True)
class Patch:
    """One of the top-k of a channel: where in which image, and how strong."""

    channel: int
    rank: int
    image: str
    image_index: int
    position: tuple[int, int]  # (row, col) in the layer's output
    box: tuple[int, int, int, int]  # (top, left, bottom, right) in the preprocessed image, may leave it
    activation: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "image": self.image,
            "image_index": self.image_index,
            "position": list(self.position),
            "box": list(self.box),
            "activation": self.activation,
        }


@dataclass(repr=False)
class PatchResult(Result):
    """Top patches per channel, plus everything needed to cut them again (:func:`load_index`).

    ``crops[c]`` and ``projections[c]`` hold ``(C, h, w)`` tensors on the CPU, in the order of
    ``patches[c]``. ``info`` is the model's ``model_info(model).to_dict()`` (model, source, weights,
    random_init). ``dead_channels`` never fired (their best unit is <= 0) on these images.
    """

    layer: str
    channels: list[int]
    patches: dict[int, list[Patch]]
    receptive_field: ReceptiveField
    preprocessing: Preprocessing
    input_size: tuple[int, int]
    n_images: int
    mean_activation: dict[int, float | None]
    info: dict[str, Any] = field(default_factory=dict)
    min_inside: float = MIN_INSIDE
    crops: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    projections: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    method: str | None = None
    warnings: list[str] = field(default_factory=list)
    sources: dict[str, Any] = field(default_factory=dict)  # image name -> path or (C, H, W) pixels
    by: str = "activation"  # what ranks the images: "activation", or "relevance" for a class (then Patch.activation is the relevance)
    target: int | None = None  # the class explained by relevance; None: each image's top class
    classes: dict[int, list[tuple[int, float]]] = field(default_factory=dict)  # by relevance: per channel, the classes it serves most, with shares
    class_names: dict[int, str] = field(default_factory=dict)  # names of the classes in ``classes`` (where the weights have them)

    @property
    def ranked_by_text(self) -> str:
        """`` by relevance for class 281`` (or for each image's top class); empty for activation."""
        if self.by not in ("activation", "relevance"):
            return f" by {self.by} activation"
        if self.by != "relevance":
            return ""
        return " by LRP relevance for " + ("each image's top class" if self.target is None else f"class {self.target}")

    @property
    def k(self) -> int:
        return max((len(v) for v in self.patches.values()), default=0)

    @property
    def dead_channels(self) -> list[int]:
        return [c for c in self.channels if not self.patches[c] or self.patches[c][0].activation <= 0]

    def unit_name(self, channel: int) -> str:
        """``features.9:3``, or ``features.9 concept 3`` for maps read from the layer (``by``)."""
        return f"{self.layer}:{channel}" if self.by in ("activation", "relevance") else f"{self.layer} {self.by} {channel}"

    def all_patches(self) -> list[Patch]:
        return [p for c in self.channels for p in self.patches[c]]

    def to_dict(self) -> dict[str, Any]:
        """The JSON index: enough to cut every crop again and redraw the figure."""
        dead = set(self.dead_channels)
        return {
            **self.info,
            "layer": self.layer,
            "units": [self.unit_name(c) for c in self.channels],
            "input_size": list(self.input_size),
            "preprocessing": self.preprocessing.to_dict(),
            "receptive_field": self.receptive_field.to_dict(),
            "n_images": self.n_images,
            "unit_rule": f"max over positions of the {self.by if self.by not in ('activation', 'relevance') else 'channel'}'s "
            f"{'LRP relevance' if self.by == 'relevance' else 'activation'}, positions with at least "
            f"{self.min_inside:g} of the receptive field inside the image (or the largest share any position has)",
            "ranked_by": self.by,
            **({"target": self.target, "target_rule": "the class given" if self.target is not None else "each image's top class"} if self.by == "relevance" else {}),
            "min_inside": self.min_inside,
            "box": BOX_RULE,
            "deconv_method": self.method,
            "dead_channels": sorted(dead),
            "warnings": list(self.warnings),
            "channels": [
                {
                    "channel": c,
                    "mean_activation": self.mean_activation.get(c),
                    "dead": c in dead,
                    **({"classes": [{"class": k, "name": self.class_names.get(k), "share": v} for k, v in self.classes.get(c, [])]} if self.by == "relevance" else {}),
                    "patches": [p.to_dict() for p in self.patches[c]],
                }
                for c in self.channels
            ],
        }

    def figure(self, *, percentile: float = 99.5, title: str | None = None) -> Any:
        """One row per channel: its crops, strongest first (beside their projections when computed)."""
        from .plots import plot_patches

        if not self.crops:
            extract_crops(self)
        return plot_patches(self, percentile=percentile, title=title)

    def _summary(self) -> dict[str, Any]:
        return {
            "model": self.info.get("model"),
            "weights": self.info.get("weights"),
            "layer": self.layer,
            "channels": self.channels,
            "k": self.k,
            "n_images": self.n_images,
            "top_activation": {c: round(self.patches[c][0].activation, 4) for c in self.channels if self.patches[c]},
            **({"warnings": self.warnings} if self.warnings else {}),
        }

    @property
    def label(self) -> str:
        return info_label(self.info)


# -- geometry ----------------------------------------------------------------------------------------


def crop_box(image: torch.Tensor, box: Sequence[int], fill: Sequence[float] | float = 0.0) -> torch.Tensor:
    """Cut ``box = (top, left, bottom, right)`` out of ``(C, H, W)``; parts outside the image get ``fill``."""
    top, left, bottom, right = (int(v) for v in box)
    c, h, w = image.shape
    out = torch.empty(c, bottom - top, right - left, dtype=image.dtype, device=image.device)
    out[:] = torch.as_tensor(fill, dtype=image.dtype, device=image.device).reshape(-1, 1, 1)
    t, lft, b, r = max(top, 0), max(left, 0), min(bottom, h), min(right, w)
    if t < b and lft < r:
        out[:, t - top : b - top, lft - left : r - left] = image[:, t:b, lft:r]
    return out


def paste_box(crop: torch.Tensor, box: Sequence[int], size: tuple[int, int], fill: Sequence[float] | float) -> torch.Tensor:
    """Inverse of :func:`crop_box`: a ``(C, *size)`` canvas of ``fill`` with ``crop`` at ``box`` (clipped)."""
    top, left, bottom, right = (int(v) for v in box)
    h, w = size
    canvas = torch.empty(crop.shape[0], h, w, dtype=crop.dtype, device=crop.device)
    canvas[:] = torch.as_tensor(fill, dtype=crop.dtype, device=crop.device).reshape(-1, 1, 1)
    t, lft, b, r = max(top, 0), max(left, 0), min(bottom, h), min(right, w)
    if t < b and lft < r:
        canvas[:, t:b, lft:r] = crop[:, t - top : b - top, lft - left : r - left]
    return canvas


def border_mask(rf: ReceptiveField, shape: Sequence[int], size: tuple[int, int], min_inside: float = MIN_INSIDE) -> torch.Tensor:
    """``(H, W)`` bool: the positions of an ``H x W`` map that count as units (see the module docstring).

    A position counts when the share of its receptive field's area inside the ``size`` image is at
    least ``min_inside``, or, when no position reaches that, the largest share any position has.
    """

    def inside(axis: int, n: int) -> torch.Tensor:
        extent = rf.size[axis]
        spans = []
        for i in range(n):
            box = rf.box(i, 0) if axis == 0 else rf.box(0, i)
            lo, hi = box[axis], box[axis + 2]
            spans.append(max(0, min(hi, size[axis]) - max(lo, 0)) / extent)
        return torch.tensor(spans, dtype=torch.float64)

    share = inside(0, shape[0])[:, None] * inside(1, shape[1])[None, :]
    threshold = min(float(min_inside), float(share.max()))
    return share >= threshold - 1e-9



def receptive_field_from_dict(data: dict[str, Any]) -> ReceptiveField:
    """The :class:`ReceptiveField` written by its ``to_dict()``."""
    return ReceptiveField(tuple(data["size"]), tuple(data["stride"]), tuple(data["padding"]), data.get("aligned", True))  # type: ignore[arg-type]


def patch_images(*results: PatchResult) -> dict[str, torch.Tensor]:
    """The preprocessed images of the patches of ``results``, each read once."""
    wanted = dict.fromkeys(p.image for result in results for p in result.all_patches())
    sources = {name: source for result in results for name, source in result.sources.items()}
    result = results[0]
    out = {}
    for name in wanted:
        source = sources.get(name)
        if source is None:
            if name.startswith("images["):
                raise CnnlensError(f"images: the patches come from in-memory images ({name}); pass them again as images=", param="images")
            source = Path(name)
        out[name] = prepare_image(source, result.preprocessing)
    return out


def extract_crops(result: PatchResult, images: dict[str, torch.Tensor] | None = None) -> PatchResult:
    """Fill ``result.crops``: each patch's receptive-field box cut from its preprocessed image."""
    images = images if images is not None else patch_images(result)
    fill = result.preprocessing.mean
    result.crops = {c: [crop_box(images[p.image], p.box, fill) for p in result.patches[c]] for c in result.channels}
    return result


def add_projections(
    model: nn.Module, result: PatchResult, *, method: str = "deconvnet", batch_size: int = 16, progress: bool = True,
    images: dict[str, torch.Tensor] | None = None,
) -> PatchResult:
    """Fill ``result.projections``: each patch's unit projected back to pixels
    (:func:`~cnnlens.units.unit_gradients`) on its whole image, cut by the same box (zero outside the
    image). This is Zeiler & Fergus' figure."""
    from .deconv import check_methods, unit_gradients

    (method,) = check_methods(method, "method")
    images = images if images is not None else patch_images(result)
    flat = result.all_patches()
    grads: list[torch.Tensor] = []
    with progress_bar(len(flat), f"{method} {result.layer}", enabled=progress, unit="patch") as bar:
        for start in range(0, len(flat), batch_size):
            chunk = flat[start : start + batch_size]
            proj = unit_gradients(
                model,
                torch.stack([images[p.image] for p in chunk]),
                result.layer,
                channel=[p.channel for p in chunk],
                position=[p.position for p in chunk],
                method=method,
                preprocessing=result.preprocessing,
            )
            grads += [crop_box(g, p.box, 0.0) for g, p in zip(proj.gradient, chunk)]
            bar.update(len(chunk))
    it = iter(grads)
    result.projections = {c: [next(it) for _ in result.patches[c]] for c in result.channels}
    result.method = method
    if not result.crops:
        extract_crops(result, images)
    return result


def replay(model: nn.Module, result: PatchResult, *, batch_size: int = 16, shrink: int = 0) -> torch.Tensor:
    """Run the model on each crop alone and read the unit again; returns the values in
    :meth:`PatchResult.all_patches` order.

    Each crop is pasted at its box into an image-sized canvas of the neutral colour (so the
    network's geometry, and its padding at the image border, are those of the original pass),
    and nothing else of the image is kept. ``shrink`` cuts that many pixels from every side of the
    box first (a control: then the values change).
    """
    if not result.crops:
        extract_crops(result)
    net, _ = unwrap(model)
    prep = result.preprocessing
    device = model_device(net)
    dtype = model_dtype(net)
    flat = result.all_patches()
    crops = [crop for c in result.channels for crop in result.crops[c]]
    out = []
    with eval_mode(net), torch.no_grad():
        for start in range(0, len(flat), batch_size):
            batch, canv = flat[start : start + batch_size], []
            for p, crop in zip(batch, crops[start : start + batch_size]):
                box = p.box
                if shrink:
                    s = shrink
                    crop = crop[:, s:-s, s:-s]
                    box = (box[0] + s, box[1] + s, box[2] - s, box[3] - s)
                canv.append(paste_box(crop, box, result.input_size, prep.mean))
            x = prep.normalize(torch.stack(canv).to(device, dtype=dtype))
            act = forward_until(net, x, result.layer)[result.layer]
            for b, p in enumerate(batch):
                out.append(float(act[b, p.channel, p.position[0], p.position[1]]))
    return torch.tensor(out)


def load_index(
    index: dict[str, Any] | str | Path,
    *,
    model: nn.Module | None = None,
    method: str | None = None,
    images: Any = None,
    crops: bool = True,
    progress: bool = True,
) -> PatchResult:
    """Rebuild a :class:`PatchResult` from its index (:meth:`PatchResult.to_dict`, or the JSON file
    holding it), cutting the crops again from the image files.

    Args:
        model: needed for projections: with ``method`` (or the index's ``deconv_method``) each
            patch is projected again.
        images: the in-memory images when the index was made from pixels (names ``images[i]``).
    """
    if isinstance(index, (str, Path)):
        path = Path(index).expanduser()
        try:
            index = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CnnlensError(f"index: cannot read {path}: {exc}".splitlines()[0], param="index") from None
    if not isinstance(index, dict):
        raise CnnlensError("index: not a cnnlens patches index (a JSON object)", param="index")
    try:
        prep_d = index["preprocessing"]
        int(prep_d["crop_size"])
        prep = Preprocessing.from_dict({"source": "patches index", **prep_d})
        rf = receptive_field_from_dict(index["receptive_field"])
        channels = [int(c["channel"]) for c in index["channels"]]
        patches = {
            int(c["channel"]): [
                Patch(int(c["channel"]), int(p["rank"]), str(p["image"]), int(p["image_index"]), tuple(p["position"]), tuple(p["box"]), float(p["activation"]))
                for p in c["patches"]
            ]
            for c in index["channels"]
        }
        result = PatchResult(
            layer=str(index["layer"]),
            channels=channels,
            patches=patches,  # type: ignore[arg-type]
            receptive_field=rf,  # type: ignore[arg-type]
            preprocessing=prep,
            input_size=tuple(index["input_size"]),  # type: ignore[arg-type]
            n_images=int(index["n_images"]),
            mean_activation={int(c["channel"]): c.get("mean_activation") for c in index["channels"]},
            info={key: index.get(key) for key in ("model", "source", "weights", "random_init")},
            min_inside=float(index.get("min_inside", 0.0)),
            warnings=[str(w) for w in index.get("warnings", [])],
            by=str(index.get("ranked_by", "activation")),
            target=None if index.get("target") is None else int(index["target"]),
            classes={int(c["channel"]): [(int(k["class"]), float(k["share"])) for k in c.get("classes", [])] for c in index["channels"] if "classes" in c},
            class_names={int(k["class"]): str(k["name"]) for c in index["channels"] for k in c.get("classes", []) if k.get("name")},
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CnnlensError(f"index: not a cnnlens patches index (missing or bad {exc})", param="index") from None
    if images is not None:
        result.sources = select_images(images)
    method = method or index.get("deconv_method")
    if method is not None and model is not None:
        return add_projections(model, result, method=method, progress=progress)
    if crops:
        extract_crops(result)
    return result
