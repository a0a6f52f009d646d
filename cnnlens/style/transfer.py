"""Gatys, Ecker & Bethge (2016) neural style transfer on any CNN.

The image is optimized in [0, 1] pixel space; the model's normalization (its
:class:`~cnnlens.pixels.Preprocessing`) is applied inside the objective. Each evaluation runs the
network only as far as the deepest loss layer (:func:`cnnlens.hooks.forward_until`), and taps are
cloned captures, so an in-place ReLU cannot change them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from .. import seeds
from ..checks import check_int, check_number
from ..errors import CnnlensError
from ..hooks import eval_mode, forward_until
from ..layers import model_device, model_dtype, resolve_layers
from ..pixels import Preprocessing
from ..progress import progress_bar
from ..registry import ModelInfo, default_layers, model_info
from ..results import Result
from .backbones import backbone, resolve_layer_alias
from .color import match_colors, transfer_luminance
from .gram import gram_matrix
from .losses import content_loss, style_layer_loss, total_variation
from .optim import Step, check_size, optimize_pixels, read_image

__all__ = ["StyleObjective", "StyleResult", "StyleSettings", "check_style_settings", "stylize"]

INITS = ("content", "color-matched", "noise")
OPTIMIZERS = ("lbfgs", "adam")


def check_style_settings(
    *,
    content_weight: Any = None,
    style_weight: Any = None,
    tv_weight: Any = None,
    style_blend: Sequence[Any] | None = None,
    style_layer_weights: Sequence[Any] | None = None,
    steps: Any = 300,
    lr: Any = None,
    optimizer: str = "lbfgs",
    init: Any = "content",
    styles: int | None = None,
) -> None:
    """Refuse bad numbers before any work, naming the parameter (NaN, infinite, negative, out of range)."""
    for name, value in (("content_weight", content_weight), ("style_weight", style_weight), ("tv_weight", tv_weight)):
        if value is not None:
            check_number(value, name, low=0)
    check_int(steps, "steps", low=0, high=100_000)
    if lr is not None:
        check_number(lr, "lr", low=0, low_open=True)
    if optimizer not in OPTIMIZERS:
        raise CnnlensError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {optimizer!r}", param="optimizer")
    if not isinstance(init, torch.Tensor) and init not in INITS:
        raise CnnlensError(f"init must be one of {', '.join(INITS)} or an image tensor, not {init!r}", param="init")
    if style_layer_weights is not None:
        for w in style_layer_weights:
            check_number(w, "style_layer_weights", low=0)
    if style_blend is not None:
        blend = [check_number(w, "style_blend", low=0) for w in style_blend]
        if styles is not None and len(blend) != styles:
            raise CnnlensError(f"style_blend: {styles} style images but {len(blend)} blend weights", param="style_blend")
        if sum(blend) <= 0:
            raise CnnlensError(f"style_blend weights must have a positive sum, not {blend}", param="style_blend")


def check_layers(model: nn.Module, layers: Sequence[str], param: str) -> list[str]:
    """``layers`` with VGG aliases resolved; an unknown name raises naming ``param``."""
    name = model_info(model).name
    resolved = [resolve_layer_alias(name, str(layer)) for layer in layers]
    try:
        resolve_layers(model, resolved)
    except CnnlensError as exc:
        raise CnnlensError(f"{param}: {exc}", param=param) from None
    return resolved


def layer_features(
    model: nn.Module, preprocessing: Preprocessing, x: torch.Tensor, layers: Sequence[str], *, detach: bool = True, param: str = "size"
) -> dict[str, torch.Tensor]:
    """The outputs of ``layers`` for pixels ``x`` (normalized here), running the model only as far as needed.

    A model that cannot run at this image size (a kernel larger than its input) raises a
    :class:`CnnlensError` naming ``param``.
    """
    # channels-last input: oneDNN's convolutions run ~1.2-1.3x faster on CPU (the model is not touched)
    xn = preprocessing.normalize(x).contiguous(memory_format=torch.channels_last)
    try:
        record = forward_until(model, xn, list(dict.fromkeys(layers)), detach=detach)
    except RuntimeError as exc:
        if "size" not in str(exc).lower():
            raise
        h, w = x.shape[-2:]
        raise CnnlensError(
            f"{param}: {h}x{w} pixels are too small for {model_info(model).name} with layers {', '.join(layers)} "
            f"({str(exc).splitlines()[0]}); use a larger size or a shallower layer",
            param=param,
        ) from None
    missing = [name for name in layers if name not in record]
    if missing:
        raise CnnlensError(f"layer(s) {missing} produced no tensor output; choose other layers", param="layer")
    return record.outputs


class StyleObjective:
    """``content_weight · L_content + style_weight · L_style + tv_weight · TV`` for one content and its styles.

    Targets (the content features and the blended style Grams) are computed once here. Call it on a
    ``(1, C, H, W)`` image in [0, 1]; it returns the total and ``{"content", "style", "tv"}``
    (unweighted terms). ``L_style = Σ_l w_l · mean((G_l - A_l)²)``. Weights left ``None`` are set
    from the targets so that each term starts near 1: ``content_weight = 1 / mean(P²)`` and
    ``w_l = 1 / (L · mean(A_l²))`` (the rule behind the per-backbone tables).
    Must be called with the model in eval mode and frozen (``stylize`` does that).
    """

    def __init__(
        self,
        model: nn.Module,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        *,
        content_layer: str,
        style_layers: Sequence[str],
        style_blend: Sequence[float] | None = None,
        content_weight: float | None = None,
        style_weight: float = 1e3,
        style_layer_weights: Sequence[float] | None = None,
        tv_weight: float = 0.0,
        preprocessing: Preprocessing | None = None,
        size_param: str = "content",
    ) -> None:
        if not styles:
            raise CnnlensError("style: give at least one style image", param="style")
        if not style_layers:
            raise CnnlensError("style_layers: give at least one style layer", param="style_layers")
        blend = [1.0] * len(styles) if style_blend is None else [check_number(w, "style_blend", low=0) for w in style_blend]
        if len(blend) != len(styles):
            raise CnnlensError(f"style_blend: {len(styles)} style images but {len(blend)} blend weights", param="style_blend")
        if sum(blend) <= 0:
            raise CnnlensError(f"style_blend weights must have a positive sum, not {blend}", param="style_blend")
        if style_layer_weights is not None:
            style_layer_weights = [check_number(w, "style_layer_weights", low=0) for w in style_layer_weights]
            if len(style_layer_weights) != len(style_layers):
                raise CnnlensError(
                    f"style_layer_weights: {len(style_layers)} style layers but {len(style_layer_weights)} weights", param="style_layer_weights"
                )
        self.content_layer = check_layers(model, [content_layer], "content_layer")[0]
        self.style_layers = check_layers(model, style_layers, "style_layers")
        self.model = model
        self.preprocessing = preprocessing or model_info(model).preprocessing
        device, dtype = model_device(model), model_dtype(model)
        self.layers = list(dict.fromkeys([self.content_layer, *self.style_layers]))
        self.style_weight = check_number(style_weight, "style_weight", low=0)
        self.tv_weight = check_number(tv_weight, "tv_weight", low=0)
        self.blend = [w / sum(blend) for w in blend]
        with torch.no_grad():
            content = self._pixels(content, device, dtype)
            self.content_target = self.features(content, self.layers, param=size_param)[self.content_layer].detach()
            grams: list[torch.Tensor] = [torch.zeros(())] * len(self.style_layers)
            for weight, style in zip(self.blend, styles):
                feats = self.features(self._pixels(style, device, dtype), self.style_layers, param="size" if size_param == "size" else "style")
                for i, name in enumerate(self.style_layers):
                    grams[i] = grams[i] + weight * gram_matrix(feats[name])[0]
            self.style_targets = [g.detach() for g in grams]
        if content_weight is None:
            content_weight = 1.0 / max(float(self.content_target.double().pow(2).mean()), 1e-30)
        self.content_weight = check_number(content_weight, "content_weight", low=0)
        if style_layer_weights is None:
            n = len(self.style_layers)
            style_layer_weights = [1.0 / (n * max(float(g.double().pow(2).mean()), 1e-30)) for g in self.style_targets]
        self.layer_weights = [float(w) for w in style_layer_weights]

    def _pixels(self, x: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        x = x if x.dim() == 4 else x.unsqueeze(0)
        return self.preprocessing.convert_channels(x).to(device, dtype)

    def features(self, x: torch.Tensor, layers: Sequence[str], detach: bool = True, param: str = "content") -> dict[str, torch.Tensor]:
        """The outputs of ``layers`` for pixels ``x`` ``(1, C, H, W)``."""
        return layer_features(self.model, self.preprocessing, x, layers, detach=detach, param=param)

    def terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The unweighted ``content``, ``style`` and ``tv`` terms at ``x`` ``(1, C, H, W)``."""
        feats = self.features(x, self.layers, detach=False)
        content = content_loss(feats[self.content_layer], self.content_target)
        style = sum(
            (w * style_layer_loss(feats[name], target) for w, name, target in zip(self.layer_weights, self.style_layers, self.style_targets)),
            torch.zeros((), device=x.device, dtype=x.dtype),
        )
        tv = total_variation(x) if self.tv_weight else torch.zeros((), device=x.device, dtype=x.dtype)
        return {"content": content, "style": style, "tv": tv}

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        t = self.terms(x)
        total = self.content_weight * t["content"] + self.style_weight * t["style"] + self.tv_weight * t["tv"]
        return total, t


