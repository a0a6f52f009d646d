"""Maximal dataset patches: the images (and the exact input region) that excite a unit most.

One streaming pass over the images keeps, per channel, a running top-k of the *unit* value
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

**Border units.** Many channels of trained CNNs respond most at the image border, where the zero
padding makes a strong edge; their best crops would be mostly padding. So by default a position
counts only when at least half of its receptive field (by area) lies inside the image
(``min_inside=0.5``); where no position of the layer reaches that share (a field much larger than
the image), the positions with the largest share count. ``min_inside=0`` ranks every position,
``min_inside=1`` only fields wholly inside the image.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..address import parse_units
from ..checks import check_int, check_number
from ..distributed import (
    ExactSum,
    KeyedSum,
    Job,
    Partial,
    Sharding,
    TopK,
    fingerprint,
    is_main,
    model_fingerprint,
    register_state,
    run,
)
from ..errors import CnnlensError, did_you_mean
from ..folders import iter_batches, select_images
from ..geometry import check_spatial_map, layers_geometry
from ..hooks import eval_mode, forward_until
from ..layers import model_device, model_dtype
from ..pixelnet import image_preprocessing, unwrap
from ..pixels import Preprocessing
from ..receptive_field import ReceptiveField
from ..registry import default_layers, model_info
from ..results import Result
from .patch_results import (
    MIN_INSIDE,
    Patch,
    PatchResult,
    add_projections,
    border_mask,
    extract_crops,
    patch_images,
    receptive_field_from_dict,
)

__all__ = ["RANKINGS", "PatchSet", "PatchSettings", "PatchSetup", "PatchState", "Readout", "check_patch_layer", "top_patches", "top_patches_layers", "top_patches_of"]

RANKINGS = ("activation", "relevance")  # what ranks a unit's images (PatchSettings.by)


@dataclass(frozen=True)
class Readout:
    """Maps read from a layer's output before its units are ranked: ``maps(output)`` turns the
    ``(B, C, H, W)`` output into ``(B, n, H, W)`` maps (one per concept direction, say), whose
    units are ranked and cut like channels (:func:`top_patches_of`). ``kind`` names the maps in
    results and figures (``"concept"``); ``key`` identifies them for the shares of a run."""

    kind: str
    n: int
    maps: Any  # Callable[[torch.Tensor], torch.Tensor]
    key: str


# -- mining ------------------------------------------------------------------------------------------


def _layer_requests(model: nn.Module, unit: Any) -> list[tuple[str, list[int] | None]]:
    """The units asked for, grouped by layer in order of first mention: ``(layer, channels)`` with
    ``channels`` None for a whole layer."""
    from ..address import resolve_unit

    units = [resolve_unit(u, model) for u in parse_units(unit)]
    if any(u.is_logits for u in units):
        raise CnnlensError("unit: logits have no receptive field to cut; give a spatial layer (LAYER or LAYER:CHANNEL)", param="unit")
    if any(u.position is not None for u in units):
        raise CnnlensError("unit: a patch unit is the maximum over positions; give LAYER or LAYER:CHANNEL without @Y,X", param="unit")
    requests = []
    for layer in dict.fromkeys(u.layer for u in units):
        mine = [u for u in units if u.layer == layer]
        channels = [u.channel for u in mine if u.channel is not None]
        if channels and len(channels) != len(mine):
            raise CnnlensError(f"unit: give either the layer {layer} or channels of it (LAYER:CHANNEL), not both", param="unit")
        requests.append((layer, list(dict.fromkeys(channels)) if channels else None))
    return requests


def check_patch_layer(name: str, receptive_field: ReceptiveField | str | None, shape: Sequence[int] | None, param: str = "unit") -> None:
    """Refuse, in one line naming ``param``, a layer whose units have no patch to cut: an output that
    is not a ``(B, C, H, W)`` map, or a receptive field that is global (or cannot be followed)."""
    check_spatial_map(name, shape, param)
    if not isinstance(receptive_field, ReceptiveField):
        raise CnnlensError(
            f"{param}: layer {name!r} has a {receptive_field or 'unknown'} receptive field: its units see the whole image, so there is "
            "no patch to cut; pick a convolutional layer before the global pooling",
            param=param,
        )


@dataclass(frozen=True)
class PatchSettings:
    """How :func:`top_patches` reads, ranks and shows its patches.

    - ``batch_size``: images per forward pass; ``workers``: threads that read and resize images
      ahead of the model.
    - ``min_inside``: the least share of a unit's receptive field that lies inside the image for its
      position to count (see the module docstring): 0.5 keeps crops mostly image; 0 ranks every
      position; 1 only fields wholly inside.
    - ``crops``: also cut the crops (a second, small pass reading only the winning images).
    - ``method``: also project each patch's unit back to pixels with ``deconvnet``, ``guided`` or
      ``gradient`` (the Zeiler & Fergus figure).
    - ``by``: rank units by their ``"activation"`` (activation maximization, Zeiler & Fergus) or by
      their ``"relevance"`` for a class (relevance maximization, Achtibat et al. 2023): the LRP
      relevance (:mod:`cnnlens.relevance`, default composite) arriving at the unit when each image's
      ``target`` class (None: its predicted class) is explained. Either way a channel's score on
      an image is its largest value over positions, and its patch is cut around that position.
      By relevance, the run also sums each channel's relevance per explained class: the classes
      that use the channel most.
    """

    batch_size: int = 32
    workers: int = 0
    min_inside: float = MIN_INSIDE
    crops: bool = True
    method: str | None = None
    by: str = "activation"
    target: int | None = None


def top_patches(
    model: nn.Module,
    unit: Any,
    images: Any,
    *,
    k: int = 9,
    n_channels: int = 8,
    limit: int | None = None,
    size: int | None = None,
    settings: PatchSettings | None = None,
    preprocessing: Preprocessing | None = None,
    progress: bool = True,
    sharding: Sharding | None = None,
) -> PatchResult | Partial:
    """The ``k`` images (and receptive-field crops) that excite each channel of a layer most.

    Args:
        model: any image model (e.g. from :func:`cnnlens.create_model`); left exactly as it was.
        unit: ``LAYER`` (rank the ``n_channels`` channels with the highest mean unit value), or
            ``LAYER:CHANNEL`` / a list of them (those channels); ``None``: the model's last layer
            with a spatial output. The layer needs a ``(B, C, H, W)`` output and a local receptive
            field. Several layers at once: :func:`top_patches_layers`.
        images: a folder (flat or class subfolders), image files, or pixels in [0, 1] (an
            ``(N, C, H, W)`` tensor or a list of images). Files are resized and centre-cropped like
            the model's weights expect (``preprocessing``); a tensor is mined at its own size (the
            one rule for sizes: docs/architecture.md).
        k: patches per channel.
        n_channels: channels shown when ``unit`` is a whole layer.
        limit: use this many images, spread evenly over the sorted list (:func:`cnnlens.folders.spread`).
        size: square side to resize and crop to instead of the preprocessing's.
        settings: :class:`PatchSettings`: batch size, reading threads, the border rule
            (``min_inside``), whether to cut crops and project the patches back to pixels.
        preprocessing: resize, crop and normalization (default: ``model_info(model).preprocessing``).
        progress: report progress on stderr (a bar on a terminal, a line every 10 s elsewhere).
        sharding: :class:`~cnnlens.distributed.Sharding`: under torchrun each process mines its share
            (``distributed``); ``shard="I/N"`` mines one share and returns its
            :class:`~cnnlens.distributed.Partial` state; ``checkpoint`` saves and resumes.

    The result is the same, byte for byte, however the images were shared among processes, shards
    or resumed runs: the top-k are re-ranked by value, ties by global image index, and the mean
    unit values are exact sums rounded once.

    Raises:
        CnnlensError: bad arguments, unknown layer or channel, a layer with a global receptive field,
            an unreadable image -- all before or instead of a partial result.

    Example:
        >>> import cnnlens
        >>> net = cnnlens.create_model("alexnet", seed=0)
        >>> result = top_patches(net, ["features.3:0", "features.3:5"], "photos/", k=4)  # doctest: +SKIP
        >>> top = result.patches[5][0]  # doctest: +SKIP
        >>> top.image, top.position, top.box, top.activation  # box: (top, left, bottom, right)  # doctest: +SKIP
    """
    net, _ = unwrap(model)
    if unit is None:
        unit = default_layers(net, "last_spatial")[0]
    if len(_layer_requests(net, unit)) > 1:
        layers = ", ".join(layer for layer, _ in _layer_requests(net, unit))
        raise CnnlensError(f"unit: patches rank one layer at a time, not {layers}; several layers in one pass: top_patches_layers", param="unit")
    out = _mine(
        model, unit, images, k=k, n_channels=n_channels, limit=limit, size=size, settings=settings, preprocessing=preprocessing,
        progress=progress, sharding=sharding, multi=False,
    )  # fmt: skip
    return out if isinstance(out, Partial) else next(iter(out.layers.values()))


def top_patches_layers(
    model: nn.Module,
    units: Any,
    images: Any,
    *,
    k: int = 9,
    n_channels: int = 8,
    limit: int | None = None,
    size: int | None = None,
    settings: PatchSettings | None = None,
    preprocessing: Preprocessing | None = None,
    progress: bool = True,
    sharding: Sharding | None = None,
) -> PatchSet | Partial:
    """:func:`top_patches` of several layers in ONE streaming pass over the images.

    ``units`` is a list of ``LAYER`` and ``LAYER:CHANNEL`` addresses over any number of layers (per
    layer either the whole layer or channels of it). Each image goes through the network once, up
    to the deepest layer asked for; every layer's top-k is kept from that pass. The result of each
    layer equals :func:`top_patches` of that layer alone, byte for byte (same ranking, ties and
    sums); the other arguments mean what they mean there.

    Example:
        >>> import cnnlens, torch
        >>> net = cnnlens.create_model("squeezenet1_0", seed=0)
        >>> found = top_patches_layers(net, ["features.3", "features.7:0"], torch.rand(6, 3, 64, 64), k=2, progress=False)
        >>> list(found.layers), found["features.7"].channels
        (['features.3', 'features.7'], [0])
    """
    return _mine(
        model, units, images, k=k, n_channels=n_channels, limit=limit, size=size, settings=settings, preprocessing=preprocessing,
        progress=progress, sharding=sharding, multi=True,
    )  # fmt: skip


def top_patches_of(
    model: nn.Module,
    layer: str,
    readout: Readout,
    images: Any,
    *,
    k: int = 9,
    limit: int | None = None,
    size: int | None = None,
    settings: PatchSettings | None = None,
    preprocessing: Preprocessing | None = None,
    progress: bool = True,
    sharding: Sharding | None = None,
) -> PatchResult:
    """:func:`top_patches` of maps read from ``layer``'s output (a :class:`Readout`: concept
    activations, say) instead of its channels: the same streaming pass, border rule, ranking, ties
    and receptive-field crops; every one of the ``readout.n`` maps is kept. Ranked by activation
    only; ``sharding`` takes ``distributed`` (torchrun), not ``shard`` or ``checkpoint``."""
    s = settings or PatchSettings()
    if s.by != "activation":
        raise CnnlensError(f"by: maps read from a layer are ranked by their activation, not by {s.by}", param="by")
    sharding = sharding or Sharding()
    if sharding.shard is not None or sharding.checkpoint is not None:
        raise CnnlensError("shard: maps read from a layer are mined in one run (torchrun shares it); shard and checkpoint are not taken here", param="shard")
    out = _mine(
        model, layer, images, k=k, n_channels=readout.n, limit=limit, size=size, settings=s, preprocessing=preprocessing,
        progress=progress, sharding=sharding, multi=False, readout=readout,
    )  # fmt: skip
    assert isinstance(out, PatchSet)
    return next(iter(out.layers.values()))


def _mine(
    model: nn.Module,
    units: Any,
    images: Any,
    *,
    k: int,
    n_channels: int,
    limit: int | None,
    size: int | None,
    settings: PatchSettings | None,
    preprocessing: Preprocessing | None,
    progress: bool,
    sharding: Sharding | None,
    multi: bool,
    readout: Readout | None = None,
) -> PatchSet | Partial:
    from .deconv import check_methods

    s = settings or PatchSettings()
    batch_size, workers, min_inside, crops, method = s.batch_size, s.workers, s.min_inside, s.crops, s.method
    if s.by not in RANKINGS:
        raise CnnlensError(f"by: rank units by {' or '.join(RANKINGS)}, not {s.by!r}", param="by")
    target = None if s.target is None else check_int(s.target, "target", low=0)
    sharding = sharding or Sharding()
    shard = sharding.shard

    k = check_int(k, "k", low=1, high=100_000)
    n_channels = check_int(n_channels, "n_channels", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1, high=65_536)
    workers = check_int(workers, "workers", low=0, high=256)
    min_inside = check_number(min_inside, "min_inside", low=0.0, high=1.0)
    if method is not None:
        (method,) = check_methods(method, "method")
        if shard is not None:
            raise CnnlensError(
                "method: projections need the merged result; merge the shares, then load_index(merged, model=..., method=...)", param="method"
            )
    net, _ = unwrap(model)
    prep = image_preprocessing(model, preprocessing, size, images)
    requests = _layer_requests(net, units)
    sources = select_images(images, limit)
    side = (int(prep.crop_size), int(prep.crop_size))  # type: ignore[arg-type]
    geometry = layers_geometry(net, [name for name, _ in requests], side, prep.channels)
    setups, masks = [], []
    for name, wanted_list in requests:
        rf, shape = geometry[name]
        check_patch_layer(name, rf, shape, "unit")
        if readout is not None:
            if wanted_list is not None:
                raise CnnlensError(f"unit: give the layer {name}, not channels of it: the maps are read from the whole output", param="unit")
            wanted_list = list(range(readout.n))
        elif wanted_list is not None and max(wanted_list) >= shape[1]:
            bad = [c for c in wanted_list if c >= shape[1]]
            raise CnnlensError(f"unit: channel {bad[0]} out of range, {name} has channels 0..{shape[1] - 1}", param="unit")
        setups.append(
            PatchSetup(
                layer=name,
                tracked=wanted_list if wanted_list is not None else list(range(int(shape[1]))),
                given=wanted_list is not None,
                n_channels=n_channels,
                k=k,
                receptive_field=rf,
                preprocessing=prep,
                input_size=side,
                width=int(shape[3]),
                n_images=len(sources),
                info=model_info(model).to_dict(),
                min_inside=min_inside,
                by=s.by if readout is None else readout.kind,
                target=target,
                categories=list(model_info(model).categories or []) if s.by == "relevance" else [],
            )
        )
        masks.append(border_mask(rf, shape[2:], side, min_inside))
    job = _patch_job(net, setups, masks, sources, batch_size, workers, multi, readout)
    part = run(job, distributed=sharding.distributed, shard=shard, checkpoint=sharding.checkpoint, progress=progress)
    if shard is not None:
        return part
    found = PatchSet.of(setups, part.state, sources)
    if crops or method is not None:
        images_read = patch_images(*found.layers.values())
        for result in found.layers.values():
            extract_crops(result, images_read)
    if method is not None:
        for result in found.layers.values():
            add_projections(model, result, method=method, batch_size=min(batch_size, 16), progress=progress and is_main(), images=images_read)
    return found


@dataclass(repr=False)
class PatchSet(Result):
    """What :func:`top_patches_layers` returns: one :class:`PatchResult` per layer, in the order
    asked; ``found["features.3"]`` is one of them."""

    layers: dict[str, PatchResult]

    @classmethod
    def of(cls, setups: Sequence[PatchSetup], state: PatchState, sources: dict[str, Any] | None = None) -> PatchSet:
        """The results of the layers of one run from its merged state (rows in the order of ``setups``)."""
        layers, start = {}, 0
        for setup in setups:
            stop = start + len(setup.tracked)
            layers[setup.layer] = setup.result(state.select(start, stop), sources)
            start = stop
        if start != state.top.rows:
            raise CnnlensError(f"the state holds {state.top.rows} rows, the layers track {start}")
        return cls(layers=layers)

    def __getitem__(self, layer: str) -> PatchResult:
        if layer not in self.layers:
            raise CnnlensError(f"layer {layer!r} was not mined{did_you_mean(layer, list(self.layers))}", param="layer")
        return self.layers[layer]

    @property
    def info(self) -> dict[str, Any]:
        return next(iter(self.layers.values())).info if self.layers else {}

    @property
    def warnings(self) -> list[str]:
        return [w for r in self.layers.values() for w in r.warnings]

    def to_dict(self) -> dict[str, Any]:
        return {**self.info, "layers": {name: r.to_dict() for name, r in self.layers.items()}}

    def figure(self, *, layer: str | None = None, **kwargs: Any) -> Any:
        """The figure of one layer (default: the first): see :meth:`PatchResult.figure`."""
        return self[layer if layer is not None else next(iter(self.layers))].figure(**kwargs)

    def _summary(self) -> dict[str, Any]:
        return {
            "model": self.info.get("model"),
            "weights": self.info.get("weights"),
            "layers": {name: r.channels for name, r in self.layers.items()},
            "n_images": next(iter(self.layers.values())).n_images if self.layers else 0,
        }


@dataclass(frozen=True)
class PatchSetup:
    """What a patches run needs to turn its state into a :class:`PatchResult`; as JSON, it is part
    of the settings every share of the run must agree on."""

    layer: str
    tracked: list[int]  # the channels whose units are ranked: those given, or all of the layer
    given: bool  # channels given (shown as given) rather than the n_channels strongest by mean
    n_channels: int
    k: int
    receptive_field: ReceptiveField
    preprocessing: Preprocessing
    input_size: tuple[int, int]
    width: int  # of the layer's output: positions are row * width + col
    n_images: int
    info: dict[str, Any]
    min_inside: float
    by: str = "activation"  # or "relevance" (PatchSettings)
    target: int | None = None  # the class explained by relevance; None: each image's top class
    categories: list[str] = field(default_factory=list)  # by relevance: the class names, to name the classes a channel serves

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer, "tracked": list(self.tracked), "given": self.given, "n_channels": self.n_channels, "k": self.k,
            "receptive_field": self.receptive_field.to_dict(), "preprocessing": self.preprocessing.to_dict(),
            "input_size": list(self.input_size), "width": self.width, "n_images": self.n_images, "info": self.info,
            "min_inside": self.min_inside, "by": self.by, "target": self.target, "categories": list(self.categories),
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PatchSetup:
        return cls(
            layer=str(data["layer"]), tracked=[int(c) for c in data["tracked"]], given=bool(data["given"]),
            n_channels=int(data["n_channels"]), k=int(data["k"]), receptive_field=receptive_field_from_dict(data["receptive_field"]),
            preprocessing=Preprocessing.from_dict(data["preprocessing"]), input_size=tuple(data["input_size"]),  # type: ignore[arg-type]
            width=int(data["width"]), n_images=int(data["n_images"]), info=dict(data["info"]), min_inside=float(data["min_inside"]),
            by=str(data.get("by", "activation")), target=None if data.get("target") is None else int(data["target"]),
            categories=[str(c) for c in data.get("categories", [])],
        )  # fmt: skip

    def result(self, state: PatchState, sources: dict[str, Any] | None = None) -> PatchResult:
        """The result of a run from its merged state (``sources``: name -> image, for the crops)."""
        tracked = self.tracked
        means = state.sums.means(self.n_images)
        mean_of = dict(zip(tracked, means))
        if self.given:
            rank = list(range(len(tracked)))
        else:
            rank = sorted(range(len(tracked)), key=lambda r: (-means[r], r))[: self.n_channels]
        values, indices, positions = state.top.values, state.top.index, state.top.payload
        patches: dict[int, list[Patch]] = {}
        for r in rank:
            c = tracked[r]
            row = []
            for j in range(values.shape[1]):
                v = float(values[r, j])
                if v == -math.inf:
                    continue
                pi, pj = divmod(int(positions[r, j]), self.width)
                i = int(indices[r, j])
                row.append(Patch(c, j, state.name(i), i, (pi, pj), self.receptive_field.box(pi, pj), v))
            patches[c] = row
        result = PatchResult(
            layer=self.layer,
            channels=[tracked[r] for r in rank],
            patches=patches,
            receptive_field=self.receptive_field,
            preprocessing=self.preprocessing,
            input_size=self.input_size,
            n_images=self.n_images,
            mean_activation={c: mean_of[c] for c in patches},
            info=dict(self.info),
            min_inside=self.min_inside,
            sources=dict(sources or {}),
            by=self.by,
            target=self.target,
            classes=_class_use(state, tracked, rank) if self.by == "relevance" else {},
        )
        cats = self.categories
        result.class_names = {k: cats[k] for row in result.classes.values() for k, _ in row if k < len(cats)}
        dead = result.dead_channels
        if dead and self.by == "relevance":
            result.warnings.append(
                f"channel{'s' if len(dead) > 1 else ''} {', '.join(map(str, dead))} of {self.layer} carried no positive relevance on "
                f"these {self.n_images} images: their patches are arbitrary ties"
            )
        elif dead:
            result.warnings.append(
                f"channel{'s' if len(dead) > 1 else ''} {', '.join(map(str, dead))} of {self.layer} never fired on these "
                f"{self.n_images} images (best activation <= 0): their patches are arbitrary ties"
            )
        return result


def _class_use(state: PatchState, tracked: Sequence[int], rank: Sequence[int], top: int = 5) -> dict[int, list[tuple[int, float]]]:
    """Per ranked channel, the ``top`` classes its relevance went to most: ``(class, share)`` with the
    share of the channel's positive relevance over all explained classes."""
    if state.classes is None:
        return {}
    shares = state.classes.top_shares(rank, top)
    return {tracked[r]: shares[r] for r in rank}


