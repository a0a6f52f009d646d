"""Representations by depth: how similar the layers of networks are (CKA), how much of a labelling
each layer makes linearly readable (probes), and where images fall in each layer's feature space
(embeddings).

Example:
    >>> import cnnlens, torch
    >>> from cnnlens.representations import cka
    >>> x = torch.randn(50, 8, dtype=torch.float64)
    >>> round(cka(x, 3 * x), 6)
    1.0
"""

from __future__ import annotations

from .cka import KERNELS, center_gram, cka, cka_ratio, gram, hsic_terms
from .embed import EMBED_METHODS, Embedding, embed, pca_2d
from .features import (
    Tap,
    collect_pooled,
    flat_features,
    image_sources,
    labelled_images,
    make_tap,
    pooled_features,
    read_taps,
)
from .probe import LayerProbe, Probe, fit_probe, probe, stratified_folds
from .similarity import Similarity, SimilarityState, similarity

__all__ = [
    "EMBED_METHODS",
    "Embedding",
    "KERNELS",
    "LayerProbe",
    "Probe",
    "Similarity",
    "SimilarityState",
    "Tap",
    "center_gram",
    "cka",
    "cka_ratio",
    "collect_pooled",
    "embed",
    "fit_probe",
    "flat_features",
    "image_sources",
    "gram",
    "hsic_terms",
    "labelled_images",
    "make_tap",
    "pca_2d",
    "pooled_features",
    "probe",
    "read_taps",
    "similarity",
    "stratified_folds",
]
