"""A unit's connections: the channels of an earlier layer that build it (:func:`inputs`), the units
of a later layer and the classes that use it (:func:`outputs`), weighed by expanded weights and by
contributions on images (:func:`contributions`); and the stage before or after a layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..address import LOGITS, Unit, resolve_unit
from ..checks import check_int
from ..errors import CnnlensError
from ..folders import iter_batches, select_images
from ..hooks import capture, eval_mode, hooked
from ..layers import get_layer, model_device, model_dtype
from ..pixelnet import image_preprocessing, unwrap
from ..registry import default_layers, info_label, model_info
from ..results import Result
from .linear import class_weights, expanded_weights

__all__ = ["Circuit", "Connections", "circuit", "contributions", "inputs", "neighbour_stage", "outputs"]


def _completion_order(net: nn.Module, model: nn.Module) -> list[str]:
    """Named modules in the order their first call finishes (a container after its children)."""
    prep = image_preprocessing(model)
    c, h, w = prep.input_size
    order: list[str] = []

    def hook(name: str) -> Any:
        def record(module: nn.Module, args: Any, output: Any) -> None:
            if name not in order:
                order.append(name)

        return record

    with torch.no_grad(), eval_mode(net), hooked([(m, hook(n)) for n, m in net.named_modules() if n]):
        net(torch.zeros(1, c, h, w, device=model_device(net), dtype=model_dtype(net)))
    return order


def neighbour_stage(model: nn.Module, layer: str, direction: int) -> str:
    """The stage (:func:`cnnlens.default_layers` ``"representations"``) that finishes last before
    ``layer`` (``direction=-1``) or first after it (``+1``; ``logits`` after the last), not inside it
    and not holding it."""
    net, _ = unwrap(model)
    if layer == LOGITS:
        if direction > 0:
            raise CnnlensError("the logits are the last layer: nothing uses them", param="unit")
        stages = [s for s in default_layers(net, "representations") if s != LOGITS]
        return stages[-1]
    order = _completion_order(net, model)
    if layer not in order:
        raise CnnlensError(f"{layer} is not called in a forward pass", param="unit")
    here = order.index(layer)
    related = lambda s: s == layer or s.startswith(layer + ".") or layer.startswith(s + ".")
    stages = [s for s in default_layers(net, "representations") if s != LOGITS and s in order and not related(s)]
    if direction < 0:
        before = [s for s in stages if order.index(s) < here]
        if not before:
            raise CnnlensError(f"no stage runs before {layer}: it is the first; give the source layer", param="source")
        return max(before, key=order.index)
    after = [s for s in stages if order.index(s) > here]
    return min(after, key=order.index) if after else LOGITS


def _unit(model: nn.Module, unit: str | Unit) -> Unit:
    u = resolve_unit(unit, unwrap(model)[0])
    if u.channel is None:
        raise CnnlensError(f"unit {u}: give one channel, LAYER:CHANNEL", param="unit")
    return u


def contributions(model: nn.Module, unit: str | Unit, source: str, images: Any, *, batch_size: int = 16, limit: int | None = None) -> torch.Tensor:
    """``(N, source channels)``: for each image, activation × gradient of ``unit`` at ``source``,
    summed over positions, the real network (nothing set aside). The unit is the channel at its
    strongest position in each image (``LAYER:CH``), at the position given (``LAYER:CH@Y,X``), or the
    class logit (``logits:CLASS``). When the map from ``source`` to the unit is linear the
    contributions sum to the unit's value less the biases on the way (Euler: a linear map of degree
    one); through ReLUs they are the linear contributions of the active paths."""
    net, _ = unwrap(model)
    u = _unit(model, unit)
    get_layer(net, source)
    batch_size = check_int(batch_size, "batch_size", low=1)
    prep = image_preprocessing(model)
    sources = list(select_images(images, limit).values())
    rows = []
    with eval_mode(net):
        for _, x in iter_batches(sources, prep, batch_size=batch_size):
            x = prep.normalize(x.to(model_device(net), dtype=model_dtype(net))).requires_grad_(True)
            with torch.enable_grad(), capture(net, [source], grads=True) as rec:
                if u.is_logits:
                    out = net(x)
                    value = out[:, u.channel]
                else:
                    with capture(net, [u.layer], detach=False, clone=False) as own:
                        net(x)
                    act = own[u.layer][:, u.channel]
                    if u.position is not None:
                        value = act[:, u.position[0], u.position[1]]
                    else:
                        value = act.flatten(1).max(1).values
                value.sum().backward()
            if source not in rec.grads:
                raise CnnlensError(f"unit {u} does not depend on {source}", param="source")
            a, g = rec[source], rec.grads[source]
            rows.append((a * g).flatten(2).sum(2).detach().cpu())
    return torch.cat(rows)


@dataclass(repr=False)
class Connections(Result):
    """A unit and the channels of another layer, weighed two ways.

    ``direction`` ``"inputs"``: the ``other`` layer's channels that build ``unit``; ``"outputs"``:
    the ``other`` layer's channels (or classes, ``other == "logits"``) that use it. ``weights``:
    the expanded weights summed over the kernel's positions (the response to a uniform rise), one
    per channel; ``kernels``: the expanded kernels ``(channels, kh, kw)`` (None for classes);
    ``contributions``: the mean contribution on ``n_images`` images (inputs given images), or None.
    """

    unit: str
    direction: str
    other: str
    weights: torch.Tensor
    kernels: torch.Tensor | None
    contributions: torch.Tensor | None
    n_images: int
    info: dict[str, Any]
    names: list[str] | None = None  # class names when other is logits
    notes: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:  # type: ignore[override]
        return list(self.notes)

    def top(self, k: int = 8, *, by: str = "weight", negative: bool = False) -> list[int]:
        """The ``k`` strongest channels by ``weight`` or ``contribution`` (``negative``: the most negative)."""
        values = self.weights if by == "weight" else self.contributions
        if values is None:
            raise CnnlensError("no contributions: give images", param="by")
        order = torch.argsort(values, descending=not negative, stable=True)
        return [int(i) for i in order[:k]]

    def label(self, index: int) -> str:
        if self.names is not None and index < len(self.names):
            return f"{self.names[index]} ({index})"
        return f"{self.other}:{index}"

    def to_dict(self) -> dict[str, Any]:
        def row(i: int) -> dict[str, Any]:
            out = {"channel": i, "label": self.label(i), "weight": float(self.weights[i])}
            if self.contributions is not None:
                out["contribution"] = float(self.contributions[i])
            return out

        return {
            **self.info, "unit": self.unit, "direction": self.direction, "other": self.other, "n_images": self.n_images,
            "kernel_size": list(self.kernels.shape[1:]) if self.kernels is not None else None,
            "strongest": [row(i) for i in self.top(10)], "most_negative": [row(i) for i in self.top(5, negative=True)],
            "by_contribution": [row(i) for i in self.top(10, by="contribution")] if self.contributions is not None else None,
            "weights": self.weights.tolist(),
            "contributions": self.contributions.tolist() if self.contributions is not None else None,
        }  # fmt: skip

    def _summary(self) -> dict[str, Any]:
        return {"unit": self.unit, self.direction: self.other, "strongest": [self.label(i) for i in self.top(5)]}

    def to_text(self) -> str:
        what = "built from" if self.direction == "inputs" else "used by"
        lines = [f"{self.unit} of {info_label(self.info)} {what} {self.other} (expanded weights, summed over the kernel)"]
        if self.contributions is not None:
            lines[0] += f"; contributions on {self.n_images} images"
        for i in self.top(10):
            line = f"  {self.label(i):>24}  weight {float(self.weights[i]):+.4f}"
            if self.contributions is not None:
                line += f"  contribution {float(self.contributions[i]):+.4f}"
            lines.append(line)
        return "\n".join(lines)

    def figure(self, *, k: int = 8, title: str | None = None) -> Any:
        """The ``k`` strongest connections: their expanded kernels (red positive, blue negative) and weights."""
        import matplotlib.pyplot as plt

        top = self.top(k)
        kernels = self.kernels is not None and self.kernels.shape[-1] * self.kernels.shape[-2] > 1
        fig, axes = plt.subplots(2 if kernels else 1, max(1, len(top)), figsize=(1.5 * max(1, len(top)) + 1, 3.4 if kernels else 2.2),
                                 squeeze=False, layout="constrained")  # fmt: skip
        bound = float(self.kernels[top].abs().max()) if kernels and top else 1.0
        for j, i in enumerate(top):
            ax = axes[0][j]
            if kernels:
                ax.imshow(self.kernels[i].numpy(), cmap="RdBu_r", vmin=-bound, vmax=bound)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(self.label(i), fontsize=7)
                ax = axes[1][j]
            ax.bar([0], [float(self.weights[i])], color="C3" if float(self.weights[i]) >= 0 else "C0")
            if self.contributions is not None:
                ax.bar([1], [float(self.contributions[i])], color="C2")
            ax.set_xticks([0, 1] if self.contributions is not None else [0], ["weight", "contrib."] if self.contributions is not None else ["weight"], fontsize=6)
            ax.tick_params(labelsize=6)
            if not kernels:
                ax.set_title(self.label(i), fontsize=7)
        what = "built from" if self.direction == "inputs" else "used by"
        fig.suptitle(title or f"{self.unit} {what} {self.other}: {info_label(self.info)}", fontsize=9)
        return fig


def inputs(
    model: nn.Module,
    unit: str | Unit,
    *,
    source: str | None = None,
    images: Any = None,
    limit: int | None = None,
    size: int | None = None,
    batch_size: int = 16,
) -> Connections:
    """The channels of ``source`` (default: the stage before the unit's layer) that build ``unit``:
    expanded weights (nonlinearities set aside), and contributions on ``images`` when given (pass the
    unit's top images, e.g. from :func:`cnnlens.top_patches`).

    Example:
        >>> import cnnlens
        >>> model = cnnlens.create_model("squeezenet1_0", seed=0)
        >>> c = inputs(model, "features.12:5")
        >>> c.other, tuple(c.kernels.shape)
        ('features.10', (512, 7, 7))
    """
    u = _unit(model, unit)
    layer = u.layer
    source = source or neighbour_stage(model, layer, -1)
    if layer == LOGITS:
        weights = class_weights(model, source, size=size)[u.channel]
        kernels = None
    else:
        full = expanded_weights(model, source, layer, size=size)
        kernels = full[u.channel]
        weights = kernels.flatten(1).sum(1)
    contrib = None
    n = 0
    if images is not None:
        per_image = contributions(model, u, source, images, batch_size=batch_size, limit=limit)
        contrib, n = per_image.mean(0), per_image.shape[0]
    return Connections(str(u), "inputs", source, weights, kernels, contrib, n, model_info(model).to_dict())


def outputs(model: nn.Module, unit: str | Unit, *, target: str | None = None, size: int | None = None) -> Connections:
    """The units of ``target`` (default: the stage after the unit's layer; ``logits``: the classes)
    that use ``unit`` most, by expanded weights (nonlinearities set aside)."""
    u = _unit(model, unit)
    if u.is_logits:
        raise CnnlensError("the logits are the last layer: nothing uses them", param="unit")
    target = target or neighbour_stage(model, u.layer, +1)
    if target == LOGITS:
        weights = class_weights(model, u.layer, size=size)[:, u.channel]
        cats = model_info(model).categories
        return Connections(str(u), "outputs", LOGITS, weights, None, None, 0, model_info(model).to_dict(), names=list(cats) if cats else None)
    full = expanded_weights(model, u.layer, target, size=size)
    kernels = full[:, u.channel]
    return Connections(str(u), "outputs", target, kernels.flatten(1).sum(1), kernels, None, 0, model_info(model).to_dict())


@dataclass(repr=False)
class Circuit(Result):
    """A unit, its strongest inputs, their strongest inputs, ... (``depth`` levels): ``nodes`` maps a
    unit to its :class:`Connections` (inputs), ``tree`` lists ``(depth, parent, child)`` edges."""

    unit: str
    depth: int
    k: int
    nodes: dict[str, Connections]
    tree: list[tuple[int, str, str]]
    info: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        edges = []
        for level, parent, child in self.tree:
            c = self.nodes[parent]
            channel = int(child.rsplit(":", 1)[1])
            edges.append({"depth": level, "unit": parent, "input": child, "weight": float(c.weights[channel]),
                          "contribution": float(c.contributions[channel]) if c.contributions is not None else None})  # fmt: skip
        return {**self.info, "unit": self.unit, "depth": self.depth, "k": self.k, "edges": edges,
                "layers": [self.unit.rsplit(":", 1)[0], *dict.fromkeys(c.other for c in self.nodes.values())]}  # fmt: skip

    def _summary(self) -> dict[str, Any]:
        return {"unit": self.unit, "depth": self.depth, "edges": len(self.tree)}

    def to_text(self) -> str:
        lines = [f"circuit of {self.unit} in {info_label(self.info)} (expanded weights, nonlinearities set aside)"]
        for level, parent, child in self.tree:
            c = self.nodes[parent]
            channel = int(child.rsplit(":", 1)[1])
            extra = f"  contribution {float(c.contributions[channel]):+.4f}" if c.contributions is not None else ""
            lines.append(f"{'  ' * level}{child:<24} -> {parent}  weight {float(c.weights[channel]):+.4f}{extra}")
        return "\n".join(lines)

    def figure(self, *, title: str | None = None) -> Any:
        """One row per depth: each input's expanded kernel into its parent (red positive, blue negative)."""
        import matplotlib.pyplot as plt

        rows: list[list[tuple[str, str]]] = [[] for _ in range(self.depth)]
        for level, parent, child in self.tree:
            rows[level - 1].append((parent, child))
        width = max(len(r) for r in rows) if rows else 1
        fig, axes = plt.subplots(self.depth, width, figsize=(1.35 * width + 0.5, 1.7 * self.depth + 0.6), squeeze=False, layout="constrained")
        for r, row in enumerate(rows):
            for j in range(width):
                ax = axes[r][j]
                ax.set_xticks([])
                ax.set_yticks([])
                if j >= len(row):
                    ax.axis("off")
                    continue
                parent, child = row[j]
                c = self.nodes[parent]
                channel = int(child.rsplit(":", 1)[1])
                if c.kernels is not None:
                    kernel = c.kernels[channel]
                    bound = float(c.kernels.abs().max()) or 1.0
                    ax.imshow(kernel.numpy(), cmap="RdBu_r", vmin=-bound, vmax=bound)
                else:
                    ax.axis("off")
                parent_short = parent.rsplit(":", 1)[1] if r else parent
                ax.set_title(f"{child}\n-> {parent_short}  {float(c.weights[channel]):+.3f}", fontsize=6)
            axes[r][0].set_ylabel(f"depth {r + 1}", fontsize=7)
        fig.suptitle(title or f"{self.unit} and the units that build it: {info_label(self.info)}\n"
                     "expanded weights (red excites, blue inhibits), nonlinearities set aside", fontsize=8)  # fmt: skip
        return fig


def circuit(model: nn.Module, unit: str | Unit, *, depth: int = 2, k: int = 4, images: Any = None, size: int | None = None) -> Circuit:
    """``unit``, its ``k`` strongest inputs in the stage before, their ``k`` strongest inputs, ... to
    ``depth`` levels, by expanded weights (contributions too on ``images``, at the first level)."""
    depth = check_int(depth, "depth", low=1, high=4)
    k = check_int(k, "k", low=1, high=32)
    root = str(_unit(model, unit))
    nodes: dict[str, Connections] = {}
    tree: list[tuple[int, str, str]] = []
    level_units = [root]
    cache: dict[tuple[str, str], torch.Tensor] = {}
    for level in range(1, depth + 1):
        next_units = []
        for parent in level_units:
            u = _unit(model, parent)
            if u.layer == LOGITS:
                c = inputs(model, u, images=images if level == 1 else None, size=size)
            else:
                try:
                    source = neighbour_stage(model, u.layer, -1)
                except CnnlensError:
                    continue  # the first stage: nothing before it
                key = (source, u.layer)
                if key not in cache:
                    cache[key] = expanded_weights(model, source, u.layer, size=size)
                kernels = cache[key][u.channel]
                contrib, n = None, 0
                if images is not None and level == 1:
                    per_image = contributions(model, u, source, images)
                    contrib, n = per_image.mean(0), per_image.shape[0]
                c = Connections(str(u), "inputs", source, kernels.flatten(1).sum(1), kernels, contrib, n, model_info(model).to_dict())
            nodes[parent] = c
            for i in c.top(k):
                child = f"{c.other}:{i}"
                tree.append((level, parent, child))
                next_units.append(child)
        level_units = next_units
    return Circuit(root, depth, k, nodes, tree, model_info(model).to_dict())
