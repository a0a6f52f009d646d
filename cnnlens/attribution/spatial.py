"""The layer a class-activation map reads: its output as a ``(N, C, h, w)`` grid, and its gradient.

Grad-CAM (Selvaraju et al. 2017) weighs a layer's channels by the gradient of the class score. The
layer's output is read as a grid of positions:

- ``(N, C, h, w)``: a convolutional layer, as it is;
- ``(N, h, w, C)``: channels last, as the stages of torchvision's Swin Transformer output (told
  apart from the first by the input's aspect ratio: ``h / w`` is the image's, ``w / C`` is not);
- ``(N, T, C)``: tokens of a vision transformer; ``T = k + h * w`` with ``k`` leading class or
  distillation tokens, which are dropped, and the rest reshaped to the grid of the image's aspect.

:func:`attribution_layer` picks the default: the model's last layer with a spatial output
(:func:`cnnlens.default_layers` ``"last_spatial"``), unless token layers whose positions still reach
the class score come after it. In a ViT the patch tokens leave the last block unused (only the class
token reaches the head), so the default there is the last token layer with a non-zero gradient at
its patch positions and the width of the residual stream: the input norm of the last block
(``encoder.layers.encoder_layer_11.ln_1`` of ``vit_b_16``, ``blocks.11.norm1`` of timm's ViTs, where
pytorch-grad-cam's documentation puts it too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from ..errors import CnnlensError
from ..gradients import layer_gradient, single_output
from ..hooks import capture, eval_mode, hooked
from ..layers import get_layer, layer_name
from ..pixelnet import to_input
from ..pixels import Preprocessing
from ..registry import default_layers, model_info

__all__ = ["Grid", "LayerGradients", "attribution_layer", "check_layer_output", "grid_of", "layer_gradients"]

MAX_EXTRA_TOKENS = 8  # class, distillation and register tokens before the patch tokens


@dataclass(frozen=True)
class Grid:
    """How a layer's output maps to a ``(N, C, h, w)`` grid: ``layout`` is ``"nchw"``, ``"nhwc"`` or
    ``"tokens"`` (with ``skip`` leading tokens dropped)."""

    layout: str
    height: int
    width: int
    skip: int = 0

    def apply(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` (the layer's output, or its gradient) as ``(N, C, h, w)``."""
        if self.layout == "nchw":
            return t
        if self.layout == "nhwc":
            return t.permute(0, 3, 1, 2)
        patches = t[:, self.skip :, :]
        return patches.transpose(1, 2).reshape(t.shape[0], t.shape[2], self.height, self.width)

    def to_dict(self) -> dict[str, Any]:
        return {"layout": self.layout, "grid": [self.height, self.width], "skipped_tokens": self.skip}


def _aspect_close(a: float, b: float) -> bool:
    return abs(math.log(a / b)) < math.log(1.5)


def _token_grid(tokens: int, size: tuple[int, int]) -> tuple[int, int, int] | None:
    """``(skip, h, w)`` for ``tokens`` tokens of an image of ``size``, or None."""
    aspect = size[0] / size[1]
    for skip in range(0, MAX_EXTRA_TOKENS + 1):
        n = tokens - skip
        if n < 1:
            break
        w = max(1, round(math.sqrt(n / aspect)))
        for cand in (w - 1, w, w + 1):
            if cand >= 1 and n % cand == 0 and _aspect_close(n / cand / cand, aspect):
                return skip, n // cand, cand
    return None


def grid_of(shape: tuple[int, ...] | torch.Size, size: tuple[int, int]) -> Grid | None:
    """The :class:`Grid` of a layer output of ``shape`` for an input image of ``size`` ``(H, W)``;
    None when the output has no spatial positions (``(N, C)``, a 1x1 map, one token)."""
    aspect = size[0] / size[1]
    if len(shape) == 4:
        _, a, b, c = shape
        if b * c > 1 and _aspect_close(b / c, aspect):
            return Grid("nchw", b, c)
        if a * b > 1 and _aspect_close(a / b, aspect):
            return Grid("nhwc", a, b)
        return Grid("nchw", b, c) if b * c > 1 else None
    if len(shape) == 3 and shape[1] > 1:
        found = _token_grid(shape[1], size)
        if found is not None and found[1] * found[2] > 1:
            return Grid("tokens", found[1], found[2], found[0])
    return None


@dataclass
class LayerGradients:
    """One forward and backward pass: the layer's output and the gradient of each image's target
    score with respect to it, both ``(N, C, h, w)``; the logits; the targets used."""

    activations: torch.Tensor
    gradients: torch.Tensor
    logits: torch.Tensor
    targets: torch.Tensor
    grid: Grid


