"""Concepts: directions in a layer's activation space, found without labels (:func:`discover`, NMF
as in CRAFT) or given by example images (:func:`tcav`, Kim et al. 2018), and shown as units are
shown: top patches cut by the receptive field, a feature visualization of the direction, a heatmap
on any image, an importance for a class. See docs/concepts.md."""

from .discover import (
    METHODS,
    ConceptMaps,
    Concepts,
    ConceptSettings,
    concept_maps,
    discover,
    heatmaps,
    importance,
    sample_plan,
)
from .nmf import Factorization, nmf, project
from .tcav import STIMULI, TCAVResult, cav, stimulus_images, tcav

__all__ = [
    "METHODS",
    "STIMULI",
    "ConceptMaps",
    "ConceptSettings",
    "Concepts",
    "Factorization",
    "TCAVResult",
    "cav",
    "concept_maps",
    "discover",
    "heatmaps",
    "importance",
    "nmf",
    "project",
    "sample_plan",
    "stimulus_images",
    "tcav",
]
