""":class:`RelevanceMode`: LRP applied per call, so that any CNN's forward pass can be explained.

Inside the mode (a :class:`torch.overrides.TorchFunctionMode`), every call that the image's values
flow through gets a backward pass that moves *relevance* instead of the gradient:

- convolutions and fully connected calls (``F.conv*``, ``F.linear``): the composite's rule
  (:mod:`cnnlens.relevance.rules`); the first such call of the pass gets the composite's first rule;
- BatchNorm after a convolution: folded into it, on the fly (``w * g / sqrt(v + eps)``, bias
  likewise, as zennit's canonizers fold the modules); the rule then sees the folded convolution. A
  BatchNorm that follows no convolution (DenseNet's pre-activation) passes relevance on unchanged,
  as zennit's default for BatchNorm;
- sums of two image-dependent tensors (residual adds, also ``+=``), average pooling and means:
  ``R_i = x_i r / stab(sum)`` (zennit's ``Norm`` rule: the share of each summand);
- elementwise calls with one image-dependent input (ReLU, ReLU6, GELU, SiLU, scaling by or adding
  a constant, dropout): relevance passes on unchanged (zennit's ``Pass``);
- max pooling, concatenation, reshapes, slicing: the gradient itself, which moves relevance exactly
  (to the winner of a max, to the right part of a concatenation).

Anything else that the image flows through -- a product of two image-dependent tensors (the gate of
squeeze-and-excitation), a softmax, LayerNorm, an attention matrix product -- has no rule here, and
the mode refuses it in one line that names the call. Functional activations, reused modules and
shortcuts are all followed because the rules are attached to calls, not to modules: torchvision's
GoogLeNet (``F.relu``), DenseNet (concatenation, ``F.relu``), MobileNetV2 and ResNets (residual adds)
need no adapters.

``records`` lists, per rule call, the relevance that came in and went out with the bias and
stabiliser terms, to check conservation layer by layer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..errors import CnnlensError
from .rules import Composite, LinearRule, stabilize

__all__ = ["RelevanceMode", "RuleRecord"]

_LINEAR = {F.conv1d: "conv1d", F.conv2d: "conv2d", F.conv3d: "conv3d", F.linear: "linear"}
_PASS = {
    "relu", "relu_", "relu6", "hardtanh", "hardtanh_", "gelu", "silu", "hardswish", "elu", "elu_", "leaky_relu", "leaky_relu_",
    "sigmoid", "tanh", "mish", "hardsigmoid", "selu", "celu", "softplus", "dropout", "dropout1d", "dropout2d", "dropout3d",
    "alpha_dropout", "feature_alpha_dropout", "neg", "__neg__", "abs", "clamp", "clamp_", "clip", "threshold",
}  # fmt: skip
_ARITHMETIC = {
    "add", "add_", "__add__", "__iadd__", "__radd__", "sub", "sub_", "__sub__", "__isub__", "__rsub__",
    "mul", "mul_", "__mul__", "__imul__", "__rmul__", "div", "div_", "__truediv__", "__itruediv__", "__rtruediv__",
}  # fmt: skip
_SUMS = {"avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "mean", "sum"}
_GRADIENT = {
    "view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "view_as", "reshape_as", "permute", "transpose", "t",
    "contiguous", "clone", "to", "float", "double", "half", "type", "__getitem__", "cat", "concat", "concatenate", "stack",
    "chunk", "split", "tensor_split", "unbind", "split_with_sizes", "narrow", "pad", "flip", "roll", "expand", "expand_as",
    "broadcast_to", "repeat", "max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
    "max_pool3d_with_indices", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d", "amax", "channel_shuffle",
    "movedim", "swapaxes", "detach", "requires_grad_", "__setstate__", "dim", "size",
}  # fmt: skip
_MAX_POOLS = {"max_pool2d", "max_pool1d", "max_pool3d"}
# where a functional activation takes ``inplace`` positionally
_INPLACE_AT = {"relu": 1, "relu6": 1, "silu": 1, "hardswish": 1, "selu": 1, "mish": 1, "hardsigmoid": 1, "elu": 2, "celu": 2,
               "leaky_relu": 2, "hardtanh": 3, "threshold": 3, "dropout": 3, "dropout1d": 3, "dropout2d": 3, "dropout3d": 3,
               "alpha_dropout": 3, "feature_alpha_dropout": 3}  # fmt: skip
_PLAIN = {"__iadd__": "__add__", "__isub__": "__sub__", "__imul__": "__mul__", "__itruediv__": "__truediv__",
          "add_": "add", "sub_": "sub", "mul_": "mul", "div_": "div"}  # fmt: skip


@dataclass(frozen=True)
class RuleRecord:
    """One rule applied in the backward pass: which call (``op``, its order in the forward pass),
    the rule, the relevance that arrived at its output and left at its inputs, and the parts its
    bias and stabiliser absorbed (``relevance_in = relevance_out - bias_term - stabilizer_term`` up to
    rounding)."""

    index: int
    op: str
    rule: str
    relevance_out: float
    relevance_in: float
    bias_term: float
    stabilizer_term: float

    @property
    def leak(self) -> float:
        """What the rule's own terms do not explain (0 up to rounding)."""
        return self.relevance_out - self.bias_term - self.stabilizer_term - self.relevance_in


