"""Gratings and bars drawn in pixel space, batched on the model's device.

Every stimulus is a grey image in [0, 1] (mean luminance 0.5) that the model's preprocessing turns
into its input (channels repeated for a colour model, then normalized), so a grating means the same
to every model.

Orientation follows :func:`cnnlens.units.fit_gabor` (scikit-image's ``theta``): the angle of the
wave vector, in degrees, from the +x axis (columns) towards +y (rows, downwards in an image). 0 is
vertical stripes, 90 horizontal stripes. A grating is

    pixel(y, x) = 0.5 + 0.5 * contrast * window(y, x) * cos(2 pi f ((x - cx) cos t + (y - cy) sin t) + phase)

with ``f`` in cycles per pixel and ``(cy, cx)`` the centre (of a unit's receptive field), so that
phase 0 puts a bright stripe on the centre. A bar at orientation ``t`` is one stripe of that
grating: long along the stripes, ``width`` pixels across them.

Windows: ``"full"`` (the whole canvas), ``"rf"`` (the box ``(top, left, bottom, right)``: for the
unit whose receptive field that box is, the same as a full-field grating, since a unit sees nothing
outside its field) and ``"circle"`` (a circular aperture inscribed in the box, with a raised-cosine
edge, as in the physiology).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from .checks import check_int, check_number
from .errors import CnnlensError

__all__ = [
    "HIGHEST",
    "NYQUIST",
    "WINDOWS",
    "bars",
    "check_window",
    "default_frequencies",
    "default_orientations",
    "default_phases",
    "gratings",
    "window_mask",
]

WINDOWS = ("rf", "circle", "full")
NYQUIST = 0.5  # cycles per pixel
# the highest default frequency: at the Nyquist limit a sampled grating's amplitude depends on its
# phase ((-1)^x cos(phase) along x), so phase responses there mean nothing; 0.4 keeps 2.5 pixels a cycle
HIGHEST = 0.4


def default_orientations(n: int = 16) -> list[float]:
    """``n`` orientations evenly over [0, 180) degrees (16: a step of 11.25, the grid of ``fit_gabor``)."""
    n = check_int(n, "orientations", low=1, high=720)
    return [180.0 * k / n for k in range(n)]


def default_phases(n: int = 8) -> list[float]:
    """``n`` spatial phases evenly over [0, 360) degrees (at least 3 to measure a first harmonic)."""
    n = check_int(n, "phases", low=3, high=720)
    return [360.0 * k / n for k in range(n)]


def default_frequencies(rf_size: float, n: int = 12, *, high: float = HIGHEST) -> list[float]:
    """``n`` spatial frequencies in cycles per pixel, evenly on a log scale from half a cycle per
    receptive field (``0.5 / rf_size``) to ``high`` (default 0.4: 2.5 pixels a cycle, below the
    Nyquist limit 0.5 where a sampled grating's amplitude depends on its phase)."""
    n = check_int(n, "frequencies", low=1, high=1000)
    rf_size = check_number(rf_size, "rf_size", low=1.0)
    high = check_number(high, "high", low=0.0, high=NYQUIST, low_open=True)
    low = min(0.5 / rf_size, high)
    if n == 1 or low >= high:
        return [high] if n == 1 else [low] * n
    ratio = (high / low) ** (1.0 / (n - 1))
    return [low * ratio**k for k in range(n)]


def check_window(window: str) -> str:
    """``window`` when it is one of :data:`WINDOWS`, else a one-line error naming the closest."""
    if window not in WINDOWS:
        from .errors import did_you_mean

        raise CnnlensError(f"window {window!r} unknown{did_you_mean(str(window), WINDOWS)}; one of {', '.join(WINDOWS)}", param="window")
    return window


def _column(value: Any, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=dtype, device=device).reshape(-1)
    if t.numel() == 1:
        t = t.expand(batch)
    return t.view(-1, 1, 1)


def _batch_size(*values: Any) -> int:
    sizes = {torch.as_tensor(v).numel() for v in values}
    sizes.discard(1)
    if len(sizes) > 1:
        raise CnnlensError(f"stimulus parameters must have one value or the same length, got lengths {sorted(sizes)}", param="orientation")
    return sizes.pop() if sizes else 1


def _canvas(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    h, w = (check_int(s, "size", low=1, high=16384) for s in size)
    return h, w


def _coordinates(
    size: tuple[int, int], center: Sequence[float] | None, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = size
    cy, cx = ((h - 1) / 2, (w - 1) / 2) if center is None else (float(center[0]), float(center[1]))
    y = (torch.arange(h, device=device, dtype=dtype) - cy).view(1, h, 1)
    x = (torch.arange(w, device=device, dtype=dtype) - cx).view(1, 1, w)
    return y, x


def window_mask(
    window: str,
    size: int | Sequence[int],
    box: Sequence[int] | None = None,
    *,
    edge: float | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The ``(H, W)`` window in [0, 1]: 1 everywhere (``"full"``), inside ``box`` (``"rf"``), or a
    circle inscribed in ``box`` whose outer ``edge`` pixels (default an eighth of the radius, at
    least 1) fall off as a raised cosine (``"circle"``). ``box`` defaults to the whole canvas."""
    window = check_window(window)
    h, w = _canvas(size)
    device = torch.device(device or "cpu")
    if window == "full":
        return torch.ones(h, w, device=device, dtype=dtype)
    top, left, bottom, right = box if box is not None else (0, 0, h, w)
    rows = torch.arange(h, device=device, dtype=dtype).view(h, 1)
    cols = torch.arange(w, device=device, dtype=dtype).view(1, w)
    if window == "rf":
        return ((rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)).to(dtype)
    cy, cx = (top + bottom - 1) / 2, (left + right - 1) / 2
    radius = min(bottom - top, right - left) / 2
    edge = max(1.0, radius / 8) if edge is None else max(float(edge), 1e-6)
    d = torch.sqrt((rows - cy) ** 2 + (cols - cx) ** 2)
    inner = radius - edge
    ramp = 0.5 * (1 + torch.cos(math.pi * ((d - inner) / edge).clamp(0, 1)))
    return torch.where(d <= inner, torch.ones_like(d), ramp) * (d < radius).to(dtype)


def gratings(
    orientation: Any,
    frequency: Any,
    phase: Any = 0.0,
    contrast: Any = 1.0,
    *,
    size: int | Sequence[int],
    center: Sequence[float] | None = None,
    window: str = "full",
    box: Sequence[int] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A batch of sinusoidal gratings as ``(B, 1, H, W)`` pixels in [0, 1].

    Args:
        orientation: degrees (the wave vector's angle; 0 = vertical stripes), one value or one per stimulus.
        frequency: cycles per pixel (at most 0.5, the Nyquist limit), one or one per stimulus.
        phase: degrees; 0 puts a bright stripe on ``center``.
        contrast: Michelson contrast in [0, 1] around the grey 0.5.
        size: canvas side or ``(H, W)``.
        center: ``(row, col)`` of the phase origin (default the canvas centre), usually the centre of
            a unit's receptive field.
        window: ``"full"``, ``"rf"`` (inside ``box``) or ``"circle"`` (inscribed in ``box``).
        box: ``(top, left, bottom, right)``, bottom/right exclusive (default the whole canvas).
        device, dtype: where to draw (the model's device: no copy from the CPU).

    Example:
        >>> g = gratings([0.0, 90.0], 0.25, size=8)
        >>> g.shape, float(g[0, 0, 0, 0] - g[0, 0, 0, 1]) != 0, float(g[1, 0, 0, 0] - g[1, 0, 0, 1])
        (torch.Size([2, 1, 8, 8]), True, 0.0)
    """
    device = torch.device(device or "cpu")
    h, w = _canvas(size)
    batch = _batch_size(orientation, frequency, phase, contrast)
    theta = torch.deg2rad(_column(orientation, batch, device, dtype))
    f = _column(frequency, batch, device, dtype)
    phi = torch.deg2rad(_column(phase, batch, device, dtype))
    c = _column(contrast, batch, device, dtype)
    y, x = _coordinates((h, w), center, device, dtype)
    # cos(a + b) = cos a cos b - sin a sin b with a along x and b along y: 2 (H + W) cosines a
    # stimulus instead of H * W
    a = 2 * math.pi * f * x * torch.cos(theta)  # (B, 1, W)
    b = 2 * math.pi * f * y * torch.sin(theta) + phi  # (B, H, 1)
    wave = torch.cos(b) * torch.cos(a) - torch.sin(b) * torch.sin(a)
    mask = window_mask(window, (h, w), box, device=device, dtype=dtype)
    return (0.5 + 0.5 * c * wave * mask).clamp(0, 1).unsqueeze(1)


def bars(
    orientation: Any,
    width: Any,
    offset: Any = 0.0,
    contrast: Any = 1.0,
    *,
    size: int | Sequence[int],
    length: float | None = None,
    center: Sequence[float] | None = None,
    window: str = "full",
    box: Sequence[int] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A batch of bars (Hubel & Wiesel's stimulus) as ``(B, 1, H, W)`` pixels in [0, 1].

    A bar at ``orientation`` is one stripe of the grating of that orientation: ``width`` pixels
    across (along the wave vector), ``length`` pixels along the stripes (default: the whole
    window), shifted by ``offset`` pixels across from ``center``. A positive ``contrast`` is a light
    bar on grey (0.5 + 0.5 c), a negative one a dark bar. Edges are antialiased over one pixel.

    Example:
        >>> b = bars(0.0, 2, size=7)  # a vertical light bar two pixels wide on the centre column
        >>> b[0, 0, 3].tolist()
        [0.5, 0.5, 0.75, 1.0, 0.75, 0.5, 0.5]
    """
    device = torch.device(device or "cpu")
    h, w = _canvas(size)
    batch = _batch_size(orientation, width, offset, contrast)
    theta = torch.deg2rad(_column(orientation, batch, device, dtype))
    half = _column(width, batch, device, dtype) / 2
    shift = _column(offset, batch, device, dtype)
    c = _column(contrast, batch, device, dtype)
    y, x = _coordinates((h, w), center, device, dtype)
    across = x * torch.cos(theta) + y * torch.sin(theta) - shift
    inside = (half + 0.5 - across.abs()).clamp(0, 1)
    if length is not None:
        along = -x * torch.sin(theta) + y * torch.cos(theta)
        inside = inside * (float(length) / 2 + 0.5 - along.abs()).clamp(0, 1)
    mask = window_mask(window, (h, w), box, device=device, dtype=dtype)
    return (0.5 + 0.5 * c * inside * mask).clamp(0, 1).unsqueeze(1)
