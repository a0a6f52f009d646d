"""Per-backbone loss weights for style transfer, and readable layer aliases.

The default *layers* of style transfer and inversion live in the model registry
(:func:`cnnlens.default_layers` with ``"content"``, ``"style"`` or ``"invert"``); this module adds
what only style transfer needs: the content, style and TV weights tuned for each backbone's
activation scale, and the Caffe-style names of the VGG layers (``relu4_2``, ``conv1_1``, ``pool3``).
Every tap is a module *output*: on a ReLU module it is post-ReLU, on a conv it is pre-ReLU (the
capture is cloned before an in-place ReLU runs, so the two never alias).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    """Loss weights (and layer aliases) for one architecture.

    ``content_weight`` / ``style_weight`` are tuned for the cnnlens loss conventions
    (:mod:`cnnlens.style.losses`); ``style_layer_weights`` multiply the loss of each of the
    registry's default style layers (the total style loss is their weighted sum) and apply only when
    those default layers are used.
    """

    content_weight: float = 1.0
    style_weight: float = 1e3
    tv_weight: float = 0.0
    style_layer_weights: tuple[float, ...] | None = None
    aliases: dict[str, str] = field(default_factory=dict)


BACKBONES: dict[str, Backbone] = {
    # Gatys et al. / neural-style / pystiche layers; weights as pystiche (Gram ÷ H·W, MSE, 1 / 1e3)
    "vgg19": Backbone(aliases=vgg_aliases((2, 2, 4, 4, 4))),
    "vgg16": Backbone(aliases=vgg_aliases((2, 2, 3, 3, 3))),
    # style layers conv1 ReLU, fire3, fire5, fire7, fire9 (each fire output is its expand ReLUs, concatenated).
    # content_weight = 1 / mean(P²) and w_l = 1 / (5 · mean(A_l²)), the typical sizes of the content
    # features and style Grams of the ImageNet weights on photos and paintings at 256 px, so that every
    # term starts near 1 whatever the scale of the backbone's activations (Gatys et al. rescaled VGG's
    # weights to the same end). squeezenet's activations are ~10^4 x mobilenet's (Caffe 0-255 scale).
    "squeezenet1_0": Backbone(
        content_weight=1 / 3.7e4,
        style_weight=1e3,
        style_layer_weights=(1 / (5 * 2.1e6), 1 / (5 * 3.7e9), 1 / (5 * 7.7e9), 1 / (5 * 5.1e7), 1 / (5 * 1.4e5)),
    ),
    # the ReLU6 outputs of the 1x1 expansions (the block outputs are linear bottlenecks)
    "mobilenet_v2": Backbone(
        content_weight=1 / 0.037,
        style_weight=1e2,
        style_layer_weights=(1 / (5 * 0.028), 1 / (5 * 0.0045), 1 / (5 * 7.7e-4), 1 / (5 * 5.0e-4), 1 / (5 * 2.4e-5)),
    ),
}


def backbone(name: str) -> Backbone | None:
    """The weights for architecture ``name`` (``model_info(model).name``), or ``None`` (generic weights)."""
    return BACKBONES.get(name)


def resolve_layer_alias(model_name: str | None, layer: str) -> str:
    """``"relu4_2"`` -> ``"features.22"`` for vgg19; any other name is returned unchanged."""
    spec = BACKBONES.get(model_name) if model_name else None
    return layer if spec is None else spec.aliases.get(layer, layer)
