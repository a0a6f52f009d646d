"""Memory figures of the report, on the meta device, against the same quantities on real tensors."""

from __future__ import annotations

import pytest
import torch
import torchvision

import cnnlens


def real_saved_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    model.eval()
    return sum(saved.values())


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "vgg11"])
def test_saved_for_backward_matches_a_real_run(name: str) -> None:
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None)
    x = torch.rand(2, 3, 64, 64)
    r = cnnlens.report(model, tuple(x.shape))
    assert r.totals.saved_for_backward_bytes == real_saved_bytes(model, x)
    adam = 2 * r.totals.param_bytes  # every parameter trainable: exp_avg and exp_avg_sq
    assert r.totals.training_bytes_estimate == r.totals.param_bytes * 2 + adam + r.totals.saved_for_backward_bytes


def test_activation_bytes_count_inplace_relu_once() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(inplace=True), torch.nn.MaxPool2d(2))
    r = cnnlens.report(net, (1, 3, 32, 32))
    assert r["0"].output_bytes == r["1"].output_bytes == 8 * 32 * 32 * 4
    assert r.totals.activation_bytes == 8 * 32 * 32 * 4 + 8 * 16 * 16 * 4
    net[1].inplace = False
    assert cnnlens.report(net, (1, 3, 32, 32)).totals.activation_bytes == 2 * 8 * 32 * 32 * 4 + 8 * 16 * 16 * 4
