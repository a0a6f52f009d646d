"""Project one unit's activation back to pixels: deconvnet, guided backprop, plain gradient.

All three are the gradient of one unit with respect to the input pixels, with a different rule for
the backward pass of every ReLU-family nonlinearity (``g`` is the gradient arriving at its output,
``x`` its input, ``m`` its local derivative: ``x > 0`` for ReLU, ``0 < x < 6`` for ReLU6):

- ``gradient``:  ``g * m``             (captum ``Saliency(abs=False)``)
- ``deconvnet``: ``relu(g)``           (Zeiler & Fergus 2014; captum ``Deconvolution``)
- ``guided``:    ``relu(g) * m``       (Springenberg et al. 2015; captum ``GuidedBackprop``)

Max-pooling passes the gradient to the position that won the forward pass, which is exactly
Zeiler & Fergus' "switches".

captum applies the rule with backward hooks on ``nn.ReLU`` modules only. So on torchvision
googlenet and inception_v3 (``BasicConv2d`` calls ``F.relu``), on the last ReLU of densenet
(``F.relu`` in ``forward``) and on every ReLU6 of mobilenet_v2 (``nn.ReLU6`` is a ``Hardtanh``
module that calls ``F.hardtanh(x, 0, 6)``) it silently returns the plain gradient. cnnlens runs
captum's methods inside :class:`ReLUGradientMode`, a :class:`torch.overrides.TorchFunctionMode`
scoped to the call that routes every ReLU-family call (``F.relu``, ``torch.relu(_)``,
``Tensor.relu(_)``, ``F.relu6``, ``F.hardtanh(_)`` with ``min_val=0``; in place or not) through an
autograd function with the same rule. ``nn.ReLU`` modules call ``F.relu`` too, so they get the rule
from both captum's hook and the mode; both rules are idempotent (``relu(relu(g)) = relu(g)``), so
the result equals captum's wherever captum is right (vgg16, resnets) and is right where it is not.
Reused ReLU modules (resnet blocks call ``self.relu`` two or three times) are handled per call.

A model with no ReLU-family nonlinearity on the way to the unit (LeNet-5's tanh, SiLU, GELU) has
nothing to reroute: there deconvnet and guided backprop *are* the plain gradient, and
:class:`Projection` says so (``methods_equal_gradient``, ``warnings``, the figure).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..address import LOGITS, Unit, resolve_unit
from ..errors import CnnlensError
from ..geometry import layer_geometry
from ..hooks import StopForward, capture, eval_mode, forward_until
from ..layers import layer_name, model_device, model_dtype
from ..pixelnet import image_preprocessing, unwrap
from ..pixels import Preprocessing, as_pixels, default_fit
from ..receptive_field import ReceptiveField
from ..registry import ModelInfo, default_layers, model_info
from ..results import Result

DECONV_FAR = 100.0  # a deconvnet projection this many times the gradient's size gets a note saying why

__all__ = ["METHODS", "Projection", "ReLUGradientMode", "UnitGradient", "check_methods", "project", "relu_rule", "unit_gradients"]

METHODS = ("deconvnet", "guided", "gradient")


class _RuleReLU(torch.autograd.Function):
    """``clamp(x, 0, upper)`` forward; deconvnet (``relu(g)``) or guided (``relu(g) * m``) backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, guided: bool, upper: float) -> torch.Tensor:  # type: ignore[override]
        out = x.clamp_min(0) if math.isinf(upper) else x.clamp(0, upper)
        ctx.guided = guided
        ctx.upper = upper
        if guided:
            ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:  # type: ignore[override]
        grad = grad.clamp_min(0)
        if ctx.guided:
            (out,) = ctx.saved_tensors
            mask = out > 0
            if not math.isinf(ctx.upper):
                mask = mask & (out < ctx.upper)
            grad = grad * mask.to(grad.dtype)
        return grad, None, None


