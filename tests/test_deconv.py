"""Deconvnet / guided backprop: equal to captum where captum is right (vgg16), right where it is not
(functional ReLU in googlenet, inception_v3, densenet121; ReLU6 in mobilenet_v2), in-place and reused
ReLUs, state restored; the `project` result and the `deconv` command."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from click.testing import CliRunner

import cnnlens
from cnnlens.cli import cli
from cnnlens.hooks import StopForward, capture
from cnnlens.pixels import Preprocessing
from cnnlens.testing import model_state
from cnnlens.units import Projection, ReLUGradientMode, project, unit_gradients

# pixels go to the network as they are: the references below differentiate the bare network
IDENTITY = Preprocessing(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), resize_size=None, crop_size=None)


class _RefClip(torch.autograd.Function):
    """TorchRay-style reference rule for clamp(x, 0, upper), independent of captum and of cnnlens' mode."""

    @staticmethod
    def forward(ctx, x, guided, upper):  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.guided = guided
        ctx.upper = upper
        return x.clamp(min=0) if upper is None else x.clamp(0, upper)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        out = g.clamp(min=0)
        if ctx.guided:
            mask = x > 0 if ctx.upper is None else (x > 0) & (x < ctx.upper)
            out = out * mask
        return out, None, None


def reference(monkeypatch: pytest.MonkeyPatch, model: nn.Module, x: torch.Tensor, layer: str, index: tuple, method: str) -> torch.Tensor:
    """Monkeypatch F.relu and F.hardtanh (nn.ReLU and nn.ReLU6 modules call them), differentiate one unit by hand."""
    if method != "gradient":
        guided = method == "guided"
        real_hardtanh = F.hardtanh
        monkeypatch.setattr(F, "relu", lambda t, inplace=False: _RefClip.apply(t, guided, None))

        def hardtanh(t, min_val=-1.0, max_val=1.0, inplace=False):
            return _RefClip.apply(t, guided, max_val) if min_val == 0 else real_hardtanh(t, min_val, max_val, inplace)

        monkeypatch.setattr(F, "hardtanh", hardtanh)
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
    return model.eval()


@pytest.mark.parametrize("method", ["deconvnet", "guided", "gradient"])
def test_equal_to_captum_on_vgg16(vgg16: nn.Module, method: str) -> None:
    """On pixels, through the model's ImageNet normalization: captum on the Normalized wrapper."""
    import captum.attr

    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    prep = cnnlens.model_info(vgg16).preprocessing
    before = model_state(vgg16)
    p = unit_gradients(vgg16, x, "features.28", channel=7, position=(2, 1), method=method)
    assert model_state(vgg16) == before
    wrapped = cnnlens.Normalized(vgg16, prep)
    cls = {"deconvnet": captum.attr.NeuronDeconvolution, "guided": captum.attr.NeuronGuidedBackprop, "gradient": captum.attr.NeuronGradient}[method]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = cls(wrapped, vgg16.features[28]).attribute(x.clone(), neuron_selector=(7, 2, 1))
    assert model_state(vgg16) == before
    print(f"vgg16 features.28 {method}: max |cnnlens - captum| = {float((p.gradient - theirs).abs().max()):.1e} (max |captum| {float(theirs.abs().max()):.1e})")
    assert p.gradient.device.type == "cpu" and p.gradient.shape == x.shape
    assert torch.allclose(p.gradient, theirs, rtol=1e-5, atol=1e-6 * float(theirs.abs().max()))
    assert p.relu_calls == 12  # the 12 ReLU modules up to features.28 (via F.relu), counted under every method
    assert p.routed == (0 if method == "gradient" else 12)
    if method != "gradient":
        plain = unit_gradients(vgg16, x, "features.28", channel=7, position=(2, 1), method="gradient").gradient
        assert rel(p.gradient, plain) > 0.2


CASES = {
    # model: input side, layer (the unit is the strongest one of the layer)
    "googlenet": (96, "inception4a"),
    "inception_v3": (96, "Mixed_5b"),
    "densenet121": (64, "classifier"),  # the last ReLU of densenet is F.relu in forward()
    "mobilenet_v2": (64, "features.10"),  # every nonlinearity is nn.ReLU6 = F.hardtanh(x, 0, 6)
}


