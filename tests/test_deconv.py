"""Deconvnet / guided backprop: equal to captum where captum is right (vgg16), right where it is not
(functional ReLU in googlenet, inception_v3, densenet121), in-place and reused ReLUs, state restored."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from click.testing import CliRunner

import cnnlens
from cnnlens.cli import cli
from cnnlens.hooks import StopForward, capture
from cnnlens.testing import model_state
from cnnlens.units import ReLUGradientMode, project


class _RefReLU(torch.autograd.Function):
    """TorchRay-style reference rule, independent of captum and of cnnlens' mode."""

    @staticmethod
    def forward(ctx, x, guided):  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.guided = guided
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        out = g.clamp(min=0)
        return (out * (x > 0) if ctx.guided else out), None


def reference(monkeypatch: pytest.MonkeyPatch, model: nn.Module, x: torch.Tensor, layer: str, index: tuple, method: str) -> torch.Tensor:
    """Monkeypatch F.relu (nn.ReLU modules call it too), differentiate one unit by hand."""
    if method != "gradient":
        monkeypatch.setattr(F, "relu", lambda t, inplace=False: _RefReLU.apply(t, method == "guided"))
    try:
        x = x.clone().requires_grad_(True)
        with cnnlens.eval_mode(model), capture(model, layer, detach=False, stop=True) as rec:
            try:
                model(x)
            except StopForward:
                pass
            (g,) = torch.autograd.grad(rec[layer][(0, *index)], x)
    finally:
        monkeypatch.undo()
    return g


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


@pytest.fixture(scope="module")
def vgg16() -> nn.Module:
    """torchvision vgg16 with seeded random convs. Its classifier (after features.28, never on the path) is
    dropped: initializing and checksumming its 120 M weights would cost ~20 s of test CPU."""
    from cnnlens.registry import build_empty

    model = build_empty("vgg16")
    model.classifier = nn.Identity()
    model = model.to_empty(device="cpu")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / m.weight[0].numel()) ** 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.01)
            elif isinstance(m, nn.Linear):
                m.weight.zero_()
                m.bias.zero_()
    return model.eval()


@pytest.mark.parametrize("method", ["deconvnet", "guided", "gradient"])
def test_equal_to_captum_on_vgg16(vgg16: nn.Module, method: str) -> None:
    import captum.attr

    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    before = model_state(vgg16)
    p = project(vgg16, x, "features.28", channel=7, position=(2, 1), method=method)
    assert model_state(vgg16) == before
    cls = {"deconvnet": captum.attr.NeuronDeconvolution, "guided": captum.attr.NeuronGuidedBackprop, "gradient": captum.attr.NeuronGradient}[method]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = cls(vgg16, vgg16.features[28]).attribute(x.clone(), neuron_selector=(7, 2, 1))
    assert model_state(vgg16) == before
    print(f"vgg16 features.28 {method}: max |cnnlens - captum| = {float((p.gradient - theirs).abs().max()):.1e} (max |captum| {float(theirs.abs().max()):.1e})")
    assert torch.allclose(p.gradient, theirs, rtol=1e-5, atol=1e-7 * float(theirs.abs().max()))
    assert p.relu_calls == (0 if method == "gradient" else 12)  # the 12 ReLU modules up to features.28 (via F.relu)
    if method != "gradient":
        plain = project(vgg16, x, "features.28", channel=7, position=(2, 1), method="gradient").gradient
        assert rel(p.gradient, plain) > 0.2


CASES = {
    # model: input side, layer (the unit is the strongest one of the layer)
    "googlenet": (96, "inception4a"),
    "inception_v3": (96, "Mixed_5b"),
    "densenet121": (64, "classifier"),  # the last ReLU of densenet is F.relu in forward()
}


