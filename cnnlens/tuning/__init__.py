"""Hubel & Wiesel in silico: orientation and spatial-frequency tuning, simple and complex cells, and
invariance over the depth of a network, measured with gratings as in the physiology of V1.

Example:
    >>> import cnnlens
    >>> model = cnnlens.create_model("squeezenet1_0", seed=0)
    >>> t = cnnlens.tuning_curves(model, "features.0", orientations=8, frequencies=4, phases=4, contrasts=None, progress=False)
    >>> len(t.units), sorted(t.summary()["counts"])
    (96, ['complex', 'simple', 'unselective'])
"""

from __future__ import annotations

from .common import random_init_like
from .curves import CONTRASTS, LayerTuning, TuningResult, UnitTuning, layer_summary, measure_layer, tuning_curves
from .engine import Placement, centred_position, minimal_canvas, place_layers, read_units
from .measures import CLASSES, OSI_THRESHOLD, Measures, c50, classify, harmonics, measure, modulation_ratio, orientation_selectivity
from .plots import plot_osi_comparison, plot_tuning
from .stimuli import WINDOWS, bars, default_frequencies, default_orientations, default_phases, gratings, window_mask

__all__ = [
    "CLASSES",
    "CONTRASTS",
    "OSI_THRESHOLD",
    "WINDOWS",
    "LayerTuning",
    "Measures",
    "Placement",
    "TuningResult",
    "UnitTuning",
    "bars",
    "c50",
    "centred_position",
    "classify",
    "default_frequencies",
    "default_orientations",
    "default_phases",
    "gratings",
    "harmonics",
    "layer_summary",
    "measure",
    "measure_layer",
    "minimal_canvas",
    "modulation_ratio",
    "orientation_selectivity",
    "place_layers",
    "plot_osi_comparison",
    "plot_tuning",
    "random_init_like",
    "read_units",
    "tuning_curves",
    "window_mask",
]
