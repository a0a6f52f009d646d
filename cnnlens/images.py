"""Image files in and out (scikit-image), as float tensors ``(3, H, W)`` with pixels in [0, 1]."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import CnnlensError

__all__ = ["IMAGE_SUFFIXES", "from_array", "load_image", "resize", "save_image", "to_numpy"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def load_image(path: str | Path, size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """Read an image file as a ``(3, H, W)`` float tensor in [0, 1], as a photo viewer shows it.

    EXIF orientation is applied; CMYK, palette, grey, grey+alpha and 16-bit images are converted to
    RGB (transparent pixels over white); a GIF or other multi-frame file gives its first frame.

    Args:
        size: resize so the shorter side is ``size`` (an int) or to exactly ``(H, W)``.

    Raises:
        CnnlensError: the file is missing or is not a readable image.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise CnnlensError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            im.seek(0)
            im = ImageOps.exif_transpose(im)
            array = _pil_to_array(im)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise CnnlensError(f"cannot read image {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    image = from_array(array)
    return resize(image, size) if size is not None else image


def _pil_to_array(im: Any) -> np.ndarray:
    """A PIL image as an ``(H, W, 3)`` float32 array in [0, 1]."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        grey = np.asarray(im, dtype=np.float32)
        scale = 65535.0 if mode.startswith("I;16") or grey.max() > 255 else 255.0
        return np.repeat((grey / scale).clip(0, 1)[..., None], 3, axis=-1)
    if mode == "F":
        grey = np.asarray(im, dtype=np.float32).clip(0, 1)
        return np.repeat(grey[..., None], 3, axis=-1)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info) or "A" in mode:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3:]
        return rgba[..., :3] * alpha + (1.0 - alpha)
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def from_array(array: np.ndarray) -> torch.Tensor:
    """An ``(H, W)``, ``(H, W, 1|3|4)`` array (uint8, uint16 or float in [0, 1]) as ``(3, H, W)`` in [0, 1]."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4):
        raise CnnlensError(f"an image array must be (H, W) or (H, W, C) with C in 1..4, not shape {array.shape}")
    values = _to_float(array)
    if values.shape[-1] in (2, 4):  # grey+alpha or RGBA: over white
        alpha = values[..., -1:]
        values = values[..., :-1] * alpha + (1.0 - alpha)
    if values.shape[-1] == 1:
        values = np.repeat(values, 3, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(values)).permute(2, 0, 1).contiguous()


def _to_float(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype == bool:
        return array.astype(np.float32)
    return np.clip(array.astype(np.float32), 0.0, 1.0)


def resize(image: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize ``(C, H, W)`` or ``(B, C, H, W)``: an int sets the shorter side, a pair the exact size."""
    import torch.nn.functional as F

    h, w = image.shape[-2:]
    if isinstance(size, int):
        scale = size / min(h, w)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
    batch = image if image.dim() == 4 else image.unsqueeze(0)
    out = F.interpolate(batch, size=size, mode="bilinear", align_corners=False, antialias=True)
    out = out.clamp(0, 1)
    return out if image.dim() == 4 else out[0]


def to_numpy(image: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` in [0, 1] to an ``(H, W, 3)`` uint8 array."""
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError("to_numpy takes one image")
        image = image[0]
    array = image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return (array * 255 + 0.5).astype(np.uint8)


def save_image(image: torch.Tensor, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a ``(C, H, W)`` tensor in [0, 1] (C 1 or 3) as an 8-bit PNG/JPEG/...; never replaces a file
    unless ``overwrite``, and leaves no partial file when the write fails (a full disk)."""
    import skimage.io

    from .outputs import IMAGE_SAVE_SUFFIXES, check_output, write_atomic

    path = check_output(path, overwrite=overwrite, suffixes=IMAGE_SAVE_SUFFIXES)
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() == 3 and image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    array = to_numpy(image)
    return write_atomic(path, lambda tmp: skimage.io.imsave(str(tmp), array, check_contrast=False))
