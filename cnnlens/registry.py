"""The one model registry of cnnlens, in the manner of timm: :func:`list_models` and :func:`create_model`.

Every command and API function that takes a model name goes through here. A name is one of

- a torchvision classification model (``vgg16``, ``resnet50`` ...), pretrained weights through
  torchvision's weights API and cache;
- a teaching model of :mod:`cnnlens.zoo` (``alexnet-paper``, ``lenet5``, ``mlp-mnist``,
  ``three-3x3``, ``one-7x7``) or the MNIST CNN of the robustness tutorials (``mnist-cnn``);
- ``path/to/file.py:ClassName``: a class built with no arguments; it may set the class attributes
  ``input_size = (C, H, W)`` (then taken as the only size it accepts, unless ``min_size = (H, W)`` says
  less), ``mean``, ``std`` and ``categories``;
- ``timm/NAME`` when the optional extra ``cnnlens[timm]`` is installed.

Each entry knows its builder, its weights choices, its :class:`~cnnlens.pixels.Preprocessing`
(resize, crop, mean, std, colour or grey, minimum size), its class names and the default layers of
each capability. A model made by :func:`create_model` carries a :class:`ModelInfo` (``model_info``),
so that every result can say which model and weights ("random init") it came from.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import importlib.util
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .checks import check_seed
from .errors import CnnlensError, did_you_mean
from .layers import model_device, model_dtype
from .pixels import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from .seeds import seeded

__all__ = [
    "ModelEntry",
    "ModelInfo",
    "create_model",
    "default_layers",
    "empty_weights",
    "get_entry",
    "list_models",
    "info_label",
    "model_info",
    "random_init_like",
]

SOURCES = ("torchvision", "teaching", "mnist", "file", "timm")
RANDOM_INIT = "random init"

# default layers of each capability, for the models where a good choice is known; others get a rule
# (see :func:`default_layers`). dream: the layers DeepDream amplifies; content/style/invert: style
# transfer and inversion taps (module outputs; on a ReLU module post-ReLU).
_LAYERS: dict[str, dict[str, tuple[str, ...]]] = {
    "googlenet": {"dream": ("inception4c",)},
    "inception_v3": {"dream": ("Mixed_6b",)},
    "squeezenet1_0": {
        "dream": ("features.9",),
        "content": ("features.8",),
        "style": ("features.1", "features.4", "features.7", "features.9", "features.12"),
        "invert": ("features.1", "features.4", "features.7", "features.10", "features.12"),
        # pool1, the eight fire modules, the output
        "representations": ("features.2", "features.3", "features.4", "features.5", "features.7", "features.8", "features.9",
                            "features.10", "features.12", "logits"),
    },
    "squeezenet1_1": {"dream": ("features.9",)},
    "mobilenet_v2": {
        "dream": ("features.10",),
        "content": ("features.7.conv.0",),
        "style": ("features.0", "features.2.conv.0", "features.4.conv.0", "features.7.conv.0", "features.14.conv.0"),
        "invert": ("features.0", "features.2.conv.0", "features.4.conv.0", "features.7.conv.0", "features.14.conv.0"),
    },
    "vgg16": {
        "dream": ("features.22",),
        "content": ("features.22",),  # relu4_2
        "style": ("features.1", "features.6", "features.11", "features.18", "features.25"),
        "invert": ("features.3", "features.8", "features.15", "features.22", "features.29"),
    },
    "vgg19": {
        "dream": ("features.25",),
        "content": ("features.22",),  # relu4_2
        "style": ("features.1", "features.6", "features.11", "features.20", "features.29"),
        "invert": ("features.3", "features.8", "features.17", "features.26", "features.35"),
    },
    "resnet18": {"dream": ("layer3",)},
    "resnet34": {"dream": ("layer3",)},
    "resnet50": {"dream": ("layer3",)},
    "alexnet": {"dream": ("features.9",)},
}
CAPABILITIES = ("dream", "content", "style", "invert", "first_conv", "last_spatial", "representations")


@dataclass(frozen=True)
class ModelInfo:
    """What a model made by :func:`create_model` is: name, source, weights and how to feed it.

    ``weights`` is a label for figures and JSON: ``"random init"`` (with ``seed`` when one was
    given), a torchvision enum member (``"IMAGENET1K_V1"``), ``"pretrained"`` (timm) or a file name.
    """

    name: str
    source: str
    weights: str
    preprocessing: Preprocessing
    categories: tuple[str, ...] | None = field(default=None, repr=False)
    seed: int | None = None
    pretrained: bool = False

    @property
    def random_init(self) -> bool:
        return self.weights == RANDOM_INIT

    @property
    def weights_label(self) -> str:
        """``"random init, seed 0"``, ``"IMAGENET1K_V1"``, ``"squeezenet.pth"``."""
        if self.random_init and self.seed is not None:
            return f"{RANDOM_INIT}, seed {self.seed}"
        return self.weights

    @property
    def label(self) -> str:
        """``"resnet18 (random init, seed 0)"``: for figure titles."""
        return f"{self.name} ({self.weights_label})"

    def category(self, index: int) -> str:
        """The class name of ``index`` (``"class 7"`` when the model has none)."""
        if self.categories and 0 <= index < len(self.categories):
            return self.categories[index]
        return f"class {index}"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.name, "source": self.source, "weights": self.weights_label, "random_init": self.random_init}


@dataclass(frozen=True)
class ModelEntry:
    """One registered name: how to build it, its weights choices, preprocessing and defaults."""

    name: str
    source: str
    description: str
    build: Callable[[], nn.Module] = field(repr=False)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    categories: tuple[str, ...] | None = field(default=None, repr=False)
    pretrained: bool = False  # downloadable default weights exist
    weights_choices: tuple[str, ...] = ()  # names -w accepts besides none and a file
    kind: str = "classifier"  # classifier (image -> logits), features (image -> maps), tensor (not an image input)

    @property
    def input_size(self) -> tuple[int, int, int]:
        return self.preprocessing.input_size

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "description": self.description,
            "input_size": list(self.input_size),
            "min_size": list(self.preprocessing.min_size),
            "pretrained": self.pretrained,
            "weights": list(self.weights_choices),
            "kind": self.kind,
            "num_classes": len(self.categories) if self.categories else None,
        }


# -- sources ---------------------------------------------------------------------------------------


def _torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _weights_enum(name: str) -> Any | None:
    import torchvision

    try:
        return torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        return None


def _builder_kwargs(name: str) -> dict[str, Any]:
    # googlenet / inception_v3 warn (and run a slow scipy-based init) unless told; keep their defaults explicit
    return {"init_weights": True} if name in ("googlenet", "inception_v3") else {}


def _torchvision_preprocessing(member: Any) -> Preprocessing:
    t = member.transforms()
    return Preprocessing(
        mean=tuple(float(v) for v in t.mean),
        std=tuple(float(v) for v in t.std),
        resize_size=int(t.resize_size[0]),
        crop_size=int(t.crop_size[0]),
        channels=3,
        min_size=tuple(member.meta.get("min_size", (1, 1))),
        source=f"{type(member).__name__}.{member.name}",
    )


def _torchvision_entry(name: str) -> ModelEntry:
    import torchvision

    enum = _weights_enum(name)
    default = enum.DEFAULT if enum is not None else None
    prep = _torchvision_preprocessing(default) if default is not None else Preprocessing()
    categories = tuple(default.meta.get("categories") or ()) or None if default is not None else None
    choices = ("DEFAULT", *(m.name for m in enum)) if enum is not None else ()

    def build() -> nn.Module:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torchvision.models.get_model(name, weights=None, **_builder_kwargs(name))

    return ModelEntry(name, "torchvision", f"torchvision {name}", build, prep, categories, default is not None, choices)


def _grey(size: int) -> Preprocessing:
    return Preprocessing(mean=(0.0,), std=(1.0,), resize_size=size, crop_size=size, channels=1, min_size=(size, size), source="pixels in [0, 1], no normalization")


def _builtin_entries() -> dict[str, ModelEntry]:
    from . import zoo

    digits = tuple(str(d) for d in range(10))
    alex = Preprocessing(resize_size=227, crop_size=227, min_size=(227, 227), source="ImageNet statistics")
    tensor64 = Preprocessing(mean=(0.0,) * 64, std=(1.0,) * 64, resize_size=None, crop_size=56, channels=64, source="64-channel feature maps")
    entries = [
        ModelEntry("alexnet-paper", "teaching", "AlexNet as in Krizhevsky et al. 2012 (227x227, two-GPU groups)", zoo.alexnet_paper, alex),
        ModelEntry("lenet5", "teaching", "LeNet-5 (LeCun et al. 1998) on 32x32 grey digits", zoo.lenet5, _grey(32), digits),
        ModelEntry("mlp-mnist", "teaching", "784-512-512-10 perceptron on 28x28 grey digits", zoo.mlp_mnist, _grey(28), digits),
        ModelEntry("three-3x3", "teaching", "three stacked 3x3 convs on 64 channels (7x7 field, 27 C^2 weights)", zoo.three_3x3, tensor64, kind="tensor"),
        ModelEntry("one-7x7", "teaching", "one 7x7 conv on 64 channels (7x7 field, 49 C^2 weights)", zoo.one_7x7, tensor64, kind="tensor"),
        ModelEntry("mnist-cnn", "mnist", "the MNIST CNN of advertorch's robustness tutorial (conv 32, conv 64, fc 200)", zoo.MnistCNN, _grey(28), digits),
    ]
    return {e.name: e for e in entries}


# accepted but not listed: older names
_ALIASES = {"lenet5-mnist": "mnist-cnn"}


def _timm() -> Any | None:
    try:
        import timm
    except ImportError:
        return None
    return timm


def _timm_entry(name: str) -> ModelEntry:
    timm = _timm()
    if timm is None:
        raise CnnlensError(f"{name}: timm models need the optional extra: pip install 'cnnlens[timm]'")
    arch = name.removeprefix("timm/")
    if arch not in set(_timm_names()):
        raise CnnlensError(f"unknown timm model {arch!r}{did_you_mean(arch, _timm_names())}; `cnnlens models --source timm` lists them")
    cfg = timm.get_pretrained_cfg(arch)
    cfg = cfg.to_dict() if cfg is not None else {}
    c, h, w = cfg.get("input_size", (3, 224, 224))
    crop_pct = float(cfg.get("crop_pct", 0.875) or 0.875)
    prep = Preprocessing(
        mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
        std=tuple(cfg.get("std", IMAGENET_STD)),
        resize_size=int(round(h / crop_pct)),
        crop_size=int(h),
        channels=int(c),
        min_size=(int(h), int(w)) if cfg.get("fixed_input_size") else (1, 1),
        source=f"timm pretrained_cfg of {arch}",
    )
    pretrained = arch in _timm_pretrained()
    categories = _imagenet_categories() if cfg.get("num_classes", 1000) == 1000 else None

    def build() -> nn.Module:
        return timm.create_model(arch, pretrained=False)

    return ModelEntry(name, "timm", f"timm {arch}", build, prep, categories, pretrained, ("DEFAULT",) if pretrained else ())


@lru_cache(maxsize=1)
def _timm_names() -> tuple[str, ...]:
    """timm's architecture names (``timm.list_models()``, which sorts ~1,400 names per call: cached)."""
    timm = _timm()
    return tuple(timm.list_models()) if timm is not None else ()


