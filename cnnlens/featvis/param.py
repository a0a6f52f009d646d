"""Image parameterizations: what the optimizer actually changes.

Every parameterization maps a few leaf tensors (``ImageParam.params``) to a batch of images
``(B, C, H, W)`` with pixels in [0, 1] (a sigmoid squashes the last step, as in Lucid); ``C`` is 3
(RGB) or 1 (grey, for models such as ``lenet5``). Two bases:

- ``pixel``: one value per pixel. Adam on raw pixels finds high-frequency patterns first.
- ``fft``: the image's 2-D Fourier spectrum, each frequency scaled by ``1 / f**decay_power``, so
  every frequency band starts with equal energy and the optimizer favours low frequencies
  (Olah et al. 2017, Mordvintsev et al. 2018 "Differentiable image parameterizations").

Colour decorrelation (``decorrelate=True``) optimizes in a colour basis whose axes are
uncorrelated over natural images (Lucid's ``color_correlation_svd_sqrt``), then maps back to RGB
(grey images have no colour basis: it is ignored there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["COLOR_CORRELATION_SVD_SQRT", "ImageParam", "fft_image", "image", "pixel_image", "to_valid_rgb"]

# Square root of the colour correlation matrix of ImageNet, from Lucid (lucid/optvis/param/color.py)
COLOR_CORRELATION_SVD_SQRT = ((0.26, 0.09, 0.02), (0.27, 0.00, -0.05), (0.27, -0.09, 0.03))


@dataclass
class ImageParam:
    """Leaf tensors to optimize and the function that turns them into images in [0, 1]."""

    params: list[torch.Tensor]
    fn: Callable[[], torch.Tensor]
    kind: str = "fft"
    decorrelate: bool = True

    def __call__(self) -> torch.Tensor:
        return self.fn()

    @property
    def shape(self) -> tuple[int, int, int, int]:
        with torch.no_grad():
            return tuple(self.fn().shape)  # type: ignore[return-value]


def _color_matrix(device: torch.device | None, dtype: torch.dtype) -> torch.Tensor:
    m = torch.tensor(COLOR_CORRELATION_SVD_SQRT, dtype=dtype, device=device)
    return m / m.norm(dim=0).max()


def to_valid_rgb(t: torch.Tensor, *, decorrelate: bool = True) -> torch.Tensor:
    """Map an unconstrained ``(B, C, H, W)`` tensor to pixels in [0, 1] (optional decorrelation of 3
    colour channels, then sigmoid)."""
    if decorrelate and t.shape[1] == 3:
        m = _color_matrix(t.device, t.dtype)
        t = torch.einsum("bchw,dc->bdhw", t, m)
    return torch.sigmoid(t)


def _fft_scale(h: int, w: int, decay_power: float, device: torch.device | None) -> torch.Tensor:
    fy = torch.fft.fftfreq(h, device=device)[:, None]
    fx = torch.fft.rfftfreq(w, device=device)[None, :]
    freqs = torch.sqrt(fx * fx + fy * fy)
    return 1.0 / torch.clamp(freqs, min=1.0 / max(h, w)) ** decay_power  # (h, w // 2 + 1)


def fft_image(
    size: int | tuple[int, int],
    *,
    batch: int = 1,
    sd: float = 0.01,
    decay_power: float = 1.0,
    decorrelate: bool = True,
    channels: int = 3,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> ImageParam:
    """Fourier parameterization with ``1/f**decay_power`` scaling (Lucid/lucent ``fft_image``)."""
    h, w = (size, size) if isinstance(size, int) else size
    decorrelate = decorrelate and channels == 3
    spectrum = torch.randn(batch, channels, h, w // 2 + 1, 2, generator=generator) * sd
    spectrum = spectrum.to(device).requires_grad_(True)
    scale = _fft_scale(h, w, decay_power, spectrum.device)

    def fn() -> torch.Tensor:
        scaled = torch.view_as_complex(spectrum) * scale
        img = torch.fft.irfft2(scaled, s=(h, w), norm="ortho")
        return to_valid_rgb(img / 4.0, decorrelate=decorrelate)  # Lucid's "magic" 4

    return ImageParam([spectrum], fn, "fft", decorrelate)


def pixel_image(
    size: int | tuple[int, int],
    *,
    batch: int = 1,
    sd: float = 0.01,
    decorrelate: bool = False,
    channels: int = 3,
    init: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> ImageParam:
    """One free value per pixel (before the sigmoid); ``init`` starts from given images in (0, 1)."""
    h, w = (size, size) if isinstance(size, int) else size
    if init is not None:
        x = init if init.dim() == 4 else init.unsqueeze(0)
        x = torch.logit(x.detach().float().clamp(1e-3, 1 - 1e-3))
        decorrelate = decorrelate and x.shape[1] == 3
        if decorrelate:
            x = torch.einsum("bchw,dc->bdhw", x, torch.linalg.inv(_color_matrix(x.device, x.dtype)))
        raw = x.clone()
    else:
        decorrelate = decorrelate and channels == 3
        raw = torch.randn(batch, channels, h, w, generator=generator) * sd
    raw = raw.to(device).requires_grad_(True)

    def fn() -> torch.Tensor:
        return to_valid_rgb(raw, decorrelate=decorrelate)

    return ImageParam([raw], fn, "pixel", decorrelate)


def image(
    size: int | tuple[int, int],
    *,
    batch: int = 1,
    fft: bool = True,
    decorrelate: bool = True,
    sd: float = 0.01,
    channels: int = 3,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> ImageParam:
    """The Lucid default (``fft=True, decorrelate=True``) or plain pixels (``fft=False, decorrelate=False``);
    ``channels=1`` for grey models."""
    kw = dict(batch=batch, sd=sd, decorrelate=decorrelate, channels=channels, generator=generator, device=device)
    return fft_image(size, **kw) if fft else pixel_image(size, **kw)  # type: ignore[arg-type]
