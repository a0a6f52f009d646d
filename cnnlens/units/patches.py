"""Maximal dataset patches: the images (and the exact input region) that excite a unit most.

One streaming pass over a folder of images keeps, per channel, a running top-k of the *unit* value
``max over positions of activation[channel]`` with the image and the position where it occurred;
activations of a batch are reduced as soon as they are computed, so memory does not grow with the
number of images. Ties keep the earlier image (a stable sort), so the result equals a brute-force
top-k over all activations.

Each patch is the theoretical receptive-field box of its position (``cnnlens.report(model,
input_size)[layer].receptive_field.box(i, j)``), cut from the preprocessed image and padded where the
box leaves the image with the *neutral colour*: the normalization mean, which normalizes to 0 and is
therefore exactly what the network's own zero padding of its input shows it. Pasting a crop into an
image-sized canvas of that colour and running the model again gives back the recorded activation
(:func:`replay`): the crop holds everything the unit depends on.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import CnnlensError
from ..hooks import eval_mode, forward_until
from ..images import list_images, load_image
from ..layers import layer_name
from ..pixels import Preprocessing
from ..registry import model_device
from ..receptive_field import ReceptiveField

__all__ = ["Patch", "PatchResult", "crop_box", "extract_crops", "load_index", "prepare_image", "replay", "top_patches"]


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


@dataclass
class PatchResult:
    """Top patches per channel, plus everything needed to cut them again (:func:`load_index`)."""

    layer: str
    channels: list[int]
    patches: dict[int, list[Patch]]
    receptive_field: ReceptiveField
    preprocessing: Preprocessing
    input_size: tuple[int, int]
    n_images: int
    mean_activation: dict[int, float]
    model: str | None = None
    weights: str | None = None
    crops: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    projections: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    method: str | None = None
    interior: bool = False

    def all_patches(self) -> list[Patch]:
        return [p for c in self.channels for p in self.patches[c]]

    def to_dict(self) -> dict[str, Any]:
        """The JSON index: enough to cut every crop again and redraw the figure."""
        prep = self.preprocessing
        return {
            "model": self.model,
            "weights": self.weights,
            "layer": self.layer,
            "input_size": list(self.input_size),
            "preprocessing": {
                "resize_size": prep.resize_size,
                "crop_size": prep.crop_size,
                "mean": list(prep.mean),
                "std": list(prep.std),
            },
            "receptive_field": self.receptive_field.to_dict(),
            "n_images": self.n_images,
            "unit": "max over positions of the channel's activation"
            + (" (positions whose receptive field lies inside the image)" if self.interior else ""),
            "interior": self.interior,
            "box": "top, left, bottom, right in the resized and centre-cropped image; bottom/right exclusive; "
            "outside the image the crop is padded with the normalization mean",
            "deconv_method": self.method,
            "channels": [
                {
                    "channel": c,
                    "mean_activation": self.mean_activation.get(c),
                    "patches": [p.to_dict() for p in self.patches[c]],
                }
                for c in self.channels
            ],
        }


def prepare_image(path: str | Path, preprocessing: Preprocessing) -> torch.Tensor:
    """Load ``path`` and resize its shorter side to ``resize_size``, centre-crop ``crop_size``; pixels in [0, 1]."""
    image = load_image(path)
    return preprocessing.resize_and_crop(image).clamp(0, 1).contiguous()


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


class _Images(torch.utils.data.Dataset):
    def __init__(self, paths: Sequence[Path], preprocessing: Preprocessing) -> None:
        self.paths = list(paths)
        self.preprocessing = preprocessing

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        return index, prepare_image(self.paths[index], self.preprocessing)


def image_loader(paths: Sequence[Path], preprocessing: Preprocessing, *, batch_size: int = 32, num_workers: int = 0) -> torch.utils.data.DataLoader:
    """Batches ``(indices, images)`` of preprocessed pixels in [0, 1], in the order of ``paths``."""
    return torch.utils.data.DataLoader(
        _Images(paths, preprocessing), batch_size=batch_size, shuffle=False, num_workers=num_workers
    )


def select_images(folder: str | Path | Sequence[str | Path], limit: int | None = None) -> list[Path]:
    """Images of a folder (flat or class subfolders, sorted) or a list; ``limit`` keeps that many,
    spread evenly over the sorted list so that every class folder has a chance to appear."""
    if isinstance(folder, (str, Path)):
        paths = list_images(folder)
    else:
        paths = [Path(p) for p in folder]
        if not paths:
            raise CnnlensError("no images given")
    if limit is not None:
        if limit < 1:
            raise CnnlensError(f"--limit must be positive, not {limit}")
        if limit < len(paths):
            step = len(paths) / limit
            paths = [paths[int(i * step)] for i in range(limit)]
    return paths


def receptive_field_of(model: nn.Module, layer: str, size: tuple[int, int]) -> ReceptiveField:
    """The receptive field of ``layer`` for a ``(1, 3, *size)`` input (computed on the meta device)."""
    from ..summary import report

    rf = report(model, (1, 3, *size))[layer].receptive_field
    if not isinstance(rf, ReceptiveField):
        raise CnnlensError(
            f"layer {layer!r} has a {rf or 'unknown'} receptive field: its units see the whole image, so there is no patch "
            "to cut; pick a convolutional layer before the global pooling"
        )
    return rf


def top_patches(
    model: nn.Module,
    layer: str | nn.Module,
    images: str | Path | Sequence[str | Path],
    *,
    channels: Sequence[int] | None = None,
    n_channels: int = 8,
    k: int = 9,
    batch_size: int = 32,
    limit: int | None = None,
    preprocessing: Preprocessing | None = None,
    num_workers: int = 0,
    crops: bool = True,
    interior: bool = False,
    progress: bool = False,
) -> PatchResult:
    """The ``k`` images (and receptive-field crops) that excite each channel of ``layer`` most.

    Args:
        model: a model taking normalized images (``preprocessing.normalize``); left unchanged.
        layer: a layer with a ``(B, C, H, W)`` output and a local receptive field.
        images: a folder (flat or class subfolders) or a list of image files.
        channels: the channels to rank; default: the ``n_channels`` channels with the highest mean
            unit value over the images (all channels are tracked during the pass, k values each).
        k: patches per channel.
        limit: use this many images, spread evenly over the sorted list.
        preprocessing: resize/crop sizes and normalization (default: ImageNet, 256 -> 224).
        crops: also cut the crops (a second, small pass reading only the winning images).
        interior: only consider positions whose receptive field lies wholly inside the image (a unit
            is then the max over those). Many channels of trained CNNs respond most to the image
            border, where the network's zero padding makes a strong edge; this ignores them.
        progress: a tqdm bar on stderr.

    Example:
        >>> import torchvision
        >>> net = torchvision.models.alexnet().eval()
        >>> result = top_patches(net, "features.3", "photos/", channels=[0, 5], k=4)  # doctest: +SKIP
        >>> top = result.patches[5][0]  # doctest: +SKIP
        >>> top.image, top.position, top.box, top.activation  # box: (top, left, bottom, right)  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    if k < 1:
        raise CnnlensError(f"--top must be positive, not {k}")
    if batch_size < 1:
        raise CnnlensError(f"--batch-size must be positive, not {batch_size}")
    prep = preprocessing or Preprocessing()
    name = layer_name(model, layer)
    paths = select_images(images, limit)
    size = (prep.crop_size, prep.crop_size)
    rf = receptive_field_of(model, name, size)
    device = model_device(model)
    wanted = None if channels is None else torch.as_tensor(list(channels), dtype=torch.long)
    values = indices = positions = sums = None
    width = 0
    mask: torch.Tensor | None = None
    with eval_mode(model), torch.no_grad():
        bar = tqdm(total=len(paths), desc=f"patches {name}", unit="img", file=sys.stderr, disable=not progress)
        try:
            for batch_idx, x in image_loader(paths, prep, batch_size=batch_size, num_workers=num_workers):
                x = prep.normalize(x.to(device, non_blocking=True))
                act = forward_until(model, x, name)[name]
                if act.dim() != 4:
                    raise CnnlensError(f"layer {name!r} outputs {tuple(act.shape)}, not a (B, C, H, W) map")
                if wanted is not None:
                    if int(wanted.max()) >= act.shape[1] or int(wanted.min()) < 0:
                        raise CnnlensError(f"--channel {wanted.tolist()} out of range: {name!r} has {act.shape[1]} channels")
                    act = act[:, wanted.to(act.device)]
                width = act.shape[-1]
                if interior:
                    if mask is None:
                        mask = _interior_mask(rf, act.shape[-2:], size).to(act.device)
                    act = act.masked_fill(~mask, -math.inf)
                unit, where = act.flatten(2).max(dim=2)  # (B, C): value and first position of the maximum
                unit, where = unit.float().T.cpu(), where.T.cpu()  # (C, B)
                img = batch_idx.view(1, -1).expand_as(unit)
                if values is None:
                    n = unit.shape[0]
                    values = torch.full((n, 0), -math.inf)
                    indices = torch.zeros((n, 0), dtype=torch.long)
                    positions = torch.zeros((n, 0), dtype=torch.long)
                    sums = torch.zeros(n, dtype=torch.float64)
                sums += unit.double().sum(1)
                # running entries precede the batch and come from earlier images: a stable sort keeps
                # earlier images first among equal values, like a brute-force stable top-k
                cand_v = torch.cat([values, unit], 1)
                order = torch.sort(cand_v, dim=1, descending=True, stable=True).indices[:, :k]
                values = cand_v.gather(1, order)
                indices = torch.cat([indices, img], 1).gather(1, order)
                positions = torch.cat([positions, where], 1).gather(1, order)
                bar.update(len(batch_idx))
        finally:
            bar.close()
    assert values is not None and indices is not None and positions is not None and sums is not None
    tracked = wanted.tolist() if wanted is not None else list(range(values.shape[0]))
    means = (sums / len(paths)).tolist()
    mean_of = dict(zip(tracked, means))
    if channels is None:
        rank = sorted(range(len(tracked)), key=lambda r: (-means[r], r))[: max(1, n_channels)]
    else:
        rank = list(range(len(tracked)))
    patches: dict[int, list[Patch]] = {}
    for r in rank:
        c = tracked[r]
        row = []
        for j in range(values.shape[1]):
            v = float(values[r, j])
            if v == -math.inf:
                continue
            pi, pj = divmod(int(positions[r, j]), width)
            row.append(Patch(c, j, str(paths[int(indices[r, j])]), int(indices[r, j]), (pi, pj), rf.box(pi, pj), v))
        patches[c] = row
    result = PatchResult(
        layer=name,
        channels=[tracked[r] for r in rank],
        patches=patches,
        receptive_field=rf,
        preprocessing=prep,
        input_size=size,
        n_images=len(paths),
        mean_activation={c: mean_of[c] for c in patches},
        interior=interior,
    )
    if crops:
        extract_crops(result)
    return result


