"""Gatys, Ecker & Bethge (2016) neural style transfer on any torchvision backbone.

The image is optimized in [0, 1] pixel space; the backbone's normalization is applied inside the
objective. Each evaluation runs the network only as far as the deepest loss layer
(:func:`cnnlens.hooks.forward_until`), and taps are cloned captures, so an in-place ReLU cannot
change them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..errors import CnnlensError
from ..hooks import eval_mode, forward_until
from ..layers import resolve_layers
from ..pixels import IMAGENET_MEAN, IMAGENET_STD
from ..registry import model_device
from ._optim import Step, optimize_pixels
from .backbones import BACKBONES, resolve_layer_alias
from .color import transfer_luminance
from .gram import gram_matrix
from .losses import content_loss, style_layer_loss, total_variation

__all__ = ["StyleObjective", "StyleResult", "stylize"]


def _batch(image: torch.Tensor, name: str) -> torch.Tensor:
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[:2] != (1, 3):
        raise CnnlensError(f"{name} must be one RGB image (3, H, W), not {tuple(image.shape)}")
    return image


def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters(), None)
    return model_device(model), (p.dtype if p is not None else torch.float32)


class StyleObjective:
    """``content_weight · L_content + style_weight · L_style + tv_weight · TV`` for one content and its styles.

    Targets (the content features and the blended style Grams) are computed once here. Call it on a
    ``(1, 3, H, W)`` image in [0, 1]; it returns the total and ``{"content", "style", "tv"}``
    (unweighted terms). ``L_style = Σ_l w_l · mean((G_l - A_l)²)`` with ``w_l = 1/L`` unless
    ``style_layer_weights`` are given (Gatys' ``w_l``, not renormalized).
    Must be called with the model in eval mode and frozen (``stylize`` does that).
    """

    def __init__(
        self,
        model: nn.Module,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        *,
        content_layer: str,
        style_layers: Sequence[str],
        style_blend: Sequence[float] | None = None,
        content_weight: float = 1.0,
        style_weight: float = 1e3,
        style_layer_weights: Sequence[float] | None = None,
        tv_weight: float = 0.0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        if not styles:
            raise CnnlensError("give at least one style image")
        if not style_layers:
            raise CnnlensError("give at least one style layer")
        blend = [1.0] * len(styles) if style_blend is None else [float(w) for w in style_blend]
        if len(blend) != len(styles):
            raise CnnlensError(f"{len(styles)} style images but {len(blend)} blend weights")
        if any(w < 0 for w in blend) or sum(blend) <= 0:
            raise CnnlensError(f"style blend weights must be >= 0 with a positive sum, not {blend}")
        n = len(style_layers)
        layer_w = [1.0 / n] * n if style_layer_weights is None else [float(w) for w in style_layer_weights]
        if len(layer_w) != len(style_layers):
            raise CnnlensError(f"{len(style_layers)} style layers but {len(layer_w)} style layer weights")
        resolve_layers(model, [content_layer, *style_layers])  # unknown names fail here, with suggestions
        self.model = model
        device, dtype = _device_dtype(model)
        self.mean = torch.tensor(mean, device=device, dtype=dtype).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device, dtype=dtype).view(1, -1, 1, 1)
        self.content_layer = content_layer
        self.style_layers = list(style_layers)
        self.layers = list(dict.fromkeys([content_layer, *style_layers]))
        self.content_weight = float(content_weight)
        self.style_weight = float(style_weight)
        self.tv_weight = float(tv_weight)
        self.layer_weights = layer_w
        self.blend = [w / sum(blend) for w in blend]
        with torch.no_grad():
            content = _batch(content, "content").to(device, dtype)
            self.content_target = self._features(content, [content_layer])[content_layer].detach()
            grams: list[torch.Tensor] = [torch.zeros(())] * len(self.style_layers)
            for weight, style in zip(self.blend, styles):
                feats = self._features(_batch(style, "style").to(device, dtype), self.style_layers)
                for i, name in enumerate(self.style_layers):
                    grams[i] = grams[i] + weight * gram_matrix(feats[name])[0]
            self.style_targets = [g.detach() for g in grams]

    def _features(self, x: torch.Tensor, layers: Sequence[str], detach: bool = True) -> dict[str, torch.Tensor]:
        # channels-last input: oneDNN's convolutions run ~1.2-1.3x faster on CPU (the model is not touched)
        xn = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        record = forward_until(self.model, xn, list(dict.fromkeys(layers)), detach=detach)
        missing = [name for name in layers if name not in record]
        if missing:
            raise CnnlensError(f"layer(s) {missing} produced no tensor output; choose other layers")
        return record.outputs

    def terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The unweighted ``content``, ``style`` and ``tv`` terms at ``x`` ``(1, 3, H, W)``."""
        feats = self._features(x, self.layers, detach=False)
        content = content_loss(feats[self.content_layer], self.content_target)
        style = sum(
            (w * style_layer_loss(feats[name], target) for w, name, target in zip(self.layer_weights, self.style_layers, self.style_targets)),
            torch.zeros((), device=x.device, dtype=x.dtype),
        )
        tv = total_variation(x) if self.tv_weight else torch.zeros((), device=x.device, dtype=x.dtype)
        return {"content": content, "style": style, "tv": tv}

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        t = self.terms(x)
        total = self.content_weight * t["content"] + self.style_weight * t["style"] + self.tv_weight * t["tv"]
        return total, t


@dataclass
class StyleResult:
    """What :func:`stylize` made: ``image`` ``(3, H, W)`` in [0, 1] and the loss ``history``.

    ``history[0]`` holds the (unweighted) ``content``/``style``/``tv`` terms and the weighted ``total``
    at the initial image, ``history[i]`` those after iteration ``i``.
    """

    image: torch.Tensor
    history: list[dict[str, float]]
    content_layer: str
    style_layers: list[str]
    weights: dict[str, float] = field(default_factory=dict)
    evaluations: int = 0
    seconds: float = 0.0

    @property
    def style_reduction(self) -> float:
        """Initial style loss divided by the final one."""
        return self.history[0]["style"] / max(self.history[-1]["style"], 1e-30)


def stylize(
    model: nn.Module,
    content: torch.Tensor,
    style: torch.Tensor | Sequence[torch.Tensor],
    *,
    backbone: str | None = None,
    content_layer: str | None = None,
    style_layers: Sequence[str] | None = None,
    style_blend: Sequence[float] | None = None,
    content_weight: float | None = None,
    style_weight: float | None = None,
    style_layer_weights: Sequence[float] | None = None,
    tv_weight: float | None = None,
    steps: int = 300,
    optimizer: str = "lbfgs",
    lr: float | None = None,
    init: str | torch.Tensor = "content",
    preserve_color: bool = False,
    generator: torch.Generator | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    callback: Callable[[Step], None] | None = None,
) -> StyleResult:
    """Render ``content`` in the style of ``style`` (one image or several, blended).

    Args:
        model: a CNN taking ImageNet-normalized input (``mean``/``std``); it is left unchanged.
        content, style: ``(3, H, W)`` images in [0, 1]; the styles may have any size.
        backbone: architecture name (``"vgg19"``, ``"squeezenet1_0"``, ``"mobilenet_v2"``) whose
            defaults fill in the layers and weights not given, and whose aliases (``relu4_2``) work.
        content_layer, style_layers: dotted layer names (or aliases).
        style_blend: one weight per style image (normalized to sum 1); the target Grams are blended.
        content_weight, style_weight, tv_weight: weights of the three terms (see :mod:`.losses`).
        style_layer_weights: ``w_l`` per style layer (default ``1/L``; per-backbone defaults scale
            each layer by its typical Gram size, like Gatys' rescaled VGG).
        steps: optimizer iterations (L-BFGS: one update with line search each).
        init: ``"content"``, ``"noise"`` (uniform, from ``generator``) or an image tensor.
        preserve_color: keep the content's chroma (YIQ I and Q) and take only luminance from the result.
        callback: called after every iteration with a :class:`~cnnlens.style._optim.Step`.

    Example:
        >>> import torch, torchvision
        >>> net = torchvision.models.squeezenet1_0().eval()
        >>> out = stylize(net, torch.rand(3, 64, 64), torch.rand(3, 64, 64), backbone="squeezenet1_0", steps=2)
        >>> out.image.shape
        torch.Size([3, 64, 64])
    """
    spec = BACKBONES.get(backbone) if backbone else None
    if content_layer is None:
        if spec is None:
            raise CnnlensError("give content_layer (or a backbone with defaults: " + ", ".join(sorted(BACKBONES)) + ")")
        content_layer = spec.content_layer
    if style_layers is None:
        if spec is None:
            raise CnnlensError("give style_layers (or a backbone with defaults: " + ", ".join(sorted(BACKBONES)) + ")")
        style_layers = list(spec.style_layers)
        if style_layer_weights is None and spec.style_layer_weights is not None:
            style_layer_weights = spec.style_layer_weights
    content_layer = resolve_layer_alias(backbone, content_layer)
    style_layers = [resolve_layer_alias(backbone, name) for name in style_layers]
    weights = {
        "content_weight": content_weight if content_weight is not None else (spec.content_weight if spec else 1.0),
        "style_weight": style_weight if style_weight is not None else (spec.style_weight if spec else 1e3),
        "tv_weight": tv_weight if tv_weight is not None else (spec.tv_weight if spec else 0.0),
    }
    styles = [style] if isinstance(style, torch.Tensor) else list(style)
    content_b = _batch(content, "content")
    start = time.perf_counter()
    with eval_mode(model):
        objective = StyleObjective(
            model, content_b, styles, content_layer=content_layer, style_layers=style_layers, style_blend=style_blend,
            style_layer_weights=style_layer_weights, mean=mean, std=std, **weights,
        )
        device, dtype = _device_dtype(model)
        x0 = _initial_image(init, content_b, generator).to(device, dtype)
        image, history, evaluations = optimize_pixels(x0, objective, steps=steps, optimizer=optimizer, lr=lr, callback=callback)
    image = image[0].cpu()
    if preserve_color:
        image = transfer_luminance(image, content_b[0].to(image))
    return StyleResult(
        image=image, history=history, content_layer=content_layer, style_layers=list(style_layers), weights=weights,
        evaluations=evaluations, seconds=time.perf_counter() - start,
    )


def _initial_image(init: str | torch.Tensor, content: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if isinstance(init, torch.Tensor):
        return _batch(init, "init").clone()
    if init == "content":
        return content.clone()
    if init == "noise":
        return torch.rand(content.shape, generator=generator, dtype=torch.float32)
    raise CnnlensError(f"unknown init {init!r}; use content or noise")
