"""Reconstruct an image from one layer's activations (Mahendran & Vedaldi, "Understanding deep image
representations by inverting them", CVPR 2015, and "Visualizing deep convolutional neural networks
using natural pre-images", IJCV 2016).

``x* = argmin_x ‖Φ(τ(x)) - Φ(x₀)‖² / ‖Φ(x₀)‖² + λ_TV · TV^β(x)``, with ``x`` in [0, 1] pixel space,
the model's normalization inside, and ``τ`` a random shift of up to ``jitter`` pixels drawn anew at
every Adam step (the jitter of the IJCV paper). Shallow layers keep the photo almost exactly;
deeper ones keep parts and layout but lose exact colour and texture.

The defaults (Adam with a cosine learning-rate decay; λ_TV and jitter growing with the layer's
stride, 50 and 2 px at a stride of 16) were chosen by measuring how much of the photo comes back
from each depth of the ImageNet squeezenet1_0 (``docs/style.md``): L-BFGS without jitter and with
λ_TV = 2 (the former defaults) returned noise from ``features.12``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from .. import seeds
from ..checks import check_int, check_number
from ..errors import CnnlensError
from ..hooks import eval_mode
from ..layers import model_device, model_dtype
from ..pixels import Preprocessing
from ..progress import progress_bar
from ..registry import ModelInfo, default_layers, model_info
from ..results import Result
from .losses import reconstruction_loss, total_variation
from .optim import Step, check_size, optimize_pixels, read_image
from .transfer import check_layers, image_figure, image_name, layer_features, never_rose

__all__ = ["INVERT_DEFAULTS", "TV_PER_STRIDE", "InvertResult", "InvertSettings", "check_invert_settings", "correlation", "invert", "invert_defaults", "layer_stride"]

#: per optimizer: steps and lr; for Adam the TV weight and the jitter follow the layer's stride ``s``
#: (input side / output side): ``tv_weight = TV_PER_STRIDE · s``, ``jitter = s // 8`` pixels
INVERT_DEFAULTS: dict[str, dict[str, float]] = {
    "adam": {"steps": 300, "lr": 0.05},
    "lbfgs": {"steps": 200, "lr": 1.0, "tv_weight": 2.0, "jitter": 0},
}
TV_PER_STRIDE = 3.0


def layer_stride(image_shape: Sequence[int], feature_shape: Sequence[int]) -> float:
    """How many input pixels one position of a layer's output spans: ``sqrt(H·W / (h·w))`` (the whole
    image for an output without a spatial extent)."""
    h, w = image_shape[-2:]
    if len(feature_shape) < 4:
        return float(max(h, w))
    fh, fw = feature_shape[-2:]
    return math.sqrt(h * w / max(fh * fw, 1))


def invert_defaults(optimizer: str, stride: float) -> dict[str, float]:
    """The default ``steps``, ``lr``, ``tv_weight`` and ``jitter`` of :func:`invert` for a layer of ``stride``.

    Deeper layers keep less spatial detail and need a stronger prior and more jitter; at a shallow
    layer a jitter of one output cell would forbid an exact reconstruction (Mahendran & Vedaldi
    2016 set both per layer).
    """
    defaults = dict(INVERT_DEFAULTS[optimizer])
    if optimizer == "adam":
        defaults["tv_weight"] = round(TV_PER_STRIDE * stride, 2)
        defaults["jitter"] = int(stride // 8)
    return defaults


INITS = ("noise", "gray")


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson's correlation of all the values of two tensors of the same shape."""
    x = a.detach().double().flatten()
    y = b.detach().double().flatten()
    x, y = x - x.mean(), y - y.mean()
    den = float(x.norm() * y.norm())
    return float((x * y).sum()) / den if den > 0 else 0.0


