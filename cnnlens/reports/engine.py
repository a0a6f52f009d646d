"""The report's two meta-device passes: output shape, parameters, MACs/FLOPs, activation memory, receptive field.

:func:`report` takes any name of the model registry (``cnnlens.list_models()``, ``path/file.py:Class``,
``timm/NAME``) or any ``nn.Module`` and returns a :class:`Report`, a :class:`~cnnlens.results.Result`.

Everything is computed on the meta device: a registered model is built with its
parameters on ``meta`` (no weights are allocated, none downloaded); any other ``nn.Module`` is run
through :func:`torch.func.functional_call` (once, for both passes) with meta stand-ins for its
parameters and buffers, so its real weights are never touched or copied. One forward pass in train
mode counts the tensors autograd saves for backward (:func:`torch.autograd.graph.saved_tensors_hooks`),
with attention run as the CPU's kernel would run it; a second one in eval mode gives shapes, FLOPs
(the formulas and rules of :class:`torch.utils.flop_counter.FlopCounterMode`) and receptive fields
(:class:`~cnnlens.receptive_field.ReceptiveFieldMode`). A memo of calls and shape rules for PyTorch's
slow meta kernels (:mod:`cnnlens.reports.memo`) keep both passes below the cost of torchinfo's one.
"""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch.nn.attention import SDPBackend
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from ..checks import check_int
from ..errors import CnnlensError, did_you_mean
from ..hooks import hooked, preserved_state, set_training
from ..layers import depth_of, model_dtype
from ..receptive_field import ReceptiveField, ReceptiveFieldMode, may_window, tensors_in
from ..registry import ModelInfo, model_info
from ..speed import gc_paused
from .memo import (
    RUN,
    CallMemo,
    Uncached,
    build,
    meta_shortcut,
    output_spec,
    output_specs,
    storage_key,
    tensor_geometry,
)
from .result import (
    ATTENTION_NOTE,
    OPTIMIZER_STATES,
    LayerRow,
    Report,
    Totals,
    size_text,
)

__all__ = ["receptive_fields", "report"]


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return tensors_in(obj)
    from torch.utils._pytree import tree_flatten

    return [t for t in tree_flatten(obj)[0] if isinstance(t, torch.Tensor)]


def _first_tensor(values: Any) -> torch.Tensor | None:
    """The first tensor of a module's arguments or outputs (None if there is none)."""
    if type(values) is torch.Tensor:
        return values
    if isinstance(values, tuple) and values and type(values[0]) is torch.Tensor:
        return values[0]
    return next(iter(_tensors(values)), None)


def _per_item(t: torch.Tensor | None) -> int | None:
    """Elements per batch item (all of a 0-d tensor's; None without a tensor)."""
    if t is None:
        return None
    return t.numel() // max(1, t.shape[0]) if t.dim() else t.numel()


