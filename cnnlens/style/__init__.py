"""Gatys neural style transfer and image reconstruction from activations (Mahendran & Vedaldi).

>>> from cnnlens.style import stylize, invert, gram_matrix

Both take a model (any CNN, usually from :func:`cnnlens.create_model`) and images as pixels in
[0, 1], and return a :class:`cnnlens.results.Result`. Default layers come from the model registry
(:func:`cnnlens.default_layers`); per-backbone loss weights and VGG layer aliases are in
:mod:`cnnlens.style.backbones`; loss conventions (all independent of the image size) in
:mod:`cnnlens.style.losses`.
"""

from __future__ import annotations

from .backbones import BACKBONES, Backbone, backbone, resolve_layer_alias
from .color import rgb_to_yiq, transfer_luminance, yiq_to_rgb
from .gram import GRAM_NORMALIZATIONS, gram_matrix
from .invert import INVERT_DEFAULTS, TV_PER_STRIDE, InvertResult, InvertSettings, check_invert_settings, correlation, invert, invert_defaults, layer_stride
from .losses import content_loss, reconstruction_loss, style_layer_loss, total_variation
from .optim import MAX_SIZE, Step, check_size, optimize_pixels
from .transfer import StyleObjective, StyleResult, StyleSettings, check_style_settings, stylize

__all__ = [
    "BACKBONES",
    "INVERT_DEFAULTS",
    "InvertResult",
    "InvertSettings",
    "StyleObjective",
    "StyleResult",
    "StyleSettings",
    "backbone",
    "check_invert_settings",
    "check_size",
    "check_style_settings",
    "content_loss",
    "correlation",
    "gram_matrix",
    "invert",
    "invert_defaults",
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
