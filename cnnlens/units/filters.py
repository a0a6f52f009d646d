"""Convolution filters as pictures and numbers: pixel-space first-layer filters, Gabor statistics.

The first convolution of a torchvision model does not see pixels: it sees ``(pixel - mean) / std``
(pitfall 7), and googlenet / inception_v3 with ``transform_input=True`` rescale that again to
``2 * pixel - 1`` before ``conv1`` (pitfall 8). A filter ``W`` on normalized input responds to a
pixel change ``dp_c`` with ``W_c / s_c * dp_c``, so the picture that shows what the filter looks
for in *pixels* is ``W_c / s_c`` (``s_c = std_c``, or 0.5 under ``transform_input``). Only the ratio
between the channels matters for the colours, since every filter is contrast-normalized on its own.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..errors import CnnlensError
from ..layers import get_layer, layer_name

__all__ = ["FilterInfo", "Filters", "conv_filters", "first_conv", "input_scale", "strongest"]

COLOR_THRESHOLD = 0.5  # share of energy off the grey axis above which a 3-channel filter counts as colour


def _unwrap(model: nn.Module) -> tuple[nn.Module, tuple[float, ...] | None]:
    """The network inside a :class:`cnnlens.Normalized` wrapper, and that wrapper's std."""
    from ..pixels import Normalized

    if isinstance(model, Normalized):
        return model.model, tuple(float(v) for v in model.preprocessing.std)
    return model, None


def first_conv(model: nn.Module) -> str:
    """Dotted name of the first ``nn.Conv2d`` in definition order (``features.0``, ``conv1.conv``...)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name
    raise CnnlensError(f"{type(model).__name__} has no Conv2d layer")


def input_scale(model: nn.Module, std: tuple[float, ...] | None = None) -> tuple[float, ...]:
    """Per-channel factor ``s_c`` with ``conv1 input = (pixel - m_c) / s_c`` for the first conv.

    ``transform_input`` (googlenet, inception_v3 with pretrained weights) makes it 0.5 for every
    channel whatever the ImageNet std; otherwise the model's normalization std (ImageNet's by default).
    """
    from ..pixels import IMAGENET_STD

    inner, wrapped_std = _unwrap(model)
    if getattr(inner, "transform_input", False):
        return (0.5, 0.5, 0.5)
    return tuple(std or wrapped_std or IMAGENET_STD)


@dataclass(frozen=True)
class FilterInfo:
    """Statistics of one filter (see :mod:`cnnlens.units.gabor` for the Gabor fit)."""

    index: int
    orientation_deg: float | None
    frequency: float | None
    gabor_r2: float | None
    separability: float | None
    is_color: bool | None
    color_share: float | None
    norm: float

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_number(v) for k, v in asdict(self).items()}


def _json_number(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(float(v)) else round(float(v), 6)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


@dataclass
class Filters:
    """The weights of one conv layer and their per-filter statistics.

    ``weight`` is ``(out, in, kh, kw)``; for the first layer it is the pixel-space filter
    ``W_c / s_c`` (see the module docstring), otherwise the raw weight.
    """

    layer: str
    weight: torch.Tensor
    first_layer: bool
    scale: tuple[float, ...] | None
    filters: list[FilterInfo] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        r2 = [f.gabor_r2 for f in self.filters if f.gabor_r2 is not None and not math.isnan(f.gabor_r2)]
        out: dict[str, Any] = {
            "layer": self.layer,
            "filters": [f.to_dict() for f in self.filters],
            "shape": list(self.weight.shape),
            "pixel_space": self.first_layer,
        }
        if self.scale is not None:
            out["input_scale"] = list(self.scale)
        out["mean_gabor_r2"] = round(float(np.mean(r2)), 6) if r2 else None
        return out


def conv_filters(model: nn.Module, layer: str | nn.Module | None = None, *, std: tuple[float, ...] | None = None) -> Filters:
    """The filters of conv ``layer`` (default: the first conv) with Gabor fit, separability and colour.

    Args:
        model: any model (or a :class:`cnnlens.Normalized` wrapper); it is only read.
        layer: a dotted name of an ``nn.Conv2d`` (or any module with a 4-d ``weight``).
        std: the input normalization std, for the first layer's pixel-space colours (default:
            the wrapper's, else ImageNet's; ignored under ``transform_input``).

    Example:
        >>> import torchvision
        >>> f = conv_filters(torchvision.models.alexnet())
        >>> f.layer, tuple(f.weight.shape), len(f.filters)
        ('features.0', (64, 3, 11, 11), 64)
    """
    from .gabor import fit_gabor, separability

    inner, _ = _unwrap(model)
    first = first_conv(inner)
    name = first if layer is None else layer_name(inner, layer)
    module = get_layer(inner, name)
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        raise CnnlensError(f"layer {name!r} is a {type(module).__name__}, not a 2-d convolution; pick a Conv2d layer")
    w = weight.detach().float().cpu().clone()
    is_first = name == first and w.shape[1] == 3
    scale = input_scale(model, std) if is_first else None
    if scale is not None:
        w = w / torch.tensor(scale, dtype=w.dtype).view(1, 3, 1, 1)
    fit = fit_gabor(w)
    sep = separability(w)
    norms = w.flatten(1).norm(dim=1)
    if w.shape[1] == 3:
        off_grey = w - w.mean(dim=1, keepdim=True)
        share = (off_grey.flatten(1).pow(2).sum(1) / w.flatten(1).pow(2).sum(1).clamp_min(1e-30)).numpy()
    else:
        share = None
    infos = []
    for i in range(w.shape[0]):
        freq = float(fit.frequency[i])
        infos.append(
            FilterInfo(
                index=i,
                orientation_deg=None if math.isnan(fit.orientation_deg[i]) else float(fit.orientation_deg[i]),
                frequency=None if math.isnan(freq) else freq,
                gabor_r2=None if math.isnan(fit.r2[i]) else float(fit.r2[i]),
                separability=None if math.isnan(sep[i]) else float(sep[i]),
                is_color=None if share is None else bool(share[i] > COLOR_THRESHOLD),
                color_share=None if share is None else float(share[i]),
                norm=float(norms[i]),
            )
        )
    return Filters(layer=name, weight=w, first_layer=is_first, scale=scale, filters=infos)


def strongest(weight: torch.Tensor, n: int) -> list[int]:
    """Indices of the ``n`` output filters with the largest L2 norm, strongest first."""
    norms = weight.flatten(1).norm(dim=1)
    return torch.argsort(norms, descending=True, stable=True)[:n].tolist()
