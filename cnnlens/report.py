"""Per-layer report: output shape, parameters, MACs/FLOPs, activation memory, receptive field.

:func:`report` takes any name of the model registry (``cnnlens.list_models()``, ``path/file.py:Class``,
``timm/NAME``) or any ``nn.Module`` and returns a :class:`Report`, a :class:`~cnnlens.results.Result`.

Everything is computed on the meta device: a registered model is built with its
parameters on ``meta`` (no weights are allocated, none downloaded); any other ``nn.Module`` is run
through :func:`torch.func.functional_call` with meta stand-ins for its parameters and buffers, so
its real weights are never touched or copied. One forward pass in eval mode gives shapes, FLOPs
(the formulas and rules of :class:`torch.utils.flop_counter.FlopCounterMode`) and receptive fields
(:class:`~cnnlens.receptive_field.ReceptiveFieldMode`); a second one in train mode counts the
tensors autograd saves for backward (:func:`torch.autograd.graph.saved_tensors_hooks`), with
attention run as the CPU's kernel would run it. A memo of calls (see "computing" below) keeps both
passes at about the cost of torchinfo's one.
"""

from __future__ import annotations

import csv
import html
import io
import math
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.nn.attention import SDPBackend
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from .checks import check_int
from .errors import CnnlensError, did_you_mean
from .hooks import eval_mode, hooked, preserved_state
from .layers import depth_of, model_dtype
from .outputs import FIGURE_SUFFIXES, check_output, save_text
from .receptive_field import ReceptiveField, ReceptiveFieldMode, pair, tensors_in
from .registry import ModelInfo, model_info
from .results import Result

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
    ``to_text()``, ``to_csv()``, ``to_markdown()`` are the text forms; ``figure()`` draws output
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
        text = {".csv": self.to_csv, ".md": self.to_markdown, ".txt": self.to_text}.get(suffix)
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
        lines.append("receptive field: size / stride / padding in input pixels per axis (h, w); 'global' = depends on the whole image; 'windowed' = window attention: the largest size")
        lines += self.notes
        return lines

    def to_text(self) -> str:
        """The per-layer table, as the CLI prints it."""
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
        return self.to_text()