def _meta_state(
    params: list[tuple[str, torch.Tensor]], buffers: list[tuple[str, torch.Tensor]], dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """Meta stand-ins for every parameter and buffer (the model's ``named_parameters`` and
    ``named_buffers`` with duplicates; same shape, dtype and requires_grad; with ``dtype``,
    floating-point ones in that dtype, as after ``model.to(dtype)``); tied weights share one
    stand-in under each of its names."""
    state: dict[str, torch.Tensor] = {}
    made: dict[int, torch.Tensor] = {}

    def stand_in(t: torch.Tensor) -> torch.Tensor:
        return torch.empty_like(t, device="meta", dtype=dtype if dtype is not None and t.is_floating_point() else None)

    for name, p in params:
        if id(p) not in made:
            made[id(p)] = nn.Parameter(stand_in(p), requires_grad=p.requires_grad)
        state[name] = made[id(p)]
    for name, b in buffers:
        if id(b) not in made:
            made[id(b)] = stand_in(b)
        state[name] = made[id(b)]
    return state


class _Passes(nn.Module):
    """A module whose forward calls ``fn``: :func:`torch.func.functional_call` on it swaps the model's
    (its child's) parameters and buffers for their meta stand-ins once for both passes."""

    def __init__(self, model: nn.Module, fn: Any) -> None:
        super().__init__()
        self.model = model
        self.fn = fn

    def forward(self) -> Any:
        return self.fn()


def _with_meta_weights(model: nn.Module, meta_state: dict[str, torch.Tensor] | None, fn: Any) -> Any:
    """``fn()`` with ``model``'s parameters and buffers replaced by ``meta_state`` (None: as they are)."""
    if meta_state is None:
        return fn()
    state = {f"model.{name}": t for name, t in meta_state.items()}
    # every name of a tied weight is given its one stand-in: nothing for tie_weights to untie
    return torch.func.functional_call(_Passes(model, fn), state, (), tie_weights=False, strict=False)


# calls that only read metadata: passed straight through
_METADATA_CALLS = frozenset(
    {"__get__", "dim", "size", "stride", "numel", "nelement", "ndimension", "is_contiguous", "storage_offset",
     "element_size", "__len__", "is_floating_point", "get_device", "untyped_storage", "data_ptr", "__format__"}
)  # fmt: skip


class _EvalMode(ReceptiveFieldMode):
    """The eval pass: receptive fields (the parent class), batch norm reduced to its output shape, and
    the call memo (outputs and FLOPs of repeated calls)."""

    def __init__(self, flops: _FlopCounter) -> None:
        super().__init__()
        self.flops = flops
        self.memo = CallMemo(train=False)

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in _METADATA_CALLS:
            out = func(*args, **kwargs)
            if isinstance(out, torch.Tensor):
                self.record(func, args, kwargs, out)
            return out
        if func is torch.nn.functional.batch_norm and args and args[0].device.type == "meta" and not torch.is_grad_enabled():
            # PyTorch's meta batch norm is a Python decomposition that costs more than the rest of a ResNet pass
            out = torch.empty_like(args[0])
        else:
            out = self._call(func, args, kwargs)
        self.record(func, args, kwargs, out)
        return out

    def _counted(self, func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        """``func`` run for real, its FLOPs counted (the counter's dispatch mode is on for real calls only:
        a call built from the memo adds the FLOPs its first call counted)."""
        with self.flops:
            return func(*args, **kwargs)

    def _call(self, func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        try:
            key, entry, family = self.memo.lookup(func, args, kwargs)
        except Uncached:
            return self._counted(func, args, kwargs)
        if entry is RUN:
            return self._counted(func, args, kwargs)
        if entry is not None:
            structure, specs, flops, _ = entry
            self.flops.add(flops)
            if structure[0] == "self":  # an in-place call: its input comes back
                return (tensors_in(args) + tensors_in(kwargs.values()))[structure[1]]
            return build(structure, [s.make() for s in specs])
        inputs = tensors_in(args) + tensors_in(kwargs.values())
        before = self.flops.total
        layout_before = [tensor_geometry(t) for t in inputs]
        out = self._counted(func, args, kwargs)
        try:
            structure, made = output_spec(out, inputs, layout_before)
            if any(t.requires_grad for t in made):
                raise Uncached
            entry = (structure, output_specs(structure), self.flops.total - before, None)
        except Uncached:
            entry = RUN
        self.memo.store(key, entry, family)
        return out


class _FlopCounter(TorchDispatchMode):
    """FLOPs by the formulas of :mod:`torch.utils.flop_counter`, with the rules of its ``FlopCounterMode``
    (ops without a formula are decomposed where PyTorch can), attributed to the modules running at the
    time: ``active``, the names the report's hooks keep (what ``FlopCounterMode``'s module tracker does
    with global hooks)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.by_module: dict[str, int] = {}
        self.active: set[str] = set()
        self._decomposes: dict[Any, bool] = {}

    def add(self, flops: int) -> None:
        if flops:
            self.total += flops
            for name in self.active:
                self.by_module[name] = self.by_module.get(name, 0) + flops

    def __torch_dispatch__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None) -> Any:
        from torch.utils.flop_counter import flop_registry

        kwargs = kwargs or {}
        if func in _DISPATCH_METADATA or isinstance(func, torch._ops.HigherOrderOperator):
            return NotImplemented
        decomposes = self._decomposes.get(func)
        if decomposes is None:  # what OpOverload.decompose checks, once per op
            key = torch._C.DispatchKey.CompositeImplicitAutograd
            decomposes = func is not torch.ops.prim.device.default and (
                key in func.py_kernels or torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), key)
            )
            self._decomposes[func] = decomposes
        if decomposes:
            with self:
                result = func.decompose(*args, **kwargs)
            if result is not NotImplemented:
                return result
        out = meta_shortcut(func, args, kwargs)
        if out is None:
            out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.add(_flops(formula, args, kwargs, out))
        return out


def _shapes(value: Any) -> Any:
    """``value`` with each tensor replaced by its shape, for a plain list, a plain tuple or a leaf;
    ``KeyError`` for other containers (left to PyTorch's ``tree_map``)."""
    if isinstance(value, torch.Tensor):
        return value.shape
    kind = type(value)
    if kind is tuple or kind is list:
        return kind(_shapes(v) for v in value)
    if isinstance(value, (tuple, list, dict)):
        raise KeyError(kind)
    return value


@functools.cache
def _shape_wrapped() -> Any:
    """The code object of the wrapper ``torch.utils.flop_counter.shape_wrapper`` puts on its formulas."""
    from torch.utils.flop_counter import shape_wrapper

    return shape_wrapper(lambda: 0).__code__


def _flops(formula: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> int:
    """``formula(*args, **kwargs, out_val=out)`` of :data:`torch.utils.flop_counter.flop_registry`. Its
    formulas take shapes through ``shape_wrapper``, a ``tree_map`` over every argument (half the time
    of a counted convolution on meta): for plain lists and tuples the shapes are taken here and the
    formula itself called (``__wrapped__``); anything else goes through the wrapper."""
    if getattr(formula, "__code__", None) is _shape_wrapped():
        try:
            shaped = [_shapes(a) for a in args]
            named = {k: _shapes(v) for k, v in kwargs.items()}
            out_shape = _shapes(out)
        except KeyError:
            pass
        else:
            return formula.__wrapped__(*shaped, out_shape=out_shape, **named)
    return formula(*args, **kwargs, out_val=out)


_DISPATCH_METADATA = frozenset(
    getattr(torch.ops.aten, op).default if "." not in op else getattr(getattr(torch.ops.aten, op.split(".")[0]), op.split(".")[1])
    for op in ("sym_is_contiguous", "is_contiguous", "is_contiguous.memory_format", "is_strides_like_format",
               "is_non_overlapping_and_dense", "size", "sym_size", "stride", "sym_stride", "storage_offset",
               "sym_storage_offset", "numel", "sym_numel", "dim")
) | {torch.ops.prim.layout.default}  # fmt: skip


class _Shortcuts(TorchDispatchMode):
    """The train pass's real calls: ATen ops with a shape rule (:func:`~cnnlens.reports.memo.meta_shortcut`)
    built from it, every other op run as it is. The mode sits below autograd, which saves what it saves.
    ``answered`` counts the ops built from a rule."""

    def __init__(self) -> None:
        super().__init__()
        self.answered = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        out = meta_shortcut(func, args, kwargs)
        if out is None:
            return func(*args, **kwargs)
        self.answered += 1
        return out


class _TrainMode(TorchFunctionMode):
    """The train pass: counts the distinct storages autograd saves for backward (``pack`` is the
    saved-tensor hook), runs attention with the kernel the CPU would use, and replays repeated calls."""

    def __init__(self, param_keys: set[int], memo: CallMemo) -> None:
        super().__init__()
        self.param_keys = param_keys
        self.saved: dict[int, torch.Tensor] = {}
        self.fused_attention = 0  # calls of scaled_dot_product_attention that took PyTorch's fused CPU kernel
        self._recording: list[Any] | None = None
        self.memo = memo
        self.shortcuts = _Shortcuts()
        self._mha = _with_attention(torch.nn.functional.multi_head_attention_forward, self.attention)

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        key = storage_key(t)
        if self._recording is not None:
            self._recording.append((t, key, key in self.saved))
        if key not in self.param_keys:
            self.saved.setdefault(key, t)
        return t

    def attention(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: torch.Tensor | None = None,
                  dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None, enable_gqa: bool = False) -> torch.Tensor:  # fmt: skip
        """``scaled_dot_product_attention`` as it runs on the CPU. On meta tensors PyTorch always takes the
        math path, which saves the L x L attention matrices for backward; the CPU's fused (flash) kernel
        saves query, key, value, output and the log-sum-exp instead. So ask PyTorch's CPU kernel choice
        (on stand-ins without memory) and call that kernel on the meta tensors."""
        sdpa = torch.nn.functional.scaled_dot_product_attention
        call = dict(attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale)
        if query.device.type != "meta" or enable_gqa or query.dim() not in (3, 4):
            return sdpa(query, key, value, **call, enable_gqa=enable_gqa)
        stand = [None if t is None else torch.empty((1,) * (t.dim() - 1) + t.shape[-1:], dtype=t.dtype, requires_grad=t.requires_grad).expand(t.shape)
                 for t in (query, key, value, attn_mask)]  # fmt: skip
        try:
            fused = torch._fused_sdp_choice(*stand[:3], stand[3], dropout_p, is_causal, scale=scale) == int(SDPBackend.FLASH_ATTENTION)
        except (AttributeError, RuntimeError):  # a PyTorch without this private query (tests/test_torch_private_api.py): count the math path
            fused = False
        if not fused:
            return sdpa(query, key, value, **call)
        three = query.dim() == 3
        if three:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            attn_mask = torch.where(attn_mask, torch.scalar_tensor(0.0, dtype=query.dtype, device="meta"), torch.scalar_tensor(-math.inf, dtype=query.dtype, device="meta"))
        out = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(query, key, value, dropout_p, is_causal, attn_mask=attn_mask, scale=scale)[0]
        self.fused_attention += 1
        return out.squeeze(0) if three else out

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in _METADATA_CALLS or not torch.is_grad_enabled():
            return self._real(func, args, kwargs)
        try:
            key, entry, family = self.memo.lookup(func, args, kwargs)
        except Uncached:
            return self._real(func, args, kwargs)
        if entry is RUN:
            return self._real(func, args, kwargs)
        inputs = tensors_in(args) + tensors_in(kwargs.values())
        if entry is not None:
            made = self._replay(entry, inputs)
            return self._real(func, args, kwargs) if made is None else build(entry[0], made)
        layout_before = [tensor_geometry(t) for t in inputs]
        self._recording = recorded = []
        try:
            if func in self.memo.unanswered:  # no shortcut served its first call: no dispatch mode for it
                out = self._real(func, args, kwargs)
            else:
                answered = self.shortcuts.answered
                with self.shortcuts:
                    out = self._real(func, args, kwargs)
                if self.shortcuts.answered == answered:
                    self.memo.unanswered.add(func)
        finally:
            self._recording = None
        try:
            input_keys = [storage_key(t) for t in inputs]
            structure, made = output_spec(out, inputs, layout_before, input_keys)
            if any(t.requires_grad for t in made) and not any(t.requires_grad for t in inputs):
                raise Uncached  # grad from a tensor the call did not get as an argument
            ins = {k: i for i, k in reversed(list(enumerate(input_keys)))}
            outs = {storage_key(t): j for j, t in enumerate(made)}
            news: dict[int, int] = {}
            saves = []
            for t, sk, saved_before in recorded:
                if sk in ins:
                    saves.append(("in", ins[sk], 0))
                elif sk in outs:
                    saves.append(("out", outs[sk], 0))
                elif sk in news:
                    saves.append(("new", news[sk], 0))
                elif saved_before or sk in self.param_keys:  # a tensor from outside the call, not an argument
                    raise Uncached
                else:
                    news[sk] = len(news)
                    saves.append(("new", news[sk], t.untyped_storage().nbytes()))
            entry = (structure, output_specs(structure), 0, saves)
        except Uncached:
            entry = RUN
        self.memo.store(key, entry, family)
        return out

    def _replay(self, entry: Any, inputs: list[torch.Tensor]) -> list[torch.Tensor] | None:
        """A call built from the memo: fresh outputs (those that require grad made by a clone, so that
        they have a grad_fn as the real outputs do), and the tensors the real call saved for backward
        handed to :meth:`pack` (inputs, outputs, and new tensors of the sizes it saved). An in-place
        call returns its input; on a leaf that requires grad it is run (autograd refuses it)."""
        structure, specs, _, saves = entry
        if structure[0] == "self":
            x = inputs[structure[1]]
            if x.requires_grad and x.is_leaf:
                return None
            outs = [x]
        else:
            outs = [
                torch.empty_strided(s.shape, s.stride, dtype=s.dtype, device="meta", requires_grad=True).clone() if s.requires_grad else s.make()
                for s in specs
            ]
        news: dict[int, torch.Tensor] = {}
        for kind, index, nbytes in saves:
            if kind == "in":
                self.pack(inputs[index])
            elif kind == "out":
                self.pack(outs[index])
            elif index not in news:  # a tensor the call made and saved: the same size (its first mention carries it)
                news[index] = torch.empty(nbytes, dtype=torch.uint8, device="meta")
                self.pack(news[index])
        return outs

    def _real(self, func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        if func is torch.nn.functional.scaled_dot_product_attention:
            return self.attention(*args, **kwargs)
        if func is torch.nn.functional.multi_head_attention_forward and self._mha is not None:
            return self._mha(*args, **kwargs)
        return func(*args, **kwargs)


def _with_attention(function: Any, attention: Any) -> Any:
    """A copy of a torch function (``F.multi_head_attention_forward``) that calls ``attention`` where it
    calls ``scaled_dot_product_attention``: a torch-function mode does not see the calls nested in a
    function it intercepts, so the nested attention is replaced in the copy's globals (torch is left alone)."""
    code = getattr(function, "__code__", None)
    if code is None or "scaled_dot_product_attention" not in code.co_names:
        return None
    namespace = dict(function.__globals__)
    namespace["scaled_dot_product_attention"] = attention
    copy = types.FunctionType(code, namespace, function.__name__, function.__defaults__, function.__closure__)
    copy.__kwdefaults__ = function.__kwdefaults__
    return copy


# Leaf modules of these exact PyTorch types run no op that torch.utils.flop_counter has a formula for
# (activations, dropout, pooling, normalization, reshapes): they count no FLOPs of their own, so they
# need no pre-hook to mark them running (their input is read by the forward hook; an in-place
# activation keeps its input's shape).
_NO_FLOP_LEAVES = frozenset(
    {nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh,
     nn.Dropout, nn.Dropout2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten,
     nn.Identity, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm}
)  # fmt: skip


@dataclass(slots=True)
class _Seen:
    """What the eval pass's hooks saw of one module."""

    calls: int = 0
    output_shape: list[int] | None = None
    output_bytes: int = 0
    in_numel: int | None = None
    out_numel: int | None = None
    rf: Any = None


def report(
    model: nn.Module | str,
    input_size: int | Sequence[int] | None = None,
    *,
    depth: int | None = None,
    optimizer: str = "adam",
    dtype: torch.dtype | None = None,
) -> Report:
    """Report every module of ``model`` for an input of ``input_size``, without real tensors.

    Args:
        model: any registry name (``cnnlens.list_models()``: torchvision models, ``alexnet-paper``,
            ``lenet5``, ``mnist-cnn`` ...; ``path/to/file.py:ClassName``; ``timm/NAME``), built with
            empty weights on the meta device, or any ``nn.Module`` (its weights are neither read nor
            changed; hooks and modes are restored).
        input_size: ``(B, C, H, W)``, ``(C, H, W)``, ``(H, W)`` or one side ``S`` (the model's channel
            count and batch 1 fill in the rest). Default: the model's input size from the registry
            (299 for inception_v3, 1x32x32 for lenet5); 3x224x224 for a module of unknown origin.
        depth: keep rows down to this nesting depth (``features`` is 1, ``features.0`` is 2).
        optimizer: whose state the training-memory estimate includes: adam, adamw, sgd, sgd-momentum, rmsprop.
        dtype: report the model as if it ran in this floating-point dtype (``torch.float16``,
            ``torch.bfloat16`` ...): input, activations and floating-point parameters and buffers in it,
            as after ``model.to(dtype)`` (the model itself is not changed). Default: the model's
            parameter dtype (else float32), each parameter and buffer keeping its own.

    Raises:
        CnnlensError: unknown model, bad arguments, or a model that cannot run on the input size.

    Example:
        >>> import torch.nn as nn
        >>> r = report(nn.Sequential(nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2)), (1, 3, 227, 227))
        >>> r["0"].output_shape, r["0"].params, r["2"].output_shape
        ([1, 96, 55, 55], 34944, [1, 96, 27, 27])
    """
    with gc_paused():  # the passes make tens of thousands of short-lived objects (cnnlens.speed.gc_paused)
        return _report(model, input_size, depth=depth, optimizer=optimizer, dtype=dtype)


def _report(
    model: nn.Module | str, input_size: int | Sequence[int] | None, *, depth: int | None, optimizer: str, dtype: torch.dtype | None
) -> Report:
    if optimizer not in OPTIMIZER_STATES:
        raise CnnlensError(
            f"optimizer {optimizer!r} unknown{did_you_mean(str(optimizer), OPTIMIZER_STATES)}; one of {', '.join(OPTIMIZER_STATES)}",
            param="optimizer",
        )
    if depth is not None:
        depth = check_int(depth, "depth", low=1)
    if isinstance(model, str):
        from ..registry import build_empty

        module = build_empty(model)
    elif isinstance(model, nn.Module):
        module = model
    else:
        raise CnnlensError(f"model must be a model name or an nn.Module, not {type(model).__name__}", param="model")
    if isinstance(module, torch.jit.ScriptModule):
        raise CnnlensError(
            "model is a TorchScript module, which takes no forward hooks (the report reads every layer through them): "
            "report the nn.Module it was scripted from",
            param="model",
        )
    info = model_info(module)
    name = info.name
    input_size = _input_shape(module, info, input_size)
    params = list(module.named_parameters(remove_duplicate=False))  # one walk each, for everything below
    buffers = list(module.named_buffers(remove_duplicate=False))
    tensors = [t for _, t in params] + [t for _, t in buffers]
    cast = None
    if dtype is None:
        dtype = model_dtype(module)
    else:
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise CnnlensError(f"dtype must be a floating-point torch.dtype such as torch.float16, not {dtype!r}", param="dtype")
        cast = dtype if any(t.is_floating_point() and t.dtype != dtype for t in tensors) else None
    on_meta = bool(tensors) and all(t.device.type == "meta" for t in tensors)
    meta_state = None if cast is None and on_meta else _meta_state(params, buffers, cast)

    named = [(n, m) for n, m in module.named_modules() if n]
    seen: dict[str, _Seen] = {n: _Seen() for n, _ in named}
    counter = _FlopCounter()
    rf_mode = _EvalMode(counter)
    active = counter.active
    leaf_outputs: dict[int, torch.Tensor] = {}
    leaves = {n for n, m in named if next(m.children(), None) is None}

    def pre_hook(name: str):  # noqa: ANN202
        s = seen[name]

        def hook(mod: nn.Module, args: Any) -> None:
            active.add(name)
            if s.in_numel is None:
                with torch._C.DisableTorchFunction():  # reading metadata: not through the modes
                    s.in_numel = _per_item(_first_tensor(args))

        return hook

    def post_hook(name: str, module: nn.Module):  # noqa: ANN202
        s = seen[name]
        leaf = name in leaves
        windowed = may_window(module)
        unhooked = type(module) in _NO_FLOP_LEAVES  # no pre-hook: the input is read here

        def hook(mod: nn.Module, args: Any, output: Any) -> None:
            active.discard(name)
            s.calls += 1
            with torch._C.DisableTorchFunction():  # the hook reads metadata: every .shape would go through rf_mode
                if unhooked and s.in_numel is None:
                    s.in_numel = _per_item(_first_tensor(args))
                outs = [output] if type(output) is torch.Tensor else _tensors(output)
                if not outs:
                    return
                s.output_bytes += sum(t.numel() * t.element_size() for t in outs)
                if windowed:
                    rf_mode.module_output(mod, args, output)
                if s.output_shape is None:
                    first = outs[0]
                    s.output_shape = list(first.shape)
                    s.out_numel = _per_item(first)
                    s.rf = rf_mode.field_of(first)
                if leaf:
                    for t in outs:
                        leaf_outputs.setdefault(storage_key(t), t)

        return hook

    x = torch.empty(input_size, device="meta", dtype=dtype)
    notes: list[str] = []
    if cast is not None:
        notes.append(f"reported as if the model ran in {str(dtype).replace('torch.', '')} (parameters, buffers, input and activations)")
    modules = [module, *(m for _, m in named)]
    params_all = list({id(p): p for p in (meta_state.values() if meta_state is not None else (p for _, p in params)) if isinstance(p, nn.Parameter)}.values())
    param_keys = {storage_key(p) for p in params_all}

    def passes() -> int | None:
        """The train pass, then the eval pass (the model ends in eval mode, as most are given); the
        train pass's saved-for-backward bytes."""
        saved = _saved_for_backward(module, modules, input_size, dtype, param_keys, notes)
        try:
            pre = [(m, pre_hook(n)) for n, m in named if type(m) not in _NO_FLOP_LEAVES]
            with hooked(pre, pre=True), hooked([(m, post_hook(n, m)) for n, m in named]):
                rf_mode.track(x)
                set_training(modules, False)  # the flags come back with preserved_state; no_grad: nothing to freeze
                with torch.no_grad(), rf_mode:  # the counter runs inside rf_mode's real calls
                    module(x)
        except CnnlensError:
            raise
        except Exception as exc:
            low, usual = info.preprocessing.min_size, info.preprocessing.input_size
            below = input_size[-2] < low[0] or input_size[-1] < low[1]
            minimum = f" (below its minimum {low[0]}x{low[1]})" if below else f" (its usual input is {size_text(usual)})"
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CnnlensError(
                f"input_size: {name} cannot run on input {size_text(input_size)}{minimum}: {message}", param="input_size"
            ) from None
        return saved

    with preserved_state(module):
        saved_bytes = _with_meta_weights(module, meta_state, passes)

    flops_by_module = counter.by_module
    total_flops = int(counter.total)
    n_params = sum(p.numel() for p in params_all)
    n_trainable = sum(p.numel() for p in params_all if p.requires_grad)
    param_bytes = sum(p.numel() * p.element_size() for p in params_all)
    activation_bytes = sum(t.untyped_storage().nbytes() for t in leaf_outputs.values())
    training = None
    if saved_bytes is not None:
        trainable_bytes = sum(p.numel() * p.element_size() for p in params_all if p.requires_grad)
        training = param_bytes + trainable_bytes * (1 + OPTIMIZER_STATES[optimizer]) + saved_bytes
    if rf_mode.unknown_ops:
        notes.append(f"receptive field not followed through: {', '.join(sorted(rf_mode.unknown_ops))}")

    subtree_params = _subtree_params(params)
    rows = []
    for n, m in named:
        if depth is not None and depth_of(n) > depth:
            continue
        s = seen[n]
        flops = flops_by_module.get(n, 0)
        dense = s.in_numel * s.out_numel if s.in_numel is not None and s.out_numel is not None else None
        rows.append(
            LayerRow(
                name=n,
                type=type(m).__name__,
                output_shape=s.output_shape,
                params=subtree_params.get(n, 0),
                macs=flops // 2,
                flops=flops,
                output_bytes=s.output_bytes,
                receptive_field=s.rf,
                dense_equivalent_params=dense,
                calls=s.calls,
            )
        )
    totals = Totals(
        params=n_params,
        trainable_params=n_trainable,
        macs=total_flops // 2,
        flops=total_flops,
        activation_bytes=activation_bytes,
        training_bytes_estimate=training,
        param_bytes=param_bytes,
        saved_for_backward_bytes=saved_bytes,
        optimizer=optimizer,
    )
    return Report(name, input_size, rows, totals, notes, info)


def _subtree_params(params: list[tuple[str, torch.Tensor]]) -> dict[str, int]:
    """Parameters of every module's subtree (a shared parameter once per subtree), from the model's
    ``named_parameters(remove_duplicate=False)``: one walk over the names instead of one per module."""
    counted: dict[str, set[int]] = {}
    totals: dict[str, int] = {}
    for full, p in params:
        parts = full.split(".")[:-1]
        for k in range(1, len(parts) + 1):
            prefix = ".".join(parts[:k])
            ids = counted.setdefault(prefix, set())
            if id(p) not in ids:
                ids.add(id(p))
                totals[prefix] = totals.get(prefix, 0) + p.numel()
    return totals


def _input_shape(module: nn.Module, info: ModelInfo, size: int | Sequence[int] | None) -> tuple[int, int, int, int]:
    """``(B, C, H, W)`` from the forms :func:`report` takes; ``None`` is the model's registered size."""
    channels = info.preprocessing.channels
    if size is None:
        size = info.preprocessing.input_size
        image_size = getattr(module, "image_size", None)  # ViTs are built for one size (224 without weights)
        if isinstance(image_size, int) and not isinstance(image_size, bool):
            size = (size[0], image_size, image_size)
    values = [size] if isinstance(size, (int, float, str)) else list(size) if isinstance(size, Sequence) else None
    if values is None or not 1 <= len(values) <= 4:
        raise CnnlensError(f"input_size must be (B, C, H, W), (C, H, W), (H, W) or one side, not {size!r}", param="input_size")
    sides = [check_int(v, "input_size", low=1) for v in values]
    if len(sides) == 1:
        sides = [sides[0], sides[0]]
    if len(sides) == 2:
        sides = [channels, *sides]
    if len(sides) == 3:
        sides = [1, *sides]
    return tuple(sides)  # type: ignore[return-value]


def _saved_for_backward(
    module: nn.Module,
    modules: list[nn.Module],
    input_size: tuple[int, ...],
    dtype: torch.dtype,
    param_keys: set[int],
    notes: list[str],
) -> int | None:
    """Bytes of the distinct tensors autograd saves for backward in one train-mode pass (parameters,
    whose storages are ``param_keys``, excluded), with attention counted as the CPU's kernel keeps it
    (see :meth:`_TrainMode.attention`)."""
    set_training(modules, True)
    batch = input_size[0]
    # batch norm in train mode refuses one value per channel (inception's aux head at batch 1):
    # then count a batch of two and scale back (saved activations grow with the batch)
    memo = CallMemo(train=True)  # shared: what the first trial learnt about op families serves the second
    for trial in (batch, 2 * batch):
        mode = _TrainMode(param_keys, memo)
        x = torch.empty((trial, *input_size[1:]), device="meta", dtype=dtype)
        try:
            with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(mode.pack, _unpack), mode:
                module(x)
        except Exception as exc:
            error = str(exc).splitlines()[0]
            continue
        total = sum(t.untyped_storage().nbytes() for t in mode.saved.values())
        if trial != batch:
            notes.append(f"saved-for-backward bytes measured at batch {trial} and scaled to {batch} (train-mode batch norm needs 2 values per channel)")
        if mode.fused_attention:
            notes.append(ATTENTION_NOTE)
        return total * batch // trial
    notes.append(f"training memory not estimated: train-mode pass failed ({error})")
    return None


def _unpack(t: torch.Tensor) -> torch.Tensor:
    return t


def receptive_fields(model: torch.nn.Module, input_size: Sequence[int] = (1, 3, 224, 224)) -> dict[str, ReceptiveField | str | None]:
    """Receptive field of every module's output, computed on the meta device (no weights needed).

    Returns ``{dotted name: ReceptiveField | "global" | None}``; ``None`` for modules that did not run
    or whose output could not be followed. Equivalent to ``report(model, input_size).receptive_fields``.
    """
    return {row.name: row.receptive_field for row in report(model, input_size).layers}
