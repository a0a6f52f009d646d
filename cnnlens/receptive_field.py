"""Receptive fields propagated through the op graph that a forward pass actually runs.

Each tensor produced during a forward pass carries, per spatial axis, the geometry of the
input region that one of its units sees (Araujo, Norris & Sim, Distill 2019):

- ``size`` r: the side of the region in input pixels;
- ``stride`` j: how far the region moves when the unit index grows by one (the effective stride);
- ``padding`` P: unit ``i`` sees input pixels ``[i*j - P, i*j - P + r)``.

A conv or pool with kernel k, dilation d, stride s and left padding p maps
``r -> r + (d(k-1)) j``, ``P -> P + p j``, ``j -> j s``. Where paths merge (add, cat, mul) the
field is the union of the fields, and the paths are *aligned* when every path centres its units
on the same pixel. Anything that mixes all positions (a global pool, a squeeze-excitation gate,
global attention, a linear layer on flattened features) makes the field ``"global"``.

Window attention (Swin's shifted windows, Liu et al. 2021; MaxViT's block and grid attention, Tu et al.
2022) is local but not translation invariant: a unit attends to the positions of its window, so the
region depends on where the unit sits in its window. Those fields are followed exactly from the
module's window size and shift (:class:`Window`, :class:`Grid`): :meth:`ReceptiveField.box` gives the
region of each unit, ``size`` the largest one, and ``"global"`` is kept for units whose region is
the whole input.

The propagation is a :class:`torch.overrides.TorchFunctionMode`, so it follows functional calls
(``F.relu``, ``F.max_pool2d``, ``x[:, :, ::2, ::2]``, ``torch.cat``) and reused modules exactly as
they run, never module registration or hook order. It works on meta tensors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Union

import torch
from torch.overrides import TorchFunctionMode

__all__ = ["ReceptiveField", "ReceptiveFieldMode", "Window"]

GLOBAL = "global"


@dataclass(frozen=True)
class Axis:
    """Sliding-window geometry along one axis: unit ``i`` sees positions ``[i*stride - padding,
    i*stride - padding + size)`` of the tensor it is measured against (the input image, or the tensor
    before a stage of a windowed field)."""

    size: int
    stride: int
    padding: int

    def union(self, other: Axis) -> tuple[Axis, bool]:
        """The field covering both (same stride assumed) and whether their centres agree."""
        start = min(-self.padding, -other.padding)
        end = max(-self.padding + self.size, -other.padding + other.size)
        stride = max(self.stride, other.stride)
        aligned = self.stride == other.stride and (2 * self.padding - self.size) == (2 * other.padding - other.size)
        return Axis(end - start, stride, -start), aligned

    def then(self, op: Axis) -> Axis:
        """This geometry followed by a sliding window ``op`` (kernel ``op.size``, stride, left padding)."""
        return Axis(self.size + (op.size - 1) * self.stride, self.stride * op.stride, self.padding + op.padding * self.stride)

    def span(self, lo: int, hi: int) -> tuple[int, int]:
        """The positions that units ``lo .. hi-1`` see together."""
        return lo * self.stride - self.padding, (hi - 1) * self.stride - self.padding + self.size

    def contains_identity(self) -> bool:
        return self.stride == 1 and self.padding >= 0 and self.size - self.padding >= 1


@dataclass(frozen=True)
class Window:
    """Window attention along one axis of ``extent`` positions: windows of ``size`` positions begin at
    ``offset + k * size`` (a cyclic shift ``s`` gives ``offset = s``: Swin's mask keeps the wrapped
    positions ``[0, s)`` in a window of their own), and a position attends to every position of its window."""

    size: int
    offset: int
    extent: int

    def span(self, lo: int, hi: int) -> tuple[int, int]:
        w, s = self.size, self.offset
        start = (lo - s) // w * w + s
        end = (hi - 1 - s) // w * w + s + w
        return max(start, 0), min(end, self.extent)


@dataclass(frozen=True)
class Grid:
    """Grid attention along one axis of ``extent`` positions (MaxViT): a position attends to every
    position congruent to it modulo ``step``. :meth:`span` is the bounding interval."""

    step: int
    extent: int

    def span(self, lo: int, hi: int) -> tuple[int, int]:
        if hi - lo >= self.step:
            return 0, self.extent
        first, last = lo % self.step, (hi - 1) % self.step
        if first > last:
            return 0, self.extent
        return first, last + (self.extent - 1 - last) // self.step * self.step + 1


@dataclass(frozen=True)
class _Hull:
    """The union of several windowed geometries (paths that cannot be written as one chain)."""

    parts: tuple[Any, ...]


# The geometry of one axis: an Axis (sliding windows only, relative to the input), a chain
# ``(Axis, stage, stage, ...)`` applied from the input outwards once window attention has run, or a _Hull.
Geometry = Union[Axis, tuple, _Hull]


def _then(g: Geometry, op: Axis | Window | Grid) -> Geometry:
    """Geometry ``g`` followed by one more stage."""
    if isinstance(g, Axis):
        return g.then(op) if isinstance(op, Axis) else (g, op)
    if isinstance(g, _Hull):
        return _Hull(tuple(_then(p, op) for p in g.parts))
    if isinstance(op, Axis) and isinstance(g[-1], Axis):
        return (*g[:-1], g[-1].then(op))
    return (*g, op)


def _span(g: Geometry, lo: int, hi: int) -> tuple[int, int]:
    """Input positions that units ``lo .. hi-1`` of geometry ``g`` see together (clipped to each windowed
    tensor's extent, not to the image)."""
    if isinstance(g, Axis):
        return g.span(lo, hi)
    if isinstance(g, _Hull):
        spans = [_span(p, lo, hi) for p in g.parts]
        return min(a for a, _ in spans), max(b for _, b in spans)
    for stage in reversed(g):
        lo, hi = stage.span(lo, hi)
    return lo, hi


def _stride(g: Geometry) -> int:
    if isinstance(g, Axis):
        return g.stride
    if isinstance(g, _Hull):
        return max(_stride(p) for p in g.parts)
    return math.prod(s.stride for s in g if isinstance(s, Axis))


def _union(x: Geometry, y: Geometry) -> tuple[Geometry, bool]:
    """The geometry covering both paths, and whether their centres agree."""
    if isinstance(x, Axis) and isinstance(y, Axis):
        return x.union(y)
    if x == y:
        return x, True
    if not isinstance(x, _Hull) and not isinstance(y, _Hull):
        cx = (x,) if isinstance(x, Axis) else x
        cy = (y,) if isinstance(y, Axis) else y
        short, long = (cx, cy) if len(cx) <= len(cy) else (cy, cx)
        rest = long[len(short) :]
        # a residual around window attention: the longer path sees everything the shorter one sees
        if long[: len(short)] == short and all(not isinstance(s, Axis) or s.contains_identity() for s in rest):
            return (long if len(long) > 1 else long[0]), True
        if len(cx) == len(cy) and cx[:-1] == cy[:-1] and isinstance(cx[-1], Axis) and isinstance(cy[-1], Axis):
            last, aligned = cx[-1].union(cy[-1])
            return (*cx[:-1], last), aligned
    parts: list[Any] = []
    for g in (x, y):
        for p in g.parts if isinstance(g, _Hull) else (g,):
            if p not in parts:
                parts.append(p)
    return _Hull(tuple(parts)), True


@dataclass(frozen=True)
class ReceptiveField:
    """The input region seen by one unit of a feature map, per axis ``(h, w)``.

    Unit ``(i, j)`` sees rows ``[i*stride[0] - padding[0], ... + size[0])`` and likewise columns;
    :meth:`box` gives that window. ``aligned`` is False when merging paths centre their units on
    different pixels (then the box is the union of the paths' boxes).

    After window attention the region depends on where a unit sits in its window: then ``windows``
    holds the exact geometry per axis, :meth:`box` is exact for every unit, ``size`` is the largest
    region of any unit, ``stride`` the distance between neighbouring units and ``padding`` places the
    region of unit 0.
    """

    size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    aligned: bool = True
    windows: tuple[Any, Any] | None = dataclass_field(default=None, repr=False)

    @property
    def windowed(self) -> bool:
        """True after window attention: the region then depends on the unit (see :meth:`box`)."""
        return self.windows is not None

    def box(self, i: int, j: int) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` in input pixels, bottom/right exclusive; may extend past the image."""
        if self.windows is not None:
            (top, bottom), (left, right) = _span(self.windows[0], i, i + 1), _span(self.windows[1], j, j + 1)
            return top, left, bottom, right
        top = i * self.stride[0] - self.padding[0]
        left = j * self.stride[1] - self.padding[1]
        return top, left, top + self.size[0], left + self.size[1]

    def center(self, i: int, j: int) -> tuple[float, float]:
        top, left, bottom, right = self.box(i, j)
        return (top + bottom - 1) / 2, (left + right - 1) / 2

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"size": list(self.size), "stride": list(self.stride), "padding": list(self.padding)}
        if not self.aligned:
            out["aligned"] = False
        if self.windows is not None:
            out["windowed"] = True
        return out


@dataclass(frozen=True)
class _Field:
    """What is known about one tensor: which dims are (H, W), and their geometry (or global)."""

    dims: tuple[int, int] | None  # positions of H and W in the tensor; None when global
    axes: tuple[Geometry, Geometry] | None
    aligned: bool = True

    @property
    def is_global(self) -> bool:
        return self.axes is None

    def moved(self, dims: tuple[int, int]) -> _Field:
        return _Field(dims, self.axes, self.aligned)

    def public(self, extents: tuple[int, int] = (0, 0), image: tuple[int, int] = (0, 0)) -> ReceptiveField | str:
        """The public form; ``extents`` (this tensor's H and W) and ``image`` (the input's) are needed
        only after window attention."""
        if self.axes is None:
            return GLOBAL
        h, w = self.axes
        if isinstance(h, Axis) and isinstance(w, Axis):
            return ReceptiveField((h.size, w.size), (h.stride, w.stride), (h.padding, w.padding), self.aligned)
        sizes, pads, whole = [], [], True
        for g, n, side in zip(self.axes, extents, image):
            spans = [_span(g, i, i + 1) for i in range(n)]
            sizes.append(max(b - a for a, b in spans))
            pads.append(-spans[0][0])
            whole = whole and all(a <= 0 and b >= side for a, b in spans)
        if whole:
            return GLOBAL
        return ReceptiveField((sizes[0], sizes[1]), (_stride(h), _stride(w)), (pads[0], pads[1]), self.aligned, (h, w))


_GLOBAL_FIELD = _Field(None, None)


def window_stages(module: torch.nn.Module, x: torch.Tensor) -> tuple[tuple[int, int], tuple[Window | Grid, Window | Grid]] | None:
    """``(dims of H and W, per-axis stage)`` when ``module`` is window attention applied to ``x``, else None.

    Known: torchvision's ``ShiftedWindowAttention`` (``window_size``, ``shift_size``; input ``(B, H, W, C)``,
    padded at the end to whole windows, no shift along an axis that one window covers), timm's
    ``SwinTransformerBlock`` (the same attributes, sides divisible by the window) and torchvision's MaxViT
    ``PartitionAttentionLayer`` (``partition_type`` window or grid, partition ``p``; input ``(B, C, H, W)``).
    """
    if x.dim() != 4 or not may_window(module):
        return None
    window, shift = getattr(module, "window_size", None), getattr(module, "shift_size", None)
    if window is not None and shift is not None:
        stages = []
        for n, w, s in zip(x.shape[1:3], pair(window), pair(shift)):
            if w <= 0:
                return None
            if hasattr(module, "attn") and n % w:  # timm shifts before padding: only whole windows agree
                return None
            if w >= -(-n // w) * w:
                s = 0
            stages.append(Window(w, s % w, n))
        return (1, 2), (stages[0], stages[1])
    kind, p = getattr(module, "partition_type", None), getattr(module, "p", None)
    if kind in ("window", "grid") and isinstance(p, int) and p > 0:
        h, w = x.shape[2], x.shape[3]
        if kind == "window":
            return (2, 3), (Window(p, 0, h), Window(p, 0, w))
        return (2, 3), (Grid(p, h), Grid(p, w))
    return None


def may_window(module: torch.nn.Module) -> bool:
    """Whether ``module`` has the attributes :func:`window_stages` reads, set on it or on its class (a check
    by name, once per module: cheaper than calling :func:`window_stages` after every module, and than
    ``hasattr``, which goes through ``nn.Module.__getattr__`` and an exception for a missing name)."""

    def has(name: str) -> bool:
        return name in module.__dict__ or hasattr(type(module), name)

    return (has("window_size") and has("shift_size")) or has("partition_type")


def pair(value: Any, default: int = 1) -> tuple[int, int]:
    """An int or a 1- or 2-sequence as ``(h, w)`` (the last two of a longer one); ``None`` is ``default``."""
    if value is None:
        return default, default
    if isinstance(value, int):
        return value, value
    value = tuple(value)
    if len(value) == 1:
        return int(value[0]), int(value[0])
    return int(value[-2]), int(value[-1])


def tensors_in(values: Any, found: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """The tensors in ``values`` and in the lists and tuples nested in it (the argument forms torch
    functions take; much cheaper than a pytree flatten, which matters once per op)."""
    found = [] if found is None else found
    for v in values:
        if isinstance(v, torch.Tensor):
            found.append(v)
        elif isinstance(v, (list, tuple)):
            tensors_in(v, found)
    return found


def _arg(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str, default: Any = None) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _merge(fields: list[_Field]) -> _Field:
    if any(f.is_global for f in fields):
        return _GLOBAL_FIELD
    first = fields[0]
    axes = list(first.axes)  # type: ignore[arg-type]
    aligned = all(f.aligned for f in fields)
    for f in fields[1:]:
        for k in range(2):
            axes[k], ok = _union(axes[k], f.axes[k])  # type: ignore[index]
            aligned = aligned and ok
    return _Field(first.dims, (axes[0], axes[1]), aligned)


def _shifted_copies(fields: list[_Field]) -> bool:
    """Whether fields differ only in where their windows start (same sizes and strides, windows that
    touch or overlap): concatenating them along channels (Swin's patch merging, a space-to-depth) makes
    one window of their union, centred on it."""
    for k in range(2):
        lasts = []
        for f in fields:
            g = f.axes[k]  # type: ignore[index]
            last = g if isinstance(g, Axis) else g[-1] if isinstance(g, tuple) else None
            if not isinstance(last, Axis) or (isinstance(g, tuple) and g[:-1] != fields[0].axes[k][:-1]):  # type: ignore[index]
                return False
            lasts.append(last)
        if len({(a.size, a.stride) for a in lasts}) != 1:
            return False
        starts = sorted({-a.padding for a in lasts})
        if any(b - a > lasts[0].size for a, b in zip(starts, starts[1:])):
            return False
    return True


def _windowed(field: _Field, kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int], dilation: tuple[int, int]) -> _Field:
    """Geometry after a sliding window (conv or pool) over the last two dims."""
    if field.is_global:
        return field
    axes = [_then(field.axes[k], Axis(dilation[k] * (kernel[k] - 1) + 1, stride[k], pad[k])) for k in range(2)]  # type: ignore[index]
    return _Field(field.dims, (axes[0], axes[1]), field.aligned)


def _same_padding(kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    # PyTorch pads d*(k-1)//2 before and the rest after (so even kernels pad one more at the end)
    return tuple(dilation[k] * (kernel[k] - 1) // 2 for k in range(2))  # type: ignore[return-value]


def _map_dims(in_shape: Sequence[int], out_shape: Sequence[int], dims: tuple[int, int]) -> tuple[int, int] | None:
    """Where the (H, W) dims of a tensor land after a view/reshape, or None if they are merged or split."""
    in_prefix = [math.prod(in_shape[:i]) for i in range(len(in_shape) + 1)]
    out_prefix = [math.prod(out_shape[:i]) for i in range(len(out_shape) + 1)]
    found = []
    for d in dims:
        match = [
            e
            for e in range(len(out_shape))
            if out_shape[e] == in_shape[d] and out_prefix[e] == in_prefix[d] and out_prefix[e + 1] == in_prefix[d + 1]
        ]
        if not match:
            return None
        found.append(match[-1] if in_shape[d] == 1 else match[0])
    return found[0], found[1]


def _split_dims(in_shape: Sequence[int], out_shape: Sequence[int], dims: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Where the (H, W) dims land when a reshape splits them into blocks (timm Swin's patch merging:
    ``(B, H, W, C) -> (B, H/2, 2, W/2, 2, C)``), and the block sizes: a dim of ``n`` positions that
    becomes ``(n / k, k, ...)`` keeps its place in the outer factor, whose unit ``i`` covers positions
    ``[i k, i k + k)`` (the inner factors are followed as channels: a space-to-depth). A dim kept whole
    has block 1. None if the (H, W) dims are merged with another dim."""
    in_prefix = [math.prod(in_shape[:i]) for i in range(len(in_shape) + 1)]
    out_prefix = [math.prod(out_shape[:i]) for i in range(len(out_shape) + 1)]
    found, factors = [], []
    for d in dims:
        spans = [
            (e, f)
            for e in range(len(out_shape))
            if out_prefix[e] == in_prefix[d]
            for f in range(e, len(out_shape))
            if out_prefix[f + 1] == in_prefix[d + 1]
        ]
        spans = [(e, f) for e, f in spans if out_shape[e] > 1 or in_shape[d] == 1]
        if not spans:
            return None
        e, f = spans[0]
        found.append(e)
        factors.append(math.prod(out_shape[e + 1 : f + 1]))
    return (found[0], found[1]), (factors[0], factors[1])


_ELEMENTWISE_KEEP_SHAPE = {"contiguous", "clone", "detach", "float", "double", "half", "to", "type", "requires_grad_"}
_REDUCTIONS = {
    "mean", "sum", "amax", "amin", "max", "min", "std", "var", "norm", "logsumexp", "prod", "median",
    "softmax", "log_softmax", "argmax", "argmin", "cumsum", "nansum", "nanmean", "std_mean", "var_mean",
}  # fmt: skip
_TOKEN_MIXERS = {"matmul", "bmm", "mm", "einsum", "scaled_dot_product_attention", "multi_head_attention_forward", "baddbmm"}
_SPLITS = {"chunk", "split", "tensor_split", "unbind", "split_with_sizes"}
_VIEWS = {"view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "view_as", "reshape_as", "squeeze_", "unsqueeze_"}
_BROADCASTS = {"expand", "expand_as", "broadcast_to"}
_KEEP_GLOBAL = _SPLITS | _VIEWS


class ReceptiveFieldMode(TorchFunctionMode):
    """Propagates receptive fields through every torch call made inside the mode.

    Mark the model input with :meth:`track`; afterwards :meth:`field_of` tells the receptive
    field of any tensor computed from it (``None`` when an op could not be followed).
    """

    def __init__(self) -> None:
        super().__init__()
        self._fields: dict[int, _Field | None] = {}
        self._alive: list[Any] = []  # keeps tensors alive so ids are not reused during the pass
        self._image: tuple[int, int] = (0, 0)
        self._public: dict[Any, ReceptiveField | str] = {}
        self.unknown_ops: set[str] = set()

    def track(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError("receptive fields need a (B, C, H, W) input")
        self._image = (x.shape[2], x.shape[3])
        self._set(x, _Field((2, 3), (Axis(1, 1, 0), Axis(1, 1, 0))))

    def field_of(self, tensor: Any) -> ReceptiveField | str | None:
        f = self._fields.get(id(tensor))
        if f is None:
            return None
        if f.axes is None or (isinstance(f.axes[0], Axis) and isinstance(f.axes[1], Axis)):
            return f.public()
        key = (f, tensor.shape[f.dims[0]], tensor.shape[f.dims[1]])  # type: ignore[index]
        if key not in self._public:  # windowed fields are evaluated unit by unit: once per field and size
            self._public[key] = f.public((key[1], key[2]), self._image)
        return self._public[key]

    def _get(self, t: torch.Tensor) -> _Field | None:
        return self._fields.get(id(t))

    def _set(self, t: torch.Tensor, f: _Field | None) -> None:
        self._fields[id(t)] = f
        self._alive.append(t)

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.record(func, args, kwargs, out)
        return out

    def record(self, func: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> None:
        """Give the tensors that ``func(*args, **kwargs)`` returned (``out``) the field its tracked inputs lead to."""
        fields = self._fields
        tracked = [t for t in tensors_in(args) if id(t) in fields]
        if kwargs:
            tracked += [t for t in tensors_in(kwargs.values()) if id(t) in fields]
        if not tracked:
            return
        outs = [out] if isinstance(out, torch.Tensor) else tensors_in(out) if isinstance(out, (tuple, list)) else []
        if not outs:
            return
        name = getattr(func, "__name__", "")
        if name == "fn":  # F.max_pool2d is a boolean_dispatch wrapper
            name = "max_pool2d"
        try:
            field = self._propagate(name, args, kwargs, tracked, outs[0])
        except Exception:  # an op we cannot follow must never break the forward pass
            field = None
        if field is None:
            self.unknown_ops.add(name)
        for t in outs:
            self._set(t, field)

    def module_output(self, module: torch.nn.Module, args: Sequence[Any], output: Any) -> None:
        """After ``module`` ran: give the output of a window-attention module (:func:`window_stages`) its
        field from the windows and shifts. The ops inside such a module (partition reshapes, the cyclic
        shift, the attention mask) are not followed one by one, so without this the output would be global."""
        if not isinstance(output, torch.Tensor) or not args or not isinstance(args[0], torch.Tensor):
            return
        x = args[0]
        field = self._fields.get(id(x))
        if field is None or output.shape != x.shape:
            return
        rule = window_stages(module, x)
        if rule is None:
            return
        dims, stages = rule
        if field.is_global:
            self._set(output, field)
        elif field.dims == dims:
            axes = (_then(field.axes[0], stages[0]), _then(field.axes[1], stages[1]))  # type: ignore[index]
            self._set(output, _Field(dims, axes, field.aligned))

    # ---- rules --------------------------------------------------------------------------------------
    def _propagate(self, name: str, args: Sequence[Any], kwargs: dict[str, Any], tracked: list[torch.Tensor], out: torch.Tensor) -> _Field | None:
        fields = [self._get(t) for t in tracked]
        if any(f is None for f in fields):
            return None
        first: _Field = fields[0]  # type: ignore[assignment]
        x = tracked[0]
        if first.is_global and name not in _KEEP_GLOBAL:
            return _GLOBAL_FIELD
        if name in ("conv2d", "conv1d", "conv3d") and x.dim() == 4 and x is args[0]:
            weight = _arg(args, kwargs, 1, "weight")
            kernel = tuple(weight.shape[-2:])
            stride = pair(_arg(args, kwargs, 3, "stride", 1))
            dilation = pair(_arg(args, kwargs, 5, "dilation", 1))
            padding = _arg(args, kwargs, 4, "padding", 0)
            if isinstance(padding, str):
                pad = (0, 0) if padding == "valid" else _same_padding(kernel, dilation)  # type: ignore[arg-type]
            else:
                pad = pair(padding, 0)
            return self._spatial(first, x, out, _windowed(first, kernel, stride, pad, dilation))  # type: ignore[arg-type]
        if name in ("max_pool2d", "avg_pool2d", "lp_pool2d", "max_pool2d_with_indices"):
            offset = 1 if name == "lp_pool2d" else 0
            kernel = pair(_arg(args, kwargs, 1 + offset, "kernel_size"))
            stride_arg = _arg(args, kwargs, 2 + offset, "stride")
            stride = kernel if stride_arg in (None, (), []) else pair(stride_arg)
            pad = (0, 0) if name == "lp_pool2d" else pair(_arg(args, kwargs, 3, "padding", 0), 0)
            dilation = pair(_arg(args, kwargs, 4, "dilation", 1)) if name.startswith("max") else (1, 1)
            return self._spatial(first, x, out, _windowed(first, kernel, stride, pad, dilation))
        if name in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
            return self._adaptive(first, x, out)
        if name == "pad":
            pads = list(_arg(args, kwargs, 1, "pad"))
            dims = first.dims
            assert dims is not None
            axes = list(first.axes)  # type: ignore[arg-type]
            for k, d in enumerate(dims):
                from_end = x.dim() - 1 - d
                if 2 * from_end + 1 < len(pads):
                    axes[k] = _then(axes[k], Axis(1, 1, pads[2 * from_end]))
            return _Field(dims, (axes[0], axes[1]), first.aligned)
        if name == "__getitem__":
            return self._getitem(first, x, args[1], out)
        if name in _SPLITS:
            dim = _arg(args, kwargs, 2, "dim", 0)
            dim = dim % x.dim()
            if first.is_global:
                return first
            return None if dim in first.dims else first  # type: ignore[operator]
        if name in ("cat", "concat", "concatenate", "stack"):
            dim = _arg(args, kwargs, 1, "dim", 0)
            if any(f.is_global for f in fields):  # type: ignore[union-attr]
                return _GLOBAL_FIELD
            dims = first.dims
            assert dims is not None
            if name == "stack":
                dim = dim % (x.dim() + 1)
                dims = tuple(d + (d >= dim) for d in dims)  # type: ignore[assignment]
            elif dim % x.dim() in dims:
                return None
            merged = _merge(fields)
            if not merged.aligned and all(f.aligned for f in fields) and _shifted_copies(fields):  # type: ignore[arg-type]
                merged = _Field(merged.dims, merged.axes, True)  # space to depth: one window of the union
            return merged.moved(dims)  # type: ignore[arg-type]
        if name in ("permute", "transpose", "swapaxes", "swapdims", "movedim", "moveaxis", "t"):
            return self._permute(name, first, x, args, kwargs)
        if name in _VIEWS or name in _BROADCASTS:
            if first.is_global:
                return first
            if name in _BROADCASTS:
                shift = out.dim() - x.dim()
                return first.moved(tuple(d + shift for d in first.dims))  # type: ignore[arg-type, union-attr]
            dims = _map_dims(x.shape, out.shape, first.dims)  # type: ignore[arg-type]
            if dims is not None:
                return first.moved(dims)
            split = _split_dims(x.shape, out.shape, first.dims)  # type: ignore[arg-type]
            if split is None:
                return _GLOBAL_FIELD
            dims, factors = split
            axes = [first.axes[k] if factors[k] == 1 else _then(first.axes[k], Axis(factors[k], factors[k], 0)) for k in range(2)]  # type: ignore[index]
            return _Field(dims, (axes[0], axes[1]), first.aligned)
        if name in _REDUCTIONS:
            return self._reduce(first, x, args, kwargs, out)
        if name in ("linear", "layer_norm", "rms_norm"):
            last = x.dim() - 1
            n = len(_arg(args, kwargs, 1, "normalized_shape", [0])) if name != "linear" else 1
            mixed = set(range(last - n + 1, last + 1))
            return _GLOBAL_FIELD if mixed & set(first.dims) else first  # type: ignore[arg-type]
        if name in ("group_norm", "instance_norm", "local_response_norm"):
            return _GLOBAL_FIELD if name != "local_response_norm" else first
        if name in _TOKEN_MIXERS:
            if name == "matmul" and len(tracked) == 1 and tracked[0] is args[0] and x.dim() - 1 not in first.dims:  # type: ignore[operator]
                return first.moved(first.dims)  # type: ignore[arg-type]
            return _GLOBAL_FIELD
        if name in ("roll",):
            return _GLOBAL_FIELD
        return self._elementwise(fields, tracked, out)  # type: ignore[arg-type]

    def _spatial(self, field: _Field, x: torch.Tensor, out: torch.Tensor, new: _Field) -> _Field | None:
        if field.dims != (x.dim() - 2, x.dim() - 1):
            return None
        return new

    def _adaptive(self, field: _Field, x: torch.Tensor, out: torch.Tensor) -> _Field | None:
        kernel, stride = [], []
        for k in range(2):
            n_in, n_out = x.shape[-2 + k], out.shape[-2 + k]
            if n_out == 1 and n_in > 1:
                return _GLOBAL_FIELD
            if n_in % n_out:
                return None  # windows of different sizes: not one geometry
            kernel.append(n_in // n_out)
            stride.append(n_in // n_out)
        return self._spatial(field, x, out, _windowed(field, tuple(kernel), tuple(stride), (0, 0), (1, 1)))  # type: ignore[arg-type]

    def _getitem(self, field: _Field, x: torch.Tensor, index: Any, out: torch.Tensor) -> _Field | None:
        if not isinstance(index, tuple):
            index = (index,)
        if any(isinstance(i, torch.Tensor) or isinstance(i, list) for i in index):
            return None
        # expand Ellipsis
        n_real = sum(1 for i in index if i is not None and i is not Ellipsis)
        expanded: list[Any] = []
        for i in index:
            if i is Ellipsis:
                expanded += [slice(None)] * (x.dim() - n_real)
            else:
                expanded.append(i)
        expanded += [slice(None)] * (x.dim() - sum(1 for i in expanded if i is not None))
        dims = field.dims
        assert dims is not None
        axes = list(field.axes)  # type: ignore[arg-type]
        new_dims: dict[int, int] = {}
        d_in, d_out = 0, 0
        for item in expanded:
            if item is None:
                d_out += 1
                continue
            if isinstance(item, int):
                if d_in in dims:
                    return None
                d_in += 1
                continue
            if not isinstance(item, slice):
                return None
            if d_in in dims:
                k = dims.index(d_in)
                start, _, step = item.indices(x.shape[d_in])
                axes[k] = _then(axes[k], Axis(1, step, -start))
                new_dims[k] = d_out
            d_in += 1
            d_out += 1
        return _Field((new_dims[0], new_dims[1]), (axes[0], axes[1]), field.aligned)

    def _permute(self, name: str, field: _Field, x: torch.Tensor, args: Sequence[Any], kwargs: dict[str, Any]) -> _Field | None:
        if field.is_global:
            return field
        n = x.dim()
        order = list(range(n))
        if name == "permute":
            perm = args[1:] if len(args) > 2 or (len(args) == 2 and isinstance(args[1], int)) else _arg(args, kwargs, 1, "dims")
            order = [p % n for p in perm]
        elif name == "t":
            order = order[::-1]
        elif name in ("movedim", "moveaxis"):
            src, dst = _arg(args, kwargs, 1, "source"), _arg(args, kwargs, 2, "destination")
            src = [src] if isinstance(src, int) else list(src)
            dst = [dst] if isinstance(dst, int) else list(dst)
            order = [None] * n  # type: ignore[list-item]
            for s, d in zip(src, dst):
                order[d % n] = s % n
            rest = iter(i for i in range(n) if i not in [s % n for s in src])
            order = [o if o is not None else next(rest) for o in order]
        else:
            a, b = _arg(args, kwargs, 1, "dim0") % n, _arg(args, kwargs, 2, "dim1") % n
            order[a], order[b] = order[b], order[a]
        return field.moved((order.index(field.dims[0]), order.index(field.dims[1])))  # type: ignore[index]

    def _reduce(self, field: _Field, x: torch.Tensor, args: Sequence[Any], kwargs: dict[str, Any], out: torch.Tensor) -> _Field | None:
        dim = _arg(args, kwargs, 1, "dim")
        if dim is None or isinstance(dim, str):
            return _GLOBAL_FIELD
        dims_reduced = {d % x.dim() for d in ([dim] if isinstance(dim, int) else dim)}
        if dims_reduced & set(field.dims):  # type: ignore[arg-type]
            return _GLOBAL_FIELD
        if out.dim() == x.dim():
            return field
        return field.moved(tuple(d - sum(1 for r in dims_reduced if r < d) for d in field.dims))  # type: ignore[union-attr, arg-type]

    def _elementwise(self, fields: list[_Field], tracked: list[torch.Tensor], out: torch.Tensor) -> _Field | None:
        if len(fields) == 1 and not fields[0].is_global and out.shape == tracked[0].shape:
            return fields[0]  # one input, shape kept (an activation): what the loop below gives, without its copies
        spatial = []
        for f, t in zip(fields, tracked):
            if f.is_global:
                return _GLOBAL_FIELD
            shift = out.dim() - t.dim()
            if shift < 0:
                return None
            dims = (f.dims[0] + shift, f.dims[1] + shift)  # type: ignore[index]
            if tuple(out.shape[d] for d in dims) != tuple(t.shape[d - shift] for d in dims):
                return None  # broadcast across positions or a shape change we do not know
            spatial.append(f.moved(dims))
        dims0 = spatial[0].dims
        if any(f.dims != dims0 for f in spatial):
            return None
        return _merge(spatial)
