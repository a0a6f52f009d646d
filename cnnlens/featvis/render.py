"""Gradient-ascent feature visualization: optimize an image so that an objective is large.

:func:`render` runs the loop: image parameterization -> random transforms -> the model's own input
normalization -> forward pass (stopped early after the last layer the objective reads) -> Adam
step on the parameterization. The model is used in eval mode with frozen parameters (no ``.grad``
is written), in-place activations are switched off and every hook is removed on exit, also when
the objective raises (see :mod:`cnnlens.hooks`).

For the first ``redirect_steps`` steps every ``nn.ReLU``/``nn.ReLU6`` passes gradient through
where it would otherwise block all of it (Lucid's redirected ReLU, landscape pitfall 24), so units
that are dead on the initial noise image still start to grow.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..hooks import StopForward, capture, eval_mode, no_inplace
from ..speed import channels_last
from ..pixels import Preprocessing
from ..registry import model_device
from . import param as param_mod
from .objectives import INPUT, LOGITS, Objective, as_objective
from .transforms import Transform, compose, standard_transforms

__all__ = [
    "RenderResult",
    "activations",
    "channels_last",
    "high_frequency_energy",
    "image_grid",
    "model_device",
    "redirected_relu",
    "render",
]


@dataclass
class RenderResult:
    """``images``: ``(B, 3, H, W)`` in [0, 1]; ``values``: the objective per image on the final,
    untransformed images; ``history``: the summed objective at every step (on transformed images)."""

    images: torch.Tensor
    values: torch.Tensor
    history: list[float] = field(default_factory=list)
    objective: str = ""


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
    active = False


@contextlib.contextmanager
def _redirect_relus(model: nn.Module) -> Iterator[_Redirect]:
    """Forward hooks that replace every ReLU/ReLU6 output by :func:`redirected_relu` while active."""
    state = _Redirect()
    handles = []

    def make(upper: float | None) -> Callable[..., torch.Tensor | None]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> torch.Tensor | None:
            if state.active and args and isinstance(args[0], torch.Tensor) and torch.is_grad_enabled():
                return redirected_relu(args[0], upper)
            return None

        return hook

    try:
        for m in model.modules():
            if isinstance(m, nn.ReLU6):
                handles.append(m.register_forward_hook(make(6.0)))
            elif isinstance(m, nn.ReLU):
                handles.append(m.register_forward_hook(make(None)))
        yield state
    finally:
        for h in handles:
            h.remove()


def activations(
    model: nn.Module, x: torch.Tensor, layers: Sequence[str] | frozenset[str], *, preprocessing: Preprocessing | None = None
) -> dict[str, torch.Tensor]:
    """Run ``model`` on pixels ``x`` in [0, 1] (normalized for it) and return what ``layers`` produced.

    ``"logits"`` is the model output and ``"input"`` the image itself; when the logits are not
    needed the forward pass stops after the last requested layer. Outputs keep their autograd graph.
    """
    prep = preprocessing or Preprocessing()
    wanted = [name for name in layers if name not in (LOGITS, INPUT)]
    need_logits = LOGITS in layers
    acts: dict[str, torch.Tensor] = {}
    xn = prep.normalize(x)
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
            from ..errors import CnnlensError

            raise CnnlensError(f"layer {name!r} produced no tensor output in a forward pass")
        acts[name] = cap.outputs[name]
    if need_logits:
        acts[LOGITS] = out if isinstance(out, torch.Tensor) else out[0]  # type: ignore[index]
    if INPUT in layers:
        acts[INPUT] = x
    return acts


def render(
    model: nn.Module,
    objective: Objective | str,
    *,
    size: int | tuple[int, int] = 128,
    batch: int | None = None,
    param: param_mod.ImageParam | None = None,
    fft: bool = True,
    decorrelate: bool = True,
    transforms: Sequence[Transform] | None = None,
    steps: int = 256,
    lr: float = 0.05,
    preprocessing: Preprocessing | None = None,
    redirect_steps: int = 16,
    generator: torch.Generator | None = None,
    progress: bool | None = False,
    callback: Callable[[int, torch.Tensor], None] | None = None,
    until: float | None = None,
) -> RenderResult:
    """Optimize images that maximize ``objective`` on ``model``.

    Args:
        model: any CNN taking normalized ``(B, 3, H, W)`` images; left exactly as it was.
        objective: an :class:`~cnnlens.featvis.objectives.Objective` or ``"layer:channel"``.
        size: image side (or ``(H, W)``) when ``param`` is not given.
        batch: number of images (default: what the objective needs, else 1).
        param: an :class:`~cnnlens.featvis.param.ImageParam`; default Fourier (``fft``) with colour
            decorrelation (``decorrelate``), as in Lucid.
        transforms: random transforms applied before each step; default
            :func:`~cnnlens.featvis.transforms.standard_transforms`, ``[]`` for none.
        steps, lr: Adam steps and learning rate (Lucid: 512 and 0.05).
        preprocessing: the model's input normalization (``cnnlens.preprocessing(name, weights)``);
            default ImageNet mean/std. Pixels are optimized in [0, 1].
        redirect_steps: steps with redirected ReLU gradients (Lucid: 16; 0 turns it off).
        generator: every random draw (initial image, transforms) comes from it.
        progress: a tqdm bar on stderr (``None``: only when stderr is a terminal).
        callback: ``callback(step, values)`` after every step, ``values`` the ``(B,)`` objective.
        until: stop early once every image's objective (on its transformed version) reaches this
            value (after the redirected-ReLU steps); compares parameterizations at equal activation.

    Returns:
        :class:`RenderResult` with the images (detached, on the model's device) and their values.

    Example:
        >>> import torch, torchvision
        >>> from cnnlens.featvis import objectives, render
        >>> model = torchvision.models.squeezenet1_0().eval()
        >>> out = render(model, objectives.channels("features.9", [0, 1]), size=32, steps=2,
        ...              generator=torch.Generator().manual_seed(0))
        >>> tuple(out.images.shape)
        (2, 3, 32, 32)
    """
    obj = as_objective(objective)
    if steps < 0:
        raise ValueError("steps must be >= 0")
    device = model_device(model)
    if param is None:
        n = batch or obj.batch_size or 1
        param = param_mod.image(size, batch=n, fft=fft, decorrelate=decorrelate, generator=generator, device=device)
    with torch.no_grad():
        n_images = param().shape[0]
    if obj.batch_size is not None and obj.batch_size > n_images:
        from ..errors import CnnlensError

        raise CnnlensError(f"the objective needs {obj.batch_size} images but the batch has {n_images}")
    transform = compose(standard_transforms() if transforms is None else list(transforms))
    optimizer = torch.optim.Adam(param.params, lr=lr)
    history: list[float] = []

    from tqdm.auto import tqdm

    disable = (not sys.stderr.isatty()) if progress is None else not progress
    with eval_mode(model), no_inplace(model), channels_last(model), _redirect_relus(model) as redirect:
        bar = tqdm(range(steps), desc="visualize", file=sys.stderr, disable=disable, leave=False)
        try:
            for step in bar:
                redirect.active = step < redirect_steps
                optimizer.zero_grad(set_to_none=True)
                x = transform(param(), generator)
                values = obj(activations(model, x, obj.layers, preprocessing=preprocessing))
                (-values.sum()).backward()
                optimizer.step()
                history.append(float(values.detach().sum()))
                if callback is not None:
                    callback(step, values.detach())
                if until is not None and step >= redirect_steps and float(values.detach().min()) >= until:
                    break
        finally:
            bar.close()
            redirect.active = False
        with torch.no_grad():
            images = param().detach()
            final = obj(activations(model, images, obj.layers, preprocessing=preprocessing)).detach()
    for p in param.params:
        p.grad = None
    return RenderResult(images=images, values=final, history=history, objective=obj.name)


def image_grid(images: torch.Tensor, *, ncols: int | None = None, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """Tile ``(B, 3, H, W)`` into one ``(3, H', W')`` image (white gutters), up to 8 per row by default."""
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
