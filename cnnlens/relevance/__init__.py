"""Relevance propagation (LRP, Bach et al. 2015) on any CNN, exact on branching graphs: the engine
that attribution maps (``attribute(..., method="lrp")``), concept relevance
(:func:`cnnlens.attribution.concept_relevance`) and relevance maximization (``top_patches`` by
relevance) stand on.

The rules are applied per call of the forward pass (:class:`RelevanceMode`), so residual adds,
concatenations, functional activations, pooling and BatchNorm (folded into the convolution before
it) need no adapters; what LRP cannot follow (a multiplicative gate, LayerNorm, attention) is refused
in one line naming the call. With the same composite, the heatmaps equal zennit's.

Example:
    >>> import cnnlens, torch
    >>> from cnnlens.relevance import propagate
    >>> net = cnnlens.create_model("resnet18", seed=0)
    >>> p = propagate(net, torch.rand(1, 3, 64, 64))
    >>> p.relevance.shape
    torch.Size([1, 3, 64, 64])
"""

from __future__ import annotations

from .lrp import RelevancePass, make_composite, propagate
from .mode import RelevanceMode, RuleRecord
from .rules import COMPOSITES, DEFAULT_COMPOSITE, RULES, Composite, LinearRule, Share, composite, stabilize

__all__ = [
    "COMPOSITES",
    "DEFAULT_COMPOSITE",
    "RULES",
    "Composite",
    "LinearRule",
    "RelevanceMode",
    "RelevancePass",
    "RuleRecord",
    "Share",
    "composite",
    "make_composite",
    "propagate",
    "stabilize",
]
