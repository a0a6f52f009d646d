"""FGSM, iterative FGSM and PGD (L-infinity) on pixels in [0, 1], and :func:`attack` with its result.

Conventions (see docs/attacks.md):

- Every function takes a model as created (``cnnlens.create_model``, or any ``nn.Module``) and
  images as **pixels** in [0, 1]; the model's normalization (``model_info(model).preprocessing``,
  or ``preprocessing=``) is applied inside, so ``eps`` and ``step_size`` are in pixel units.
  Perturbing a normalized tensor instead would multiply ε by 1/std, about 4.4 for ImageNet.
- The loss is cross-entropy on the model's **logits** (captum.robust's default ``-log(output)``
  assumes probabilities).
- Untargeted steps go up the loss of the labels; targeted steps go down the loss of the target.
- Everything runs inside :func:`cnnlens.hooks.eval_mode`: BatchNorm uses (and keeps) its running
  statistics also when the model was left in train mode, no ``.grad`` is written on parameters,
  and train/eval flags and ``requires_grad`` are restored afterwards.
- Returned images and tensors are on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import seeds
from ..checks import check_int
from ..errors import CnnlensError
from ..hooks import eval_mode
from ..layers import model_device
from ..pixelnet import class_logits, pixel_net
from ..pixels import Preprocessing, as_pixels, default_fit
from ..registry import ModelInfo, model_info
from ..outputs import LOSSLESS_IMAGE_SUFFIXES
from ..results import Result
from .core import (
    attack_kind,
    check_classes,
    check_eps,
    check_step_size,
    class_indices,
    loss_gradient,
    pgd_steps,
    quantize_8bit,
)

__all__ = ["ADVERSARIAL_SUFFIXES", "AttackResult", "attack", "fgsm", "input_gradient", "iterative_fgsm", "pgd", "predict"]

ADVERSARIAL_SUFFIXES = LOSSLESS_IMAGE_SUFFIXES  # lossless: JPEG would blur the perturbation away
MAX_STEPS = 100_000

Labels = torch.Tensor | int | str | Sequence[int | str]


def _pixels(model: nn.Module, images: Any, preprocessing: Preprocessing | None, fit: str | None) -> tuple[ModelInfo, torch.Tensor]:
    """The model's info and the images as its input pixels, on the model's device.

    ``fit`` None: ``"none"`` for tensors (taken as prepared), ``"crop"`` for paths, PIL images and arrays.
    """
    info = model_info(model, preprocessing=preprocessing)
    x = as_pixels(images, info.preprocessing, fit=default_fit(images, fit, preprocessing=info.preprocessing)).clamp(0, 1)  # not in place: it can be the caller's tensor
    if x.shape[0] == 0:
        raise CnnlensError("images is an empty batch", param="images")
    return info, x.to(model_device(model))


def input_gradient(
    model: nn.Module,
    images: Any,
    labels: Labels,
    *,
    targeted: bool = False,
    preprocessing: Preprocessing | None = None,
) -> torch.Tensor:
    """The gradient of the attack loss with respect to the pixels, on the CPU.

    The loss is ``cross_entropy(logits, labels)`` (mean over the batch, as torchattacks), negated when
    ``targeted``. The model runs in eval mode with frozen parameters: its BatchNorm statistics, flags,
    ``requires_grad`` and ``.grad`` are as they were afterwards, also when it was left in train mode.
    """
    info, x = _pixels(model, images, preprocessing, "none")
    with eval_mode(model):
        net = pixel_net(model, info.preprocessing)
        y = class_indices(labels, x.shape[0], num_classes=None, categories=info.categories, name="labels", device=x.device)
        return loss_gradient(net, x, y, targeted=targeted).cpu()


def fgsm(
    model: nn.Module,
    images: Any,
    labels: Labels,
    *,
    eps: float,
    targeted: bool = False,
    preprocessing: Preprocessing | None = None,
) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): ``clamp(x + eps * sign(grad), 0, 1)``.

    Args:
        model: any classifier (logits out); its normalization is applied inside.
        images: ``(B, C, H, W)`` pixels in [0, 1] at the model's input size (a path, PIL image or array too).
        labels: the classes to move away from (or, with ``targeted``, the targets to move towards):
            an index or class name for all images, or one per image.
        eps: the L-infinity budget in pixel units, in [0, 1].

    Returns:
        The adversarial images on the CPU.

    Example:
        >>> import torch, torch.nn as nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
        >>> x_adv = fgsm(net, torch.rand(2, 3, 2, 2), torch.tensor([0, 1]), eps=0.1)
        >>> tuple(x_adv.shape)
        (2, 3, 2, 2)
    """
    eps = check_eps(eps)
    info, x = _pixels(model, images, preprocessing, "none")
    with eval_mode(model):
        net = pixel_net(model, info.preprocessing)
        name = "target" if targeted else "labels"
        y = class_indices(labels, x.shape[0], num_classes=None, categories=info.categories, name=name, device=x.device)
        grad = loss_gradient(net, x, y, targeted=targeted, name=name)  # also for eps 0: the labels are checked
        if eps == 0:
            return x.cpu()
    return x.add(grad.sign_(), alpha=eps).clamp_(0, 1).cpu()  # x + eps * sign: eps * (-1, 0, 1) is exact


