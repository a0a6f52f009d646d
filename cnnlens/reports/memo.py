"""The call memo of the report's meta-device passes, and the shape rules that stand in for slow meta kernels.

Both passes run on meta tensors, where every op still costs its meta kernel, and many of PyTorch's are
Python decompositions or references (0.07 to 0.5 ms for an ``addmm``, an out-of-place addition or
activation, max pooling with indices), several times what torchinfo's hooks cost per layer. Deep
networks repeat the same calls block after block (resnet152 has 50 bottlenecks of four kinds, swin_b 24
blocks of four), and on meta tensors a call's outputs depend only on the metadata of its arguments. So
each pass keeps a memo per call signature: the first call runs, later ones build their outputs from the
memo (with the FLOPs the first one counted, and in the train pass the tensors autograd saved). Calls of
a family (convolution, linear, pooling, activations ...) of a new shape are built from the family's rule
once a real call agreed with it; in the eval pass, convolutions, linear layers, max pooling and ReLU in
their plain case are built from their rule from the first call (:data:`_RULE_ALONE`). Below autograd,
:func:`meta_shortcut` gives the outputs of a few ATen ops with slow meta kernels from their shape rule,
so a real call of the train pass still has PyTorch's autograd decide what it saves. Every number stays
the one the real calls give (tests/test_memory.py compares whole reports with all of this on and off);
views, in-place ops that change a shape, and calls that take a non-meta tensor or an argument that is
not plain data always run (an in-place op that keeps its input's shape is replayed: its input comes
back).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, NamedTuple

import torch

__all__ = ["RUN", "CallMemo", "Uncached", "build", "meta_shortcut", "output_spec", "output_specs", "storage_key", "tensor_geometry"]

RUN = object()  # memo entry: always run this call


def storage_key(t: torch.Tensor) -> int:
    """An id of the storage behind ``t`` (views share it)."""
    return t.untyped_storage()._cdata


_PLAIN = (bool, int, float, str, type(None), torch.dtype, torch.device, torch.memory_format, torch.layout)
_PLAIN_TYPES = frozenset(_PLAIN)


class Uncached(Exception):
    """A call the memo cannot stand in for."""


def _describe(value: Any, storages: dict[int, int]) -> Any:
    """A hashable description of one argument: what a meta kernel's output metadata can depend on
    (shapes, strides, dtypes, requires_grad, which arguments share storage, plain values)."""
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return (kind, value)
    if isinstance(value, torch.Tensor):
        if not value.is_meta or value.layout is not torch.strided:
            raise Uncached
        alias = storages.setdefault(storage_key(value), len(storages))
        return (tuple(value.shape), value.stride(), value.dtype, value.requires_grad, alias)
    if isinstance(value, _PLAIN):
        return (type(value), value)
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(_describe(v, storages) for v in value))
    if isinstance(value, slice):
        return (slice, _describe(value.start, storages), _describe(value.stop, storages), _describe(value.step, storages))
    if value is Ellipsis:
        return (type(value),)
    raise Uncached


def _signature(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    storages: dict[int, int] = {}
    return (func, torch.is_grad_enabled(), _describe(tuple(args), storages), _describe(tuple(kwargs.items()), storages))


class OutputSpec(NamedTuple):
    """The metadata of one output of a call (a named tuple: made for every call built from the memo)."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    requires_grad: bool

    def make(self) -> torch.Tensor:
        return torch.empty_strided(self.shape, self.stride, dtype=self.dtype, device="meta")


