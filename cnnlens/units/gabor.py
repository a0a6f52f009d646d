"""Gabor fits and separability of small convolution kernels.

A filter ``(C, k, k)`` is fitted by one Gabor shape shared by all its input channels, each channel
with its own amplitude, phase and offset:

    w_c(x, y) ~ a_c * Re g(x, y) + b_c * Im g(x, y) + d_c

where ``g`` is a complex :func:`skimage.filters.gabor_kernel` (frequency, orientation, sigma_x,
sigma_y), shifted anywhere within a third of the kernel from its centre. The shape is found by an
exhaustive search over a fixed grid (the same grid for every filter, so that numbers compare across
models); for each candidate the per-channel coefficients are the exact least-squares solution.
``r2`` is the share of the filter's variance (after removing each channel's mean) that the fit
explains: 1 is a perfect Gabor, a random kernel scores what the grid can explain of noise.

Frequency 0 is in the grid: a Gaussian blob (the colour blobs of first layers) is a Gabor too.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["GaborFit", "fit_gabor", "separability"]

FREQUENCIES = (0.0, 0.05, 0.08, 0.11, 0.14, 0.18, 0.22, 0.27, 0.33, 0.4, 0.5)  # cycles per pixel
N_ORIENTATIONS = 16  # 0, 11.25, ... 168.75 degrees
ASPECTS = (1.0, 2.0)  # sigma_y / sigma_x: round, or elongated along the stripes
SIGMA_FRACTIONS = (0.12, 0.2, 0.32, 0.5)  # sigma_x as a fraction of the kernel side


@dataclass(frozen=True)
class GaborFit:
    """The best Gabor for each of ``n`` kernels (numpy arrays of length ``n``).

    ``orientation_deg`` is skimage's ``theta`` in degrees, in [0, 180): the direction of the wave
    vector, so 0 means vertical stripes (intensity changes along x, the column axis) and 90 means
    horizontal stripes; angles grow from +x towards +y (downwards in an image). It is NaN where the
    best fit has frequency 0 (a blob has no orientation).
    """

    r2: np.ndarray
    frequency: np.ndarray
    orientation_deg: np.ndarray
    sigma_x: np.ndarray
    sigma_y: np.ndarray
    center: np.ndarray  # (n, 2): (row, col) offset of the Gabor centre from the kernel centre


@dataclass(frozen=True)
class _Bank:
    basis: np.ndarray  # (N, 2, P): orthonormal, each orthogonal to the constant
    frequency: np.ndarray
    theta: np.ndarray
    sigma_x: np.ndarray
    sigma_y: np.ndarray
    center: np.ndarray  # (N, 2)


@functools.lru_cache(maxsize=8)
def _bank(kh: int, kw: int) -> _Bank:
    from skimage.filters import gabor_kernel

    side = max(kh, kw)
    shift = max(1, side // 3) if side >= 3 else 0
    half = max(kh, kw) // 2 + shift
    rows, freqs, thetas, sxs, sys_, centers = [], [], [], [], [], []
    for frequency in FREQUENCIES:
        for fraction in SIGMA_FRACTIONS:
            sigma_x = max(0.5, fraction * side)
            for aspect in ASPECTS:
                sigma_y = sigma_x * aspect
                for t in range(N_ORIENTATIONS):
                    theta = math.pi * t / N_ORIENTATIONS
                    if frequency == 0 and aspect == 1.0 and t > 0:
                        continue  # a round blob looks the same at every angle
                    n_stds = math.ceil(math.sqrt(2) * (half + 1) / min(sigma_x, sigma_y)) + 1
                    g = gabor_kernel(frequency, theta=theta, sigma_x=sigma_x, sigma_y=sigma_y, n_stds=n_stds)
                    cy, cx = g.shape[0] // 2, g.shape[1] // 2
                    for dy in range(-shift, shift + 1):
                        for dx in range(-shift, shift + 1):
                            top, left = cy - dy - kh // 2, cx - dx - kw // 2
                            patch = g[top : top + kh, left : left + kw]
                            rows.append(np.stack([patch.real.ravel(), patch.imag.ravel()]))
                            freqs.append(frequency)
                            thetas.append(theta)
                            sxs.append(sigma_x)
                            sys_.append(sigma_y)
                            centers.append((dy, dx))
    raw = np.asarray(rows, dtype=np.float64)  # (N, 2, P)
    raw = raw - raw.mean(axis=2, keepdims=True)  # orthogonal to the constant (each channel's offset)
    # Gram-Schmidt per candidate: q1 = re/|re|, q2 = (im - (im.q1) q1) / |...|; degenerate parts -> 0
    re, im = raw[:, 0], raw[:, 1]
    n1 = np.linalg.norm(re, axis=1, keepdims=True)
    q1 = np.where(n1 > 1e-12, re / np.maximum(n1, 1e-300), 0.0)
    im = im - (im * q1).sum(1, keepdims=True) * q1
    n2 = np.linalg.norm(im, axis=1, keepdims=True)
    scale = np.linalg.norm(raw, axis=(1, 2))[:, None] + 1e-300
    q2 = np.where(n2 > 1e-6 * scale, im / np.maximum(n2, 1e-300), 0.0)
    basis = np.stack([q1, q2], axis=1).astype(np.float32)
    return _Bank(basis, np.asarray(freqs), np.asarray(thetas), np.asarray(sxs), np.asarray(sys_), np.asarray(centers))


def fit_gabor(kernels: torch.Tensor | np.ndarray, *, chunk: int = 64) -> GaborFit:
    """Fit a Gabor to each filter of a ``(F, C, kh, kw)`` (or ``(F, kh, kw)``) weight tensor.

    Returns NaN frequency/orientation and r2 for kernels smaller than 3x3 (no shape to fit), and
    r2 = NaN for all-constant kernels.
    """
    w = kernels.detach().cpu().double().numpy() if isinstance(kernels, torch.Tensor) else np.asarray(kernels, np.float64)
    if w.ndim == 3:
        w = w[:, None]
    if w.ndim != 4:
        raise ValueError(f"expected (F, C, kh, kw) kernels, got shape {w.shape}")
    f, c, kh, kw = w.shape
    nan = np.full(f, np.nan)
    if min(kh, kw) < 3:
        return GaborFit(nan, nan.copy(), nan.copy(), nan.copy(), nan.copy(), np.full((f, 2), np.nan))
    bank = _bank(kh, kw)
    y = w.reshape(f, c, kh * kw)
    y = y - y.mean(axis=2, keepdims=True)
    total = (y**2).sum(axis=(1, 2))
    basis = bank.basis.astype(np.float64)  # (N, 2, P)
    best = np.zeros(f, dtype=np.int64)
    explained = np.zeros(f)
    for start in range(0, f, chunk):
        yc = y[start : start + chunk]  # (f', C, P)
        # energy explained by candidate n: sum over channels and basis vectors of (q . y_c)^2
        proj = np.einsum("fcp,nkp->fnck", yc, basis, optimize=True)
        energy = (proj**2).sum(axis=(2, 3))  # (f', N)
        best[start : start + chunk] = energy.argmax(axis=1)
        explained[start : start + chunk] = energy.max(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(total > 1e-20, explained / np.where(total > 0, total, 1.0), np.nan)
    frequency = bank.frequency[best].astype(float)
    orientation = np.degrees(bank.theta[best]) % 180.0
    orientation = np.where(frequency > 0, orientation, np.nan)
    return GaborFit(
        r2=np.clip(r2, 0.0, 1.0),
        frequency=frequency,
        orientation_deg=orientation,
        sigma_x=bank.sigma_x[best].astype(float),
        sigma_y=bank.sigma_y[best].astype(float),
        center=bank.center[best].astype(float),
    )


def separability(kernels: torch.Tensor | np.ndarray) -> np.ndarray:
    """Share of each filter's energy in the first singular value of its ``kh x kw`` kernels.

    For a filter ``(C, kh, kw)``: ``sum_c s1(W_c)^2 / sum_c ||W_c||^2``, so 1 means every input
    channel's kernel is an outer product (a ``kh x 1`` column times a ``1 x kw`` row, as in the
    factorized 3x3 = 3x1 * 1x3 convolutions of Inception v3), and ``1/min(kh, kw)`` is what a kernel with a flat
    spectrum of singular values scores. 1x1 kernels are trivially separable (1).
    """
    w = torch.as_tensor(kernels).detach().double().cpu()
    if w.dim() == 3:
        w = w[:, None]
    s = torch.linalg.svdvals(w)  # (F, C, min(kh, kw))
    energy = (s**2).sum(dim=(1, 2))
    first = (s[..., 0] ** 2).sum(dim=1)
    out = torch.where(energy > 0, first / energy.clamp_min(1e-300), torch.full_like(energy, float("nan")))
    return out.numpy()