def _interior_mask(rf: ReceptiveField, shape: Sequence[int], size: tuple[int, int]) -> torch.Tensor:
    """``(H, W)`` bool: positions whose receptive-field box lies inside the ``size`` image."""
    rows = torch.tensor([rf.box(i, 0)[0] >= 0 and rf.box(i, 0)[2] <= size[0] for i in range(shape[0])])
    cols = torch.tensor([rf.box(0, j)[1] >= 0 and rf.box(0, j)[3] <= size[1] for j in range(shape[1])])
    if not rows.any() or not cols.any():
        raise CnnlensError(f"no position of this layer has its {rf.size[0]}x{rf.size[1]} px receptive field inside a {size[0]}x{size[1]} image; drop --interior")
    return rows[:, None] & cols[None, :]


def _images_of(result: PatchResult) -> dict[str, torch.Tensor]:
    return {path: prepare_image(path, result.preprocessing) for path in dict.fromkeys(p.image for p in result.all_patches())}


def extract_crops(result: PatchResult, images: dict[str, torch.Tensor] | None = None) -> PatchResult:
    """Fill ``result.crops``: each patch's receptive-field box cut from its preprocessed image."""
    images = images if images is not None else _images_of(result)
    fill = result.preprocessing.mean
    result.crops = {c: [crop_box(images[p.image], p.box, fill) for p in result.patches[c]] for c in result.channels}
    return result