def check_invert_settings(
    *, steps: Any = None, tv_weight: Any = None, beta: Any = 2.0, lr: Any = None, jitter: Any = None, optimizer: str = "adam"
) -> None:
    """Refuse bad numbers before any work, naming the parameter (NaN, negative, out of range)."""
    if optimizer not in INVERT_DEFAULTS:
        raise CnnlensError(f"optimizer must be one of {', '.join(INVERT_DEFAULTS)}, not {optimizer!r}", param="optimizer")
    if steps is not None:
        check_int(steps, "steps", low=0, high=100_000)
    if tv_weight is not None:
        check_number(tv_weight, "tv_weight", low=0)
    check_number(beta, "beta", low=1.0, high=10.0)
    if lr is not None:
        check_number(lr, "lr", low=0, low_open=True)
    if jitter is not None:
        check_int(jitter, "jitter", low=0, high=256)
        if jitter and optimizer == "lbfgs":
            raise CnnlensError("jitter needs the adam optimizer (L-BFGS needs the same objective at every step)", param="jitter")


@dataclass(repr=False)
class InvertResult(Result):
    """What :func:`invert` made.

    ``image`` ``(C, H, W)`` in [0, 1] on the CPU and the ``original`` it was inverted from (as the
    model saw it: resized, in the model's channels); ``history[i]`` has ``reconstruction``, ``tv`` and
    ``total`` after iteration ``i`` (with Adam at that step's jitter). Measured on the final image,
    without jitter: ``reconstruction`` (‖Φ(x) - Φ₀‖² / ‖Φ₀‖²), ``pixel_correlation`` (Pearson, all
    pixels), and ``correlations``: the correlation of the inversion's activations with the
    original's at the model's inversion layers and ``layer``, shallow to deep.
    """

    image: torch.Tensor
    original: torch.Tensor
    layer: str
    history: list[dict[str, float]]
    model: ModelInfo
    settings: dict[str, Any] = field(default_factory=dict)
    reconstruction: float = float("nan")
    pixel_correlation: float = float("nan")
    correlations: dict[str, float] = field(default_factory=dict)
    evaluations: int = 0
    seconds: float = 0.0
    image_name: str = "image"

    @property
    def total_never_rose(self) -> bool:
        """Whether the total loss never rose from one iteration to the next (always so with L-BFGS)."""
        return never_rose(self.history)

    @property
    def feature_correlation(self) -> float:
        """The correlation of the inversion's activations at ``layer`` with the original's."""
        return self.correlations.get(self.layer, float("nan"))

    def pixels(self) -> torch.Tensor:
        """The inversion alone, at its full size (what ``save_image`` writes)."""
        return self.image.expand(3, *self.image.shape[-2:])

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.model.to_dict(),
            "image": self.image_name,
            "size": list(self.image.shape[-2:]),
            "layer": self.layer,
            **self.settings,
            "evaluations": self.evaluations,
            "total_never_rose": self.total_never_rose,
            "reconstruction": self.reconstruction,
            "pixel_correlation": self.pixel_correlation,
            "feature_correlation": self.feature_correlation,
            "correlations": dict(self.correlations),
            "initial": dict(self.history[0]),
            "final": dict(self.history[-1]),
        }

    def figure(self, **kwargs: Any) -> Any:
        s = self.settings
        how = f"{s.get('steps')} {s.get('optimizer')} steps, TV^{s.get('beta', 2):g} weight {s.get('tv_weight', 0):.3g}"
        if s.get("jitter"):
            how += f", jitter {s['jitter']} px"
        title = (
            f"Inversion of {self.layer} of {self.model.label}\n{how}\ncorrelation with the original: "
            f"pixels {self.pixel_correlation:.2f}, {self.layer} activations {self.feature_correlation:.2f}"
        )
        return image_figure([(self.original, f"original: {self.image_name}"), (self.image, f"inversion from {self.layer}")], title)

    def _summary(self) -> dict[str, Any]:
        return {
            "model": self.model.name,
            "weights": self.model.weights_label,
            "layer": self.layer,
            "steps": self.settings.get("steps"),
            "reconstruction": self.reconstruction,
            "pixel_correlation": self.pixel_correlation,
            "feature_correlation": self.feature_correlation,
            "seconds": self.seconds,
        }


