"""Gradient-ascent feature visualization: optimize an image so that an objective is large.

:func:`render` runs the loop: image parameterization -> random transforms -> the model's own input
normalization (:meth:`cnnlens.pixels.Preprocessing.normalize`) -> forward pass (stopped early
after the last layer the objective reads) -> Adam step on the parameterization. The model is used
in eval mode with frozen parameters (no ``.grad`` is written, BatchNorm statistics stay as they
were), in-place activations are switched off and every hook is removed on exit, also when the
objective raises (see :mod:`cnnlens.hooks`).

For the first ``redirect_steps`` steps every ``nn.ReLU``/``nn.ReLU6`` passes gradient through
where it would otherwise block all of it (Lucid's redirected ReLU), so units that are dead on the
initial noise image still start to grow.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from .. import seeds
from ..address import Unit, parse_unit, resolve_unit
from ..checks import check_int, check_number
from ..errors import CnnlensError
from ..hooks import StopForward, capture, eval_mode, hooked, no_inplace
from ..layers import get_layer, model_device
from ..pixels import Preprocessing
from ..progress import progress_bar
from ..registry import ModelInfo, default_layers, model_info
from ..results import Result
from ..speed import channels_last
from . import param as param_mod
from .objectives import INPUT, LOGITS, Objective, for_unit, unit_label
from .objectives import diversity as diversity_objective
from .transforms import Transform, compose, resize, standard_transforms

__all__ = [
    "MAX_SIZE",
    "Recipe",
    "RenderResult",
    "activations",
    "as_rgb",
    "fixed_input_size",
    "forward_activations",
    "high_frequency_energy",
    "image_grid",
    "number",
    "probe_shapes",
    "redirected_relu",
    "render",
    "show",
]

MAX_SIZE = 4096  # largest image side render and dream accept (memory grows with its square)


@dataclass(repr=False, eq=False)
class RenderResult(Result):
    """What :func:`render` made.

    Attributes:
        images: ``(B, C, H, W)`` pixels in [0, 1] on the CPU (``C`` is 1 for grey models).
        values: ``(B,)`` the objective of each image, on the final untransformed image.
        history: the summed objective at every step (on the transformed images).
        objective: a readable name of what was maximized.
        units: per image, the unit address it serves (``None`` when an :class:`Objective` was given).
        probabilities: per image, the softmax probability of its class on the final image (class
            units only, else ``None``).
        info: the model, its weights ("random init") and preprocessing.
        settings: size, steps, lr, parameterization, transforms ... as used.
    """

    images: torch.Tensor
    values: torch.Tensor
    history: list[float] = field(default_factory=list)
    objective: str = ""
    units: list[Unit | None] = field(default_factory=list)
    probabilities: list[float | None] = field(default_factory=list)
    info: ModelInfo | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def class_names(self) -> list[str | None]:
        """Per image, the class name of its unit (``None`` for channel units)."""
        return [u.name if u is not None and u.is_logits else None for u in self._units()]

    def _units(self) -> list[Unit | None]:
        return self.units or [None] * len(self.images)

    def _probabilities(self) -> list[float | None]:
        return self.probabilities or [None] * len(self.images)

    def labels(self) -> list[str]:
        """One label per image: unit (and class name), objective, probability."""
        out = []
        for i, (u, v, p) in enumerate(zip(self._units(), self.values.tolist(), self._probabilities())):
            head = unit_label(u) if u is not None else f"image {i}"
            tail = f"objective {number(v)}" + (f", p = {p:.3f}" if p is not None else "")
            out.append(f"{head}\n{tail}")
        return out

    def layers(self) -> list[str]:
        """The layers of the units, in order (``logits`` for classes)."""
        names = [u.layer for u in self._units() if u is not None]
        return list(dict.fromkeys(names)) or [self.objective]

    def title(self) -> str:
        info = self.info or ModelInfo("model", "module", "weights as given", Preprocessing())
        s = self.settings
        size = s.get("size")
        side = f"{size[0]}x{size[1]} px, " if isinstance(size, (list, tuple)) else ""
        basis = "Fourier" if s.get("param", "fft") == "fft" else "pixel"
        colours = ", decorrelated colours" if s.get("decorrelate") else ""
        return (
            f"Feature visualization of {info.label}: {', '.join(self.layers())}\n"
            f"{side}{s.get('steps_run', len(self.history))} Adam steps, {basis} parameterization{colours}"
        )

    def to_dict(self) -> dict[str, Any]:
        info = self.info.to_dict() if self.info is not None else {}
        rows = []
        for i, (u, v, p) in enumerate(zip(self._units(), self.values.tolist(), self._probabilities())):
            row: dict[str, Any] = {"index": i}
            if u is not None:
                row.update(u.to_dict())
            row["objective"] = float(v)
            if p is not None:
                row["probability"] = float(p)
            rows.append(row)
        return {**info, "objective": self.objective, **self.settings, "images": rows}

    def _summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.info is not None:
            out["model"] = self.info.label
        out["objective"] = self.objective
        out["images"] = tuple(self.images.shape)
        out["values"] = [round(v, 4) for v in self.values.tolist()]
        if any(p is not None for p in self._probabilities()):
            out["probabilities"] = [None if p is None else round(p, 4) for p in self._probabilities()]
        return out

    def to_text(self) -> str:
        """One line per image: ``logits:130 (flamingo): objective 52.3, p = 1.000``."""
        return "\n".join(label.replace("\n", ": ") for label in self.labels())

    def grid(self, ncols: int | None = None) -> torch.Tensor:
        """The images tiled into one ``(C, H', W')`` image with white gutters (no labels)."""
        return image_grid(self.images, ncols=ncols or min(len(self.images), 8))

    def pixels(self, ncols: int | None = None) -> torch.Tensor:
        """:meth:`grid`, what ``save_image`` writes: the pixels at the rendered size, no labels."""
        return self.grid(ncols)

    def figure(self, *, ncols: int | None = None, scale: float = 2.2) -> Any:
        """The images in a grid, each labelled with its unit, class name, objective and probability,
        under a title naming the model, its weights (or "random init") and the layers."""
        import math

        import matplotlib.pyplot as plt

        n = len(self.images)
        ncols = ncols or min(n, 6)
        nrows = math.ceil(n / ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(max(scale * ncols, 5.5), scale * nrows + 1.0), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, img, label in zip(axes.flat, self.images, self.labels()):
            show(ax, img)
            ax.set_title(label, fontsize=8)
        fig.suptitle(self.title(), fontsize=9)
        fig.tight_layout()
        return fig


def number(value: float) -> str:
    """``254,891`` for large values, ``0.6431`` for small ones: for labels."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def show(ax: Any, image: torch.Tensor) -> None:
    """Draw a ``(C, H, W)`` image in [0, 1] on a matplotlib axis (grey with a grey colour map), axis off."""
    img = image.detach().cpu().float().clamp(0, 1)
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).numpy())
    ax.axis("off")


