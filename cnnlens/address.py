"""The one unit address of cnnlens, in the CLI and the API.

========================  ===============================================================
``LAYER``                 a layer (dotted module name, ``layer4.1.conv2``)
``LAYER:CHANNEL``         one channel of it (``features.10:42``)
``LAYER:CHANNEL@Y,X``     one unit: the channel at row Y, column X of the layer's output
``logits:CLASS``          a class of the model's output, by index (``logits:388``) or name
                          (``logits:giant panda``, any case)
========================  ===============================================================

:func:`parse_unit` turns text into a :class:`Unit`; :func:`resolve_unit` checks it against a model
(layer names, channel and position ranges, class names), with did-you-mean on every part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from .errors import CnnlensError, did_you_mean

__all__ = ["LOGITS", "Unit", "parse_unit", "parse_units", "resolve_unit"]

LOGITS = "logits"
_UNIT = re.compile(r"^(?P<layer>[^:@]+)(?::(?P<channel>[^@]+))?(?:@(?P<y>-?\d+)\s*,\s*(?P<x>-?\d+))?$")


@dataclass(frozen=True)
class Unit:
    """A layer, a channel of it, or one unit at a position; ``layer == "logits"`` names the output.

    ``channel`` is an index; for logits it is the class index (and ``name`` the class name).
    """

    layer: str
    channel: int | None = None
    position: tuple[int, int] | None = None  # (y, x) in the layer's output
    name: str | None = None  # the class name for logits

    @property
    def is_logits(self) -> bool:
        return self.layer == LOGITS

    def __str__(self) -> str:
        text = self.layer
        if self.channel is not None:
            text += f":{self.channel}"
        if self.position is not None:
            text += f"@{self.position[0]},{self.position[1]}"
        return text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"unit": str(self), "layer": self.layer, "channel": self.channel}
        if self.position is not None:
            out["position"] = list(self.position)
        if self.name is not None:
            out["class_name"] = self.name
        return out


def parse_unit(text: str | Unit, *, name: str = "unit") -> Unit:
    """Parse ``LAYER``, ``LAYER:CHANNEL``, ``LAYER:CHANNEL@Y,X`` or ``logits:CLASS`` (syntax only;
    a class name stays in ``name`` until :func:`resolve_unit` looks it up)."""
    if isinstance(text, Unit):
        return text
    if not isinstance(text, str):
        raise CnnlensError(f"{name} must be text such as features.10:42, not {type(text).__name__}", param=name)
    m = _UNIT.match(text.strip())
    if not m:
        raise CnnlensError(f"{name} {text!r}: write LAYER, LAYER:CHANNEL, LAYER:CHANNEL@Y,X or logits:CLASS", param=name)
    layer = m["layer"].strip()
    channel_text = m["channel"].strip() if m["channel"] is not None else None
    position = (int(m["y"]), int(m["x"])) if m["y"] is not None else None
    if channel_text is None:
        if position is not None:
            raise CnnlensError(f"{name} {text!r}: a position needs a channel (LAYER:CHANNEL@Y,X)", param=name)
        return Unit(layer)
    if re.fullmatch(r"-?\d+", channel_text):
        channel = int(channel_text)
        if channel < 0:
            raise CnnlensError(f"{name} {text!r}: channel must be >= 0", param=name)
        return Unit(layer, channel, position)
    if layer != LOGITS and did_you_mean(layer, [LOGITS]):
        raise CnnlensError(f"{name} {text!r}: a class goes with logits: {LOGITS}:{channel_text}", param=name)
    if layer != LOGITS:
        raise CnnlensError(
            f"{name} {text!r}: channel must be an index: LAYER:CHANNEL such as {layer}:3 (class names go with logits:CLASS)", param=name
        )
    if position is not None:
        raise CnnlensError(f"{name} {text!r}: logits have no position", param=name)
    return Unit(layer, None, None, channel_text)


def resolve_unit(
    unit: str | Unit,
    model: Any,
    *,
    categories: tuple[str, ...] | list[str] | None = None,
    num_classes: int | None = None,
    shape: tuple[int, ...] | None = None,
    name: str = "unit",
) -> Unit:
    """Check ``unit`` against ``model`` and fill in class names and indices.

    Args:
        categories: class names of the model's output (default: from :func:`cnnlens.model_info`).
        num_classes: number of outputs, when known (else ``len(categories)``).
        shape: the layer's output shape ``(N, C, H, W)`` (or ``(N, C)``), when known, to check the
            channel and the position.

    Raises:
        CnnlensError: unknown layer (closest names), channel or position out of range, unknown class
            name (closest names).
    """
    from .layers import get_layer
    from .registry import model_info

    u = parse_unit(unit, name=name)
    if u.is_logits:
        cats = list(categories) if categories is not None else list(model_info(model).categories or [])
        n = num_classes or (len(cats) if cats else None)
        if u.channel is None and u.name is None:
            raise CnnlensError(f"{name} logits needs a class: logits:CLASS (an index or a class name)", param=name)
        if u.name is not None:
            lowered = {c.lower(): i for i, c in enumerate(cats)}
            if u.name.lower() not in lowered:
                hint = did_you_mean(u.name, cats) if cats else " (the model has no class names; give an index)"
                raise CnnlensError(f"{name}: unknown class {u.name!r}{hint}", param=name)
            index = lowered[u.name.lower()]
            return replace(u, channel=index, name=cats[index])
        if n is not None and not 0 <= u.channel < n:  # type: ignore[operator]
            raise CnnlensError(f"{name}: class {u.channel} out of range, the model has classes 0..{n - 1}", param=name)
        return replace(u, name=cats[u.channel] if cats and u.channel < len(cats) else None)  # type: ignore[operator]
    try:
        get_layer(model, u.layer)
    except CnnlensError as exc:
        if u.layer.lower() == LOGITS or did_you_mean(u.layer, [LOGITS]):  # "logits", "logit:281", "Logits:tabby": the output is logits:CLASS
            meant = str(replace(u, layer=LOGITS)) if u.channel is not None else f"{LOGITS}:{u.name or 'CLASS'}"
            raise CnnlensError(f"{name}: unknown layer {u.layer!r}; the model's output is {meant}", param=name) from None
        raise CnnlensError(f"{name}: {exc}", param=name) from None
    if shape is not None and u.channel is not None:
        if len(shape) < 2 or not 0 <= u.channel < shape[1]:
            raise CnnlensError(f"{name}: channel {u.channel} out of range, {u.layer} has channels 0..{shape[1] - 1 if len(shape) > 1 else 0}", param=name)
        if u.position is not None:
            if len(shape) != 4:
                raise CnnlensError(f"{name}: {u.layer} has no spatial positions (output shape {tuple(shape)})", param=name)
            y, x = u.position
            if not (0 <= y < shape[2] and 0 <= x < shape[3]):
                raise CnnlensError(f"{name}: position {y},{x} outside {u.layer}'s {shape[2]}x{shape[3]} output", param=name)
    return u


def parse_units(units: Any, name: str = "unit") -> list[Unit]:
    """One unit address or several as a list of :class:`Unit` (syntax only)."""
    items = [units] if isinstance(units, (str, Unit)) else list(units)
    if not items:
        raise CnnlensError(f"{name} is empty; give a layer or LAYER:CHANNEL", param=name)
    return [parse_unit(u, name=name) for u in items]