def pgd(
    model: nn.Module,
    images: Any,
    labels: Labels,
    *,
    eps: float,
    step_size: float | None = None,
    steps: int = 10,
    random_start: bool = True,
    targeted: bool = False,
    seed: int | None = None,
    preprocessing: Preprocessing | None = None,
) -> torch.Tensor:
    """Projected gradient descent (Madry et al. 2018) in the L-infinity ball of radius ``eps``.

    Each step is ``x_adv + step_size * sign(grad)``, projected back to ``|x_adv - x| <= eps`` and to
    [0, 1]. With ``random_start`` the start is uniform in the ball (drawn from ``seed``); without
    it this is iterative FGSM (BIM, Kurakin et al. 2017). ``step_size`` defaults to ``2.5 * eps / steps``.
    The model's BatchNorms are folded into its convolutions in a copy for the steps (same function, faster).
    """
    generator = seeds.generator(seed)
    eps = check_eps(eps)
    steps = check_int(steps, "steps", low=1, high=MAX_STEPS)
    alpha = check_step_size(step_size)
    alpha = 2.5 * eps / steps if alpha is None else alpha
    info, x = _pixels(model, images, preprocessing, "none")
    with eval_mode(model):
        name = "target" if targeted else "labels"
        y = class_indices(labels, x.shape[0], num_classes=None, categories=info.categories, name=name, device=x.device)
        folded = pixel_net(model, info.preprocessing, fold=True)  # folded once, used for every step
        with torch.no_grad():
            check_classes(y, class_logits(folded, x[:1]).shape[1], name)  # before the steps (eps 0 too)
        adv = pgd_steps(folded, x, y, eps=eps, step_size=alpha, steps=steps, random_start=random_start, targeted=targeted, generator=generator)
    return adv.cpu()


def iterative_fgsm(
    model: nn.Module,
    images: Any,
    labels: Labels,
    *,
    eps: float,
    step_size: float | None = None,
    steps: int = 10,
    targeted: bool = False,
    preprocessing: Preprocessing | None = None,
) -> torch.Tensor:
    """Iterative FGSM (BIM): :func:`pgd` from the images themselves, without a random start."""
    return pgd(model, images, labels, eps=eps, step_size=step_size, steps=steps, random_start=False, targeted=targeted, preprocessing=preprocessing)


