"""Load any torchvision classification model by name, with or without weights.

Weights come through torchvision's weights API (``get_model``, ``get_model_weights``); the
preprocessing and the class names always come from a weights object, never from constants.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .errors import CnnlensError, did_you_mean

__all__ = [
    "Normalized",
    "Preprocessing",
    "empty_weights",
    "load_model",
    "model_names",
    "preprocessing",
    "resolve_weights",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def model_names() -> list[str]:
    """Every classification model torchvision can build (``list_models(module=torchvision.models)``)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def check_model_name(name: str, *, teaching: bool = False) -> str:
    from .teaching import TEACHING_MODELS

    if teaching and name in TEACHING_MODELS:
        return name
    names = model_names() + (sorted(TEACHING_MODELS) if teaching else [])
    if name not in names:
        raise CnnlensError(f"unknown model {name!r}{did_you_mean(name, names)}; `cnnlens models` lists them")
    return name


def _weights_enum(name: str) -> Any | None:
    import torchvision

    try:
        return torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        return None


def resolve_weights(name: str, weights: Any = None) -> Any:
    """Turn ``weights`` into a torchvision ``WeightsEnum`` member, a ``Path``, or ``None``.

    Accepts ``None``/``"none"``, ``"DEFAULT"``, an enum name (``"VGG16_Weights.IMAGENET1K_V1"`` or
    ``"IMAGENET1K_V1"``), an enum member, or the path of a state dict / checkpoint file.
    """
    if weights is None or (isinstance(weights, str) and weights.lower() in ("none", "random", "")):
        return None
    if isinstance(weights, Path) or (isinstance(weights, str) and _looks_like_path(weights)):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise CnnlensError(f"weights file not found: {path}")
        return path
    enum = _weights_enum(name)
    if not isinstance(weights, str):
        if enum is not None and isinstance(weights, enum):
            return weights
        raise CnnlensError(f"weights must be a name, a path or a {name} weights enum, not {type(weights).__name__}")
    if enum is None:
        raise CnnlensError(f"torchvision has no pretrained weights for {name!r}; pass a file path")
    key = weights.split(".")[-1]
    try:
        return enum[key] if key != "DEFAULT" else enum.DEFAULT
    except KeyError:
        options = ["DEFAULT"] + [f"{enum.__name__}.{m.name}" for m in enum]
        raise CnnlensError(f"unknown weights {weights!r} for {name}{did_you_mean(weights, options)}") from None


def _looks_like_path(text: str) -> bool:
    return os.sep in text or text.endswith((".pt", ".pth", ".th", ".bin", ".ckpt", ".tar")) or Path(text).is_file()


def _builder_kwargs(name: str) -> dict[str, Any]:
    # googlenet / inception_v3 warn (and run a slow scipy-free init) unless told; keep their defaults explicit.
    if name in ("googlenet", "inception_v3"):
        return {"init_weights": True}
    return {}


def hub_checkpoint_path(weights: Any) -> Path:
    """Where torch hub caches the file of a torchvision weights enum member."""
    filename = weights.url.rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def model_device(model: nn.Module, default: str | torch.device = "cpu") -> torch.device:
    """The device of the model's first parameter or buffer (``default`` when it has neither)."""
    for t in itertools.chain(model.parameters(), model.buffers()):
        return t.device
    return torch.device(default)


