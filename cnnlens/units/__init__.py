"""What units respond to: filter plots with Gabor statistics, maximal dataset patches cropped by the
exact receptive field, and deconvnet / guided backprop projections that are right on the whole
torchvision zoo (functional, in-place and reused ReLUs, ReLU6).

Example:
    >>> import cnnlens, torch
    >>> model = cnnlens.create_model("squeezenet1_0", seed=0)        # random init; "DEFAULT" or a file for weights
    >>> f = cnnlens.conv_filters(model)                             # first conv, pixel space, Gabor stats
    >>> p = cnnlens.project(model, torch.rand(3, 96, 96), "features.4", size=96)
    >>> sorted(p.projections), p.box is not None
    (['deconvnet', 'gradient', 'guided'], True)
"""

from __future__ import annotations

from .deconv import METHODS, Projection, ReLUGradientMode, UnitGradient, check_methods, project, relu_rule, unit_gradients
from .filters import FilterInfo, Filters, conv_filters, first_conv, input_scale
from .gabor import GaborFit, fit_gabor, separability
from .patch_results import (
    MIN_INSIDE,
    Patch,
    PatchResult,
    add_projections,
    border_mask,
    crop_box,
    extract_crops,
    load_index,
    paste_box,
    patch_images,
    replay,
)
from .patches import PatchSet, PatchSettings, check_patch_layer, top_patches, top_patches_layers
from .plots import filter_grid, plot_filters, plot_patches, plot_projection, signed_to_rgb, strongest

__all__ = [
    "METHODS",
    "FilterInfo",
    "Filters",
    "Patch",
    "PatchResult",
    "PatchSettings",
    "Projection",
    "ReLUGradientMode",
    "add_projections",
    "border_mask",
    "check_methods",
    "conv_filters",
    "crop_box",
    "fit_gabor",
    "input_scale",
    "load_index",
    "paste_box",
    "plot_filters",
    "plot_patches",
    "plot_projection",
    "project",
    "relu_rule",
    "replay",
    "separability",
    "strongest",
    "top_patches",
    "top_patches_layers",
    "unit_gradients",
]