def predict(
    model: nn.Module,
    images: Any,
    *,
    preprocessing: Preprocessing | None = None,
    batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(classes, probabilities)`` on the CPU: the top class of each image and its softmax probability."""
    info, x = _pixels(model, images, preprocessing, None)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", low=1)
    with eval_mode(model), torch.no_grad():
        net = pixel_net(model, info.preprocessing)
        chunks = [x] if batch_size is None else list(x.split(batch_size))
        probs = torch.cat([F.softmax(class_logits(net, c).float(), dim=1) for c in chunks])
    conf, cls = probs.max(dim=1)
    return cls.cpu(), conf.cpu()


@dataclass(repr=False)
class AttackResult(Result):
    """What :func:`attack` returns: the adversarial images and the predictions before and after.

    Tensors are on the CPU, batch first; ``*_probability`` is the softmax probability of the class
    shown beside it and ``*_names`` the class names (``"class 7"`` where the model has none).
    ``saved_*`` is the prediction on the adversarial images rounded to 8 bits, as an image file
    (:meth:`save_image`) stores them: rounding moves each pixel by up to 0.5/255, which can
    undo an attack with a very small ε.
    """

    image_suffixes = ADVERSARIAL_SUFFIXES  # not a field: the lossless files save_image writes

    info: ModelInfo
    original: torch.Tensor  # (B, C, H, W) the images as the model saw them (prepared), pixels in [0, 1]
    adversarial: torch.Tensor
    gradient_sign: torch.Tensor | None  # FGSM: sign of the gradient (the direction added); None for iterative attacks
    labels: torch.Tensor  # the classes attacked (given, or the clean predictions)
    target: torch.Tensor | None
    clean_class: torch.Tensor
    clean_probability: torch.Tensor
    adversarial_class: torch.Tensor
    adversarial_probability: torch.Tensor
    saved_class: torch.Tensor
    saved_probability: torch.Tensor
    clean_probabilities: torch.Tensor  # (B, classes) softmax before the attack
    adversarial_probabilities: torch.Tensor  # (B, classes) softmax after it
    eps: float
    steps: int = 1
    step_size: float | None = None
    random_start: bool = False
    label_given: bool = False
    source: str | None = None  # the image file, when one was given

    # -- derived ----------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``"FGSM"``, ``"iterative FGSM"`` or ``"PGD"``."""
        return attack_kind(self.steps, self.random_start)

    @property
    def perturbation(self) -> torch.Tensor:
        return self.adversarial - self.original

    @property
    def saved_adversarial(self) -> torch.Tensor:
        """The adversarial images rounded to 8 bits (what :meth:`save_image` writes)."""
        return quantize_8bit(self.adversarial)

    def _success(self, classes: torch.Tensor) -> torch.Tensor:
        if self.target is not None:
            return classes == self.target
        return classes != self.labels

    @property
    def success(self) -> torch.Tensor:
        """Per image: the target was reached (targeted) or the label is no longer predicted."""
        return self._success(self.adversarial_class)

    @property
    def saved_success(self) -> torch.Tensor:
        """:attr:`success` for the 8-bit images."""
        return self._success(self.saved_class)

    def names(self, classes: torch.Tensor | None) -> list[str] | None:
        """Class names of a tensor of indices (``None`` stays ``None``)."""
        return None if classes is None else [self.info.category(int(c)) for c in classes]

    @property
    def clean_names(self) -> list[str]:
        return self.names(self.clean_class)  # type: ignore[return-value]

    @property
    def adversarial_names(self) -> list[str]:
        return self.names(self.adversarial_class)  # type: ignore[return-value]

    @property
    def saved_names(self) -> list[str]:
        return self.names(self.saved_class)  # type: ignore[return-value]

    @property
    def label_names(self) -> list[str]:
        return self.names(self.labels)  # type: ignore[return-value]

    @property
    def target_names(self) -> list[str] | None:
        return self.names(self.target)

    # -- the result protocol ----------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """One JSON-safe dict per image."""
        out = []
        for i in range(self.adversarial.shape[0]):
            y = int(self.labels[i])
            row: dict[str, Any] = {
                "label": y,
                "label_name": self.info.category(y),
                "label_given": self.label_given,
                "label_probability_clean": float(self.clean_probabilities[i, y]),
                "label_probability_adversarial": float(self.adversarial_probabilities[i, y]),
            }
            if self.target is not None:
                t = int(self.target[i])
                row["target"] = t
                row["target_name"] = self.info.category(t)
                row["target_probability_clean"] = float(self.clean_probabilities[i, t])
                row["target_probability_adversarial"] = float(self.adversarial_probabilities[i, t])
            for what in ("clean", "adversarial", "saved"):
                c = int(getattr(self, f"{what}_class")[i])
                row[f"{what}_class"] = c
                row[f"{what}_name"] = self.info.category(c)
                row[f"{what}_probability"] = float(getattr(self, f"{what}_probability")[i])
            row["success"] = bool(self.success[i])
            row["saved_success"] = bool(self.saved_success[i])
            row["linf"] = float(self.perturbation[i].abs().max())
            out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.info.to_dict(),
            "image": self.source,
            "attack": self.kind,
            "eps": self.eps,
            "steps": self.steps,
            "step_size": self.step_size,
            "random_start": self.random_start,
            "targeted": self.target is not None,
            "input_size": list(self.original.shape[1:]),
            "success_rate": float(self.success.float().mean()),
            "saved_success_rate": float(self.saved_success.float().mean()),
            "images": self.rows(),
        }

    def _summary(self) -> dict[str, Any]:
        row = self.rows()[0]
        out: dict[str, Any] = {"model": self.info.label, "attack": self.kind, "eps": self.eps}
        if self.adversarial.shape[0] > 1:
            out["images"] = self.adversarial.shape[0]
            out["success_rate"] = float(self.success.float().mean())
        else:
            out["clean"] = f"{row['clean_name']} ({100 * row['clean_probability']:.1f} %)"
            out["adversarial"] = f"{row['adversarial_name']} ({100 * row['adversarial_probability']:.1f} %)"
            out["8-bit"] = f"{row['saved_name']} ({100 * row['saved_probability']:.1f} %)"
        return out

    def to_text(self) -> str:
        """One line per image: classes and probabilities before and after, and of the 8-bit image."""
        from .plots import format_eps

        lines = []
        for row in self.rows():
            head = f"{self.kind}{f' ({self.steps} steps)' if self.steps > 1 else ''} eps={format_eps(self.eps)}: "
            verdict = (f"target {row['target_name']} {'reached' if row['success'] else 'not reached'}" if self.target is not None
                       else ("flipped" if row["success"] else "not flipped"))
            lines.append(
                f"{head}{row['clean_name']} ({100 * row['clean_probability']:.1f} %) -> "
                f"{row['adversarial_name']} ({100 * row['adversarial_probability']:.1f} %), {verdict}; "
                f"as an 8-bit image: {row['saved_name']} ({100 * row['saved_probability']:.1f} %)"
            )
        return "\n".join(lines)

    def figure(self, index: int = 0, *, title: str | None = None) -> Any:
        """The panda figure of Goodfellow et al. for image ``index``: x, the perturbation, x_adv."""
        from .plots import plot_attack

        return plot_attack(self, index, title=title)

    def pixels(self, index: int = 0) -> torch.Tensor:
        """Adversarial image ``index``, what ``save_image(path, index=...)`` writes as a lossless 8-bit
        file (PNG, BMP or TIFF; grey as grey RGB): reading the file back gives :attr:`saved_adversarial`."""
        return self.adversarial[index]


