"""The small models cnnlens ships: classic networks as their papers describe them, and the MNIST CNN
that adversarial-robustness tutorials train.

``cnnlens report alexnet-paper`` and friends; torchvision's ``alexnet`` is a later variant (see docs/report.md).
They are registered in :mod:`cnnlens.registry`, which is how every command and API function finds them.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["MnistCNN", "alexnet_paper", "lenet5", "mlp_mnist", "one_7x7", "three_3x3"]


def alexnet_paper(num_classes: int = 1000) -> nn.Sequential:
    """AlexNet as in Krizhevsky, Sutskever & Hinton 2012: 227x227x3 input, conv1 96 11x11/4 with no padding.

    conv2, conv4 and conv5 are split into two groups (the paper's two GPUs); this gives 60,965,224
    parameters (the paper's "60 million"). conv2 has stride 1 and padding 2, which is what gives
    27x27x256 before pool2 (a stride of 2, as some summaries print it, would leave 6x6 after pool2, not 13x13).
    """
    return nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True), nn.Dropout(),
        nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(),
        nn.Linear(4096, num_classes),
    )  # fmt: skip


def lenet5(num_classes: int = 10) -> nn.Sequential:
    """LeNet-5 (LeCun et al. 1998) on 32x32 grey images: C1 6@5x5, S2, C3 16@5x5, S4, C5 120, F6 84, 10.

    C3 is fully connected to S2's six maps (the paper used a sparse table); 61,706 parameters.
    """
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),
        nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, num_classes),
    )  # fmt: skip


def mlp_mnist() -> nn.Sequential:
    """A multi-layer perceptron on 28x28 MNIST digits, 784-512-512-10 with ReLUs (the layout of Keras'
    ``mnist_mlp`` example, without its dropout): 669,706 weights, against 61,706 for LeNet-5."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


def three_3x3(channels: int = 64) -> nn.Sequential:
    """Three stacked 3x3 stride-1 convs (VGG's argument): a 7x7 receptive field with 27 C^2 weights."""
    return nn.Sequential(*[nn.Conv2d(channels, channels, 3, padding=1, bias=False) for _ in range(3)])


def one_7x7(channels: int = 64) -> nn.Sequential:
    """One 7x7 conv: the same 7x7 receptive field as :func:`three_3x3`, with 49 C^2 weights."""
    return nn.Sequential(nn.Conv2d(channels, channels, 7, padding=3, bias=False))


class MnistCNN(nn.Module):
    """The small MNIST CNN of advertorch's tutorial (which calls it "LeNet5"; it is not LeCun's LeNet-5,
    see :func:`lenet5`): 1x28x28 pixels in [0, 1], no normalization.

    conv1 32x3x3 (pad 1), ReLU, max-pool 2; conv2 64x3x3 (pad 1), ReLU, max-pool 2; linear 3136->200, ReLU, 200->10.
    Checkpoints trained with advertorch's ``tutorial_train_mnist.py`` (clean or adversarial) load into it.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.linear1 = nn.Linear(7 * 7 * 64, 200)
        self.linear2 = nn.Linear(200, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.linear2(F.relu(self.linear1(x.flatten(1))))