@pytest.mark.parametrize("name", list(CASES))
def test_functional_relu_and_relu6_models_differ_from_gradient(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import captum.attr

    size, layer = CASES[name]
    model = cnnlens.create_model(name, seed=0)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    before = model_state(model)
    plain = unit_gradients(model, x, layer, method="gradient", preprocessing=IDENTITY)
    assert plain.activation[0] > 0
    channel = int(plain.channel[0])
    position = None if plain.position is None else tuple(plain.position[0].tolist())
    index = (channel, *(position or ()))
    got = {m: unit_gradients(model, x, layer, channel=channel, position=position, method=m, preprocessing=IDENTITY) for m in ("deconvnet", "guided")}
    got["gradient"] = plain
    assert model_state(model) == before
    assert got["deconvnet"].relu_calls > 0 and got["deconvnet"].relu_calls == plain.relu_calls
    for method in ("deconvnet", "guided"):
        ref = reference(monkeypatch, model, x, layer, index, method)
        print(
            f"{name} {layer}{list(index)} {method}: |ours - gradient|/|gradient| = {rel(got[method].gradient, got['gradient'].gradient):.3f}, "
            f"|ours - reference|/|reference| = {rel(got[method].gradient, ref):.1e}, ReLU-family calls routed {got[method].routed}"
        )
        assert rel(got[method].gradient, ref) < 1e-4, method
        assert rel(got[method].gradient, got["gradient"].gradient) > 0.2, method
    assert rel(got["gradient"].gradient, reference(monkeypatch, model, x, layer, index, "gradient")) < 1e-5
    if name != "densenet121":  # captum alone silently returns the plain gradient there
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

    model = cnnlens.create_model("resnet18", seed=0)  # each block calls one inplace nn.ReLU twice
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    p = unit_gradients(model, x, "layer2.1", channel=4, position=(3, 2), method="guided", preprocessing=IDENTITY)
    ref = reference(monkeypatch, model, x, "layer2.1", (4, 3, 2), "guided")
    assert rel(p.gradient, ref) < 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = captum.attr.NeuronGuidedBackprop(model, model.layer2[1]).attribute(x.clone(), neuron_selector=(4, 3, 2))
    assert rel(p.gradient, theirs) < 1e-4


def test_mode_rules_by_hand() -> None:
    x = torch.tensor([-1.0, 2.0, 7.0, -4.0, 3.0], requires_grad=True)
    w = torch.tensor([5.0, -6.0, 7.0, 8.0, 9.0])
    relus = (F.relu, torch.relu, lambda t: t.relu(), lambda t: F.relu(t.clone(), inplace=True), lambda t: torch.relu_(t.clone()))
    relu6s = (F.relu6, lambda t: F.relu6(t.clone(), inplace=True), lambda t: F.hardtanh(t, 0.0, 6.0), nn.ReLU6(), nn.ReLU6(inplace=False), lambda t: F.hardtanh_(t.clone(), 0.0, 6.0))
    expected = {
        ("deconvnet", "relu"): [5.0, 0.0, 7.0, 8.0, 9.0],
        ("guided", "relu"): [0.0, 0.0, 7.0, 0.0, 9.0],
        ("gradient", "relu"): [0.0, -6.0, 7.0, 0.0, 9.0],
        ("deconvnet", "relu6"): [5.0, 0.0, 7.0, 8.0, 9.0],
        ("guided", "relu6"): [0.0, 0.0, 0.0, 0.0, 9.0],  # 7 > 6: ReLU6 is flat there
        ("gradient", "relu6"): [0.0, -6.0, 0.0, 0.0, 9.0],
    }
    for rule in ("deconvnet", "guided", "gradient"):
        for kind, calls in (("relu", relus), ("relu6", relu6s)):
            for call in calls:
                with ReLUGradientMode(rule) as mode:
                    y = call(x)
                (g,) = torch.autograd.grad((y * w).sum(), x)
                assert g.tolist() == expected[(rule, kind)], (rule, kind)
                assert mode.calls == 1
                assert y.tolist() == ([0.0, 2.0, 7.0, 0.0, 3.0] if kind == "relu" else [0.0, 2.0, 6.0, 0.0, 3.0])
    with ReLUGradientMode("deconvnet") as mode:
        y = F.hardtanh(x)  # a real hardtanh (-1..1) is no ReLU
    assert mode.calls == 0
    assert torch.autograd.grad((y * w).sum(), x)[0].tolist() == [0.0, 0.0, 0.0, 0.0, 0.0]
    t = x.detach().clone().requires_grad_(False)
    with ReLUGradientMode("guided") as mode:
        F.relu(t, inplace=True)  # no autograd: the plain op, in place
    assert t.tolist() == [0.0, 2.0, 7.0, 0.0, 3.0] and mode.calls == 0
    (g,) = torch.autograd.grad((F.relu(x) * w).sum(), x)  # outside the mode: the plain gradient again
    assert g.tolist() == [0.0, -6.0, 7.0, 0.0, 9.0]
    with pytest.raises(cnnlens.CnnlensError, match="rule 'lrp' unknown"):
        ReLUGradientMode("lrp")


class _Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            raise RuntimeError("boom")
        return x


def test_state_restored_after_errors() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True), _Boom(), nn.Conv2d(4, 2, 3), nn.ReLU(inplace=True))
    net.train()
    before = model_state(net)
    stats = net[1].running_mean.clone()
    x = torch.rand(1, 3, 12, 12)
    with pytest.raises(RuntimeError, match="boom"):
        unit_gradients(net, x, "4", method="deconvnet")
    assert model_state(net) == before and torch.equal(net[1].running_mean, stats)
    assert not torch.overrides._get_current_function_mode_stack()
    with pytest.raises(cnnlens.CnnlensError, match="channel 9 out of range"):
        unit_gradients(net, x, "0", channel=9)
    with pytest.raises(cnnlens.CnnlensError, match="position 10,0 outside"):
        unit_gradients(net, x, "0", channel=1, position=(10, 0))
    with pytest.raises(cnnlens.CnnlensError, match="unknown method 'lrp'"):
        unit_gradients(net, x, "0", method="lrp")
    with pytest.raises(cnnlens.CnnlensError, match="unit: unknown layer 'O'"):
        project(net, x[0], "O:1", preprocessing=IDENTITY)
    with pytest.raises(cnnlens.CnnlensError, match="unit 0:9: channel 9 out of range") as err:
        project(net, x[0], "0:9", preprocessing=IDENTITY)
    assert err.value.param == "unit"
    with pytest.raises(cnnlens.CnnlensError, match="methods: unknown method 'lrp'"):
        project(net, x[0], "0", methods=["deconvnet", "lrp"], preprocessing=IDENTITY)
    with pytest.raises(cnnlens.CnnlensError, match="image must be one image"):
        project(net, torch.rand(2, 3, 12, 12), "0", preprocessing=IDENTITY)
    with pytest.raises(cnnlens.CnnlensError, match=r"must be pixels in \[0, 1\]"):
        project(net, torch.randn(3, 12, 12) * 5, "0", preprocessing=IDENTITY)
    assert model_state(net) == before and torch.equal(net[1].running_mean, stats)


