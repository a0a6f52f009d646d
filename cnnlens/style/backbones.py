"""Per-backbone defaults for style transfer: which layers, which weights, and readable layer aliases.

Layer names are the dotted module names of the torchvision model (``cnnlens layers MODEL``); the VGGs
also accept Caffe-style aliases (``relu4_2``, ``conv1_1``, ``pool3``). Every tap is a module *output*:
on a ReLU module it is post-ReLU, on a conv it is pre-ReLU (the capture is cloned before the in-place
ReLU runs, so the two never alias, pitfall #1/#29).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import CnnlensError

__all__ = ["BACKBONES", "Backbone", "backbone", "resolve_layer_alias", "vgg_aliases"]


def vgg_aliases(blocks: tuple[int, ...]) -> dict[str, str]:
    """``{"conv1_1": "features.0", "relu1_1": "features.1", ..., "pool1": "features.4", ...}`` for a torchvision VGG."""
    aliases: dict[str, str] = {}
    index = 0
    for b, convs in enumerate(blocks, start=1):
        for c in range(1, convs + 1):
            aliases[f"conv{b}_{c}"] = f"features.{index}"
            aliases[f"relu{b}_{c}"] = f"features.{index + 1}"
            index += 2
        aliases[f"pool{b}"] = f"features.{index}"
        index += 1
    return aliases


@dataclass(frozen=True)
class Backbone:
    """Defaults for one torchvision architecture.

    ``content_weight`` / ``style_weight`` are tuned for the cnnlens loss conventions
    (:mod:`cnnlens.style.losses`) and the weights named in ``weights``; ``style_layer_weights``
    multiply each style layer's loss (the total style loss is their weighted mean).
    """

    content_layer: str
    style_layers: tuple[str, ...]
    content_weight: float = 1.0
    style_weight: float = 1e3
    tv_weight: float = 0.0
    style_layer_weights: tuple[float, ...] | None = None
    weights: str = "DEFAULT"
    aliases: dict[str, str] = field(default_factory=dict)
    invert_layers: tuple[str, ...] = ()
    note: str = ""


_VGG19 = vgg_aliases((2, 2, 4, 4, 4))
_VGG16 = vgg_aliases((2, 2, 3, 3, 3))

BACKBONES: dict[str, Backbone] = {
    # Gatys et al. / neural-style / pystiche layers; weights as pystiche (Gram ÷ H·W, MSE, 1 / 1e3)
    "vgg19": Backbone(
        content_layer="relu4_2",
        style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        aliases=_VGG19,
        invert_layers=("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4"),
    ),
    "vgg16": Backbone(
        content_layer="relu4_2",
        style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        aliases=_VGG16,
        invert_layers=("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"),
    ),
    # conv1 ReLU, fire3, fire5, fire7, fire9 (each fire output is its expand ReLUs, concatenated)
    # Weights: content_weight = 1 / mean(P²) and w_l = 1 / (5 · mean(A_l²)), the typical sizes of the
    # content features and style Grams on ../shared/data photos and paintings at 256 px, so that every
    # term starts near 1 whatever the scale of the backbone's activations (Gatys et al. rescaled VGG's
    # weights to the same end). squeezenet's activations are ~10^4 x mobilenet's (Caffe 0-255 scale).
    "squeezenet1_0": Backbone(
        content_layer="features.8",
        style_layers=("features.1", "features.4", "features.7", "features.9", "features.12"),
        content_weight=1 / 3.7e4,
        style_weight=1e3,
        style_layer_weights=(1 / (5 * 2.1e6), 1 / (5 * 3.7e9), 1 / (5 * 7.7e9), 1 / (5 * 5.1e7), 1 / (5 * 1.4e5)),
        weights="../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth",
        invert_layers=("features.1", "features.4", "features.7", "features.10", "features.12"),
    ),
    # the ReLU6 outputs of the 1x1 expansions (the block outputs are linear bottlenecks)
    "mobilenet_v2": Backbone(
        content_layer="features.7.conv.0",
        style_layers=("features.0", "features.2.conv.0", "features.4.conv.0", "features.7.conv.0", "features.14.conv.0"),
        content_weight=1 / 0.037,
        style_weight=1e2,
        style_layer_weights=(1 / (5 * 0.028), 1 / (5 * 0.0045), 1 / (5 * 7.7e-4), 1 / (5 * 5.0e-4), 1 / (5 * 2.4e-5)),
        weights="../shared/data/imagenet/mobilenet_v2_imagenet_dequantized.pth",
        invert_layers=("features.0", "features.2.conv.0", "features.4.conv.0", "features.7.conv.0", "features.14.conv.0"),
    ),
}


def backbone(name: str) -> Backbone | None:
    """The defaults for architecture ``name``, or ``None`` when cnnlens has none (give layers yourself)."""
    return BACKBONES.get(name)


def resolve_layer_alias(model_name: str | None, layer: str) -> str:
    """``"relu4_2"`` -> ``"features.22"`` for vgg19; any other name is returned unchanged."""
    if model_name is None:
        return layer
    spec = BACKBONES.get(model_name)
    if spec is None:
        return layer
    return spec.aliases.get(layer, layer)


def require_backbone(name: str) -> Backbone:
    spec = BACKBONES.get(name)
    if spec is None:
        raise CnnlensError(
            f"no default style layers for {name!r} (cnnlens has them for {', '.join(sorted(BACKBONES))}); "
            "pass --content-layer and --style-layer"
        )
    return spec
