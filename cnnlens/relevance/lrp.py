"""``propagate()``: one LRP pass over a batch, with relevance read (and optionally conditioned) at layers.

The relevance of a layer's output is the "gradient" that arrives there in the LRP backward pass
(every rule hands relevance down in place of the gradient). Conditioning on channels (concept
relevance, Achtibat et al. 2023) multiplies that relevance by a channel mask at the layer's output:
since the output is one tensor, whatever consumes it -- the next block, a shortcut, a concatenation
-- is masked alike, on every parallel path. The backward pass is linear in the relevance it carries
(the rules' denominators come from the forward pass), so the conditional heatmaps of all channels of
a layer add up to the full heatmap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..errors import CnnlensError
from ..hooks import eval_mode, hooked
from ..layers import get_layer, model_device, model_dtype
from ..pixelnet import class_logits, image_preprocessing, pixel_net, unwrap
from ..pixels import Preprocessing
from .mode import RelevanceMode, RuleRecord
from .rules import DEFAULT_COMPOSITE, Composite, composite

__all__ = ["RelevancePass", "make_composite", "propagate"]


@dataclass
class RelevancePass:
    """One LRP pass over a batch.

    Attributes:
        relevance: ``(N, C, H, W)`` the input pixels' relevance (None when only layers were asked).
        logits: ``(N, classes)``; ``targets``: ``(N,)`` the explained classes; ``explained``: the
            relevance put at the output (each image's target logit).
        layers: ``layers[name]`` ``(N, C, h, w)`` relevance arriving at that layer's output (before
            any condition's mask).
        records: per rule call of the backward pass, the relevance in and out and the terms its bias
            and stabiliser absorb (:class:`~cnnlens.relevance.mode.RuleRecord`).
        composite: the rules used.
    """

    relevance: torch.Tensor | None
    logits: torch.Tensor
    targets: torch.Tensor
    explained: torch.Tensor
    layers: dict[str, torch.Tensor] = field(default_factory=dict)
    records: list[RuleRecord] = field(default_factory=list)
    composite: Composite | None = None


class _Tap(torch.autograd.Function):
    """Identity forward; backward stores the relevance arriving at a layer and applies a mask."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, store: list[torch.Tensor], mask: torch.Tensor | None) -> torch.Tensor:  # type: ignore[override]
        ctx.store, ctx.mask = store, mask
        return x.clone()  # not a view: an in-place ReLU after the layer (squeezenet's features.1) changes the copy

    @staticmethod
    def backward(ctx: Any, r: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        ctx.store.append(r.detach())
        return (r if ctx.mask is None else r * ctx.mask), None, None


def make_composite(model: nn.Module, name: str | Composite = DEFAULT_COMPOSITE, *, epsilon: float = 1e-6, gamma: float = 0.25, preprocessing: Preprocessing | None = None) -> Composite:
    """The composite ``name`` for ``model``: z^B's bounds are the normalized image's range (pixels 0
    and 1 through the model's normalization)."""
    if isinstance(name, Composite):
        return name
    if not isinstance(name, str):
        raise CnnlensError(f"composite must be a name such as {DEFAULT_COMPOSITE}, not {type(name).__name__}", param="composite")
    from ..checks import check_number

    epsilon = check_number(epsilon, "epsilon", low=0.0, high=1e6)
    gamma = check_number(gamma, "gamma", low=0.0, high=1e6)
    prep = image_preprocessing(model, preprocessing)
    mean = torch.tensor(prep.mean).view(1, -1, 1, 1)
    std = torch.tensor(prep.std).view(1, -1, 1, 1)
    return composite(name, epsilon=epsilon, gamma=gamma, low=(0 - mean) / std, high=(1 - mean) / std)


def propagate(
    model: nn.Module,
    pixels: torch.Tensor,
    targets: torch.Tensor | Sequence[int] | None = None,
    *,
    composite: str | Composite = DEFAULT_COMPOSITE,
    layers: Sequence[str] = (),
    condition: dict[str, torch.Tensor | Sequence[int]] | None = None,
    input_relevance: bool = True,
    preprocessing: Preprocessing | None = None,
    records: bool = True,
) -> RelevancePass:
    """LRP of each image's target logit down to the pixels (and the relevance at ``layers``).

    Args:
        model: any CNN classifier (a :class:`~cnnlens.pixelnet.Normalized` one or a plain network
            with its weights' preprocessing); left exactly as it was.
        pixels: ``(N, C, H, W)`` prepared pixels in [0, 1].
        targets: ``(N,)`` class per image, -1 (or None for all) for its top class.
        composite: a composite name (:data:`~cnnlens.relevance.rules.COMPOSITES`) or a
            :class:`~cnnlens.relevance.rules.Composite`.
        layers: layers (dotted names of the network) whose output relevance to keep.
        condition: ``{layer: mask}``; the relevance at ``layer``'s output is multiplied by ``mask``
            (``(N, C)`` or broadcastable against the output), or ``{layer: [c_0, ..., c_N-1]}``:
            image ``i`` conditioned on channel ``c_i`` (one-hot rows).
        input_relevance: compute the pixels' relevance (else the backward pass stops at ``layers``).
        records: keep, per rule call, the relevance in and out and the bias and stabiliser terms
            (:attr:`RelevancePass.records`); without, a few passes fewer per layer.

    Raises:
        CnnlensError: a call LRP has no rule for (named), an unknown layer, a layer called twice.
    """
    net, _ = unwrap(model)
    comp = make_composite(model, composite, preprocessing=preprocessing)
    pixnet = pixel_net(model, preprocessing)
    device, dtype = model_device(net), model_dtype(net)
    condition = condition or {}
    names = list(dict.fromkeys([*layers, *condition]))
    stores: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    raws: dict[str, list[torch.Tensor]] = {n: [] for n in names}

    def tap(name: str) -> Any:
        mask = condition.get(name)

        def hook(module: nn.Module, args: Any, output: Any) -> Any:
            if not isinstance(output, torch.Tensor):
                raise CnnlensError(f"layer {name} returns {type(output).__name__}, not a tensor; pick a layer with a tensor output", param="layer")
            if raws[name]:
                raise CnnlensError(f"layer {name} is called more than once in a forward pass (a shared module); pick one called once", param="layer")
            m = None
            if isinstance(mask, torch.Tensor):
                m = mask.to(output.device, output.dtype)
                m = m.view(*m.shape, *([1] * (output.dim() - m.dim())))
            elif mask is not None:  # one channel per image
                chans = torch.as_tensor(list(mask), dtype=torch.long, device=output.device)
                if output.dim() < 2 or int(chans.max()) >= output.shape[1] or len(chans) != output.shape[0]:
                    raise CnnlensError(f"condition: {len(chans)} channels for {output.shape[0]} images of {name} with {output.shape[1] if output.dim() > 1 else 0} channels", param="unit")
                m = torch.zeros(output.shape[:2], device=output.device, dtype=output.dtype)
                m[torch.arange(len(chans), device=output.device), chans] = 1
                m = m.view(*m.shape, *([1] * (output.dim() - 2)))
            raws[name].append(output)
            return _Tap.apply(output, stores[name], m)

        return hook

    modules = [(get_layer(net, n), tap(n)) for n in names]
    x = pixels.to(device, dtype).detach().requires_grad_(True)
    with eval_mode(net), torch.enable_grad():
        mode = RelevanceMode(comp, records=records)
        with hooked(modules), mode:
            out = class_logits(pixnet, x)
        logits = out.detach()
        given = None if targets is None else torch.as_tensor(targets, dtype=torch.long).reshape(-1)
        t = logits.argmax(1) if given is None else torch.where(given.to(logits.device) >= 0, given.to(logits.device), logits.argmax(1))
        if int(t.max()) >= logits.shape[1]:
            raise CnnlensError(f"target: class {int(t.max())} out of range, the model has classes 0..{logits.shape[1] - 1}", param="target")
        rows = torch.arange(len(t), device=logits.device)
        start = torch.zeros_like(out)
        start[rows, t] = logits[rows, t]
        wanted = [x] if input_relevance else [raws[n][0] for n in names if raws[n]]
        for n in names:
            if not raws[n]:
                raise CnnlensError(f"layer {n} is not on the path to the output", param="layer")
        got = torch.autograd.grad(out, wanted, start, allow_unused=True)
    relevance = None
    if input_relevance:
        relevance = torch.zeros_like(x) if got[0] is None else got[0].detach()
    found = {n: stores[n][0] if stores[n] else torch.zeros_like(raws[n][0]).detach() for n in names}
    return RelevancePass(relevance, logits, t, logits[rows, t], found, list(reversed(mode.records)), comp)
