"""A model that takes pixels: the one place where pixels in [0, 1] become a network's input.

- :class:`Normalized` and :func:`pixel_model` put the model's normalization inside the model;
  :func:`pixel_net` also unwraps a :class:`Normalized` given by the user and can fold BatchNorms
  into a copy for speed; :func:`unwrap` gives back the network whose layer names the user knows.
- :func:`image_preprocessing` says how images become the model's input (size, crop, channels).
- :func:`to_input` gives a batch the model's device and dtype; :func:`input_layout` chooses its
  memory format (channels-last where oneDNN or cuDNN run faster); :func:`class_logits` runs the
  network on it and checks that it returns ``(batch, classes)`` logits.

Every capability builds its network on pixels here, never with its own copy of these steps.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn as nn

from .checks import check_int
from .errors import CnnlensError
from .layers import model_device, model_dtype
from .pixels import Preprocessing
from .registry import model_info
from .speed import fold_batchnorm

__all__ = [
    "LAYOUTS",
    "Normalized",
    "check_one_input",
    "class_logits",
    "image_preprocessing",
    "input_layout",
    "pixel_model",
    "pixel_net",
    "prefers_channels_last",
    "stem_pool",
    "to_contiguous",
    "to_input",
    "unwrap",
]


class Normalized(nn.Module):
    """``model(preprocessing.normalize(x))``: a model that takes pixels in [0, 1].

    The wrapped model is ``self.model`` (its layer names gain a ``model.`` prefix inside the wrapper).
    """

    def __init__(self, model: nn.Module, preprocessing: Preprocessing) -> None:
        super().__init__()
        self.model = model
        self.preprocessing = preprocessing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.preprocessing.normalize(x))


def pixel_model(model: nn.Module, preprocessing: Preprocessing) -> nn.Module:
    """``model`` as a module on pixels in [0, 1]: :class:`Normalized` with ``preprocessing``
    (usually ``cnnlens.model_info(model).preprocessing``).

    A model whose preprocessing is the identity (mean 0, std 1) comes back as it is.
    """
    if isinstance(model, Normalized):
        return model
    if all(m == 0 for m in preprocessing.mean) and all(s == 1 for s in preprocessing.std):
        return model
    return Normalized(model, preprocessing)


def unwrap(model: nn.Module) -> tuple[nn.Module, Preprocessing | None]:
    """The network inside a :class:`Normalized` wrapper (whose layer names the user gives) and the
    wrapper's preprocessing; any other model and ``None``."""
    if isinstance(model, Normalized):
        return model.model, model.preprocessing
    return model, None


def pixel_net(model: nn.Module, preprocessing: Preprocessing | None = None, *, fold: bool = False) -> nn.Module:
    """``model`` as a module on pixels in [0, 1] (its normalization inside).

    A :class:`Normalized` model is taken apart and its inner model used. With ``fold``, a copy of the
    (eval-mode) inner model with each BatchNorm folded into the convolution before it
    (:func:`cnnlens.speed.fold_batchnorm`): the same function, faster, the user's model untouched.
    """
    inner, wrapped = unwrap(model)
    preprocessing = preprocessing or wrapped or model_info(inner).preprocessing
    return pixel_model(fold_batchnorm(inner) if fold else inner, preprocessing)


def image_preprocessing(model: nn.Module, preprocessing: Preprocessing | None = None, size: int | None = None, images: Any = None) -> Preprocessing:
    """How images become ``model``'s input: ``preprocessing`` if given, else the wrapper's or
    ``model_info(model).preprocessing``; ``size`` replaces the resize and crop by a square side.
    Without ``size``, ``images`` given as a tensor set it to their side (:func:`cnnlens.pixels.tensor_side`:
    tensors are taken at the size the caller made them), unless the model takes one size only
    (LeNet-5's 32 px) or a larger one: then they are resized like files.

    Raises:
        CnnlensError: the model does not take images (a network on 64 feature maps), or ``size`` is
            not an integer or below the model's minimum.
    """
    _, wrapped = unwrap(model)
    prep = preprocessing or wrapped or model_info(model).preprocessing
    if not isinstance(prep, Preprocessing):
        raise CnnlensError(f"preprocessing must be a cnnlens.Preprocessing, not {type(prep).__name__}", param="preprocessing")
    if prep.channels not in (1, 3):
        raise CnnlensError(f"{model_info(model).name} takes {prep.channels}-channel tensors, not images; pick an image model")
    check_one_input(model)
    if size is None and images is not None:
        from .pixels import tensor_side

        side = tensor_side(images)
        if side is not None and not prep.fixed_size and side >= max(prep.min_size):
            size = side
    if size is not None:
        size = check_int(size, "size", low=1, high=8192)
        low_h, low_w = prep.min_size
        if size < max(low_h, low_w):
            raise CnnlensError(f"size {size} is below {model_info(model).name}'s minimum input of {low_h}x{low_w} pixels", param="size")
        prep = prep.with_size(size)
    elif prep.crop_size is None:
        prep = prep.with_size(prep.resize_size or prep.input_size[-1])
    return prep