@lru_cache(maxsize=1)
def _timm_pretrained() -> frozenset[str]:
    timm = _timm()
    if timm is None:
        return frozenset()
    return frozenset(n.split(".")[0] for n in timm.list_pretrained())


@lru_cache(maxsize=1)
def _imagenet_categories() -> tuple[str, ...]:
    import torchvision

    return tuple(torchvision.models.ResNet18_Weights.DEFAULT.meta["categories"])


def _is_file_spec(name: str) -> bool:
    file, sep, cls = name.rpartition(":")
    return bool(sep) and file.endswith(".py") and bool(cls)


def _file_entry(spec: str) -> ModelEntry:
    cls = _load_class(spec)
    c, h, w = tuple(getattr(cls, "input_size", (3, 224, 224)))
    mean = tuple(getattr(cls, "mean", (0.0,) * c))
    std = tuple(getattr(cls, "std", (1.0,) * c))
    prep = Preprocessing(mean=mean, std=std, resize_size=int(min(h, w)), crop_size=int(h), channels=int(c), min_size=tuple(getattr(cls, "min_size", (h, w) if hasattr(cls, "input_size") else (1, 1))), source=f"{cls.__name__} class attributes")
    categories = getattr(cls, "categories", None)

    def build() -> nn.Module:
        try:
            return cls()
        except Exception as exc:
            raise CnnlensError(f"cannot build {spec}: {type(exc).__name__}: {exc}".splitlines()[0]) from None

    return ModelEntry(spec, "file", (cls.__doc__ or cls.__name__).strip().splitlines()[0], build, prep, tuple(categories) if categories else None)