def add_projections(
    model: nn.Module, result: PatchResult, *, method: str = "deconvnet", batch_size: int = 16, progress: bool = False
) -> PatchResult:
    """Fill ``result.projections``: each patch's unit projected back to pixels (:func:`~cnnlens.units.deconv.project`)
    on its whole image, cut by the same box (zero outside the image). This is Zeiler & Fergus' figure."""
    from tqdm.auto import tqdm

    from .deconv import project

    images = _images_of(result)
    prep = result.preprocessing
    device = model_device(model)
    flat = result.all_patches()
    grads: list[torch.Tensor] = []
    for start in tqdm(range(0, len(flat), batch_size), desc=method, file=sys.stderr, disable=not progress):
        chunk = flat[start : start + batch_size]
        x = prep.normalize(torch.stack([images[p.image] for p in chunk]).to(device))
        proj = project(
            model,
            x,
            result.layer,
            channel=[p.channel for p in chunk],
            position=[p.position for p in chunk],
            method=method,
        )
        grads += [crop_box(g.cpu(), p.box, 0.0) for g, p in zip(proj.gradient, chunk)]
    it = iter(grads)
    result.projections = {c: [next(it) for _ in result.patches[c]] for c in result.channels}
    result.method = method
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
    prep = result.preprocessing
    device = model_device(model)
    flat = result.all_patches()
    crops = [crop for c in result.channels for crop in result.crops[c]]
    out = []
    with eval_mode(model), torch.no_grad():
        for start in range(0, len(flat), batch_size):
            batch, canv = flat[start : start + batch_size], []
            for p, crop in zip(batch, crops[start : start + batch_size]):
                box = p.box
                if shrink:
                    s = shrink
                    crop = crop[:, s:-s, s:-s]
                    box = (box[0] + s, box[1] + s, box[2] - s, box[3] - s)
                canv.append(paste_box(crop, box, result.input_size, prep.mean))
            x = prep.normalize(torch.stack(canv).to(device))
            act = forward_until(model, x, result.layer)[result.layer]
            for b, p in enumerate(batch):
                out.append(float(act[b, p.channel, p.position[0], p.position[1]]))
    return torch.tensor(out)