def test_default_unit_is_the_strongest() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU(), nn.Conv2d(5, 4, 3)).eval()
    x = torch.rand(2, 3, 10, 10)
    p = unit_gradients(net, x, "2", preprocessing=IDENTITY)
    act = net(x).detach()
    for b in range(2):
        c = int(p.channel[b])
        assert act[b].max() == act[b, c].max() == p.activation[b]
        i, j = p.position[b].tolist()
        assert act[b, c, i, j] == act[b, c].max()


def test_project_result_holds_everything_the_cli_needs(tmp_path: Path) -> None:
    model = cnnlens.create_model("squeezenet1_0", seed=0)
    before = model_state(model)
    image = torch.rand(3, 60, 50, generator=torch.Generator().manual_seed(3))
    p = project(model, image, "features.4", size=48)
    assert model_state(model) == before
    assert isinstance(p, Projection) and isinstance(p, cnnlens.Result)
    assert p.image.shape == (3, 48, 48) and set(p.projections) == {"deconvnet", "guided", "gradient"}
    assert all(g.shape == (3, 48, 48) and g.device.type == "cpu" for g in p.projections.values())
    # the unit: strongest channel and position of features.4 on the 48x48 crop
    prep = cnnlens.model_info(model).preprocessing.with_size(48)
    pixels = prep.prepare(image[None])
    assert torch.equal(p.image, pixels[0])
    with torch.no_grad(), capture(model, "features.4") as cap:
        model(prep.normalize(pixels))
    act = cap["features.4"][0]
    c, (i, j) = p.unit.channel, p.unit.position
    assert p.unit.layer == "features.4" and act.max() == act[c, i, j] and p.activation == pytest.approx(float(act.max()))
    # everything matches the low-level calls
    plain = unit_gradients(model, pixels, "features.4", channel=c, position=(i, j), method="gradient")
    deconv = unit_gradients(model, pixels, "features.4", channel=c, position=(i, j), method="deconvnet")
    assert torch.equal(p.projections["gradient"], plain.gradient[0]) and torch.equal(p.projections["deconvnet"], deconv.gradient[0])
    assert p.relative_difference["deconvnet"] == pytest.approx(rel(deconv.gradient, plain.gradient), rel=1e-5)
    assert p.relative_difference["gradient"] == 0.0 and p.relu_calls == 7 and not p.methods_equal_gradient
    rf = cnnlens.report(model, (1, 3, 48, 48))["features.4"].receptive_field
    assert p.receptive_field == rf and p.box == rf.box(i, j) and rf.size == (27, 27)
    d = json.loads(json.dumps(p.to_dict()))
    assert d["model"] == "squeezenet1_0" and d["weights"] == "random init, seed 0" and d["random_init"] is True
    assert d["unit"] == f"features.4:{c}@{i},{j}" and d["box"] == list(p.box) and d["dead"] is False
    assert d["methods"]["deconvnet"]["relu_calls_routed"] == 7 and d["methods"]["gradient"]["relu_calls_routed"] == 0
    assert d["methods"]["guided"]["relative_difference_from_gradient"] == pytest.approx(p.relative_difference["guided"])
    fig = p.figure()
    title = fig.texts[0].get_text()
    assert "squeezenet1_0 (random init, seed 0)" in title and f"features.4:{c}@{i},{j}" in title
    assert [ax.get_title().split("\n")[0] for ax in fig.axes] == ["image", "deconvnet", "guided", "gradient"]
    assert "features.4" in repr(p) and "data:image/png;base64," in p._repr_html_()
    # one method only, a chosen unit, a path and a PIL image give the same numbers
    only = project(model, image, f"features.4:{c}@{i},{j}", methods="guided", size=48)
    assert list(only.projections) == ["guided"] and torch.equal(only.projections["guided"], p.projections["guided"])
    assert only.relative_difference == {"guided": pytest.approx(p.relative_difference["guided"])}


