"""The shared steps of every attack, on a model that already takes pixels in [0, 1].

:func:`cnnlens.pixelnet.pixel_net` turns a model as created (``cnnlens.create_model``, or any
``nn.Module``) into a module on pixels with the model's own normalization, optionally with its
BatchNorms folded into the convolutions for speed. The functions here work on such a pixel module, inside :func:`cnnlens.hooks.eval_mode`; the public API of :mod:`cnnlens.attacks`
(``attack``, ``fgsm``, ``pgd``, ``robustness``) sets both up and calls them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_number
from ..errors import CnnlensError
from ..hooks import hooked
from ..pixelnet import class_logits, input_layout, stem_pool, to_contiguous

__all__ = [
    "ATTACKS",
    "attack_kind",
    "check_attacks",
    "check_classes",
    "check_eps",
    "check_step_size",
    "class_indices",
    "loss_gradient",
    "pgd_steps",
    "quantize_8bit",
]

ATTACKS = ("fgsm", "ifgsm", "pgd")


def check_eps(eps: Any, name: str = "eps") -> float:
    """``eps`` as a float in [0, 1] (pixel units; 8/255 = 0.0314), or a one-line :class:`CnnlensError`."""
    return check_number(eps, name, low=0.0, high=1.0)


def check_step_size(step_size: Any, name: str = "step_size") -> float | None:
    """``None`` or a step size in (0, 1]."""
    if step_size is None:
        return None
    return check_number(step_size, name, low=0.0, low_open=True, high=1.0)


def check_attacks(attacks: str | Sequence[str], name: str = "attacks") -> list[str]:
    """Attack names normalized to ``fgsm``, ``ifgsm`` (also ``bim``, ``iterative-fgsm``) and ``pgd``."""
    from ..errors import did_you_mean

    items = [attacks] if isinstance(attacks, str) else list(attacks)
    out: list[str] = []
    for a in items:
        if not isinstance(a, str):
            raise CnnlensError(f"{name} must be names such as fgsm or pgd, not {a!r}", param=name)
        key = a.strip().lower().replace("-", "").replace("_", "")
        key = {"bim": "ifgsm", "iterativefgsm": "ifgsm"}.get(key, key)
        if key not in ATTACKS:
            raise CnnlensError(f"{name}: unknown attack {a!r}{did_you_mean(a, ATTACKS)}; choose from {', '.join(ATTACKS)}", param=name)
        if key not in out:
            out.append(key)
    if not out:
        raise CnnlensError(f"{name}: no attack given; choose from {', '.join(ATTACKS)}", param=name)
    return out


def attack_kind(steps: int, random_start: bool) -> str:
    """``"FGSM"``, ``"iterative FGSM"`` or ``"PGD"``."""
    if steps == 1:
        return "FGSM"
    return "PGD" if random_start else "iterative FGSM"


def check_classes(y: torch.Tensor, num_classes: int, name: str = "labels") -> None:
    """Refuse class indices outside ``0..num_classes-1`` in one line naming ``name``."""
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        bad = int(y.max()) if int(y.max()) >= num_classes else int(y.min())
        raise CnnlensError(f"{name}: class {bad} out of range, the model has classes 0..{num_classes - 1}", param=name)


def loss_gradient(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    targeted: bool = False,
    name: str = "labels",
    channels_last: bool | None = None,
    layout: str | None = None,
) -> torch.Tensor:
    """The gradient of ``cross_entropy(net(x), y)`` (mean over the batch, as torchattacks) with
    respect to ``x``, negated when ``targeted``. ``net`` runs in eval mode with frozen parameters
    (the caller's :func:`cnnlens.hooks.eval_mode`); only the input gets a gradient. Classes outside
    the model's output are refused naming ``name``. ``layout``: the input's memory format, one of
    :data:`cnnlens.pixelnet.LAYOUTS` (None: :func:`cnnlens.pixelnet.input_layout` with ``channels_last``); the format changes float
    rounding, never the function."""
    if layout is None:
        layout = input_layout(net, x, channels_last)
    pool = stem_pool(net) if layout == "stem" else None
    with hooked([(pool, to_contiguous)] if pool is not None else []), torch.enable_grad():  # grad also inside torch.no_grad()
        x = x.detach()
        if layout != "contiguous":
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        logits = class_logits(net, x).float()
        check_classes(y, logits.shape[1], name)
        loss = F.cross_entropy(logits, y)
        if targeted:
            loss = -loss
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def pgd_steps(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    random_start: bool,
    targeted: bool = False,
    generator: torch.Generator | None = None,
    on_step: Callable[[], None] | None = None,
    noise: torch.Tensor | None = None,
    channels_last: bool | None = None,
) -> torch.Tensor:
    """Projected sign-gradient steps in the L-infinity ball of radius ``eps`` around ``x`` and in [0, 1].

    The projection is torchattacks' ``clamp(x + clamp(x_adv - x, -eps, eps), 0, 1)``, written the same
    way so that the same gradients give the same pixels (``clamp(x_adv, max(x - eps, 0), min(x + eps, 1))``
    is the same set but can round one ulp apart, and one ulp can flip a later near-zero gradient's sign). The random start is uniform in the ball, drawn
    on ``generator``'s device (the CPU by default) so that a seed gives the same start on every device.
    ``on_step`` is called after each step (progress). ``noise``: the uniform draws in [0, 1) of the
    random start, shaped like ``x`` (drawn per image by :func:`cnnlens.attacks.robustness`), instead
    of drawing them with ``generator``.
    """
    if eps == 0:
        return x.clone()
    adv = x.clone()
    if random_start:
        if noise is None:
            device = generator.device if generator is not None else torch.device("cpu")
            noise = torch.rand(x.shape, generator=generator, device=device, dtype=x.dtype)
        adv = (adv + (noise.to(x.device, x.dtype) * 2 - 1) * eps).clamp_(0, 1)
    layout = input_layout(net, x, channels_last)
    for _ in range(steps):
        grad = loss_gradient(net, adv, y, targeted=targeted, layout=layout)
        adv = adv + step_size * grad.sign()
        adv = (x + (adv - x).clamp_(-eps, eps)).clamp_(0, 1)
        if on_step is not None:
            on_step()
    return adv


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """Pixels rounded to 8 bits as an image file stores them (``round(255 x) / 255``, halves up,
    as :func:`cnnlens.images.to_numpy`)."""
    return torch.floor(x.clamp(0, 1) * 255 + 0.5) / 255


def class_indices(
    value: Any,
    n: int,
    *,
    num_classes: int | None,
    categories: Sequence[str] | None,
    name: str,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Class indices for ``n`` images from an index, a class name, or one of these per image.

    Names are matched without case (``"tabby"``, ``"Egyptian cat"``); an unknown name gets the
    closest names, an index outside ``0..num_classes-1`` the range (``num_classes`` None: checked
    later, by :func:`loss_gradient`, once the model's output is known).
    """
    from ..address import LOGITS, Unit, resolve_unit

    if isinstance(value, torch.Tensor):
        if value.is_floating_point() or value.dtype == torch.bool:
            raise CnnlensError(f"{name} must be class indices or names, not a {value.dtype} tensor", param=name)
        items: list[Any] = value.detach().cpu().reshape(-1).tolist()
    elif isinstance(value, (str, int)) or not isinstance(value, Sequence):
        items = [value]
    else:
        items = list(value)
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise CnnlensError(f"{name} must be a class index or name, not {item!r}", param=name)
        if isinstance(item, str) and item.strip().lstrip("-").isdigit():
            item = int(item)
        if isinstance(item, int):
            if num_classes is not None and not 0 <= item < num_classes:
                raise CnnlensError(f"{name}: class {item} out of range, the model has classes 0..{num_classes - 1}", param=name)
            out.append(item)
            continue
        resolved = resolve_unit(Unit(LOGITS, name=item.strip()), None, categories=list(categories) if categories else [], num_classes=num_classes, name=name)
        out.append(int(resolved.channel))  # type: ignore[arg-type]
    if len(out) == 1 and n > 1:
        out = out * n
    if len(out) != n:
        raise CnnlensError(f"{name} has {len(out)} entries for {n} images", param=name)
    return torch.tensor(out, dtype=torch.long, device=device)