ACTIVATION_NOTE = (
    "sum of the distinct tensors that leaf modules output in one eval-mode forward pass (an in-place ReLU "
    "adds nothing); what inference would hold if nothing were freed"
)
RF_NOTE = (
    "theoretical receptive field per axis [h, w]: unit (i, j) sees input rows i*stride-padding to "
    "i*stride-padding+size-1; 'global' when the unit depends on the whole input (global pooling, "
    "squeeze-excitation gates, global attention, linear layers on flattened maps); after window attention "
    "('windowed': true) the region depends on the unit's place in its window: size is the largest, "
    "ReceptiveField.box(i, j) the exact one; null when not computed"
)
ATTENTION_NOTE = (
    "saved for backward counts attention as PyTorch's fused CPU kernel keeps it (query, key, value, output and "
    "log-sum-exp per scaled_dot_product_attention call); the math path, taken on other devices or with other "
    "options, keeps the L x L attention matrices as well"
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
    notes = [word for word, flag in (("unaligned", not rf.aligned), ("windowed", rf.windowed)) if flag]
    return f"{size} / {stride} / {pad}" + (f" ({', '.join(notes)})" if notes else "")


# ---- computing ----------------------------------------------------------------------------------------
#
# Both passes run on meta tensors, where every op still costs its Python meta kernel (0.1 to 2 ms for a
# convolution, an addition or a norm), several times what torchinfo's hooks cost per layer. Deep networks
# repeat the same calls block after block (resnet152 has 50 bottlenecks of four kinds, swin_b 24 blocks of
# four), and on meta tensors a call's outputs depend only on the metadata of its arguments. So each pass
# keeps a memo per call signature: the first call runs, later ones build their outputs from the memo
# (with the FLOPs the first one counted, and in the train pass the tensors autograd saved). Every number
# stays the one the real calls give; views, in-place ops that change a shape, and calls that take a non-meta
# tensor or an argument that is not plain data always run (an in-place op that keeps its input's shape is
# replayed: its input comes back, with autograd's bookkeeping in the train pass).


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return tensors_in(obj)
    from torch.utils._pytree import tree_flatten

    return [t for t in tree_flatten(obj)[0] if isinstance(t, torch.Tensor)]


def _storage_key(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


def _meta_state(model: nn.Module, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Meta stand-ins for every parameter and buffer (same shape, dtype and requires_grad; with
    ``dtype``, floating-point ones in that dtype, as after ``model.to(dtype)``); tied weights share one
    stand-in, as ``functional_call(tie_weights=True)`` requires."""
    state: dict[str, torch.Tensor] = {}
    made: dict[int, torch.Tensor] = {}

    def stand_in(t: torch.Tensor) -> torch.Tensor:
        return torch.empty_like(t, device="meta", dtype=dtype if dtype is not None and t.is_floating_point() else None)

    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) not in made:
            made[id(p)] = nn.Parameter(stand_in(p), requires_grad=p.requires_grad)
        state[name] = made[id(p)]
    for name, b in model.named_buffers(remove_duplicate=False):
        if id(b) not in made:
            made[id(b)] = stand_in(b)
        state[name] = made[id(b)]
    return state


def _on_meta(model: nn.Module) -> bool:
    tensors = list(model.parameters()) + list(model.buffers())
    return bool(tensors) and all(t.device.type == "meta" for t in tensors)


def _run(model: nn.Module, x: torch.Tensor, meta_state: dict[str, torch.Tensor] | None) -> Any:
    if meta_state is None:
        return model(x)
    return torch.func.functional_call(model, meta_state, (x,), tie_weights=True, strict=False)


# calls that only read metadata: passed straight through
_METADATA_CALLS = frozenset(
    {"__get__", "dim", "size", "stride", "numel", "nelement", "ndimension", "is_contiguous", "storage_offset",
     "element_size", "__len__", "is_floating_point", "get_device", "untyped_storage", "data_ptr", "__format__"}
)  # fmt: skip
_PLAIN = (bool, int, float, str, type(None), torch.dtype, torch.device, torch.memory_format, torch.layout)
_PLAIN_TYPES = frozenset(_PLAIN)


class _Uncached(Exception):
    """A call the memo cannot stand in for."""


def _describe(value: Any, storages: dict[int, int]) -> Any:
    """A hashable description of one argument: what a meta kernel's output metadata can depend on
    (shapes, strides, dtypes, requires_grad, which arguments share storage, plain values)."""
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return (kind, value)
    if isinstance(value, torch.Tensor):
        if not value.is_meta or value.layout is not torch.strided:
            raise _Uncached
        alias = storages.setdefault(value.untyped_storage()._cdata, len(storages))
        return (tuple(value.shape), value.stride(), value.dtype, value.requires_grad, alias)
    if isinstance(value, _PLAIN):
        return (type(value), value)
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(_describe(v, storages) for v in value))
    if isinstance(value, slice):
        return (slice, _describe(value.start, storages), _describe(value.stop, storages), _describe(value.step, storages))
    if value is Ellipsis:
        return (type(value),)
    raise _Uncached


def _signature(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    storages: dict[int, int] = {}
    return (func, torch.is_grad_enabled(), _describe(tuple(args), storages), _describe(tuple(kwargs.items()), storages))


@dataclass(frozen=True)
class _Out:
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    requires_grad: bool

    def make(self) -> torch.Tensor:
        return torch.empty_strided(self.shape, self.stride, dtype=self.dtype, device="meta")


def _output_spec(out: Any, inputs: list[torch.Tensor], before: list[Any]) -> tuple[Any, list[torch.Tensor]]:
    """``(structure, output tensors)`` of a call's result, or :class:`_Uncached` if it is not made of fresh
    meta tensors (each in a storage of its own that ``empty_strided`` reproduces) or one of its inputs
    returned unchanged in shape (an in-place op: ``before`` holds the inputs' geometry before the call)."""
    if isinstance(out, torch.Tensor):
        for i, t in enumerate(inputs):
            if out is t:
                if _geometry(t) != before[i]:
                    raise _Uncached
                return ("self", i), []
        kind, items = None, [out]
    elif type(out) in (tuple, list) or (isinstance(out, tuple) and type(out).__module__ == "torch.return_types"):
        kind, items = type(out), list(out)
    else:
        raise _Uncached
    taken = {_storage_key(t) for t in inputs}
    specs: list[_Out | None] = []
    tensors = []
    for t in items:
        if t is None:
            specs.append(None)
            continue
        if not isinstance(t, torch.Tensor) or type(t) is not torch.Tensor or t.device.type != "meta" or t.storage_offset():
            raise _Uncached
        key = _storage_key(t)
        spec = _Out(tuple(t.shape), t.stride(), t.dtype, t.requires_grad)
        if key in taken or spec.make().untyped_storage().nbytes() != t.untyped_storage().nbytes():
            raise _Uncached
        taken.add(key)
        specs.append(spec)
        tensors.append(t)
    return (kind, tuple(specs)), tensors


def _geometry(t: torch.Tensor) -> tuple[Any, ...]:
    return tuple(t.shape), t.stride(), t.storage_offset()


def _specs(structure: Any) -> list[_Out]:
    return [] if structure[0] == "self" else [s for s in structure[1] if s is not None]


def _build(structure: Any, made: list[torch.Tensor]) -> Any:
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


def _features(t: Any) -> Any:
    if not isinstance(t, torch.Tensor):
        return _describe(t, {})
    return (t.dtype, t.dim(), t.is_contiguous(), t.is_contiguous(memory_format=torch.channels_last) if t.dim() == 4 else False, t.requires_grad)


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
    except _Uncached:
        return None


def _family_rule(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[Any, list[tuple[Any, ...]], tuple[int, int], int] | None:
    name = getattr(func, "__name__", "")
    if name in _LIKE_INPUT:
        if not args or not isinstance(args[0], torch.Tensor) or not args[0].is_contiguous():
            return None
        x = args[0]
        if name == "batch_norm" and not _batch_norm_valid(args, kwargs):
            return None  # the real call raises: let it
        kind = (func, tuple(_features(a) for a in args), tuple((k, _features(v)) for k, v in kwargs.items()))
        predicted = [(tuple(x.shape), x.stride(), x.dtype)]
        flops = 0
    elif name in ("cat", "concat") and args and isinstance(args[0], (list, tuple)) and args[0]:
        parts = args[0]
        dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
        x = parts[0]
        if not isinstance(dim, int) or any(not isinstance(t, torch.Tensor) or t.dim() != x.dim() or t.dtype != x.dtype or not t.is_contiguous() for t in parts):
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
        bias, stride, padding, dilation, groups = (list(args[2:]) + [None, 1, 0, 1, 1][len(args) - 2 :])[:5]
        if x.dim() != 4 or w.dim() != 4 or not x.is_contiguous() or not w.is_contiguous() or isinstance(padding, str) or not isinstance(groups, int):
            return None
        if groups < 1 or x.shape[1] != w.shape[1] * groups or w.shape[0] % groups or (bias is not None and (not isinstance(bias, torch.Tensor) or bias.shape != (w.shape[0],))):
            return None  # the real call raises: let it
        stride, padding, dilation = pair(stride), pair(padding), pair(dilation)
        kernel = tuple(w.shape[-2:])
        sides = [(x.shape[2 + k] + 2 * padding[k] - dilation[k] * (kernel[k] - 1) - 1) // stride[k] + 1 for k in range(2)]
        if min(sides) < 1:
            return None
        shape = (x.shape[0], w.shape[0], sides[0], sides[1])
        kind = (func, _features(x), _features(w), _features(bias), stride, padding, dilation, kernel, groups == 1, groups == x.shape[1])
        predicted = [(shape, _contiguous_strides(shape), x.dtype)]
        from torch.utils.flop_counter import conv_flop_count

        flops = conv_flop_count(list(x.shape), list(w.shape), list(shape))
    else:
        return None
    units = (x.numel(), x.shape[1] if x.dim() >= 2 else 1)
    return (kind, torch.is_grad_enabled()), predicted, units, flops


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
    specs = [_Out(shape, stride, dtype, rg) for (shape, stride, dtype), rg in zip(predicted, grads)]
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


class _Memo:
    """The call memo of one pass: exact signatures, and templates of the op families."""

    def __init__(self, train: bool) -> None:
        self.train = train
        self.exact: dict[Any, Any] = {}
        self.kinds: dict[Any, Any] = {}

    def lookup(self, func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[Any, Any, Any]:
        """``(signature, entry, family)``: the entry is a memo entry, :data:`_RUN` or None (run and record);
        raises :class:`_Uncached` for calls that cannot be memoized."""
        try:
            key = _signature(func, args, kwargs)
            entry = self.exact.get(key)
        except TypeError:  # an unhashable plain value
            raise _Uncached from None
        if entry is not None:
            return key, entry, None
        family = _family(func, args, kwargs)
        if family is not None:
            kind, predicted, units, flops = family
            state = self.kinds.get(kind)
            if isinstance(state, _Trusted):
                built = _from_template(state.template, predicted, units, flops, self.train)
                if built is not None:
                    self.exact[key] = built
                    return key, built, None
        return key, None, family

    def store(self, key: Any, entry: Any, family: Any) -> None:
        self.exact[key] = entry
        if family is None:
            return
        kind, predicted, units, flops = family
        state = self.kinds.get(kind)
        if state is _RUN or isinstance(state, _Trusted):
            return
        rel = None if entry is _RUN else _relative(entry, predicted, units, flops)
        if rel is None:
            self.kinds[kind] = _RUN
        elif state is None:
            self.kinds[kind] = rel
        else:
            merged = _agree(state, rel)
            template = None if merged is None else _settled(merged)
            self.kinds[kind] = _RUN if merged is None else merged if template is None else _Trusted(template)


@dataclass(frozen=True)
class _Trusted:
    template: Any


class _EvalMode(ReceptiveFieldMode):
    """The eval pass: receptive fields (the parent class), batch norm reduced to its output shape, and
    the call memo (outputs and FLOPs of repeated calls)."""

    def __init__(self, flops: _FlopCounter) -> None:
        super().__init__()
        self.flops = flops
        self.memo = _Memo(train=False)

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

    def _call(self, func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        try:
            key, entry, family = self.memo.lookup(func, args, kwargs)
        except _Uncached:
            return func(*args, **kwargs)
        if entry is _RUN:
            return func(*args, **kwargs)
        inputs = tensors_in(args) + tensors_in(kwargs.values())
        if entry is not None:
            structure, specs, flops, _ = entry
            self.flops.add(flops)
            return _build(structure, [inputs[structure[1]]] if structure[0] == "self" else [s.make() for s in specs])
        before = self.flops.total
        geometry = [_geometry(t) for t in inputs]
        out = func(*args, **kwargs)
        try:
            structure, made = _output_spec(out, inputs, geometry)
            if any(t.requires_grad for t in made):
                raise _Uncached
            entry = (structure, _specs(structure), self.flops.total - before, None)
        except _Uncached:
            entry = _RUN
        self.memo.store(key, entry, family)
        return out


_RUN = object()  # memo entry: always run this call


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
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.add(formula(*args, **kwargs, out_val=out))
        return out


_DISPATCH_METADATA = frozenset(
    getattr(torch.ops.aten, op).default if "." not in op else getattr(getattr(torch.ops.aten, op.split(".")[0]), op.split(".")[1])
    for op in ("sym_is_contiguous", "is_contiguous", "is_contiguous.memory_format", "is_strides_like_format",
               "is_non_overlapping_and_dense", "size", "sym_size", "stride", "sym_stride", "storage_offset",
               "sym_storage_offset", "numel", "sym_numel", "dim")
) | {torch.ops.prim.layout.default}  # fmt: skip


class _Replay(torch.autograd.Function):
    """A call of the train pass built from the memo: fresh outputs, and the tensors the real call saved
    for backward handed to autograd's saved-tensor hooks (inputs, outputs and new tensors of the same sizes)."""

    @staticmethod
    def forward(ctx: Any, entry: Any, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        structure, specs, _, saves = entry
        if structure[0] == "self":  # an in-place op
            outs = [inputs[structure[1]]]
            ctx.mark_dirty(outs[0])
        else:
            outs = [s.make() for s in specs]
        news: dict[int, torch.Tensor] = {}
        kept = []
        for kind, index, nbytes in saves:
            if kind == "in":
                kept.append(inputs[index])
            elif kind == "out":
                kept.append(outs[index])
            else:  # a tensor the call made and saved: the same size (its first mention carries it)
                if index not in news:
                    news[index] = torch.empty(nbytes, dtype=torch.uint8, device="meta")
                kept.append(news[index])
        ctx.save_for_backward(*kept)
        ctx.mark_non_differentiable(*[o for o, s in zip(outs, specs) if not s.requires_grad])
        return tuple(outs)

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Any:  # pragma: no cover - the report never runs backward
        raise RuntimeError("cnnlens' saved-tensor count is not differentiable")


class _TrainMode(TorchFunctionMode):
    """The train pass: counts the distinct storages autograd saves for backward (``pack`` is the
    saved-tensor hook), runs attention with the kernel the CPU would use, and replays repeated calls."""

    def __init__(self, param_keys: set[int], memo: _Memo) -> None:
        super().__init__()
        self.param_keys = param_keys
        self.saved: dict[int, torch.Tensor] = {}
        self.fused_attention = 0  # calls of scaled_dot_product_attention that took PyTorch's fused CPU kernel
        self._recording: list[Any] | None = None
        self.memo = memo
        self._mha = _with_attention(torch.nn.functional.multi_head_attention_forward, self.attention)

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        key = _storage_key(t)
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
        except Exception:  # a PyTorch without this (private) query: count the math path, as before
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
        except _Uncached:
            return self._real(func, args, kwargs)
        if entry is _RUN:
            return self._real(func, args, kwargs)
        inputs = tensors_in(args) + tensors_in(kwargs.values())
        if entry is not None:
            return _build(entry[0], list(_Replay.apply(entry, *inputs)))
        geometry = [_geometry(t) for t in inputs]
        self._recording = recorded = []
        try:
            out = self._real(func, args, kwargs)
        finally:
            self._recording = None
        try:
            structure, made = _output_spec(out, inputs, geometry)
            if any(t.requires_grad for t in made) and not any(t.requires_grad for t in inputs):
                raise _Uncached  # grad from a tensor the call did not get as an argument
            ins = {_storage_key(t): i for i, t in reversed(list(enumerate(inputs)))}
            outs = {_storage_key(t): j for j, t in enumerate(made)}
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
                    raise _Uncached
                else:
                    news[sk] = len(news)
                    saves.append(("new", news[sk], t.untyped_storage().nbytes()))
            entry = (structure, _specs(structure), 0, saves)
        except _Uncached:
            entry = _RUN
        self.memo.store(key, entry, family)
        return out

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
    cast = None
    if dtype is None:
        dtype = model_dtype(module)
    else:
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise CnnlensError(f"dtype must be a floating-point torch.dtype such as torch.float16, not {dtype!r}", param="dtype")
        tensors = [*module.parameters(), *module.buffers()]
        cast = dtype if any(t.is_floating_point() and t.dtype != dtype for t in tensors) else None
    meta_state = None if cast is None and _on_meta(module) else _meta_state(module, cast)

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
                ins = _tensors(args)
                if ins:
                    s.in_numel = ins[0].numel() // max(1, ins[0].shape[0]) if ins[0].dim() else ins[0].numel()

        return hook

    def post_hook(name: str):  # noqa: ANN202
        s = seen[name]
        leaf = name in leaves

        def hook(mod: nn.Module, args: Any, output: Any) -> None:
            active.discard(name)
            outs = _tensors(output)
            s.calls += 1
            if not outs:
                return
            s.output_bytes += sum(t.numel() * t.element_size() for t in outs)
            rf_mode.module_output(mod, args, output)
            if s.output_shape is None:
                s.output_shape = list(outs[0].shape)
                s.out_numel = outs[0].numel() // max(1, outs[0].shape[0]) if outs[0].dim() else outs[0].numel()
                s.rf = rf_mode.field_of(outs[0])
            if leaf:
                for t in outs:
                    leaf_outputs.setdefault(_storage_key(t), t)

        return hook

    x = torch.empty(input_size, device="meta", dtype=dtype)
    notes: list[str] = []
    if cast is not None:
        notes.append(f"reported as if the model ran in {str(dtype).replace('torch.', '')} (parameters, buffers, input and activations)")
    with preserved_state(module):
        try:
            with hooked([(m, pre_hook(n)) for n, m in named], pre=True), hooked([(m, post_hook(n)) for n, m in named]):
                rf_mode.track(x)
                with eval_mode(module), torch.no_grad(), counter, rf_mode:
                    _run(module, x, meta_state)
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
        saved_bytes = _saved_for_backward(module, input_size, dtype, meta_state, notes)

    flops_by_module = counter.by_module
    total_flops = int(counter.total)
    params_all = list({id(p): p for p in (module.parameters() if meta_state is None else meta_state.values()) if isinstance(p, nn.Parameter)}.values())
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

    subtree_params = _subtree_params(module)
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


def _subtree_params(module: nn.Module) -> dict[str, int]:
    """Parameters of every module's subtree (a shared parameter once per subtree), in one walk over the
    parameter names instead of one walk per module."""
    counted: dict[str, set[int]] = {}
    totals: dict[str, int] = {}
    for full, p in module.named_parameters(remove_duplicate=False):
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
    module: nn.Module, input_size: tuple[int, ...], dtype: torch.dtype, meta_state: dict[str, torch.Tensor] | None, notes: list[str]
) -> int | None:
    """Bytes of the distinct tensors autograd saves for backward in one train-mode pass (parameters
    excluded), with attention counted as the CPU's kernel keeps it (see :meth:`_TrainMode.attention`)."""
    param_keys = {_storage_key(p) for p in (meta_state or dict(module.named_parameters())).values() if isinstance(p, nn.Parameter)}
    module.train()
    batch = input_size[0]
    # batch norm in train mode refuses one value per channel (inception's aux head at batch 1):
    # then count a batch of two and scale back (saved activations grow with the batch)
    memo = _Memo(train=True)  # shared: what the first trial learnt about op families serves the second
    for trial in (batch, 2 * batch):
        mode = _TrainMode(param_keys, memo)
        x = torch.empty((trial, *input_size[1:]), device="meta", dtype=dtype)
        try:
            with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(mode.pack, _unpack), mode:
                _run(module, x, meta_state)
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


class _CallableModule(types.ModuleType):
    """``cnnlens.report`` is this module and the function at once: ``cnnlens.report("vgg16")`` calls
    :func:`report`, ``cnnlens.report.Report`` is the class (the package attribute of a submodule is
    always the module object, whatever the package's ``__getattr__`` says)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Report:
        return report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
sys.modules[__name__].__wrapped__ = report  # inspect.signature(cnnlens.report) is report's
