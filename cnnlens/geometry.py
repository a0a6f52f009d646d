"""The receptive field and output shape of named layers, for one input size, from one report on the
meta device (:func:`cnnlens.report`): what every capability that cuts patches, projects units or
places a stimulus needs to know about a layer."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn as nn

from .errors import CnnlensError
from .pixelnet import unwrap
from .receptive_field import ReceptiveField
from .reports import report

__all__ = ["check_spatial_map", "layer_geometry", "layers_geometry"]


def check_spatial_map(name: str, shape: Sequence[int] | None, param: str, why: str = "") -> None:
    """Refuse, in one line naming ``param``, a layer whose output is not a ``(B, C, H, W)`` map (a
    ``Linear`` classifier): its units have no place in the image. ``why`` says what needed one."""
    if shape is None or len(shape) != 4:
        shown = tuple(shape) if shape is not None else None
        raise CnnlensError(f"{param}: layer {name!r} outputs {shown}, not a (B, C, H, W) map{why}", param=param)


def layer_geometry(model: nn.Module, layer: str, size: tuple[int, int], channels: int = 3) -> tuple[ReceptiveField | str | None, list[int] | None]:
    """The receptive field and output shape of ``layer`` for a ``(1, channels, *size)`` input,
    computed on the meta device (:func:`cnnlens.report`): a :class:`ReceptiveField`, ``"global"``,
    or ``None`` when it cannot be followed; the shape ``None`` when the layer did not run."""
    return layers_geometry(model, [layer], size, channels)[layer]


def layers_geometry(
    model: nn.Module, layers: Sequence[str], size: tuple[int, int], channels: int = 3
) -> dict[str, tuple[ReceptiveField | str | None, list[int] | None]]:
    """:func:`layer_geometry` of several layers from one report."""
    net, _ = unwrap(model)
    try:
        rows = {row.name: row for row in report(net, (1, channels, *size)).layers}
    except CnnlensError:
        return {layer: (None, None) for layer in layers}
    return {layer: (rows[layer].receptive_field, rows[layer].output_shape) if layer in rows else (None, None) for layer in layers}
