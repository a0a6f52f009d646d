"""Centered kernel alignment (Kornblith et al. 2019) on two feature matrices, and the per-batch HSIC
terms that minibatch CKA (Nguyen et al. 2021) accumulates.

The formulas are those of Kornblith et al.'s reference code: a Gram matrix per representation
(linear ``X Xᵀ``, or RBF with the bandwidth a ``threshold`` fraction of the median distance), centred
(``H K H``, or the unbiased centring of Song et al. 2012 when ``debiased``), and

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) · HSIC(L, L)).

The debiased value uses the unbiased HSIC estimator, whose expectation does not depend on the
number of examples (the biased one overestimates similarity when features outnumber examples).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..checks import check_number
from ..errors import CnnlensError, did_you_mean

__all__ = ["KERNELS", "center_gram", "check_kernel", "cka", "cka_ratio", "gram", "hsic_terms", "min_examples"]

KERNELS = ("linear", "rbf")


def check_kernel(kernel: Any) -> str:
    """``kernel`` as one of :data:`KERNELS`, else a one-line error."""
    if not isinstance(kernel, str) or kernel.strip().lower() not in KERNELS:
        raise CnnlensError(f"kernel {kernel!r} unknown: use {' or '.join(KERNELS)}{did_you_mean(str(kernel), KERNELS)}", param="kernel")
    return kernel.strip().lower()


def _features(x: Any, name: str) -> torch.Tensor:
    """``x`` as an ``(N, D)`` tensor (an ``(N, ...)`` tensor or array is flattened per example)."""
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError):
            raise CnnlensError(f"{name} must be an (N, D) tensor or array, not {type(x).__name__}", param=name) from None
    if x.dim() < 2:
        raise CnnlensError(f"{name} must be (N, D) features, one row per example, not of shape {tuple(x.shape)}", param=name)
    if not x.is_floating_point():
        x = x.double()
    return x.detach().reshape(x.shape[0], -1)


def gram(x: torch.Tensor, kernel: str = "linear", threshold: float = 1.0) -> torch.Tensor:
    """The ``(N, N)`` Gram matrix (float64) of ``(N, D)`` features.

    ``linear``: ``X Xᵀ``; ``rbf``: ``exp(-d² / (2 · threshold² · median(d²)))`` with ``d²`` the squared
    distances between examples (the median over all pairs, the diagonal included, as in Kornblith et
    al.'s code). The features are centred first (no kernel here, nor the centred HSIC, depends on a
    shift of every example by one vector, and centring keeps float32 products accurate); the
    product is computed in the features' dtype and kept in float64.
    """
    x = x - x.mean(0, keepdim=True)
    k = (x @ x.T).double()
    if kernel == "linear":
        return k
    sq_norms = torch.diagonal(k)
    sq_dist = (sq_norms[:, None] + sq_norms[None, :] - 2 * k).clamp_(min=0)
    median = torch.quantile(sq_dist.flatten(), 0.5, interpolation="midpoint") if sq_dist.numel() < 2**24 else sq_dist.flatten().median()
    if float(median) <= 0:
        return torch.ones_like(k)  # every example at the same place: a constant kernel (CKA is then undefined)
    return torch.exp(-sq_dist / (2 * threshold**2 * median))


def center_gram(k: torch.Tensor, unbiased: bool = False) -> torch.Tensor:
    """``H K H`` (``unbiased``: the centring of the unbiased HSIC estimator, with a zero diagonal)."""
    k = k.clone()
    n = k.shape[-1]
    if unbiased:
        k.diagonal(dim1=-2, dim2=-1).zero_()
        means = k.sum(-2) / (n - 2)
        means = means - means.sum(-1, keepdim=True) / (2 * (n - 1))
        k = k - means[..., :, None] - means[..., None, :]
        k.diagonal(dim1=-2, dim2=-1).zero_()
    else:
        means = k.mean(-2)
        means = means - means.mean(-1, keepdim=True) / 2
        k = k - means[..., :, None] - means[..., None, :]
    return k


def _scale(n: int, unbiased: bool) -> float:
    """What the dot product of two centred Grams is divided by to be an HSIC estimate at ``n`` examples."""
    return float(n * (n - 3)) if unbiased else float((n - 1) ** 2)


def min_examples(debiased: bool) -> int:
    """The fewest examples an HSIC estimate needs: 4 for the unbiased estimator, 2 otherwise."""
    return 4 if debiased else 2


def cka(x: Any, y: Any, kernel: str = "linear", threshold: float = 1.0, debiased: bool = False) -> float:
    """CKA between two representations of the same ``N`` examples.

    Args:
        x, y: ``(N, Dx)`` and ``(N, Dy)`` features (tensors or arrays; more dimensions are flattened
            per example). Float64 features give float64 arithmetic throughout.
        kernel: ``"linear"`` or ``"rbf"``.
        threshold: the RBF bandwidth as a fraction of the median distance between examples.
        debiased: use the unbiased HSIC estimator (Song et al. 2012) instead of the biased one.

    Returns:
        CKA in [0, 1] (the debiased value can fall slightly below 0); ``nan`` when a representation
        is constant over the examples.

    Example:
        >>> import numpy as np
        >>> rng = np.random.RandomState(1337)
        >>> x = rng.randn(100, 10); y = rng.randn(100, 10) + x
        >>> round(cka(x, y), 5), round(cka(x, y, kernel="rbf", threshold=0.5), 5), round(cka(x, y, debiased=True), 5)
        (0.55761, 0.65483, 0.51346)
    """
    kernel = check_kernel(kernel)
    threshold = check_number(threshold, "threshold", low=0.0, low_open=True)
    fx, fy = _features(x, "x"), _features(y, "y")
    if fx.shape[0] != fy.shape[0]:
        raise CnnlensError(f"x and y must hold the same examples: {fx.shape[0]} rows against {fy.shape[0]}", param="y")
    if fx.shape[0] < min_examples(bool(debiased)):
        raise CnnlensError(f"CKA needs at least {min_examples(bool(debiased))} examples{' (debiased)' if debiased else ''}, got {fx.shape[0]}", param="x")
    xy, xx, yy = hsic_terms([gram(fx, kernel, threshold)], [gram(fy, kernel, threshold)], bool(debiased))
    return cka_ratio(float(xy[0, 0]), float(xx[0]), float(yy[0]))


def hsic_terms(grams_a: Sequence[torch.Tensor], grams_b: Sequence[torch.Tensor], debiased: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The HSIC estimates of one batch: ``(cross (A, B), self_a (A,), self_b (B,))`` for Gram matrices
    of ``A`` and ``B`` representations of the same examples (float64).

    Minibatch CKA averages each over batches and takes ``cross / sqrt(self_a ⊗ self_b)``.
    """
    n = grams_a[0].shape[-1]
    ca = torch.stack([center_gram(k, debiased) for k in grams_a]).flatten(1)
    cb = ca if grams_b is grams_a else torch.stack([center_gram(k, debiased) for k in grams_b]).flatten(1)
    scale = _scale(n, debiased)
    cross = (ca @ cb.T) / scale
    self_a = (ca * ca).sum(1) / scale
    self_b = self_a if cb is ca else (cb * cb).sum(1) / scale
    return cross, self_a, self_b


def cka_ratio(cross: float, self_a: float, self_b: float) -> float:
    """``cross / sqrt(self_a · self_b)``; nan when either is not positive (a constant representation)."""
    if not (self_a > 0 and self_b > 0) or not math.isfinite(cross):
        return math.nan
    return cross / math.sqrt(self_a * self_b)