def _load_class(spec: str) -> type[nn.Module]:
    file, _, cls_name = spec.rpartition(":")
    path = Path(file).expanduser()
    if not path.is_file():
        raise CnnlensError(f"model file not found: {path}")
    module_name = f"_cnnlens_user_{abs(hash(str(path.resolve())))}"
    try:
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        assert loader_spec is not None and loader_spec.loader is not None
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        loader_spec.loader.exec_module(module)
    except Exception as exc:
        raise CnnlensError(f"cannot import {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        names = [n for n, v in vars(module).items() if isinstance(v, type) and issubclass(v, nn.Module)]
        raise CnnlensError(f"{path} has no nn.Module class {cls_name!r}{did_you_mean(cls_name, names)}")
    return cls


# -- the registry ----------------------------------------------------------------------------------


def list_models(pattern: str | None = None, *, source: str | None = None, pretrained: bool | None = None) -> list[str]:
    """Registered names matching ``pattern`` (shell wildcards, ``"resnet*"``), optionally of one ``source``.

    timm's models are listed (as ``timm/NAME``) only when timm is installed. ``file.py:Class`` names
    are accepted everywhere but cannot be listed.
    """
    if source is not None and source not in SOURCES:
        raise CnnlensError(f"source {source!r} unknown{did_you_mean(str(source), SOURCES)}; one of {', '.join(SOURCES)}", param="source")
    names: list[str] = []
    if source in (None, "torchvision"):
        names += _torchvision_names()
    if source in (None, "teaching", "mnist"):
        names += [n for n, e in _builtin_entries().items() if source in (None, e.source)]
    if source in (None, "timm") and _timm() is not None:
        names += [f"timm/{n}" for n in _timm_names()]
    if pattern:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    if pretrained is not None:
        names = [n for n in names if get_entry(n).pretrained == pretrained]
    return names


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name`` (see the module docstring for the kinds of names).

    Raises:
        CnnlensError: unknown name, with the closest names.
    """
    if not isinstance(name, str) or not name:
        raise CnnlensError(f"model must be a model name, not {name!r}", param="model")
    name = _ALIASES.get(name, name)
    return _entry(name)


@lru_cache(maxsize=256)
def _entry(name: str) -> ModelEntry:
    builtin = _builtin_entries()
    if name in builtin:
        return builtin[name]
    if name.startswith("timm/"):
        return _timm_entry(name)
    if _is_file_spec(name):
        return _file_entry(name)
    if name in set(_torchvision_names()):
        return _torchvision_entry(name)
    known = _torchvision_names() + list(builtin)
    hint = "; `cnnlens models` lists them, and path/to/file.py:ClassName loads your own"
    if ":" in name:
        hint = "; a model file is given as path/to/file.py:ClassName"
    raise CnnlensError(f"unknown model {name!r}{did_you_mean(name, known)}{hint}", param="model")


def create_model(
    name: str,
    weights: Any = None,
    *,
    device: str | torch.device | None = None,
    seed: int | None = None,
) -> nn.Module:
    """Build registered model ``name`` in eval mode.

    Args:
        name: any name :func:`list_models` gives, ``path/to/file.py:ClassName`` or ``timm/NAME``.
        weights: ``None`` or ``"none"``: random initialisation. ``"DEFAULT"``: the pretrained default
            (torchvision's weights API and cache; timm's hub cache). A torchvision enum name
            (``"IMAGENET1K_V1"``, ``"VGG16_Weights.IMAGENET1K_V1"``) or member. A path to a state dict
            or checkpoint file.
        device: where to put the model.
        seed: seeds the random initialisation (the global RNG is left as it was); ``None`` draws from it.

    Returns:
        The model, with a :class:`ModelInfo` that :func:`model_info` reads.

    Raises:
        CnnlensError: unknown name or weights, weights missing offline, or a weights file that does not fit.
    """
    entry = get_entry(name)
    choice = _parse_weights(entry, weights)
    with seeded(seed):
        if isinstance(choice, Path) or choice is None:
            model = entry.build()
        else:
            model = _load_pretrained(entry, choice)
    if isinstance(choice, Path):
        load_state_file(model, choice, name=entry.name)
    label = RANDOM_INIT if choice is None else (choice.name if isinstance(choice, Path) else _weights_label(choice))
    prep = entry.preprocessing
    if entry.source == "torchvision" and choice is not None and not isinstance(choice, Path):
        prep = _torchvision_preprocessing(choice)
    model.eval()
    if device is not None:
        model.to(device)
    info = ModelInfo(entry.name, entry.source, label, prep, entry.categories, seed if choice is None else None, choice is not None)
    object.__setattr__(model, "cnnlens_info", info)
    return model


def _weights_label(choice: Any) -> str:
    return "pretrained" if choice == "timm-pretrained" else str(getattr(choice, "name", choice))


def model_info(model: nn.Module, *, preprocessing: Preprocessing | None = None) -> ModelInfo:
    """The :class:`ModelInfo` of a model made by :func:`create_model`; for any other ``nn.Module`` a
    description with ImageNet statistics (or the ``preprocessing`` given) and unknown weights."""
    info = getattr(model, "cnnlens_info", None)
    if isinstance(info, ModelInfo):
        return info if preprocessing is None else replace(info, preprocessing=preprocessing)
    inner = getattr(model, "model", None)
    if isinstance(inner, nn.Module) and isinstance(getattr(inner, "cnnlens_info", None), ModelInfo):
        return model_info(inner, preprocessing=preprocessing)
    return ModelInfo(type(model).__name__, "module", "weights as given", preprocessing or Preprocessing())


def info_label(info: ModelInfo | dict[str, Any]) -> str:
    """``"squeezenet1_0 (random init, seed 0)"`` from a :class:`ModelInfo` or its ``to_dict()``."""
    if isinstance(info, ModelInfo):
        return info.label
    return f"{info.get('model') or 'model'} ({info.get('weights') or 'weights unknown'})"


def known_layers(name: str) -> dict[str, tuple[str, ...]]:
    """The hand-picked default layers registered for model ``name``, by capability (may be empty)."""
    return dict(_LAYERS.get(name, {}))


def default_layers(model: nn.Module, capability: str) -> list[str]:
    """The layers a capability uses by default on ``model`` (``"dream"``, ``"content"``, ``"style"``,
    ``"invert"``, ``"first_conv"``, ``"last_spatial"``, ``"representations"``).

    Known models take a hand-picked table (DeepDream's layers, Gatys' VGG layers); any other model a
    rule: dream, the convolution two thirds of the way down; first_conv, the first ``Conv2d``;
    last_spatial, the last module whose output still has a spatial extent larger than 1x1; style and
    invert, up to five convolutions spread evenly from the first to the last; content, the
    convolution half way down; representations, ten stages spread evenly from the first module
    to the output (``logits``).
    """
    if capability not in CAPABILITIES:
        raise CnnlensError(f"unknown capability {capability!r}{did_you_mean(capability, CAPABILITIES)}", param="capability")
    info = model_info(model)
    table = _LAYERS.get(info.name, {})
    if capability in table:
        return list(table[capability])
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if capability in ("first_conv", "dream") and not convs:
        raise CnnlensError(f"{info.name} has no Conv2d layer; pass a layer (`cnnlens layers {info.name}`)", param="layer")
    if capability == "first_conv":
        return [convs[0]]
    if capability == "dream":
        return [convs[(2 * len(convs)) // 3]]
    if capability == "last_spatial":
        return [_last_spatial(model, info.preprocessing)]
    if capability == "representations":
        return _depth_layers(model, info.preprocessing)
    if capability in ("content", "style", "invert") and convs:
        if capability == "content":
            return [convs[len(convs) // 2]]
        return [convs[i] for i in sorted({round(k * (len(convs) - 1) / 4) for k in range(5)})]
    raise CnnlensError(f"no default {capability} layers for {info.name}; pass them (`cnnlens layers {info.name}`)", param="layer")


# modules whose output is another module's output seen again (a representation by depth skips them)
_NOT_A_STAGE = (nn.Dropout, nn.Identity, nn.modules.batchnorm._BatchNorm, nn.ReLU, nn.Hardtanh, nn.GELU, nn.SiLU, nn.Hardswish, nn.Tanh,
                nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.Mish,
                nn.Flatten)


def _depth_layers(model: nn.Module, prep: Preprocessing, count: int = 10) -> list[str]:
    """Up to ``count`` stages spread evenly from the first to the model's output (``logits``): the
    children of the model's top-level ``Sequential``/``ModuleList`` containers and its other
    top-level modules that a forward pass calls, in the order it calls them, without dropout,
    identities, BatchNorm, activations and flattening (whose outputs repeat the stage before them);
    the last stage is the output."""
    from .hooks import eval_mode, hooked

    stages: dict[str, nn.Module] = {}
    for name, child in model.named_children():
        parts = list(child.named_children()) if isinstance(child, (nn.Sequential, nn.ModuleList)) else [("", child)]
        for sub, module in parts:
            if not isinstance(module, _NOT_A_STAGE):
                stages[f"{name}.{sub}" if sub else name] = module
    order: list[str] = []

    def hook(name: str) -> Any:
        def record(module: nn.Module, args: Any, output: Any) -> None:
            if name not in order and isinstance(output, torch.Tensor):
                order.append(name)

        return record

    c, h, w = prep.input_size
    x = torch.zeros(1, c, h, w, device=model_device(model), dtype=model_dtype(model))
    with hooked([(m, hook(n)) for n, m in stages.items()]), torch.no_grad(), eval_mode(model):
        model(x)
    if len(order) < count - 1:
        return order[:-1] + ["logits"] if order else ["logits"]
    picks = [order[i] for i in sorted({round(k * (len(order) - 1) / (count - 2)) for k in range(count - 1)})]
    return picks[:-1] + ["logits"]


def _last_spatial(model: nn.Module, prep: Preprocessing) -> str:
    """The module that last produced an output with a spatial extent (in execution order: a ResNet's
    ``layer4``, not the ``bn2`` inside it; adaptive pooling to a fixed size is not counted, so VGG16's
    is ``features``, not the ``avgpool`` after it)."""
    from .hooks import eval_mode, hooked

    order: list[str] = []

    def hook(name: str) -> Any:
        def record(module: nn.Module, args: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[-1] * output.shape[-2] > 1:
                order.append(name)

        return record

    c, h, w = prep.input_size
    x = torch.zeros(1, c, h, w, device=model_device(model), dtype=model_dtype(model))
    # an adaptive pool to a fixed size (vgg's and alexnet's avgpool) resamples the map before it, it adds no spatial layer
    skip = (nn.Dropout, nn.Identity, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    with hooked([(m, hook(n)) for n, m in model.named_modules() if n and not isinstance(m, skip)]), torch.no_grad(), eval_mode(model):
        model(x)
    if not order:
        raise CnnlensError(f"{model_info(model).name} has no layer with a spatial output", param="layer")
    return order[-1]


# -- weights -----------------------------------------------------------------------------------------


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.endswith((".pt", ".pth", ".th", ".bin", ".ckpt", ".tar", ".safetensors")) or Path(text).expanduser().is_file()


def _parse_weights(entry: ModelEntry, weights: Any) -> Any:
    """``None`` (random init), a ``Path``, a torchvision enum member, or ``"timm-pretrained"``."""
    if weights is None or (isinstance(weights, str) and weights.strip().lower() in ("none", "random", "")):
        return None
    if isinstance(weights, Path) or (isinstance(weights, str) and _looks_like_path(weights)):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise CnnlensError(f"weights file not found: {path}", param="weights")
        return path
    if entry.source == "torchvision":
        enum = _weights_enum(entry.name)
        if enum is not None and not isinstance(weights, str) and isinstance(weights, enum):
            return weights
        if not isinstance(weights, str):
            raise CnnlensError(f"weights must be a name, a path or a {entry.name} weights enum, not {type(weights).__name__}", param="weights")
        if enum is None:
            raise CnnlensError(f"weights: torchvision has no pretrained weights for {entry.name}; pass a file path or none", param="weights")
        prefix, _, key = weights.rpartition(".")
        if prefix and prefix != enum.__name__:
            raise CnnlensError(
                f"weights {weights!r} are not {entry.name}'s ({prefix} belongs to another model); use {enum.__name__}.DEFAULT, "
                f"{', '.join(m.name for m in enum)}, none or a file",
                param="weights",
            )
        try:
            return enum.DEFAULT if key.upper() == "DEFAULT" else enum[key]
        except KeyError:
            options = ["DEFAULT"] + [m.name for m in enum]
            raise CnnlensError(f"weights {weights!r} unknown for {entry.name}{did_you_mean(key, options)}; one of {', '.join(options)}, none or a file", param="weights") from None
    if isinstance(weights, str) and weights.upper() == "DEFAULT":
        if entry.source == "timm" and entry.pretrained:
            return "timm-pretrained"
        raise CnnlensError(
            f"weights: {entry.name} has no downloadable pretrained weights; pass a weights file, or none for a random init",
            param="weights",
        )
    raise CnnlensError(f"weights {weights!r} unknown for {entry.name}: give DEFAULT, none or a weights file", param="weights")


def hub_checkpoint_path(weights: Any) -> Path:
    """Where torch hub caches the file of a torchvision weights enum member."""
    return Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]


def _load_pretrained(entry: ModelEntry, choice: Any) -> nn.Module:
    if choice == "timm-pretrained":
        return _timm_pretrained_model(entry.name)
    import torchvision

    cached = hub_checkpoint_path(choice)
    if not cached.is_file():
        # fetch into torch hub's cache ourselves: torch.hub would first print "Downloading: ..." also
        # when there is no network, and the user should see one line only
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(choice.url, str(cached), progress=True)
        except Exception as exc:  # URLError, socket errors, HTTP errors: all mean "not here"
            raise CnnlensError(
                f"weights {choice} are not cached and could not be downloaded ({type(exc).__name__}); "
                f"put {cached.name} in {cached.parent} or pass a weights file",
                param="weights",
            ) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torchvision.models.get_model(entry.name, weights=choice)


def _timm_pretrained_model(name: str) -> nn.Module:
    """timm's pretrained ``name`` (``timm/ARCH``): from the local Hugging Face cache without a request
    when it is there, else downloaded -- after one request without retries has shown that the hub
    answers (offline, huggingface_hub retries each file for about half a minute before it gives up)."""
    timm = _timm()
    arch = name.removeprefix("timm/")
    try:
        with _hub_cache_only():
            return timm.create_model(arch, pretrained=True)
    except Exception:  # not in the cache: download below
        pass
    cfg = timm.get_pretrained_cfg(arch)
    why = _hub_unreachable(cfg.hf_hub_id) if cfg is not None and cfg.hf_hub_id else None
    if why is None:
        try:
            return timm.create_model(arch, pretrained=True)
        except Exception as exc:  # no network, no cache
            why = type(exc).__name__
    raise CnnlensError(
        f"weights: timm's pretrained {name} are not cached and could not be downloaded ({why}); pass a weights file or none",
        param="weights",
    )


@contextlib.contextmanager
def _hub_cache_only() -> Iterator[None]:
    """Inside the block the Hugging Face hub is in its offline mode: files come from the local cache
    only, no request is made (the user's own setting is restored after)."""
    try:
        from huggingface_hub import constants
    except ImportError:  # timm without huggingface_hub loads from URLs
        yield
        return
    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def _hub_unreachable(repo_id: str) -> str | None:
    """Why the Hugging Face hub cannot serve ``repo_id`` now (``"HF_HUB_OFFLINE is set"``, ``"ConnectError"``),
    found with one request and no retries; ``None`` when it answers (a missing file is an answer)."""
    try:
        import huggingface_hub
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError:
        return None
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    try:
        url = huggingface_hub.hf_hub_url(repo_id.split("@")[0], "config.json")
        huggingface_hub.get_hf_file_metadata(url, timeout=huggingface_hub.constants.HF_HUB_ETAG_TIMEOUT)
    except HfHubHTTPError:  # the server answered (404, gated): the download can be tried
        return None
    except Exception as exc:  # DNS, refused, timeout, offline mode
        return type(exc).__name__
    return None


def load_state_file(model: nn.Module, path: Path, *, name: str | None = None) -> None:
    """Load a state dict (or a checkpoint holding one under ``state_dict``/``model``) into ``model``
    (called ``name`` in the messages; default: its registry name or class name).

    Only tensors are unpickled (``weights_only=True``): a file cannot run code.
    """
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path))
        else:
            with warnings.catch_warnings():  # torch warns about pickle protocols it then refuses anyway
                warnings.simplefilter("ignore")
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CnnlensError(f"weights: cannot read {path}: {type(exc).__name__}: {exc}".splitlines()[0], param="weights") from None
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CnnlensError(f"weights: {path} holds no state dict of tensors", param="weights")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.startswith(("aux", "AuxLogits"))]
    unexpected = [k for k in state if k not in own]
    misfit = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or misfit:
        detail = []
        if misfit:
            k = misfit[0]
            detail.append(f"{len(misfit)} of other shape (e.g. {k}: {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model)")
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        name = name or (model_info(model).name if hasattr(model, "cnnlens_info") else type(model).__name__)
        raise CnnlensError(f"weights: {path.name} does not fit {name}: {'; '.join(detail)} tensors", param="weights")
    with torch.no_grad():
        model.load_state_dict(state, strict=False)


