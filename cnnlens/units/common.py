"""What the three unit tools share: the preprocessing of an image model, the receptive field of a
layer, and the figure title that names model, weights, layer and unit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from ..address import Unit, parse_unit
from ..checks import check_int
from ..errors import CnnlensError
from ..pixels import Normalized, Preprocessing
from ..receptive_field import ReceptiveField
from ..registry import ModelInfo, model_info

__all__ = ["check_one_input", "image_preprocessing", "info_label", "layer_geometry", "layers_geometry", "network", "parse_units", "strongest"]


def network(model: nn.Module) -> tuple[nn.Module, Preprocessing | None]:
    """The network inside a :class:`cnnlens.Normalized` wrapper (whose layer names the user gives)
    and the wrapper's preprocessing; any other model and ``None``."""
    if isinstance(model, Normalized):
        return model.model, model.preprocessing
    return model, None


def image_preprocessing(model: nn.Module, preprocessing: Preprocessing | None = None, size: int | None = None) -> Preprocessing:
    """How images become ``model``'s input: ``preprocessing`` if given, else the wrapper's or
    ``model_info(model).preprocessing``; ``size`` replaces the resize and crop by a square side.

    Raises:
        CnnlensError: the model does not take images (a network on 64 feature maps), or ``size`` is
            not an integer or below the model's minimum.
    """
    _, wrapped = network(model)
    prep = preprocessing or wrapped or model_info(model).preprocessing
    if not isinstance(prep, Preprocessing):
        raise CnnlensError(f"preprocessing must be a cnnlens.Preprocessing, not {type(prep).__name__}", param="preprocessing")
    if prep.channels not in (1, 3):
        raise CnnlensError(f"{model_info(model).name} takes {prep.channels}-channel tensors, not images; pick an image model")
    check_one_input(model)
    if size is not None:
        size = check_int(size, "size", low=1, high=8192)
        low_h, low_w = prep.min_size
        if size < max(low_h, low_w):
            raise CnnlensError(f"size {size} is below {model_info(model).name}'s minimum input of {low_h}x{low_w} pixels", param="size")
        prep = prep.with_size(size)
    elif prep.crop_size is None:
        prep = prep.with_size(prep.resize_size or prep.input_size[-1])
    return prep


def check_one_input(model: nn.Module) -> None:
    """Refuse, in one line, a model whose ``forward`` needs more than one input (cnnlens feeds it
    one batch of images)."""
    import inspect

    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):  # no signature to read: let the model speak for itself
        return
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p.name for p in params if p.kind in positional and p.default is inspect.Parameter.empty]
    required += [p.name for p in params if p.kind == inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty]
    if len(required) > 1:
        raise CnnlensError(
            f"{model_info(model).name} needs {len(required)} inputs ({', '.join(required)}); cnnlens feeds a model one batch of images"
        )


def layer_geometry(model: nn.Module, layer: str, size: tuple[int, int], channels: int = 3) -> tuple[ReceptiveField | str | None, list[int] | None]:
    """The receptive field and output shape of ``layer`` for a ``(1, channels, *size)`` input,
    computed on the meta device (:func:`cnnlens.report`): a :class:`ReceptiveField`, ``"global"``,
    or ``None`` when it cannot be followed; the shape ``None`` when the layer did not run."""
    return layers_geometry(model, [layer], size, channels)[layer]


def layers_geometry(
    model: nn.Module, layers: Sequence[str], size: tuple[int, int], channels: int = 3
) -> dict[str, tuple[ReceptiveField | str | None, list[int] | None]]:
    """:func:`layer_geometry` of several layers from one report."""
    from ..report import report

    net, _ = network(model)
    try:
        rows = {row.name: row for row in report(net, (1, channels, *size)).layers}
    except CnnlensError:
        return {layer: (None, None) for layer in layers}
    return {layer: (rows[layer].receptive_field, rows[layer].output_shape) if layer in rows else (None, None) for layer in layers}


def parse_units(units: Any, name: str = "unit") -> list[Unit]:
    """One unit address or several as a list of :class:`Unit` (syntax only)."""
    items = [units] if isinstance(units, (str, Unit)) else list(units)
    if not items:
        raise CnnlensError(f"{name} is empty; give a layer or LAYER:CHANNEL", param=name)
    return [parse_unit(u, name=name) for u in items]


def info_label(info: ModelInfo | dict[str, Any]) -> str:
    """``"squeezenet1_0 (random init, seed 0)"`` from a :class:`ModelInfo` or its ``to_dict()``."""
    if isinstance(info, ModelInfo):
        return info.label
    return f"{info.get('model') or 'model'} ({info.get('weights') or 'weights unknown'})"


def strongest(weight: torch.Tensor, n: int) -> list[int]:
    """Indices of the ``n`` output filters with the largest L2 norm, strongest first."""
    norms = weight.flatten(1).norm(dim=1)
    return torch.argsort(norms, descending=True, stable=True)[:n].tolist()
