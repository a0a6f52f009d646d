"""Per-layer report: output shape, parameters, MACs/FLOPs, activation memory, receptive field.

Everything is computed on the meta device: a named torchvision model is built with its
parameters on ``meta`` (no weights are allocated, none downloaded); any other ``nn.Module`` is run
through :func:`torch.func.functional_call` with meta stand-ins for its parameters and buffers, so
its real weights are never touched or copied. One forward pass in eval mode gives shapes, FLOPs
(:class:`torch.utils.flop_counter.FlopCounterMode`) and receptive fields
(:class:`~cnnlens.receptive_field.ReceptiveFieldMode`); a second one in train mode counts the
tensors autograd saves for backward (:func:`torch.autograd.graph.saved_tensors_hooks`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from .errors import CnnlensError
from .hooks import preserved_state
from .layers import depth_of
from .receptive_field import ReceptiveField, ReceptiveFieldMode

__all__ = ["LayerRow", "Report", "Totals", "receptive_fields", "report"]

OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd": 0, "sgd-momentum": 1, "rmsprop": 1}

FLOP_CONVENTION = (
    "FLOPs as torch.utils.flop_counter counts them: 2 per multiply-accumulate of convolutions, matrix "
    "products and attention; bias, normalization, activations and pooling are not counted. MACs = FLOPs / 2, "
    "the convention of torchvision's published GFLOPS (weights.meta['_ops'])."
)


@dataclass
class LayerRow:
    """One module's output. ``params`` counts the module's whole subtree."""

    name: str
    type: str
    output_shape: list[int] | None
    params: int
    macs: int
    flops: int
    output_bytes: int
    receptive_field: ReceptiveField | str | None
    dense_equivalent_params: int | None
    calls: int = 1

    def to_dict(self) -> dict[str, Any]:
        rf = self.receptive_field
        return {
            "name": self.name,
            "type": self.type,
            "output_shape": self.output_shape,
            "params": self.params,
            "macs": self.macs,
            "flops": self.flops,
            "output_bytes": self.output_bytes,
            "receptive_field": rf.to_dict() if isinstance(rf, ReceptiveField) else rf,
            "dense_equivalent_params": self.dense_equivalent_params,
            "calls": self.calls,
        }


@dataclass
class Totals:
    params: int
    trainable_params: int
    macs: int
    flops: int
    activation_bytes: int
    training_bytes_estimate: int | None
    param_bytes: int = 0
    saved_for_backward_bytes: int | None = None
    optimizer: str = "adam"

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "trainable_params": self.trainable_params,
            "macs": self.macs,
            "flops": self.flops,
            "activation_bytes": self.activation_bytes,
            "training_bytes_estimate": self.training_bytes_estimate,
            "param_bytes": self.param_bytes,
            "saved_for_backward_bytes": self.saved_for_backward_bytes,
            "optimizer": self.optimizer,
        }


@dataclass
class Report:
    """What :func:`report` returns; ``to_dict()`` is what ``cnnlens report --format json`` prints."""

    model: str
    input_size: tuple[int, ...]
    layers: list[LayerRow]
    totals: Totals
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> LayerRow:
        for row in self.layers:
            if row.name == name:
                return row
        from .errors import did_you_mean

        raise CnnlensError(f"no layer {name!r} in the report{did_you_mean(name, [r.name for r in self.layers])}")

    @property
    def receptive_fields(self) -> dict[str, ReceptiveField | str | None]:
        return {row.name: row.receptive_field for row in self.layers}

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "totals": self.totals.to_dict(),
            "layers": [row.to_dict() for row in self.layers],
            "conventions": {
                "flops": FLOP_CONVENTION,
                "activation_bytes": ACTIVATION_NOTE,
                "training_bytes_estimate": training_note(self.totals.optimizer),
                "receptive_field": RF_NOTE,
                "dense_equivalent_params": DENSE_NOTE,
            },
            "notes": self.notes,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["name", "type", "output_shape", "params", "macs", "flops", "output_bytes", "rf_size", "rf_stride", "rf_padding", "dense_equivalent_params"])
        for row in self.layers:
            rf = row.receptive_field
            if isinstance(rf, ReceptiveField):
                rfs = ["x".join(map(str, rf.size)), "x".join(map(str, rf.stride)), "x".join(map(str, rf.padding))]
            else:
                rfs = [rf or "", "", ""]
            shape = "x".join(map(str, row.output_shape)) if row.output_shape else ""
            writer.writerow([row.name, row.type, shape, row.params, row.macs, row.flops, row.output_bytes, *rfs, row.dense_equivalent_params or ""])
        return buf.getvalue()

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        head = ["layer", "type", "output shape", "params", "MACs", "output", "receptive field"]
        body = []
        for row in self.layers:
            indent = "  " * (depth_of(row.name) - 1)
            body.append(
                [
                    indent + row.name,
                    row.type,
                    " x ".join(map(str, row.output_shape[1:])) if row.output_shape else "-",
                    f"{row.params:,}",
                    human(row.macs),
                    human_bytes(row.output_bytes),
                    rf_text(row.receptive_field),
                ]
            )
        return head, body

    def footer(self) -> list[str]:
        t = self.totals
        lines = [
            f"input {' x '.join(map(str, self.input_size))}",
            f"params: {t.params:,} ({t.trainable_params:,} trainable, {human_bytes(t.param_bytes)})",
            f"MACs: {t.macs:,} ({human(t.macs)})   FLOPs: {t.flops:,} ({human(t.flops)})",
            f"activations (forward outputs, distinct tensors): {human_bytes(t.activation_bytes)}",
        ]
        if t.training_bytes_estimate is not None:
            lines.append(
                f"training memory estimate: {human_bytes(t.training_bytes_estimate)} = params + grads + "
                f"{t.optimizer} state + {human_bytes(t.saved_for_backward_bytes or 0)} saved for backward"
            )
        lines.append("FLOPs = 2 x MACs of conv, matmul and attention (torch.utils.flop_counter); bias, norm, activations, pooling not counted")
        lines.append("receptive field: size / stride / padding in input pixels per axis (h, w); 'global' = depends on the whole image")
        lines += self.notes
        return lines

    def to_table(self) -> str:
        head, body = self._cells()
        widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
        right = {3, 4, 5}

        def fmt(cells: list[str]) -> str:
            return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        rule = "-" * len(fmt(head))
        return "\n".join([fmt(head), rule, *map(fmt, body), rule, *self.footer()]) + "\n"

    def to_markdown(self) -> str:
        head, body = self._cells()
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c.strip() if i else f"`{c.strip()}`" for i, c in enumerate(r)) + " |" for r in body]
        return "\n".join(lines) + "\n\n" + "\n".join(f"- {line}" for line in self.footer()) + "\n"

    def __str__(self) -> str:
        return self.to_table()


ACTIVATION_NOTE = (
    "sum of the distinct tensors that leaf modules output in one eval-mode forward pass (an in-place ReLU "
    "adds nothing); what inference would hold if nothing were freed"
)
RF_NOTE = (
    "theoretical receptive field per axis [h, w]: unit (i, j) sees input rows i*stride-padding to "
    "i*stride-padding+size-1; 'global' when the unit depends on the whole input (global pooling, "
    "squeeze-excitation gates, attention, linear layers on flattened maps); null when not computed"
)
DENSE_NOTE = "weights a fully connected layer from this module's input to its output would need (per sample, no bias)"


def training_note(optimizer: str) -> str:
    return (
        f"an estimate: parameters + their gradients + {optimizer} state ({OPTIMIZER_STATES.get(optimizer, 0)} "
        "tensors per parameter) + tensors autograd saves for backward in one train-mode pass, counted with "
        "saved_tensors_hooks; allocator caching and workspaces are not included"
    )


def human(n: float) -> str:
    for unit, div in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return str(int(n))


def human_bytes(n: float) -> str:
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.1f} {unit}"
    return f"{int(n)} B"


def rf_text(rf: ReceptiveField | str | None) -> str:
    if rf is None:
        return "-"
    if isinstance(rf, str):
        return rf
    size = f"{rf.size[0]}" if rf.size[0] == rf.size[1] else f"{rf.size[0]}x{rf.size[1]}"
    stride = f"{rf.stride[0]}" if rf.stride[0] == rf.stride[1] else f"{rf.stride[0]}x{rf.stride[1]}"
    pad = f"{rf.padding[0]}" if rf.padding[0] == rf.padding[1] else f"{rf.padding[0]}x{rf.padding[1]}"
    return f"{size} / {stride} / {pad}" + ("" if rf.aligned else " (unaligned)")


# ---- computing ----------------------------------------------------------------------------------------


def _tensors(obj: Any) -> list[torch.Tensor]:
    from torch.utils._pytree import tree_flatten

    return [t for t in tree_flatten(obj)[0] if isinstance(t, torch.Tensor)]


def _storage_key(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


def _meta_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Meta stand-ins for every parameter and buffer (same shape, dtype and requires_grad)."""
    state: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        state[name] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    for name, b in model.named_buffers(remove_duplicate=False):
        state[name] = torch.empty_like(b, device="meta")
    return state