def as_rgb(image: torch.Tensor) -> torch.Tensor:
    """A ``(1, H, W)`` grey image repeated to three channels (image files are written in RGB)."""
    return image.expand(3, *image.shape[1:]) if image.shape[0] == 1 else image


class _RedirectedReLU(torch.autograd.Function):
    """ReLU (or ReLU6 with ``upper=6``) whose gradient is redirected where the true one is all zero.

    Lucid's ``redirected_relu_grad``: for an image (batch item) on which the unit's true ReLU
    gradient is zero everywhere, pass the incoming gradient through except where it would push an
    input further below 0 (or above ``upper``).
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, upper: float | None) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.upper = upper
        return x.clamp(min=0.0) if upper is None else x.clamp(0.0, upper)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        upper = ctx.upper
        # grad is d(loss)/d(out) with loss = -objective: grad > 0 means the step lowers the input
        blocked = x < 0
        wrong_way = blocked & (grad > 0)
        if upper is not None:
            blocked = blocked | (x > upper)
            wrong_way = wrong_way | ((x > upper) & (grad < 0))
        relu_grad = torch.where(blocked, torch.zeros_like(grad), grad)
        redirected = torch.where(wrong_way, torch.zeros_like(grad), grad)
        alive = relu_grad.flatten(1).abs().amax(1) > 0 if grad.dim() > 1 else relu_grad.abs() > 0
        alive = alive.view(-1, *([1] * (grad.dim() - 1)))
        return torch.where(alive, relu_grad, redirected), None


def redirected_relu(x: torch.Tensor, upper: float | None = None) -> torch.Tensor:
    """``relu(x)`` (``relu6`` with ``upper=6``) with Lucid's redirected gradient."""
    return _RedirectedReLU.apply(x, upper)


