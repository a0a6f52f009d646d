"""Convolution filters as pictures and numbers: pixel-space first-layer filters, Gabor statistics.

The first convolution of a torchvision model does not see pixels: it sees ``(pixel - mean) / std``,
and googlenet / inception_v3 with ``transform_input=True`` rescale that again to ``2 * pixel - 1``
before ``conv1``. A filter ``W`` on normalized input responds to a pixel change ``dp_c`` with
``W_c / s_c * dp_c``, so the picture that shows what the filter looks for in *pixels* is ``W_c / s_c``
(``s_c = std_c`` of the model's preprocessing, or 0.5 under ``transform_input``). Only the ratio
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
from ..pixelnet import unwrap
from ..pixels import Preprocessing
from ..registry import ModelInfo, model_info
from ..results import Result

__all__ = ["FilterInfo", "Filters", "conv_filters", "first_conv", "input_scale"]

COLOR_THRESHOLD = 0.5  # share of energy off the grey axis above which a 3-channel filter counts as colour


def first_conv(model: nn.Module) -> str:
    """Dotted name of the first ``nn.Conv2d`` in definition order (``features.0``, ``conv1.conv``...).

    Raises:
        CnnlensError: the model has no ``nn.Conv2d``.
    """
    net, _ = unwrap(model)
    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d):
            return name
    raise CnnlensError(f"{model_info(model).name} has no Conv2d layer: filters show the weights of a convolution")


def input_scale(model: nn.Module, preprocessing: Preprocessing | None = None) -> tuple[float, ...]:
    """Per-channel factor ``s_c`` with ``conv1 input = (pixel - m_c) / s_c`` for the first conv.

    ``transform_input`` (googlenet, inception_v3 with pretrained weights) makes it 0.5 for every
    channel whatever the std; otherwise the std of ``preprocessing`` (default: the model's, from
    :func:`cnnlens.model_info`, or the :class:`cnnlens.Normalized` wrapper's).
    """
    net, wrapped = unwrap(model)
    prep = preprocessing or wrapped or model_info(model).preprocessing
    if getattr(net, "transform_input", False):
        return (0.5,) * len(prep.std)
    return tuple(float(v) for v in prep.std)


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


@dataclass(repr=False)
class Filters(Result):
    """The weights of one conv layer and their per-filter statistics.

    ``weight`` is ``(out, in, kh, kw)`` on the CPU; for the first layer it is the pixel-space filter
    ``W_c / s_c`` (see the module docstring, ``scale`` holds ``s_c``), otherwise the raw weight.
    """

    layer: str
    weight: torch.Tensor
    first_layer: bool
    scale: tuple[float, ...] | None
    filters: list[FilterInfo] = field(default_factory=list)
    info: ModelInfo | None = None

    @property
    def mean_gabor_r2(self) -> float | None:
        r2 = [f.gabor_r2 for f in self.filters if f.gabor_r2 is not None and not math.isnan(f.gabor_r2)]
        return round(float(np.mean(r2)), 6) if r2 else None

    @property
    def n_color(self) -> int | None:
        flags = [f.is_color for f in self.filters]
        return None if any(v is None for v in flags) else int(sum(bool(v) for v in flags))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            **(self.info.to_dict() if self.info is not None else {}),
            "layer": self.layer,
            "shape": list(self.weight.shape),
            "pixel_space": self.first_layer,
            "input_scale": list(self.scale) if self.scale is not None else None,
            "mean_gabor_r2": self.mean_gabor_r2,
            "color_filters": self.n_color,
            "filters": [f.to_dict() for f in self.filters],
        }
        return out

    def figure(self, *, max_filters: int | None = None, max_inputs: int = 16, ncols: int | None = None, title: str | None = None) -> Any:
        """The filter grid (:func:`cnnlens.units.plot_filters`)."""
        from .plots import plot_filters

        return plot_filters(self, max_filters=max_filters, max_inputs=max_inputs, ncols=ncols, title=title)

    def _summary(self) -> dict[str, Any]:
        info = self.info.to_dict() if self.info is not None else {}
        return {"model": info.get("model"), "weights": info.get("weights"), "layer": self.layer, "shape": tuple(self.weight.shape), "mean_gabor_r2": self.mean_gabor_r2}


def conv_filters(model: nn.Module, layer: str | nn.Module | None = None, *, preprocessing: Preprocessing | None = None) -> Filters:
    """The filters of conv ``layer`` (default: the first conv) with Gabor fit, separability and colour.

    Args:
        model: any model (or a :class:`cnnlens.Normalized` wrapper); it is only read.
        layer: a dotted name of an ``nn.Conv2d`` (or any module with a 4-d ``weight``).
        preprocessing: the input normalization, whose std gives the first layer's pixel-space colours
            (default: the model's, :func:`cnnlens.model_info`; ignored under ``transform_input``).

    Raises:
        CnnlensError: no Conv2d in the model, unknown layer, or a layer that is not a convolution.

    Example:
        >>> import cnnlens
        >>> f = conv_filters(cnnlens.create_model("alexnet", seed=0))
        >>> f.layer, tuple(f.weight.shape), len(f.filters)
        ('features.0', (64, 3, 11, 11), 64)
    """
    from .gabor import fit_gabor, separability

    net, wrapped = unwrap(model)
    prep = preprocessing or wrapped or model_info(model).preprocessing
    if layer is None:
        name = first_conv(net)
    else:
        try:
            name = layer_name(net, layer)
        except CnnlensError as exc:
            raise CnnlensError(f"layer: {exc}", param="layer") from None
    module = get_layer(net, name)
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        raise CnnlensError(f"layer {name!r} is a {type(module).__name__}, not a 2-d convolution; pick a Conv2d layer", param="layer")
    if weight.device.type == "meta":
        raise CnnlensError(f"layer {name!r} has no weights (meta device); create the model with weights", param="layer")
    w = weight.detach().float().cpu().clone()
    try:
        first = first_conv(net)
    except CnnlensError:
        first = None
    # pixel space: the first conv of a model whose input is the image itself (grey or colour)
    is_first = name == first and w.shape[1] == len(prep.std) and w.shape[1] in (1, 3)
    scale = input_scale(model, prep) if is_first else None
    if scale is not None:
        w = w / torch.tensor(scale, dtype=w.dtype).view(1, -1, 1, 1)
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
    return Filters(layer=name, weight=w, first_layer=is_first, scale=scale, filters=infos, info=model_info(model))
