"""FGSM, iterative FGSM and PGD (L-infinity) on pixels in [0, 1].

Conventions (see docs/attacks.md):

- ``eps`` and ``step_size`` are in [0, 1] **pixel** units. The model must take pixels in [0, 1] and
  normalize inside (wrap torchvision models in :class:`cnnlens.models.Normalized`); perturbing a
  normalized tensor would multiply ε by 1/std, about 4.4 for ImageNet.
- The loss is cross-entropy on the model's **logits** (captum.robust's default ``-log(output)``
  assumes probabilities).
- Untargeted steps go up the loss of ``labels``; targeted steps go down the loss of ``target``.
- Gradients come from :func:`torch.autograd.grad` with respect to the input only, inside
  :func:`cnnlens.hooks.eval_mode`, so no ``.grad`` is written on parameters and the model's
  train/eval flags and ``requires_grad`` are restored afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CnnlensError
from ..hooks import eval_mode
from ..speed import fold_batchnorm
from ..registry import model_device

__all__ = ["AttackResult", "attack", "check_eps", "fgsm", "input_gradient", "iterative_fgsm", "pgd", "predict"]

# pixels this far outside [0, 1] are accepted (normalize/denormalize round trips give -3e-8: torchattacks #136)
RANGE_TOLERANCE = 1e-4


def check_eps(eps: float, name: str = "eps") -> float:
    """``eps`` as a float in [0, 1], or a one-line :class:`CnnlensError`."""
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise CnnlensError(f"{name} must be a number in [0, 1], not {eps!r}") from None
    if not 0.0 <= value <= 1.0 or value != value:
        raise CnnlensError(f"{name} must be in [0, 1] (pixel units; 8/255 = {8 / 255:.4f}), not {value:g}")
    return value


def _prepare(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise CnnlensError(f"images must be a (B, C, H, W) tensor, got {tuple(getattr(x, 'shape', ()))}")
    x = x.detach().to(model_device(model, default=x.device))
    if not x.is_floating_point():
        raise CnnlensError("images must be float pixels in [0, 1]")
    lo, hi = torch.aminmax(x)
    if lo.item() < -RANGE_TOLERANCE or hi.item() > 1 + RANGE_TOLERANCE:
        raise CnnlensError(
            f"images must be pixels in [0, 1] (got [{lo.item():.3g}, {hi.item():.3g}]); "
            "normalize inside the model with cnnlens.Normalized"
        )
    return x.clamp(0, 1)


def _labels(y: torch.Tensor | int | Sequence[int], n: int, device: torch.device, num_classes: int | None, what: str) -> torch.Tensor:
    y = torch.as_tensor(y, device=device).long().reshape(-1)
    if y.numel() == 1 and n > 1:
        y = y.expand(n)
    if y.numel() != n:
        raise CnnlensError(f"{what} has {y.numel()} entries for {n} images")
    if num_classes is not None and y.numel() and (y.min().item() < 0 or y.max().item() >= num_classes):
        raise CnnlensError(f"{what} {y.tolist()[:5]} outside the model's classes 0..{num_classes - 1}")
    return y


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise CnnlensError(f"the model must return (B, classes) logits, got {type(out).__name__} {tuple(getattr(out, 'shape', ()))}")
    return out


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, targeted: bool = False) -> torch.Tensor:
    """The gradient of the attack objective with respect to ``x`` (model already in eval mode, frozen).

    The objective is ``cross_entropy(model(x), y)`` (mean over the batch, as torchattacks) and its
    negative when ``targeted``. Only the input gets a gradient.
    """
    with torch.enable_grad():  # also when called inside torch.no_grad()
        x = x.detach()
        if x.dim() == 4:  # channels-last: oneDNN's convolutions run ~1.2-1.3x faster on CPU
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        logits = _logits(model, x)
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]):
            raise CnnlensError(f"class {int(y.max()) if int(y.max()) >= logits.shape[1] else int(y.min())} is outside the model's classes 0..{logits.shape[1] - 1}")
        loss = F.cross_entropy(logits, y)
        if targeted:
            loss = -loss
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | int | Sequence[int],
    *,
    eps: float = 8 / 255,
    targeted: bool = False,
) -> torch.Tensor:
    """Fast gradient sign method: ``clamp(x + eps * sign(grad), 0, 1)``, one step.

    Args:
        model: any ``nn.Module`` that takes pixels in [0, 1] and returns logits.
        x: ``(B, C, H, W)`` pixels in [0, 1].
        y: the labels to move away from (or, with ``targeted``, the targets to move towards).
        eps: the L-infinity budget in pixel units, in [0, 1].

    Returns:
        The adversarial images, detached, on the model's device.

    Example:
        >>> import torch, torch.nn as nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
        >>> x_adv = fgsm(net, torch.rand(2, 3, 2, 2), torch.tensor([0, 1]), eps=0.1)
        >>> tuple(x_adv.shape)
        (2, 3, 2, 2)
    """
    eps = check_eps(eps)
    x = _prepare(model, x)
    with eval_mode(model):
        y = _labels(y, x.shape[0], x.device, None, "target" if targeted else "labels")
        if eps == 0:
            return x.clone()
        grad = input_gradient(model, x, y, targeted=targeted)
    return (x + eps * grad.sign()).clamp_(0, 1)


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | int | Sequence[int],
    *,
    eps: float = 8 / 255,
    step_size: float | None = None,
    steps: int = 10,
    random_start: bool = True,
    targeted: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected gradient descent (Madry et al.) in the L-infinity ball of radius ``eps`` around ``x``.

    Each step is ``x_adv + step_size * sign(grad)``, projected back to ``|x_adv - x| <= eps`` and to
    [0, 1]. With ``random_start`` the start is uniform in the ball (drawn with ``generator``); without
    it this is iterative FGSM (BIM, Kurakin et al.). ``step_size`` defaults to ``2.5 * eps / steps``.
    """
    eps = check_eps(eps)
    if steps < 1:
        raise CnnlensError(f"steps must be at least 1, not {steps}")
    alpha = 2.5 * eps / steps if step_size is None else check_eps(step_size, "step size")
    x = _prepare(model, x)
    with eval_mode(model):
        y = _labels(y, x.shape[0], x.device, None, "target" if targeted else "labels")
        if eps == 0:
            return x.clone()
        net = fold_batchnorm(model)  # folded once, used for every step
        adv = x.clone()
        if random_start:
            noise = torch.rand(x.shape, generator=generator, device=generator.device if generator else x.device, dtype=x.dtype)
            adv = (adv + (noise.to(x.device) * 2 - 1) * eps).clamp_(0, 1)
        lower, upper = (x - eps).clamp_(min=0), (x + eps).clamp_(max=1)
        for _ in range(steps):
            grad = input_gradient(net, adv, y, targeted=targeted)
            adv = torch.maximum(torch.minimum(adv + alpha * grad.sign(), upper), lower)
    return adv


