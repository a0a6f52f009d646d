"""Accuracy against ε: the robustness curve of a model under FGSM, iterative FGSM and PGD.

For each batch the clean predictions are computed once. FGSM's direction ``sign(grad)`` does not
depend on ε, so one backward pass serves every ε of the grid (one forward per ε after it); the
iterative attacks run their steps for each ε. Labels are the true labels (no label leaking).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..errors import CnnlensError
from ..hooks import eval_mode
from ..speed import fold_batchnorm
from .fgsm import _logits, _prepare, check_eps, input_gradient, pgd

__all__ = ["ATTACKS", "DEFAULT_EPS", "Curve", "RobustnessResult", "robustness"]

DEFAULT_EPS = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255)
ATTACKS = ("fgsm", "ifgsm", "pgd")


@dataclass
class Curve:
    """One attack's accuracy at each ε: on all images, and on the images the model got right unattacked."""

    attack: str
    accuracy: list[float]
    accuracy_on_correct: list[float]
    correct: list[int]  # images still correct at each eps (all images)

    @property
    def flipped(self) -> list[float]:
        """Share of the originally correct images that the attack flips, at each ε."""
        return [1 - a if not math.isnan(a) else math.nan for a in self.accuracy_on_correct]


@dataclass
class RobustnessResult:
    eps: list[float]
    n: int
    n_correct: int
    curves: dict[str, Curve]
    steps: int = 10
    step_size: float | None = None  # None: 2.5 * eps / steps for every eps
    label: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def clean_accuracy(self) -> float:
        return self.n_correct / self.n if self.n else math.nan

    def __getitem__(self, attack: str) -> Curve:
        return self.curves[attack]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "n": self.n,
            "n_correct": self.n_correct,
            "clean_accuracy": self.clean_accuracy,
            "eps": self.eps,
            "steps": self.steps,
            "step_size": self.step_size,
            **self.settings,
            "curves": {
                name: {"accuracy": c.accuracy, "accuracy_on_correct": c.accuracy_on_correct, "flipped": c.flipped}
                for name, c in self.curves.items()
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _check_attacks(attacks: Sequence[str]) -> list[str]:
    out = []
    for a in attacks:
        name = a.lower().replace("-", "").replace("_", "")
        name = {"bim": "ifgsm", "iterativefgsm": "ifgsm"}.get(name, name)
        if name not in ATTACKS:
            from ..errors import did_you_mean

            raise CnnlensError(f"unknown attack {a!r}{did_you_mean(a, ATTACKS)}; choose from {', '.join(ATTACKS)}")
        if name not in out:
            out.append(name)
    if not out:
        raise CnnlensError("no attack given")
    return out


def robustness(
    model: nn.Module,
    data: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    eps: Sequence[float] = DEFAULT_EPS,
    attacks: Sequence[str] = ("fgsm",),
    steps: int = 10,
    step_size: float | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    total: int | None = None,
    label: str = "",
) -> RobustnessResult:
    """Accuracy of ``model`` against ε for each attack, over ``(images, labels)`` batches.

    Args:
        model: takes pixels in [0, 1] and returns logits (normalization inside).
        data: an iterable of ``(B, C, H, W)`` pixel batches in [0, 1] with ``(B,)`` true labels, e.g.
            :func:`cnnlens.attacks.datasets.batches`.
        eps: the ε grid in pixel units (each in [0, 1]).
        attacks: any of ``fgsm``, ``ifgsm`` (iterative FGSM / BIM, no random start) and ``pgd``
            (uniform random start drawn with ``generator``).
        steps, step_size: of the iterative attacks; ``step_size`` defaults to ``2.5 * eps / steps``.
        progress: a tqdm bar on stderr (``total`` batches, if known).

    Returns:
        A :class:`RobustnessResult`; ``result["fgsm"].accuracy[i]`` is the accuracy at ``eps[i]``.
    """
    grid = [check_eps(e) for e in eps]
    if not grid:
        raise CnnlensError("empty eps grid")
    names = _check_attacks(attacks)
    if steps < 1:
        raise CnnlensError(f"steps must be at least 1, not {steps}")
    if step_size is not None:
        step_size = check_eps(step_size, "step size")
    n = n_correct = 0
    still = {a: [0] * len(grid) for a in names}
    still_on_correct = {a: [0] * len(grid) for a in names}
    iterator: Iterable[tuple[torch.Tensor, torch.Tensor]] = data
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(data, total=total, desc="robustness", unit="batch", leave=False, dynamic_ncols=True, disable=None)
        iterator = bar
    try:
        with eval_mode(model):
            net = fold_batchnorm(model)  # the same function, faster; folded once for every batch and attack
            for x, y in iterator:
                x = _prepare(model, x)
                y = torch.as_tensor(y, device=x.device).long().reshape(-1)
                with torch.no_grad():
                    logits = _logits(net, x)
                if y.numel() and (y.min().item() < 0 or y.max().item() >= logits.shape[1]):
                    raise CnnlensError(f"labels {y.min().item()}..{y.max().item()} outside the model's {logits.shape[1]} classes")
                clean_ok = logits.argmax(1) == y
                n += y.numel()
                n_correct += int(clean_ok.sum())
                sign = None
                for name in names:
                    for i, e in enumerate(grid):
                        if e == 0:
                            ok = clean_ok
                        elif name == "fgsm":
                            if sign is None:
                                sign = input_gradient(net, x, y).sign_()
                            with torch.no_grad():
                                ok = _logits(net, (x + e * sign).clamp_(0, 1)).argmax(1) == y
                        else:
                            adv = pgd(net, x, y, eps=e, step_size=step_size, steps=steps, random_start=name == "pgd", generator=generator)
                            with torch.no_grad():
                                ok = _logits(net, adv).argmax(1) == y
                        still[name][i] += int(ok.sum())
                        still_on_correct[name][i] += int((ok & clean_ok).sum())
    finally:
        if bar is not None:
            bar.close()
    if n == 0:
        raise CnnlensError("no images to evaluate")
    curves = {
        a: Curve(
            a,
            accuracy=[c / n for c in still[a]],
            accuracy_on_correct=[c / n_correct if n_correct else math.nan for c in still_on_correct[a]],
            correct=still[a],
        )
        for a in names
    }
    return RobustnessResult(grid, n, n_correct, curves, steps=steps, step_size=step_size, label=label)