def _arg(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _relu_call(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[bool, float] | None:
    """``(inplace, upper)`` when ``func(*args, **kwargs)`` is a ReLU-family call, else None."""
    if func in (F.relu, torch.relu, torch.Tensor.relu):
        return bool(_arg(args, kwargs, 1, "inplace", False)) if func is F.relu else False, math.inf
    if func in (torch.relu_, F.relu_, torch.Tensor.relu_):
        return True, math.inf
    if func is F.relu6:
        return bool(_arg(args, kwargs, 1, "inplace", False)), 6.0
    if func in (F.hardtanh, F.hardtanh_):
        low = float(_arg(args, kwargs, 1, "min_val", -1.0))
        high = float(_arg(args, kwargs, 2, "max_val", 1.0))
        if low != 0.0 or high <= 0.0:
            return None  # a real hardtanh (-1..1) is no ReLU
        return (func is F.hardtanh_) or bool(_arg(args, kwargs, 3, "inplace", False)), high
    return None


class ReLUGradientMode(TorchFunctionMode):
    """Inside the mode, every ReLU-family call that autograd records uses the ``rule``'s backward.

    ``rule`` is ``"deconvnet"`` or ``"guided"``; ``"gradient"`` leaves every call as it is and only
    counts. ``calls`` counts the ReLU-family calls seen (ReLU, ReLU6, hardtanh with ``min_val=0``).
    In-place calls stay in place (the result is copied into the input), so code that relies on the
    side effect keeps working.
    """

    def __init__(self, rule: str) -> None:
        super().__init__()
        if rule not in METHODS:
            raise CnnlensError(f"rule {rule!r} unknown; one of {', '.join(METHODS)}", param="rule")
        self.rule = rule
        self.guided = rule == "guided"
        self.calls = 0

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        try:
            found = _relu_call(func, args, kwargs)
        except TypeError:  # unhashable or odd callables are never ReLUs
            found = None
        if found is None:
            return func(*args, **kwargs)
        x = args[0] if args else kwargs.get("input")
        if not isinstance(x, torch.Tensor) or not torch.is_grad_enabled() or not x.requires_grad:
            return func(*args, **kwargs)
        self.calls += 1
        if self.rule == "gradient":
            return func(*args, **kwargs)
        inplace, upper = found
        out = _RuleReLU.apply(x, self.guided, upper)
        if inplace:
            x.copy_(out)
            return x
        return out


@contextlib.contextmanager
def relu_rule(method: str) -> Iterator[ReLUGradientMode]:
    """``ReLUGradientMode(method)``: the rule of deconvnet/guided, only counting for the gradient."""
    with ReLUGradientMode(method) as mode:
        yield mode


def check_methods(methods: str | Sequence[str], name: str = "methods") -> tuple[str, ...]:
    """``methods`` as a tuple of known method names (one name or several, duplicates dropped)."""
    items = [methods] if isinstance(methods, str) else list(methods)
    if not items:
        raise CnnlensError(f"{name} is empty; give one or more of {', '.join(METHODS)}", param=name)
    for m in items:
        if m not in METHODS:
            from ..errors import did_you_mean

            raise CnnlensError(f"{name}: unknown method {m!r}{did_you_mean(str(m), METHODS)}; one of {', '.join(METHODS)}", param=name)
    return tuple(dict.fromkeys(items))


class _UnitOutput(nn.Module):
    """``model(normalize(x))`` cut at ``layer``, one unit per example: ``out[b, channel[b], i[b], j[b]]``.

    The model is a child of this wrapper so that captum's ``model.apply`` reaches its ReLU modules.
    """

    def __init__(self, model: nn.Module, layer: str, channel: torch.Tensor, position: torch.Tensor | None, preprocessing: Preprocessing | None) -> None:
        super().__init__()
        self.model = model
        self.layer = layer
        self.channel = channel
        self.position = position
        self.preprocessing = preprocessing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preprocessing is not None:
            x = self.preprocessing.normalize(x)
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
class UnitGradient:
    """What :func:`unit_gradients` returns: one unit per example and its gradient under ``method``.

    ``gradient`` has the input's shape, on the CPU. ``relu_calls`` counts the ReLU-family calls on
    the way to the unit (for every method); ``routed`` is how many took the method's rule (0 for the
    plain gradient).
    """

    gradient: torch.Tensor
    layer: str
    method: str
    channel: torch.Tensor  # (B,)
    position: torch.Tensor | None  # (B, 2) (row, col) in the layer's output; None for a (B, C) layer
    activation: torch.Tensor  # (B,) the unit's value in the forward pass
    relu_calls: int

    @property
    def routed(self) -> int:
        return 0 if self.method == "gradient" else self.relu_calls


def _as_batch(value: Any, batch: int, name: str, width: int | None = None) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.long)
    if width is None:
        t = t.reshape(-1)
        if t.numel() == 1:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise CnnlensError(f"{name} needs one value or one per example ({batch}), got {tuple(t.shape)}", param=name)
    else:
        t = t.reshape(-1, width)
        if t.shape[0] == 1:
            t = t.expand(batch, width)
        if t.shape != (batch, width):
            raise CnnlensError(f"{name} needs one (row, col) or one per example ({batch}), got {tuple(t.shape)}", param=name)
    return t.clone()


def unit_gradients(
    model: nn.Module,
    pixels: torch.Tensor,
    layer: str | nn.Module,
    *,
    channel: int | Sequence[int] | torch.Tensor | None = None,
    position: tuple[int, int] | Sequence[tuple[int, int]] | torch.Tensor | None = None,
    method: str = "deconvnet",
    preprocessing: Preprocessing | None = None,
) -> UnitGradient:
    """The gradient of one unit of ``layer`` per example with respect to the pixels, under ``method``.

    The building block of :func:`project` (one image, a unit address, every method) and of the
    projections of :func:`~cnnlens.units.top_patches` (a batch, one unit per example).

    Args:
        model: any model; it is left exactly as it was (hooks, train/eval flags, ``requires_grad``,
            ``.grad``, in-place flags, BatchNorm statistics).
        pixels: ``(B, C, H, W)`` pixels in [0, 1], already at the model's size and channels.
        layer: dotted layer name (``""`` for the model's output); a ``(B, C, H, W)`` or ``(B, C)`` output.
        channel: channel per example (one value for all); default: the strongest anywhere in the map.
        position: ``(row, col)`` in the layer's output; default: where ``channel`` is strongest.
        method: ``deconvnet``, ``guided`` or ``gradient``.
        preprocessing: the normalization applied inside (default: the model's, :func:`cnnlens.model_info`).
    """
    import captum.attr

    (method,) = check_methods(method, "method")
    if not isinstance(pixels, torch.Tensor) or pixels.dim() != 4:
        raise CnnlensError("pixels must be a (B, C, H, W) tensor", param="pixels")
    net, wrapped = unwrap(model)
    prep = preprocessing or wrapped or model_info(model).preprocessing
    norm = None if all(m == 0 for m in prep.mean) and all(s == 1 for s in prep.std) else prep
    name = layer_name(net, layer)
    batch = pixels.shape[0]
    device = model_device(net)
    x = pixels.detach().to(device)
    dtype = model_dtype(net)
    if dtype != x.dtype:
        x = x.to(dtype)
    with eval_mode(net, freeze=True):
        with torch.no_grad():
            if name:
                act = forward_until(net, norm.normalize(x) if norm else x, name)[name]
            else:
                act = net(norm.normalize(x) if norm else x)
        if not isinstance(act, torch.Tensor) or act.dim() not in (2, 4):
            shape = tuple(act.shape) if isinstance(act, torch.Tensor) else type(act).__name__
            raise CnnlensError(f"layer {name or LOGITS!r} outputs {shape}; need (B, C, H, W) or (B, C)", param="layer")
        act = act.float().cpu()
        if channel is None:
            peak = act.flatten(2).amax(2) if act.dim() == 4 else act
            channels = peak.argmax(1)
        else:
            channels = _as_batch(channel, batch, "channel")
        bad = [int(c) for c in channels if not 0 <= int(c) < act.shape[1]]
        if bad:
            raise CnnlensError(f"channel {bad[0]} out of range: {name or LOGITS} has channels 0..{act.shape[1] - 1}", param="channel")
        b = torch.arange(batch)
        positions: torch.Tensor | None = None
        if act.dim() == 4:
            h, w = act.shape[-2:]
            if position is None:
                flat = act[b, channels].flatten(1).argmax(1)
                positions = torch.stack([flat // w, flat % w], dim=1)
            else:
                positions = _as_batch(position, batch, "position", 2)
                outside = [tuple(p) for p in positions.tolist() if not (0 <= p[0] < h and 0 <= p[1] < w)]
                if outside:
                    raise CnnlensError(f"position {outside[0][0]},{outside[0][1]} outside the {h}x{w} map of {name}", param="position")
            activation = act[b, channels, positions[:, 0], positions[:, 1]]
        else:
            if position is not None:
                raise CnnlensError(f"position: layer {name or LOGITS!r} has no spatial positions (output {tuple(act.shape)})", param="position")
            activation = act[b, channels]
        unit = _UnitOutput(net, name, channels, positions, norm)
        inp = x.clone()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # captum warns that it sets (and then removes) hooks
            with relu_rule(method) as mode:
                if method == "gradient":
                    grad = captum.attr.Saliency(unit).attribute(inp, abs=False)
                elif method == "deconvnet":
                    grad = captum.attr.Deconvolution(unit).attribute(inp)
                else:
                    grad = captum.attr.GuidedBackprop(unit).attribute(inp)
    return UnitGradient(grad.detach().float().cpu(), name, method, channels, positions, activation.detach(), mode.calls)


@dataclass(repr=False)
class Projection(Result):
    """What :func:`project` returns: one unit of one image projected back to pixels by each method.

    Attributes:
        image: ``(C, H, W)`` the pixels the model saw (resized and cropped), on the CPU.
        projections: method -> ``(C, H, W)`` gradient of the unit with respect to ``image`` under
            that method's rule, on the CPU.
        unit: the unit (layer, channel, position; the class name for ``logits:CLASS``).
        activation: the unit's value.
        receptive_field: the layer's receptive field (``"global"`` after global pooling; ``None``
            when it cannot be followed).
        box: ``(top, left, bottom, right)`` of the unit's receptive field in ``image`` (may leave
            it; bottom/right exclusive), or ``None``.
        relu_calls: ReLU-family calls on the way to the unit.
        relative_difference: method -> ``|p - gradient| / |gradient|`` (``None`` when the gradient is 0).
        dead: the unit does not fire on this image (activation <= 0).
        warnings: dead unit, methods equal to the gradient (no ReLU-family nonlinearity).
    """

    image: torch.Tensor
    projections: dict[str, torch.Tensor]
    unit: Unit
    activation: float
    receptive_field: ReceptiveField | str | None
    box: tuple[int, int, int, int] | None
    relu_calls: int
    relative_difference: dict[str, float | None]
    dead: bool
    info: ModelInfo
    image_name: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def methods(self) -> list[str]:
        return list(self.projections)

    @property
    def methods_equal_gradient(self) -> bool:
        """True when no ReLU-family nonlinearity lies on the way: deconvnet = guided = gradient."""
        return self.relu_calls == 0

    def routed(self, method: str) -> int:
        """ReLU-family calls that took ``method``'s rule (0 for the gradient)."""
        return 0 if method == "gradient" else self.relu_calls

    def to_dict(self) -> dict[str, Any]:
        rf = self.receptive_field
        return {
            **self.info.to_dict(),
            "image": self.image_name,
            "image_size": list(self.image.shape[-2:]),
            **self.unit.to_dict(),
            "position": list(self.unit.position) if self.unit.position is not None else None,
            "activation": self.activation,
            "dead": self.dead,
            "receptive_field": rf.to_dict() if isinstance(rf, ReceptiveField) else rf,
            "box": list(self.box) if self.box is not None else None,
            "relu_family_calls": self.relu_calls,
            "methods_equal_gradient": self.methods_equal_gradient,
            "methods": {
                m: {
                    "relu_calls_routed": self.routed(m),
                    "relative_difference_from_gradient": self.relative_difference.get(m),
                    "abs_sum": float(p.abs().sum()),
                }
                for m, p in self.projections.items()
            },
            "warnings": list(self.warnings),
        }

    def figure(self, *, percentile: float = 99.5, title: str | None = None) -> Any:
        """The image beside each projection, the receptive-field box drawn (:func:`cnnlens.units.plot_projection`)."""
        from .plots import plot_projection

        return plot_projection(self, percentile=percentile, title=title)

    def _summary(self) -> dict[str, Any]:
        return {
            "model": self.info.name,
            "weights": self.info.weights_label,
            "unit": str(self.unit),
            "activation": self.activation,
            "box": self.box,
            "relative_difference": {m: None if v is None else round(v, 4) for m, v in self.relative_difference.items()},
            **({"warnings": self.warnings} if self.warnings else {}),
        }


def _default_unit(model: nn.Module) -> Unit:
    return Unit(default_layers(model, "last_spatial")[0])


def project(
    model: nn.Module,
    image: Any,
    unit: str | Unit | None = None,
    *,
    methods: str | Sequence[str] = METHODS,
    preprocessing: Preprocessing | None = None,
    size: int | None = None,
) -> Projection:
    """Project one unit of ``image`` back to pixels with deconvnet, guided backprop and the gradient.

    Args:
        model: any image model (e.g. from :func:`cnnlens.create_model`); left exactly as it was.
        image: one image as pixels in [0, 1]: a path, PIL image, array, ``(C, H, W)`` or
            ``(1, C, H, W)`` tensor. It is resized and centre-cropped like the model's weights expect.
        unit: ``LAYER``, ``LAYER:CHANNEL``, ``LAYER:CHANNEL@Y,X`` or ``logits:CLASS``; a missing
            channel or position is the strongest one on this image; ``None``: the strongest unit of
            the model's last spatial layer.
        methods: one or more of ``deconvnet``, ``guided``, ``gradient`` (the relative difference of
            each from the plain gradient is always computed).
        preprocessing: resize, crop and normalization (default: ``model_info(model).preprocessing``).
        size: square side to resize and crop to instead of the preprocessing's.

    Returns:
        :class:`Projection` with the projections, the unit, its activation, the receptive-field box,
        each method's relative difference from the gradient and the ReLU-family calls routed.

    Example:
        >>> import cnnlens
        >>> model = cnnlens.create_model("resnet18", seed=0)
        >>> p = project(model, torch.rand(3, 64, 64), "layer2:5", size=64)
        >>> sorted(p.projections), p.unit.layer, p.unit.channel, p.relu_calls > 0
        (['deconvnet', 'gradient', 'guided'], 'layer2', 5, True)
    """
    wanted = check_methods(methods)
    prep = image_preprocessing(model, preprocessing, size)
    pixels = as_pixels(image, prep, fit=default_fit(image, size=size, preprocessing=prep), name="image")
    if pixels.shape[0] != 1:
        raise CnnlensError(f"image must be one image, not a batch of {pixels.shape[0]}; project them one at a time", param="image")
    net, _ = unwrap(model)
    u = _default_unit(net) if unit is None else resolve_unit(unit, net)
    layer = "" if u.is_logits else u.layer
    # the plain gradient first: the reference of the relative differences, and the unit it picks
    # (strongest channel/position) is then fixed for every method
    runs: dict[str, UnitGradient] = {}
    try:
        ref = unit_gradients(model, pixels, layer, channel=u.channel, position=u.position, method="gradient", preprocessing=prep)
    except CnnlensError as exc:
        if exc.param in ("channel", "position", "layer"):
            raise CnnlensError(f"unit {u}: {exc}", param="unit") from None
        raise
    runs["gradient"] = ref
    channel = int(ref.channel[0])
    position = None if ref.position is None else (int(ref.position[0, 0]), int(ref.position[0, 1]))
    for m in wanted:
        if m not in runs:
            runs[m] = unit_gradients(model, pixels, layer, channel=channel, position=position, method=m, preprocessing=prep)
    resolved = u if u.is_logits else Unit(u.layer, channel, position)
    base = ref.gradient.norm()
    relative = {m: (None if float(base) == 0 else float((runs[m].gradient - ref.gradient).norm() / base)) for m in wanted}
    activation = float(ref.activation[0])
    h, w = pixels.shape[-2:]
    rf: ReceptiveField | str | None = "global" if u.is_logits else None
    box = None
    if not u.is_logits:
        try:
            rf, _ = layer_geometry(model, layer, (h, w), pixels.shape[1])
        except CnnlensError:  # the box is an extra: a model the meta-device report cannot follow still projects
            rf = None
        if isinstance(rf, ReceptiveField) and position is not None:
            box = rf.box(*position)
    dead = activation <= 0
    notes = []
    if dead:
        notes.append(
            f"unit {resolved} does not fire on this image (activation {activation:.4g}): the projections show what would "
            "drive it, not what it saw; pick another unit or image"
        )
    if ref.relu_calls == 0:
        notes.append(f"{model_info(model).name} has no ReLU-family nonlinearity before {resolved.layer}: deconvnet and guided backprop equal the plain gradient")
    far = relative.get("deconvnet")
    if far is not None and far > DECONV_FAR:
        relu6 = any(isinstance(mod, nn.ReLU6) or (isinstance(mod, nn.Hardtanh) and mod.min_val == 0) for mod in model.modules())
        why = (
            "Zeiler & Fergus' rule passes every positive gradient through each ReLU6, and the linear bottlenecks add it up block by block"
            if relu6 else "Zeiler & Fergus' rule passes every positive gradient through each ReLU, whatever the unit did"
        )
        notes.append(f"deconvnet is {far:.0f}x the gradient's size: {why}")
    name = str(image) if isinstance(image, (str, Path)) else None
    return Projection(
        image=pixels[0].cpu(),
        projections={m: runs[m].gradient[0] for m in wanted},
        unit=resolved,
        activation=activation,
        receptive_field=rf,
        box=box,
        relu_calls=ref.relu_calls,
        relative_difference=relative,
        dead=dead,
        info=model_info(model),
        image_name=name,
        warnings=notes,
    )
