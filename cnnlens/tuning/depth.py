"""The tuning of every unit over the depth of a network: how the shares of orientation-selective,
simple and complex units and the receptive-field size change from layer to layer.

One set of full-field gratings serves every layer: a unit sees only its receptive field, so a
full-field grating is, for each unit, the grating windowed to its field. The canvas is the
smallest that holds the field of the deepest layer (:mod:`cnnlens.tuning.engine`), each layer's unit
is the one whose field lies nearest the canvas centre, and one batched pass reads every channel of
every layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from ..checks import check_int, check_number, check_seed
from ..errors import CnnlensError

from ..layers import get_layer, model_device
from ..pixelnet import image_preprocessing, unwrap
from ..pixels import Preprocessing
from ..progress import progress_bar
from ..registry import ModelInfo, default_layers, model_info
from ..results import Result
from ..registry import random_init_like
from .curves import (
    Gratings,
    LayerTuning,
    TuningResult,
    grating_batches,
    layer_summary,
    measure_layer,
)
from .engine import Placement, check_grating_layer, layer_fields, place_layers, read_units
from .measures import OSI_THRESHOLD

__all__ = ["Hierarchy", "LayerStats", "hierarchy", "tune_layers"]


@dataclass(frozen=True)
class LayerStats:
    """One layer of :class:`Hierarchy`: shares of the classes over its units and its field size."""

    layer: str
    rf_size: int
    n_units: int
    n_responsive: int
    share_selective: float | None
    share_simple: float | None
    share_complex: float | None
    share_unselective: float | None
    median_osi: float | None
    median_modulation_ratio: float | None
    median_preferred_frequency: float | None
    exact: bool

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _stats(layer: LayerTuning) -> LayerStats:
    s = layer_summary(layer.units)
    return LayerStats(
        layer=layer.layer,
        rf_size=layer.placement.rf_size,
        n_units=s["n_units"],
        n_responsive=s["n_responsive"],
        share_selective=s["share_selective"],
        share_simple=s["share_simple"],
        share_complex=s["share_complex"],
        share_unselective=s["share_unselective"],
        median_osi=s["median_osi"],
        median_modulation_ratio=s["median_modulation_ratio"],
        median_preferred_frequency=s["median_preferred_frequency"],
        exact=layer.placement.exact,
    )


@dataclass(repr=False)
class Hierarchy(Result):
    """What :func:`hierarchy` returns: one :class:`LayerStats` per layer (``rows``), in the order of
    the layers, and the whole :class:`~cnnlens.tuning.TuningResult` of the pass (``tuning``), whose
    ``layers`` hold every unit. With a baseline, ``baseline_rows`` and ``baseline_tuning`` are the
    same for the architecture at random initialisation (``baseline_info``)."""

    rows: list[LayerStats]
    tuning: TuningResult
    info: ModelInfo
    baseline_rows: list[LayerStats] | None = None
    baseline_tuning: TuningResult | None = None
    baseline_info: ModelInfo | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def layers(self) -> list[str]:
        return [r.layer for r in self.rows]

    def to_dict(self) -> dict[str, Any]:
        t = self.tuning
        out: dict[str, Any] = {
            **self.info.to_dict(),
            "layers": self.layers,
            "orientations_deg": [round(o, 4) for o in t.orientations],
            "frequencies": [round(f, 6) for f in t.layers[0].frequencies] if t.layers else [],
            "phases_deg": [round(p, 4) for p in t.phases],
            "contrast": t.contrast,
            "canvas": t.layers[0].placement.canvas if t.layers else None,
            "rectify": t.rectify,
            "osi_threshold": t.osi_threshold,
            "n_stimuli": t.n_stimuli,
            "rows": [r.to_dict() for r in self.rows],
            "warnings": list(self.warnings),
        }
        if self.baseline_rows is not None and self.baseline_info is not None:
            out["baseline"] = {**self.baseline_info.to_dict(), "rows": [r.to_dict() for r in self.baseline_rows]}
        return out

    def to_text(self) -> str:
        """A text table: one line per layer (and the random-init shares when measured)."""
        head = ["layer", "RF px", "units", "selective", "simple", "complex", "median OSI", "median F1/F0"]
        if self.baseline_rows is not None:
            head += ["random: selective", "simple", "complex"]
        rows = []
        for k, r in enumerate(self.rows):
            cells = [r.layer, str(r.rf_size), str(r.n_units), _pct(r.share_selective), _pct(r.share_simple), _pct(r.share_complex), _num(r.median_osi), _num(r.median_modulation_ratio)]
            if self.baseline_rows is not None:
                b = self.baseline_rows[k]
                cells += [_pct(b.share_selective), _pct(b.share_simple), _pct(b.share_complex)]
            rows.append(cells)
        widths = [max(len(c) for c in col) for col in zip(head, *rows)]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) for cells in [head, *rows]]
        return "\n".join([f"{self.info.label}", *lines])

    def __str__(self) -> str:
        return self.to_text()

    def figure(self, *, title: str | None = None) -> Any:
        """Shares of selective, simple and complex units, median OSI and F1/F0, and the field size per
        layer (random init dashed) (:func:`cnnlens.tuning.plot_hierarchy`)."""
        from .plots import plot_hierarchy

        return plot_hierarchy(self, title=title)

    def _summary(self) -> dict[str, Any]:
        return {
            "model": self.info.name,
            "weights": self.info.weights_label,
            "layers": self.layers,
            "share_simple": [None if r.share_simple is None else round(r.share_simple, 3) for r in self.rows],
            "share_complex": [None if r.share_complex is None else round(r.share_complex, 3) for r in self.rows],
        }


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def tune_layers(
    model: nn.Module,
    layers: Sequence[str],
    *,
    gratings: Gratings | None = None,
    rectify: bool = True,
    osi_threshold: float = OSI_THRESHOLD,
    size: int | None = None,
    preprocessing: Preprocessing | None = None,
    batch_size: int = 64,
    progress: bool = True,
    placements: tuple[int, dict[str, Placement]] | None = None,
) -> TuningResult:
    """Every channel of each of ``layers`` with one set of full-field gratings (one pass); the
    arguments as :func:`hierarchy`. ``placements`` reuses a canvas and placements already made."""
    grid = (gratings or Gratings()).grid(frequencies=16)
    osi_threshold = check_number(osi_threshold, "osi_threshold", low=0.0, high=1.0)
    batch_size = check_int(batch_size, "batch_size", low=1)
    net, _ = unwrap(model)
    prep = image_preprocessing(model, preprocessing, size)
    names = list(dict.fromkeys(layers))
    for name in names:
        try:
            get_layer(net, name)
        except CnnlensError as exc:
            raise CnnlensError(f"layers: {exc}", param="layers") from None
    if placements is None:
        fields = layer_fields(net, names, prep)
        for name in names:
            if fields[name][1] is not None:  # None: not at this size; the placement falls back to the full size
                check_grating_layer(name, fields[name][1], "layers", fields[name][0])
    canvas, placed = placements or place_layers(net, {name: None for name in names}, prep, fields)
    size_max = max(p.rf_size for p in placed.values())
    freqs = grid.frequency_list(size_max)
    params = grid.params(freqs)
    n = params[0].numel()
    first = next(iter(placed.values()))
    label = f"gratings on {len(names)} layer{'s' * (len(names) > 1)}"
    with progress_bar(math.ceil(n / batch_size), label, enabled=progress, unit="batch") as bar:
        batches = grating_batches(params, first, window="full", batch_size=batch_size, device=model_device(net), full_field=True)
        reads = read_units(net, prep, batches, {name: placed[name].position for name in names}, bar=bar)
    out: list[LayerTuning] = []
    notes: list[str] = []
    for name in names:
        responses, blank = grid.unpack(reads[name].clamp_min(0) if rectify else reads[name], freqs)
        channels = list(range(responses.shape[0]))
        _, units = measure_layer(responses, blank, placed[name], channels, grid.orientations, freqs, grid.phases, osi_threshold=osi_threshold)
        out.append(LayerTuning(placed[name], freqs, channels, responses, blank, units))
        if placed[name].field_leaves_image:
            notes.append(f"the receptive field of {name} ({placed[name].rf_size} px) leaves the {canvas}-pixel input: its centre unit is read with padding, as the model sees it")
    return TuningResult(out, grid.orientations, grid.phases, grid.contrast, [], "full", rectify, osi_threshold, model_info(model), n, notes)


def hierarchy(
    model: nn.Module,
    layers: Sequence[str] | str | None = None,
    *,
    gratings: Gratings | None = None,
    rectify: bool = True,
    osi_threshold: float = OSI_THRESHOLD,
    baseline: bool | nn.Module = False,
    seed: int | None = 0,
    size: int | None = None,
    preprocessing: Preprocessing | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> Hierarchy:
    """Orientation selectivity and simple/complex classes of every unit of several layers, over depth.

    Args:
        model: any image model; left exactly as it was.
        layers: dotted layer names, shallow to deep (default: the model's five layers spread over
            its depth, ``cnnlens.default_layers(model, "invert")``).
        gratings, rectify, osi_threshold: as :func:`~cnnlens.tuning.tuning_curves`; the default
            frequencies span half a cycle per field of the deepest layer to 0.5 cycles per pixel (16
            of them: every layer finds its band).
        baseline: also measure the architecture at random initialisation (``True``:
            :func:`~cnnlens.tuning.random_init_like` with ``seed``) or the model given.
        size, preprocessing, batch_size, progress: as :func:`~cnnlens.tuning.tuning_curves`.

    Returns:
        :class:`Hierarchy`: per layer the shares of orientation-selective, simple and complex
        units, median OSI and F1/F0, and the receptive-field size; ``to_text()`` for text.
    """
    net, _ = unwrap(model)
    if layers is None:
        layers = default_layers(net, "invert")
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise CnnlensError("layers is empty; give one or more layer names", param="layers")
    seed = check_seed(seed)
    if not isinstance(baseline, (bool, nn.Module)):
        raise CnnlensError(f"baseline must be True, False or a model, not {type(baseline).__name__}", param="baseline")
    kwargs = dict(gratings=gratings, rectify=rectify, osi_threshold=osi_threshold, size=size, preprocessing=preprocessing,
                  batch_size=batch_size, progress=progress)
    tuning = tune_layers(model, names, **kwargs)  # type: ignore[arg-type]
    rows = [_stats(layer) for layer in tuning.layers]
    notes = list(tuning.warnings)
    info = model_info(model)
    base_rows = base_tuning = base_info = None
    if baseline is not False:
        if baseline is True and info.random_init:
            notes.append("the model is itself a random initialisation: no separate baseline")
        else:
            other = random_init_like(model, seed) if baseline is True else baseline
            placements = (tuning.layers[0].placement.canvas, {layer.layer: layer.placement for layer in tuning.layers})
            base_tuning = tune_layers(other, names, placements=placements, **kwargs)  # type: ignore[arg-type]
            base_rows = [_stats(layer) for layer in base_tuning.layers]
            base_info = model_info(other)
    return Hierarchy(rows, tuning, info, base_rows, base_tuning, base_info, notes)