@pytest.mark.parametrize("name", list(CASES))
def test_functional_relu_models_differ_from_gradient(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import captum.attr

    size, layer = CASES[name]
    model = cnnlens.create_model(name, None)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    before = model_state(model)
    plain = project(model, x, layer, method="gradient")
    assert plain.activation[0] > 0
    channel = int(plain.channel[0])
    position = None if plain.position is None else tuple(plain.position[0].tolist())
    index = (channel, *(position or ()))
    got = {m: project(model, x, layer, channel=channel, position=position, method=m) for m in ("deconvnet", "guided")}
    got["gradient"] = plain
    assert model_state(model) == before
    assert got["deconvnet"].relu_calls > 0
    for method in ("deconvnet", "guided"):
        ref = reference(monkeypatch, model, x, layer, index, method)
        print(
            f"{name} {layer}{list(index)} {method}: |ours - gradient|/|gradient| = {rel(got[method].gradient, got['gradient'].gradient):.3f}, "
            f"|ours - reference|/|reference| = {rel(got[method].gradient, ref):.1e}, functional ReLU calls routed {got[method].relu_calls}"
        )
        assert rel(got[method].gradient, ref) < 1e-4, method
        assert rel(got[method].gradient, got["gradient"].gradient) > 0.2, method
    assert rel(got["gradient"].gradient, reference(monkeypatch, model, x, layer, index, "gradient")) < 1e-5
    if name in ("googlenet", "inception_v3"):  # captum alone silently returns the plain gradient there
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = captum.attr.NeuronDeconvolution(model, cnnlens.get_layer(model, layer)).attribute(x.clone(), neuron_selector=index)
        print(f"{name}: captum NeuronDeconvolution alone vs gradient: {rel(theirs, got['gradient'].gradient):.1e}")
        assert rel(theirs, got["gradient"].gradient) < 1e-5
    else:  # densenet: captum handles the 120 nn.ReLU modules but misses the final F.relu in forward()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = captum.attr.GuidedBackprop(model).attribute(x.clone(), target=channel)
        print(f"{name}: captum GuidedBackprop alone vs cnnlens guided: {rel(theirs, got['guided'].gradient):.2f}")
        assert rel(theirs, got["guided"].gradient) > 0.05
    assert model_state(model) == before


def test_reused_inplace_relu_resnet18(monkeypatch: pytest.MonkeyPatch) -> None:
    import captum.attr

    model = cnnlens.create_model("resnet18", None)  # each block calls one inplace nn.ReLU twice
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    p = project(model, x, "layer2.1", channel=4, position=(3, 2), method="guided")
    ref = reference(monkeypatch, model, x, "layer2.1", (4, 3, 2), "guided")
    assert rel(p.gradient, ref) < 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = captum.attr.NeuronGuidedBackprop(model, model.layer2[1]).attribute(x.clone(), neuron_selector=(4, 3, 2))
    assert rel(p.gradient, theirs) < 1e-4


def test_mode_rules_by_hand() -> None:
    x = torch.tensor([-1.0, 2.0, 3.0, -4.0], requires_grad=True)
    w = torch.tensor([5.0, -6.0, 7.0, 8.0])
    for rule, expected in [("deconvnet", [5.0, 0.0, 7.0, 8.0]), ("guided", [0.0, 0.0, 7.0, 0.0])]:
        for call in (F.relu, torch.relu, lambda t: t.relu(), lambda t: F.relu(t.clone(), inplace=True), lambda t: torch.relu_(t.clone())):
            with ReLUGradientMode(rule) as mode:
                y = call(x)
            (g,) = torch.autograd.grad((y * w).sum(), x)
            assert g.tolist() == expected and mode.calls == 1
            assert y.tolist() == [0.0, 2.0, 3.0, 0.0]
    t = x.detach().clone().requires_grad_(False)
    with ReLUGradientMode("guided") as mode:
        F.relu(t, inplace=True)  # no autograd: the plain op, in place
    assert t.tolist() == [0.0, 2.0, 3.0, 0.0] and mode.calls == 0
    (g,) = torch.autograd.grad((F.relu(x) * w).sum(), x)  # outside the mode: the plain gradient again
    assert g.tolist() == [0.0, -6.0, 7.0, 0.0]


class _Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            raise RuntimeError("boom")
        return x


def test_state_restored_after_errors() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), _Boom(), nn.Conv2d(4, 2, 3), nn.ReLU(inplace=True))
    net.train()
    before = model_state(net)
    x = torch.randn(1, 3, 12, 12)
    with pytest.raises(RuntimeError, match="boom"):
        project(net, x, "3", method="deconvnet")
    assert model_state(net) == before
    assert not torch.overrides._get_current_function_mode_stack()
    with pytest.raises(cnnlens.CnnlensError, match="out of range"):
        project(net, x, "0", channel=9)
    with pytest.raises(cnnlens.CnnlensError, match="outside"):
        project(net, x, "0", channel=1, position=(10, 0))
    with pytest.raises(cnnlens.CnnlensError, match="unknown method"):
        project(net, x, "0", method="lrp")
    assert model_state(net) == before


def test_default_unit_is_the_strongest() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU(), nn.Conv2d(5, 4, 3)).eval()
    x = torch.randn(2, 3, 10, 10)
    p = project(net, x, "2")
    act = net(x).detach()
    for b in range(2):
        c = int(p.channel[b])
        assert act[b].max() == act[b, c].max() == p.activation[b]
        i, j = p.position[b].tolist()
        assert act[b, c, i, j] == act[b, c].max()


def test_deconv_cli(tmp_path) -> None:
    import skimage.io

    img = tmp_path / "x.png"
    skimage.io.imsave(img, (torch.rand(40, 50, 3) * 255).byte().numpy(), check_contrast=False)
    out = tmp_path / "d.png"
    res = CliRunner().invoke(
        cli, ["deconv", "squeezenet1_0", str(img), "--layer", "features.4", "-m", "deconvnet", "-m", "gradient", "--size", "48", "-o", str(out), "--json"], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["layer"] == "features.4" and data["box"] is not None and out.stat().st_size > 1000
    assert data["methods"]["deconvnet"]["relative_difference_from_gradient"] > 0.1
    res = CliRunner().invoke(cli, ["deconv", "squeezenet1_0", str(img), "--layer", "features.4", "--size", "48", "-o", str(out)])
    assert res.exit_code == 2 and "exists" in res.output
    res = CliRunner().invoke(cli, ["deconv", "squeezenet1_0", str(img), "-l", "features.4", "--size", "48", "-c", "3", "--position", "1", "2", "-m", "guided", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["channel"] == 3 and data["position"] == [1, 2] and data["box"] == [-4, 0, 23, 27]  # field 27, stride 4, padding 8
    res = CliRunner().invoke(cli, ["deconv", "squeezenet1_0", str(img), "-l", "features.4", "--size", "48", "-c", "999", "--json"])
    assert res.exit_code == 2 and res.output.startswith("Error: channel") and "out of range" in res.output
