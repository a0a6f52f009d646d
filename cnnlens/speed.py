"""Speed helpers: channels-last weights for a block of work, BatchNorm folded into convolutions, and
Python's cyclic garbage collector paused while a block makes many short-lived objects.

They leave the user's model as it was: :func:`channels_last` restores every parameter's tensor on exit,
:func:`fold_batchnorm` returns a copy.
"""

from __future__ import annotations

import contextlib
import gc
import warnings
from collections.abc import Iterator

import torch
import torch.nn as nn

__all__ = ["channels_last", "fold_batchnorm", "gc_paused"]


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


@contextlib.contextmanager
def channels_last(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """Give every 4-D parameter a channels-last copy inside the block, and put the originals back.

    oneDNN (CPU) and cuDNN convolutions run faster on NHWC tensors (about 25 % for squeezenet on
    CPU). The parameters keep their values and, after the block, their very tensors (``p.data``
    is restored), so the model is left exactly as it was.
    """
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []
    try:
        if enabled:
            for p in model.parameters():
                if p.dim() == 4 and not p.data.is_contiguous(memory_format=torch.channels_last):
                    saved.append((p, p.data))
                    p.data = p.data.contiguous(memory_format=torch.channels_last)
        yield model
    finally:
        for p, data in saved:
            p.data = data


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off inside the block, as it was after it.

    A meta-device pass makes tens of thousands of short-lived objects. With the collector on, the ones
    alive at each young-generation collection are promoted, and every few dozen reports the promoted
    count starts a full collection, which scans every object of the process (some 340,000 once torch
    and torchvision are imported: 130-250 ms). Measured on 150 reports of vgg16 in a row: mean 8.0 ms
    with the collector on, 5.5 ms with it paused (medians 5.8 and 5.5). Reference counting still frees
    what the block drops; only reference cycles wait for the next collection. A young-generation
    collection that fell due inside the block runs on the way out (the block pays for it, not the
    caller's next line).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
            if gc.get_count()[0] > gc.get_threshold()[0]:
                gc.collect(0)
