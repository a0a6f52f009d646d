"""fold_batchnorm: the same function as the model, the model untouched, the model itself where nothing folds."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision

from cnnlens.speed import fold_batchnorm
from cnnlens.testing import hook_count, model_state


def with_running_stats(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, as in a trained model."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_folded_copy_computes_the_same_logits_and_input_gradient(name: str) -> None:
    torch.manual_seed(0)
    model = with_running_stats(torchvision.models.get_model(name, weights=None, num_classes=10))
    before = model_state(model)
    folded = fold_batchnorm(model)
    assert folded is not model
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert model_state(model) == before and hook_count(model) == 0
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    out, out_folded = model(x), folded(x)
    torch.testing.assert_close(out_folded, out, atol=1e-4, rtol=1e-4)
    (g,) = torch.autograd.grad(out[:, 3].sum(), x)
    (g_folded,) = torch.autograd.grad(out_folded[:, 3].sum(), x)
    torch.testing.assert_close(g_folded, g, atol=1e-5, rtol=1e-3)


def test_nothing_to_fold_training_mode_or_untraceable_returns_the_model() -> None:
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()
    assert fold_batchnorm(plain) is plain
    training = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    assert fold_batchnorm(training) is training

    class DataDependent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.bn(self.conv(x))
            return y if y.sum() > 0 else -y  # symbolic tracing cannot follow this

    odd = DataDependent().eval()
    assert fold_batchnorm(odd) is odd
