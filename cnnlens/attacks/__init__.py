"""Adversarial examples (FGSM, iterative FGSM, PGD) and robustness curves, on pixels in [0, 1].

Models come as created (``cnnlens.create_model``) or as any ``nn.Module`` returning logits; their
normalization is applied inside, so ε is in pixel units.

Example:
    >>> import torch
    >>> from cnnlens import attacks
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    >>> r = attacks.attack(net, torch.rand(1, 3, 2, 2), eps=0.007)
    >>> float(r.perturbation.abs().max()) <= 0.007 + 1e-6
    True
"""

from __future__ import annotations

from .adversarial import ADVERSARIAL_SUFFIXES, AttackResult, attack, fgsm, input_gradient, iterative_fgsm, pgd, predict
from .core import ATTACKS, check_attacks, check_eps, quantize_8bit
from .curves import DEFAULT_EPS, Curve, RobustnessComparison, RobustnessResult, compare_robustness, robustness
from .plots import format_eps, plot_attack, plot_robustness

__all__ = [
    "AttackResult",
    "RobustnessComparison",
    "RobustnessResult",
    "attack",
    "compare_robustness",
    "fgsm",
    "input_gradient",
    "iterative_fgsm",
    "pgd",
    "predict",
    "robustness",
]
