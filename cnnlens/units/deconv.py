"""Project one unit's activation back to pixels: deconvnet, guided backprop, plain gradient.

All three are the gradient of one unit with respect to the input, with a different rule for the
backward pass of every ReLU (``g`` is the gradient arriving at the ReLU output, ``x`` its input):

- ``gradient``:  ``g * (x > 0)``              (captum ``Saliency(abs=False)``)
- ``deconvnet``: ``relu(g)``                  (Zeiler & Fergus 2014; captum ``Deconvolution``)
- ``guided``:    ``relu(g) * (x > 0)``        (Springenberg et al. 2015; captum ``GuidedBackprop``)

Max-pooling passes the gradient to the position that won the forward pass, which is exactly
Zeiler & Fergus' "switches".

captum applies the rule with hooks on ``nn.ReLU`` modules only, so on torchvision googlenet,
inception_v3 (``BasicConv2d`` calls ``F.relu``) and the last ReLU of densenet it silently
returns the plain gradient (landscape pitfall 2). cnnlens runs captum's methods inside
:class:`ReLUGradientMode`, a :class:`torch.overrides.TorchFunctionMode` scoped to the call that
routes every functional ReLU (``F.relu``, ``torch.relu``, ``torch.relu_``, ``Tensor.relu(_)``,
in place or not) through an autograd function with the same rule. The ``nn.ReLU`` modules call
``F.relu`` too, so they get the rule from both captum's hook and the mode; both rules are
idempotent (``relu(relu(g)) = relu(g)``), so the result is the same as captum's wherever captum
is right (vgg16, resnets), and right where captum is not. Reused ReLU modules (resnet blocks call
``self.relu`` two or three times) are handled per call, since the mode sees every call.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..errors import CnnlensError
from ..hooks import StopForward, capture, eval_mode, forward_until
from ..layers import layer_name

__all__ = ["METHODS", "Projection", "ReLUGradientMode", "project", "relu_rule"]

METHODS = ("deconvnet", "guided", "gradient")


class _RuleReLU(torch.autograd.Function):
    """ReLU forward; deconvnet (``relu(g)``) or guided (``relu(g) * (x > 0)``) backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, guided: bool) -> torch.Tensor:  # type: ignore[override]
        out = x.clamp_min(0)
        ctx.guided = guided
        if guided:
            ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        grad = grad.clamp_min(0)
        if ctx.guided:
            (out,) = ctx.saved_tensors
            grad = grad * (out > 0).to(grad.dtype)
        return grad, None


def _relu_functions() -> dict[Any, bool | None]:
    """Every torch entry point of a ReLU -> whether it is in place (None: read ``inplace``)."""
    return {
        F.relu: None,
        torch.relu: False,
        torch.relu_: True,
        F.relu_: True,
        torch.Tensor.relu: False,
        torch.Tensor.relu_: True,
    }


class ReLUGradientMode(TorchFunctionMode):
    """Inside the mode, every ReLU call that autograd records uses the ``rule``'s backward.

    ``rule`` is ``"deconvnet"`` or ``"guided"``. ``calls`` counts the ReLU calls routed. In-place
    calls stay in place (the result is copied into the input), so code that relies on the side
    effect keeps working.
    """

    def __init__(self, rule: str) -> None:
        super().__init__()
        if rule not in ("deconvnet", "guided"):
            raise CnnlensError(f"unknown ReLU rule {rule!r}; deconvnet or guided")
        self.guided = rule == "guided"
        self.calls = 0
        self._relus = _relu_functions()

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        try:
            inplace = self._relus[func]
        except (KeyError, TypeError):  # unhashable callables are never ReLUs
            return func(*args, **kwargs)
        x = args[0] if args else kwargs.get("input")
        if not isinstance(x, torch.Tensor) or not torch.is_grad_enabled() or not x.requires_grad:
            return func(*args, **kwargs)
        if inplace is None:
            inplace = bool(kwargs.get("inplace", args[1] if len(args) > 1 else False))
        self.calls += 1
        out = _RuleReLU.apply(x, self.guided)
        if inplace:
            x.copy_(out)
            return x
        return out


@contextlib.contextmanager
def relu_rule(method: str) -> Iterator[ReLUGradientMode | None]:
    """``ReLUGradientMode(method)`` for deconvnet/guided, nothing for the plain gradient."""
    if method == "gradient":
        yield None
        return
    with ReLUGradientMode(method) as mode:
        yield mode


class _Unit(nn.Module):
    """``model(x)`` cut at ``layer``, returning one unit per example: ``out[b, channel[b], i[b], j[b]]``.

    The model is a child of this wrapper so that captum's ``model.apply`` reaches its ReLU modules.
    """

    def __init__(self, model: nn.Module, layer: str, channel: torch.Tensor, position: torch.Tensor | None) -> None:
        super().__init__()
        self.model = model
        self.layer = layer
        self.channel = channel
        self.position = position

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with capture(self.model, self.layer, detach=False, stop=True) as record:
            try:
                self.model(x)
            except StopForward:
                pass
        out = record[self.layer]
        b = torch.arange(out.shape[0], device=out.device)
        c = self.channel.to(out.device)
        if out.dim() == 4:
            assert self.position is not None
            pos = self.position.to(out.device)
            return out[b, c, pos[:, 0], pos[:, 1]]
        return out.reshape(out.shape[0], out.shape[1], -1)[b, c].sum(-1)


