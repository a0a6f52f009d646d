"""Gradient-ascent feature visualization (Olah et al. 2017) and DeepDream (Mordvintsev et al. 2015).

>>> from cnnlens.featvis import objectives, render, dream
"""

from __future__ import annotations

from . import objectives, param, transforms
from .dream import DreamResult, DreamSettings, OctaveStat, dream
from .objectives import Objective
from .render import Recipe, RenderResult, activations, high_frequency_energy, image_grid, redirected_relu, render

__all__ = [
    "DreamResult",
    "DreamSettings",
    "OctaveStat",
    "Recipe",
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
