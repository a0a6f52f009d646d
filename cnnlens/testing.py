"""Helpers for tests of code that hooks models: count hooks, snapshot and compare model state."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

__all__ = ["ModelState", "hook_count", "model_state"]

_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
)


def hook_count(model: nn.Module) -> int:
    """Number of module hooks on ``model`` and all its submodules (and tensor hooks on its parameters)."""
    total = 0
    for module in model.modules():
        for attr in _HOOK_DICTS:
            total += len(getattr(module, attr, {}) or {})
    for p in model.parameters():
        total += len(p._backward_hooks or {}) if getattr(p, "_backward_hooks", None) else 0
    return total


@dataclass(frozen=True)
class ModelState:
    hooks: int
    training: tuple[bool, ...]
    requires_grad: tuple[bool, ...]
    grads_none: bool
    inplace: tuple[bool, ...]
    checksum: float


def model_state(model: nn.Module) -> ModelState:
    """Everything cnnlens promises to leave unchanged: hooks, modes, requires_grad, .grad, inplace flags,
    weights and buffers (BatchNorm statistics)."""
    params = list(model.parameters())
    tensors = params + [b for b in model.buffers() if b.is_floating_point() or b.dtype == torch.long]
    with torch.no_grad():
        # weights and buffers (BatchNorm running statistics and counts included)
        checksum = float(sum(t.double().sum().item() for t in tensors if t.device.type != "meta"))
    return ModelState(
        hooks=hook_count(model),
        training=tuple(m.training for m in model.modules()),
        requires_grad=tuple(p.requires_grad for p in params),
        grads_none=all(p.grad is None for p in params),
        inplace=tuple(bool(getattr(m, "inplace", False)) for m in model.modules()),
        checksum=checksum,
    )
