"""The three terms of Gatys' objective and Mahendran & Vedaldi's reconstruction loss, as plain functions.

Conventions (all of them independent of the image size, so weights carry from 64 px to 1024 px):

- content: ``mean((F - P)²)`` over all ``C·H·W`` elements. Gatys' ``½ Σ (F - P)²`` equals
  ``(C·H·W / 2)`` times it.
- style, one layer: ``mean((G - A)²)`` over the ``C²`` entries, with ``G = F Fᵀ / (H·W)``
  (:func:`~cnnlens.style.gram.gram_matrix`). Gatys' ``E_l = Σ (Ĝ - Â)² / (4 N_l² M_l²)`` with
  unnormalized Grams equals a quarter of it (``N_l = C``, ``M_l = H·W``).
- total variation: ``mean(((x[i+1,j] - x[i,j])² + (x[i,j+1] - x[i,j])²)^(β/2))`` (Mahendran &
  Vedaldi's ``TV^β``, divided by the number of terms).
- inversion: ``‖Φ(x) - Φ₀‖² / ‖Φ₀‖²`` (Mahendran & Vedaldi's normalized Euclidean loss).
"""

from __future__ import annotations

import torch

from .gram import Normalization, gram_matrix

__all__ = ["content_loss", "reconstruction_loss", "style_layer_loss", "total_variation"]


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean((features - target)²)``: Gatys' content loss divided by ``C·H·W / 2``."""
    return torch.mean((features - target) ** 2)


def style_layer_loss(
    features: torch.Tensor, target_gram: torch.Tensor, *, normalization: Normalization = "positions"
) -> torch.Tensor:
    """``mean((gram(features) - target_gram)²)`` for one layer; ``target_gram`` is ``(C, C)`` or ``(B, C, C)``.

    With the default normalization it is ``4 E_l`` of Gatys et al. (2016, eq. 4).
    """
    g = gram_matrix(features, normalization)
    if g.dim() == 3 and target_gram.dim() == 2:
        target_gram = target_gram.unsqueeze(0)
    return torch.mean((g - target_gram) ** 2)


def total_variation(image: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """Mahendran & Vedaldi's ``TV^β`` of ``(B, C, H, W)`` or ``(C, H, W)`` pixels, averaged over its terms.

    ``β = 2`` (the default) penalizes smooth gradients; ``β = 1`` is the classic (edge-preserving)
    total variation. For ``β < 2`` a tiny epsilon keeps the gradient finite where the image is flat.
    """
    x = image.unsqueeze(0) if image.dim() == 3 else image
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    sq = dy**2 + dx**2
    if beta == 2.0:
        return sq.mean()
    return (sq + 1e-8).pow(beta / 2).mean()


def reconstruction_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``‖features - target‖² / ‖target‖²`` (Mahendran & Vedaldi 2015, eq. 1 with their normalization)."""
    return torch.sum((features - target) ** 2) / torch.sum(target**2).clamp_min(1e-12)
