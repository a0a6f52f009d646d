"""DeepDream: Mordvintsev's algorithm (Google's 2015 notebook), on pixels in [0, 1].

For each octave, smallest first: the photo resized to the octave size plus the *detail* (what the
previous octaves added, upsampled) is the start; ``steps`` times: roll the image by a random
``(dy, dx)`` in ``[-jitter, jitter]`` (from the ``generator``), take the gradient of the
objective, step ``x += step_size / 255 * g / mean(|g|)`` (the original's step size is in 0..255
pixel units, so 1.5 keeps its meaning), roll back and clip to [0, 1]. The new detail is the image
minus the octave's photo. Octaves shrink by ``1 / octave_scale`` (the Caffe notebook's
convention: 4 octaves, 1.4; neural-dream's 0.6 is the inverse) and are never smaller than the
weights' ``min_size``; octaves that would be are dropped.

The objective is the layer's mean squared activation (``0.5 * sum(a**2)`` in the original, whose
gradient is the activation itself), summed over layers, or with ``channel`` the mean of that
channel. Images larger than ``tile_size`` are processed in tiles; the random roll moves the tile
seams every step so they do not show (as in the TensorFlow tutorial's ``calc_grad_tiled``).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CnnlensError
from ..hooks import eval_mode, no_inplace
from ..speed import channels_last
from ..layers import get_layer
from ..pixels import Preprocessing
from ..registry import model_device
from .render import activations

__all__ = ["DEFAULT_DREAM_LAYERS", "DreamResult", "OctaveStat", "default_dream_layer", "dream", "octave_sizes"]

# layers that give a good dream for each model (the original used GoogLeNet's inception_4c/output)
DEFAULT_DREAM_LAYERS: dict[str, list[str]] = {
    "googlenet": ["inception4c"],
    "inception_v3": ["Mixed_6b"],
    "squeezenet1_0": ["features.9"],
    "squeezenet1_1": ["features.9"],
    "mobilenet_v2": ["features.10"],
    "vgg16": ["features.22"],
    "vgg19": ["features.25"],
    "resnet18": ["layer3"],
    "resnet34": ["layer3"],
    "resnet50": ["layer3"],
    "alexnet": ["features.9"],
}


@dataclass(frozen=True)
class OctaveStat:
    """One octave: its ``(H, W)`` and the objective at its start (photo + carried detail) and end."""

    size: tuple[int, int]
    before: float
    after: float


@dataclass
class DreamResult:
    image: torch.Tensor  # (3, H, W) in [0, 1], the size of the input
    octaves: list[OctaveStat] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)


def default_dream_layer(model_name: str, model: nn.Module | None = None) -> list[str]:
    """The layers :func:`dream` uses by default for a torchvision model name."""
    if model_name in DEFAULT_DREAM_LAYERS:
        return list(DEFAULT_DREAM_LAYERS[model_name])
    if model is None:
        raise CnnlensError(f"no default dream layer for {model_name}; pass --layer (`cnnlens layers {model_name}`)")
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise CnnlensError(f"{model_name} has no Conv2d layer; pass --layer")
    return [convs[(2 * len(convs)) // 3]]


def octave_sizes(
    size: tuple[int, int], octaves: int, octave_scale: float, min_size: tuple[int, int] = (1, 1)
) -> list[tuple[int, int]]:
    """Octave sizes from the full size down (``size / octave_scale**i``), none below ``min_size``."""
    if octaves < 1:
        raise CnnlensError("--octaves must be at least 1")
    if octave_scale <= 1.0 and octaves > 1:
        raise CnnlensError(f"--octave-scale must be > 1 (each octave is 1/scale the size), not {octave_scale}")
    h, w = size
    if h < min_size[0] or w < min_size[1]:
        raise CnnlensError(f"the image ({h}x{w}) is smaller than the model's minimum input {min_size[0]}x{min_size[1]}")
    sizes = [(h, w)]
    for i in range(1, octaves):
        s = (round(h / octave_scale**i), round(w / octave_scale**i))
        if s[0] < min_size[0] or s[1] < min_size[1] or s == sizes[-1]:
            break
        sizes.append(s)
    return sizes


def _tiles(n: int, tile: int, minimum: int) -> list[tuple[int, int]]:
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
        self, model: nn.Module, layers: list[str], channel: int | None, prep: Preprocessing, tile_size: int, min_size: tuple[int, int]
    ) -> None:
        self.model, self.layers, self.channel, self.prep = model, layers, channel, prep
        self.tile_size, self.min_size = tile_size, min_size

    def _loss(self, x: torch.Tensor, weight: float) -> torch.Tensor:
        acts = activations(self.model, x, self.layers, preprocessing=self.prep)
        total = x.new_zeros(())
        for name in self.layers:
            a = acts[name]
            if self.channel is not None:
                if a.dim() < 2 or not 0 <= self.channel < a.shape[1]:
                    raise CnnlensError(f"--channel {self.channel} is out of range: {name} has {a.shape[1]} channels")
                total = total + a[:, self.channel].mean()
            else:
                total = total + a.pow(2).mean()
        return total * weight

    def _pieces(self, x: torch.Tensor) -> list[tuple[slice, slice, float]]:
        h, w = x.shape[-2:]
        out = []
        for t, b in _tiles(h, self.tile_size, self.min_size[0]):
            for left, right in _tiles(w, self.tile_size, self.min_size[1]):
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


def dream(
    model: nn.Module,
    image: torch.Tensor,
    layers: str | Sequence[str],
    *,
    channel: int | None = None,
    octaves: int = 4,
    octave_scale: float = 1.4,
    steps: int = 10,
    step_size: float = 1.5,
    jitter: int = 32,
    preprocessing: Preprocessing | None = None,
    tile_size: int = 512,
    generator: torch.Generator | None = None,
    progress: bool | None = False,
) -> DreamResult:
    """DeepDream ``image`` (``(3, H, W)`` in [0, 1]) on ``model``; the result has the same size.

    Args:
        layers: dotted layer names whose activation is amplified.
        channel: amplify only this channel (its mean) instead of every unit's square.
        octaves, octave_scale: pyramid depth and the size ratio between octaves.
        steps: gradient steps per octave; step_size in 0..255 pixel units per step (mean |update|).
        jitter: random roll in pixels, in both directions.
        preprocessing: the model's normalization and ``min_size`` (``cnnlens.preprocessing``).
        tile_size: process images larger than this in tiles of at most this size.
        generator: the source of the random rolls.
        progress: a tqdm bar on stderr (``None``: only when stderr is a terminal).

    Returns:
        :class:`DreamResult`: the dreamed image and, per octave, the objective before and after.
    """
    prep = preprocessing or Preprocessing()
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise CnnlensError("give at least one --layer")
    for name in names:
        get_layer(model, name)  # unknown names: one-line error with suggestions
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise CnnlensError("dream takes one image")
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise CnnlensError(f"dream takes a (3, H, W) RGB image, not {tuple(image.shape)}")
    if steps < 0 or jitter < 0 or tile_size < 1:
        raise CnnlensError("--steps, --jitter must be >= 0 and --tile-size >= 1")
    min_size = (max(1, prep.min_size[0]), max(1, prep.min_size[1]))
    h, w = image.shape[-2:]
    sizes = octave_sizes((h, w), octaves, octave_scale, min_size)
    device = model_device(model)
    base = image.detach().float().to(device).clamp(0, 1)[None]
    bases = [base if s == (h, w) else F.interpolate(base, size=s, mode="bilinear", align_corners=False, antialias=True) for s in sizes]

    from tqdm.auto import tqdm

    disable = (not sys.stderr.isatty()) if progress is None else not progress
    dreamer = _Dreamer(model, names, channel, prep, tile_size, min_size)
    stats: list[OctaveStat] = []
    detail = torch.zeros_like(bases[-1])
    x = base
    with eval_mode(model), no_inplace(model), channels_last(model):
        bar = tqdm(total=len(sizes) * steps, desc="dream", file=sys.stderr, disable=disable, leave=False)
        try:
            for octave_base in reversed(bases):
                oh, ow = octave_base.shape[-2:]
                if detail.shape[-2:] != (oh, ow):
                    detail = F.interpolate(detail, size=(oh, ow), mode="bilinear", align_corners=False)
                x = (octave_base + detail).clamp(0, 1)
                before = dreamer.value(x)
                for _ in range(steps):
                    oy, ox = (torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist() if jitter else (0, 0))
                    rolled = torch.roll(x, shifts=(oy, ox), dims=(-2, -1))
                    g = dreamer.grad(rolled)
                    rolled = rolled + (step_size / 255.0) / (g.abs().mean() + 1e-12) * g
                    x = torch.roll(rolled, shifts=(-oy, -ox), dims=(-2, -1)).clamp(0, 1)
                    bar.update(1)
                stats.append(OctaveStat((oh, ow), before, dreamer.value(x)))
                detail = x - octave_base
        finally:
            bar.close()
    return DreamResult(image=x[0].detach(), octaves=stats, layers=names)
