"""Per-layer report: output shape, parameters, MACs/FLOPs, activation memory, receptive field.

:func:`report` takes any name of the model registry (``cnnlens.list_models()``, ``path/file.py:Class``,
``timm/NAME``) or any ``nn.Module`` and returns a :class:`Report`, a :class:`~cnnlens.results.Result`.

Everything is computed on the meta device: a registered model is built with its
parameters on ``meta`` (no weights are allocated, none downloaded); any other ``nn.Module`` is run
through :func:`torch.func.functional_call` with meta stand-ins for its parameters and buffers, so
its real weights are never touched or copied. One forward pass in eval mode gives shapes, FLOPs
(:class:`torch.utils.flop_counter.FlopCounterMode`) and receptive fields
(:class:`~cnnlens.receptive_field.ReceptiveFieldMode`); a second one in train mode counts the
tensors autograd saves for backward (:func:`torch.autograd.graph.saved_tensors_hooks`).
"""

from __future__ import annotations

import csv
import html
import io
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from .checks import check_int
from .errors import CnnlensError, did_you_mean
from .hooks import eval_mode, preserved_state
from .layers import depth_of
from .receptive_field import ReceptiveField, ReceptiveFieldMode
from .registry import ModelInfo, model_info
from .results import FIGURE_SUFFIXES, Result, check_output, save_text

__all__ = ["REPORT_SUFFIXES", "LayerRow", "Report", "Totals", "receptive_fields", "report"]

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
    """Whole-model numbers: parameters (shared ones once), MACs and FLOPs, activation memory and the
    training-memory estimate for ``optimizer`` (see :func:`training_note`)."""

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


# text files Report.save writes besides .json and the figure suffixes
TEXT_SUFFIXES = (".csv", ".md", ".txt")
REPORT_SUFFIXES = (".json", *TEXT_SUFFIXES, *FIGURE_SUFFIXES)


