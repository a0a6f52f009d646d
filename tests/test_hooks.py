"""The hooks core: captures are right, and the model is left exactly as it was."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision

import cnnlens
from cnnlens.hooks import capture, eval_mode, forward_until, no_inplace, preserved_state
from cnnlens.testing import hook_count, model_state


@pytest.fixture
def resnet() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).train()


def test_capture_shapes_and_cleanup(resnet: nn.Module) -> None:
    before = model_state(resnet)
    with capture(resnet, ["layer1", "layer4.1.conv2"]) as cap:
        resnet.eval()
        resnet(torch.rand(1, 3, 64, 64))
        assert hook_count(resnet) == 2
    assert cap["layer4.1.conv2"].shape == (1, 512, 2, 2)
    assert cap["layer1"].shape == (1, 64, 16, 16)
    assert model_state(resnet) == before  # hooks gone, train mode back


def test_clone_survives_inplace_relu() -> None:
    """vgg's conv output is overwritten by the in-place ReLU after it; a clone keeps the negative values."""
    torch.manual_seed(0)
    vgg = torchvision.models.vgg11(weights=None).eval()
    x = torch.rand(1, 3, 32, 32)
    with capture(vgg, ["features.0"]) as kept, capture(vgg, ["features.0"], clone=False) as aliased:
        vgg(x)
    assert kept["features.0"].min() < 0
    assert aliased["features.0"].min() >= 0  # what a hook that stores by reference sees
    direct = vgg.features[0](x)
    torch.testing.assert_close(kept["features.0"], direct)


def test_gradients_of_a_tensor_that_inplace_relu_overwrites(resnet: nn.Module) -> None:
    resnet.eval()
    x = torch.rand(1, 3, 64, 64)
    with capture(resnet, ["layer2.0.bn1"], grads=True, detach=False) as cap:
        out = resnet(x)
        out[0, 3].backward()
    grad = cap.grads["layer2.0.bn1"]
    # independent: differentiate the same scalar with respect to the bn1 output via torch.autograd.grad
    acts = {}

    def keep(m: nn.Module, a: object, o: torch.Tensor) -> torch.Tensor:
        acts["bn1"] = o
        return o.clone()  # the clone feeds the in-place ReLU; o stays the value bn1 produced

    h = resnet.get_submodule("layer2.0.bn1").register_forward_hook(keep)
    try:
        out2 = resnet(x)
    finally:
        h.remove()
    (expected,) = torch.autograd.grad(out2[0, 3], acts["bn1"])
    torch.testing.assert_close(grad, expected)
    for p in resnet.parameters():
        p.grad = None


def test_unknown_layer_suggests(resnet: nn.Module) -> None:
    with pytest.raises(cnnlens.CnnlensError, match="layer4.1.conv2"):
        with capture(resnet, ["layer4.1.conv3"]):
            pass
    assert hook_count(resnet) == 0


class Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


def test_everything_restored_when_the_model_raises_halfway() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True), Boom(), nn.Linear(4, 2))
    model.train()
    model[0].weight.requires_grad_(False)
    before = model_state(model)
    with pytest.raises(RuntimeError, match="boom"):
        with capture(model, ["0", "2"], grads=True), eval_mode(model), no_inplace(model):
            assert not model.training and not model[2].inplace
            model(torch.rand(1, 3, 8, 8))
    assert model_state(model) == before
    with pytest.raises(cnnlens.CnnlensError):
        cnnlens.report(model, (1, 3, 8, 8))
    assert model_state(model) == before


def test_report_leaves_a_real_model_untouched(resnet: nn.Module) -> None:
    before = model_state(resnet)
    r = cnnlens.report(resnet, (1, 3, 64, 64))
    assert r["layer4"].output_shape == [1, 512, 2, 2]
    assert model_state(resnet) == before
    assert all(p.device.type == "cpu" for p in resnet.parameters())


def test_forward_until_stops_early() -> None:
    calls = []
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
    model[2].register_forward_pre_hook(lambda m, a: calls.append(1))
    cap = forward_until(model, torch.rand(1, 3, 8, 8), ["1"])
    assert cap["1"].shape == (1, 4, 6, 6) and calls == []
    assert hook_count(model) == 1  # only the test's own hook remains


def test_stop_applies_to_every_forward_pass_in_the_block() -> None:
    calls = []
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
    model[2].register_forward_pre_hook(lambda m, a: calls.append(1))
    with capture(model, "1", stop=True) as cap:
        for size in (8, 10, 12):
            with pytest.raises(cnnlens.hooks.StopForward):
                model(torch.rand(1, 3, size, size))
            assert cap["1"].shape == (1, 4, size - 2, size - 2)
    assert calls == [] and hook_count(model) == 1


def test_preserved_state_restores_requires_grad() -> None:
    model = nn.Sequential(nn.Linear(2, 2))
    with preserved_state(model):
        model.requires_grad_(False)
        model.train(False)
    assert model[0].weight.requires_grad and model.training


def test_hooked_removes_its_hooks_also_when_the_block_raises() -> None:
    from cnnlens.hooks import hooked

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    seen: list[str] = []
    with hooked([(net[0], lambda m, args, out: seen.append("post"))]), hooked([(net[1], lambda m, args: seen.append("pre"))], pre=True):
        net(torch.rand(1, 3, 8, 8))
    assert seen == ["post", "pre"]
    with pytest.raises(RuntimeError), hooked([(net[0], lambda m, args, out: seen.append("again"))]):
        raise RuntimeError("halfway")
    net(torch.rand(1, 3, 8, 8))
    assert seen == ["post", "pre"] and not net[0]._forward_hooks and not net[1]._forward_pre_hooks