@register_state("patches")
class PatchState:
    """The mergeable state of a patches run (:mod:`cnnlens.distributed`): per tracked channel the
    top-k units (value, global image index, position) and the exact sum of its unit values, with the
    names of the images the top-k hold."""

    def __init__(self, rows: int, k: int, names: Sequence[str] | None = None, *, by_class: bool = False) -> None:
        self.top = TopK(rows, k)
        self.sums = ExactSum(rows)
        self.classes: KeyedSum | None = KeyedSum(rows) if by_class else None  # relevance per explained class
        self.names = names  # the global list, when this process has it
        self.known: dict[int, str] = {}  # names read from a file

    def has(self, index: int) -> bool:
        return index in self.known or (self.names is not None and 0 <= index < len(self.names))

    def name(self, index: int) -> str:
        return self.known[index] if index in self.known else self.names[index]  # type: ignore[index]

    def select(self, start: int, stop: int) -> PatchState:
        """The state of rows ``start:stop`` (one layer of a run over several)."""
        out = PatchState(0, self.top.k, self.names)
        out.top, out.sums, out.known = self.top.select(slice(start, stop)), self.sums.select(slice(start, stop)), dict(self.known)
        out.classes = None if self.classes is None else self.classes.select(slice(start, stop))
        return out

    def merge(self, other: PatchState) -> None:
        self.top.merge(other.top)
        self.sums.merge(other.sums)
        if self.classes is not None and other.classes is not None:
            self.classes.merge(other.classes)
        held = set(self.top.index.flatten().tolist())
        self.known = {i: self.name(i) if self.has(i) else other.name(i) for i in held if not (self.names is not None and i < len(self.names))}

    def __deepcopy__(self, memo: dict[int, Any]) -> PatchState:
        out = PatchState(self.top.rows, self.top.k, self.names)  # the global list is shared, not copied
        out.top, out.sums, out.known = copy.deepcopy(self.top, memo), copy.deepcopy(self.sums, memo), dict(self.known)
        out.classes = copy.deepcopy(self.classes, memo)
        return out

    def to_json(self) -> dict[str, Any]:
        held = sorted(set(self.top.index.flatten().tolist()))
        out = {"top": self.top.to_json(), "sums": self.sums.to_json(), "names": {str(i): self.name(i) for i in held}}
        if self.classes is not None:
            out["classes"] = self.classes.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PatchState:
        top = TopK.from_json(data["top"])
        out = cls(top.rows, top.k)
        out.top, out.sums = top, ExactSum.from_json(data["sums"])
        out.classes = KeyedSum.from_json(data["classes"]) if "classes" in data else None
        out.known = {int(i): str(n) for i, n in data["names"].items()}
        return out

    @classmethod
    def result(cls, settings: dict[str, Any], state: PatchState) -> PatchResult | PatchSet:
        """The result of merged parts: a :class:`PatchResult` (:func:`top_patches`) or a
        :class:`PatchSet` (:func:`top_patches_layers`); crops are cut when a figure is drawn."""
        found = PatchSet.of([PatchSetup.from_json(s) for s in settings["setups"]], state)
        return found if settings.get("multi") else next(iter(found.layers.values()))