def default_invert_layer(model: nn.Module) -> str:
    """The middle one of ``cnnlens.default_layers(model, "invert")`` (shallow to deep)."""
    try:
        layers = default_layers(model, "invert")
    except CnnlensError as exc:
        raise CnnlensError(f"layer: {exc}", param="layer") from None
    return layers[len(layers) // 2]


@dataclass(frozen=True)
class InvertSettings:
    """The prior and the optimizer of :func:`invert` (Mahendran & Vedaldi 2015).

    - ``tv_weight``, ``lr``, ``jitter``: None is the optimizer's default (:func:`invert_defaults`):
      Adam, lr 0.05 decaying along a cosine, and for a layer of stride ``s`` (input pixels per output
      position) λ_TV = 3·s and a jitter of ``s // 8`` pixels (squeezenet1_0's ``features.12``,
      s ≈ 16: λ_TV ≈ 50, 2 px; ``features.1``, s = 2: λ_TV = 6, none); L-BFGS λ_TV 2, no jitter.
      λ_TV is for pixels in [0, 1]; the reconstruction term is 1 at x = 0.
    - ``beta``: TV exponent (2 smooth, 1 edge preserving).
    - ``optimizer``: ``"adam"`` (with jitter) or ``"lbfgs"`` (no jitter; the loss never rises).
    - ``init``: ``"noise"`` (uniform in [0.4, 0.6], drawn from the seed, as the paper starts from
      noise), ``"gray"`` (0.5 everywhere) or a tensor.
    """

    tv_weight: float | None = None
    beta: float = 2.0
    optimizer: str = "adam"
    lr: float | None = None
    jitter: int | None = None
    init: str | torch.Tensor = "noise"


def invert(
    model: nn.Module,
    image: Any,
    layer: str | None = None,
    *,
    settings: InvertSettings | None = None,
    size: int | None = None,
    steps: int | None = None,
    preprocessing: Preprocessing | None = None,
    seed: int | None = None,
    progress: bool = True,
    callback: Callable[[Step], None] | None = None,
) -> InvertResult:
    """Find an image whose ``layer`` activations match those of ``image``, under a TV^β prior.

    Args:
        model: any CNN (usually from :func:`cnnlens.create_model`); it is left unchanged.
        image: pixels in [0, 1]: a ``(C, H, W)``/``(1, C, H, W)`` tensor, a path, a PIL image or an array.
        layer: dotted name (VGG aliases such as ``relu3_1`` work on vgg16/vgg19); default the middle
            one of ``cnnlens.default_layers(model, "invert")``.
        settings: :class:`InvertSettings`: the prior (λ_TV, β), the optimizer, its learning rate,
            jitter and start (default per optimizer, :func:`invert_defaults`).
        size: resize the image's shorter side to ``size`` pixels first.
        steps: optimizer iterations; default per optimizer (Adam 300, L-BFGS 200).
        preprocessing: the model's normalization; default ``cnnlens.model_info(model).preprocessing``.
        seed: draws the initial noise and the jitter (``None``: torch's global generator).
        progress: a bar on a terminal, a line every 10 s elsewhere (``cnnlens.progress``).
        callback: called after every iteration with a :class:`~cnnlens.style.optim.Step`.

    Example:
        >>> import torch, cnnlens
        >>> net = cnnlens.create_model("squeezenet1_0", seed=0)
        >>> rec = invert(net, torch.rand(3, 64, 64), "features.4", steps=2, progress=False)
        >>> rec.image.shape, list(rec.correlations)[:2]
        (torch.Size([3, 64, 64]), ['features.1', 'features.4'])
    """
    generator = seeds.generator(seed)
    s = settings or InvertSettings()
    tv_weight, beta, optimizer, lr, jitter, init = s.tv_weight, s.beta, s.optimizer, s.lr, s.jitter, s.init
    check_invert_settings(steps=steps, tv_weight=tv_weight, beta=beta, lr=lr, jitter=jitter, optimizer=optimizer)
    info = model_info(model, preprocessing=preprocessing)
    prep = info.preprocessing
    size = check_size(size, prep)
    if not isinstance(init, torch.Tensor) and init not in INITS:
        raise CnnlensError(f"init must be one of {', '.join(INITS)} or an image tensor, not {init!r}", param="init")
    steps = int(INVERT_DEFAULTS[optimizer]["steps"]) if steps is None else int(steps)
    lr = float(INVERT_DEFAULTS[optimizer]["lr"] if lr is None else lr)
    layer = check_layers(model, [layer if layer is not None else default_invert_layer(model)], "layer")[0]
    try:
        depth = [name for name in default_layers(model, "invert") if name != layer]
    except CnnlensError:
        depth = []
    original = prep.convert_channels(read_image(image, "image", size))
    prep.check_size(original, "image")
    device, dtype = model_device(model), model_dtype(model)
    start = time.perf_counter()
    shift = [0, 0]

    def features(x: torch.Tensor, layers: Sequence[str], detach: bool) -> dict[str, torch.Tensor]:
        return layer_features(model, prep, x, layers, detach=detach, param="size" if size is not None else "image")

    with eval_mode(model):
        with torch.no_grad():
            target = features(original.to(device, dtype), [layer], True)[layer]
        stride = layer_stride(original.shape, target.shape)
        defaults = invert_defaults(optimizer, stride)
        tv_weight = float(defaults["tv_weight"] if tv_weight is None else tv_weight)
        jitter = int(defaults["jitter"] if jitter is None else jitter)

        def objective(x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            moved = torch.roll(x, shifts=(shift[0], shift[1]), dims=(-2, -1)) if shift != [0, 0] else x
            rec = reconstruction_loss(features(moved, [layer], False)[layer], target)
            tv = total_variation(x, beta)
            return rec + tv_weight * tv, {"reconstruction": rec, "tv": tv}

        if isinstance(init, torch.Tensor):
            x0 = prep.convert_channels(read_image(init, "init"))
            if x0.shape != original.shape:
                raise CnnlensError(f"init must have the image's shape {tuple(original.shape[1:])}, not {tuple(x0.shape[1:])}", param="init")
        elif init == "noise":
            x0 = 0.4 + 0.2 * torch.rand(original.shape, generator=generator, dtype=torch.float32)
        else:
            x0 = torch.full(original.shape, 0.5)

        with progress_bar(steps, f"invert {layer} of {info.name}", enabled=progress, unit="step") as bar:

            def on_step(step: Step) -> None:
                if jitter:
                    drawn = torch.randint(-jitter, jitter + 1, (2,), generator=generator)
                    shift[0], shift[1] = int(drawn[0]), int(drawn[1])
                bar.update(1, reconstruction=step.losses["reconstruction"])
                if callback is not None:
                    callback(step)

            result, history, evaluations = optimize_pixels(
                x0.to(device, dtype), objective, steps=steps, optimizer=optimizer, lr=lr, decay=optimizer == "adam", callback=on_step
            )
        layers = list(dict.fromkeys([*depth, layer]))
        with torch.no_grad():
            mine = features(result, layers, True)
            theirs = features(original.to(device, dtype), layers, True)
        reconstruction = float(reconstruction_loss(mine[layer], theirs[layer]))
        correlations = {name: correlation(mine[name], theirs[name]) for name in _execution_order(model, layers)}
    image_out = result[0].detach().float().cpu()
    settings = {"steps": steps, "optimizer": optimizer, "lr": lr, "tv_weight": tv_weight, "beta": float(beta), "jitter": jitter,
                "init": init if isinstance(init, str) else "given image", "stride": round(stride, 2)}
    return InvertResult(
        image=image_out, original=original[0], layer=layer, history=history, model=info, settings=settings,
        reconstruction=reconstruction, pixel_correlation=correlation(image_out, original[0]), correlations=correlations,
        evaluations=evaluations, seconds=time.perf_counter() - start, image_name=image_name(image, "image"),
    )


def _execution_order(model: nn.Module, layers: Sequence[str]) -> list[str]:
    """``layers`` in the order of ``model.named_modules()`` (shallow to deep for the usual CNN)."""
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    return sorted(layers, key=lambda name: order.get(name, len(order)))
