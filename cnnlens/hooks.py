"""The hooks core: capture what named layers compute, and leave the model exactly as it was.

Every capability of cnnlens reads activations and gradients through :func:`capture` and runs
inside :func:`preserved_state`, so that after any call (also one that raises halfway)

- no hook is left on any module,
- every module's ``training`` flag and every parameter's ``requires_grad`` are what they were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from .layers import LayerRef, resolve_layers

__all__ = ["StopForward", "capture", "eval_mode", "forward_until", "hooked", "no_inplace", "preserved_state", "set_training"]


@contextlib.contextmanager
def preserved_state(model: nn.Module) -> Iterator[nn.Module]:
    """Restore every module's train/eval flag, every parameter's ``requires_grad`` and the running
    statistics of every BatchNorm on exit.

    The statistics matter for a model left in train mode: each forward pass inside the block would
    otherwise move its BatchNorm running means and variances.
    """
    modules = list(model.modules())
    modes = [(m, m.training) for m in modules]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    stats = [
        (m, name, buf.clone())
        for m in modules
        if m.training and isinstance(m, nn.modules.batchnorm._NormBase)
        for name, buf in m.named_buffers(recurse=False)
        if buf is not None and buf.device.type != "meta"
    ]
    try:
        yield model
    finally:
        for module, training in modes:
            if module.training != training:
                module.training = training
        for param, requires_grad in grads:
            if param.requires_grad != requires_grad:
                param.requires_grad_(requires_grad)
        with torch.no_grad():
            for module, name, saved in stats:
                getattr(module, name).copy_(saved)


def set_training(modules: Sequence[nn.Module], training: bool) -> None:
    """``model.train(training)`` where ``modules`` is ``list(model.modules())``, without a Python call per
    module: the flags are set directly when no module overrides ``train`` or ``__setattr__`` (what
    ``nn.Module.train`` then does), else through ``modules[0].train(training)``."""
    if all(type(m).train is nn.Module.train and type(m).__setattr__ is nn.Module.__setattr__ for m in modules):
        for m in modules:
            object.__setattr__(m, "training", training)
    else:
        modules[0].train(training)


@contextlib.contextmanager
def eval_mode(model: nn.Module, *, freeze: bool = True) -> Iterator[nn.Module]:
    """``model.eval()`` (and parameters frozen, so no ``.grad`` is written) inside the block only."""
    with preserved_state(model):
        model.eval()
        if freeze:
            for p in model.parameters():
                p.requires_grad_(False)
        yield model


@contextlib.contextmanager
def no_inplace(model: nn.Module) -> Iterator[nn.Module]:
    """Turn off ``inplace`` on every module that has it (ReLU, ReLU6, Hardswish, Dropout...), then restore."""
    flipped = [m for m in model.modules() if getattr(m, "inplace", False) is True]
    for m in flipped:
        m.inplace = False
    try:
        yield model
    finally:
        for m in flipped:
            m.inplace = True


class StopForward(Exception):
    """Raised by a hook to end a forward pass once everything needed has been computed."""


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            found = _first_tensor(item)
            if found is not None:
                return found
    if isinstance(output, dict):
        for item in output.values():
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


@dataclass
class Capture:
    """What :func:`capture` recorded: ``outputs[name]``, ``grads[name]`` and ``calls[name]``.

    With several calls of one module (a ReLU reused in a ResNet block) the last call is kept.
    """

    outputs: dict[str, Any] = field(default_factory=dict)  # tensors, or what a reduce function made of them
    grads: dict[str, torch.Tensor] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.outputs[name]

    def __contains__(self, name: object) -> bool:
        return name in self.outputs

    def clear(self) -> None:
        self.outputs.clear()
        self.grads.clear()
        self.calls.clear()


@contextlib.contextmanager
def capture(
    model: nn.Module,
    layers: LayerRef | Sequence[LayerRef],
    *,
    grads: bool = False,
    detach: bool = True,
    clone: bool = True,
    stop: bool = False,
    reduce: Callable[[torch.Tensor], Any] | Mapping[str, Callable[[torch.Tensor], Any]] | None = None,
) -> Iterator[Capture]:
    """Record the outputs (and gradients) of ``layers`` during forward passes run inside the block.

    Args:
        model: any ``nn.Module``.
        layers: dotted names (``"layer4.1.conv2"``) or submodules.
        grads: also record the gradient of each output when a backward pass runs in the block. It is
            the gradient with respect to the value the layer produced, even when an in-place ReLU
            overwrites that tensor afterwards.
        detach: store outputs without their autograd graph. Use ``False`` for objectives that
            differentiate through the captured activations.
        clone: store a copy, so that a later in-place op (``ReLU(inplace=True)``) cannot overwrite it.
        stop: raise :class:`StopForward` once every layer has produced its output, so the rest of the
            network is not computed; run the model with :func:`forward_until` to catch it. Every
            forward pass of ``model`` inside the block starts a new count, so the block can run
            several passes.
        reduce: store ``reduce(output)`` instead of the output (a Gram matrix, channel means),
            computed in the hook, before any later in-place op: no copy of the output is kept. A
            mapping ``{name: function}`` reduces each layer its own way.

    Example:
        >>> import torch, torchvision
        >>> model = torchvision.models.resnet18().eval()
        >>> with capture(model, ["layer1", "layer4.1.conv2"]) as cap:
        ...     _ = model(torch.rand(1, 3, 64, 64))
        >>> tuple(cap["layer4.1.conv2"].shape)
        (1, 512, 2, 2)
    """
    modules = resolve_layers(model, layers)
    record = Capture()
    handles: list[torch.utils.hooks.RemovableHandle] = []
    pending = set(modules)

    def make_hook(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            tensor = _first_tensor(output)
            record.calls[name] = record.calls.get(name, 0) + 1
            if tensor is None:
                return
            kept = tensor.detach() if detach else tensor
            fn = reduce.get(name) if isinstance(reduce, Mapping) else reduce
            record.outputs[name] = fn(kept) if fn is not None else kept.clone() if clone else kept
            if grads and tensor.requires_grad:
                tensor.register_hook(lambda g, name=name: record.grads.__setitem__(name, g.detach().clone()))
            pending.discard(name)
            if stop and not pending:
                raise StopForward

        return hook

    def restart(module: nn.Module, args: Any) -> None:
        pending.clear()
        pending.update(modules)

    with preserved_state(model):
        try:
            if stop:
                handles.append(model.register_forward_pre_hook(restart))
            for name, module in modules.items():
                handles.append(module.register_forward_hook(make_hook(name)))
            yield record
        finally:
            for handle in handles:
                handle.remove()


def forward_until(
    model: nn.Module, x: torch.Tensor, layers: LayerRef | Sequence[LayerRef], *, detach: bool = True,
    reduce: Callable[[torch.Tensor], Any] | Mapping[str, Callable[[torch.Tensor], Any]] | None = None,
) -> Capture:
    """Run ``model(x)`` only as far as needed to compute ``layers``; return their outputs (or
    ``reduce`` of them, see :func:`capture`).

    The rest of the network is skipped (a hook ends the pass), so a style loss on ``features.10``
    of VGG19 does not pay for the classifier.
    """
    with capture(model, layers, detach=detach, stop=True, reduce=reduce) as record:
        try:
            model(x)
        except StopForward:
            pass
    return record


@contextlib.contextmanager
def hooked(hooks: Sequence[tuple[nn.Module, Callable[..., Any]]], *, pre: bool = False) -> Iterator[None]:
    """Forward hooks (``pre``: forward pre-hooks) ``(module, fn)`` attached for the block only:
    every one is removed on the way out, also when the block raises or a registration fails halfway
    (the hooks registered before it are removed)."""
    handles: list[torch.utils.hooks.RemovableHandle] = []
    try:
        for module, fn in hooks:
            handles.append(module.register_forward_pre_hook(fn) if pre else module.register_forward_hook(fn))
        yield
    finally:
        for handle in handles:
            handle.remove()
