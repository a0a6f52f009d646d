"""Models the attack commands can load: torchvision names, the MNIST LeNet5, or ``file.py:Class``.

Every model comes back as an :class:`AttackModel`: a module that takes pixels in [0, 1] (any
normalization is inside it) and the way to turn an image file into its input.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CnnlensError

__all__ = ["ATTACK_MODELS", "AttackModel", "LeNet5MNIST", "load_attack_model", "prepare_image"]


class LeNet5MNIST(nn.Module):
    """The small MNIST CNN of advertorch's tutorial ("LeNet5"): 1x28x28 pixels in [0, 1], no normalization.

    conv1 32x3x3 (pad 1), ReLU, max-pool 2; conv2 64x3x3 (pad 1), ReLU, max-pool 2; linear 3136->200, ReLU, 200->10.
    ``../shared/data/mnist/mnist_lenet5_{clntrained,advtrained}.pt`` fit it.
    """

    input_size = (1, 28, 28)

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.linear1 = nn.Linear(7 * 7 * 64, 200)
        self.linear2 = nn.Linear(200, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.linear2(F.relu(self.linear1(x.flatten(1))))


# built-in architectures that are not torchvision models: name -> (class, categories)
ATTACK_MODELS: dict[str, tuple[type[nn.Module], list[str]]] = {
    "lenet5-mnist": (LeNet5MNIST, [str(d) for d in range(10)]),
}


@dataclass
class AttackModel:
    """A model on [0, 1] pixels plus how images are prepared for it."""

    name: str
    model: nn.Module
    input_size: tuple[int, int, int] | None  # (C, H, W); None: the torchvision resize + centre crop
    categories: list[str] | None = field(default=None, repr=False)
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, repr=False)

    def image(self, image: torch.Tensor) -> torch.Tensor:
        """A loaded ``(3, H, W)`` image in [0, 1] as this model's ``(C, H, W)`` input."""
        if self.prepare is not None:
            return self.prepare(image)
        return prepare_image(image, self.input_size)

    @property
    def num_classes(self) -> int | None:
        return len(self.categories) if self.categories else None


def prepare_image(image: torch.Tensor, input_size: tuple[int, int, int] | None) -> torch.Tensor:
    """Resize a ``(C, H, W)`` image to ``input_size`` exactly, and to 1 channel (luminance) or 3 as needed."""
    from ..images import resize

    if input_size is None:
        return image
    channels, h, w = input_size
    if image.shape[0] == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype, device=image.device).view(3, 1, 1)
        image = (image * weights).sum(0, keepdim=True)
    elif image.shape[0] == 1 and channels == 3:
        image = image.expand(3, -1, -1)
    if tuple(image.shape[-2:]) != (h, w):
        image = resize(image, (h, w))
    return image.contiguous()


def _load_class(spec: str) -> type[nn.Module]:
    file, _, cls_name = spec.rpartition(":")
    path = Path(file)
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
        from ..errors import did_you_mean

        names = [n for n, v in vars(module).items() if isinstance(v, type) and issubclass(v, nn.Module)]
        raise CnnlensError(f"{path} has no nn.Module class {cls_name!r}{did_you_mean(cls_name, names)}")
    return cls


def load_attack_model(spec: str, weights: Any = None, *, device: str | torch.device | None = None) -> AttackModel:
    """Load MODEL for ``cnnlens fgsm`` / ``cnnlens robustness``.

    ``spec`` is a torchvision name (``mobilenet_v2``; wrapped in :class:`cnnlens.models.Normalized` with
    its weights' mean/std, images resized and centre-cropped like its weights' transforms), a built-in
    name from :data:`ATTACK_MODELS` (``lenet5-mnist``), or ``path/to/file.py:ClassName``: a class built
    with no arguments that takes pixels in [0, 1]; it may set ``input_size = (C, H, W)``, ``mean``,
    ``std`` and ``categories`` as class attributes (default: 3x224x224, no normalization).
    """
    from ..models import Normalized, load_model, load_state_file, preprocessing

    weights = None if weights is None or str(weights).lower() in ("none", "random", "") else weights
    if spec in ATTACK_MODELS or (":" in spec and spec.rpartition(":")[0].endswith(".py")):
        if spec in ATTACK_MODELS:
            cls, categories = ATTACK_MODELS[spec]
        else:
            cls = _load_class(spec)
            categories = getattr(cls, "categories", None)
        try:
            net = cls()
        except Exception as exc:
            raise CnnlensError(f"cannot build {spec}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
        if isinstance(weights, str) and weights.upper() == "DEFAULT":
            raise CnnlensError(f"{spec} has no downloadable weights: pass --weights path/to/file.pt (or none)")
        if weights is not None:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise CnnlensError(f"weights file not found: {path}")
            load_state_file(net, path)
        net.eval()
        mean, std = getattr(cls, "mean", None), getattr(cls, "std", None)
        model: nn.Module = Normalized(net, tuple(mean), tuple(std)) if mean is not None and std is not None else net
        size = tuple(getattr(cls, "input_size", (3, 224, 224)))
        if device is not None:
            model.to(device)
        return AttackModel(spec, model.eval(), size, list(categories) if categories else None)  # type: ignore[arg-type]
    net = load_model(spec, weights)
    prep = preprocessing(spec, weights)
    model = Normalized(net, prep.mean, prep.std).eval()
    if device is not None:
        model.to(device)

    def prepare(image: torch.Tensor) -> torch.Tensor:
        if image.shape[0] == 1:
            image = image.expand(3, -1, -1)
        return prep.resize_and_crop(image).clamp(0, 1).contiguous()

    return AttackModel(spec, model, (3, prep.crop_size, prep.crop_size), prep.categories, prepare)
