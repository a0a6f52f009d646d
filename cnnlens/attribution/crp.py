"""Concept relevance (Achtibat et al. 2023, "From attribution maps to human-understandable
explanations through Concept Relevance Propagation"): which channels of a layer carry a decision,
and where in the image each of them found its evidence.

LRP itself is the core's :mod:`cnnlens.relevance` (rules applied per call).

- the relevance of channel ``c`` of a layer is the LRP relevance arriving at that channel, summed
  over positions; its *share* is that over the layer's total (which equals the explained logit less
  what the layers above absorbed in biases and stabilisers);
- its conditional heatmap is the LRP heatmap with the relevance at the layer masked to channel
  ``c`` (on every path that reads the layer: shortcuts and concatenations alike). The conditional
  heatmaps of all channels of a layer add up to the full heatmap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..address import parse_units, resolve_unit
from ..checks import check_int
from ..errors import CnnlensError
from ..pixelnet import image_preprocessing, unwrap
from ..pixels import Preprocessing, as_pixels, default_fit
from ..registry import ModelInfo, model_info
from ..relevance import DEFAULT_COMPOSITE, Composite, make_composite, propagate
from ..results import Result
from .maps import resolve_targets

__all__ = ["ConceptRelevance", "channel_heatmaps", "concept_relevance", "parse_layer_units"]


def parse_layer_units(model: nn.Module, unit: Any, name: str = "unit") -> tuple[str, list[int] | None]:
    """``LAYER`` or ``LAYER:CHANNEL`` (or a list of channels of one layer) as ``(layer, channels)``;
    channels None for the whole layer."""
    net, _ = unwrap(model)
    units = [resolve_unit(u, net, name=name) for u in parse_units(unit, name)]
    layers = list(dict.fromkeys(u.layer for u in units))
    if len(layers) != 1:
        raise CnnlensError(f"{name}: give channels of one layer, not {', '.join(layers)}", param=name)
    if any(u.is_logits for u in units):
        raise CnnlensError(f"{name}: the logits are what LRP explains; give a layer below them (LAYER or LAYER:CHANNEL)", param=name)
    if any(u.position is not None for u in units):
        raise CnnlensError(f"{name}: concept relevance conditions on whole channels; give LAYER:CHANNEL without @Y,X", param=name)
    channels = [int(u.channel) for u in units if u.channel is not None]
    if channels and len(channels) != len(units):
        raise CnnlensError(f"{name}: give either the layer {layers[0]} or channels of it, not both", param=name)
    return layers[0], (list(dict.fromkeys(channels)) or None)


def channel_heatmaps(
    model: nn.Module,
    pixels: torch.Tensor,
    layer: str,
    channels: Sequence[int],
    target: int,
    *,
    composite: str | Composite = DEFAULT_COMPOSITE,
    batch_size: int = 16,
    preprocessing: Preprocessing | None = None,
) -> torch.Tensor:
    """``(K, C, H, W)``: the LRP heatmap of ``pixels`` (one image, ``(1, C, H, W)``) for class
    ``target``, conditioned on each of ``channels`` of ``layer`` in turn (batches of copies)."""
    out = []
    for start in range(0, len(channels), batch_size):
        chunk = list(channels[start : start + batch_size])
        x = pixels.expand(len(chunk), *pixels.shape[1:])
        got = propagate(model, x, [target] * len(chunk), composite=composite, layers=[layer], condition={layer: chunk}, preprocessing=preprocessing, records=False)
        assert got.relevance is not None
        out.append(got.relevance.cpu())
    return torch.cat(out)


@dataclass(repr=False)
class ConceptRelevance(Result):
    """What :func:`concept_relevance` returns.

    Attributes:
        image: ``(C, H, W)`` the pixels explained; ``target``/``target_name``/``probability``: the class.
        layer: the layer; ``relevance``: ``(channels,)`` each channel's relevance (summed over positions);
        ``share``: ``relevance / relevance.sum()``; ``ranking``: channels by relevance, strongest first.
        heatmap: ``(H, W)`` the full LRP heatmap (colour channels summed).
        channels: the channels shown; ``heatmaps``: ``(K, H, W)`` their conditional heatmaps.
        explained: the target logit (the relevance put at the output); ``layer_total``: the
            relevance that reached the layer; ``input_total``: the pixels'.
        composite: the rules.
    """

    image: torch.Tensor
    layer: str
    target: int
    target_name: str
    probability: float
    relevance: torch.Tensor
    heatmap: torch.Tensor
    channels: list[int]
    heatmaps: torch.Tensor
    explained: float
    layer_total: float
    input_total: float
    composite: str
    given: bool = False
    info: ModelInfo | None = field(default=None)

    @property
    def share(self) -> torch.Tensor:
        total = float(self.relevance.sum())
        return self.relevance / total if total != 0 else torch.zeros_like(self.relevance)

    @property
    def ranking(self) -> list[int]:
        return [int(i) for i in torch.argsort(self.relevance, descending=True, stable=True)]

    def top(self, k: int = 10) -> list[tuple[int, float, float]]:
        """``(channel, relevance, share)`` of the ``k`` channels with the most relevance."""
        share = self.share
        return [(c, float(self.relevance[c]), float(share[c])) for c in self.ranking[:k]]

    def to_dict(self) -> dict[str, Any]:
        share = self.share
        return {
            "model": self.info.to_dict() if self.info else None,
            "layer": self.layer,
            "target": self.target,
            "target_name": self.target_name,
            "probability": self.probability,
            "composite": self.composite,
            "explained": self.explained,
            "layer_total": self.layer_total,
            "input_total": self.input_total,
            "channels": [
                {"channel": c, "relevance": float(self.relevance[c]), "share": float(share[c])} for c in self.ranking
            ],
            "shown": self.channels,
            "heatmap_sums": {str(c): float(h.sum()) for c, h in zip(self.channels, self.heatmaps)},
        }

    def _summary(self) -> dict[str, Any]:
        top = ", ".join(f"{c} ({100 * s:.1f} %)" for c, _, s in self.top(5))
        return {"layer": self.layer, "target": self.target_name, "top channels": top}

    def to_text(self) -> str:
        lines = [
            f"{self.layer} for {self.target_name} ({100 * self.probability:.1f} %), {self.composite}: "
            f"logit {self.explained:.4g}, relevance at the layer {self.layer_total:.4g}, at the pixels {self.input_total:.4g}",
            f"{'channel':>8} {'relevance':>11} {'share':>8}",
        ]
        lines += [f"{c:>8} {r:>11.4g} {100 * s:>7.1f}%" for c, r, s in self.top(min(20, len(self.relevance)))]
        return "\n".join(lines)

    def figure(self, **kwargs: Any) -> Any:
        from .plots import plot_concept_relevance

        return plot_concept_relevance(self, **kwargs)


def concept_relevance(
    model: nn.Module,
    image: Any,
    unit: Any,
    *,
    target: Any = "top",
    k: int = 6,
    composite: str | Composite = DEFAULT_COMPOSITE,
    size: int | None = None,
    batch_size: int = 16,
    preprocessing: Preprocessing | None = None,
) -> ConceptRelevance:
    """Which channels of a layer carry the decision for ``target`` on ``image``, with their shares
    and conditional heatmaps (module docstring).

    Args:
        model: any CNN classifier LRP can follow (:mod:`cnnlens.relevance.mode`); left as it was.
        image: a file, a PIL image, an array or pixels ``(C, H, W)``/``(1, C, H, W)`` in [0, 1]
            (files are resized and cropped like the weights expect; tensors are taken as they are).
        unit: ``LAYER`` (heatmaps of its ``k`` most relevant channels) or ``LAYER:CHANNEL`` (a list
            of them: those channels).
        target: the class: ``"top"``, an index, a name or ``logits:CLASS``.
        k: channels shown when ``unit`` is a whole layer.
        composite: LRP's rules (:data:`~cnnlens.relevance.rules.COMPOSITES`).
        size: square side to resize and crop to instead of the preprocessing's.
        batch_size: conditional heatmaps computed per pass.

    Example:
        >>> import cnnlens, torch
        >>> net = cnnlens.create_model("resnet18", seed=0)
        >>> r = concept_relevance(net, torch.rand(3, 64, 64), "layer3", k=4)
        >>> r.heatmaps.shape, len(r.relevance)
        (torch.Size([4, 64, 64]), 256)
    """
    k = check_int(k, "k", low=1, high=100_000)
    batch_size = check_int(batch_size, "batch_size", low=1, high=65_536)
    layer, channels = parse_layer_units(model, unit)
    prep = image_preprocessing(model, preprocessing, size)
    rules = make_composite(model, composite, preprocessing=prep)
    (wanted,) = resolve_targets(target, model) if not isinstance(target, list) else resolve_targets(target[:1], model)
    pixels = as_pixels(image, prep, fit=default_fit(image, size=size, preprocessing=prep), name="image")
    if pixels.shape[0] != 1:
        raise CnnlensError(f"image: one image, not a batch of {pixels.shape[0]}", param="image")
    full = propagate(model, pixels, [-1 if wanted is None else wanted], composite=rules, layers=[layer], preprocessing=prep)
    at_layer = full.layers[layer]
    if at_layer.dim() < 2:
        raise CnnlensError(f"unit: {layer} has no channels", param="unit")
    per_channel = at_layer.reshape(at_layer.shape[0], at_layer.shape[1], -1).sum(-1)[0].float().cpu()
    n = per_channel.numel()
    if channels is not None:
        bad = [c for c in channels if c >= n]
        if bad:
            raise CnnlensError(f"unit: channel {bad[0]} out of range, {layer} has channels 0..{n - 1}", param="unit")
        shown = channels
    else:
        shown = [int(c) for c in torch.argsort(per_channel, descending=True, stable=True)[: min(k, n)]]
    t = int(full.targets[0])
    maps = channel_heatmaps(model, pixels, layer, shown, t, composite=rules, batch_size=batch_size, preprocessing=prep)
    info = model_info(model)
    cats = info.categories
    probability = float(torch.softmax(full.logits.float(), 1)[0, t])
    assert full.relevance is not None
    return ConceptRelevance(
        image=pixels[0].cpu(),
        layer=layer,
        target=t,
        target_name=cats[t] if cats and t < len(cats) else f"class {t}",
        probability=probability,
        relevance=per_channel,
        heatmap=full.relevance[0].sum(0).float().cpu(),
        channels=shown,
        heatmaps=maps.sum(1).float(),
        explained=float(full.explained[0]),
        layer_total=float(per_channel.sum()),
        input_total=float(full.relevance[0].sum()),
        composite=rules.name,
        given=wanted is not None,
        info=info,
    )
