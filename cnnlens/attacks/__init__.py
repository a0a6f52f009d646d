"""Adversarial examples (FGSM, iterative FGSM, PGD) and robustness curves, on pixels in [0, 1].

Example:
    >>> import torch, cnnlens
    >>> from cnnlens import attacks
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    >>> r = attacks.attack(net, torch.rand(1, 3, 2, 2), eps=0.007)
    >>> float(r.perturbation.abs().max()) <= 0.007 + 1e-6
    True
"""

from __future__ import annotations

from .datasets import LabelledImages, batches, labelled_folder, read_idx, read_labels_csv
from .fgsm import AttackResult, attack, check_eps, fgsm, input_gradient, iterative_fgsm, pgd, predict
from .plots import format_eps, plot_attack, plot_robustness
from .robustness import ATTACKS, DEFAULT_EPS, Curve, RobustnessResult, robustness
from .zoo import ATTACK_MODELS, AttackModel, LeNet5MNIST, load_attack_model, prepare_image

__all__ = [
    "ATTACKS",
    "ATTACK_MODELS",
    "AttackModel",
    "AttackResult",
    "Curve",
    "DEFAULT_EPS",
    "LabelledImages",
    "LeNet5MNIST",
    "RobustnessResult",
    "attack",
    "batches",
    "check_eps",
    "fgsm",
    "format_eps",
    "input_gradient",
    "iterative_fgsm",
    "labelled_folder",
    "load_attack_model",
    "pgd",
    "plot_attack",
    "plot_robustness",
    "predict",
    "prepare_image",
    "read_idx",
    "read_labels_csv",
    "robustness",
]