class _Rule(torch.autograd.Function):
    """Forward: ``value`` (computed by the caller without autograd, handed over in a one-item list so
    that it is a new output, not an input); backward: ``apply(r)`` gives the inputs' relevance."""

    @staticmethod
    def forward(ctx: Any, apply: Callable[..., tuple[torch.Tensor | None, ...]], value: list[torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.relevance_of = apply
        return value.pop()

    @staticmethod
    def backward(ctx: Any, r: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        return (None, None, *ctx.relevance_of(r))


class _Pass(torch.autograd.Function):
    """Forward: ``value``; backward: the relevance passes on unchanged (summed where ``x`` was broadcast)."""

    @staticmethod
    def forward(ctx: Any, value: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.shape = x.shape
        return value.pop()

    @staticmethod
    def backward(ctx: Any, r: torch.Tensor) -> tuple[None, torch.Tensor]:  # type: ignore[override]
        return None, r if r.shape == ctx.shape else r.sum_to_size(ctx.shape)


def _arg(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str, default: Any = None) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _image_tensors(args: Sequence[Any], kwargs: dict[str, Any]) -> list[torch.Tensor]:
    found = []
    for a in (*args, *kwargs.values()):
        if isinstance(a, torch.Tensor):
            if a.requires_grad:
                found.append(a)
        elif isinstance(a, (list, tuple)):
            found.extend(t for t in a if isinstance(t, torch.Tensor) and t.requires_grad)
    return found


def _as_tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for t in out if isinstance(t, torch.Tensor)]
    return []


_CONV_INPUT_GRAD = {"conv1d": torch.nn.grad.conv1d_input, "conv2d": torch.nn.grad.conv2d_input, "conv3d": torch.nn.grad.conv3d_input}


def _transpose(op_name: str, shape: tuple[int, ...], extra: tuple[Any, ...]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """``W^T s`` of a convolution or fully connected call, without running it forward (the rules'
    products with the transposed weights)."""
    if op_name == "linear":
        return lambda s, w: s @ w
    grad = _CONV_INPUT_GRAD.get(op_name)
    if grad is None or any(isinstance(e, str) for e in extra):  # padding="same": leave it to autograd
        return None
    stride, padding, dilation, groups = extra
    return lambda s, w: grad(shape, w, s, stride, padding, dilation, groups)


class RelevanceMode(TorchFunctionMode):
    """Applies ``composite``'s rules to every call of a forward pass run inside the mode (module
    docstring). The model's parameters must not require gradients (run it in
    :func:`cnnlens.hooks.eval_mode`) and the input must (that is how the mode tells image-dependent
    tensors from constants). ``records`` fills during the backward pass."""

    def __init__(self, composite: Composite, *, records: bool = True) -> None:
        super().__init__()
        if not records:  # no bias and stabiliser sums: fewer passes over each layer's outputs
            composite = replace(composite, first=replace(composite.first, terms=False), conv=replace(composite.conv, terms=False),
                                linear=replace(composite.linear, terms=False))  # fmt: skip
        self.keep_records = records
        self.composite = composite
        self.calls = 0
        self.linear_calls = 0
        self.records: list[RuleRecord] = []
        self._last_conv: tuple[Any, ...] | None = None  # the last convolution, for a BatchNorm right after it

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if not torch.is_grad_enabled():
            return func(*args, **kwargs)
        image = _image_tensors(args, kwargs)
        if not image:
            return func(*args, **kwargs)
        try:
            linear = _LINEAR.get(func)
        except TypeError:
            linear = None
        name = getattr(func, "__name__", "") or ""
        if linear is not None:
            return self._linear(linear, func, args, kwargs)
        if name == "batch_norm":
            return self._batch_norm(args, kwargs)
        if name in _ARITHMETIC:
            return self._arithmetic(name, func, args, kwargs, image)
        if name in _PASS:
            return self._pass(name, func, args, kwargs)
        if name in _SUMS:
            return self._sum(name, func, args, kwargs)
        if name in _MAX_POOLS and not kwargs.get("return_indices") and not (len(args) > 6 and args[6]):
            return self._max_pool(func, args, kwargs)
        out = func(*args, **kwargs)
        if name in _GRADIENT or name.startswith("__") and name not in ("__matmul__", "__rmatmul__", "__pow__", "__setitem__"):
            return out
        if any(t.requires_grad for t in _as_tensors(out)):
            raise CnnlensError(f"LRP has no rule for {name or func!r} on the image's path; cnnlens' LRP follows convolutions, fully connected layers, BatchNorm, adds, pooling, concatenations and elementwise activations")
        return out

    # -- calls -------------------------------------------------------------------------------------

    def _next(self) -> int:
        self.calls += 1
        return self.calls

    def _linear(self, op_name: str, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
        x = args[0] if args else kwargs["input"]
        weight = _arg(args, kwargs, 1, "weight")
        bias = _arg(args, kwargs, 2, "bias")
        if op_name == "linear":
            extra: tuple[Any, ...] = ()
            rule = self.composite.linear
        else:
            names = ("stride", "padding", "dilation", "groups")
            extra = tuple(_arg(args, kwargs, 3 + i, n, d) for i, (n, d) in enumerate(zip(names, (1, 0, 1, 1))))
            rule = self.composite.conv
        if self.linear_calls == 0:
            rule = self.composite.first
        self.linear_calls += 1
        index = self._next()

        def op(v: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
            return func(v, w, b, *extra)

        weight, bias = weight.detach(), None if bias is None else bias.detach()
        with torch.no_grad():
            value = func(x, weight, bias, *extra)
        transpose = _transpose(op_name, tuple(x.shape), extra)
        out = self._apply_linear(op, op_name, value, x, weight, bias, rule, index, transpose)
        self._last_conv = None if op_name == "linear" else (out, x, op, weight, bias, rule, index, op_name, transpose)
        return out

    def _apply_linear(
        self, op: Callable[..., torch.Tensor], op_name: str, value: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
        bias: torch.Tensor | None, rule: LinearRule, index: int, transpose: Callable[..., torch.Tensor] | None,
    ) -> torch.Tensor:
        xs = x.detach()

        def apply(r: torch.Tensor) -> tuple[torch.Tensor]:
            share = rule(op, xs, weight, bias, r, transpose)
            if self.keep_records:
                self.records.append(RuleRecord(index, op_name, rule.name, float(r.sum()), float(share.relevance.sum()), share.bias_term, share.stabilizer_term))
            return (share.relevance,)

        return _Rule.apply(apply, [value], x)

    def _batch_norm(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
        x = args[0] if args else kwargs["input"]
        mean, var = _arg(args, kwargs, 1, "running_mean"), _arg(args, kwargs, 2, "running_var")
        gamma, beta = _arg(args, kwargs, 3, "weight"), _arg(args, kwargs, 4, "bias")
        training, eps = bool(_arg(args, kwargs, 5, "training", False)), float(_arg(args, kwargs, 7, "eps", 1e-5))
        conv, self._last_conv = self._last_conv, None
        if training or mean is None or conv is None or conv[0] is not x:
            with torch.no_grad():
                value = F.batch_norm(x, mean, var, gamma, beta, training, 0.0, eps)
            self._next()
            return _Pass.apply([value], x)  # nothing to fold into: relevance passes on (zennit's default)
        _, conv_in, op, w, b, rule, index, op_name, transpose = conv
        scale = (torch.ones_like(var) if gamma is None else gamma.detach()) / (var + eps) ** 0.5
        w_folded = w * scale[(slice(None), *((None,) * (w.dim() - 1)))]
        b_folded = ((torch.zeros_like(mean) if b is None else b) - mean) * scale + (0.0 if beta is None else beta.detach())
        with torch.no_grad():  # the folded convolution's output: the next layers see what a folded model computes
            value = op(conv_in, w_folded, b_folded)
        return self._apply_linear(op, op_name + "+batch_norm", value, conv_in, w_folded, b_folded, rule, index, transpose)

    def _pass(self, name: str, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
        x = args[0] if args else kwargs["input"]
        at = _INPLACE_AT.get(name)
        inplace = name.endswith("_") or kwargs.get("inplace") is True or (at is not None and len(args) > at and args[at] is True)
        with torch.no_grad():
            if inplace and not name.endswith("_"):  # the out-of-place call: one pass instead of a copy and a pass
                at_kw = {**kwargs, "inplace": False} if "inplace" in kwargs else kwargs
                rest = tuple(False if (at is not None and i + 1 == at) else a for i, a in enumerate(args[1:]))
                value = func(x.detach(), *rest, **at_kw)
            else:
                value = func(x.detach().clone() if inplace else x.detach(), *args[1:], **kwargs)
        self._next()
        out = _Pass.apply([value], x)
        if inplace:
            x.copy_(out)
            return x
        return out

    def _arithmetic(self, name: str, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], image: list[torch.Tensor]) -> torch.Tensor:
        a = args[0]
        b = args[1] if len(args) > 1 else kwargs.get("other")
        rest = {k: v for k, v in kwargs.items() if k != "other"}
        inplace = name.endswith("_") and not name.startswith("__")
        plain = _PLAIN.get(name, name)
        both = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.requires_grad and b.requires_grad
        with torch.no_grad():
            da = a.detach() if isinstance(a, torch.Tensor) else a
            db = b.detach() if isinstance(b, torch.Tensor) else b
            value = getattr(torch.Tensor, plain)(da, db, *args[2:], **rest) if isinstance(da, torch.Tensor) else func(da, db, *args[2:], **rest)
        index = self._next()
        if not both:
            out = _Pass.apply([value], image[0])
        elif plain in ("add", "__add__", "__radd__", "sub", "__sub__", "__rsub__"):
            alpha = float(rest.get("alpha", 1.0))
            sign = -alpha if plain in ("sub", "__sub__") else alpha
            if plain == "__rsub__":
                a, b, sign = b, a, -1.0
            out = self._sum2(a, b, sign, value, index, copy=inplace)
        else:
            raise CnnlensError(
                f"LRP has no rule for {name} of two image-dependent tensors (a multiplicative gate, as in squeeze-and-excitation); "
                "pick a model without gates or another method"
            )
        if inplace and isinstance(args[0], torch.Tensor):
            args[0].copy_(out)
            return args[0]
        return out

    def _sum2(self, a: torch.Tensor, b: torch.Tensor, sign: float, value: torch.Tensor, index: int, *, copy: bool) -> torch.Tensor:
        eps = self.composite.stabilizer
        va = a.detach().clone() if copy else a.detach()
        vb = b.detach()
        z = value.detach().clone() if copy else value

        def apply(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            stab = stabilize(z, eps)
            s = r / stab
            ra, rb = va * s, sign * vb * s
            ra = ra if ra.shape == va.shape else ra.sum_to_size(va.shape)
            rb = rb if rb.shape == vb.shape else rb.sum_to_size(vb.shape)
            if self.keep_records:
                self.records.append(RuleRecord(index, "add", "sum", float(r.sum()), float(ra.sum() + rb.sum()), 0.0, float((s * (stab - z)).sum())))
            return ra, rb

        return _Rule.apply(apply, [value], a, b)

    def _max_pool(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
        """Max pooling passes relevance to each window's winner (its gradient); the winners are found
        again in the backward pass only where relevance reaches the pooling, so the forward pass runs
        the faster pooling without indices."""
        x = args[0] if args else kwargs["input"]
        rest = args[1:]
        with torch.no_grad():
            value = func(x.detach(), *rest, **kwargs)
        self._next()
        xs = x.detach()

        def apply(r: torch.Tensor) -> tuple[torch.Tensor]:
            with torch.enable_grad():
                v = xs.detach().requires_grad_(True)
                (g,) = torch.autograd.grad(func(v, *rest, **kwargs), v, r)
            return (g,)

        return _Rule.apply(apply, [value], x)

    def _sum(self, name: str, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
        x = args[0] if args else kwargs["input"]
        rest = args[1:]
        with torch.no_grad():
            value = func(x.detach(), *rest, **kwargs)
        index = self._next()
        eps = self.composite.stabilizer
        xs = x.detach()

        def apply(r: torch.Tensor) -> tuple[torch.Tensor]:
            stab = stabilize(value, eps)
            s = r / stab
            with torch.enable_grad():
                v = xs.detach().requires_grad_(True)
                (g,) = torch.autograd.grad(func(v, *rest, **kwargs), v, s)
            rel = xs * g
            if self.keep_records:
                self.records.append(RuleRecord(index, name, "sum", float(r.sum()), float(rel.sum()), 0.0, float((s * (stab - value)).sum())))
            return (rel,)

        return _Rule.apply(apply, [value], x)
