"""Objectives to maximize, composable with ``+``, ``-``, ``*`` and ``/`` by numbers.

An :class:`Objective` maps the captured activations to one value **per batch item** (a ``(B,)``
tensor), so that a batch can optimize a different unit in every image: ``channels("features.9",
[3, 7, 11])`` puts channel 3 on image 0, channel 7 on image 1 and channel 11 on image 2. The
renderer maximizes the sum.

Conventions (as in Lucid and lucent):

- ``channel`` is the mean over all spatial positions of one channel of the layer's output.
- ``neuron`` is the centre position (``x = W // 2``, ``y = H // 2``) unless given; a given position
  is clamped into the output of a transformed image that came out smaller.
- Activations are the module's output as captured by :func:`cnnlens.hooks.capture` (a clone, so
  a following in-place ReLU cannot change them): a ``Conv2d`` tap is pre-ReLU, a ``ReLU`` or a
  block (``features.9`` of squeezenet, a Fire module) is post-ReLU.
- ``class_logit`` reads the model's output (the logits, before softmax), stored under ``"logits"``.
- ``diversity`` is Lucid's: minus the mean cosine similarity of one item's Gram matrix with the
  other items' (so maximizing it pushes the batch apart).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..address import LOGITS, Unit
from ..errors import CnnlensError

__all__ = [
    "LOGITS",
    "INPUT",
    "Objective",
    "for_unit",
    "channel",
    "channels",
    "class_logit",
    "class_logits",
    "direction",
    "diversity",
    "layer_l2",
    "neuron",
    "neurons",
    "total_variation",
    "unit_label",
]

# LOGITS ("logits", from cnnlens.address) is the key of the model output in the activations mapping
INPUT = "input"  # key of the image (in [0, 1], after the transforms) in the activations mapping

Acts = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Objective:
    """``fn(acts) -> (B,)`` values to maximize, the layers it reads, and a readable name."""

    fn: Callable[[Acts], torch.Tensor]
    layers: frozenset[str] = field(default_factory=frozenset)
    name: str = "objective"
    batch_size: int | None = None  # the batch this objective was made for (None: any)

    def __call__(self, acts: Acts) -> torch.Tensor:
        return self.fn(acts)

    def __add__(self, other: object) -> Objective:
        if isinstance(other, (int, float)):
            value = float(other)
            return Objective(lambda a: self.fn(a) + value, self.layers, f"{self.name} + {value:g}", self.batch_size)
        if not isinstance(other, Objective):
            return NotImplemented
        return Objective(
            lambda a: self.fn(a) + other.fn(a),
            self.layers | other.layers,
            f"{self.name} + {other.name}",
            _merge_batch(self.batch_size, other.batch_size),
        )

    def __radd__(self, other: object) -> Objective:
        return self.__add__(other)  # sum([...]) starts from 0

    def __neg__(self) -> Objective:
        return Objective(lambda a: -self.fn(a), self.layers, f"-({self.name})", self.batch_size)

    def __sub__(self, other: object) -> Objective:
        if isinstance(other, (int, float)):
            return self + (-float(other))
        if not isinstance(other, Objective):
            return NotImplemented
        return self + (-other)

    def __rsub__(self, other: object) -> Objective:
        return (-self) + other

    def __mul__(self, other: object) -> Objective:
        if not isinstance(other, (int, float)):
            return NotImplemented
        w = float(other)
        return Objective(lambda a: w * self.fn(a), self.layers, f"{w:g} * ({self.name})", self.batch_size)

    __rmul__ = __mul__

    def __truediv__(self, other: object) -> Objective:
        if not isinstance(other, (int, float)):
            return NotImplemented
        return self * (1.0 / float(other))


def _merge_batch(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _select(values: torch.Tensor, batch: int | None) -> torch.Tensor:
    """Keep ``values`` (B,) for item ``batch`` only (zeros elsewhere), or all items."""
    if batch is None:
        return values
    if batch >= values.shape[0]:
        raise CnnlensError(f"objective for batch item {batch} but the batch has {values.shape[0]} images", param="batch")
    mask = torch.zeros_like(values)
    mask[batch] = 1.0
    return values * mask


def _spatial_mean(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).mean(1) if t.dim() > 1 else t


def channel(layer: str, n: int, *, batch: int | None = None) -> Objective:
    """Mean activation of channel ``n`` of ``layer`` (over all positions)."""

    def fn(acts: Acts) -> torch.Tensor:
        t = acts[layer]
        _check_channel(t, n, layer)
        return _select(_spatial_mean(t[:, n]), batch)

    return Objective(fn, frozenset([layer]), f"{layer}:{n}" + ("" if batch is None else f"@{batch}"), _need(batch))


def neuron(layer: str, n: int, *, x: int | None = None, y: int | None = None, batch: int | None = None) -> Objective:
    """Activation of channel ``n`` of ``layer`` at one position, by default the centre ``(H // 2, W // 2)``."""

    def fn(acts: Acts) -> torch.Tensor:
        t = acts[layer]
        _check_channel(t, n, layer)
        if t.dim() == 2:
            return _select(t[:, n], batch)
        h, w = t.shape[-2:]
        yy = h // 2 if y is None else min(y, h - 1)
        xx = w // 2 if x is None else min(x, w - 1)
        return _select(t[:, n, yy, xx], batch)

    return Objective(fn, frozenset([layer]), f"{layer}:{n} neuron" + ("" if batch is None else f"@{batch}"), _need(batch))


def class_logit(k: int, *, batch: int | None = None) -> Objective:
    """Logit of class ``k`` (the model's output before softmax)."""

    def fn(acts: Acts) -> torch.Tensor:
        t = acts[LOGITS]
        _check_channel(t, k, "the output")
        return _select(t[:, k], batch)

    return Objective(fn, frozenset([LOGITS]), f"class {k}" + ("" if batch is None else f"@{batch}"), _need(batch))


def direction(layer: str, vector: torch.Tensor | Sequence[float], *, batch: int | None = None) -> Objective:
    """Mean over positions of the cosine similarity between the activation vector and ``vector`` (lucent's)."""
    vec = torch.as_tensor(vector, dtype=torch.float32).flatten()

    def fn(acts: Acts) -> torch.Tensor:
        t = acts[layer]
        if t.shape[1] != vec.numel():
            raise CnnlensError(f"direction has {vec.numel()} values but {layer} has {t.shape[1]} channels", param="vector")
        v = vec.to(t.device, t.dtype).view(1, -1, *([1] * (t.dim() - 2)))
        return _select(_spatial_mean(F.cosine_similarity(t, v.expand_as(t), dim=1)), batch)

    return Objective(fn, frozenset([layer]), f"{layer} direction", _need(batch))


def layer_l2(layer: str, *, batch: int | None = None) -> Objective:
    """Mean of the squared activations of ``layer`` (the DeepDream objective)."""

    def fn(acts: Acts) -> torch.Tensor:
        return _select(acts[layer].pow(2).flatten(1).mean(1), batch)

    return Objective(fn, frozenset([layer]), f"{layer} L2", _need(batch))


def diversity(layer: str) -> Objective:
    """Minus the mean cosine similarity between each item's Gram matrix and the others' (Lucid's diversity)."""

    def fn(acts: Acts) -> torch.Tensor:
        t = acts[layer]
        b, c = t.shape[:2]
        if b < 2:
            return t.new_zeros(b)
        flat = t.reshape(b, c, -1)
        gram = torch.bmm(flat, flat.transpose(1, 2)).reshape(b, -1)
        sim = F.cosine_similarity(gram[:, None, :], gram[None, :, :], dim=-1)
        off = sim.sum(1) - sim.diagonal()
        return -off / (b - 1)

    return Objective(fn, frozenset([layer]), f"diversity({layer})")


def total_variation() -> Objective:
    """Minus the mean absolute difference of neighbouring pixels (use with a small positive weight)."""

    def fn(acts: Acts) -> torch.Tensor:
        x = acts[INPUT]
        dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
        dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
        return -(dx + dy)

    return Objective(fn, frozenset([INPUT]), "total_variation")


def channels(layer: str, ns: Sequence[int]) -> Objective:
    """Channel ``ns[i]`` on batch item ``i``: several channels optimized together in one batch."""
    return _per_item([channel(layer, n, batch=i) for i, n in enumerate(ns)])


def neurons(layer: str, ns: Sequence[int]) -> Objective:
    """Centre neuron of channel ``ns[i]`` on batch item ``i``."""
    return _per_item([neuron(layer, n, batch=i) for i, n in enumerate(ns)])


def class_logits(ks: Sequence[int]) -> Objective:
    """Logit of class ``ks[i]`` on batch item ``i``."""
    return _per_item([class_logit(k, batch=i) for i, k in enumerate(ks)])


def _per_item(parts: list[Objective]) -> Objective:
    if not parts:
        raise CnnlensError("give at least one channel or class")
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return Objective(total.fn, total.layers, ", ".join(p.name for p in parts), len(parts))


def for_unit(unit: Unit, *, batch: int | None = None) -> Objective:
    """The objective of a resolved unit address (:func:`cnnlens.address.resolve_unit`).

    ``logits:CLASS`` is :func:`class_logit`, ``LAYER:CHANNEL`` :func:`channel`, ``LAYER:CHANNEL@Y,X``
    :func:`neuron` at that position, and a bare ``LAYER`` :func:`layer_l2` (the DeepDream objective).
    The objective is named by the address (with the class name for logits).
    """
    if unit.is_logits:
        if unit.channel is None:
            raise CnnlensError(f"unit {unit}: resolve the class name first (cnnlens.resolve_unit)", param="unit")
        obj = class_logit(unit.channel, batch=batch)
    elif unit.channel is None:
        obj = layer_l2(unit.layer, batch=batch)
    elif unit.position is not None:
        obj = neuron(unit.layer, unit.channel, y=unit.position[0], x=unit.position[1], batch=batch)
    else:
        obj = channel(unit.layer, unit.channel, batch=batch)
    return Objective(obj.fn, obj.layers, unit_label(unit), obj.batch_size)


def unit_label(unit: Unit) -> str:
    """``features.9:3``, ``logits:130 (flamingo)`` (``logits:3`` where the class name is the index, as for digits)."""
    return f"{unit} ({unit.name})" if unit.is_logits and unit.name and unit.name != str(unit.channel) else str(unit)


def _need(batch: int | None) -> int | None:
    return None if batch is None else batch + 1


def _check_channel(t: torch.Tensor, n: int, layer: str) -> None:
    if t.dim() < 2 or not -t.shape[1] <= n < t.shape[1]:
        size = t.shape[1] if t.dim() >= 2 else 0
        raise CnnlensError(f"channel {n} is out of range: {layer} has {size} channels (0..{size - 1})")
