"""What units respond to: filter plots with Gabor statistics, maximal dataset patches cropped by the
exact receptive field, and deconvnet / guided backprop projections that are right on the whole
torchvision zoo (functional, in-place and reused ReLUs).

Example:
    >>> import cnnlens, cnnlens.units as units
    >>> model = cnnlens.load_model("alexnet")
    >>> f = units.conv_filters(model)                      # first conv, pixel-space, Gabor stats
    >>> fig = units.plot_filters(f)
"""

from __future__ import annotations

from .deconv import METHODS, Projection, ReLUGradientMode, project, relu_rule
from .filters import FilterInfo, Filters, conv_filters, first_conv, input_scale, strongest
from .gabor import GaborFit, fit_gabor, separability
from .patches import (
    Patch,
    PatchResult,
    add_projections,
    crop_box,
    extract_crops,
    load_index,
    paste_box,
    prepare_image,
    receptive_field_of,
    replay,
    select_images,
    top_patches,
)
from .plots import filter_grid, plot_filters, plot_patches, plot_projection, signed_to_rgb

__all__ = [
    "METHODS",
    "FilterInfo",
    "Filters",
    "GaborFit",
    "Patch",
    "PatchResult",
    "Projection",
    "ReLUGradientMode",
    "add_projections",
    "conv_filters",
    "crop_box",
    "extract_crops",
    "filter_grid",
    "first_conv",
    "fit_gabor",
    "input_scale",
    "load_index",
    "paste_box",
    "plot_filters",
    "plot_patches",
    "plot_projection",
    "prepare_image",
    "project",
    "receptive_field_of",
    "relu_rule",
    "replay",
    "select_images",
    "separability",
    "signed_to_rgb",
    "strongest",
    "top_patches",
]
