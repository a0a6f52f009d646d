"""cnnlens: look inside convolutional neural networks.

The public API is flat (``cnnlens.report``, ``cnnlens.create_model``, ``cnnlens.capture`` ...) and
imported lazily, so that ``cnnlens --help`` does not pay for importing torch. Every submodule is
reachable as an attribute after ``import cnnlens`` (``cnnlens.images``, ``cnnlens.units.gabor``).

The shared ground of every capability:

- one model registry: :func:`list_models`, :func:`create_model`, :func:`model_info`;
- one pixel convention: images in and out as pixels in [0, 1]; :class:`Preprocessing` from the registry;
- one result protocol: :class:`Result` (``to_dict``, ``figure``, ``save``, notebook display);
- one unit address: ``LAYER``, ``LAYER:CHANNEL``, ``LAYER:CHANNEL@Y,X``, ``logits:CLASS`` (:func:`parse_unit`).
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING, Any

# public name -> module that defines it
_EXPORTS = {
    "CnnlensError": "errors",
    # the registry
    "ModelInfo": "registry",
    "create_model": "registry",
    "default_layers": "registry",
    "list_models": "registry",
    "model_info": "registry",
    # pixels, results, units
    "Normalized": "pixelnet",
    "Preprocessing": "pixels",
    "as_pixels": "pixels",
    "Result": "results",
    "Unit": "address",
    "parse_unit": "address",
    "resolve_unit": "address",
    # the hooks core
    "capture": "hooks",
    "eval_mode": "hooks",
    "forward_until": "hooks",
    "no_inplace": "hooks",
    "preserved_state": "hooks",
    "get_layer": "layers",
    "list_layers": "layers",
    # reports
    "GLOBAL": "receptive_field",
    "ReceptiveField": "receptive_field",
    "Report": "reports",
    "receptive_fields": "reports",
    "report": "reports",
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
    # attribution maps
    "attribute": "attribution",
    "concept_relevance": "attribution",
    # concepts: discovered (NMF) and tested (TCAV)
    "tcav": "concepts",
    # Hubel & Wiesel on a network
    "tuning_curves": "tuning",
    "hierarchy": "tuning",
    "invariance": "tuning",
    # representations by depth
    "cka": "representations",
    "similarity": "representations",
    "probe": "representations",
    "embed": "representations",
    "random_init_like": "registry",
    # the microscope site
    "build_site": "microscope",
}

__all__ = sorted(_EXPORTS)


@functools.cache
def _submodules() -> frozenset[str]:
    """Every public submodule and subpackage (``cnnlens.images``, ``cnnlens.units`` ...), except the CLI
    (listed once: a listing of the package folder costs ~0.7 ms)."""
    import pkgutil

    return frozenset(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_") and m.name != "cli")


def _version() -> str:
    """The installed version, read on first use: ``importlib.metadata`` costs ~30 ms, most of ``import cnnlens``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cnnlens")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree that is not installed
        return "0.0.0"


def __getattr__(name: str) -> Any:
    """Resolve a name on first use (PEP 562) and keep it in the module, so later uses cost nothing."""
    if name == "__version__":
        value: Any = _version()
    elif name in _submodules():  # every submodule is reachable after `import cnnlens`
        value = importlib.import_module(f".{name}", __name__)
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    else:
        raise AttributeError(f"module 'cnnlens' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | _submodules())


if TYPE_CHECKING:  # pragma: no cover
    from . import (
        address,
        attacks,
        checks,
        errors,
        featvis,
        folders,
        geometry,
        hooks,
        images,
        layers,
        pixelnet,
        pixels,
        progress,
        receptive_field,
        registry,
        reports,
        results,
        speed,
        style,
        testing,
        units,
        zoo,
    )
    from .address import Unit, parse_unit, resolve_unit
    from .attacks import attack, robustness
    from .attribution import attribute
    from .errors import CnnlensError
    from .featvis import dream, render
    from .hooks import capture, eval_mode, forward_until, no_inplace, preserved_state
    from .images import load_image, save_image
    from .layers import get_layer, list_layers
    from .microscope import build_site
    from .pixelnet import Normalized
    from .pixels import Preprocessing, as_pixels
    from .receptive_field import GLOBAL, ReceptiveField
    from .registry import ModelInfo, create_model, default_layers, list_models, model_info
    from .reports import Report, receptive_fields, report
    from .results import Result
    from .style import invert, stylize
    from .tuning import hierarchy, invariance, tuning_curves
    from .units import conv_filters, project, top_patches
