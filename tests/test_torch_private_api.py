"""The private PyTorch APIs cnnlens relies on, each checked for what cnnlens needs of it: when a PyTorch
release changes one, this file fails loudly and names it, instead of a report quietly counting wrong.

Where they are used: the report's meta-device passes (``cnnlens.reports.engine`` and
``cnnlens.reports.memo``), the hooks core (BatchNorm statistics) and the speed helpers (BatchNorm folding)."""

from __future__ import annotations

import torch
import torch.nn as nn


def test_torch_dispatch_mode_sees_aten_calls() -> None:
    from torch.utils._python_dispatch import TorchDispatchMode

    seen: list[str] = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            seen.append(str(func.overloadpacket))
            return func(*args, **(kwargs or {}))

    with Record():
        torch.ones(2, device="meta") + 1
    assert any("add" in s for s in seen)


def test_pytree_flattens_nested_outputs() -> None:
    from torch.utils._pytree import tree_flatten

    a, b = torch.zeros(1), torch.ones(1)
    leaves, _ = tree_flatten({"x": [a, (b, 3)]})
    assert [t for t in leaves if isinstance(t, torch.Tensor)] == [a, b]


def test_storage_cdata_identifies_a_storage() -> None:
    base = torch.empty(4, 4, device="meta")
    assert base.untyped_storage()._cdata == base[1:].untyped_storage()._cdata
    assert base.untyped_storage()._cdata != torch.empty(4, 4, device="meta").untyped_storage()._cdata


def test_fused_attention_choice_answers_for_cpu_stand_ins() -> None:
    from torch.nn.attention import SDPBackend

    q = torch.empty(1, 1, 1, 64).expand(1, 4, 197, 64)
    choice = torch._fused_sdp_choice(q, q, q, None, 0.0, False, scale=None)
    # the report counts flash attention's saved tensors exactly when this says FLASH_ATTENTION on the CPU
    assert isinstance(choice, int) and choice == int(SDPBackend.FLASH_ATTENTION)


def test_flash_attention_for_cpu_runs_on_meta_tensors() -> None:
    q = torch.empty(1, 4, 197, 64, device="meta")
    out = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, q, q, 0.0, False, attn_mask=None, scale=None)
    assert tuple(out[0].shape) == (1, 4, 197, 64)


def test_dispatcher_queries_for_decomposition() -> None:
    op = torch.ops.aten.linear.default
    key = torch._C.DispatchKey.CompositeImplicitAutograd
    assert isinstance(op.py_kernels, dict)
    assert torch._C._dispatch_has_kernel_for_dispatch_key(op.name(), key) is True
    assert torch._C._dispatch_has_kernel_for_dispatch_key(torch.ops.aten.mm.default.name(), key) is False
    assert callable(op.decompose) and isinstance(torch._ops.HigherOrderOperator, type)


def test_batchnorm_base_classes() -> None:
    assert isinstance(nn.BatchNorm2d(3), nn.modules.batchnorm._BatchNorm)
    assert isinstance(nn.BatchNorm2d(3), nn.modules.batchnorm._NormBase)
    assert not isinstance(nn.LayerNorm(3), nn.modules.batchnorm._NormBase)


def test_disable_torch_function_turns_a_mode_off_inside_the_block() -> None:
    """The report's hooks read metadata under ``torch._C.DisableTorchFunction`` so that the receptive-field
    mode does not intercept every ``.shape`` and ``.numel()``; the mode is back after the block."""
    from torch.overrides import TorchFunctionMode

    seen: list[str] = []

    class Record(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            seen.append(getattr(func, "__name__", str(func)))
            return func(*args, **(kwargs or {}))

    t = torch.empty(2, 3, device="meta")
    with Record():
        with torch._C.DisableTorchFunction():
            t.numel()
        assert seen == []
        t.numel()
    assert seen == ["numel"]
