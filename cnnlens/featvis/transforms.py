"""Transformation robustness: random pad/jitter/scale/rotation applied before every step.

Each transform is a callable ``t(x, generator) -> x`` on a ``(B, C, H, W)`` batch; all randomness
comes from the ``torch.Generator`` passed in, so a seed repeats a render exactly. One random draw
is shared by the whole batch (as in Lucid), which keeps a batched render of N units identical
in cost to one render of N images. Scale and rotation are one ``affine_grid`` + ``grid_sample``.

:func:`standard_transforms` is Lucid's/lucent's list: pad 12 (constant 0.5), jitter 8,
scale 0.90..1.10, rotate -10..10 degrees, jitter 4.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["Transform", "compose", "jitter", "pad", "random_rotate", "random_scale", "resize", "standard_transforms"]

Transform = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


def _randint(high: int, generator: torch.Generator | None) -> int:
    return int(torch.randint(high, (1,), generator=generator).item())


def _choice(values: Sequence[float], generator: torch.Generator | None) -> float:
    return float(values[_randint(len(values), generator)])


def pad(width: int, *, mode: str = "constant", value: float = 0.5) -> Transform:
    """Pad every side by ``width`` pixels (constant ``value``, or ``"reflect"``/``"replicate"``)."""

    def t(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if width <= 0:
            return x
        if mode == "constant":
            return F.pad(x, (width,) * 4, mode="constant", value=value)
        return F.pad(x, (width,) * 4, mode=mode)

    return t


def jitter(d: int) -> Transform:
    """Random crop that shifts the image by 0..d-1 pixels in x and y (the output is ``d - 1`` px smaller)."""

    def t(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if d <= 1:
            return x
        h, w = x.shape[-2:]
        dy, dx = _randint(d, generator), _randint(d, generator)
        return x[..., dy : dy + h - d + 1, dx : dx + w - d + 1]

    return t


def _affine(x: torch.Tensor, scale: float, angle_deg: float) -> torch.Tensor:
    if scale == 1.0 and angle_deg == 0.0:
        return x
    a = math.radians(angle_deg)
    cos, sin = math.cos(a) / scale, math.sin(a) / scale
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype, device=x.device)
    h, w = x.shape[-2:]
    out_size = (x.shape[0], x.shape[1], max(1, round(h * scale)), max(1, round(w * scale)))
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(out_size), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_scale(scales: Sequence[float]) -> Transform:
    """Resize by a factor drawn from ``scales`` (bilinear)."""

    def t(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        s = _choice(scales, generator)
        if s == 1.0:
            return x
        h, w = x.shape[-2:]
        size = (max(1, round(h * s)), max(1, round(w * s)))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    return t


def random_rotate(angles: Sequence[float]) -> Transform:
    """Rotate about the centre by an angle (degrees) drawn from ``angles``; borders replicate."""

    def t(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return _affine(x, 1.0, _choice(angles, generator))

    return t


def resize(size: tuple[int, int]) -> Transform:
    """Resize to exactly ``(H, W)`` (bilinear, antialiased when shrinking): for models that take one
    input size only (a ``Linear`` after the last convolution, as in LeNet-5), after the random transforms."""

    def t(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        shrink = x.shape[-2] > size[0] or x.shape[-1] > size[1]
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=shrink)

    return t


def compose(transforms: Sequence[Transform]) -> Transform:
    """Apply ``transforms`` in order with the same generator."""

    def t(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for f in transforms:
            x = f(x, generator)
        return x

    return t


SCALES = tuple(1 + (i - 5) / 50 for i in range(11))  # 0.90, 0.92, ..., 1.10 (lucent)
ANGLES = tuple(range(-10, 11)) + (0,) * 5  # lucent: -10..10 plus extra zeros


def standard_transforms() -> list[Transform]:
    """Lucid's standard list: pad(12), jitter(8), random_scale(0.9..1.1), random_rotate(-10..10), jitter(4)."""
    return [pad(12), jitter(8), random_scale(SCALES), random_rotate(ANGLES), jitter(4)]