def test_logits_unit_and_class_names() -> None:
    model = cnnlens.create_model("mnist-cnn", seed=0)
    p = project(model, torch.rand(1, 28, 28), "logits:7")
    assert p.unit.is_logits and p.unit.channel == 7 and p.box is None and p.receptive_field == "global"
    out = model(p.image[None]).detach()[0, 7]
    assert p.activation == pytest.approx(float(out), abs=1e-5) and p.relu_calls == 3
    assert p.to_dict()["unit"] == "logits:7"


def test_dead_unit_and_no_relu_model_are_reported() -> None:
    net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3), nn.ReLU())
    with torch.no_grad():
        net[2].weight.zero_()
        net[2].bias.copy_(torch.tensor([-1.0, 0.5]))
    p = project(net, torch.rand(3, 16, 16), "3:0", preprocessing=IDENTITY)
    assert p.dead and p.activation == 0.0 and p.to_dict()["dead"] is True
    assert any("does not fire" in w for w in p.warnings) and float(p.projections["gradient"].abs().sum()) == 0
    assert p.relative_difference["deconvnet"] is None  # the gradient is 0: no relative difference
    assert "does not fire" in p.figure().texts[0].get_text().replace("\n", " ")
    assert not project(net, torch.rand(3, 16, 16), "3:1", preprocessing=IDENTITY).dead
    lenet = cnnlens.create_model("lenet5", seed=0)  # tanh only
    q = project(lenet, torch.rand(3, 40, 40), "3:2")
    assert q.image.shape == (1, 32, 32) and q.relu_calls == 0 and q.methods_equal_gradient
    assert all(v == 0.0 for v in q.relative_difference.values())
    assert torch.equal(q.projections["deconvnet"], q.projections["gradient"])
    note = "lenet5 has no ReLU-family nonlinearity before 3: deconvnet and guided backprop equal the plain gradient"
    assert q.warnings == [note] and q.to_dict()["methods_equal_gradient"] is True and q.to_dict()["warnings"] == [note]
    assert note in q.figure().texts[0].get_text().replace("\n", " ")


