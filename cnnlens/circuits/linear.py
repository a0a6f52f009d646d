"""Expanded weights (Olah et al. 2020, "Visualizing Weights"): the effective linear map between two
layers of a network, across BatchNorm, residual adds, concatenations and pooling, with the
nonlinearities between them set aside.

How: the source layer's output is replaced by a variable ``z``, and the network runs inside
:class:`LinearizedMode`, a :class:`torch.overrides.TorchFunctionMode` in which every elementwise
activation (ReLU, ReLU6, hardtanh, GELU, SiLU, hardswish, ELU, leaky ReLU, sigmoid, tanh; functional
or module, in place or not) is the identity and every max pooling is the average pooling of the same
window (Olah et al. treat max pooling so). What remains between the two layers -- convolutions,
BatchNorm in eval mode, adds, concatenations, average pooling -- is affine in ``z``, so its Jacobian
is the composed kernel, exact. A multiplicative gate (squeeze-and-excitation) keeps the map from being
linear; that is checked, and refused in one line.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..address import LOGITS
from ..errors import CnnlensError
from ..hooks import StopForward, capture, eval_mode, hooked
from ..layers import get_layer, model_device, model_dtype
from ..pixelnet import image_preprocessing, unwrap

__all__ = ["LinearizedMode", "class_weights", "expanded_weights", "linear_map"]

_IDENTITY = {
    F.relu, torch.relu, torch.Tensor.relu, F.relu_, torch.relu_, torch.Tensor.relu_, F.relu6, F.hardtanh, F.hardtanh_, F.gelu, F.silu,
    F.hardswish, F.elu, F.elu_, F.leaky_relu, F.leaky_relu_, torch.sigmoid, torch.Tensor.sigmoid, F.sigmoid, torch.tanh, torch.Tensor.tanh,
    F.tanh, F.mish, F.hardsigmoid, F.selu, F.celu,
}  # fmt: skip
_INPLACE = {F.relu_, torch.relu_, torch.Tensor.relu_, F.hardtanh_, F.elu_, F.leaky_relu_}


class LinearizedMode(TorchFunctionMode):
    """Inside the mode, elementwise activations are the identity and max pooling is average pooling."""

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        try:
            known = func in _IDENTITY
        except TypeError:
            known = False
        if known:
            x = args[0] if args else kwargs.get("input")
            inplace = func in _INPLACE or kwargs.get("inplace") is True or any(a is True for a in args[1:])
            return x if inplace else x.clone()
        if func is F.max_pool2d:
            x = args[0] if args else kwargs["input"]
            names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
            given = dict(zip(names, args[1:]))
            given.update({k: v for k, v in kwargs.items() if k in names})
            if given.get("dilation") not in (None, 1, (1, 1)) or given.get("return_indices"):
                raise CnnlensError("expanded weights: a dilated max pooling or one that returns indices has no average-pooling equivalent")
            stride = given.get("stride") or given["kernel_size"]
            return F.avg_pool2d(x, given["kernel_size"], stride, given.get("padding", 0), bool(given.get("ceil_mode", False)), False)
        if func is F.adaptive_max_pool2d:
            x = args[0] if args else kwargs["input"]
            return F.adaptive_avg_pool2d(x, args[1] if len(args) > 1 else kwargs["output_size"])
        return func(*args, **kwargs)


def _check_layer(net: nn.Module, name: str, param: str) -> None:
    if name == LOGITS and param == "target":
        return
    try:
        get_layer(net, name)
    except CnnlensError as exc:
        raise CnnlensError(f"{param}: {exc}", param=param) from None


def linear_map(model: nn.Module, source: str, target: str, size: int | None = None) -> tuple[Any, torch.Tensor, tuple[int, ...]]:
    """``(f, z0, source_shape)``: ``f(z)`` is ``target``'s output (``(B, ...)``) when ``source``'s output
    is ``z`` (``(B, C, H, W)``), the network linearized (:class:`LinearizedMode`); ``z0`` is zeros of
    the source's shape at batch 1. Raises when the map is not linear or ``target`` does not depend on
    ``source``."""
    net, _ = unwrap(model)
    _check_layer(net, source, "source")
    _check_layer(net, target, "target")
    if source == target:
        raise CnnlensError(f"source and target are the same layer {source!r}", param="target")
    prep = image_preprocessing(model, None, size)
    c, h, w = prep.input_size
    device, dtype = model_device(net), model_dtype(net)
    source_module = get_layer(net, source)
    seen: dict[str, Any] = {}

    def shape_hook(module: nn.Module, args: Any, output: Any) -> None:
        seen["shape"] = tuple(output.shape) if isinstance(output, torch.Tensor) else None
        seen["calls"] = seen.get("calls", 0) + 1

    with torch.no_grad(), eval_mode(net), hooked([(source_module, shape_hook)]):
        net(torch.zeros(1, c, h, w, device=device, dtype=dtype))
    if not seen.get("shape"):
        raise CnnlensError(f"source: {source} gives no tensor output in a forward pass", param="source")
    if seen["calls"] > 1:
        raise CnnlensError(f"source: {source} is called {seen['calls']} times in a forward pass (a shared module); name a module called once", param="source")
    shape = seen["shape"]

    def f(z: torch.Tensor) -> torch.Tensor:
        batch = z.shape[0]

        def replace(module: nn.Module, args: Any, output: Any) -> torch.Tensor:
            return z

        def run(inputs: int) -> torch.Tensor:
            x = torch.zeros(inputs, c, h, w, device=device, dtype=dtype)
            with LinearizedMode(), hooked([(source_module, replace)]):
                if target == LOGITS:
                    out = net(x)
                    return out if isinstance(out, torch.Tensor) else getattr(out, "logits", out)
                with capture(net, [target], detach=False, clone=False, stop=True) as rec:
                    try:
                        net(x)
                    except StopForward:
                        pass
                if target not in rec.outputs:
                    raise CnnlensError(f"target: {target} gives no tensor output in a forward pass", param="target")
                return rec.outputs[target]

        # the layers before the source see zeros: one image of them is enough where the paths that
        # bypass the source join it by broadcasting (adds); a concatenation needs the whole batch
        if batch > 1:
            try:
                out = run(1)
                if out.shape[0] == batch:
                    return out
            except RuntimeError:
                pass
        return run(batch)

    z0 = torch.zeros(shape, device=device, dtype=dtype)
    with eval_mode(net), torch.no_grad():
        g = torch.Generator(device="cpu").manual_seed(0)
        a = torch.randn(shape, generator=g).to(device, dtype)
        b = torch.randn(shape, generator=g).to(device, dtype)
        out = f(torch.cat([z0, a, b, a + b]))
        base, fa, fb, fab = out[0], out[1], out[2], out[3]
        scale = float((fa - base).abs().max()) + float((fb - base).abs().max())
        if scale == 0.0:
            raise CnnlensError(f"target: {target} does not depend on {source} (it runs before it, or on another branch)", param="target")
        if float((fab - fa - fb + base).abs().max()) > 1e-3 * scale:
            raise CnnlensError(
                f"the map from {source} to {target} is not linear once activations are set aside (a gate multiplies two paths, "
                "as in squeeze-and-excitation): expanded weights do not exist there; use contributions",
                param="target",
            )
    return f, z0, shape  # type: ignore[return-value]


def expanded_weights(model: nn.Module, source: str, target: str, *, size: int | None = None, chunk: int = 64) -> torch.Tensor:
    """The effective kernel from ``source`` to ``target`` (layer names), ``(target channels, source
    channels, kh, kw)``: how the target unit at the centre of its map responds to a unit of each
    source channel at each offset of its footprint, nonlinearities set aside (module docstring).

    The footprint is the window of source positions the centre target unit depends on (``kh × kw``;
    ``1 × 1`` from a map to the next 1x1 convolution); a ``target`` without positions (a linear layer,
    ``logits``) has the source's whole map as its footprint. ``size``: the input side the maps are
    computed at (default the model's); a footprint cut by the border of the source map is refused,
    so give a larger ``size`` then.

    Example:
        >>> import torch.nn as nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 2, 1))
        >>> tuple(expanded_weights(net, "0", "4", size=32).shape)  # nonlinearities set aside: a 3x3 conv then a 1x1
        (2, 4, 3, 3)
    """
    net, _ = unwrap(model)
    with eval_mode(net):
        f, z0, shape = linear_map(model, source, target, size)
        z = z0.clone().requires_grad_(True)
        with torch.enable_grad():
            out = f(z)
            flat = out[0]
            if flat.dim() == 3:
                centre = (flat.shape[1] // 2, flat.shape[2] // 2)
                picked = flat[:, centre[0], centre[1]]
            else:
                centre = None
                picked = flat.reshape(-1)
            n = picked.shape[0]
            rows = []
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                eye = torch.zeros(stop - start, n, device=picked.device, dtype=picked.dtype)
                eye[torch.arange(stop - start), torch.arange(start, stop)] = 1
                try:
                    (g,) = torch.autograd.grad(picked, z, eye, retain_graph=True, is_grads_batched=True)
                except RuntimeError:  # an op without a batching rule: one backward each
                    g = torch.stack([torch.autograd.grad(picked, z, eye[i], retain_graph=True)[0] for i in range(stop - start)])
                rows.append(g[:, 0].detach())
    jac = torch.cat(rows)  # (T, S, H, W)
    if centre is None or len(shape) != 4:
        return jac.cpu()
    used = jac.abs().sum(dim=(0, 1)) > 0
    if not bool(used.any()):
        return jac[:, :, :1, :1].cpu() * 0  # every weight zero: a 1x1 kernel of zeros
    ys, xs = torch.nonzero(used, as_tuple=True)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    height, width = used.shape
    whole_target = flat.shape[1] == 1 and flat.shape[2] == 1
    if not whole_target and (y0 == 0 or x0 == 0 or y1 == height - 1 or x1 == width - 1) and (height > 1 or width > 1):
        raise CnnlensError(
            f"the footprint of {target} in {source} reaches the border of its {height}x{width} map at this input size: "
            "give a larger size so that the centre unit's kernel is whole", param="size",
        )  # fmt: skip
    return jac[:, :, y0 : y1 + 1, x0 : x1 + 1].cpu()


def class_weights(model: nn.Module, source: str, *, size: int | None = None, chunk: int = 64) -> torch.Tensor:
    """``(classes, source channels)``: how much each class logit rises when every unit of a source
    channel rises by one (the expanded weights to the logits summed over positions), nonlinearities
    set aside. One batched forward per ``chunk`` channels."""
    net, _ = unwrap(model)
    with eval_mode(net), torch.no_grad():
        f, z0, shape = linear_map(model, source, LOGITS, size)
        base = f(z0).reshape(1, -1)
        cols = []
        for start in range(0, shape[1], chunk):
            stop = min(shape[1], start + chunk)
            z = z0.repeat(stop - start, *([1] * (len(shape) - 1)))
            z[torch.arange(stop - start), torch.arange(start, stop)] = 1
            cols.append((f(z).reshape(stop - start, -1) - base).T)
    return torch.cat(cols, 1).cpu()
