"""Gram matrices of feature maps, with the normalizations used across the style-transfer literature.

cnnlens uses ``normalization="positions"``: ``G = F Fᵀ / (H·W)`` for a ``(C, H, W)`` feature map
reshaped to ``F`` of shape ``(C, H·W)``. Each entry is the *average* over positions of a product of
two channels, so the Gram of a texture does not change when the image is resized, and the style
image may have another size than the content image.
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["GRAM_NORMALIZATIONS", "Normalization", "gram_matrix"]

Normalization = Literal["positions", "elements", "none"]

#: what each normalization divides ``F Fᵀ`` by, and who uses it
GRAM_NORMALIZATIONS: dict[str, str] = {
    "positions": "H·W (cnnlens, pystiche gram_matrix(normalize=True), Gatys' own PyTorch code)",
    "elements": "C·H·W (PyTorch tutorial a·b·c·d, neural-style-pt)",
    "none": "1 (Gatys et al. 2016 paper; the 1/(4N²M²) factor is in their loss)",
}


class _SelfOuter(torch.autograd.Function):
    """``F Fᵀ`` whose backward is one matrix product, ``(dG + dGᵀ) F``, where autograd's bmm takes two."""

    @staticmethod
    def forward(ctx, flat: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(flat)
        return torch.bmm(flat, flat.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (flat,) = ctx.saved_tensors
        return torch.bmm(grad + grad.transpose(1, 2), flat)


def gram_matrix(features: torch.Tensor, normalization: Normalization = "positions") -> torch.Tensor:
    """The Gram matrix of ``features`` ``(B, C, H, W)`` (or ``(C, H, W)``): ``(B, C, C)`` (or ``(C, C)``).

    Args:
        features: a feature map.
        normalization: ``"positions"`` divides by ``H·W`` (the cnnlens default: size independent),
            ``"elements"`` by ``C·H·W``, ``"none"`` leaves ``F Fᵀ`` as it is.

    Example:
        >>> import torch
        >>> gram_matrix(torch.ones(1, 2, 4, 4))
        tensor([[[1., 1.],
                 [1., 1.]]])
    """
    single = features.dim() == 3
    x = features.unsqueeze(0) if single else features
    if x.dim() != 4:
        raise ValueError(f"gram_matrix takes (B, C, H, W) or (C, H, W) features, not {tuple(features.shape)}")
    b, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        flat = x.permute(0, 2, 3, 1).reshape(b, h * w, c).transpose(1, 2)  # a view: no copy of the features
    else:
        flat = x.reshape(b, c, h * w)
    g = _SelfOuter.apply(flat)
    if normalization == "positions":
        g = g / (h * w)
    elif normalization == "elements":
        g = g / (c * h * w)
    elif normalization != "none":
        raise ValueError(f"unknown Gram normalization {normalization!r}; use one of {sorted(GRAM_NORMALIZATIONS)}")
    return g[0] if single else g