@pytest.mark.data
def test_mobilenet_v2_trained_deconvnet_and_guided_differ_from_gradient(mobilenet_trained: nn.Module, data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real ImageNet weights, ReLU6 everywhere: the rules apply (captum alone would give the gradient three times)."""
    import captum.attr

    image = data / "imagenet_samples" / "n02123045_tabby.JPEG"
    if not image.exists():
        image = sorted((data / "imagenet_samples").glob("*.JPEG"))[281]
    before = model_state(mobilenet_trained)
    p = project(mobilenet_trained, image, "features.14", size=160)
    assert model_state(mobilenet_trained) == before
    print(f"mobilenet_v2 {p.unit}: activation {p.activation:.3f}, ReLU6 calls {p.relu_calls}, relative differences {p.relative_difference}")
    assert p.relu_calls == 28 and not p.dead and not p.warnings  # features.0, features.1, then 2 ReLU6 in each of features.2..14
    assert p.relative_difference["deconvnet"] > 0.5 and p.relative_difference["guided"] > 0.2
    # the guided projection equals an independent ReLU6 rule on the normalized input
    pixels = p.image[None]
    prep = cnnlens.model_info(mobilenet_trained).preprocessing
    x = prep.normalize(pixels)
    index = (p.unit.channel, *p.unit.position)
    std = torch.tensor(prep.std).view(1, 3, 1, 1)
    ref = reference(monkeypatch, mobilenet_trained, x, "features.14", index, "guided") / std  # d/dpixel = d/dx / std
    assert rel(p.projections["guided"][None], ref) < 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = captum.attr.NeuronGuidedBackprop(mobilenet_trained, mobilenet_trained.features[14]).attribute(x.clone(), neuron_selector=index)
    plain = reference(monkeypatch, mobilenet_trained, x, "features.14", index, "gradient")
    assert rel(theirs, plain) < 1e-5  # captum: only nn.ReLU modules, none in mobilenet_v2


def test_deconv_cli(tmp_path: Path) -> None:
    import skimage.io

    img = tmp_path / "x.png"
    skimage.io.imsave(img, (torch.rand(40, 50, 3) * 255).byte().numpy(), check_contrast=False)
    out = tmp_path / "d.png"
    runner = CliRunner()
    base = ["deconv", "squeezenet1_0", str(img), "-w", "none", "--size", "48"]
    res = runner.invoke(cli, [*base, "-u", "features.4", "--method", "deconvnet", "--method", "gradient", "-o", str(out), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["layer"] == "features.4" and data["box"] is not None and out.stat().st_size > 1000
    assert data["weights"] == "random init, seed 0" and data["image"] == str(img) and set(data["methods"]) == {"deconvnet", "gradient"}
    assert data["methods"]["deconvnet"]["relative_difference_from_gradient"] > 0.1
    api = project(cnnlens.create_model("squeezenet1_0", seed=0), img, "features.4", methods=["deconvnet", "gradient"], size=48)
    assert data == json.loads(json.dumps(cnnlens.results.jsonable(api.to_dict())))  # --json is exactly to_dict()
    again = runner.invoke(cli, [*base, "-u", "features.4", "--method", "deconvnet", "--method", "gradient", "--json"])
    other = runner.invoke(cli, [*base, "-u", "features.4", "--method", "deconvnet", "--method", "gradient", "--json", "--seed", "1"])
    assert again.stdout == res.stdout and other.exit_code == 0 and other.stdout != res.stdout  # --seed seeds the random init
    before = out.read_bytes()
    res = runner.invoke(cli, [*base, "-u", "features.4", "-o", str(out)])
    assert res.exit_code == 2 and "exists" in res.output and out.read_bytes() == before
    res = runner.invoke(cli, [*base, "-u", "features.4:3@1,2", "--method", "guided", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["channel"] == 3 and data["position"] == [1, 2] and data["box"] == [-4, 0, 23, 27]  # field 27, stride 4, padding 8
    res = runner.invoke(cli, [*base, "-u", "features.4:999", "--json"])
    assert res.exit_code == 2 and res.output == "Error: --unit features.4:999: channel 999 out of range: features.4 has channels 0..127\n"
    res = runner.invoke(cli, [*base, "-u", "feature.4", "--json"])
    assert res.exit_code == 2 and res.output.startswith("Error: --unit: unknown layer 'feature.4' (did you mean: features.4")
    res = runner.invoke(cli, [*base, "-m", "guided"])
    assert res.exit_code == 2 and "No such option '-m'" in res.output  # -m means --model elsewhere; --method is long only
    res = runner.invoke(cli, [*base, "--method", "lrp"])
    assert res.exit_code == 2 and "lrp" in res.output
    res = runner.invoke(cli, ["deconv", "squeezenet1_0", str(tmp_path / "missing.png"), "-w", "none", "-o", str(tmp_path / "m.png")])
    assert res.exit_code == 2 and res.output.startswith("Error: image not found") and not (tmp_path / "m.png").exists()


def test_deconv_cli_on_every_registry_source(tmp_path: Path, file_model: str, two_input_model: str) -> None:
    """One model per source with -w none --seed 0 and tiny sizes; stderr and JSON say when the
    methods equal the gradient; models that take no images refuse in one line."""
    import skimage.io

    pytest.importorskip("timm")
    img = tmp_path / "x.png"
    skimage.io.imsave(img, (torch.rand(40, 50, 3, generator=torch.Generator().manual_seed(0)) * 255).byte().numpy(), check_contrast=False)
    cases = {
        "resnet18": (["-u", "layer2", "--size", "64"], True),
        "lenet5": (["-u", "3"], False),  # tanh: no ReLU-family nonlinearity
        "mnist-cnn": ([], True),
        file_model: (["-u", "features.1"], True),  # features.1: the ReLU after its first conv
        "timm/resnet18": (["-u", "layer2", "--size", "64"], True),
    }
    runner = CliRunner()
    for name, (args, has_relu) in cases.items():
        out = tmp_path / f"{abs(hash(name))}.png"
        res = runner.invoke(cli, ["deconv", name, str(img), "-w", "none", "--seed", "0", *args, "--json", "-o", str(out)])
        assert res.exit_code == 0, (name, res.output)
        data = json.loads(res.stdout)
        assert data["random_init"] and data["methods_equal_gradient"] is (not has_relu), name
        assert out.stat().st_size > 1000
        warned = "Warning: " in res.stderr and "equal the plain gradient" in res.stderr
        assert warned is (not has_relu), (name, res.stderr)
    with pytest.raises(cnnlens.CnnlensError, match=r"needs 2 inputs \(x, y\); cnnlens feeds a model one batch of images"):
        project(cnnlens.create_model(two_input_model, seed=0), img)
    for name in ("three-3x3", "mlp-mnist", two_input_model):
        res = runner.invoke(cli, ["deconv", name, str(img), "-w", "none", "-o", str(tmp_path / "no.png")])
        assert res.exit_code == 2 and res.output.startswith("Error: ") and len(res.output.strip().splitlines()) == 1, res.output
        assert not (tmp_path / "no.png").exists()


def test_a_deconvnet_far_from_the_gradient_says_why_in_one_line(mobilenet_trained: nn.Module, data: Path) -> None:
    """The trained mobilenet_v2 on chelsea, logits:tabby: deconvnet is thousands of times the
    gradient (Zeiler & Fergus' rule at every ReLU6, added up by the linear bottlenecks): the figure says so."""
    p = cnnlens.project(mobilenet_trained, data / "photos" / "chelsea.png", "logits:tabby")
    assert p.relative_difference["deconvnet"] > 1000
    notes = [w for w in p.warnings if w.startswith("deconvnet is")]
    assert len(notes) == 1 and "ReLU6" in notes[0] and "linear bottlenecks" in notes[0] and "\n" not in notes[0]
    assert notes[0] in p.figure()._suptitle.get_text().replace("\n", " ")  # type: ignore[union-attr]
    near = cnnlens.project(mobilenet_trained, data / "photos" / "chelsea.png", "features.4:3")
    assert near.relative_difference["deconvnet"] < 100 and not any(w.startswith("deconvnet is") for w in near.warnings)