def check_layer_output(layer: str, outputs: list[Any], size: tuple[int, int]) -> Grid:
    """The :class:`Grid` of the one output ``layer`` produced in a forward pass on an image of
    ``size``; a one-line :class:`CnnlensError` when it did not run, ran several times, or has no
    spatial positions."""
    out = single_output(layer, outputs)
    grid = grid_of(out.shape, size)
    if grid is None:
        raise CnnlensError(
            f"layer {layer} outputs {tuple(out.shape)}, which has no spatial positions; class-activation maps need a convolutional or token layer",
            param="layer",
        )
    return grid


def layer_gradients(net: nn.Module, pixnet: nn.Module, x: torch.Tensor, layer: str, targets: torch.Tensor | None) -> LayerGradients:
    """:func:`cnnlens.gradients.layer_gradient` read as a grid of positions (:func:`check_layer_output`):
    the layer's output and each image's target-logit gradient, both ``(N, C, h, w)``."""
    got = layer_gradient(net, pixnet, x, layer, targets)
    grid = check_layer_output(layer, [got.activation], (x.shape[-2], x.shape[-1]))
    return LayerGradients(grid.apply(got.activation), grid.apply(got.gradient), got.logits, got.targets, grid)


def _spatial_outputs(net: nn.Module, pixnet: nn.Module, x: torch.Tensor) -> tuple[list[str], dict[str, tuple[int, ...]]]:
    """Layers in execution order (first call) and their output shapes for input ``x``."""
    order: list[str] = []
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str) -> Any:
        def hook(mod: nn.Module, args: Any, output: Any) -> None:
            if name not in shapes and isinstance(output, torch.Tensor):
                order.append(name)
                shapes[name] = tuple(output.shape)

        return hook

    modules = [(n, m) for n, m in net.named_modules() if n and not isinstance(m, (nn.Dropout, nn.Identity))]
    with hooked([(m, record(n)) for n, m in modules]), torch.no_grad(), eval_mode(net):
        pixnet(x)
    return order, shapes


def attribution_layer(net: nn.Module, pixnet: nn.Module, prep: Preprocessing, layer: str | nn.Module | None = None) -> str:
    """The layer class-activation maps read: ``layer`` checked (a dotted name of ``net``), or the default
    (module docstring). Raises a one-line :class:`CnnlensError` for an unknown layer, with the closest names."""
    c, h, w = prep.input_size
    x = to_input(net, torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(0)))  # a fixed probe image
    if layer is not None:
        try:
            name = layer_name(net, layer)
        except CnnlensError as exc:
            raise CnnlensError(f"layer: {exc}", param="layer") from None
        outputs: list[Any] = []
        with hooked([(get_layer(net, name), lambda mod, args, out: outputs.append(out))]), torch.no_grad(), eval_mode(net):
            pixnet(x)
        check_layer_output(name, outputs, (h, w))
        return name
    try:
        base = default_layers(net, "last_spatial")[0]
    except CnnlensError:
        base = None
    order, shapes = _spatial_outputs(net, pixnet, x)
    after = order[order.index(base) + 1 :] if base in order else order
    grids = {n: grid_of(shapes[n], (h, w)) for n in after if len(shapes[n]) == 3}
    tokens = [n for n, g in grids.items() if g is not None and g.layout == "tokens"]
    if not tokens:
        if base is None:
            raise CnnlensError(
                f"{model_info(net).name} has no layer with a spatial output; use saliency, integrated-gradients, smoothgrad or occlusion",
                param="layer",
            )
        return base
    # the last token layer whose patch positions reach the classifier. The score differentiated is a
    # fixed random projection of the classifier's input, not a logit: a random-init ViT's head is all
    # zeros (torchvision's init), which would leave every gradient 0.
    after_tokens = order[order.index(tokens[-1]) + 1 :]
    head = next((n for n in after_tokens if len(shapes[n]) == 2), None)
    taken: list[torch.Tensor] = []
    take = [(get_layer(net, head), lambda mod, args: taken.append(args[0]))] if head else []
    with hooked(take, pre=True), eval_mode(net), capture(net, tokens, grads=True) as record, torch.enable_grad():
        x.requires_grad_(True)
        out = pixnet(x)
        feats = taken[0] if taken and isinstance(taken[0], torch.Tensor) else out
        weights = torch.randn(feats.shape, generator=torch.Generator().manual_seed(0)).to(feats.device, feats.dtype)
        torch.autograd.grad((feats * weights).sum(), x)
    # the residual stream's width (not a qkv projection's three times that)
    widths = [shapes[n][-1] for n in tokens]
    width = max(set(widths), key=widths.count)
    for name in reversed(tokens):
        g = record.grads.get(name)
        if shapes[name][-1] != width:
            continue
        if g is not None and float(grids[name].apply(g).abs().amax()) > 0:  # type: ignore[union-attr]
            return name
    return base if base is not None else tokens[-1]