def output_spec(out: Any, inputs: list[torch.Tensor], before: list[Any], input_keys: list[int] | None = None) -> tuple[Any, list[torch.Tensor]]:
    """``(structure, output tensors)`` of a call's result, or :class:`Uncached` if it is not made of fresh
    meta tensors (each in a storage of its own that ``empty_strided`` reproduces) or one of its inputs
    returned unchanged in shape (an in-place op: ``before`` holds the inputs' geometry before the call;
    ``input_keys`` their :func:`storage_key`, when the caller has them)."""
    if isinstance(out, torch.Tensor):
        for i, t in enumerate(inputs):
            if out is t:
                if tensor_geometry(t) != before[i]:
                    raise Uncached
                return ("self", i), []
        kind, items = None, [out]
    elif type(out) in (tuple, list) or (isinstance(out, tuple) and type(out).__module__ == "torch.return_types"):
        kind, items = type(out), list(out)
    else:
        raise Uncached
    taken = set(input_keys if input_keys is not None else (storage_key(t) for t in inputs))
    specs: list[OutputSpec | None] = []
    tensors = []
    for t in items:
        if t is None:
            specs.append(None)
            continue
        if not isinstance(t, torch.Tensor) or type(t) is not torch.Tensor or t.device.type != "meta" or t.storage_offset():
            raise Uncached
        storage = t.untyped_storage()
        spec = OutputSpec(tuple(t.shape), t.stride(), t.dtype, t.requires_grad)
        if storage._cdata in taken or _strided_nbytes(spec) != storage.nbytes():
            raise Uncached
        taken.add(storage._cdata)
        specs.append(spec)
        tensors.append(t)
    return (kind, tuple(specs)), tensors


def _strided_nbytes(spec: OutputSpec) -> int:
    """Bytes of the storage ``spec.make()`` allocates (PyTorch's ``computeStorageNbytes`` at offset 0)."""
    if 0 in spec.shape:
        return 0
    return (1 + sum((n - 1) * st for n, st in zip(spec.shape, spec.stride))) * spec.dtype.itemsize


def tensor_geometry(t: torch.Tensor) -> tuple[Any, ...]:
    return tuple(t.shape), t.stride(), t.storage_offset()


def output_specs(structure: Any) -> list[OutputSpec]:
    return [] if structure[0] == "self" else [s for s in structure[1] if s is not None]


def build(structure: Any, made: list[torch.Tensor]) -> Any:
    """The result of a call from its structure and its output tensors (in order; for an in-place op, the input)."""
    kind, specs = structure
    if kind is None or kind == "self":
        return made[0]
    it = iter(made)
    return kind([None if s is None else next(it) for s in specs])


# Op families whose outputs follow a shape rule: a new shape of a known kind of call (the 98 distinct
# batch norms of densenet201, its growing concatenations) is built from a template once two real calls
# of the kind agreed with the rule and with each other on FLOPs and saved tensors (sizes per element or
# per channel).
_LIKE_INPUT = frozenset(
    {"batch_norm", "relu", "relu6", "hardtanh", "hardswish", "hardsigmoid", "silu", "gelu", "sigmoid", "tanh",
     "elu", "leaky_relu", "mish", "softplus", "dropout"}
)  # fmt: skip


# Calls whose output has the shape of their first argument when every tensor argument has that shape
# (no broadcasting), with PyTorch's dtype rules checked by the calls that settle the template.
_SAME_SHAPE = frozenset({"add", "sub", "mul", "div", "masked_fill", "roll", "softmax", "log_softmax"})


def _features(t: Any) -> Any:
    """What a family's kind keeps of an argument; :class:`Uncached` for a tensor the memo cannot stand
    in for (not on meta, not strided), as :func:`_describe` does."""
    if not isinstance(t, torch.Tensor):
        return _describe(t, {})
    if not t.is_meta or t.layout is not _STRIDED:
        raise Uncached
    dims = t.dim()
    return (t.dtype, dims, t.is_contiguous(), dims == 4 and t.is_contiguous(memory_format=_CHANNELS_LAST), t.requires_grad)


_STRIDED, _CHANNELS_LAST = torch.strided, torch.channels_last


def _contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides, step = [], 1
    for side in reversed(shape):
        strides.append(step)
        step *= max(side, 1)
    return tuple(reversed(strides))


