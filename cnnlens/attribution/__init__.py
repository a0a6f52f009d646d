"""Attribution maps: where in the image the network found the evidence for a class.

Grad-CAM, Grad-CAM++, guided Grad-CAM, occlusion, saliency, integrated gradients, SmoothGrad and LRP
on pixels in [0, 1], with two checks beside the maps: deletion and insertion curves against a random
map (Petsiuk et al. 2018), and the cascading model-randomization test (Adebayo et al. 2018). Guided
Grad-CAM uses cnnlens' guided backprop, which routes functional ReLUs too (googlenet, inception_v3,
densenet), where captum's ``GuidedGradCam`` sees only ``nn.ReLU`` modules. :func:`concept_relevance`
splits an LRP heatmap by the channels of a layer (Achtibat et al. 2023).

Example:
    >>> import cnnlens, torch
    >>> from cnnlens.attribution import attribute
    >>> model = cnnlens.create_model("resnet18", seed=0)
    >>> r = attribute(model, torch.rand(1, 3, 64, 64), ["gradcam", "saliency"], progress=False)
    >>> tuple(r.maps.shape), r.methods, r.layer
    ((1, 64, 64), ('gradcam', 'saliency'), 'layer4')
"""

from __future__ import annotations

from .crp import ConceptRelevance, channel_heatmaps, concept_relevance, parse_layer_units
from .faithfulness import (
    BASELINES,
    CURVES,
    RANDOM,
    RANDOM_GRID,
    Faithfulness,
    area,
    baseline_of,
    deletion_insertion,
    pixel_order,
    random_maps,
)
from .maps import Attribution, attribute, figure_names, resolve_targets
from .methods import (
    CAM_METHODS,
    DEFAULT_METHODS,
    METHODS,
    AttributionSettings,
    check_methods,
    gradcam,
    reduce_channels,
)
from .plots import (
    plot_attribution,
    plot_concept_relevance,
    plot_faithfulness,
    plot_overview,
    plot_randomization,
)
from .sanity import (
    RandomizationTest,
    cascade_blocks,
    randomization_test,
    reinitialize,
    spearman,
)
from .spatial import Grid, attribution_layer, grid_of

__all__ = [
    "METHODS",
    "ConceptRelevance",
    "channel_heatmaps",
    "concept_relevance",
    "parse_layer_units",
    "plot_concept_relevance",
    "Attribution",
    "Faithfulness",
    "RandomizationTest",
    "AttributionSettings",
    "area",
    "attribute",
    "attribution_layer",
    "baseline_of",
    "cascade_blocks",
    "check_methods",
    "deletion_insertion",
    "grid_of",
    "gradcam",
    "plot_attribution",
    "plot_faithfulness",
    "plot_overview",
    "plot_randomization",
    "randomization_test",
    "reduce_channels",
    "reinitialize",
    "resolve_targets",
    "spearman",
]