def _on_meta(model: nn.Module) -> bool:
    tensors = list(model.parameters()) + list(model.buffers())
    return bool(tensors) and all(t.device.type == "meta" for t in tensors)


class _ShapeOnlyNorms(TorchFunctionMode):
    """On meta tensors without autograd, batch norm only needs its output shape; PyTorch's meta
    batch norm is a Python decomposition that costs more than the whole rest of a ResNet pass."""

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func is torch.nn.functional.batch_norm and args and args[0].device.type == "meta" and not torch.is_grad_enabled():
            return torch.empty_like(args[0])
        return func(*args, **kwargs)


def _run(model: nn.Module, x: torch.Tensor, meta_state: dict[str, torch.Tensor] | None) -> Any:
    if meta_state is None:
        return model(x)
    return torch.func.functional_call(model, meta_state, (x,), tie_weights=True, strict=False)


@dataclass
class _Seen:
    calls: int = 0
    output_shape: list[int] | None = None
    output_bytes: int = 0
    in_numel: int | None = None
    out_numel: int | None = None
    rf: Any = None
    outputs: list[torch.Tensor] = field(default_factory=list)


def report(
    model: nn.Module | str,
    input_size: Sequence[int] | None = None,
    *,
    depth: int | None = None,
    optimizer: str = "adam",
    dtype: torch.dtype | None = None,
) -> Report:
    """Report every module of ``model`` for an input of ``input_size``, without real tensors.

    Args:
        model: a torchvision model name (built with empty weights) or any ``nn.Module`` (its weights
            are neither read nor changed; hooks and modes are restored).
        input_size: ``(B, C, H, W)``; default: the model's crop size from its torchvision weights
            (299 for inception_v3), else ``(1, 3, 224, 224)``.
        depth: keep rows down to this nesting depth (``features`` is 1, ``features.0`` is 2).
        optimizer: whose state the training-memory estimate includes: adam, adamw, sgd, sgd-momentum, rmsprop.
        dtype: dtype of the input and activations (default: the model's parameter dtype, else float32);
            parameters keep their own dtype.

    Example:
        >>> import torch.nn as nn
        >>> r = report(nn.Sequential(nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2)), (1, 3, 227, 227))
        >>> r["0"].output_shape, r["0"].params, r["2"].output_shape
        ([1, 96, 55, 55], 34944, [1, 96, 27, 27])
    """
    from torch.utils.flop_counter import FlopCounterMode

    if optimizer not in OPTIMIZER_STATES:
        raise CnnlensError(f"unknown optimizer {optimizer!r}; one of {', '.join(OPTIMIZER_STATES)}")
    if isinstance(model, str):
        from .registry import build_empty, get_entry

        name = model
        module = build_empty(name)
        if input_size is None:
            input_size = (1, *get_entry(name).input_size)
            image_size = getattr(module, "image_size", None)  # ViTs are built for one size (224 without weights)
            if isinstance(image_size, int):
                input_size = (*input_size[:2], image_size, image_size)
    else:
        module = model
        name = type(model).__name__
    input_size = tuple(int(v) for v in (input_size or (1, 3, 224, 224)))
    if len(input_size) != 4 or min(input_size) <= 0:
        raise CnnlensError(f"input size must be (B, C, H, W) with positive sizes, not {input_size}")
    meta_state = None if _on_meta(module) else _meta_state(module)
    if dtype is None:
        dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)

    named = [(n, m) for n, m in module.named_modules() if n]
    seen: dict[str, _Seen] = {n: _Seen() for n, _ in named}
    rf_mode = ReceptiveFieldMode()
    leaf_outputs: dict[int, torch.Tensor] = {}
    leaves = {n for n, m in named if next(m.children(), None) is None}

    def pre_hook(name: str):  # noqa: ANN202
        def hook(mod: nn.Module, args: Any) -> None:
            ins = _tensors(args)
            if ins and seen[name].in_numel is None:
                seen[name].in_numel = ins[0].numel() // max(1, ins[0].shape[0]) if ins[0].dim() else ins[0].numel()

        return hook

    def post_hook(name: str):  # noqa: ANN202
        def hook(mod: nn.Module, args: Any, output: Any) -> None:
            s = seen[name]
            outs = _tensors(output)
            s.calls += 1
            if not outs:
                return
            s.output_bytes += sum(t.numel() * t.element_size() for t in outs)
            if s.output_shape is None:
                s.output_shape = list(outs[0].shape)
                s.out_numel = outs[0].numel() // max(1, outs[0].shape[0]) if outs[0].dim() else outs[0].numel()
                s.rf = rf_mode.field_of(outs[0])
            if name in leaves:
                for t in outs:
                    leaf_outputs.setdefault(_storage_key(t), t)

        return hook

    x = torch.empty(input_size, device="meta", dtype=dtype)
    handles = []
    notes: list[str] = []
    with preserved_state(module):
        try:
            for n, m in named:
                handles.append(m.register_forward_pre_hook(pre_hook(n)))
                handles.append(m.register_forward_hook(post_hook(n)))
            module.eval()
            rf_mode.track(x)
            with torch.no_grad(), FlopCounterMode(display=False) as counter, rf_mode, _ShapeOnlyNorms():
                _run(module, x, meta_state)
        except CnnlensError:
            raise
        except Exception as exc:
            raise CnnlensError(f"{name} cannot run on input {'x'.join(map(str, input_size))}: {str(exc).splitlines()[0]}") from None
        finally:
            for h in handles:
                h.remove()
        saved_bytes = _saved_for_backward(module, input_size, dtype, meta_state, notes)

    flops_by_module = _flops_by_module(counter, module)
    total_flops = int(counter.get_total_flops())
    params_all = list({id(p): p for p in module.parameters()}.values())
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

    rows = []
    for n, m in named:
        if depth is not None and depth_of(n) > depth:
            continue
        s = seen[n]
        sub_params = {id(p): p.numel() for p in m.parameters()}
        flops = flops_by_module.get(n, 0)
        dense = s.in_numel * s.out_numel if s.in_numel is not None and s.out_numel is not None else None
        rows.append(
            LayerRow(
                name=n,
                type=type(m).__name__,
                output_shape=s.output_shape,
                params=sum(sub_params.values()),
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
    return Report(name, input_size, rows, totals, notes)


def _flops_by_module(counter: Any, module: nn.Module) -> dict[str, int]:
    prefix = type(module).__name__ + "."
    out: dict[str, int] = {}
    for key, counts in counter.get_flop_counts().items():
        if key.startswith(prefix):
            out[key[len(prefix) :]] = int(sum(counts.values()))
    return out


def _saved_for_backward(
    module: nn.Module, input_size: tuple[int, ...], dtype: torch.dtype, meta_state: dict[str, torch.Tensor] | None, notes: list[str]
) -> int | None:
    """Bytes of the distinct tensors autograd saves for backward in one train-mode pass (parameters excluded)."""
    param_keys = {_storage_key(p) for p in (meta_state or dict(module.named_parameters())).values() if isinstance(p, nn.Parameter)}
    saved: dict[int, torch.Tensor] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = _storage_key(t)
        if key not in param_keys:
            saved.setdefault(key, t)
        return t

    module.train()
    batch = input_size[0]
    # batch norm in train mode refuses one value per channel (inception's aux head at batch 1):
    # then count a batch of two and scale back (saved activations grow with the batch)
    for trial in (batch, 2 * batch):
        saved.clear()
        x = torch.empty((trial, *input_size[1:]), device="meta", dtype=dtype)
        try:
            with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                _run(module, x, meta_state)
        except Exception as exc:
            error = str(exc).splitlines()[0]
            continue
        total = sum(t.untyped_storage().nbytes() for t in saved.values())
        if trial != batch:
            notes.append(f"saved-for-backward bytes measured at batch {trial} and scaled to {batch} (train-mode batch norm needs 2 values per channel)")
        return total * batch // trial
    notes.append(f"training memory not estimated: train-mode pass failed ({error})")
    return None


def receptive_fields(model: torch.nn.Module, input_size: Sequence[int] = (1, 3, 224, 224)) -> dict[str, ReceptiveField | str | None]:
    """Receptive field of every module's output, computed on the meta device (no weights needed).

    Returns ``{dotted name: ReceptiveField | "global" | None}``; ``None`` for modules that did not run
    or whose output could not be followed. Equivalent to ``report(model, input_size).receptive_fields``.
    """
    return {row.name: row.receptive_field for row in report(model, input_size).layers}
