"""Gatys neural style transfer and image reconstruction from activations (Mahendran & Vedaldi).

>>> from cnnlens.style import stylize, invert, gram_matrix

Loss conventions (all independent of the image size) are documented in :mod:`cnnlens.style.losses`;
per-backbone default layers and weights in :mod:`cnnlens.style.backbones`.
"""

from __future__ import annotations

from ._optim import Step, optimize_pixels
from .backbones import BACKBONES, Backbone, backbone, resolve_layer_alias
from .color import rgb_to_yiq, transfer_luminance, yiq_to_rgb
from .gram import GRAM_NORMALIZATIONS, gram_matrix
from .invert import InvertResult, invert
from .losses import content_loss, reconstruction_loss, style_layer_loss, total_variation
from .transfer import StyleObjective, StyleResult, stylize

__all__ = [
    "BACKBONES",
    "GRAM_NORMALIZATIONS",
    "Backbone",
    "InvertResult",
    "Step",
    "StyleObjective",
    "StyleResult",
    "backbone",
    "content_loss",
    "gram_matrix",
    "invert",
    "optimize_pixels",
    "reconstruction_loss",
    "resolve_layer_alias",
    "rgb_to_yiq",
    "stylize",
    "style_layer_loss",
    "total_variation",
    "transfer_luminance",
    "yiq_to_rgb",
]
