"""cnnlens: look inside convolutional neural networks.

The public API is flat (``cnnlens.report``, ``cnnlens.load_model``, ``cnnlens.capture`` ...) and
imported lazily, so that ``cnnlens --help`` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("cnnlens")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0.0.0"

# public name -> module that defines it
_EXPORTS = {
    "CnnlensError": "errors",
    "capture": "hooks",
    "eval_mode": "hooks",
    "forward_until": "hooks",
    "no_inplace": "hooks",
    "preserved_state": "hooks",
    "get_layer": "layers",
    "list_layers": "layers",
    "Normalized": "models",
    "Preprocessing": "models",
    "load_model": "models",
    "model_names": "models",
    "preprocessing": "models",
    "GLOBAL": "receptive_field",
    "ReceptiveField": "receptive_field",
    "receptive_fields": "receptive_field",
    "Report": "summary",
    "report": "summary",
    "load_image": "images",
    "save_image": "images",
    # what units see
    "conv_filters": "units",
    "top_patches": "units",
    "project": "units",
    # feature visualization and DeepDream
    "render": "featvis",
    "dream": "featvis",
    # style transfer and inversion
    "stylize": "style",
    "invert": "style",
    # adversarial examples
    "attack": "attacks",
    "robustness": "attacks",
}

# subpackages, one per capability, reachable as attributes (``cnnlens.units.fit_gabor``)
_SUBPACKAGES = {"attacks", "featvis", "hooks", "layers", "models", "receptive_field", "style", "summary", "teaching", "units"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cnnlens' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | _SUBPACKAGES)


if TYPE_CHECKING:  # pragma: no cover
    from . import attacks, featvis, style, units
    from .attacks import attack, robustness
    from .errors import CnnlensError
    from .featvis import dream, render
    from .hooks import capture, eval_mode, forward_until, no_inplace, preserved_state
    from .images import load_image, save_image
    from .layers import get_layer, list_layers
    from .models import Normalized, Preprocessing, load_model, model_names, preprocessing
    from .receptive_field import GLOBAL, ReceptiveField, receptive_fields
    from .style import invert, stylize
    from .summary import Report, report
    from .units import conv_filters, project, top_patches
