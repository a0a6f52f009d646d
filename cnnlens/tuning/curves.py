"""Orientation and spatial-frequency tuning, phase response and contrast response of units, measured
with gratings as in the physiology of V1 (Hubel & Wiesel 1962; De Valois et al. 1982; Skottun et
al. 1991; Ringach et al. 2002).

Every unit is a channel at one position of a layer. The gratings (every orientation x frequency x
phase of the grid, at one contrast, plus a grey blank) are centred on the unit's receptive field and
drawn, in batches on the model's device, on the smallest canvas that holds the field
(:mod:`cnnlens.tuning.engine`); one batched pass reads every channel of the layer at once. The
measures are those of :mod:`cnnlens.tuning.measures`; the contrast response is then measured at
each unit's preferred orientation, frequency and phase.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..address import Unit, parse_units
from ..checks import check_int, check_number
from ..errors import CnnlensError
from ..layers import model_device
from ..pixelnet import image_preprocessing, unwrap
from ..pixels import Preprocessing
from ..progress import progress_bar
from ..registry import ModelInfo, default_layers, model_info
from ..results import Result
from .common import check_numbers, count_or_list, median, share
from .engine import Placement, place_layers, read_units, resolve_units
from .measures import CLASSES, OSI_THRESHOLD, Measures, c50, measure
from ..stimuli import (
    check_window,
    default_frequencies,
    default_orientations,
    default_phases,
    gratings,
)

__all__ = ["CONTRASTS", "Gratings", "Grid", "LayerTuning", "TuningResult", "UnitTuning", "check_grid", "grating_batches", "layer_summary", "measure_layer", "tuning_curves"]

CONTRASTS = (0.0625, 0.125, 0.25, 0.5, 1.0)


def _round(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(float(value)):
        return None
    return round(float(value), digits)


@dataclass(frozen=True)
class UnitTuning:
    """The tuning of one unit. Responses are in the layer's units (after half-wave rectification when
    ``rectify``), curves are the tuning response ``R = max(F0 + F1, 0)`` above the blank.

    ``preferred_orientation_deg`` is the grid orientation with the largest response (the wave
    vector's angle, 0 = vertical stripes, as :func:`cnnlens.units.fit_gabor`);
    ``orientation_vector_deg`` the vector average. ``preferred_frequency`` is in cycles per pixel,
    ``preferred_frequency_cycles_per_rf`` in cycles per receptive field.
    """

    unit: Unit
    preferred_orientation_deg: float
    orientation_vector_deg: float | None
    osi: float
    preferred_frequency: float
    preferred_frequency_cycles_per_rf: float
    preferred_phase_deg: float
    modulation_ratio: float | None
    f0: float
    f1: float
    classification: str
    responsive: bool
    peak_response: float
    blank_response: float
    rf_size: int
    orientation_curve: list[float]
    frequency_curve: list[float]
    phase_response: list[float]
    contrast_response: list[float] | None = None
    c50: float | None = None

    @property
    def circular_variance(self) -> float:
        return 1.0 - self.osi

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.unit.to_dict(),
            "position": list(self.unit.position) if self.unit.position is not None else None,
            "preferred_orientation_deg": _round(self.preferred_orientation_deg, 4),
            "orientation_vector_deg": _round(self.orientation_vector_deg, 4),
            "osi": _round(self.osi),
            "circular_variance": _round(self.circular_variance),
            "preferred_frequency": _round(self.preferred_frequency),
            "preferred_frequency_cycles_per_rf": _round(self.preferred_frequency_cycles_per_rf, 4),
            "preferred_phase_deg": _round(self.preferred_phase_deg, 4),
            "modulation_ratio": _round(self.modulation_ratio),
            "f0": _round(self.f0),
            "f1": _round(self.f1),
            "classification": self.classification,
            "responsive": self.responsive,
            "peak_response": _round(self.peak_response),
            "blank_response": _round(self.blank_response),
            "rf_size": self.rf_size,
            "c50": _round(self.c50),
            "orientation_curve": [_round(v) for v in self.orientation_curve],
            "frequency_curve": [_round(v) for v in self.frequency_curve],
            "phase_response": [_round(v) for v in self.phase_response],
            "contrast_response": None if self.contrast_response is None else [_round(v) for v in self.contrast_response],
        }


def layer_summary(units: Sequence[UnitTuning]) -> dict[str, Any]:
    """Counts and shares of simple, complex and unselective units, and medians of OSI, F1/F0 and the
    preferred frequency (over responsive units)."""
    classes = [u.classification for u in units]
    live = [u for u in units if u.responsive]
    return {
        "n_units": len(units),
        "n_responsive": len(live),
        "counts": {c: classes.count(c) for c in CLASSES},
        "share_selective": share([c != "unselective" for c in classes]),
        "share_simple": share([c == "simple" for c in classes]),
        "share_complex": share([c == "complex" for c in classes]),
        "share_unselective": share([c == "unselective" for c in classes]),
        "median_osi": median([u.osi for u in live]),
        "median_modulation_ratio": median([u.modulation_ratio for u in live]),
        "median_preferred_frequency": median([u.preferred_frequency for u in live]),
    }


@dataclass
class LayerTuning:
    """The units read at one place (a layer and a position): the placement, the frequency grid, the
    raw responses ``(U, O, F, P)`` (rectified when ``rectify``) and blank responses ``(U,)`` on the
    CPU, and one :class:`UnitTuning` per unit."""

    placement: Placement
    frequencies: list[float]
    channels: list[int]
    responses: torch.Tensor
    blank: torch.Tensor
    units: list[UnitTuning]

    @property
    def layer(self) -> str:
        return self.placement.layer

    def summary(self) -> dict[str, Any]:
        return layer_summary(self.units)

    def to_dict(self) -> dict[str, Any]:
        size = self.placement.rf_size
        return {
            **self.placement.to_dict(),
            "frequencies": [_round(f) for f in self.frequencies],
            "frequencies_cycles_per_rf": [_round(f * size, 4) for f in self.frequencies],
            **self.summary(),
        }


@dataclass(repr=False)
class TuningResult(Result):
    """What :func:`tuning_curves` returns: the tuning of each unit asked for.

    Attributes:
        layers: one :class:`LayerTuning` per layer (and position) measured.
        orientations: degrees of the grid; ``phases`` degrees; ``contrast`` of the grid;
            ``contrasts`` of the contrast response.
        window, rectify, osi_threshold: how it was measured and classified.
        n_stimuli: gratings drawn (blank and contrast series included).
    """

    layers: list[LayerTuning]
    orientations: list[float]
    phases: list[float]
    contrast: float
    contrasts: list[float]
    window: str
    rectify: bool
    osi_threshold: float
    info: ModelInfo
    n_stimuli: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def units(self) -> list[UnitTuning]:
        return [u for layer in self.layers for u in layer.units]

    def __getitem__(self, unit: str | Unit) -> UnitTuning:
        """The tuning of ``unit`` (``"features.0:3"``, or with its position)."""
        text = str(unit)
        for u in self.units:
            if str(u.unit) == text or f"{u.unit.layer}:{u.unit.channel}" == text:
                return u
        raise CnnlensError(f"unit {text!r} was not measured; measured: {', '.join(str(u.unit) for u in self.units[:5])}...", param="unit")

    def summary(self) -> dict[str, Any]:
        return layer_summary(self.units)

    @property
    def title(self) -> str:
        names = ", ".join(dict.fromkeys(layer.layer or "logits" for layer in self.layers))
        return f"{self.info.label}: {names}"

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.info.to_dict(),
            "orientations_deg": [_round(o, 4) for o in self.orientations],
            "phases_deg": [_round(p, 4) for p in self.phases],
            "contrast": self.contrast,
            "contrasts": list(self.contrasts),
            "window": self.window,
            "rectify": self.rectify,
            "osi_threshold": self.osi_threshold,
            "n_stimuli": self.n_stimuli,
            "summary": self.summary(),
            "layers": [layer.to_dict() for layer in self.layers],
            "units": [u.to_dict() for u in self.units],
            "warnings": list(self.warnings),
        }

    def figure(self, *, kind: str | None = None, unit: str | Unit | None = None, max_units: int = 24, title: str | None = None) -> Any:
        """``kind``: ``"unit"`` (one unit: polar orientation curve, frequency curve, phase and contrast
        response), ``"polar"`` (polar plots of up to ``max_units`` units, the strongest first),
        ``"summary"`` (histograms of OSI, F1/F0, preferred orientation and frequency) or ``"all"``
        (polar grid above the summary). Default: ``"unit"`` for one unit, else ``"all"``. ``unit``:
        the unit figure of that unit (``"features.0:3"``) of a result holding several."""
        from .plots import plot_tuning

        return plot_tuning(self, kind=kind, unit=unit, max_units=max_units, title=title)

    def to_text(self) -> str:
        """One line: the units and how many are simple, complex or unselective, median OSI and F1/F0."""
        s = self.summary()
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        return (
            f"{self.title}: {s['n_units']} units: {s['counts']['simple']} simple, {s['counts']['complex']} complex, "
            f"{s['counts']['unselective']} unselective; median OSI {fmt(s['median_osi'])}, median F1/F0 {fmt(s['median_modulation_ratio'])}"
        )

    def _summary(self) -> dict[str, Any]:
        s = self.summary()
        return {
            "model": self.info.name,
            "weights": self.info.weights_label,
            "layers": [layer.layer for layer in self.layers],
            "units": s["n_units"],
            "counts": s["counts"],
            "median_osi": s["median_osi"],
            "median_modulation_ratio": s["median_modulation_ratio"],
        }


@dataclass(frozen=True)
class Grid:
    """The grating grid: orientations (degrees), frequencies (a count on the default grid of each
    field, or cycles per pixel), phases (degrees) and the contrast of every grating."""

    orientations: list[float]
    frequencies: int | list[float]
    phases: list[float]
    contrast: float

    def frequency_list(self, rf_size: int) -> list[float]:
        """The frequencies for a field of ``rf_size`` pixels (:func:`default_frequencies` for a count)."""
        if isinstance(self.frequencies, int):
            return default_frequencies(rf_size, self.frequencies)
        return list(self.frequencies)

    def params(self, frequencies: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(orientation, frequency, phase, contrast)`` per stimulus, orientation-major, then the
        blank (contrast 0) as the last stimulus."""
        axes = [torch.tensor(v, dtype=torch.float64) for v in (self.orientations, frequencies, self.phases)]
        o, f, p = (t.reshape(-1) for t in torch.meshgrid(*axes, indexing="ij"))
        c = torch.full_like(o, self.contrast)
        return torch.cat([o, o[:1]]), torch.cat([f, f[:1]]), torch.cat([p, p[:1]]), torch.cat([c, torch.zeros(1, dtype=c.dtype)])

    def unpack(self, reads: torch.Tensor, frequencies: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
        """Responses ``(N + 1, C)`` in the order of :meth:`params` as ``(C, O, F, P)`` and the blank ``(C,)``."""
        grid = reads[:-1].reshape(len(self.orientations), len(frequencies), len(self.phases), -1).permute(3, 0, 1, 2).contiguous()
        return grid, reads[-1]


@dataclass(frozen=True)
class Gratings:
    """The gratings a measurement shows: ``tuning_curves(model, unit, gratings=Gratings(orientations=24))``.

    - ``orientations``: a count evenly over 180 degrees, or the angles (degrees; 0 = vertical stripes);
    - ``frequencies``: a count on the default grid of each receptive field (from half a cycle per
      field to 0.4 cycles per pixel), or the frequencies in cycles per pixel; None: 12 for
      :func:`tuning_curves`, 16 for :func:`~cnnlens.tuning.hierarchy`;
    - ``phases``: spatial phases evenly over 360 degrees (at least 3, for F1/F0);
    - ``contrast``: the Michelson contrast of every grating, in (0, 1].
    """

    orientations: int | Sequence[float] = 16
    frequencies: int | Sequence[float] | None = None
    phases: int = 8
    contrast: float = 1.0

    def grid(self, frequencies: int = 12) -> Grid:
        """The checked :class:`Grid`; ``frequencies``: the count when :attr:`frequencies` is None."""
        return check_grid(self.orientations, frequencies if self.frequencies is None else self.frequencies, self.phases, self.contrast)


def check_grid(orientations: int | Sequence[float], frequencies: int | Sequence[float], phases: int, contrast: float) -> Grid:
    """The grid of :func:`tuning_curves` and :func:`~cnnlens.tuning.hierarchy`, checked before any work."""
    orientation_arg = count_or_list(orientations, "orientations", low=-1e6, high=1e6, max_count=720)
    frequency_arg = count_or_list(frequencies, "frequencies", low=0.0, high=0.5, low_open=True)
    phase_list = default_phases(phases)
    contrast = check_number(contrast, "contrast", low=0.0, high=1.0, low_open=True)
    orientation_list = default_orientations(orientation_arg) if isinstance(orientation_arg, int) else [o % 180.0 for o in orientation_arg]
    return Grid(orientation_list, frequency_arg, phase_list, contrast)


def grating_batches(
    params: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    placement: Placement,
    *,
    window: str,
    batch_size: int,
    device: torch.device,
    full_field: bool = False,
) -> Iterator[torch.Tensor]:
    """Batches of gratings ``(orientation, frequency, phase, contrast)`` (one value each per
    stimulus) centred on the unit of ``placement``; ``full_field`` draws them over the whole canvas,
    centred on it."""
    o, f, p, c = params
    mid = (placement.canvas - 1) / 2
    for start in range(0, o.numel(), batch_size):
        sl = slice(start, start + batch_size)
        yield gratings(
            o[sl], f[sl], p[sl], c[sl],
            size=placement.canvas,
            center=(mid, mid) if full_field else placement.center,
            window="full" if full_field else window,
            box=placement.box,
            device=device,
        )


def measure_layer(
    responses: torch.Tensor,
    blank: torch.Tensor,
    placement: Placement,
    channels: Sequence[int],
    orientations: Sequence[float],
    frequencies: Sequence[float],
    phases: Sequence[float],
    *,
    layer_unit: Unit | None = None,
    osi_threshold: float = OSI_THRESHOLD,
) -> tuple[Measures, list[UnitTuning]]:
    """The :class:`UnitTuning` of each channel from its responses ``(U, O, F, P)`` and blank ``(U,)``."""
    m = measure(responses, blank, orientations, osi_threshold=osi_threshold)
    ocurve, fcurve = m.orientation_curve, m.frequency_curve
    units = []
    for i, ch in enumerate(channels):
        bo, bf, bp = int(m.best_orientation[i]), int(m.best_frequency[i]), int(m.best_phase[i])
        if placement.layer == "" and layer_unit is not None and layer_unit.is_logits:
            address = Unit("logits", ch, None, layer_unit.name if layer_unit.channel == ch else None)
        else:
            address = Unit(placement.layer, ch, placement.full_position)
        ratio = float(m.ratio[i])
        vector = float(m.vector_orientation[i])
        units.append(
            UnitTuning(
                unit=address,
                preferred_orientation_deg=float(orientations[bo]),
                orientation_vector_deg=vector if math.isfinite(vector) else None,
                osi=float(m.osi[i]),
                preferred_frequency=float(frequencies[bf]),
                preferred_frequency_cycles_per_rf=float(frequencies[bf]) * placement.rf_size,
                preferred_phase_deg=float(phases[bp]),
                modulation_ratio=ratio if math.isfinite(ratio) else None,
                f0=float(m.f0[i, bo, bf]),
                f1=float(m.f1[i, bo, bf]),
                classification=m.classes[i],
                responsive=bool(m.responsive[i]),
                peak_response=float(m.peak[i]),
                blank_response=float(blank[i]),
                rf_size=placement.rf_size,
                orientation_curve=ocurve[i].tolist(),
                frequency_curve=fcurve[i].tolist(),
                phase_response=responses[i, bo, bf].double().tolist(),
            )
        )
    return m, units


def tuning_curves(
    model: nn.Module,
    unit: str | Unit | Sequence[str | Unit] | None = None,
    *,
    gratings: Gratings | None = None,
    contrasts: Sequence[float] | None = CONTRASTS,
    window: str = "rf",
    rectify: bool = True,
    osi_threshold: float = OSI_THRESHOLD,
    size: int | None = None,
    preprocessing: Preprocessing | None = None,
    batch_size: int = 128,
    progress: bool = True,
) -> TuningResult:
    """Measure units with gratings: orientation and frequency tuning, F1/F0, contrast response.

    Args:
        model: any image model (e.g. from :func:`cnnlens.create_model`); left exactly as it was.
        unit: ``LAYER`` (every channel at the centre of the layer's map), ``LAYER:CHANNEL`` (that
            channel at the centre), ``LAYER:CHANNEL@Y,X`` (at that position of the map at the model's
            input size), ``logits:CLASS``, or a list of these. Default: the first convolution.
        gratings: :class:`Gratings`: orientations (a count evenly over [0, 180) degrees, or a list of
            degrees), frequencies (default 12, log-spaced from half a cycle per receptive field to 0.5
            cycles per pixel, :func:`~cnnlens.tuning.default_frequencies`, or a list in cycles per
            pixel), phases (at least 3) and the Michelson contrast of the grid.
        contrasts: contrasts of the contrast response, at each unit's preferred grating and phase
            (``None`` or empty: not measured).
        window: ``"rf"`` (the receptive-field box: for the unit the same as a full-field grating),
            ``"circle"`` (an aperture inscribed in the field) or ``"full"``.
        rectify: half-wave rectify responses (a firing rate) before measuring; a layer after its
            ReLU is unchanged by it.
        osi_threshold: units with a lower OSI are ``"unselective"``.
        size: the input side the unit addresses refer to (default: the model's crop size).
        preprocessing: the model's normalization and input size (default ``model_info(model)``).
        batch_size: stimuli per forward pass.
        progress: report progress on stderr.

    Returns:
        :class:`TuningResult`; ``result["features.0:3"]`` is one :class:`UnitTuning`.

    Example:
        >>> import cnnlens
        >>> model = cnnlens.create_model("squeezenet1_0", seed=0)
        >>> t = tuning_curves(model, "features.0:5", gratings=Gratings(orientations=8, frequencies=4, phases=4), contrasts=None, progress=False)
        >>> u = t["features.0:5"]
        >>> u.classification in ("simple", "complex", "unselective"), 0 <= u.osi <= 1, len(u.orientation_curve)
        (True, True, 8)
    """
    grid = (gratings or Gratings()).grid(frequencies=12)
    contrast_list = [] if contrasts is None or (isinstance(contrasts, (list, tuple)) and not contrasts) else check_numbers(contrasts, "contrasts", low=0.0, high=1.0, low_open=True)
    window = check_window(window)
    osi_threshold = check_number(osi_threshold, "osi_threshold", low=0.0, high=1.0)
    batch_size = check_int(batch_size, "batch_size", low=1)
    orientation_list, phase_list = grid.orientations, grid.phases

    net, _ = unwrap(model)
    prep = image_preprocessing(model, preprocessing, size)
    if unit is None:
        unit = default_layers(net, "first_conv")[0]
    resolved, fields = resolve_units(net, parse_units(unit), prep)
    groups: dict[tuple[str, tuple[int, int] | None], tuple[list[int] | None, Unit]] = {}
    for u in resolved:
        layer = "" if u.is_logits else u.layer
        key = (layer, u.position)
        chans, first = groups.get(key, ([], u))
        if u.channel is None or chans is None:
            groups[key] = (None, first)
        elif u.channel not in chans:
            groups[key] = (chans + [u.channel], first)
    device = model_device(net)
    layers: list[LayerTuning] = []
    notes: list[str] = []
    n_stimuli = 0
    for (layer, position), (chans, first) in groups.items():
        _, placed = place_layers(net, {layer: position}, prep, fields)
        pl = placed[layer]
        channels = list(range(pl.channels)) if chans is None else chans
        freqs = grid.frequency_list(pl.rf_size)
        params = grid.params(freqs)  # the blank (contrast 0) rides along as the last stimulus
        n = params[0].numel()
        name = layer or "logits"
        with progress_bar(math.ceil(n / batch_size), f"tuning {name}", enabled=progress, unit="batch") as bar:
            reads = read_units(net, prep, grating_batches(params, pl, window=window, batch_size=batch_size, device=device), {layer: pl.position}, bar=bar)[layer]
        reads = reads[:, channels]
        if rectify:
            reads = reads.clamp_min(0)
        grid_resp, blank = grid.unpack(reads, freqs)
        m, units = measure_layer(grid_resp, blank, pl, channels, orientation_list, freqs, phase_list, layer_unit=first, osi_threshold=osi_threshold)
        n_stimuli += n
        if contrast_list:
            units, extra = _contrast_response(net, prep, pl, m, units, channels, orientation_list, freqs, phase_list, contrast_list, blank, window=window, rectify=rectify, batch_size=batch_size, device=device, progress=progress)
            n_stimuli += extra
        if pl.field_leaves_image:
            notes.append(
                f"the receptive field of {name} ({pl.rf_size} px) leaves the {pl.full_size[0]}-pixel input: "
                "its units are read at the full size, zero padding included, as the model sees them"
            )
        if not any(u.responsive for u in units):
            notes.append(f"no unit of {name} responds to gratings above its blank response")
        layers.append(LayerTuning(pl, freqs, channels, grid_resp, blank, units))
    return TuningResult(
        layers=layers,
        orientations=orientation_list,
        phases=phase_list,
        contrast=grid.contrast,
        contrasts=contrast_list,
        window=window,
        rectify=rectify,
        osi_threshold=osi_threshold,
        info=model_info(model),
        n_stimuli=n_stimuli,
        warnings=notes,
    )


def _contrast_response(
    net: nn.Module,
    prep: Preprocessing,
    pl: Placement,
    m: Measures,
    units: list[UnitTuning],
    channels: list[int],
    orientations: list[float],
    frequencies: list[float],
    phases: list[float],
    contrasts: list[float],
    blank: torch.Tensor,
    *,
    window: str,
    rectify: bool,
    batch_size: int,
    device: torch.device,
    progress: bool,
) -> tuple[list[UnitTuning], int]:
    """Each unit's response above the blank at its preferred orientation, frequency and phase, for
    every contrast; one batched pass over the distinct preferred gratings."""
    from dataclasses import replace

    triples = [(int(m.best_orientation[i]), int(m.best_frequency[i]), int(m.best_phase[i])) for i in range(len(channels))]
    distinct = list(dict.fromkeys(triples))
    row = {t: k for k, t in enumerate(distinct)}
    k = len(contrasts)
    o = torch.tensor([orientations[t[0]] for t in distinct for _ in contrasts], dtype=torch.float64)
    f = torch.tensor([frequencies[t[1]] for t in distinct for _ in contrasts], dtype=torch.float64)
    p = torch.tensor([phases[t[2]] for t in distinct for _ in contrasts], dtype=torch.float64)
    c = torch.tensor([cc for _ in distinct for cc in contrasts], dtype=torch.float64)
    name = pl.layer or "logits"
    with progress_bar(math.ceil(o.numel() / batch_size), f"contrast {name}", enabled=progress, unit="batch") as bar:
        reads = read_units(net, prep, grating_batches((o, f, p, c), pl, window=window, batch_size=batch_size, device=device), {pl.layer: pl.position}, bar=bar)[pl.layer]
    if rectify:
        reads = reads.clamp_min(0)
    curves = torch.stack([reads[row[t] * k : (row[t] + 1) * k, ch] - blank[i] for i, (t, ch) in enumerate(zip(triples, channels))])
    halves = c50(curves, contrasts)
    out = [replace(u, contrast_response=curves[i].double().tolist(), c50=halves[i]) for i, u in enumerate(units)]
    return out, o.numel()
