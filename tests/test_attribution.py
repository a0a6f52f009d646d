"""Attribution maps: equal to captum where captum is right (Grad-CAM on vgg16 and resnet18, integrated
gradients, occlusion, saliency, SmoothGrad), guided Grad-CAM right on googlenet's functional ReLUs where
captum's is not, Grad-CAM++ as its paper's closed form, token layers of vision transformers, targets,
the model left as it was, and the result protocol."""

from __future__ import annotations

import json

import captum.attr as ca
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import cnnlens
from cnnlens.attribution import Attribution, AttributionSettings, attribute, figure_names, grid_of, reduce_channels, resolve_targets
from cnnlens.attribution.spatial import attribution_layer
from cnnlens.errors import CnnlensError
from cnnlens.pixelnet import pixel_model
from cnnlens.results import jsonable
from cnnlens.testing import model_state

# Grad-CAM is the same arithmetic as captum's in the same order (mean gradient, weighted sum, ReLU,
# bilinear upsampling): equal to float32 rounding
GRADCAM_RTOL, GRADCAM_ATOL = 1e-5, 1e-7


def _images(n: int = 2, size: int = 64, seed: int = 1, channels: int = 3) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def resnet18() -> nn.Module:
    return cnnlens.create_model("resnet18", seed=0)


@pytest.fixture(scope="module")
def vgg16() -> nn.Module:
    return cnnlens.create_model("vgg16", seed=0)