@dataclass(repr=False)
class Report(Result):
    """What :func:`report` returns: one :class:`LayerRow` per module and the :class:`Totals`.

    ``report["layer4"]`` is the row of a layer. ``to_dict()`` is what ``cnnlens report --json`` prints;
    ``to_table()``, ``to_csv()``, ``to_markdown()`` are the text forms; ``figure()`` draws output
    memory, MACs and receptive-field size per layer; ``save(path)`` writes any of them by suffix
    (``.json``, ``.csv``, ``.md``, ``.txt`` or a figure suffix such as ``.png``).
    """

    model: str
    input_size: tuple[int, ...]
    layers: list[LayerRow]
    totals: Totals
    notes: list[str] = field(default_factory=list)
    info: ModelInfo | None = None

    def __getitem__(self, name: str) -> LayerRow:
        for row in self.layers:
            if row.name == name:
                return row
        raise CnnlensError(f"no layer {name!r} in the report{did_you_mean(name, [r.name for r in self.layers])}")

    @property
    def source(self) -> str:
        """The registry source of the model (``torchvision``, ``teaching``, ``timm`` ...; ``module`` for any other)."""
        return self.info.source if self.info is not None else "module"

    @property
    def receptive_fields(self) -> dict[str, ReceptiveField | str | None]:
        return {row.name: row.receptive_field for row in self.layers}

    # -- the result protocol ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        head = self.info.to_dict() if self.info is not None else {"model": self.model, "source": self.source}
        return {
            **head,
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

    def outline(self) -> dict[str, Any]:
        """Model, input size and ``[{name, type, output_shape}]``: what ``cnnlens layers --json`` prints."""
        return {
            "model": self.model,
            "source": self.source,
            "input_size": list(self.input_size),
            "layers": [{"name": r.name, "type": r.type, "output_shape": r.output_shape} for r in self.layers],
        }

    def _summary(self) -> dict[str, Any]:
        t = self.totals
        return {
            "model": self.model,
            "input_size": size_text(self.input_size),
            "params": f"{t.params:,}",
            "MACs": f"{t.macs:,}",
            "activations": human_bytes(t.activation_bytes),
        }

    def __repr__(self) -> str:
        """``Report(vgg16, 1x3x224x224, 138.4M params, 15.5 GMACs)``."""
        t = self.totals
        return f"Report({self.model}, {size_text(self.input_size)}, {si(t.params)} params, {si(t.macs, ' ')}MACs)"

    def title(self) -> str:
        t = self.totals
        return f"{self.model}: input {size_text(self.input_size)}, {si(t.params)} params, {si(t.macs, ' ')}MACs"

    def figure_rows(self) -> list[LayerRow]:
        """The rows drawn by :meth:`figure`: those that ran and have no row below them (the leaves, or
        the deepest rows kept by ``depth``)."""
        names = [r.name for r in self.layers]
        return [
            r
            for i, r in enumerate(self.layers)
            if r.output_shape is not None and not any(n.startswith(r.name + ".") for n in names[i + 1 :])
        ]

    def figure(self, *, max_labels: int = 60) -> Any:
        """Output memory and MACs per layer (bars) and receptive-field growth (line), in definition order.

        Args:
            max_labels: at most this many layer names on the x axis (every k-th name beyond).
        """
        import matplotlib.pyplot as plt
        import numpy as np
        from matplotlib import ticker

        rows = self.figure_rows()
        if not rows:
            raise CnnlensError(f"{self.model}: no layer ran, nothing to draw")
        x = np.arange(len(rows))
        width = min(20.0, max(8.0, 0.16 * len(rows) + 3))
        fig, axes = plt.subplots(3, 1, figsize=(width, 9), sharex=True, layout="constrained")
        div, unit = _scale(max(r.output_bytes for r in rows), (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)), "bytes")
        axes[0].bar(x, [r.output_bytes / div for r in rows], color="tab:blue")
        axes[0].set_ylabel(f"output ({unit})")
        axes[0].set_title(
            f"output of each layer; activation memory {human_bytes(self.totals.activation_bytes)} in all (distinct tensors)",
            fontsize=9, loc="left",
        )
        div, unit = _scale(max(r.macs for r in rows), (("G", 1e9), ("M", 1e6), ("K", 1e3)), "")
        axes[1].bar(x, [r.macs / div for r in rows], color="tab:orange")
        axes[1].set_ylabel(f"{unit}MACs" if unit else "MACs")
        axes[1].set_title(f"multiply-accumulates of each layer; {self.totals.macs:,} in all", fontsize=9, loc="left")
        sizes = [max(r.receptive_field.size) if isinstance(r.receptive_field, ReceptiveField) else np.nan for r in rows]
        glob = [i for i, r in enumerate(rows) if r.receptive_field == "global"]
        axes[2].plot(x, sizes, marker=".", color="tab:green", label="receptive field (largest side)")
        if glob:
            top = np.nanmax(sizes) if not np.all(np.isnan(sizes)) else max(self.input_size[-2:])
            axes[2].scatter(glob, [top] * len(glob), marker="^", color="tab:red", label="global (whole input)", zorder=3)
        side = max(self.input_size[-2:])
        axes[2].axhline(side, color="grey", lw=0.8, ls="--", label=f"input side ({side} px)")
        axes[2].set_yscale("log")
        axes[2].yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axes[2].yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axes[2].yaxis.set_minor_formatter(ticker.NullFormatter())
        axes[2].set_ylabel("receptive field (px)")
        axes[2].set_title("receptive field of each layer's units (size of the input window)", fontsize=9, loc="left")
        axes[2].legend(fontsize=8, loc="upper left")
        step = max(1, -(-len(rows) // max_labels))
        axes[2].set_xticks(x[::step], [f"{r.name} ({r.type})" for r in rows][::step], rotation=90, fontsize=7)
        axes[2].set_xlim(-0.6, len(rows) - 0.4)
        fig.suptitle(self.title())
        return fig

    def save(self, path: str | Path, *, overwrite: bool = False, **figure_kwargs: Any) -> Path:
        """Write the report by suffix: ``.json`` (``to_dict()``), ``.csv``, ``.md`` (markdown), ``.txt``
        (the table), or a figure suffix (``.png``, ``.pdf``, ``.svg`` ...)."""
        suffix = Path(path).suffix.lower()
        text = {".csv": self.to_csv, ".md": self.to_markdown, ".txt": self.to_table}.get(suffix)
        if text is None:
            check_output(path, overwrite=overwrite, suffixes=REPORT_SUFFIXES)
            return super().save(path, overwrite=overwrite, **figure_kwargs)
        return save_text(text(), path, overwrite=overwrite, suffixes=REPORT_SUFFIXES)

    def _repr_html_(self) -> str:
        head, body = self._cells(exact=True)
        cell = "<td style='text-align:{}'>{}</td>"
        right = {3, 4, 5}
        rows = "".join(
            "<tr>" + "".join(cell.format("right" if i in right else "left", html.escape(c)) for i, c in enumerate(r)) + "</tr>"
            for r in body
        )
        t = self.totals
        totals = [
            ("params", f"{t.params:,} ({t.trainable_params:,} trainable, {human_bytes(t.param_bytes)})"),
            ("MACs", f"{t.macs:,} ({human(t.macs)})"),
            ("FLOPs", f"{t.flops:,} ({human(t.flops)})"),
            ("activation memory", f"{t.activation_bytes:,} bytes ({human_bytes(t.activation_bytes)})"),
        ]
        if t.training_bytes_estimate is not None:
            totals.append(("training memory estimate", f"{t.training_bytes_estimate:,} bytes ({human_bytes(t.training_bytes_estimate)}, {t.optimizer})"))
        foot = "".join(f"<tr><th style='text-align:left' colspan='3'>{html.escape(k)}</th><td colspan='{len(head) - 3}'>{html.escape(v)}</td></tr>" for k, v in totals)
        th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (
            f"<div><b>{html.escape(self.title())}</b>"
            f"<table><thead><tr>{th}</tr></thead><tbody>{rows}</tbody><tfoot>{foot}</tfoot></table>"
            + (f"<ul>{notes}</ul>" if notes else "")
            + "</div>"
        )

    # -- text forms -----------------------------------------------------------------------------------
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

    def _cells(self, *, exact: bool = False) -> tuple[list[str], list[list[str]]]:
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
                    f"{row.macs:,}" if exact else human(row.macs),
                    human_bytes(row.output_bytes),
                    rf_text(row.receptive_field),
                ]
            )
        return head, body

    def footer(self) -> list[str]:
        t = self.totals
        lines = [
            f"{self.model}, input {' x '.join(map(str, self.input_size))}",
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


def _scale(largest: float, units: tuple[tuple[str, float], ...], base: str) -> tuple[float, str]:
    """The divisor and unit that make ``largest`` readable on an axis."""
    for unit, div in units:
        if largest >= div:
            return div, unit
    return 1.0, base


def si(n: float, space: str = "") -> str:
    """``138.4M``, ``61.7K``, ``15.5 G`` (with ``space=" "``): one decimal and an SI prefix."""
    for unit, div in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.1f}{space}{unit}"
    return f"{int(n)}{space}"