# -- helpers -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def empty_weights() -> Iterator[None]:
    """Create every parameter and buffer of modules built inside the block on the meta device.

    Unlike ``with torch.device("meta")`` the builder's own computations run on real tensors, so
    builders that compute while they build (the regnets) work; no weight memory is kept (accelerate's
    ``init_empty_weights`` does the same).
    """
    original_param = nn.Module.register_parameter
    original_buffer = nn.Module.register_buffer

    def register_parameter(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        original_param(module, name, param)
        if param is not None:
            p = module._parameters[name]
            module._parameters[name] = nn.Parameter(p.to("meta"), requires_grad=p.requires_grad)

    def register_buffer(module: nn.Module, name: str, tensor: torch.Tensor | None, persistent: bool = True) -> None:
        original_buffer(module, name, tensor, persistent)
        if tensor is not None:
            module._buffers[name] = module._buffers[name].to("meta")

    nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
    nn.Module.register_buffer = register_buffer  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = original_param  # type: ignore[method-assign]
        nn.Module.register_buffer = original_buffer  # type: ignore[method-assign]


def build_empty(name: str) -> nn.Module:
    """Model ``name`` with every parameter and buffer on the meta device (for reports: no memory, no weights).

    A builder that runs its own layers while it builds (timm's hybrid ViTs probe their backbone with a
    real tensor) cannot build on the meta device; such a model is built normally, with a random init.
    """
    entry = get_entry(name)
    label = "no weights (meta)"
    try:
        with warnings.catch_warnings(), empty_weights():
            warnings.simplefilter("ignore", UserWarning)
            model = entry.build()
    except Exception:  # a builder that also fails off the meta device raises its own error below
        label = RANDOM_INIT
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", UserWarning)
            model = entry.build()
    model.eval()
    object.__setattr__(model, "cnnlens_info", ModelInfo(entry.name, entry.source, label, entry.preprocessing, entry.categories))
    return model


def random_init_like(model: nn.Module, seed: int | None = 0) -> nn.Module:
    """The same architecture at random initialisation: the registry's builder for a model made by
    :func:`cnnlens.create_model` (its own initialisation scheme), else a copy whose modules are
    reset with their ``reset_parameters`` (PyTorch's default initialisation), seeded by ``seed``."""
    seed = check_seed(seed)
    info = model_info(model)
    if info.source != "module":
        return create_model(info.name, None, seed=seed, device=model_device(model))
    clone = copy.deepcopy(model)
    with seeded(seed), torch.no_grad():
        for module in clone.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    return clone
