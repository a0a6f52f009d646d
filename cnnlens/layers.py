"""Layer vocabulary: dotted module names (``"layer4.1.conv2"``, ``"features.28"``), and where a model's
parameters live (:func:`model_device`, :func:`model_dtype`)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn as nn

from .errors import CnnlensError, did_you_mean

__all__ = ["get_layer", "layer_name", "list_layers", "model_device", "model_dtype", "resolve_layers"]

LayerRef = str | nn.Module


def get_layer(model: nn.Module, layer: LayerRef) -> nn.Module:
    """The submodule called ``layer`` (a dotted name or the module itself).

    Raises:
        CnnlensError: no such layer; the message names the closest ones.
    """
    if isinstance(layer, nn.Module):
        layer_name(model, layer)  # raises if it is not part of the model
        return layer
    if layer in ("", "input"):
        return model
    try:
        return model.get_submodule(layer)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        if layer.lower() == "logits":  # the unit address's name of the output, not a module
            raise CnnlensError(f"unknown layer {layer!r}; the model's output is logits:CLASS (one class: an index or a name)") from None
        raise CnnlensError(
            f"unknown layer {layer!r}{did_you_mean(layer, names)}; `cnnlens layers MODEL` lists them"
        ) from None


def layer_name(model: nn.Module, layer: LayerRef) -> str:
    """The dotted name of ``layer`` inside ``model`` ("" for the model itself)."""
    if isinstance(layer, str):
        get_layer(model, layer)
        return layer
    for name, module in model.named_modules(remove_duplicate=False):
        if module is layer:
            return name
    raise CnnlensError(f"{type(layer).__name__} is not a submodule of {type(model).__name__}")


def resolve_layers(model: nn.Module, layers: LayerRef | Sequence[LayerRef]) -> dict[str, nn.Module]:
    """``{dotted name: module}`` for one layer or several, in the order given."""
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    return {layer_name(model, layer): get_layer(model, layer) for layer in layers}


def list_layers(
    model: nn.Module, kind: type[nn.Module] | tuple[type[nn.Module], ...] | None = None, *, leaves_only: bool = False
) -> list[str]:
    """Dotted names of the submodules, in definition order, optionally only those of type ``kind``."""
    names = []
    for name, module in model.named_modules():
        if not name:
            continue
        if kind is not None and not isinstance(module, kind):
            continue
        if leaves_only and next(module.children(), None) is not None:
            continue
        names.append(name)
    return names


def depth_of(name: str) -> int:
    """Nesting depth of a dotted name: ``"features"`` is 1, ``"layer4.1.conv2"`` is 3."""
    return name.count(".") + 1 if name else 0



def model_device(model: nn.Module, default: str | torch.device = "cpu") -> torch.device:
    """The device of the model's first parameter or buffer (``default`` when it has neither)."""
    for t in itertools.chain(model.parameters(), model.buffers()):
        return t.device
    return torch.device(default)


def model_dtype(model: nn.Module, default: torch.dtype = torch.float32) -> torch.dtype:
    """The dtype of the model's first floating-point parameter (``default`` when it has none): the
    dtype its input must have."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), default)
