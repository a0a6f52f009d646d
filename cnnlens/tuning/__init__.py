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

from ..registry import random_init_like
from .curves import (
    CONTRASTS,
    Gratings,
    Grid,
    LayerTuning,
    TuningResult,
    UnitTuning,
    check_grid,
    grating_batches,
    layer_summary,
    measure_layer,
    tuning_curves,
)
from .depth import Hierarchy, LayerStats, hierarchy, tune_layers
from .engine import (
    Placement,
    centred_position,
    layer_fields,
    minimal_canvas,
    place_layers,
    read_units,
)
from .invariant import (
    FAMILIES,
    TRANSFORM_UNITS,
    Invariance,
    default_transforms,
    invariance,
    transform_views,
)
from .measures import (
    CLASSES,
    OSI_THRESHOLD,
    Measures,
    c50,
    classify,
    harmonics,
    measure,
    modulation_ratio,
    orientation_selectivity,
)
from .plots import plot_hierarchy, plot_invariance, plot_osi_comparison, plot_tuning
from ..stimuli import (
    WINDOWS,
    bars,
    default_frequencies,
    default_orientations,
    default_phases,
    gratings,
    window_mask,
)

__all__ = [
    "Gratings",
    "Hierarchy",
    "Invariance",
    "LayerStats",
    "LayerTuning",
    "TuningResult",
    "UnitTuning",
    "bars",
    "c50",
    "centred_position",
    "classify",
    "default_frequencies",
    "default_orientations",
    "default_phases",
    "default_transforms",
    "gratings",
    "harmonics",
    "hierarchy",
    "invariance",
    "layer_fields",
    "measure",
    "minimal_canvas",
    "modulation_ratio",
    "orientation_selectivity",
    "place_layers",
    "plot_hierarchy",
    "plot_invariance",
    "plot_osi_comparison",
    "plot_tuning",
    "random_init_like",
    "read_units",
    "transform_views",
    "tune_layers",
    "tuning_curves",
    "window_mask",
]