class _Redirect:
    def __init__(self) -> None:
        self.active = False


@contextlib.contextmanager
def _redirect_relus(model: nn.Module) -> Iterator[_Redirect]:
    """Forward hooks that replace every ReLU/ReLU6 output by :func:`redirected_relu` while active."""
    state = _Redirect()

    def make(upper: float | None) -> Callable[..., torch.Tensor | None]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> torch.Tensor | None:
            if state.active and args and isinstance(args[0], torch.Tensor) and torch.is_grad_enabled():
                return redirected_relu(args[0], upper)
            return None

        return hook

    relus = [(m, make(6.0 if isinstance(m, nn.ReLU6) else None)) for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    with hooked(relus):
        yield state


def forward_activations(model: nn.Module, x: torch.Tensor, layers: Iterable[str], prep: Preprocessing) -> dict[str, torch.Tensor]:
    """The loop's forward pass: no mode handling (the caller runs it in :func:`cnnlens.eval_mode`)."""
    layers = set(layers)
    wanted = [name for name in layers if name not in (LOGITS, INPUT)]
    need_logits = LOGITS in layers
    acts: dict[str, torch.Tensor] = {}
    xn = prep.normalize(prep.convert_channels(x))
    if xn.dim() == 4:
        xn = xn.contiguous(memory_format=torch.channels_last)
    out = None
    with capture(model, wanted, detach=False, stop=bool(wanted) and not need_logits) as cap:
        try:
            out = model(xn)
        except StopForward:
            pass
    for name in wanted:
        if name not in cap.outputs:
            raise CnnlensError(f"layer {name!r} produced no tensor output in a forward pass")
        acts[name] = cap.outputs[name]
    if need_logits:
        logits = out if isinstance(out, torch.Tensor) else out[0]  # type: ignore[index]
        acts[LOGITS] = logits
    if INPUT in layers:
        acts[INPUT] = x
    return acts


def activations(
    model: nn.Module, x: torch.Tensor, layers: Sequence[str] | frozenset[str], *, preprocessing: Preprocessing | None = None
) -> dict[str, torch.Tensor]:
    """Run ``model`` in eval mode on pixels ``x`` in [0, 1] and return what ``layers`` produced.

    ``x`` is converted to the model's channels and normalized with its preprocessing (from
    :func:`cnnlens.model_info` unless ``preprocessing`` is given). ``"logits"`` is the model output
    and ``"input"`` the image itself; when the logits are not needed the forward pass stops after the
    last requested layer. Outputs keep their autograd graph. The model's modes (BatchNorm
    statistics included) are left as they were.
    """
    prep = preprocessing or model_info(model).preprocessing
    with eval_mode(model, freeze=False):
        return forward_activations(model, x, layers, prep)


def fixed_input_size(prep: Preprocessing) -> tuple[int, int] | None:
    """``(H, W)`` when a model takes only its input size (its minimum size equals it, as for
    LeNet-5's 32x32 or a ViT's 224x224), else ``None``."""
    _, h, w = prep.input_size
    return (h, w) if tuple(prep.min_size) == (h, w) and h > 1 else None


def probe_shapes(
    model: nn.Module, prep: Preprocessing, size: tuple[int, int], layers: Iterable[str], *, name: str = "size", hint: str = "use a larger size"
) -> dict[str, tuple[int, ...]]:
    """The output shapes of ``layers`` for one grey image of ``size`` (one forward pass, no gradient);
    a model that cannot run at that size is refused in one line naming ``name``."""
    layers = set(layers)
    x = torch.full((1, prep.channels, *size), 0.5, device=model_device(model))
    try:
        with torch.no_grad(), eval_mode(model), no_inplace(model):
            acts = forward_activations(model, x, layers, prep)
    except CnnlensError:
        raise
    except (RuntimeError, ValueError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CnnlensError(
            f"{name}: {model_info(model).name} cannot run on {size[0]}x{size[1]} images ({first[:160]}); {hint}",
            param=name,
        ) from None
    return {k: tuple(v.shape) for k, v in acts.items()}


def _as_units(spec: Any) -> list[Unit] | None:
    """Unit addresses as a list of :class:`Unit` (syntax checked), or ``None`` for an :class:`Objective`."""
    if isinstance(spec, Objective):
        return None
    items = [spec] if isinstance(spec, (str, Unit)) else list(spec) if isinstance(spec, (list, tuple)) else None
    if not items:
        raise CnnlensError(
            "objective_or_units must be an Objective, a unit address such as features.9:3 or logits:flamingo, or a list of them",
            param="objective_or_units",
        )
    if any(isinstance(i, Objective) for i in items):
        raise CnnlensError("objective_or_units: combine Objectives with + instead of a list", param="objective_or_units")
    return [parse_unit(i, name="unit") for i in items]


@dataclass(frozen=True)
class Recipe:
    """How :func:`render` parameterizes and optimizes its images (default: Lucid's recipe, Olah et al. 2017).

    - ``param``: an :class:`~cnnlens.featvis.param.ImageParam`; None: a Fourier image (``fft``) with
      colour decorrelation (``decorrelate``), as in Lucid; grey for 1-channel models.
    - ``transforms``: random transforms applied before each step; None:
      :func:`~cnnlens.featvis.transforms.standard_transforms`, ``[]`` for none. A model that takes one
      input size only gets the transformed image resized back to it.
    - ``lr``: Adam's learning rate (Lucid: 0.05).
    - ``redirect_steps``: steps with redirected ReLU gradients (Lucid: 16; 0 turns it off).

    ``Recipe(fft=False, decorrelate=False, transforms=[])`` optimizes raw pixels, the baseline Lucid's
    choices are measured against.
    """

    param: param_mod.ImageParam | None = None
    fft: bool = True
    decorrelate: bool = True
    transforms: Sequence[Transform] | None = None
    lr: float = 0.05
    redirect_steps: int = 16


def render(
    model: nn.Module,
    objective_or_units: Objective | str | Unit | Sequence[str | Unit],
    *,
    size: int | None = None,
    batch: int | None = None,
    diversity: float = 0.0,
    recipe: Recipe | None = None,
    steps: int = 256,
    until: float | None = None,
    preprocessing: Preprocessing | None = None,
    seed: int | None = None,
    progress: bool = True,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> RenderResult:
    """Optimize images that maximize units or an objective of ``model``.

    Args:
        model: any CNN (from :func:`cnnlens.create_model` or any ``nn.Module``); left exactly as it was.
        objective_or_units: a unit address or a list of them, one image each, all in one batch:
            ``"features.9:3"`` (a channel's mean), ``"features.10:3@6,6"`` (one neuron),
            ``"logits:flamingo"`` or ``"logits:130"`` (a class logit), ``"features.9"`` (the layer's
            mean squared activation); or an :class:`~cnnlens.featvis.objectives.Objective` built
            with :mod:`cnnlens.featvis.objectives`.
        size: image side in pixels; default 128 (Lucid), or the input size of a model that takes
            only that size (``lenet5``: 32). Between the model's minimum size and 4096.
        batch: with units, images per unit (use with ``diversity``); with an Objective, the number
            of images (default: what the objective needs, else 1).
        diversity: weight of Lucid's diversity term on the units' layers (the last spatial layer for
            class units), which pushes the images of a batch apart.
        recipe: a :class:`Recipe`, how the image is parameterized and optimized (default Lucid's:
            Fourier image with decorrelated colours, standard transforms, Adam 0.05, 16 steps of
            redirected ReLU gradients).
        steps: Adam steps (Lucid: 512).
        until: stop early once every image's objective (on its transformed version) reaches this
            value (after the redirected-ReLU steps); compares parameterizations at equal activation.
        preprocessing: the model's input normalization; default ``model_info(model).preprocessing``.
            Pixels are optimized in [0, 1].
        seed: every random draw (initial image, transforms) comes from it (``None``: torch's global generator).
        progress: a bar on a terminal, a line every 10 s elsewhere (see :mod:`cnnlens.progress`).
        callback: ``callback(step, values)`` after every step, ``values`` the ``(B,)`` objective.

    Returns:
        :class:`RenderResult`: images on the CPU, objective per image, and for class units the
        class name and the softmax probability of the class on the final image.

    Raises:
        CnnlensError: unknown layer, channel, position or class (with the closest names), a number
            out of range, or a size the model cannot run at; before any optimization step.

    Example:
        >>> import torch, cnnlens
        >>> model = cnnlens.create_model("squeezenet1_0", seed=0)
        >>> out = cnnlens.render(model, ["features.9:0", "logits:flamingo"], size=32, steps=2,
        ...                      seed=0, progress=False)
        >>> tuple(out.images.shape), out.class_names
        ((2, 3, 32, 32), [None, 'flamingo'])
    """
    generator = seeds.generator(seed)
    recipe = recipe or Recipe()
    param, fft, decorrelate, transforms = recipe.param, recipe.fft, recipe.decorrelate, recipe.transforms
    lr, redirect_steps = recipe.lr, recipe.redirect_steps
    info = model_info(model, preprocessing=preprocessing)
    prep = info.preprocessing
    if prep.channels not in (1, 3):
        raise CnnlensError(f"model: {info.name} takes {prep.channels}-channel input, not images (1 or 3 channels)", param="model")
    fixed = fixed_input_size(prep)
    low = max(8, *prep.min_size)
    if size is None and param is None:
        size = fixed[0] if fixed is not None else max(128, low)
    if param is None:
        size = check_int(size, "size", low=low, high=MAX_SIZE)
    steps = check_int(steps, "steps", low=0, high=100_000)
    lr = check_number(lr, "lr", low=0.0, low_open=True, high=10.0)
    redirect_steps = check_int(redirect_steps, "redirect_steps", low=0)
    diversity = check_number(diversity, "diversity", low=0.0)
    if until is not None:
        until = check_number(until, "until")
    if batch is not None:
        batch = check_int(batch, "batch", low=1, high=1024)
    units = _as_units(objective_or_units)
    device = model_device(model)
    hw = (size, size) if param is None else tuple(param.shape[-2:])
    if param is not None and (hw[0] < prep.min_size[0] or hw[1] < prep.min_size[1]):
        raise CnnlensError(f"param makes {hw[0]}x{hw[1]} images, smaller than the model's minimum {prep.min_size[0]}x{prep.min_size[1]}", param="param")
    model_size = fixed or hw

    if units is not None:
        unit_layers = {u.layer for u in units}
        for u in units:
            if not u.is_logits:
                resolve_unit(u, model, name="unit")  # unknown layer: did-you-mean, before the forward pass
        shapes = probe_shapes(model, prep, model_size, unit_layers, name="size")
        num_classes = shapes[LOGITS][1] if LOGITS in shapes and len(shapes[LOGITS]) > 1 else None
        units = [resolve_unit(u, model, categories=info.categories, num_classes=num_classes, shape=shapes.get(u.layer), name="unit") for u in units]
        per_unit = batch or 1
        parts = [for_unit(u, batch=i * per_unit + j) for i, u in enumerate(units) for j in range(per_unit)]
        obj = sum(parts[1:], parts[0])
        obj = Objective(obj.fn, obj.layers, ", ".join(unit_label(u) for u in units), len(parts))
        image_units: list[Unit | None] = [u for u in units for _ in range(per_unit)]
        if diversity and len(parts) == 1:
            raise CnnlensError("diversity: one image has nothing to differ from; give batch 2 or more", param="diversity")
        if diversity:
            layers = [u.layer for u in units if not u.is_logits] or default_layers(model, "last_spatial")
            for layer in dict.fromkeys(layers):
                obj = obj + diversity * diversity_objective(layer)
        n_images = len(parts)
    else:
        obj = objective_or_units  # type: ignore[assignment]
        for layer in obj.layers - {LOGITS, INPUT}:
            try:
                get_layer(model, layer)
            except CnnlensError as exc:
                raise CnnlensError(f"objective_or_units: {exc}", param="objective_or_units") from None
        probe_shapes(model, prep, model_size, obj.layers, name="size")
        if diversity:
            raise CnnlensError("diversity: add objectives.diversity(layer) to the Objective itself", param="diversity")
        n_images = batch or obj.batch_size or 1
        image_units = []

    if param is None:
        param = param_mod.image(size, batch=n_images, fft=fft, decorrelate=decorrelate, channels=prep.channels, generator=generator, device=device)
    with torch.no_grad():
        n_images = param().shape[0]
    if obj.batch_size is not None and obj.batch_size > n_images:
        raise CnnlensError(f"batch {n_images} is too small: the objective needs {obj.batch_size} images", param="batch")
    chain = list(standard_transforms() if transforms is None else transforms)
    if fixed is not None:
        chain.append(resize(fixed))
    transform = compose(chain)
    optimizer = torch.optim.Adam(param.params, lr=lr)
    history: list[float] = []
    class_items = [i for i, u in enumerate(image_units) if u is not None and u.is_logits]
    final_layers = set(obj.layers) | ({LOGITS} if class_items else set())
    fit = compose([resize(fixed)]) if fixed is not None else (lambda x, g=None: x)

    with eval_mode(model), no_inplace(model), channels_last(model), _redirect_relus(model) as redirect:
        with progress_bar(steps, "visualize", enabled=progress, unit="step") as bar:
            try:
                for step in range(steps):
                    redirect.active = step < redirect_steps
                    optimizer.zero_grad(set_to_none=True)
                    x = transform(param(), generator)
                    values = obj(forward_activations(model, x, obj.layers, prep))
                    (-values.sum()).backward()
                    optimizer.step()
                    total = float(values.detach().sum())
                    history.append(total)
                    bar.update(1, objective=total)
                    if callback is not None:
                        callback(step, values.detach())
                    if until is not None and step >= redirect_steps and float(values.detach().min()) >= until:
                        break
            finally:
                redirect.active = False
        with torch.no_grad():
            images = param().detach()
            acts = forward_activations(model, fit(images), final_layers, prep)
            final = obj(acts).detach()
            probs = torch.softmax(acts[LOGITS].float(), 1) if class_items else None
    for p in param.params:
        p.grad = None
    if not bool(torch.isfinite(images).all()):
        raise CnnlensError(f"lr {lr:g} gave images with NaN pixels (the model's activations overflow); lower it or use fewer steps", param="lr")
    probabilities: list[float | None] = [None] * n_images
    if probs is not None:
        for i in class_items:
            probabilities[i] = float(probs[i, image_units[i].channel])  # type: ignore[index, union-attr]
    settings = {
        "size": list(images.shape[-2:]),
        "steps": steps,
        "steps_run": len(history),
        "lr": lr,
        "param": param.kind,
        "decorrelate": bool(param.decorrelate),
        "transforms": "standard" if transforms is None else ("custom" if transforms else "none"),
        "redirect_steps": redirect_steps,
        "images_per_unit": (batch or 1) if units is not None else None,
        "diversity": diversity,
    }
    return RenderResult(
        images=images.cpu(),
        values=final.cpu(),
        history=history,
        objective=obj.name,
        units=image_units,
        probabilities=probabilities if class_items else [],
        info=info,
        settings=settings,
    )


def image_grid(images: torch.Tensor, *, ncols: int | None = None, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """Tile ``(B, C, H, W)`` into one ``(C, H', W')`` image (white gutters), up to 8 per row by default."""
    import math

    b, c, h, w = images.shape
    ncols = ncols or min(b, 8)
    nrows = math.ceil(b / ncols)
    out = images.new_full((c, nrows * (h + padding) + padding, ncols * (w + padding) + padding), pad_value)
    for i in range(b):
        r, k = divmod(i, ncols)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        out[:, top : top + h, left : left + w] = images[i]
    return out


def high_frequency_energy(images: torch.Tensor, *, cutoff: float = 0.25) -> torch.Tensor:
    """Fraction of each image's spectral power above ``cutoff`` cycles per pixel, ``(B,)``.

    Each channel's mean is removed first (the DC term carries no texture); the radial frequency
    runs from 0 to ``sqrt(0.5**2 + 0.5**2)``. White noise gives about ``1 - pi * cutoff**2``
    (0.80 for 0.25); a natural photo gives a few percent.
    """
    x = images if images.dim() == 4 else images.unsqueeze(0)
    x = x.float() - x.float().mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(x).abs().pow(2).sum(1)  # (B, H, W)
    h, w = x.shape[-2:]
    fy = torch.fft.fftfreq(h, device=x.device)[:, None]
    fx = torch.fft.fftfreq(w, device=x.device)[None, :]
    high = (fx * fx + fy * fy).sqrt() > cutoff
    total = power.flatten(1).sum(1).clamp(min=1e-20)
    return (power * high).flatten(1).sum(1) / total