def _captum_gradcam(model: nn.Module, layer: str, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    net = pixel_model(model, cnnlens.model_info(model).preprocessing)
    attr = ca.LayerGradCam(net, model.get_submodule(layer)).attribute(x, target=targets, relu_attributions=True)
    return ca.LayerAttribution.interpolate(attr, tuple(x.shape[-2:]), interpolate_mode="bilinear")[:, 0]


@pytest.mark.parametrize(("name", "layer"), [("resnet18", "layer4"), ("resnet18", "layer3.1.conv2"), ("vgg16", "features.28"), ("vgg16", "features.29")])
def test_gradcam_equals_captum_layergradcam_upsampled_bilinearly(name: str, layer: str, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(name)
    x = _images(3)
    r = attribute(model, x, "gradcam", layer=layer, progress=False)
    ref = _captum_gradcam(model, layer, x, r.targets)
    assert r.maps.shape == (3, 64, 64) and float(ref.abs().max()) > 0
    torch.testing.assert_close(r.maps, ref, rtol=GRADCAM_RTOL, atol=GRADCAM_ATOL * float(ref.abs().max()))
    # features.28 is followed by an in-place ReLU: the map reads the convolution's own output
    if layer == "features.28":
        relu = attribute(model, x, "gradcam", layer="features.29", progress=False).maps
        assert not torch.allclose(relu, r.maps)


def test_default_layer_is_the_last_spatial_layer(resnet18: nn.Module, vgg16: nn.Module) -> None:
    assert attribute(resnet18, _images(1), "gradcam", progress=False).layer == "layer4"
    assert attribute(vgg16, _images(1), "gradcam", progress=False).layer == cnnlens.default_layers(vgg16, "last_spatial")[0] == "features"  # not the adaptive avgpool after it


def test_integrated_gradients_occlusion_saliency_smoothgrad_equal_captum(resnet18: nn.Module) -> None:
    x = _images(2, 48)
    t = torch.tensor([3, 7])
    knobs = AttributionSettings(ig_steps=12, ig_baseline="black", occlusion_window=12, occlusion_stride=6, smoothgrad_samples=5, smoothgrad_noise=0.2)
    r = attribute(resnet18, x, ["integrated-gradients", "occlusion", "saliency", "smoothgrad"], target=[3, 7], settings=knobs, seed=5, progress=False)
    net = pixel_model(resnet18, cnnlens.model_info(resnet18).preprocessing)
    ig = ca.IntegratedGradients(net).attribute(x, baselines=torch.zeros_like(x), target=t, n_steps=12, method="gausslegendre")
    torch.testing.assert_close(r["integrated-gradients"], ig.sum(1), rtol=1e-4, atol=1e-6)
    mean = torch.tensor(cnnlens.model_info(resnet18).preprocessing.mean).view(1, 3, 1, 1).expand_as(x).contiguous()
    occ = ca.Occlusion(net).attribute(x, sliding_window_shapes=(3, 12, 12), strides=(3, 6, 6), baselines=mean, target=t)
    torch.testing.assert_close(r["occlusion"], occ.mean(1), rtol=1e-4, atol=1e-6)
    sal = ca.Saliency(net).attribute(x, target=t, abs=True)
    torch.testing.assert_close(r["saliency"], sal.amax(1), rtol=1e-5, atol=1e-8)
    with torch.random.fork_rng():
        torch.manual_seed(5)
        sg = ca.NoiseTunnel(ca.Saliency(net)).attribute(x, nt_type="smoothgrad", nt_samples=5, stdevs=0.2, target=t, abs=True, nt_samples_batch_size=8)
    torch.testing.assert_close(r["smoothgrad"], sg.amax(1), rtol=1e-5, atol=1e-8)
    # integrated gradients' completeness: sum of the map = y(x) - y(black), up to the stated delta
    with torch.no_grad():
        gap = net(x).gather(1, t.view(-1, 1))[:, 0] - net(torch.zeros_like(x)).gather(1, t.view(-1, 1))[:, 0]
    torch.testing.assert_close(r["integrated-gradients"].sum((1, 2)) - gap, r.ig_delta, rtol=1e-3, atol=1e-4)
    # the default path starts at the normalization mean (the network's zero input)
    m = attribute(resnet18, x, "integrated-gradients", target=[3, 7], settings=AttributionSettings(ig_steps=12), progress=False)
    ref = ca.IntegratedGradients(net).attribute(x, baselines=mean, target=t, n_steps=12, method="gausslegendre")
    torch.testing.assert_close(m.maps, ref.sum(1), rtol=1e-4, atol=1e-6)
    assert m.to_dict()["settings"]["ig_baseline"] == "mean"


class _GuidedReLU(torch.autograd.Function):
    """Guided rule for F.relu written here, independent of cnnlens and captum."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        out = x.clamp(min=0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (out,) = ctx.saved_tensors
        return g.clamp(min=0) * (out > 0)


def test_guided_gradcam_on_googlenet_routes_functional_relus_where_captum_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    model = cnnlens.create_model("googlenet", seed=0)
    with torch.no_grad():  # torchvision's init (std 0.01) makes the signal vanish; He's keeps it alive
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=torch.Generator().manual_seed(sum(m.weight.shape)))
    x = _images(2, 64)
    r = attribute(model, x, ["guided-gradcam", "gradcam"], progress=False)
    layer = r.layer
    assert layer == "inception5b" and r.relu_calls and r.relu_calls > 50
    t = r.targets
    net = pixel_model(model, cnnlens.model_info(model).preprocessing)
    cam = _captum_gradcam(model, layer, x, t)
    torch.testing.assert_close(r["gradcam"], cam, rtol=GRADCAM_RTOL, atol=GRADCAM_ATOL * float(cam.abs().max()))
    captum_ggc = ca.GuidedGradCam(net, model.get_submodule(layer)).attribute(x, target=t, interpolate_mode="bilinear")
    # independent: every F.relu (googlenet's BasicConv2d calls F.relu(x, inplace=True)) takes the guided rule
    monkeypatch.setattr(F, "relu", lambda v, inplace=False: _GuidedReLU.apply(v))
    xi = x.clone().requires_grad_(True)
    with cnnlens.eval_mode(model):
        (guided,) = torch.autograd.grad(net(xi).gather(1, t.view(-1, 1)).sum(), xi)
    monkeypatch.undo()
    reference = (guided * cam.unsqueeze(1)).abs().amax(1)
    assert float(cam.min(1).values.min()) >= 0 and float(reference.max()) > 0
    torch.testing.assert_close(r["guided-gradcam"], reference, rtol=1e-4, atol=1e-6 * float(reference.max()))
    captum_map = captum_ggc.abs().amax(1)
    relative = float((captum_map - reference).norm() / reference.norm())
    assert relative > 0.1, relative  # captum's GuidedBackprop hooks nn.ReLU modules only: plain gradient here


def test_gradcam_plus_plus_is_the_papers_closed_form(resnet18: nn.Module) -> None:
    x = _images(2)
    r = attribute(resnet18, x, ["gradcam++", "gradcam"], progress=False)
    net = pixel_model(resnet18, cnnlens.model_info(resnet18).preprocessing)
    with cnnlens.capture(resnet18, "layer4", detach=False, clone=False) as cap:
        xi = x.clone().requires_grad_(True)
        score = net(xi).gather(1, r.targets.view(-1, 1)).sum()
        act = cap["layer4"]
        (g,) = torch.autograd.grad(score, act)
    a, g = act.detach().double().numpy(), g.double().numpy()
    # Chattopadhay et al. 2018, eq. 19 with exp(score): alpha = g^2 / (2 g^2 + sum(A) g^3)
    alpha = g**2 / (2 * g**2 + a.sum(axis=(2, 3), keepdims=True) * g**3 + 1e-6)
    alpha = np.where(g != 0, alpha, 0)
    w = (alpha * np.maximum(g, 0)).sum(axis=(2, 3), keepdims=True)
    cam = torch.from_numpy(np.maximum((w * a).sum(1, keepdims=True), 0)).float()
    ref = F.interpolate(cam, size=(64, 64), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(r["gradcam++"], ref, rtol=1e-4, atol=1e-6 * float(ref.max()))
    assert not torch.allclose(r["gradcam++"], r["gradcam"])


def test_grid_of_reads_channels_first_channels_last_and_tokens() -> None:
    assert grid_of((2, 512, 7, 7), (224, 224)).layout == "nchw"  # type: ignore[union-attr]
    g = grid_of((2, 7, 7, 768), (224, 224))  # swin stages: channels last
    assert g is not None and (g.layout, g.height, g.width) == ("nhwc", 7, 7)
    g = grid_of((2, 197, 768), (224, 224))  # ViT: class token + 14 x 14
    assert g is not None and (g.layout, g.height, g.width, g.skip) == ("tokens", 14, 14, 1)
    g = grid_of((2, 198, 192), (224, 224))  # DeiT: class and distillation tokens
    assert g is not None and (g.skip, g.height) == (2, 14)
    g = grid_of((2, 24, 64), (64, 96))  # a 4 x 6 grid of a landscape image
    assert g is not None and (g.height, g.width) == (4, 6)
    assert grid_of((2, 1000), (224, 224)) is None and grid_of((2, 512, 1, 1), (224, 224)) is None
    t = torch.arange(2 * 197 * 3, dtype=torch.float32).view(2, 197, 3)
    grid = grid_of(t.shape, (224, 224))
    out = grid.apply(t)  # type: ignore[union-attr]
    assert out.shape == (2, 3, 14, 14) and torch.equal(out[1, 2, 0, 1], t[1, 2, 2])


@pytest.mark.slow
def test_vit_tokens_are_reshaped_to_their_grid_and_swin_works() -> None:
    vit = cnnlens.create_model("vit_b_16", seed=0)
    nn.init.normal_(vit.heads.head.weight, std=0.02)  # torchvision initialises the head to zeros
    x = _images(1, 224)
    r = attribute(vit, x, "gradcam", progress=False)
    assert r.layer == "encoder.layers.encoder_layer_11.ln_1"
    assert r.grid is not None and (r.grid.layout, r.grid.height, r.grid.skip) == ("tokens", 14, 1)
    net = pixel_model(vit, cnnlens.model_info(vit).preprocessing)
    with cnnlens.capture(vit, r.layer, detach=False, clone=False) as cap:
        xi = x.clone().requires_grad_(True)
        score = net(xi)[0, int(r.targets[0])]
        act = cap[r.layer]
        (g,) = torch.autograd.grad(score, act)
    a = act.detach()[:, 1:].transpose(1, 2).reshape(1, 768, 14, 14)
    g = g[:, 1:].transpose(1, 2).reshape(1, 768, 14, 14)
    cam = F.relu((g.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True))
    ref = F.interpolate(cam, size=(224, 224), mode="bilinear", align_corners=False)[:, 0]
    assert float(ref.max()) > 0
    torch.testing.assert_close(r.maps, ref, rtol=1e-4, atol=1e-6 * float(ref.max()))
    swin = cnnlens.create_model("swin_t", seed=0)
    s = attribute(swin, x, ["gradcam", "gradcam++"], progress=False)
    assert s.layer == "permute" and s.grid.height == 7 and float(s.maps.max()) > 0  # type: ignore[union-attr]
    # swin's last stage is channels last: read directly, it is the same map
    d = attribute(swin, x, "gradcam", layer="norm", progress=False)
    assert d.grid.layout == "nhwc"  # type: ignore[union-attr]
    torch.testing.assert_close(d.maps, s.maps, rtol=1e-4, atol=1e-6 * float(s.maps.max()))


def test_default_layer_of_a_vit_is_the_last_token_layer_that_reaches_the_head() -> None:
    vit = cnnlens.create_model("vit_b_32", seed=0)  # the head is zeros at init: the rule must not need it
    prep = cnnlens.model_info(vit).preprocessing
    assert attribution_layer(vit, pixel_model(vit, prep), prep) == "encoder.layers.encoder_layer_11.ln_1"


def test_targets_top_names_indices_logits_and_per_image(resnet18: nn.Module) -> None:
    assert resolve_targets("top", resnet18) == [None]
    assert resolve_targets("tabby", resnet18) == [281] == resolve_targets("Tabby", resnet18) == resolve_targets("logits:tabby", resnet18)
    assert resolve_targets(["281", 3, "top"], resnet18) == [281, 3, None]
    assert resolve_targets(torch.tensor([1, 2]), resnet18) == [1, 2]
    x = _images(3)
    r = attribute(resnet18, x, "saliency", target=["tabby", "top", 7], progress=False)
    with torch.no_grad():
        top = pixel_model(resnet18, cnnlens.model_info(resnet18).preprocessing)(x).argmax(1)
    assert r.targets.tolist() == [281, int(top[1]), 7] and r.target_given == [True, False, True]
    assert r.target_names[0] == "tabby" and r.predicted_names[1] == r.target_names[1]
    torch.testing.assert_close(r.target_probability, r.probabilities[torch.arange(3), r.targets])
    with pytest.raises(CnnlensError, match=r"target: unknown class 'tabbby' \(did you mean: tabby"):
        resolve_targets("tabbby", resnet18)
    with pytest.raises(CnnlensError, match="out of range, the model has classes 0..999"):
        resolve_targets(1000, resnet18)
    with pytest.raises(CnnlensError, match="target has 2 entries for 3 images"):
        attribute(resnet18, x, "saliency", target=[1, 2], progress=False)
    with pytest.raises(CnnlensError, match="target .* is a layer"):
        resolve_targets("layer4:3", resnet18)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "gradcom"}, r"method: unknown method 'gradcom' \(did you mean: gradcam"),
        ({"method": []}, "method is empty"),
        ({"ig_steps": 0}, "ig_steps must be >= 1"),
        ({"smoothgrad_noise": float("nan")}, "smoothgrad_noise must be a finite number"),
        ({"smoothgrad_samples": 2.5}, "smoothgrad_samples must be an integer"),
        ({"occlusion_window": 100, "method": "occlusion"}, "occlusion_window 100 is larger than the 64x64 image"),
        ({"layer": "layer9"}, r"layer: unknown layer 'layer9' \(did you mean: layer4"),
        ({"layer": "fc"}, r"layer fc outputs \(1, 1000\), which has no spatial positions"),
        ({"layer": "layer1.0.relu"}, "runs 2 times in one forward pass"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"faithfulness_steps": 0}, "faithfulness_steps must be >= 1"),
    ],
)
def test_bad_arguments_are_one_line_naming_the_parameter(resnet18: nn.Module, kwargs: dict, message: str) -> None:
    before = model_state(resnet18)
    with pytest.raises(CnnlensError, match=message) as info:
        knobs = {k: kwargs.pop(k) for k in list(kwargs) if k in AttributionSettings.__dataclass_fields__}
        attribute(resnet18, _images(1), **{"method": "gradcam", **kwargs}, settings=AttributionSettings(**knobs), progress=False)
    assert "\n" not in str(info.value)
    assert model_state(resnet18) == before


def test_models_without_spatial_layers_get_pixel_methods_and_a_clear_refusal() -> None:
    mlp = cnnlens.create_model("mlp-mnist", seed=0)
    r = attribute(mlp, _images(1, 28, channels=1), ["saliency", "integrated-gradients"], settings=AttributionSettings(ig_steps=4), progress=False)
    assert r.maps.shape == (1, 28, 28) and r.layer is None
    with pytest.raises(CnnlensError, match="mlp-mnist has no layer with a spatial output; use saliency"):
        attribute(mlp, _images(1, 28, channels=1), "gradcam", progress=False)
    with pytest.raises(CnnlensError, match="64-channel tensors, not images"):
        attribute(cnnlens.create_model("three-3x3", seed=0), _images(1), "saliency", progress=False)


@pytest.mark.parametrize("name", ["lenet5", "mnist-cnn"])
def test_grey_models_take_colour_images(name: str) -> None:
    model = cnnlens.create_model(name, seed=0)
    side = cnnlens.model_info(model).preprocessing.input_size[-1]
    r = attribute(model, _images(2, 40), ["gradcam", "guided-gradcam", "occlusion", "smoothgrad"], settings=AttributionSettings(smoothgrad_samples=2, fit="crop"), progress=False)
    assert r.images.shape == (2, 1, side, side) and r.maps.shape == (2, side, side)
    assert all(torch.isfinite(m).all() for m in r.by_method.values())


def test_the_model_is_left_as_it_was_also_in_train_mode() -> None:
    model = cnnlens.create_model("resnet18", seed=0).train()
    before = model_state(model)
    attribute(model, _images(2, 64), ["gradcam", "guided-gradcam", "integrated-gradients", "occlusion", "smoothgrad"], settings=AttributionSettings(ig_steps=2, smoothgrad_samples=2), progress=False)
    assert model_state(model) == before and model.training


def test_seed_makes_smoothgrad_repeat(resnet18: nn.Module) -> None:
    x = _images(1, 32)
    a = attribute(resnet18, x, "smoothgrad", seed=1, settings=AttributionSettings(smoothgrad_samples=3), progress=False).maps
    b = attribute(resnet18, x, "smoothgrad", seed=1, settings=AttributionSettings(smoothgrad_samples=3), progress=False).maps
    c = attribute(resnet18, x, "smoothgrad", seed=2, settings=AttributionSettings(smoothgrad_samples=3), progress=False).maps
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_result_protocol(resnet18: nn.Module, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import matplotlib.figure

    r = attribute(resnet18, _images(2), ["gradcam", "integrated-gradients"], settings=AttributionSettings(ig_steps=4), progress=False)
    assert isinstance(r, Attribution) and r.maps.device.type == "cpu" and r.images.shape == (2, 3, 64, 64)
    d = json.loads(json.dumps(jsonable(r.to_dict())))
    assert d["model"] == "resnet18" and d["random_init"] is True and d["layer"] == "layer4"
    assert d["layer_grid"] == {"layout": "nchw", "grid": [2, 2], "skipped_tokens": 0}
    assert d["settings"]["ig_steps"] == 4 and len(d["images"]) == 2
    row = d["images"][0]
    assert row["target_name"] == cnnlens.model_info(resnet18).category(row["target"])
    assert row["maps"]["gradcam"]["max"] == pytest.approx(float(r["gradcam"][0].max()))
    fig = r.figure(0)
    assert isinstance(fig, matplotlib.figure.Figure)
    title = fig._suptitle.get_text()  # type: ignore[union-attr]
    assert "resnet18" in title and "random init" in title and "layer4" in title
    html = r._repr_html_()
    assert "resnet18" in html and "data:image/png;base64" in html
    assert "Attribution(" in repr(r)
    r.save(tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["methods"] == ["gradcam", "integrated-gradients"]
    index = r.save_figures(tmp_path / "maps")
    saved = json.loads(index.read_text())
    assert [row["figure"] for row in saved["images"]] == ["image0.png", "image1.png"]
    assert all((tmp_path / "maps" / n).stat().st_size > 5000 for n in ("image0.png", "image1.png"))
    before = (tmp_path / "maps" / "image0.png").read_bytes()
    with pytest.raises(CnnlensError, match="exists"):
        r.save_figures(tmp_path / "maps")
    assert (tmp_path / "maps" / "image0.png").read_bytes() == before


def test_folders_are_read_in_batches_with_names(resnet18: nn.Module, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cnnlens.images import save_image

    for sub in ("a", "b"):
        for i in range(2):
            save_image(_images(1, 40, seed=i + (sub == "b") * 7)[0], tmp_path / sub / f"x{i}.png")
    r = attribute(resnet18, tmp_path, "gradcam", size=48, settings=AttributionSettings(batch_size=3), progress=False)
    assert [n.split("/")[-2:] for n in r.image_names] == [["a", "x0.png"], ["a", "x1.png"], ["b", "x0.png"], ["b", "x1.png"]]
    assert r.images.shape == (4, 3, 48, 48)
    one = attribute(resnet18, r.images[2:3], "gradcam", progress=False)
    torch.testing.assert_close(one.maps[0], r.maps[2])
    assert figure_names(r.image_names) == ["a_x0.png", "a_x1.png", "b_x0.png", "b_x1.png"]
    assert figure_names(["p/cat.png", "p/dog.jpg"]) == ["cat.png", "dog.png"]


def test_reduce_channels_follows_each_methods_paper() -> None:
    raw = torch.tensor([[[[1.0]], [[-3.0]], [[2.0]]]])
    assert float(reduce_channels("saliency", raw)) == 3.0
    assert float(reduce_channels("integrated-gradients", raw)) == 0.0
    assert float(reduce_channels("occlusion", raw)) == 0.0
    assert float(reduce_channels("gradcam", raw)) == 1.0