def load_model(name: str, weights: Any = None, *, device: str | torch.device | None = None) -> nn.Module:
    """Build torchvision model ``name`` in eval mode, with ``weights`` (see :func:`resolve_weights`).

    Raises:
        CnnlensError: unknown model or weights, or weights that are not cached and cannot be downloaded.
    """
    import torchvision

    check_model_name(name)
    resolved = resolve_weights(name, weights)
    if resolved is None or isinstance(resolved, Path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model = torchvision.models.get_model(name, weights=None, **_builder_kwargs(name))
        if isinstance(resolved, Path):
            load_state_file(model, resolved)
    else:
        model = _load_pretrained(name, resolved)
    model.eval()
    if device is not None:
        model.to(device)
    return model


def _load_pretrained(name: str, weights: Any) -> nn.Module:
    import torchvision

    cached = hub_checkpoint_path(weights)
    if not cached.is_file():
        # fetch into torch hub's cache ourselves: torch.hub would first print "Downloading: ..." also
        # when there is no network, and the user should then see one line only
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(weights.url, str(cached), progress=True)
        except Exception as exc:  # URLError, socket errors, HTTP errors: all mean "not here"
            raise CnnlensError(
                f"weights {weights} are not cached and could not be downloaded ({type(exc).__name__}); "
                f"put {weights.url.rsplit('/', 1)[-1]} in {cached.parent} or pass --weights PATH"
            ) from None
    return torchvision.models.get_model(name, weights=weights)


def load_state_file(model: nn.Module, path: Path) -> None:
    """Load a state dict (or a checkpoint holding one under ``state_dict``/``model``) into ``model``."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CnnlensError(f"cannot read weights file {path}: {exc}".splitlines()[0]) from None
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise CnnlensError(f"{path} holds no state dict")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(("aux", "AuxLogits"))]
    if missing or result.unexpected_keys:
        raise CnnlensError(
            f"{path} does not fit {type(model).__name__}: {len(missing)} missing keys "
            f"(e.g. {missing[:2]}), {len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[:2]})"
        )


@dataclass(frozen=True)
class Preprocessing:
    """How images must be prepared for a model, taken from its torchvision weights object."""

    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    crop_size: int = 224
    resize_size: int = 256
    min_size: tuple[int, int] = (1, 1)
    categories: list[str] | None = field(default=None, compare=False, repr=False)
    source: str = "ImageNet defaults"

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` for a ``(B, C, H, W)`` batch of pixels in [0, 1]."""
        mean, std = self._stats(x)
        return (x - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return x * std + mean

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        return mean, std

    def resize_and_crop(self, x: torch.Tensor, crop: bool = True) -> torch.Tensor:
        """Resize the shorter side to ``resize_size`` and centre-crop ``crop_size`` (pixels stay in [0, 1])."""
        import torchvision.transforms.v2.functional as TF

        x = TF.resize(x, [self.resize_size], antialias=True)
        return TF.center_crop(x, [self.crop_size, self.crop_size]) if crop else x

    def category(self, index: int) -> str:
        if self.categories and 0 <= index < len(self.categories):
            return self.categories[index]
        return f"class {index}"


def preprocessing(name_or_model: str | nn.Module, weights: Any = None) -> Preprocessing:
    """The preprocessing and class names of a model.

    For enum weights they come from that enum member; for no weights or a weights file, from the
    architecture's ``DEFAULT`` weights (a state dict for a torchvision architecture is assumed to be
    trained like it). Any other ``nn.Module`` gets ImageNet statistics.
    """
    if not isinstance(name_or_model, str):
        return Preprocessing()
    name = check_model_name(name_or_model)
    resolved = resolve_weights(name, weights)
    enum = _weights_enum(name)
    member = resolved if resolved is not None and not isinstance(resolved, Path) else (enum.DEFAULT if enum else None)
    if member is None:
        return Preprocessing()
    t = member.transforms()
    return Preprocessing(
        mean=tuple(t.mean),
        std=tuple(t.std),
        crop_size=int(t.crop_size[0]),
        resize_size=int(t.resize_size[0]),
        min_size=tuple(member.meta.get("min_size", (1, 1))),
        categories=list(member.meta.get("categories") or []) or None,
        source=str(member),
    )


class Normalized(nn.Module):
    """``model(normalize(x))``: lets attacks and image optimization work on pixels in [0, 1]."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean.to(x.dtype)) / self.std.to(x.dtype))


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
    """Build model ``name`` (torchvision's or one of :mod:`cnnlens.teaching`) with all parameters and buffers on meta."""
    import torchvision

    from .teaching import TEACHING_MODELS

    check_model_name(name, teaching=True)
    with warnings.catch_warnings(), empty_weights():
        warnings.simplefilter("ignore", UserWarning)
        if name in TEACHING_MODELS:
            model = TEACHING_MODELS[name].build()
        else:
            model = torchvision.models.get_model(name, weights=None, **_builder_kwargs(name))
    return model.eval()


def default_input_size(name: str) -> tuple[int, int, int, int]:
    """``(1, C, H, W)`` at the model's own crop size (299 for inception_v3; 32x32 grey for lenet5)."""
    from .teaching import TEACHING_MODELS

    if name in TEACHING_MODELS:
        return TEACHING_MODELS[name].input_size
    crop = preprocessing(name).crop_size
    return (1, 3, crop, crop)
