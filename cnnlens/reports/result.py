"""The :class:`Report` result: one :class:`LayerRow` per module, the :class:`Totals`, and the report's
text forms (table, CSV, Markdown), JSON and figure."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CnnlensError, did_you_mean
from ..layers import depth_of
from ..outputs import FIGURE_SUFFIXES, check_output, save_text
from ..receptive_field import ReceptiveField
from ..registry import ModelInfo
from ..results import Result

__all__ = ["REPORT_SUFFIXES", "LayerRow", "Report", "Totals"]

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
