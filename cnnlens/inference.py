"""Faster forward and backward passes for attacks that only need a frozen model's logits."""

from __future__ import annotations

import warnings

import torch.nn as nn

__all__ = ["fold_batchnorm"]


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of an eval-mode ``model`` with each BatchNorm that follows a convolution folded into it.

    The copy computes the same function (to float rounding) with one layer fewer per block, so its
    forward and input-gradient passes run about 1.1x (ResNet-18) to 1.4x (MobileNetV2) faster on CPU.
    It is made with ``torch.fx`` (``torch.fx.experimental.optimization.fuse``) and shares nothing
    with ``model``, which stays as it was. ``model`` itself comes back when there is nothing to fold,
    when it is in training mode (its BatchNorms use batch statistics there) or when it does not trace.
    Only for callers that need the model's output, not its named layers: the copy is a
    ``GraphModule`` whose folded BatchNorms are gone.
    """
    if model.training or not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return model
    from torch.fx.experimental.optimization import fuse

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fuse(model, inplace=False)
    except Exception:  # torch.fx cannot trace data-dependent control flow: run the model as it is
        return model