def _relevance_maps(net: nn.Module, x: torch.Tensor, layers: Sequence[str], target: int | None, prep: Preprocessing) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The LRP relevance arriving at each of ``layers`` for each image's class (``target``, or its
    top class), and the classes explained."""
    from ..relevance import propagate

    targets = None if target is None else [target] * x.shape[0]
    got = propagate(net, x, targets, layers=layers, input_relevance=False, preprocessing=prep, records=False)
    return got.layers, got.targets.cpu()


def _unit_maxima(act: torch.Tensor, outside: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, C)`` value (float) and first flat position of each map's maximum over the positions not
    ``outside`` (a ``(H, W)`` mask of the border positions left out).

    The maximum over the whole map is taken first, without a copy; only the maps whose first maximum
    falls outside are searched again with the border masked: the same value and position as masking
    every map (an earliest maximum that lies inside is also the earliest among the inside positions)."""
    flat = act.flatten(2)
    value, where = flat.max(dim=2)
    if outside is not None:
        out_flat = outside.reshape(-1)
        redo = out_flat[where]
        if bool(redo.any()):
            value[redo], where[redo] = flat[redo].masked_fill(out_flat, -math.inf).max(dim=1)
    return value.float(), where


def _patch_job(
    net: nn.Module, setups: Sequence[PatchSetup], masks: Sequence[torch.Tensor], sources: dict[str, Any], batch_size: int, workers: int, multi: bool,
    readout: Readout | None = None,
) -> Job:
    """The streaming pass of :func:`top_patches_layers` as a :class:`cnnlens.distributed.Job`: one
    :class:`PatchState` (the tracked channels of all layers are its rows, layer after layer) and one
    step function."""
    names, paths = list(sources), list(sources.values())

    def settings() -> dict[str, Any]:
        pixels = [p for p in paths if isinstance(p, torch.Tensor)]  # in-memory images: their content counts
        return {
            "setups": [s.to_json() for s in setups],
            "multi": multi,
            "images_sha256": fingerprint(names, *pixels),
            "model_sha256": model_fingerprint(net),
            **({"readout": readout.key} if readout is not None else {}),
        }

    def steps(state: PatchState, items: Sequence[int] | None, bar: Any) -> Iterator[None]:
        assert items is not None
        prep = setups[0].preprocessing
        device = model_device(net)
        dtype = model_dtype(net)
        layers = [s.layer for s in setups]
        wanted = [torch.tensor(s.tracked, dtype=torch.long, device=device) if s.given and readout is None else None for s in setups]
        outside_masks = [None if bool(m.all()) else ~m.to(device) for m in masks]
        by, target = setups[0].by, setups[0].target

        def reducer(channels: torch.Tensor | None, outside: torch.Tensor | None) -> Any:
            def reduce(output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                act = output if readout is None else readout.maps(output)
                return _unit_maxima(act if channels is None else act[:, channels], outside)

            return reduce

        reducers = {layer: reducer(channels, outside) for layer, channels, outside in zip(layers, wanted, outside_masks)}
        with eval_mode(net), torch.no_grad():
            for batch_idx, x in iter_batches([paths[i] for i in items], prep, batch_size=batch_size, workers=workers):
                x = x.to(device, dtype=dtype, non_blocking=True)
                values, wheres, totals = [], [], []
                if by == "relevance":
                    record, explained = _relevance_maps(net, x, layers, target, prep)
                    for layer, channels, outside in zip(layers, wanted, outside_masks):
                        act = record[layer] if readout is None else readout.maps(record[layer])
                        act = act if channels is None else act[:, channels]
                        totals.append(act.flatten(2).sum(2).float())
                        unit_v, where = _unit_maxima(act, outside)
                        values.append(unit_v)
                        wheres.append(where)
                else:  # each layer's maxima computed in its hook: no copy of a map is kept
                    record, explained = forward_until(net, prep.normalize(x), layers, reduce=reducers), None
                    for layer in layers:
                        values.append(record[layer][0])
                        wheres.append(record[layer][1])
                unit_v, where = torch.cat(values, 1).T.cpu(), torch.cat(wheres, 1).T.cpu()  # (rows, B)
                state.sums.add(unit_v)
                state.top.add(unit_v, [items[i] for i in batch_idx], where)  # ties: the earlier image first
                if explained is not None and state.classes is not None:
                    state.classes.add_labelled(torch.cat(totals, 1).T.cpu(), explained)
                bar.update(len(batch_idx))
                yield

    return Job(
        kind="patches",
        n_items=len(paths),
        batch_size=batch_size,
        settings=settings,
        empty=lambda: PatchState(sum(len(s.tracked) for s in setups), setups[0].k, names, by_class=setups[0].by == "relevance"),
        steps=steps,
        desc=f"patches {', '.join(s.layer for s in setups)}" + (f" by {setups[0].by}" if setups[0].by != "activation" else ""),
        unit="img",
    )