def attack(
    model: nn.Module,
    images: Any,
    label: Labels | None = None,
    *,
    eps: float,
    target: Labels | None = None,
    steps: int = 1,
    step_size: float | None = None,
    random_start: bool = False,
    fit: str | None = None,
    preprocessing: Preprocessing | None = None,
    seed: int | None = None,
) -> AttackResult:
    """Attack images and report the predictions before and after (the panda figure's numbers).

    Args:
        model: a classifier as created (``cnnlens.create_model("mobilenet_v2", ...)``) or any
            ``nn.Module`` returning logits; its normalization is applied inside.
        images: pixels in [0, 1]: an image path, PIL image, array, or a ``(B, C, H, W)``/``(C, H, W)`` tensor.
        label: the true class to move away from (index or class name, one for all or one per image);
            ``None`` attacks the model's own clean prediction (no label leaking).
        eps: L-infinity budget in pixel units of [0, 1] (Goodfellow's panda: 0.007).
        target: a class to reach (a targeted attack); ``label`` is then only reported.
        steps: 1 is FGSM; more is iterative FGSM, or PGD with ``random_start``.
        step_size: per-step size for ``steps > 1`` (default ``2.5 * eps / steps``).
        fit: ``"crop"`` (resize and centre-crop as the model's weights expect), ``"resize"`` or
            ``"none"``; default ``"crop"`` for files, PIL images and arrays, ``"none"`` for tensors.
            Channels are always converted (colour to grey for a grey model).
        preprocessing: overrides ``model_info(model).preprocessing``.
        seed: draws PGD's random start (``None``: torch's global generator).

    Returns:
        An :class:`AttackResult` (tensors on the CPU).

    Example:
        >>> import torch, torch.nn as nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
        >>> r = attack(net, torch.rand(3, 2, 2), eps=0.1)
        >>> r.adversarial.shape, len(r.clean_names), r.adversarial.device.type
        (torch.Size([1, 3, 2, 2]), 1, 'cpu')
    """
    generator = seeds.generator(seed)
    eps = check_eps(eps)
    steps = check_int(steps, "steps", low=1, high=MAX_STEPS)
    alpha = check_step_size(step_size)
    if steps > 1 and alpha is None:
        alpha = 2.5 * eps / steps
    source = str(images) if isinstance(images, (str, Path)) else None
    info, x = _pixels(model, images, preprocessing, fit)
    with eval_mode(model):
        net = pixel_net(model, info.preprocessing)
        with torch.no_grad():
            clean_probs = F.softmax(class_logits(net, x).float(), dim=1)
        num_classes = clean_probs.shape[1]
        clean_prob, clean_class = clean_probs.max(dim=1)
        y = clean_class if label is None else class_indices(label, x.shape[0], num_classes=num_classes, categories=info.categories, name="label", device=x.device)
        tgt = None if target is None else class_indices(target, x.shape[0], num_classes=num_classes, categories=info.categories, name="target", device=x.device)
        objective, targeted = (y, False) if tgt is None else (tgt, True)
        first = None
        if steps == 1:
            first = loss_gradient(net, x, objective, targeted=targeted).sign()
            adv = (x + eps * first).clamp_(0, 1)
        else:
            folded = pixel_net(model, info.preprocessing, fold=True)
            adv = pgd_steps(folded, x, objective, eps=eps, step_size=alpha, steps=steps, random_start=random_start, targeted=targeted, generator=generator)  # type: ignore[arg-type]
        with torch.no_grad():
            adv_probs = F.softmax(class_logits(net, adv).float(), dim=1)
            adv_prob, adv_class = adv_probs.max(dim=1)
            saved_prob, saved_class = F.softmax(class_logits(net, quantize_8bit(adv)).float(), dim=1).max(dim=1)
    cpu = lambda t: None if t is None else t.detach().cpu()  # noqa: E731
    return AttackResult(
        info=info,
        original=cpu(x),
        adversarial=cpu(adv),
        gradient_sign=cpu(first),
        labels=cpu(y),
        target=cpu(tgt),
        clean_class=cpu(clean_class),
        clean_probability=cpu(clean_prob),
        adversarial_class=cpu(adv_class),
        adversarial_probability=cpu(adv_prob),
        saved_class=cpu(saved_class),
        saved_probability=cpu(saved_prob),
        clean_probabilities=cpu(clean_probs),
        adversarial_probabilities=cpu(adv_probs),
        eps=eps,
        steps=steps,
        step_size=alpha if steps > 1 else None,
        random_start=bool(random_start) and steps > 1,
        label_given=label is not None,
        source=source,
    )
