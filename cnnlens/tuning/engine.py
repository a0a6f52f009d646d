"""Where a unit is read and how stimuli reach it: the canvas, the position, the batched forward pass.

A unit sees only the pixels of its receptive field (:mod:`cnnlens.receptive_field`). So when the
field of the unit lies inside the model's input image, the unit's response to any stimulus equals
the response of the unit at position ``p`` of a *small canvas* that just holds the field (``p`` as
small as keeps the field inside: ``T = p * stride - padding + size``): every intermediate unit it
depends on sees only pixels of that field and never touches padding, and the strides keep the grid
aligned. Tuning a first layer of squeezenet then runs 7x7 canvases instead of 224x224 images, a
deep layer 159x159. Where the field does not fit in the image (a ResNet's layer4 at 224 pixels) or
cannot be followed (``"global"``, ``None``), stimuli are drawn at the full input size and the unit is
the one the address names, padding and all, as the model sees it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from ..address import Unit, resolve_unit
from ..errors import CnnlensError
from ..geometry import check_spatial_map
from ..hooks import eval_mode, forward_until
from ..layers import model_device, model_dtype
from ..pixels import Preprocessing
from ..receptive_field import ReceptiveField

GRATINGS_NEED = ": there is no place to put gratings on; give a (B, C, H, W) layer, or logits:CLASS for one class"


def check_grating_layer(name: str, shape: Sequence[int], param: str, receptive_field: Any = None) -> None:
    """Refuse, in one line, a layer gratings cannot be placed on: no ``(B, C, H, W)`` map (a
    ``Linear`` classifier), or a 1 x 1 map after a global pool (squeezenet's ``classifier``: the class
    scores) -- ``logits:CLASS`` measures one class instead. A 1 x 1 map of a convolution whose field
    covers the image (LeNet-5's C5) is measured."""
    check_spatial_map(name, shape, param, GRATINGS_NEED)
    if int(shape[2]) == 1 and int(shape[3]) == 1 and not isinstance(receptive_field, ReceptiveField):
        raise CnnlensError(
            f"{param}: layer {name!r} outputs {tuple(shape)}, a single position after a global pool: there is no place to put gratings "
            "on; give an earlier layer, or logits:CLASS for one class",
            param=param,
        )

__all__ = ["Fields", "Placement", "centred_position", "check_grating_layer", "layer_fields", "minimal_canvas", "place_layers", "read_units", "resolve_units"]

# layer -> (receptive field at the full input size, output shape); (None, None) when unknown
Fields = dict[str, tuple[ReceptiveField | str | None, list[int] | None]]


@dataclass(frozen=True)
class Placement:
    """Where the units of one layer are read.

    Attributes:
        layer: dotted layer name (``""`` is the model's output).
        receptive_field: the layer's field at the full input size (``"global"``, ``None`` when it
            cannot be followed).
        full_size: ``(H, W)`` of the model's input.
        full_position: the unit's ``(row, col)`` in the layer's output at the full size (``None``
            for a ``(B, C)`` output).
        canvas: side of the square canvas the stimuli are drawn on.
        position: the unit's ``(row, col)`` in the output at the canvas size.
        box: ``(top, left, bottom, right)`` of the unit's field in the canvas (the whole canvas when
            the field is global or unknown).
        channels: the layer's number of channels.
    """

    layer: str
    receptive_field: ReceptiveField | str | None
    full_size: tuple[int, int]
    full_position: tuple[int, int] | None
    canvas: int
    position: tuple[int, int] | None
    box: tuple[int, int, int, int]
    channels: int

    @property
    def exact(self) -> bool:
        """True when the canvas is smaller than the image: the responses are exactly those of the
        full-size unit, computed on the field alone."""
        return self.canvas < max(self.full_size)

    @property
    def rf_size(self) -> int:
        """The side of the field in pixels (the canvas side when the field is global or unknown)."""
        if isinstance(self.receptive_field, ReceptiveField):
            return max(self.receptive_field.size)
        return self.canvas

    @property
    def field_leaves_image(self) -> bool:
        """True when the unit's field at the full size reaches past the image (into the padding)."""
        rf = self.receptive_field
        if not isinstance(rf, ReceptiveField) or self.full_position is None:
            return False
        return not _inside(rf.box(*self.full_position), self.full_size)

    @property
    def center(self) -> tuple[float, float]:
        """``(row, col)`` of the field's centre in the canvas: the phase origin of the gratings."""
        top, left, bottom, right = self.box
        return (top + bottom - 1) / 2, (left + right - 1) / 2

    def to_dict(self) -> dict[str, object]:
        rf = self.receptive_field
        return {
            "layer": self.layer,
            "receptive_field": rf.to_dict() if isinstance(rf, ReceptiveField) else rf,
            "rf_size": self.rf_size,
            "canvas": self.canvas,
            "exact_on_small_canvas": self.exact,
            "position": list(self.full_position) if self.full_position is not None else None,
            "canvas_position": list(self.position) if self.position is not None else None,
            "box": list(self.box),
        }


def minimal_canvas(rf: ReceptiveField) -> tuple[int, tuple[int, int]]:
    """The smallest square canvas that holds one whole field of ``rf``, and that unit's position."""
    pos, sides = [], []
    for k in range(2):
        p = max(0, math.ceil(rf.padding[k] / rf.stride[k]))
        pos.append(p)
        sides.append(p * rf.stride[k] - rf.padding[k] + rf.size[k])
    return max(sides), (pos[0], pos[1])


def centred_position(rf: ReceptiveField, canvas: int) -> tuple[int, int] | None:
    """The position whose field lies inside a ``canvas`` x ``canvas`` image, nearest its centre
    (``None`` when no field fits)."""
    out = []
    for k in range(2):
        j, pad, size = rf.stride[k], rf.padding[k], rf.size[k]
        low = max(0, math.ceil(pad / j))
        high = (canvas + pad - size) // j
        if low > high:
            return None
        target = ((canvas - 1) / 2 + pad - (size - 1) / 2) / j
        out.append(min(max(round(target), low), high))
    return out[0], out[1]


def _inside(box: tuple[int, int, int, int], size: tuple[int, int]) -> bool:
    top, left, bottom, right = box
    return top >= 0 and left >= 0 and bottom <= size[0] and right <= size[1]


def layer_fields(net: nn.Module, layers: Sequence[str], prep: Preprocessing) -> Fields:
    """The receptive field and output shape of each layer at the input size of ``prep``, from one
    meta-device :func:`cnnlens.report` (no weights read, no real tensors); ``""`` (the model's
    output) is global."""
    from ..reports import report

    c, h, w = prep.input_size
    try:
        rows = {row.name: row for row in report(net, (1, c, h, w)).layers}
    except CnnlensError:
        rows = {}
    out: Fields = {}
    for layer in layers:
        row = rows.get(layer)
        out[layer] = ("global", None) if layer == "" else (row.receptive_field, row.output_shape) if row is not None else (None, None)
    return out


def resolve_units(net: nn.Module, units: Sequence[Unit | str], prep: Preprocessing, *, name: str = "unit") -> tuple[list[Unit], Fields]:
    """Each unit checked against ``net`` (layer names, channel and position ranges at the input size
    of ``prep``), and the fields of their layers (:func:`layer_fields`)."""
    parsed = [resolve_unit(u, net, name=name) for u in units]
    layers = list(dict.fromkeys("" if u.is_logits else u.layer for u in parsed))
    fields = layer_fields(net, layers, prep)
    out = []
    for u in parsed:
        shape = fields["" if u.is_logits else u.layer][1]
        if not u.is_logits and shape is not None:  # None: not at this size; the placement falls back to the full size
            check_grating_layer(u.layer, shape, name, fields["" if u.is_logits else u.layer][0])
        out.append(u if u.is_logits else resolve_unit(u, net, shape=tuple(shape) if shape else None, name=name))
    return out, fields



def _probe(net: nn.Module, prep: Preprocessing, canvas: int, layers: list[str]) -> tuple[dict[str, tuple[int, ...]] | None, str]:
    """Output shapes of ``layers`` for one grey canvas, or ``None`` and why the model cannot run it."""
    x = torch.full((1, 1, canvas, canvas), 0.5)
    try:
        outs = read_units(net, prep, [x], {layer: None for layer in layers}, keep_maps=True)
    except (RuntimeError, ValueError, CnnlensError) as exc:
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0]
    return {layer: tuple(t.shape) for layer, t in outs.items()}, ""


