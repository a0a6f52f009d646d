"""The one pixel convention of cnnlens.

Images enter every API function as pixels in [0, 1] -- a ``(N, C, H, W)`` or ``(C, H, W)`` tensor,
an image file path, a PIL image or an ``(H, W[, C])`` array -- and results come back in the same
space. What a model needs on top (resize, centre crop, grey or colour, ``(x - mean) / std``) is a
:class:`Preprocessing`, taken from the model registry, and it is applied here and only here:
:meth:`Preprocessing.normalize` is the one place the arithmetic is written, and
:class:`cnnlens.pixelnet.Normalized` wraps a model so that it takes pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .errors import CnnlensError

__all__ = ["Preprocessing", "as_pixels", "default_fit", "tensor_side"]

PRECROP_ASPECT = 4  # longer side / shorter side beyond which the long side is cut before the resize
MAX_RESIZED_SIDE = 16384  # pixels: the longest side a resize without a crop may make

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# ITU-R 601 luma, as Pillow's convert("L") and scikit-image's rgb2gray (up to rounding)
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Preprocessing:
    """How pixels in [0, 1] become a model's input.

    Attributes:
        mean, std: per-channel normalization, ``(x - mean) / std``.
        resize_size: the shorter side is resized to this before the centre crop (``None``: no resize).
        crop_size: side of the centre crop (``None``: no crop).
        channels: 3 (colour) or 1 (grey); images are converted to this.
        min_size: the smallest ``(H, W)`` the model accepts.
        source: where the numbers came from (a weights enum, a timm config, "ImageNet defaults").
    """

    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    resize_size: int | None = 256
    crop_size: int | None = 224
    channels: int = 3
    min_size: tuple[int, int] = (1, 1)
    source: str = "ImageNet defaults"
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def input_size(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the model's usual input."""
        side = self.crop_size or self.resize_size or 224
        return (self.channels, side, side)

    @property
    def fixed_size(self) -> bool:
        """The model takes one input size only (LeNet-5's 32 x 32): its minimum is its crop."""
        return self.crop_size is not None and tuple(self.min_size) == (self.crop_size, self.crop_size)

    def with_size(self, size: int | None) -> Preprocessing:
        """The same preprocessing with a square ``size`` crop (shorter side resized to ``size``)."""
        return self if size is None else replace(self, resize_size=int(size), crop_size=int(size))

    # -- the one normalization -------------------------------------------------------------------
    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1) if x.dim() == 4 else (-1, 1, 1)
        dtype = x.dtype if x.is_floating_point() else torch.float32
        mean = torch.tensor(self.mean, dtype=dtype, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=dtype, device=x.device).view(shape)
        return mean, std

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` for pixels in [0, 1], ``(N, C, H, W)`` or ``(C, H, W)``."""
        mean, std = self._stats(x)
        return (x - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`normalize`."""
        mean, std = self._stats(x)
        return x * std + mean

    # -- geometry and colour -----------------------------------------------------------------------
    def convert_channels(self, x: torch.Tensor) -> torch.Tensor:
        """Grey to colour (repeat) or colour to grey (luma), as the model needs."""
        c = x.shape[-3]
        if c == self.channels:
            return x
        if c == 1 and self.channels == 3:
            return x.expand(*x.shape[:-3], 3, *x.shape[-2:]).contiguous()
        if c == 3 and self.channels == 1:
            w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(3, 1, 1)
            return (x * w).sum(-3, keepdim=True)
        if self.channels not in (1, 3):
            raise CnnlensError(f"images have {c} channels; the model takes {self.channels}-channel input, not images", param="images")
        raise CnnlensError(f"images have {c} channels; the model takes {self.channels}", param="images")

    def resize_and_crop(self, x: torch.Tensor, *, crop: bool = True) -> torch.Tensor:
        """Resize the shorter side to ``resize_size`` and centre-crop ``crop_size`` (pixels stay in [0, 1]).

        The same arithmetic as the weights' own ``transforms()`` (torchvision's antialiased bilinear
        resize, which truncates the longer side: 300x451 becomes 232x348). An image more than
        :data:`PRECROP_ASPECT` times longer than wide is first cut to the part the centre crop keeps
        (so a 1 x 20,000 strip costs what a normal image costs; its crop may differ from the full
        resize by a fraction of a pixel); without a crop, a resized side beyond
        :data:`MAX_RESIZED_SIDE` pixels is refused in one line.
        """
        import math

        import torchvision.transforms.v2.functional as TF

        if self.resize_size is not None:
            h, w = int(x.shape[-2]), int(x.shape[-1])
            short, long = min(h, w), max(h, w)
            scale = int(self.resize_size) / short
            if crop and self.crop_size is not None and long > PRECROP_ASPECT * short:
                # an extreme aspect ratio (a 1 x 20000 strip): cut the long side to what the centre crop
                # keeps (plus a margin for the resize filter) before resizing, so the image costs what a
                # normal one costs instead of a resized strip of millions of pixels
                keep = min(long, math.ceil((int(self.crop_size) + 4) / scale) + 2)
                x = TF.center_crop(x, [h, keep] if w >= h else [keep, w])
            elif long * scale > MAX_RESIZED_SIDE:
                raise CnnlensError(
                    f"images: a {w}x{h} image resized to {int(self.resize_size)} px on its shorter side would be {int(long * scale):,} px long; "
                    f"crop it to an aspect ratio below {MAX_RESIZED_SIDE // int(self.resize_size)}:1 first",
                    param="images",
                )
            x = TF.resize(x, [int(self.resize_size)], antialias=True)
        if crop and self.crop_size is not None:
            x = TF.center_crop(x, [int(self.crop_size), int(self.crop_size)])
        return x

    def prepare(self, x: torch.Tensor, *, fit: str = "crop") -> torch.Tensor:
        """Pixels ready for the model, still in [0, 1] (normalization is :class:`Normalized`'s job).

        ``fit``: ``"crop"`` resizes and centre-crops like the weights' transforms, ``"resize"`` resizes
        the shorter side only, ``"none"`` keeps the size. Channels are always converted.
        """
        if fit not in ("crop", "resize", "none"):
            raise CnnlensError(f"fit must be crop, resize or none, not {fit!r}", param="fit")
        x = self.convert_channels(x)
        if fit != "none":
            x = self.resize_and_crop(x, crop=fit == "crop").clamp(0, 1)
        self.check_size(x)
        return x.contiguous()

    def check_size(self, x: torch.Tensor, name: str = "images") -> None:
        h, w = x.shape[-2:]
        if h < self.min_size[0] or w < self.min_size[1]:
            raise CnnlensError(
                f"{name} are {h}x{w} pixels, smaller than the model's minimum {self.min_size[0]}x{self.min_size[1]}; "
                "use a larger image or size",
                param=name,
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": list(self.mean),
            "std": list(self.std),
            "resize_size": self.resize_size,
            "crop_size": self.crop_size,
            "channels": self.channels,
            "min_size": list(self.min_size),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        """The preprocessing written by :meth:`to_dict`."""
        return cls(
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
            resize_size=int(data["resize_size"]) if data.get("resize_size") is not None else None,
            crop_size=int(data["crop_size"]) if data.get("crop_size") is not None else None,
            channels=int(data.get("channels", len(data["mean"]))),
            min_size=tuple(int(v) for v in data.get("min_size", (1, 1))),  # type: ignore[arg-type]
            source=str(data.get("source", "")),
        )


def as_pixels(
    images: Any,
    preprocessing: Preprocessing | None = None,
    *,
    fit: str = "none",
    name: str = "images",
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Any image input as a float ``(N, C, H, W)`` batch of pixels in [0, 1].

    Args:
        images: a tensor ``(N, C, H, W)`` or ``(C, H, W)`` (float in [0, 1], or uint8 0..255), a file
            path, a PIL image, an ``(H, W)``/``(H, W, C)`` array, or a list of these (same size after ``fit``).
        preprocessing: when given, channels are converted to it and ``fit`` is applied (see
            :meth:`Preprocessing.prepare`).
        fit: ``"crop"``, ``"resize"`` or ``"none"``.
        name: the parameter name used in error messages.
    """
    if isinstance(images, (list, tuple)):
        parts = [as_pixels(i, preprocessing, fit=fit, name=name) for i in images]
        if not parts:
            raise CnnlensError(f"{name} is an empty list", param=name)
        if len({tuple(p.shape[1:]) for p in parts}) != 1:
            raise CnnlensError(f"{name} have different sizes; give fit='crop' or images of one size", param=name)
        batch = torch.cat(parts)
    else:
        batch = _one(images, name)
        if preprocessing is not None:
            batch = preprocessing.prepare(batch, fit=fit)
    return batch if device is None else batch.to(device)


def _one(image: Any, name: str) -> torch.Tensor:
    import numpy as np

    given_floats = False  # pixels the caller computed: check them for NaN and range (decoded files cannot hold either)
    if isinstance(image, (str, Path)):
        from .images import load_image

        t = load_image(image)
    elif isinstance(image, torch.Tensor):
        t = image.detach()
        if t.dtype == torch.uint8:
            t = t.float() / 255.0
        elif not t.is_floating_point():
            raise CnnlensError(f"{name} must be a float tensor in [0, 1] or uint8, not {t.dtype}", param=name)
        else:
            given_floats = True
    elif isinstance(image, np.ndarray) or type(image).__module__.startswith("PIL"):
        from .images import from_array

        array = np.asarray(image)
        given_floats = array.dtype.kind == "f"
        t = from_array(array)
    else:
        raise CnnlensError(f"{name} must be a tensor, an image path, a PIL image or an array, not {type(image).__name__}", param=name)
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() == 3:
        t = t.unsqueeze(0)
    if t.dim() != 4:
        raise CnnlensError(f"{name} must be (N, C, H, W) or (C, H, W), not shape {tuple(t.shape)}", param=name)
    if given_floats and t.numel():
        lo, hi = (float(v) for v in torch.aminmax(t))  # one pass: NaN and infinity show in the extremes
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise CnnlensError(f"{name} contain NaN or infinite pixels", param=name)
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise CnnlensError(
                f"{name} must be pixels in [0, 1] (got values in [{lo:.3g}, {hi:.3g}]); cnnlens normalizes for the model itself",
                param=name,
            )
    return t.float()


def default_fit(images: Any, fit: str | None = None, size: int | None = None, preprocessing: Preprocessing | None = None) -> str:
    """The one rule for the size of images across the API: ``fit`` when given; an explicit ``size``
    resizes and centre-crops every image to it (``"crop"``), as does a model that takes one size only
    (``preprocessing.fixed_size``: LeNet-5); otherwise a tensor is taken as it is (``"none"``: the
    caller prepared its pixels, at the size it chose) and a file, PIL image or array is resized and
    centre-cropped like the weights expect (``"crop"``)."""
    if fit is not None:
        return fit
    if size is not None:
        return "crop"
    if preprocessing is not None and preprocessing.fixed_size and isinstance(images, torch.Tensor):
        side = preprocessing.crop_size
        return "none" if tuple(images.shape[-2:]) == (side, side) else "crop"
    return "none" if isinstance(images, torch.Tensor) else "crop"


def tensor_side(images: Any) -> int | None:
    """The square side a folder-scale pass (patches, concepts, representations) works at for a tensor
    of images ``(N, C, H, W)`` or ``(C, H, W)``: its shorter side -- a square tensor is taken as it
    is, a non-square one centre-cropped to a square; ``None`` for files, folders and lists."""
    if isinstance(images, torch.Tensor) and images.dim() in (3, 4):
        return int(min(images.shape[-2], images.shape[-1]))
    return None
