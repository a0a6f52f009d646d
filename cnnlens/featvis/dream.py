"""DeepDream: Mordvintsev's algorithm (Google's 2015 notebook), on pixels in [0, 1].

For each octave, smallest first: the photo resized to the octave size plus the *detail* (what the
previous octaves added, upsampled) is the start; ``steps`` times: roll the image by a random
``(dy, dx)`` in ``[-jitter, jitter]`` (drawn from ``seed``), take the gradient of the
objective, step ``x += step_size / 255 * g / mean(|g|)`` (the original's step size is in 0..255
pixel units, so 1.5 keeps its meaning), roll back and clip to [0, 1]. The new detail is the image
minus the octave's photo. Octaves shrink by ``1 / octave_scale`` (the Caffe notebook's
convention: 4 octaves, 1.4; neural-dream's 0.6 is the inverse) and are never smaller than the
model's minimum size; octaves that would be are dropped.

The objective is the layer's mean squared activation (``0.5 * sum(a**2)`` in the original, whose
gradient is the activation itself), summed over layers; with a unit, the mean of that channel
(``LAYER:CHANNEL``) or that class logit (``logits:CLASS``). Images larger than ``tile_size`` are
processed in tiles; the random roll moves the tile seams every step so they do not show (as in the
TensorFlow tutorial's ``calc_grad_tiled``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import seeds
from ..address import Unit, parse_unit, resolve_unit
from ..checks import check_int, check_number
from ..errors import CnnlensError
from ..hooks import eval_mode, no_inplace
from ..layers import get_layer, model_device
from ..pixels import Preprocessing, as_pixels
from ..progress import progress_bar
from ..registry import ModelInfo, default_layers, model_info
from ..results import Result
from ..speed import channels_last
from .objectives import LOGITS, Objective, for_unit, layer_l2, unit_label
from .render import MAX_SIZE, fixed_input_size, forward_activations, number, probe_shapes, show
from .transforms import Transform, resize

__all__ = ["DreamResult", "DreamSettings", "OctaveStat", "dream", "octave_sizes", "tile_ranges"]

MAX_OCTAVES = 20


@dataclass(frozen=True)
class OctaveStat:
    """One octave: its ``(H, W)`` and the objective at its start (photo + carried detail) and end."""

    size: tuple[int, int]
    before: float
    after: float

    def to_dict(self) -> dict[str, Any]:
        return {"size": list(self.size), "before": self.before, "after": self.after}


@dataclass(repr=False, eq=False)
class DreamResult(Result):
    """What :func:`dream` made.

    Attributes:
        image: ``(C, H, W)`` the dream, pixels in [0, 1] on the CPU, the size of ``original``.
        original: ``(C, H, W)`` the photo it started from (after ``size`` and the model's channels).
        octaves: per octave, smallest first, its size and the objective before and after.
        layers: the layers whose activation was amplified (``["logits"]`` for a class).
        unit: the unit, when one was given.
        info: the model and its weights ("random init").
        settings: octaves, octave_scale, steps, step_size, jitter, tile_size as used.
    """

    image: torch.Tensor
    original: torch.Tensor | None = None
    octaves: list[OctaveStat] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    unit: Unit | None = None
    info: ModelInfo | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def rose_every_octave(self) -> bool:
        """Whether the objective ended higher than it started in every octave."""
        return all(s.after > s.before for s in self.octaves)

    def target(self) -> str:
        """``layer features.9``, ``unit features.9:3`` or ``class logits:130 (flamingo)``."""
        if self.unit is not None:
            return f"{'class' if self.unit.is_logits else 'unit'} {unit_label(self.unit)}"
        return f"layer{'s' if len(self.layers) > 1 else ''} {', '.join(self.layers)}"

    def to_dict(self) -> dict[str, Any]:
        info = self.info.to_dict() if self.info is not None else {}
        unit = self.unit.to_dict() if self.unit is not None else {"unit": None}
        return {
            **info,
            "layers": list(self.layers),
            **unit,
            "image_size": list(self.image.shape[-2:]),
            **self.settings,
            "octave_sizes": [list(s.size) for s in self.octaves],
            "octave_objectives": [s.to_dict() for s in self.octaves],
            "rose_every_octave": self.rose_every_octave,
        }

    def _summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.info is not None:
            out["model"] = self.info.label
        out["target"] = self.target()
        out["image"] = tuple(self.image.shape)
        out["octaves"] = [f"{s.size[0]}x{s.size[1]}: {number(s.before)} -> {number(s.after)}" for s in self.octaves]
        return out

    def to_text(self) -> str:
        """One line per octave: ``octave 109x164: objective 26608 -> 254891``."""
        return "\n".join(f"octave {s.size[0]}x{s.size[1]}: objective {s.before:.6g} -> {s.after:.6g}" for s in self.octaves)

    def pixels(self) -> torch.Tensor:
        """The dreamed image at the photo's size (what ``save_image`` writes)."""
        return self.image

    def figure(self, *, scale: float = 4.0) -> Any:
        """The photo beside its dream, under a title naming the model, weights and layers, with the
        objective of every octave below."""
        import matplotlib.pyplot as plt

        h, w = self.image.shape[-2:]
        width = scale * w / max(h, w)
        height = scale * h / max(h, w)
        fig, axes = plt.subplots(1, 2, figsize=(2 * width + 0.4, height + 1.6), squeeze=False)
        original = self.original if self.original is not None else self.image
        show(axes[0, 0], original)
        axes[0, 0].set_title(f"original, {h}x{w} px", fontsize=9)
        show(axes[0, 1], self.image)
        axes[0, 1].set_title(f"dream, {self.target()}", fontsize=9)
        s = self.settings
        label = self.info.label if self.info is not None else "model"
        fig.suptitle(
            f"DeepDream with {label}, {self.target()}\n"
            f"{len(self.octaves)} octaves (scale {s.get('octave_scale', '?')}) x {s.get('steps', '?')} steps, step {s.get('step_size', '?')}",
            fontsize=9,
        )
        rows = [f"{o.size[0]}x{o.size[1]}: {number(o.before)} -> {number(o.after)}" for o in self.octaves]
        table = "objective per octave, HxW (start -> end):  " + ";  ".join(rows)
        fig.text(0.5, 0.02, table, ha="center", va="bottom", fontsize=7, wrap=True)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
        return fig


def octave_sizes(size: tuple[int, int], octaves: int, octave_scale: float, min_size: tuple[int, int] = (1, 1)) -> list[tuple[int, int]]:
    """Octave sizes from the full size down (``size / octave_scale**i``), none below ``min_size``."""
    octaves = check_int(octaves, "octaves", low=1, high=MAX_OCTAVES)
    octave_scale = check_number(octave_scale, "octave_scale", low=1.0, low_open=True)
    h, w = size
    if h < min_size[0] or w < min_size[1]:
        raise CnnlensError(
            f"image ({h}x{w}) is smaller than the model's minimum input {min_size[0]}x{min_size[1]}; use a larger image or size",
            param="image",
        )
    sizes = [(h, w)]
    for i in range(1, octaves):
        factor = octave_scale**i
        s = (round(h / factor), round(w / factor)) if math.isfinite(factor) else (0, 0)
        if s[0] < min_size[0] or s[1] < min_size[1] or s == sizes[-1]:
            break
        sizes.append(s)
    return sizes


def tile_ranges(n: int, tile: int, minimum: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into near-equal pieces of at most ``tile`` (none shorter than ``minimum``)."""
    if n <= tile:
        return [(0, n)]
    k = math.ceil(n / tile)
    while k > 1 and n // k < minimum:
        k -= 1
    edges = [round(i * n / k) for i in range(k + 1)]
    return list(zip(edges[:-1], edges[1:]))


class _Dreamer:
    def __init__(
        self, model: nn.Module, objective: Objective, prep: Preprocessing, tile_size: int, min_size: tuple[int, int], fit: Transform | None
    ) -> None:
        self.model, self.objective, self.prep = model, objective, prep
        self.tile_size, self.min_size, self.fit = tile_size, min_size, fit

    def _loss(self, x: torch.Tensor, weight: float) -> torch.Tensor:
        if self.fit is not None:
            x = self.fit(x, None)
        acts = forward_activations(self.model, x, self.objective.layers, self.prep)
        return self.objective(acts).sum() * weight

    def _pieces(self, x: torch.Tensor) -> list[tuple[slice, slice, float]]:
        h, w = x.shape[-2:]
        out = []
        for t, b in tile_ranges(h, self.tile_size, self.min_size[0]):
            for left, right in tile_ranges(w, self.tile_size, self.min_size[1]):
                out.append((slice(t, b), slice(left, right), (b - t) * (right - left) / (h * w)))
        return out

    def value(self, x: torch.Tensor) -> float:
        with torch.no_grad():
            return float(sum(self._loss(x[..., ys, xs], wt) for ys, xs, wt in self._pieces(x)))

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.zeros_like(x)
        for ys, xs, wt in self._pieces(x):
            tile = x[..., ys, xs].detach().requires_grad_(True)
            (g_tile,) = torch.autograd.grad(self._loss(tile, wt), tile)
            g[..., ys, xs] = g_tile
        return g


@dataclass(frozen=True)
class DreamSettings:
    """The finer knobs of :func:`dream` (default: the original notebook's, Mordvintsev et al. 2015).

    - ``octave_scale``: the size ratio between octaves (> 1);
    - ``step_size``: mean pixel change per step, in 0..255 units (0..255];
    - ``jitter``: random roll in pixels, in both directions;
    - ``tile_size``: images larger than this are processed in tiles of at most this size.
    """

    octave_scale: float = 1.4
    step_size: float = 1.5
    jitter: int = 32
    tile_size: int = 512


def dream(
    model: nn.Module,
    image: Any,
    layers: str | Sequence[str] | None = None,
    *,
    unit: str | Unit | None = None,
    octaves: int = 4,
    steps: int = 10,
    settings: DreamSettings | None = None,
    size: int | None = None,
    preprocessing: Preprocessing | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> DreamResult:
    """DeepDream ``image`` on ``model``; the result has the image's size (after ``size``).

    Args:
        model: any CNN (from :func:`cnnlens.create_model` or any ``nn.Module``); left exactly as it was.
        image: one image as pixels in [0, 1]: a ``(C, H, W)`` or ``(1, C, H, W)`` tensor, a path, a
            PIL image or an array. It is converted to the model's channels (grey for ``lenet5``).
        layers: layers whose activation is amplified (mean squared activation, summed); default
            ``cnnlens.default_layers(model, "dream")`` (``features.9`` of squeezenet1_0).
        unit: instead of ``layers``, one unit address: ``LAYER:CHANNEL`` amplifies that channel's
            mean, ``logits:CLASS`` that class logit, ``LAYER`` the layer.
        octaves: pyramid depth (1..20); steps: gradient steps per octave.
        settings: :class:`DreamSettings`: the size ratio between octaves, the step size, the jitter
            and the tile size (default: the original notebook's).
        size: resize the image's shorter side to this first (default: as it is).
        preprocessing: the model's normalization and minimum size; default ``model_info(model).preprocessing``.
        seed: the source of the random rolls (``None``: torch's global generator).
        progress: a bar on a terminal, a line every 10 s elsewhere (see :mod:`cnnlens.progress`).

    Returns:
        :class:`DreamResult`: the dreamed image (CPU), the original, and per octave the objective
        before and after.

    Raises:
        CnnlensError: unknown layer or unit (closest names), a number out of range, an image too
            small for the model, or a gradient that is not finite; before or instead of writing
            garbage.
    """
    generator = seeds.generator(seed)
    settings = settings or DreamSettings()
    octave_scale, step_size, jitter, tile_size = settings.octave_scale, settings.step_size, settings.jitter, settings.tile_size
    info = model_info(model, preprocessing=preprocessing)
    prep = info.preprocessing
    min_size = (max(1, prep.min_size[0]), max(1, prep.min_size[1]))
    octaves = check_int(octaves, "octaves", low=1, high=MAX_OCTAVES)
    octave_scale = check_number(octave_scale, "octave_scale", low=1.0, low_open=True)
    steps = check_int(steps, "steps", low=0, high=100_000)
    step_size = check_number(step_size, "step_size", low=0.0, low_open=True, high=255.0)
    jitter = check_int(jitter, "jitter", low=0, high=MAX_SIZE)
    tile_size = check_int(tile_size, "tile_size", low=max(8, *min_size), high=MAX_SIZE)
    if size is not None:
        size = check_int(size, "size", low=max(min_size), high=MAX_SIZE)

    if unit is not None and layers:
        raise CnnlensError("unit: give layers or a unit, not both", param="unit")
    target: Unit | None = None
    if unit is not None:
        target = parse_unit(unit, name="unit")
        if target.position is not None:
            raise CnnlensError(f"unit {target}: dream amplifies a layer, a channel or a class, not one position (drop @Y,X)", param="unit")
        if not target.is_logits:
            resolve_unit(target, model, name="unit")
        names = [target.layer]
    else:
        names = [layers] if isinstance(layers, str) else list(layers or [])
        for name in names:
            try:
                get_layer(model, name)
            except CnnlensError as exc:
                raise CnnlensError(f"layers: {exc}", param="layers") from None
        if not names:
            names = default_layers(model, "dream")

    pixels = as_pixels(image, name="image")
    if pixels.shape[0] != 1:
        raise CnnlensError(f"image: dream takes one image, not a batch of {pixels.shape[0]}", param="image")
    pixels = prep.convert_channels(pixels)
    if size is not None:
        from ..images import resize as resize_image

        pixels = resize_image(pixels, size)
    h, w = pixels.shape[-2:]
    sizes = octave_sizes((h, w), octaves, octave_scale, min_size)

    # a model that takes one input size only (lenet5) sees every tile resized to it when the
    # objective needs more than its convolutions (the logits, a Linear layer)
    fixed = fixed_input_size(prep)
    fit = None
    hint = "use a larger image or size, or fewer octaves"
    try:
        shapes = probe_shapes(model, prep, sizes[-1], names, name="size", hint=hint)
    except CnnlensError:
        if fixed is None:
            raise
        shapes = probe_shapes(model, prep, fixed, names, name="size", hint=hint)
        fit = resize(fixed)
    if target is not None:
        num_classes = shapes[LOGITS][1] if LOGITS in shapes and len(shapes[LOGITS]) > 1 else None
        target = resolve_unit(target, model, categories=info.categories, num_classes=num_classes, shape=shapes.get(target.layer), name="unit")
        objective = for_unit(target)
    else:
        parts = [layer_l2(name) for name in names]
        objective = sum(parts[1:], parts[0])

    device = model_device(model)
    base = pixels.to(device)
    bases = [base if s == (h, w) else F.interpolate(base, size=s, mode="bilinear", align_corners=False, antialias=True) for s in sizes]
    dreamer = _Dreamer(model, objective, prep, tile_size, min_size, fit)
    stats: list[OctaveStat] = []
    detail = torch.zeros_like(bases[-1])
    x = base
    with eval_mode(model), no_inplace(model), channels_last(model), progress_bar(len(sizes) * steps, "dream", enabled=progress, unit="step") as bar:
        for octave_base in reversed(bases):
            oh, ow = octave_base.shape[-2:]
            if detail.shape[-2:] != (oh, ow):
                detail = F.interpolate(detail, size=(oh, ow), mode="bilinear", align_corners=False)
            x = (octave_base + detail).clamp(0, 1)
            before = dreamer.value(x)
            for _ in range(steps):
                oy, ox = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist() if jitter else (0, 0)
                rolled = torch.roll(x, shifts=(oy, ox), dims=(-2, -1))
                g = dreamer.grad(rolled)
                scale = g.abs().mean()
                if not bool(torch.isfinite(scale)):
                    raise CnnlensError(
                        f"the gradient of {objective.name} is not finite at octave {oh}x{ow} (the model overflows on this image); "
                        "nothing was written",
                    )
                rolled = rolled + (step_size / 255.0) / (scale + 1e-12) * g
                x = torch.roll(rolled, shifts=(-oy, -ox), dims=(-2, -1)).clamp(0, 1)
                bar.update(1, octave=f"{oh}x{ow}")
            stats.append(OctaveStat((oh, ow), before, dreamer.value(x)))
            detail = x - octave_base
    if not bool(torch.isfinite(x).all()):  # never hand back (or let the CLI write) a NaN image
        raise CnnlensError(f"the dream of {objective.name} has NaN pixels (the model overflows on this image); nothing was written")
    settings = {
        "octaves": octaves,
        "octave_scale": octave_scale,
        "steps": steps,
        "step_size": step_size,
        "jitter": jitter,
        "tile_size": tile_size,
        "size": size,
    }
    return DreamResult(
        image=x[0].detach().cpu(), original=pixels[0].cpu(), octaves=stats, layers=list(names), unit=target, info=info, settings=settings
    )