def _batch_norm_valid(args: Sequence[Any], kwargs: dict[str, Any]) -> bool:
    """What ``F.batch_norm`` checks before its kernel (and after a torch-function mode took the call):
    per-channel tensors of the right length, more than one value per channel when training."""
    names = ("input", "running_mean", "running_var", "weight", "bias", "training")
    given = dict(zip(names, args))
    given.update({k: v for k, v in kwargs.items() if k in names})
    x = given["input"]
    if x.dim() < 2:
        return False
    channels = x.shape[1]
    for key in names[1:5]:
        t = given.get(key)
        if t is not None and (not isinstance(t, torch.Tensor) or t.numel() != channels):
            return False
    return not (given.get("training", False) and x.numel() // channels <= 1)


def _family(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[Any, list[tuple[Any, ...]], tuple[int, int], int] | None:
    """``(kind key, predicted outputs (shape, stride, dtype), units (elements and channels of the first
    input), predicted FLOPs)`` for calls of a family, else None."""
    try:
        return _family_rule(func, args, kwargs)
    except Uncached:
        return None


def _family_rule(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[Any, list[tuple[Any, ...]], tuple[int, int], int] | None:
    name = getattr(func, "__name__", "")
    units = None  # elements and channels of the first input, unless the family counts in other units
    if name in _LIKE_INPUT:
        if not args or not isinstance(args[0], torch.Tensor) or not args[0].is_contiguous():
            return None
        x = args[0]
        if name == "batch_norm" and not _batch_norm_valid(args, kwargs):
            return None  # the real call raises: let it
        kind = (func, tuple(_features(a) for a in args), tuple((k, _features(v)) for k, v in kwargs.items()))
        predicted = [(tuple(x.shape), x.stride(), x.dtype)]
        flops = 0
    elif name in _SAME_SHAPE:
        x = args[0] if args else None
        others = [a for a in (*args[1:], *kwargs.values()) if isinstance(a, torch.Tensor)]
        if not isinstance(x, torch.Tensor) or not x.is_contiguous() or any(t.shape != x.shape or not t.is_contiguous() for t in others):
            return None
        kind = (func, tuple(_features(a) for a in args), tuple((k, _features(v)) for k, v in kwargs.items()))
        predicted = [(tuple(x.shape), _contiguous_strides(x.shape), x.dtype)]
        flops = 0
    elif name in ("cat", "concat") and args and isinstance(args[0], (list, tuple)) and args[0]:
        parts = args[0]
        dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
        x = parts[0]
        if not isinstance(dim, int) or any(not isinstance(t, torch.Tensor) or not t.is_meta or t.dim() != x.dim() or t.dtype != x.dtype or not t.is_contiguous() for t in parts):
            return None
        if x.dim() == 0:
            return None
        dim %= x.dim()
        if any(t.shape[:dim] != x.shape[:dim] or t.shape[dim + 1 :] != x.shape[dim + 1 :] for t in parts):
            return None  # the real call raises: let it
        shape = list(x.shape)
        shape[dim] = sum(t.shape[dim] for t in parts)
        kind = (func, dim, _features(x), all(t.requires_grad for t in parts), any(t.requires_grad for t in parts), len(args), tuple(kwargs))
        predicted = [(tuple(shape), _contiguous_strides(shape), x.dtype)]
        flops = 0
    elif name == "conv2d" and 2 <= len(args) <= 7 and isinstance(args[0], torch.Tensor) and isinstance(args[1], torch.Tensor) and not kwargs:
        x, w = args[0], args[1]
        n = len(args)
        bias = args[2] if n > 2 else None
        stride, padding, dilation = _int_pair(args[3] if n > 3 else 1), _int_pair(args[4] if n > 4 else 0), _int_pair(args[5] if n > 5 else 1)
        groups = args[6] if n > 6 else 1
        xs, ws = x.shape, w.shape
        if len(xs) != 4 or len(ws) != 4 or None in (stride, padding, dilation) or type(groups) is not int or not x.is_contiguous() or not w.is_contiguous():
            return None
        if groups < 1 or xs[1] != ws[1] * groups or ws[0] % groups or (bias is not None and (not isinstance(bias, torch.Tensor) or bias.shape != (ws[0],))):
            return None  # the real call raises: let it
        kernel = (ws[2], ws[3])
        h = (xs[2] + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
        wd = (xs[3] + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
        if h < 1 or wd < 1:
            return None
        shape = (xs[0], ws[0], h, wd)
        kind = (func, _features(x), _features(w), _features(bias), stride, padding, dilation, kernel, groups == 1, groups == xs[1])
        predicted = [(shape, (max(ws[0], 1) * h * wd, h * wd, wd, 1), x.dtype)]
        flops = _flop_counter().conv_flop_count(list(xs), list(ws), list(shape))
    elif name == "linear" and 2 <= len(args) + len(kwargs) <= 3 and len(args) >= 2 and set(kwargs) <= {"bias"}:
        x, w = args[0], args[1]
        bias = args[2] if len(args) > 2 else kwargs.get("bias")
        if not isinstance(x, torch.Tensor) or not isinstance(w, torch.Tensor) or x.dim() < 1 or w.dim() != 2 or not x.is_contiguous() or not w.is_contiguous():
            return None
        if x.shape[-1] != w.shape[1] or (bias is not None and (not isinstance(bias, torch.Tensor) or bias.shape != (w.shape[0],))):
            return None  # the real call raises: let it
        shape = (*x.shape[:-1], w.shape[0])
        kind = (func, _features(x), _features(w), _features(bias), len(args))
        predicted = [(shape, _contiguous_strides(shape), x.dtype)]
        flops = 2 * (x.numel() // max(1, x.shape[-1])) * w.shape[1] * w.shape[0]  # a matrix product (the bias is not counted)
    elif name == "layer_norm" and args and len(args) + len(kwargs) <= 5 and set(kwargs) <= {"weight", "bias", "eps"}:
        given = dict(zip(("input", "normalized_shape", "weight", "bias", "eps"), args))
        if set(given) & set(kwargs) or "normalized_shape" not in given:
            return None
        given.update(kwargs)
        x, normalized, weight, bias, eps = (given.get(k) for k in ("input", "normalized_shape", "weight", "bias", "eps"))
        if not isinstance(x, torch.Tensor) or not x.is_contiguous() or not isinstance(normalized, (list, tuple)) or not 1 <= len(normalized) <= x.dim():
            return None
        if tuple(x.shape[-len(normalized) :]) != tuple(normalized) or any(t is not None and (not isinstance(t, torch.Tensor) or tuple(t.shape) != tuple(normalized)) for t in (weight, bias)):
            return None  # the real call raises: let it
        kind = (func, _features(x), len(normalized), _features(weight), _features(bias), _describe(eps, {}), tuple(sorted(kwargs)))
        predicted = [(tuple(x.shape), x.stride(), x.dtype)]
        flops = 0
        inner = math.prod(normalized)
        units = (x.numel(), x.numel() // inner if inner else 0)  # elements, and rows (a mean and a deviation each)
    elif name == "max_pool2d" and args and isinstance(args[0], torch.Tensor):
        pooled = _max_pool2d_shape(args, kwargs)
        if pooled is None or (args[6] if len(args) > 6 else kwargs.get("return_indices", False)) is not False:
            return None
        shape, settings = pooled
        x = args[0]
        kind = (func, _features(x), settings)
        predicted = [(shape, _contiguous_strides(shape), x.dtype)]
        flops = 0
        units = (math.prod(shape), shape[1])  # elements of the output: the train pass saves their indices
    else:
        return None
    if units is None:
        units = (x.numel(), x.shape[1] if x.dim() >= 2 else 1)
    return (kind, torch.is_grad_enabled()), predicted, units, flops


# Families whose rule is the whole of an eval-pass call (no grad), so that their first call need not
# run: convolutions, linear layers and max pooling make one new tensor in the standard layout, with the
# FLOPs of torch.utils.flop_counter's formula for the convolution or matrix product (none for pooling);
# ReLU gives back its input in place, or a new tensor like it. Only when every tensor argument is in
# the plain layout of one floating-point dtype (:func:`_plain_layout`: contiguous, and no 4-d map that is
# also channels-last contiguous, a channel or a side of 1, where PyTorch's choice of layout is the kernel's). The first calls they save cost 0.05 to
# 0.6 ms each (PyTorch's meta kernels of addmm and max pooling are Python decompositions; a real call of
# the eval pass also runs the FLOP counter). tests/test_memory.py checks the rules against real calls.
_RULE_ALONE = frozenset({"conv2d", "linear", "max_pool2d", "relu"})
_NEW_TENSOR, _SAME_TENSOR = (("new", (False,)), ()), (("self", ()), ())


def _rule_alone(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """The template of an eval-pass call of a :data:`_RULE_ALONE` family, or None where its first call must run."""
    name = getattr(func, "__name__", "")
    if name not in _RULE_ALONE:
        return None
    tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
    dtype = tensors[0].dtype
    if not dtype.is_floating_point or not all(_plain_layout(t, dtype) for t in tensors):
        return None
    if name == "relu":
        inplace = kwargs.get("inplace", False)
        if len(args) != 1 or set(kwargs) - {"inplace"} or type(inplace) is not bool:
            return None
        return _SAME_TENSOR if inplace else _NEW_TENSOR
    if name == "linear" and tensors[0].dim() < 2:
        return None  # a 1-d input: a matrix-vector product, whose FLOPs PyTorch's counter may not count
    return _NEW_TENSOR


@functools.cache
def _elementwise_aten() -> frozenset[Any]:
    """Out-of-place elementwise ATen ops whose meta kernels are PyTorch's Python references (70 to 200 us
    a call on meta), with a floating-point result of their inputs' dtype."""
    aten = torch.ops.aten
    return frozenset({aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor, aten.relu.default,
                      aten.gelu.default, aten.silu.default, aten.hardswish.default, aten.hardsigmoid.default,
                      aten.hardtanh.default, aten.elu.default, aten.leaky_relu.default, aten.sigmoid.default,
                      aten.tanh.default})  # fmt: skip


def _plain_layout(t: Any, dtype: torch.dtype) -> bool:
    """A meta tensor of ``dtype`` in the standard contiguous layout, and only that one (not also
    channels-last contiguous, where PyTorch's choice of layout for the result is the kernel's)."""
    return (
        isinstance(t, torch.Tensor)
        and t.is_meta
        and t.layout is _STRIDED
        and t.dtype == dtype
        and t.is_contiguous()
        and not (t.dim() == 4 and t.is_contiguous(memory_format=_CHANNELS_LAST))
    )


def meta_shortcut(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """The output of an ATen call on meta tensors from its shape rule, for ops whose PyTorch meta kernel
    is a Python decomposition or reference costing 0.07 to 0.5 ms a call: ``addmm`` (a linear layer),
    ``max_pool2d_with_indices`` (max pooling whose input requires grad) and out-of-place elementwise ops
    on tensors of one shape (a residual addition, dropout's product with its mask, an activation).
    Only their plain case: meta tensors of one floating-point dtype in the standard layout (see
    :func:`_plain_layout`); None otherwise, and the caller runs PyTorch's kernel. Called from dispatch
    modes, below autograd: what autograd saves for backward stays PyTorch's choice.
    tests/test_memory.py checks each rule against PyTorch's meta kernels."""
    if func in _elementwise_aten():
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        if not tensors or not tensors[0].dtype.is_floating_point:
            return None
        x = tensors[0]
        if not all(_plain_layout(t, x.dtype) and t.shape == x.shape for t in tensors):
            return None
        return torch.empty(x.shape, dtype=x.dtype, device="meta")
    if func is torch.ops.aten.addmm.default:
        if len(args) != 3 or set(kwargs) - {"beta", "alpha"}:
            return None
        bias, a, b = args
        if not all(isinstance(t, torch.Tensor) and t.is_meta and t.layout is torch.strided and t.dtype == a.dtype for t in args):
            return None
        if not a.dtype.is_floating_point or a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0] or not bias.is_contiguous():
            return None
        shape = (a.shape[0], b.shape[1])
        if bias.dim() > 2 or any(n not in (1, m) for n, m in zip(reversed(bias.shape), reversed(shape))):
            return None  # not broadcastable: PyTorch's kernel raises
        return torch.empty(shape, dtype=a.dtype, device="meta")
    if func is torch.ops.aten.max_pool2d_with_indices.default:
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point or x.dim() != 4 or not _plain_layout(x, x.dtype):
            return None
        pooled = _max_pool2d_shape(args, kwargs)
        if pooled is None:
            return None
        shape = pooled[0]
        return torch.empty(shape, dtype=x.dtype, device="meta"), torch.empty(shape, dtype=torch.int64, device="meta")
    return None


@functools.cache
def _flop_counter() -> Any:
    """:mod:`torch.utils.flop_counter`, imported on first use."""
    import torch.utils.flop_counter

    return torch.utils.flop_counter


def _int_pair(value: Any) -> tuple[int, int] | None:
    """An int or a sequence of one or two ints as ``(h, w)``; None for anything else."""
    if type(value) is int:
        return value, value
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int:
        return value
    values = [value] if not isinstance(value, (list, tuple)) else list(value)
    if not 1 <= len(values) <= 2 or not all(type(v) is int for v in values):
        return None
    return (values[0], values[-1])


_POOL_ARGS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_POOL_INDEX = {name: i for i, name in enumerate(_POOL_ARGS)}
_UNSET = object()


def _max_pool2d_shape(args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[tuple[int, int, int, int], tuple[Any, ...]] | None:
    """The output shape of ``F.max_pool2d`` (or ATen's ``max_pool2d_with_indices``, whose arguments come
    in the same order) on a contiguous 4-d input, by PyTorch's ``pooling_output_shape``, with the
    settings read: ``(shape, (kernel, stride, padding, dilation, ceil_mode))``. None where the call is
    not plain (the real call runs, and raises what it raises)."""
    n = len(args)
    if n > len(_POOL_ARGS) or any(_POOL_INDEX.get(k, -1) < n for k in kwargs):
        return None  # an unknown keyword, or one given twice
    values = [*args, *(_UNSET,) * (len(_POOL_ARGS) - n)]
    for k, v in kwargs.items():
        values[_POOL_INDEX[k]] = v
    x, kernel, stride, padding, dilation, ceil, _ = values
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_contiguous():
        return None
    if stride is _UNSET or stride is None or (isinstance(stride, (list, tuple)) and not stride):
        stride = kernel
    kernel, stride = _int_pair(kernel), _int_pair(stride)
    padding, dilation = _int_pair(0 if padding is _UNSET else padding), _int_pair(1 if dilation is _UNSET else dilation)
    ceil = False if ceil is _UNSET else ceil
    if None in (kernel, stride, padding, dilation) or not isinstance(ceil, bool):
        return None
    sides = []
    for k in range(2):
        size, kk, st, pad, dil = x.shape[2 + k], kernel[k], stride[k], padding[k], dilation[k]
        if kk < 1 or st < 1 or dil < 1 or pad < 0 or pad > kk // 2:
            return None  # the real call raises: let it
        out = (size + 2 * pad - dil * (kk - 1) - 1 + (st - 1 if ceil else 0)) // st + 1
        if ceil and (out - 1) * st >= size + pad:
            out -= 1
        if out < 1:
            return None
        sides.append(out)
    return (x.shape[0], x.shape[1], sides[0], sides[1]), (kernel, stride, padding, dilation, ceil)


def _relative(entry: Any, predicted: list[tuple[Any, ...]], units: tuple[int, int], flops: int) -> Any:
    """An entry in the family's terms (None when it does not follow the rule): output requires_grad
    flags, and the saved tensors with each new tensor's bytes per element and per channel."""
    structure, specs, real_flops, saves = entry
    if real_flops != flops:
        return None
    if structure == ("self", 0):
        mode = "self"
    elif structure[0] is None and [(s.shape, s.stride, s.dtype) for s in specs] == predicted:
        mode = "new"
    else:
        return None
    rel = []
    for kind, index, nbytes in saves or ():
        if kind == "new" and nbytes:
            rel.append((kind, index, Fraction(nbytes, units[0]) if units[0] else None, Fraction(nbytes, units[1]) if units[1] else None))
        else:
            rel.append((kind, index, None, None))
    return (mode, tuple(s.requires_grad for s in specs)), tuple(rel)


def _agree(a: Any, b: Any) -> Any:
    """What two relative entries share: each new tensor keeps the units (bytes per element, per channel)
    in which both calls agree; None when they disagree."""
    if a[0] != b[0] or len(a[1]) != len(b[1]):
        return None
    rel = []
    for (ka, ia, ea, ca), (kb, ib, eb, cb) in zip(a[1], b[1]):
        if (ka, ia) != (kb, ib) or ((ea, ca) == (None, None)) != ((eb, cb) == (None, None)):
            return None
        e, c = (ea if ea == eb else None), (ca if ca == cb else None)
        if (ea, ca) != (None, None) and (e, c) == (None, None):
            return None
        rel.append((ka, ia, e, c))
    return a[0], tuple(rel)


def _settled(rel: Any) -> Any:
    """The template of a family, once every new tensor's size has one unit (calls of equal spatial size
    cannot tell bytes per element from bytes per channel); else None."""
    out = []
    for kind, index, e, c in rel[1]:
        if e is not None and c is not None:
            return None
        out.append((kind, index, ("element", e) if e is not None else ("channel", c) if c is not None else None))
    return rel[0], tuple(out)


def _from_template(template: Any, predicted: list[tuple[Any, ...]], units: tuple[int, int], flops: int, train: bool) -> Any:
    (mode, grads), rel = template
    specs = [OutputSpec(shape, stride, dtype, rg) for (shape, stride, dtype), rg in zip(predicted, grads)]
    saves = []
    for kind, index, per in rel:
        nbytes = 0
        if per is not None:
            size = per[1] * (units[0] if per[0] == "element" else units[1])
            if size.denominator != 1:
                return None
            nbytes = int(size)
        saves.append((kind, index, nbytes))
    structure = ("self", 0) if mode == "self" else (None, tuple(specs))
    return structure, specs, flops, (saves if train else None)


class CallMemo:
    """The call memo of one pass: exact signatures, and templates of the op families."""

    def __init__(self, train: bool) -> None:
        self.train = train
        self.exact: dict[Any, Any] = {}
        self.kinds: dict[Any, Any] = {}
        self.unanswered: set[Any] = set()  # functions whose first real call no meta_shortcut served

    def lookup(self, func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[Any, Any, Any]:
        """``(signature, entry, family)``: the entry is a memo entry, :data:`RUN` or None (run and record);
        raises :class:`Uncached` for calls that cannot be memoized. A call of a trusted family is built
        from the template without its signature (``None``: nothing to store)."""
        family = _family(func, args, kwargs)
        if family is not None:
            if self.train:  # the train pass counts no FLOPs: its calls record none
                family = (family[0], family[1], family[2], 0)
            kind, predicted, units, flops = family
            state = self.kinds.get(kind)
            if state is None and not self.train and not kind[1]:
                template = _rule_alone(func, args, kwargs)
                if template is not None:
                    state = self.kinds[kind] = _Trusted(template)
            if isinstance(state, _Trusted):
                built = _from_template(state.template, predicted, units, flops, self.train)
                if built is not None:
                    return None, built, None
        try:
            key = _signature(func, args, kwargs)
            entry = self.exact.get(key)
        except TypeError:  # an unhashable plain value
            raise Uncached from None
        if entry is not None:
            return key, entry, None
        return key, None, family

    def store(self, key: Any, entry: Any, family: Any) -> None:
        self.exact[key] = entry
        if family is None:
            return
        kind, predicted, units, flops = family
        state = self.kinds.get(kind)
        if state is RUN or isinstance(state, _Trusted):
            return
        rel = None if entry is RUN else _relative(entry, predicted, units, flops)
        if rel is None:
            self.kinds[kind] = RUN
        elif state is None:
            # one call settles a family whose call saves no new tensor of a size to learn (every eval-pass
            # call, convolutions, linear layers); sizes per element or per channel need a second call
            sized = any((e, c) != (None, None) for _, _, e, c in rel[1])
            self.kinds[kind] = rel if sized else _Trusted(_settled(rel))
        else:
            merged = _agree(state, rel)
            template = None if merged is None else _settled(merged)
            self.kinds[kind] = RUN if merged is None else merged if template is None else _Trusted(template)


@dataclass(frozen=True)
class _Trusted:
    template: Any