def load_index(index: dict[str, Any], *, crops: bool = True) -> PatchResult:
    """Rebuild a :class:`PatchResult` (and its crops, from the image files) from :meth:`PatchResult.to_dict`."""
    try:
        prep_d = index["preprocessing"]
        prep = Preprocessing(
            mean=tuple(prep_d["mean"]), std=tuple(prep_d["std"]), crop_size=int(prep_d["crop_size"]), resize_size=int(prep_d["resize_size"])
        )
        rf_d = index["receptive_field"]
        rf = ReceptiveField(tuple(rf_d["size"]), tuple(rf_d["stride"]), tuple(rf_d["padding"]), rf_d.get("aligned", True))
        channels = [int(c["channel"]) for c in index["channels"]]
        patches = {
            int(c["channel"]): [
                Patch(int(c["channel"]), int(p["rank"]), p["image"], int(p["image_index"]), tuple(p["position"]), tuple(p["box"]), float(p["activation"]))
                for p in c["patches"]
            ]
            for c in index["channels"]
        }
        result = PatchResult(
            layer=index["layer"],
            channels=channels,
            patches=patches,  # type: ignore[arg-type]
            receptive_field=rf,
            preprocessing=prep,
            input_size=tuple(index["input_size"]),  # type: ignore[arg-type]
            n_images=int(index["n_images"]),
            mean_activation={int(c["channel"]): c.get("mean_activation") for c in index["channels"]},
            model=index.get("model"),
            weights=index.get("weights"),
            method=index.get("deconv_method"),
            interior=bool(index.get("interior", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CnnlensError(f"not a cnnlens patches index: missing or bad {exc}") from None
    if crops:
        extract_crops(result)
    return result