def never_rose(history: Sequence[dict[str, float]], key: str = "total") -> bool:
    """Whether ``history[i][key]`` never went up (up to float rounding, 1e-6 relative)."""
    values = [h[key] for h in history]
    return all(b <= a + 1e-6 * abs(a) for a, b in zip(values, values[1:]))


def image_name(image: Any, default: str) -> str:
    """A short name for an image argument: a path's stem, else ``default``."""
    from pathlib import Path

    return Path(image).stem if isinstance(image, (str, Path)) else default


def show(ax: Any, image: torch.Tensor, title: str) -> None:
    """``image`` ``(C, H, W)`` in [0, 1] on a matplotlib axis, grey when it has one channel."""
    array = image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    if array.shape[-1] == 1:
        ax.imshow(array[..., 0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(array)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def image_figure(panels: Sequence[tuple[torch.Tensor, str]], title: str) -> Any:
    """A row of images with their titles under a figure title (wrapped to the figure's width)."""
    import textwrap

    from matplotlib.figure import Figure

    ratios = [p[0].shape[-1] / p[0].shape[-2] for p in panels]
    width = min(max(3.2 * sum(ratios), 6.4), 18.0)
    chars = int(width * 11)
    lines = [part for line in title.splitlines() for part in textwrap.wrap(line, chars)]
    fig = Figure(figsize=(width, 3.0 + 0.2 * len(lines)), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False, width_ratios=ratios)[0]
    for ax, ratio, (image, label) in zip(axes, ratios, panels):
        show(ax, image, "\n".join(textwrap.wrap(label, max(12, int(chars * ratio / sum(ratios))))))
    fig.suptitle("\n".join(lines), fontsize=9)
    return fig


@dataclass(repr=False)
class StyleResult(Result):
    """What :func:`stylize` made.

    ``image`` ``(C, H, W)`` in [0, 1] on the CPU (C is the model's channels, 3 with
    ``preserve_color``); ``content`` and ``styles`` the inputs as used (resized); ``history[0]`` the
    unweighted ``content``/``style``/``tv`` terms and the weighted ``total`` at the initial image,
    ``history[i]`` those after iteration ``i``; ``weights`` the weights used (the measured ones
    where they were left to the rule).
    """

    image: torch.Tensor
    content: torch.Tensor
    styles: list[torch.Tensor]
    history: list[dict[str, float]]
    content_layer: str
    style_layers: list[str]
    model: ModelInfo
    weights: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    optimizer: str = "lbfgs"
    init: str = "content"
    preserve_color: bool = False
    evaluations: int = 0
    seconds: float = 0.0
    content_name: str = "content"
    style_names: list[str] = field(default_factory=list)

    @property
    def style_reduction(self) -> float:
        """Initial style loss divided by the final one."""
        return self.history[0]["style"] / max(self.history[-1]["style"], 1e-30)

    @property
    def total_never_rose(self) -> bool:
        """Whether the total loss never rose from one iteration to the next (always so with L-BFGS)."""
        return never_rose(self.history)

    def pixels(self) -> torch.Tensor:
        """The stylized image alone, at its full size (what ``save_image`` writes)."""
        return self.image.expand(3, *self.image.shape[-2:])

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.model.to_dict(),
            "content": self.content_name,
            "styles": list(self.style_names),
            "size": list(self.image.shape[-2:]),
            "content_layer": self.content_layer,
            "style_layers": list(self.style_layers),
            **self.weights,
            "steps": self.steps,
            "optimizer": self.optimizer,
            "init": self.init,
            "preserve_color": self.preserve_color,
            "evaluations": self.evaluations,
            "total_never_rose": self.total_never_rose,
            "style_reduction": self.style_reduction,
            "initial": dict(self.history[0]),
            "final": dict(self.history[-1]),
        }

    def figure(self, **kwargs: Any) -> Any:
        panels = [(self.content, f"content: {self.content_name}")]
        blend = self.weights.get("style_blend") or [1.0] * len(self.styles)
        for style, name, b in zip(self.styles, self.style_names, blend):
            panels.append((style, f"style: {name}" + (f" ({b:.2g})" if len(self.styles) > 1 else "")))
        panels.append((self.image, "result" + (" (colours kept)" if self.preserve_color else "")))
        title = (
            f"Style transfer with {self.model.label}: content {self.content_layer}, style {', '.join(self.style_layers)}\n"
            f"{self.steps} {self.optimizer} steps from the {self.init}; style loss / {self.style_reduction:.3g}"
        )
        return image_figure(panels, title)

    def _summary(self) -> dict[str, Any]:
        return {
            "model": self.model.name,
            "weights": self.model.weights_label,
            "content_layer": self.content_layer,
            "style_layers": self.style_layers,
            "steps": self.steps,
            "style_reduction": self.style_reduction,
            "total_never_rose": self.total_never_rose,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class StyleSettings:
    """What :func:`stylize` optimizes and how (Gatys et al. 2016): ``stylize(..., settings=StyleSettings(style_weight=1e4))``.

    - ``content_layer``, ``style_layers``: dotted layer names (VGG aliases such as ``relu4_2`` work);
      None: ``cnnlens.default_layers(model, "content" | "style")``.
    - ``style_blend``: one weight per style image (normalized to sum 1); the target Grams are blended.
    - ``content_weight``, ``style_weight``, ``tv_weight``: weights of the three terms (see
      :mod:`cnnlens.style.losses`). None: the table of :mod:`cnnlens.style.backbones` for the model
      (vgg19, squeezenet1_0 ...), else ``content_weight = 1 / mean(P²)`` measured on the content,
      ``style_weight = 1e3``, no TV.
    - ``style_layer_weights``: ``w_l`` per style layer; None: the backbone's table for its default
      layers, else ``1 / (L · mean(A_l²))`` measured on the style Grams (every term starts near 1).
    - ``optimizer``, ``lr``: ``"lbfgs"`` (lr 1) or ``"adam"`` (lr 0.02).
    - ``init``: ``"content"``, ``"color-matched"`` (the content with the styles' colour mean and
      covariance, :func:`~cnnlens.style.color.match_colors`: the colour statistics that the first
      layers' Grams ask for are there from the start, so L-BFGS needs fewer steps), ``"noise"``
      (uniform, drawn from the seed) or an image tensor.
    - ``preserve_color``: keep the content's chroma (YIQ I and Q), take only luminance from the result.
    """

    content_layer: str | None = None
    style_layers: Sequence[str] | None = None
    style_blend: Sequence[float] | None = None
    content_weight: float | None = None
    style_weight: float | None = None
    style_layer_weights: Sequence[float] | None = None
    tv_weight: float | None = None
    optimizer: str = "lbfgs"
    lr: float | None = None
    init: str | torch.Tensor = "content"
    preserve_color: bool = False


def stylize(
    model: nn.Module,
    content: Any,
    style: Any,
    *,
    settings: StyleSettings | None = None,
    size: int | None = None,
    steps: int = 300,
    preprocessing: Preprocessing | None = None,
    seed: int | None = None,
    progress: bool = True,
    callback: Callable[[Step], None] | None = None,
) -> StyleResult:
    """Render ``content`` in the style of ``style`` (one image or a list of them, blended).

    Args:
        model: any CNN (usually from :func:`cnnlens.create_model`); it is left unchanged.
        content, style: images as pixels in [0, 1]: a ``(C, H, W)``/``(1, C, H, W)`` tensor, a path,
            a PIL image or an array. The styles may have any size.
        settings: :class:`StyleSettings`: the layers, the weights of the loss terms, the style blend,
            the optimizer and its start, colour preservation (default: the backbone's table).
        size: resize the content's shorter side (and each style's) to ``size`` pixels first.
        steps: optimizer iterations (L-BFGS: one update with a line search each).
        preprocessing: the model's normalization; default ``cnnlens.model_info(model).preprocessing``.
        progress: a bar on a terminal, a line every 10 s elsewhere (``cnnlens.progress``).
        callback: called after every iteration with a :class:`~cnnlens.style.optim.Step`.

    Example:
        >>> import torch, cnnlens
        >>> net = cnnlens.create_model("squeezenet1_0", seed=0)
        >>> out = stylize(net, torch.rand(3, 64, 64), torch.rand(3, 64, 64), steps=2, progress=False)
        >>> out.image.shape, out.total_never_rose
        (torch.Size([3, 64, 64]), True)
    """
    generator = seeds.generator(seed)
    s = settings or StyleSettings()
    content_layer, style_layers, style_blend = s.content_layer, s.style_layers, s.style_blend
    content_weight, style_weight, style_layer_weights, tv_weight = s.content_weight, s.style_weight, s.style_layer_weights, s.tv_weight
    optimizer, lr, init, preserve_color = s.optimizer, s.lr, s.init, s.preserve_color
    style_list = list(style) if isinstance(style, (list, tuple)) else [style]
    check_style_settings(
        content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight, style_blend=style_blend,
        style_layer_weights=style_layer_weights, steps=steps, lr=lr, optimizer=optimizer, init=init, styles=len(style_list),
    )
    info = model_info(model, preprocessing=preprocessing)
    prep = info.preprocessing
    size = check_size(size, prep)
    spec = backbone(info.name)
    default_content, default_style = content_layer is None, style_layers is None
    if content_layer is None:
        content_layer = _default(model, "content", "content_layer")[0]
    if style_layers is None:
        style_layers = _default(model, "style", "style_layers")
    if spec is not None:
        # a table measured on the pretrained weights holds for their default layers only; VGG's
        # (pystiche's 1 / 1e3 with w_l = 1/L) holds for any layer
        measured = spec.style_layer_weights is not None
        fits = not measured or not info.random_init
        if content_weight is None and fits and (default_content or not measured):
            content_weight = spec.content_weight
        if style_layer_weights is None and fits and (default_style or not measured):
            style_layer_weights = spec.style_layer_weights if measured else [1.0 / len(style_layers)] * len(style_layers)
        style_weight = spec.style_weight if style_weight is None else style_weight
        tv_weight = spec.tv_weight if tv_weight is None else tv_weight
    style_weight = 1e3 if style_weight is None else style_weight
    tv_weight = 0.0 if tv_weight is None else tv_weight
    content_rgb = read_image(content, "content", size)
    style_rgb = [read_image(s, "style", size) for s in style_list]
    prep.check_size(content_rgb, "content")
    start = time.perf_counter()
    device, dtype = model_device(model), model_dtype(model)
    with eval_mode(model):
        objective = StyleObjective(
            model, content_rgb, style_rgb, content_layer=content_layer, style_layers=style_layers, style_blend=style_blend,
            content_weight=content_weight, style_weight=style_weight, style_layer_weights=style_layer_weights,
            tv_weight=tv_weight, preprocessing=prep, size_param="content" if size is None else "size",
        )
        content_x = prep.convert_channels(content_rgb)
        if isinstance(init, torch.Tensor):
            x0 = prep.convert_channels(read_image(init, "init"))
            if x0.shape != content_x.shape:
                raise CnnlensError(f"init must have the content's shape {tuple(content_x.shape[1:])}, not {tuple(x0.shape[1:])}", param="init")
        elif init == "content":
            x0 = content_x.clone()
        elif init == "color-matched":
            x0 = match_colors(content_x, [prep.convert_channels(s) for s in style_rgb], objective.blend)
        else:
            x0 = torch.rand(content_x.shape, generator=generator, dtype=torch.float32)
        with progress_bar(steps, f"stylize with {info.name}", enabled=progress, unit="step") as bar:

            def on_step(step: Step) -> None:
                bar.update(1, total=step.losses["total"], style=step.losses["style"])
                if callback is not None:
                    callback(step)

            image, history, evaluations = optimize_pixels(
                x0.to(device, dtype), objective, steps=steps, optimizer=optimizer, lr=lr, callback=on_step
            )
    image = image[0].detach().float().cpu()
    if preserve_color:
        image = transfer_luminance(image.expand(3, *image.shape[-2:]), content_rgb[0].expand(3, *image.shape[-2:]))
    weights = {
        "content_weight": objective.content_weight,
        "style_weight": objective.style_weight,
        "tv_weight": objective.tv_weight,
        "style_layer_weights": list(objective.layer_weights),
        "style_blend": list(objective.blend),
    }
    return StyleResult(
        image=image, content=content_rgb[0], styles=[s[0] for s in style_rgb], history=history,
        content_layer=objective.content_layer, style_layers=list(objective.style_layers), model=info, weights=weights,
        steps=steps, optimizer=optimizer, init=init if isinstance(init, str) else "given image", preserve_color=bool(preserve_color),
        evaluations=evaluations, seconds=time.perf_counter() - start, content_name=image_name(content, "content"),
        style_names=[image_name(s, f"style {i + 1}") for i, s in enumerate(style_list)],
    )


def _default(model: nn.Module, capability: str, param: str) -> list[str]:
    try:
        return default_layers(model, capability)
    except CnnlensError as exc:
        raise CnnlensError(f"{param}: {exc}", param=param) from None
