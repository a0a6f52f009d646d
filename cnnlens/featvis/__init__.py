"""Gradient-ascent feature visualization (Olah et al. 2017) and DeepDream (Mordvintsev et al. 2015).

>>> from cnnlens.featvis import objectives, render, dream
"""

from __future__ import annotations

from . import objectives, param, transforms
from .dream import DreamResult, OctaveStat, dream
from .objectives import Objective
from .render import RenderResult, activations, high_frequency_energy, image_grid, redirected_relu, render

__all__ = [
    "DreamResult",
    "Objective",
    "OctaveStat",
    "RenderResult",
    "activations",
    "dream",
    "high_frequency_energy",
    "image_grid",
    "objectives",
    "param",
    "redirected_relu",
    "render",
    "transforms",
]