@dataclass
class Projection:
    """What :func:`project` returns. ``gradient`` has the input's shape; the rest one entry per example."""

    gradient: torch.Tensor
    layer: str
    method: str
    channel: torch.Tensor  # (B,)
    position: torch.Tensor | None  # (B, 2) (row, col) in the layer's output; None for a (B, C) layer
    activation: torch.Tensor  # (B,) the unit's value in the forward pass
    relu_calls: int  # functional ReLU calls the mode routed (0 for the plain gradient)


def _as_batch(value: Any, batch: int, name: str, width: int | None = None) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.long)
    if width is None:
        t = t.reshape(-1)
        if t.numel() == 1:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise CnnlensError(f"{name} needs one value or one per example ({batch}), got {tuple(t.shape)}")
    else:
        t = t.reshape(-1, width)
        if t.shape[0] == 1:
            t = t.expand(batch, width)
        if t.shape != (batch, width):
            raise CnnlensError(f"{name} needs one (row, col) or one per example ({batch}), got {tuple(t.shape)}")
    return t.clone()


def project(
    model: nn.Module,
    x: torch.Tensor,
    layer: str | nn.Module,
    *,
    channel: int | list[int] | torch.Tensor | None = None,
    position: tuple[int, int] | list[tuple[int, int]] | torch.Tensor | None = None,
    method: str = "deconvnet",
) -> Projection:
    """Project one unit of ``layer`` per example back to the input with ``method``.

    Args:
        model: any model taking ``x`` (e.g. ImageNet-normalized images); it is left exactly as it was
            (hooks, train/eval flags, ``requires_grad``, ``.grad``, in-place flags).
        x: ``(B, C, H, W)`` model input.
        layer: dotted layer name; a conv-like ``(B, C, H, W)`` output or a ``(B, C)`` one (logits).
        channel: channel per example (one value for all); default: the channel with the strongest
            activation anywhere in the map.
        position: ``(row, col)`` in the layer's output; default: where ``channel`` is strongest.
        method: ``deconvnet``, ``guided`` or ``gradient``.

    Returns:
        :class:`Projection` whose ``gradient`` is d(unit)/d(x) under the method's ReLU rule.

    Example:
        >>> import torch, torchvision
        >>> net = torchvision.models.googlenet(weights=None, init_weights=True, aux_logits=False).eval()
        >>> p = project(net, torch.rand(1, 3, 64, 64), "inception3a", method="guided")
        >>> p.gradient.shape, p.relu_calls > 0
        (torch.Size([1, 3, 64, 64]), True)
    """
    import captum.attr

    if method not in METHODS:
        raise CnnlensError(f"unknown method {method!r}; one of {', '.join(METHODS)}")
    if x.dim() != 4:
        raise CnnlensError(f"input must be (B, C, H, W), not {tuple(x.shape)}")
    name = layer_name(model, layer)
    batch = x.shape[0]
    with eval_mode(model, freeze=True):
        with torch.no_grad():
            act = forward_until(model, x, name)[name]
        if act.dim() not in (2, 4):
            raise CnnlensError(f"layer {name!r} outputs shape {tuple(act.shape)}; need (B, C, H, W) or (B, C)")
        if channel is None:
            peak = act.flatten(2).amax(2) if act.dim() == 4 else act
            channels = peak.argmax(1).cpu()
        else:
            channels = _as_batch(channel, batch, "channel")
        if int(channels.max()) >= act.shape[1] or int(channels.min()) < 0:
            raise CnnlensError(f"channel {channels.tolist()} out of range: {name!r} has {act.shape[1]} channels")
        b = torch.arange(batch)
        positions: torch.Tensor | None = None
        if act.dim() == 4:
            h, w = act.shape[-2:]
            if position is None:
                maps = act.cpu()[b, channels].flatten(1)
                flat = maps.argmax(1)
                positions = torch.stack([flat // w, flat % w], dim=1)
            else:
                positions = _as_batch(position, batch, "position", 2)
                if (positions[:, 0] >= h).any() or (positions[:, 1] >= w).any() or (positions < 0).any():
                    raise CnnlensError(f"position {positions.tolist()} outside the {h}x{w} map of {name!r}")
            activation = act.cpu()[b, channels, positions[:, 0], positions[:, 1]]
        else:
            if position is not None:
                raise CnnlensError(f"layer {name!r} has no spatial positions (output {tuple(act.shape)})")
            activation = act.cpu()[b, channels]
        unit = _Unit(model, name, channels, positions)
        inp = x.detach().clone()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # captum warns that it sets (and then removes) hooks
            with relu_rule(method) as mode:
                if method == "gradient":
                    grad = captum.attr.Saliency(unit).attribute(inp, abs=False)
                elif method == "deconvnet":
                    grad = captum.attr.Deconvolution(unit).attribute(inp)
                else:
                    grad = captum.attr.GuidedBackprop(unit).attribute(inp)
                calls = mode.calls if mode is not None else 0
    return Projection(grad.detach(), name, method, channels, positions, activation.detach(), calls)