def size_text(size: Sequence[int]) -> str:
    """``1x3x224x224``."""
    return "x".join(str(int(v)) for v in size)


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


def _meta_state(model: nn.Module, *, frozen: bool = False) -> dict[str, torch.Tensor]:
    """Meta stand-ins for every parameter and buffer (same shape, dtype and requires_grad, unless
    ``frozen``); tied weights share one stand-in, as ``functional_call(tie_weights=True)`` requires."""
    state: dict[str, torch.Tensor] = {}
    made: dict[int, torch.Tensor] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) not in made:
            made[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad and not frozen)
        state[name] = made[id(p)]
    for name, b in model.named_buffers(remove_duplicate=False):
        if id(b) not in made:
            made[id(b)] = torch.empty_like(b, device="meta")
        state[name] = made[id(b)]
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
        dtype: dtype of the input and activations (default: the model's parameter dtype, else float32);
            parameters keep their own dtype.

    Raises:
        CnnlensError: unknown model, bad arguments, or a model that cannot run on the input size.

    Example:
        >>> import torch.nn as nn
        >>> r = report(nn.Sequential(nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2)), (1, 3, 227, 227))
        >>> r["0"].output_shape, r["0"].params, r["2"].output_shape
        ([1, 96, 55, 55], 34944, [1, 96, 27, 27])
    """
    from torch.utils.flop_counter import FlopCounterMode

    if optimizer not in OPTIMIZER_STATES:
        raise CnnlensError(
            f"optimizer {optimizer!r} unknown{did_you_mean(str(optimizer), OPTIMIZER_STATES)}; one of {', '.join(OPTIMIZER_STATES)}",
            param="optimizer",
        )
    if depth is not None:
        depth = check_int(depth, "depth", low=1)
    if isinstance(model, str):
        from .registry import build_empty

        module = build_empty(model)
    elif isinstance(model, nn.Module):
        module = model
    else:
        raise CnnlensError(f"model must be a model name or an nn.Module, not {type(model).__name__}", param="model")
    info = model_info(module)
    name = info.name
    input_size = _input_shape(module, info, input_size)
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
            rf_mode.track(x)
            # eval mode, and parameters that need no grad: FlopCounterMode's module tracker hooks the
            # autograd graph of inputs that require grad (timm's attention-pool latents trip it)
            frozen = None if meta_state is None else _meta_state(module, frozen=True)
            with eval_mode(module), torch.no_grad(), FlopCounterMode(display=False) as counter, rf_mode, _ShapeOnlyNorms():
                _run(module, x, frozen)
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
    return Report(name, input_size, rows, totals, notes, info)


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


class _CallableModule(types.ModuleType):
    """``cnnlens.report`` is this module and the function at once: ``cnnlens.report("vgg16")`` calls
    :func:`report`, ``cnnlens.report.Report`` is the class (the package attribute of a submodule is
    always the module object, whatever the package's ``__getattr__`` says)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Report:
        return report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
sys.modules[__name__].__wrapped__ = report  # inspect.signature(cnnlens.report) is report's
