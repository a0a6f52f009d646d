"""What style transfer and inversion share: reading their images, and optimizing pixels with L-BFGS
(strong-Wolfe line search) or Adam."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..checks import check_int
from ..errors import CnnlensError
from ..pixels import Preprocessing, as_pixels

__all__ = ["MAX_SIZE", "Step", "check_size", "optimize_pixels", "read_image"]

MAX_SIZE = 4096  # largest --size: a 4096 px style transfer already needs tens of GB on VGG

Objective = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass(frozen=True)
class Step:
    """One optimizer iteration: its index (1-based), the loss terms at the new image, and forward passes so far."""

    step: int
    losses: dict[str, float]
    evaluations: int


class _CachedObjective:
    """Evaluate ``objective`` and its gradient, remembering the last few points.

    torch's L-BFGS evaluates the accepted point inside its line search and again at the start of
    the next ``step()``; the cache answers the second time, so one iteration per ``step()`` call
    (which gives a loss per iteration for the progress bar) costs no extra forward pass.
    """

    def __init__(self, objective: Objective, keep: int = 4, box: bool = True, dtype: torch.dtype | None = None) -> None:
        self.objective = objective
        self.box = box
        self.dtype = dtype
        self.keep = keep
        self.entries: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float]]] = []
        self.evaluations = 0

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        for point, loss, grad, parts in self.entries:
            if torch.equal(point, x.detach()):
                return loss, grad, parts
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            image = leaf.clamp(0, 1) if self.box else leaf
            total, terms = self.objective(image if self.dtype is None else image.to(self.dtype))
            (grad,) = torch.autograd.grad(total, leaf)
        self.evaluations += 1
        parts = {k: float(v.detach()) for k, v in terms.items()}
        parts["total"] = float(total.detach())
        entry = (x.detach().clone(), total.detach(), grad.detach(), parts)
        self.entries = [entry, *self.entries[: self.keep - 1]]
        if not torch.isfinite(total):
            raise CnnlensError(
                f"the loss became {float(total.detach())} at evaluation {self.evaluations}; lower the weights or lr, or use the lbfgs optimizer"
            )
        return entry[1], entry[2], parts


def _overflows(grad: torch.Tensor) -> bool:
    """Whether the line search's squares of directional derivatives (~|g|⁴) could leave float32's range."""
    return float(grad.double().pow(2).sum()) > 1e12


def optimize_pixels(
    x0: torch.Tensor,
    objective: Objective,
    *,
    steps: int,
    optimizer: str = "lbfgs",
    lr: float | None = None,
    history_size: int = 100,
    decay: bool = False,
    callback: Callable[[Step], None] | None = None,
) -> tuple[torch.Tensor, list[dict[str, float]], int]:
    """Minimize ``objective(x)`` over the pixels ``x`` starting from ``x0``; return the image, the loss history and
    the number of objective evaluations (forward + backward passes).

    ``history[0]`` holds the losses at ``x0``, ``history[i]`` those after iteration ``i``. With
    ``"lbfgs"`` each iteration is one L-BFGS update with a strong-Wolfe line search, so the total
    loss never rises; the image is clamped to [0, 1] at the end only (clamping in between would
    break the quasi-Newton model). With ``"adam"`` the image is clamped after each step, and with
    ``decay`` its learning rate falls from ``lr`` to 0 along a half cosine.
    """
    steps = check_int(steps, "steps", low=0)
    # half-precision pixels would underflow Adam's and L-BFGS' state: keep them in float32 at least,
    # and run the network in the model's dtype
    low = x0.dtype in (torch.float16, torch.bfloat16)
    cached = _CachedObjective(objective, dtype=x0.dtype if low else None)
    param = (x0.detach().float() if low else x0.detach().clone()).requires_grad_(True)
    _, grad0, parts = cached(param)
    if optimizer == "lbfgs" and x0.dtype in (torch.float32, torch.float16, torch.bfloat16) and _overflows(grad0):
        # the strong-Wolfe line search squares directional derivatives (~|g|²) in the pixels' dtype:
        # with a huge loss (the tutorial's weights give ~1e11) that overflows float32 and the search
        # proposes NaN pixels. Then keep the pixels and L-BFGS' state in float64; the network still
        # runs in the model's dtype.
        cached = _CachedObjective(objective, dtype=x0.dtype)
        param = x0.detach().double().requires_grad_(True)
    history = [parts]
    if optimizer == "lbfgs":
        opt: torch.optim.Optimizer = torch.optim.LBFGS(
            [param], lr=1.0 if lr is None else lr, max_iter=1, max_eval=25, history_size=history_size,
            tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            loss, grad, _ = cached(param)
            param.grad = grad.clone()
            return loss

        for i in range(1, steps + 1):
            opt.step(closure)
            _, _, parts = cached(param)
            history.append(parts)
            if callback is not None:
                callback(Step(i, parts, cached.evaluations))
    elif optimizer == "adam":
        base = 0.02 if lr is None else lr
        opt = torch.optim.Adam([param], lr=base)
        for i in range(1, steps + 1):
            if decay:
                opt.param_groups[0]["lr"] = base * 0.5 * (1 + math.cos(math.pi * (i - 1) / steps))
            _, grad, _ = cached(param)
            param.grad = grad.clone()
            opt.step()
            with torch.no_grad():
                param.clamp_(0, 1)
            _, _, parts = cached(param)
            history.append(parts)
            if callback is not None:
                callback(Step(i, parts, cached.evaluations))
    else:
        raise CnnlensError(f"optimizer must be lbfgs or adam, not {optimizer!r}", param="optimizer")
    return param.detach().clamp(0, 1).to(x0.dtype), history, cached.evaluations


def check_size(size: object, preprocessing: Preprocessing, name: str = "size") -> int | None:
    """``size`` (the shorter side in pixels) checked against the model's minimum and :data:`MAX_SIZE`."""
    if size is None:
        return None
    return check_int(size, name, low=max(8, *preprocessing.min_size), high=MAX_SIZE)


def read_image(image: object, name: str, size: int | None = None) -> torch.Tensor:
    """One image (tensor, path, PIL image or array; pixels in [0, 1]) as ``(1, C, H, W)``, its shorter
    side resized to ``size`` when given. Channels are left as they are (the model's are set later)."""
    from ..images import resize

    x = as_pixels(image, name=name)
    if x.shape[0] != 1:
        raise CnnlensError(f"{name} must be one image, not a batch of {x.shape[0]}", param=name)
    if x.shape[1] not in (1, 3):
        raise CnnlensError(f"{name} must have 1 or 3 channels, not {x.shape[1]}", param=name)
    return resize(x, size) if size is not None else x
