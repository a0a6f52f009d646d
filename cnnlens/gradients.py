"""The gradient of each image's class score with respect to a layer's output: one forward and one
backward pass that stops at the layer (the layer's output is made a leaf of the graph).

Grad-CAM reads it (:mod:`cnnlens.attribution`), the importance of a concept is gradient x concept at
its layer and TCAV's directional derivatives are its dot products with a concept direction
(:mod:`cnnlens.concepts`): one implementation for all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from .errors import CnnlensError
from .hooks import eval_mode, hooked
from .layers import get_layer
from .pixelnet import class_logits

__all__ = ["LayerGradient", "fill_targets", "layer_gradient", "single_output"]


@dataclass
class LayerGradient:
    """A layer's output and the gradient of each image's target logit with respect to it (same
    shape, detached); the logits; the targets used."""

    activation: torch.Tensor
    gradient: torch.Tensor
    logits: torch.Tensor
    targets: torch.Tensor


def fill_targets(logits: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """Each image's target class: ``targets`` where given (>= 0), else its top class; classes
    outside the logits are refused in one line."""
    top = logits.argmax(1)
    if targets is None:
        return top
    t = targets.to(top.device)
    if int(t.max()) >= logits.shape[1]:
        raise CnnlensError(f"target: class {int(t.max())} out of range, the model has classes 0..{logits.shape[1] - 1}", param="target")
    return torch.where(t >= 0, t, top)


def single_output(layer: str, outputs: list[Any]) -> torch.Tensor:
    """The one tensor ``layer`` output in a forward pass; a one-line error when it did not run, ran
    several times (a reused module) or gave no tensor."""
    if not outputs:
        raise CnnlensError(f"layer {layer} did not run in the forward pass; pick a layer the model uses", param="layer")
    if len(outputs) > 1:
        raise CnnlensError(f"layer {layer} runs {len(outputs)} times in one forward pass (a reused module); pick a layer that runs once", param="layer")
    if not isinstance(outputs[0], torch.Tensor):
        raise CnnlensError(f"layer {layer} outputs {type(outputs[0]).__name__}, not a tensor; pick another layer", param="layer")
    return outputs[0]


def layer_gradient(net: nn.Module, pixnet: nn.Module, x: torch.Tensor, layer: str, targets: torch.Tensor | None) -> LayerGradient:
    """Run ``pixnet(x)`` once and differentiate each image's target logit with respect to the output
    of ``layer`` (a layer of ``net``, the network inside ``pixnet``); ``targets`` ``(N,)`` with -1
    (or None for all) where an image takes its top class.

    The layer's output is made a leaf of the graph (a forward hook returns a copy of it to the rest
    of the network), so the backward pass stops there: it costs only the layers above, and an
    in-place ReLU after the layer cannot overwrite the values read. The model runs in eval mode
    with frozen parameters; nothing is left on it.

    Raises:
        CnnlensError: the layer did not run, ran several times, or gave no tensor.
    """
    module = get_layer(net, layer)
    seen: list[Any] = []

    def hook(mod: nn.Module, args: Any, output: Any) -> Any:
        if not isinstance(output, torch.Tensor):
            seen.append(output)
            return None
        leaf = output.detach().requires_grad_(True)
        seen.append(leaf)
        return leaf.clone()  # the rest of the network may change it in place; the leaf stays as computed

    with eval_mode(net), torch.enable_grad():
        with hooked([(module, hook)]):
            logits = class_logits(pixnet, x)
        act = single_output(layer, seen)
        t = fill_targets(logits.detach(), targets)
        score = logits.gather(1, t.view(-1, 1)).sum()
        grad = torch.autograd.grad(score, act, allow_unused=True)[0] if score.requires_grad else None
        if grad is None:
            grad = torch.zeros_like(act)
    return LayerGradient(act.detach(), grad.detach(), logits.detach(), t)