def iterative_fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | int | Sequence[int],
    *,
    eps: float = 8 / 255,
    step_size: float | None = None,
    steps: int = 10,
    targeted: bool = False,
) -> torch.Tensor:
    """Iterative FGSM (BIM): :func:`pgd` from ``x`` itself, without a random start."""
    return pgd(model, x, y, eps=eps, step_size=step_size, steps=steps, random_start=False, targeted=targeted)


def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(classes, probabilities)``: the top class of each image and its softmax probability."""
    x = _prepare(model, x)
    with eval_mode(model), torch.no_grad():
        chunks = [x] if batch_size is None else list(x.split(batch_size))
        probs = torch.cat([F.softmax(_logits(model, c).float(), dim=1) for c in chunks])
    conf, cls = probs.max(dim=1)
    return cls, conf


@dataclass
class AttackResult:
    """What :func:`attack` returns: the adversarial images and the predictions before and after.

    All tensors are on the model's device, batch first. ``probabilities`` are softmax of the logits.
    """

    adversarial: torch.Tensor
    original: torch.Tensor
    gradient_sign: torch.Tensor  # sign of the first step's gradient (the direction FGSM adds)
    labels: torch.Tensor  # the labels attacked (given, or the clean predictions)
    target: torch.Tensor | None
    clean_class: torch.Tensor
    clean_probability: torch.Tensor
    adversarial_class: torch.Tensor
    adversarial_probability: torch.Tensor
    eps: float
    steps: int = 1
    step_size: float | None = None
    random_start: bool = False
    categories: list[str] | None = field(default=None, repr=False)

    @property
    def perturbation(self) -> torch.Tensor:
        return self.adversarial - self.original

    @property
    def success(self) -> torch.Tensor:
        """Per image: the target was reached (targeted) or the label is no longer predicted."""
        if self.target is not None:
            return self.adversarial_class == self.target
        return self.adversarial_class != self.labels

    def category(self, index: int) -> str:
        if self.categories and 0 <= index < len(self.categories):
            return self.categories[index]
        return f"class {index}"

    def to_dict(self) -> list[dict[str, Any]]:
        """One JSON-safe dict per image."""
        rows = []
        for i in range(self.adversarial.shape[0]):
            c, a = int(self.clean_class[i]), int(self.adversarial_class[i])
            row: dict[str, Any] = {
                "label": int(self.labels[i]),
                "clean_class": c,
                "clean_category": self.category(c),
                "clean_probability": float(self.clean_probability[i]),
                "adversarial_class": a,
                "adversarial_category": self.category(a),
                "adversarial_probability": float(self.adversarial_probability[i]),
                "success": bool(self.success[i]),
                "linf": float(self.perturbation[i].abs().max()),
                "eps": self.eps,
                "steps": self.steps,
                "step_size": self.step_size,
            }
            if self.target is not None:
                row["target"] = int(self.target[i])
                row["target_category"] = self.category(int(self.target[i]))
            rows.append(row)
        return rows


def attack(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor | int | Sequence[int] | None = None,
    *,
    eps: float = 0.007,
    target: torch.Tensor | int | Sequence[int] | None = None,
    steps: int = 1,
    step_size: float | None = None,
    random_start: bool = False,
    generator: torch.Generator | None = None,
    categories: list[str] | None = None,
) -> AttackResult:
    """Attack a batch and report the predictions before and after (the panda figure's numbers).

    Args:
        model: takes pixels in [0, 1], returns logits (normalization inside, see :class:`cnnlens.Normalized`).
        x: ``(B, C, H, W)`` or ``(C, H, W)`` pixels in [0, 1].
        labels: true classes; ``None`` attacks the model's own clean prediction (no label leaking).
        eps: L-infinity budget in pixel units (Goodfellow's panda: 0.007).
        target: a class to reach (targeted attack); ``labels`` is then only reported.
        steps: 1 is FGSM; more is iterative FGSM, or PGD with ``random_start``.
        step_size: per-step size for ``steps > 1`` (default ``2.5 * eps / steps``).

    Example:
        >>> import torch, torch.nn as nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
        >>> r = attack(net, torch.rand(3, 2, 2), eps=0.1)
        >>> r.adversarial.shape, r.clean_class.shape
        (torch.Size([1, 3, 2, 2]), torch.Size([1]))
    """
    eps = check_eps(eps)
    if steps < 1:
        raise CnnlensError(f"steps must be at least 1, not {steps}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    x = _prepare(model, x)
    with torch.no_grad(), eval_mode(model):
        clean_logits = _logits(model, x)
    num_classes = clean_logits.shape[1]
    clean_prob, clean_class = F.softmax(clean_logits.float(), dim=1).max(dim=1)
    y = clean_class if labels is None else _labels(labels, x.shape[0], x.device, num_classes, "label")
    tgt = None if target is None else _labels(target, x.shape[0], x.device, num_classes, "target")
    objective, targeted = (y, False) if tgt is None else (tgt, True)
    with eval_mode(model):
        first = input_gradient(model, x, objective, targeted=targeted).sign()
    if steps == 1:
        adv = (x + eps * first).clamp_(0, 1)
        alpha = None
    else:
        alpha = 2.5 * eps / steps if step_size is None else check_eps(step_size, "step size")
        adv = pgd(model, x, objective, eps=eps, step_size=alpha, steps=steps, random_start=random_start, targeted=targeted, generator=generator)
    adv_class, adv_prob = predict(model, adv)
    return AttackResult(
        adversarial=adv,
        original=x,
        gradient_sign=first,
        labels=y,
        target=tgt,
        clean_class=clean_class,
        clean_probability=clean_prob,
        adversarial_class=adv_class,
        adversarial_probability=adv_prob,
        eps=eps,
        steps=steps,
        step_size=alpha,
        random_start=random_start and steps > 1,
        categories=categories,
    )