def place_layers(
    net: nn.Module, wanted: dict[str, tuple[int, int] | None], prep: Preprocessing, fields: Fields | None = None
) -> tuple[int, dict[str, Placement]]:
    """One canvas for the layers of ``wanted`` (layer -> its unit's position at the full size, or
    ``None`` for the centre of the map) and each layer's :class:`Placement` in it.

    The canvas is the smallest that holds every field (see the module docstring), or the full input
    size when a field does not fit in the image or cannot be followed (``fields``: from
    :func:`layer_fields`, computed when not given). The chosen canvas is tried on one grey image;
    a model that cannot run it gets the full size.
    """
    full = prep.input_size[1:]
    side = max(full)
    missing = [layer for layer in wanted if fields is None or layer not in fields]
    geometry = {**(fields or {}), **(layer_fields(net, missing, prep) if missing else {})}
    canvas = 1
    for layer, position in wanted.items():
        rf, shape = geometry[layer]
        if isinstance(rf, ReceptiveField) and shape is not None and len(shape) == 4:
            pos = position if position is not None else (shape[2] // 2, shape[3] // 2)
            if _inside(rf.box(*pos), full):
                canvas = max(canvas, minimal_canvas(rf)[0])
                continue
        canvas = side
    small = canvas < side
    shapes = _probe(net, prep, canvas, list(wanted))[0] if small else None
    if shapes is None:
        small, canvas = False, side
        shapes, why = _probe(net, prep, side, list(wanted))
        if shapes is None:
            raise CnnlensError(f"size: the model does not run on a {full[0]}x{full[1]} grey image ({why})", param="size")
    placements = {}
    for layer, position in wanted.items():
        rf, _ = geometry[layer]
        shape = shapes[layer]  # type: ignore[index]
        if len(shape) not in (2, 4):
            raise CnnlensError(f"layer {layer!r} outputs shape {shape}; tuning needs (B, C, H, W) or (B, C)", param="layer")
        full_pos = None
        if len(shape) == 4:
            _, full_shape = geometry[layer]
            ref = full_shape if (full_shape is not None and len(full_shape) == 4) else shape
            full_pos = position if position is not None else (ref[2] // 2, ref[3] // 2)
        pos: tuple[int, int] | None = full_pos
        box = (0, 0, canvas, canvas)
        if small and isinstance(rf, ReceptiveField):
            pos = centred_position(rf, canvas)
            if pos is None or not (pos[0] < shape[2] and pos[1] < shape[3]):  # pragma: no cover - guarded by the probe
                raise CnnlensError(f"layer {layer!r}: no unit of the {canvas}-pixel canvas holds its whole field", param="layer")
        if isinstance(rf, ReceptiveField) and pos is not None:
            box = rf.box(*pos)
        if pos is not None and not (0 <= pos[0] < shape[2] and 0 <= pos[1] < shape[3]):
            raise CnnlensError(f"position {pos[0]},{pos[1]} outside {layer}'s {shape[2]}x{shape[3]} output", param="unit")
        placements[layer] = Placement(layer, rf, (int(full[0]), int(full[1])), full_pos, canvas, pos, box, int(shape[1]))
    return canvas, placements


def read_units(
    net: nn.Module,
    prep: Preprocessing,
    batches: Iterable[torch.Tensor],
    reads: dict[str, tuple[int, int] | None],
    *,
    keep_maps: bool = False,
    bar: object | None = None,
) -> dict[str, torch.Tensor]:
    """Run batches of grey or colour pixels through ``net`` as far as the deepest layer of ``reads``
    and keep, per layer, every channel at the position given (``(N, C)`` on the CPU, float32).

    ``reads`` maps layer -> ``(row, col)`` (or ``None``: a ``(B, C)`` output; with ``keep_maps``, the
    whole output). Pixels are converted to the model's channels and normalized by ``prep``
    (:meth:`~cnnlens.pixels.Preprocessing.normalize`); the model is left as it was.
    """
    device = model_device(net)
    dtype = model_dtype(net)
    layers = list(reads)
    kept: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    with eval_mode(net), torch.no_grad():
        for x in batches:
            x = prep.normalize(prep.convert_channels(x.to(device=device, dtype=dtype)))
            record = forward_until(net, x, layers)
            for layer in layers:
                if layer not in record:
                    raise CnnlensError(f"layer {layer!r} did not run in the forward pass", param="layer")
                out = record[layer]
                pos = reads[layer]
                if not keep_maps:
                    if out.dim() == 4:
                        if pos is None:
                            raise CnnlensError(f"layer {layer!r}: a (B, C, H, W) output needs a position", param="layer")
                        out = out[:, :, pos[0], pos[1]]
                    elif out.dim() != 2:
                        raise CnnlensError(f"layer {layer!r} outputs shape {tuple(out.shape)}; tuning needs (B, C, H, W) or (B, C)", param="layer")
                kept[layer].append(out.float().cpu())
            if bar is not None:
                bar.update(1)  # type: ignore[attr-defined]
    return {layer: torch.cat(parts) for layer, parts in kept.items()}
