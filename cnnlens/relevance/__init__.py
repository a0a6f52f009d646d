"""Relevance propagation: LRP heatmaps (Bach et al. 2015) on any CNN, exact on branching graphs, and
concept relevance (Achtibat et al. 2023): which channels of a layer carry a decision, and where.

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

from .conditional import ConceptRelevance, channel_heatmaps, concept_relevance, parse_layer_units
from .lrp import RelevancePass, make_composite, propagate
from .mode import RelevanceMode, RuleRecord
from .rules import COMPOSITES, DEFAULT_COMPOSITE, RULES, Composite, LinearRule, composite, stabilize

__all__ = [
    "COMPOSITES",
    "DEFAULT_COMPOSITE",
    "RULES",
    "Composite",
    "ConceptRelevance",
    "LinearRule",
    "RelevanceMode",
    "RelevancePass",
    "RuleRecord",
    "channel_heatmaps",
    "composite",
    "concept_relevance",
    "make_composite",
    "parse_layer_units",
    "propagate",
    "stabilize",
]