def check_one_input(model: nn.Module) -> None:
    """Refuse, in one line, a model whose ``forward`` needs more than one input (cnnlens feeds it
    one batch of images)."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):  # no signature to read: let the model speak for itself
        return
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p.name for p in params if p.kind in positional and p.default is inspect.Parameter.empty]
    required += [p.name for p in params if p.kind == inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty]
    if len(required) > 1:
        raise CnnlensError(
            f"{model_info(model).name} needs {len(required)} inputs ({', '.join(required)}); cnnlens feeds a model one batch of images"
        )


def to_input(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x`` on ``net``'s device and in its dtype (the dtype of its first floating-point parameter)."""
    return x.to(model_device(net), model_dtype(net))


def class_logits(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` (``x`` cast to the network's dtype), checked to be ``(B, classes)`` logits."""
    out = net(x.to(model_dtype(net, default=x.dtype)))
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise CnnlensError(
            f"model must return (batch, classes) logits, not {type(out).__name__} {tuple(getattr(out, 'shape', ()))}", param="model"
        )
    return out


# -- the input's memory format -------------------------------------------------------------------------


def prefers_channels_last(net: nn.Module, x: torch.Tensor) -> bool:
    """Whether to pass ``x`` channels-last: oneDNN's CPU convolutions run faster on NHWC tensors, except
    for networks of plain k x k convolutions (no groups, fewer than a third 1x1: ResNet-18/34, AlexNet)
    on maps below 160 px.

    Measured for one forward and input-gradient pass (2 threads, batch 8, paired medians of
    channels-last / contiguous time): MobileNetV2 0.74 at 128 px, 0.59 at 224; ResNet-50 0.86, 0.83;
    DenseNet-121 0.81, 0.85; SqueezeNet 0.72, 0.68; ResNet-18 1.28 at 96 px, 1.15 at 128, 0.99 at 160,
    0.82 at 224. On other devices channels-last is kept.
    """
    if x.dim() != 4:
        return False
    if x.device.type != "cpu":
        return True
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    pointwise = sum(m.kernel_size == (1, 1) for m in convs)
    return any(m.groups > 1 for m in convs) or 3 * pointwise >= len(convs) or min(x.shape[-2:]) >= 160


def stem_pool(net: nn.Module) -> nn.Module | None:
    """The network's first ``nn.MaxPool2d`` (in module order), or None."""
    return next((m for m in net.modules() if isinstance(m, nn.MaxPool2d)), None)


class _Contiguous(torch.autograd.Function):
    """``x.contiguous()`` whose gradient goes back channels-last (the layout of ``x``): a max-pool
    backward given a contiguous gradient for a channels-last input copies its whole input-sized map twice."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=torch.channels_last)


def to_contiguous(module: nn.Module, inputs: Any, output: Any) -> Any:
    """A forward hook: a channels-last 4-d output in the default (NCHW) memory format, its gradient
    channels-last again; any other output as it is."""
    if isinstance(output, torch.Tensor) and output.dim() == 4 and not output.is_contiguous():
        return _Contiguous.apply(output)
    return output


LAYOUTS = ("channels_last", "stem", "contiguous")


def input_layout(net: nn.Module, x: torch.Tensor, channels_last: bool | None = None) -> str:
    """How to lay out the input of ``net``: ``"channels_last"`` where :func:`prefers_channels_last`
    says so; else ``"stem"`` on the CPU for a network with a max-pool layer: channels-last up to the
    output of its first ``nn.MaxPool2d`` (:func:`stem_pool`, with the :func:`to_contiguous` hook),
    contiguous after it; else ``"contiguous"``.

    oneDNN's CPU max pooling of a contiguous (NCHW) map is about 18x slower than of a channels-last one
    (8 x 64 x 64 x 64, 2 threads: 5.8 ms against 0.33 ms), so the stem of a network that otherwise runs
    contiguous (ResNet-18/34, AlexNet, VGG below 160 px) runs channels-last. Measured for one forward
    and input-gradient pass (2 threads, batch 8, paired medians of stem / contiguous time): ResNet-18
    0.95 at 96 px, 0.91 at 128; ResNet-34 0.93 at 128; AlexNet 0.98; VGG-11 0.98. The memory format
    changes float rounding at most (ResNet-18's input gradient is bit-identical), never the function.
    ``channels_last`` True or False forces ``"channels_last"`` or ``"contiguous"``.
    """
    if channels_last is not None:
        return "channels_last" if channels_last else "contiguous"
    if prefers_channels_last(net, x):
        return "channels_last"
    if x.dim() == 4 and x.device.type == "cpu" and stem_pool(net) is not None:
        return "stem"
    return "contiguous"
