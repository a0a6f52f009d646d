"""Reconstruct an image from one layer's activations (Mahendran & Vedaldi, "Understanding deep image
representations by inverting them", CVPR 2015).

``x* = argmin_x ‖Φ(x) - Φ(x₀)‖² / ‖Φ(x₀)‖² + λ_TV · TV^β(x)``, with ``x`` in [0, 1] pixel space and
the model's normalization inside. Shallow layers keep the photo almost exactly; deeper ones keep
parts and textures but lose exact position and colour.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import CnnlensError
from ..hooks import eval_mode, forward_until
from ..layers import resolve_layers
from ..pixels import IMAGENET_MEAN, IMAGENET_STD
from ._optim import Step, optimize_pixels
from .backbones import resolve_layer_alias
from .losses import reconstruction_loss, total_variation
from .transfer import _batch, _device_dtype

__all__ = ["InvertResult", "invert"]


@dataclass
class InvertResult:
    """``image`` ``(3, H, W)`` in [0, 1]; ``history[i]`` has ``reconstruction``, ``tv`` and ``total``."""

    image: torch.Tensor
    history: list[dict[str, float]]
    layer: str
    evaluations: int = 0
    seconds: float = 0.0


def invert(
    model: nn.Module,
    image: torch.Tensor,
    layer: str,
    *,
    backbone: str | None = None,
    steps: int = 200,
    tv_weight: float = 2.0,
    beta: float = 2.0,
    optimizer: str = "lbfgs",
    lr: float | None = None,
    init: str | torch.Tensor = "noise",
    generator: torch.Generator | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    callback: Callable[[Step], None] | None = None,
) -> InvertResult:
    """Find an image whose ``layer`` activations match those of ``image``, under a TV^β prior.

    Args:
        model: a CNN taking normalized input (``mean``/``std``); it is left unchanged.
        image: ``(3, H, W)`` in [0, 1].
        layer: dotted name (VGG aliases such as ``relu3_1`` work with ``backbone="vgg19"``).
        tv_weight: λ_TV for pixels in [0, 1]; the reconstruction term is normalized to 1 at x = 0.
        beta: TV exponent (2 smooth, 1 edge preserving).
        init: ``"noise"`` (uniform in [0.4, 0.6] from ``generator``, as the paper starts from
            noise), ``"gray"`` (0.5 everywhere) or a tensor.

    Example:
        >>> import torch, torchvision
        >>> net = torchvision.models.squeezenet1_0().eval()
        >>> rec = invert(net, torch.rand(3, 64, 64), "features.4", steps=2)
        >>> rec.image.shape
        torch.Size([3, 64, 64])
    """
    layer = resolve_layer_alias(backbone, layer)
    resolve_layers(model, layer)
    target_image = _batch(image, "image")
    start = time.perf_counter()
    device, dtype = _device_dtype(model)
    m = torch.tensor(mean, device=device, dtype=dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=device, dtype=dtype).view(1, -1, 1, 1)

    def features(x: torch.Tensor, detach: bool) -> torch.Tensor:
        record = forward_until(model, ((x - m) / s).contiguous(memory_format=torch.channels_last), layer, detach=detach)
        if layer not in record:
            raise CnnlensError(f"layer {layer!r} produced no tensor output; choose another layer")
        return record[layer]

    with eval_mode(model):
        with torch.no_grad():
            target = features(target_image.to(device, dtype), detach=True)

        def objective(x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            rec = reconstruction_loss(features(x, detach=False), target)
            tv = total_variation(x, beta)
            return rec + tv_weight * tv, {"reconstruction": rec, "tv": tv}

        if isinstance(init, torch.Tensor):
            x0 = _batch(init, "init").clone()
        elif init == "noise":
            x0 = 0.4 + 0.2 * torch.rand(target_image.shape, generator=generator, dtype=torch.float32)
        elif init == "gray":
            x0 = torch.full(target_image.shape, 0.5)
        else:
            raise CnnlensError(f"unknown init {init!r}; use noise or gray")
        result, history, evaluations = optimize_pixels(
            x0.to(device, dtype), objective, steps=steps, optimizer=optimizer, lr=lr, callback=callback
        )
    return InvertResult(result[0].cpu(), history, layer, evaluations, time.perf_counter() - start)
