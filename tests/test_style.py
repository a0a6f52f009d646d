"""Gatys style transfer: losses against the paper's equations, optimizer behaviour, model hygiene, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

import cnnlens
from cnnlens.cli import cli
from cnnlens.errors import CnnlensError
from cnnlens.style import (
    BACKBONES,
    StyleObjective,
    content_loss,
    gram_matrix,
    resolve_layer_alias,
    style_layer_loss,
    stylize,
    total_variation,
    transfer_luminance,
)
from cnnlens.testing import model_state


SQUEEZE = "imagenet/squeezenet1_0_imagenet_deepcompression.pth"


# ---------------------------------------------------------------- reference computations (the paper's equations)
def paper_gram(F: np.ndarray) -> np.ndarray:
    """Gatys et al. 2016 eq. 3: G_ij = sum_k F_ik F_jk, F of shape (N_l, M_l), written as loops."""
    n = F.shape[0]
    G = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            G[i, j] = sum(F[i, k] * F[j, k] for k in range(F.shape[1]))
    return G


def paper_style_layer(F: np.ndarray, S: np.ndarray) -> float:
    """Eq. 4: E_l = 1 / (4 N_l^2 M_l^2) sum_ij (G_ij - A_ij)^2."""
    n, m = F.shape
    return float(((paper_gram(F) - paper_gram(S)) ** 2).sum() / (4 * n**2 * m**2))


def paper_content(F: np.ndarray, P: np.ndarray) -> float:
    """Eq. 1: L_content = 1/2 sum_ij (F_ij - P_ij)^2."""
    return float(0.5 * ((F - P) ** 2).sum())


def paper_tv(x: np.ndarray, beta: float) -> float:
    """Mahendran & Vedaldi eq. 4: sum_ij ((x_{i,j+1} - x_ij)^2 + (x_{i+1,j} - x_ij)^2)^(beta/2), per channel."""
    total, count = 0.0, 0
    c, h, w = x.shape
    for ch in range(c):
        for i in range(h - 1):
            for j in range(w - 1):
                d = (x[ch, i, j + 1] - x[ch, i, j]) ** 2 + (x[ch, i + 1, j] - x[ch, i, j]) ** 2
                total += d ** (beta / 2)
                count += 1
    return total / count


def test_losses_match_the_paper_equations() -> None:
    g = torch.Generator().manual_seed(0)
    F = torch.randn(1, 5, 4, 6, generator=g, dtype=torch.float64)
    S = torch.randn(1, 5, 4, 6, generator=g, dtype=torch.float64)
    n, m = 5, 24
    Fn, Sn = F[0].reshape(n, m).numpy(), S[0].reshape(n, m).numpy()
    # Gram: ours is eq. 3 divided by M_l = H*W
    np.testing.assert_allclose(gram_matrix(F, "none")[0].numpy(), paper_gram(Fn), rtol=1e-12)
    np.testing.assert_allclose(gram_matrix(F)[0].numpy(), paper_gram(Fn) / m, rtol=1e-12)
    np.testing.assert_allclose(gram_matrix(F, "elements")[0].numpy(), paper_gram(Fn) / (n * m), rtol=1e-12)
    # style: ours = 4 E_l; content: ours = 2 L_content / (N M)
    ours = style_layer_loss(F, gram_matrix(S)[0]).item()
    assert ours == pytest.approx(4 * paper_style_layer(Fn, Sn), rel=1e-10)
    assert content_loss(F, S).item() == pytest.approx(2 * paper_content(Fn, Sn) / (n * m), rel=1e-10)
    x = torch.rand(3, 5, 7, generator=g, dtype=torch.float64)
    for beta in (2.0, 1.0):
        assert total_variation(x, beta).item() == pytest.approx(paper_tv(x.numpy(), beta), rel=1e-6)


def test_gram_is_independent_of_image_size() -> None:
    tile = torch.rand(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    small, large = tile.repeat(1, 1, 2, 2), tile.repeat(1, 1, 6, 6)  # the same texture, 9x the area
    torch.testing.assert_close(gram_matrix(small), gram_matrix(large))
    ratio = gram_matrix(large, "none") / gram_matrix(small, "none")
    assert ratio.mean().item() == pytest.approx(9.0)  # the paper's raw Gram grows with the area


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(), nn.LazyLinear(10),
    ).eval()


class Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("the network was not cut after the last loss layer")


def test_objective_equals_hand_computation_and_taps_are_pre_relu() -> None:
    net = small_net()
    net[8] = Boom()  # nothing after the deepest loss layer may run
    g = torch.Generator().manual_seed(0)
    content, style, x = (torch.rand(1, 3, 16, 16, generator=g) for _ in range(3))
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    obj = StyleObjective(
        net, content, [style], content_layer="2", style_layers=["0", "5"], content_weight=2.0, style_weight=30.0,
        style_layer_weights=[0.7, 0.3], tv_weight=5.0, mean=mean, std=std,
    )
    total, terms = obj(x)

    def manual(img: torch.Tensor) -> dict[str, torch.Tensor]:
        h = (img - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        c0 = net[0](h)
        c2 = net[2](torch.relu(c0))
        c5 = net[5](nn.functional.max_pool2d(torch.relu(c2), 2))
        return {"0": c0, "2": c2, "5": c5}

    fx, fc, fs = manual(x), manual(content), manual(style)
    assert fx["2"].min() < 0  # a conv tap sees pre-ReLU values although an in-place ReLU follows it
    ref_style = 0.7 * style_layer_loss(fx["0"], gram_matrix(fs["0"])) + 0.3 * style_layer_loss(fx["5"], gram_matrix(fs["5"]))
    ref_content = content_loss(fx["2"], fc["2"])
    ref_total = 2.0 * ref_content + 30.0 * ref_style + 5.0 * total_variation(x)
    torch.testing.assert_close(terms["style"], ref_style)
    torch.testing.assert_close(terms["content"], ref_content)
    torch.testing.assert_close(total, ref_total)


def test_stylize_is_monotone_and_leaves_the_model_alone() -> None:
    net = torchvision_squeezenet()
    before = model_state(net)
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(3, 48, 48, generator=g), torch.rand(3, 60, 72, generator=g)
    result = stylize(net, content, style, backbone="squeezenet1_0", steps=8)
    totals = [h["total"] for h in result.history]
    assert len(totals) == 9
    assert all(b <= a * (1 + 1e-6) for a, b in zip(totals, totals[1:])), totals
    assert totals[-1] < 0.5 * totals[0]
    assert result.image.shape == (3, 48, 48) and 0 <= result.image.min() and result.image.max() <= 1
    assert model_state(net) == before
    with pytest.raises(CnnlensError, match="unknown layer"):
        stylize(net, content, style, content_layer="features.99", style_layers=["features.1"], steps=1)
    assert model_state(net) == before


def torchvision_squeezenet() -> nn.Module:
    torch.manual_seed(0)
    return cnnlens.create_model("squeezenet1_0", None)


def test_noise_init_repeats_under_a_generator_and_adam_runs() -> None:
    net = torchvision_squeezenet()
    content, style = torch.rand(3, 48, 48), torch.rand(3, 48, 48)
    runs = [
        stylize(net, content, style, backbone="squeezenet1_0", steps=3, init="noise", generator=torch.Generator().manual_seed(5))
        for _ in range(2)
    ]
    torch.testing.assert_close(runs[0].image, runs[1].image)
    adam = stylize(net, content, style, backbone="squeezenet1_0", steps=5, optimizer="adam", lr=0.05)
    assert adam.history[-1]["total"] < adam.history[0]["total"]


def test_blend_targets_are_weighted_grams() -> None:
    net = torchvision_squeezenet()
    g = torch.Generator().manual_seed(2)
    content, s1, s2 = (torch.rand(1, 3, 48, 48, generator=g) for _ in range(3))
    layers = dict(content_layer="features.4", style_layers=["features.1", "features.4"])
    with cnnlens.eval_mode(net):
        blend = StyleObjective(net, content, [s1, s2], style_blend=[1, 3], **layers)
        one = StyleObjective(net, content, [s1], **layers)
        two = StyleObjective(net, content, [s2], **layers)
    for b, a1, a2 in zip(blend.style_targets, one.style_targets, two.style_targets):
        torch.testing.assert_close(b, 0.25 * a1 + 0.75 * a2)
    with pytest.raises(CnnlensError, match="blend"):
        StyleObjective(net, content, [s1, s2], style_blend=[1.0], **layers)


def test_preserve_color_keeps_the_content_chroma() -> None:
    from skimage.color import rgb2yiq

    g = torch.Generator().manual_seed(3)
    content = torch.rand(3, 16, 16, generator=g) * 0.5 + 0.25
    styled = torch.rand(3, 16, 16, generator=g) * 0.5 + 0.25
    out = transfer_luminance(styled, content)
    yiq_out, yiq_c, yiq_s = (rgb2yiq(t.permute(1, 2, 0).double().numpy()) for t in (out, content, styled))
    np.testing.assert_allclose(yiq_out[..., 1:], yiq_c[..., 1:], atol=1e-5)  # chroma from the content
    np.testing.assert_allclose(yiq_out[..., 0], yiq_s[..., 0], atol=1e-5)  # luminance from the result


def test_vgg_aliases_name_the_right_modules() -> None:
    from cnnlens.registry import build_empty

    vgg = build_empty("vgg19")
    spec = BACKBONES["vgg19"]
    assert resolve_layer_alias("vgg19", "relu4_2") == "features.22" == resolve_layer_alias("vgg19", spec.content_layer)
    assert [resolve_layer_alias("vgg19", n) for n in spec.style_layers] == [f"features.{i}" for i in (1, 6, 11, 20, 29)]
    conv = vgg.get_submodule("features.21")
    assert isinstance(conv, nn.Conv2d) and conv.in_channels == conv.out_channels == 512
    assert isinstance(vgg.get_submodule("features.22"), nn.ReLU)
    assert isinstance(vgg.get_submodule(spec.aliases["pool5"]), nn.MaxPool2d)
    assert spec.aliases["pool5"] == "features.36"
    assert resolve_layer_alias("vgg16", "relu5_3") == "features.29"
    for name, spec in BACKBONES.items():  # every default layer exists in its architecture
        model = build_empty(name)
        names = [resolve_layer_alias(name, n) for n in (spec.content_layer, *spec.style_layers, *spec.invert_layers)]
        cnnlens.layers.resolve_layers(model, names)


# ---------------------------------------------------------------- real ImageNet weights
@pytest.mark.data
def test_real_transfer_is_monotone_and_reduces_style_10x_quickly(squeezenet_trained: nn.Module, data) -> None:
    content = cnnlens.load_image(data / "imagenet_samples/n02123045_tabby.JPEG", 64)
    style = cnnlens.load_image(data / "style/starry_night.jpg", 64)
    before = model_state(squeezenet_trained)
    result = stylize(squeezenet_trained, content, style, backbone="squeezenet1_0", steps=60)
    totals = [h["total"] for h in result.history]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(totals, totals[1:]))
    assert result.history[0]["content"] == 0.0 and result.history[-1]["content"] > 0
    assert result.style_reduction >= 10, result.style_reduction
    assert model_state(squeezenet_trained) == before


@pytest.mark.slow
@pytest.mark.data
def test_style_loss_drops_100x_from_content_init(squeezenet_trained: nn.Module, data) -> None:
    """The issue's claim, on the gallery's cat photo with the CLI's default 300 iterations, 64 px.

    Measured 122x (109x after 250 iterations); float32 rounding (a channels-last input, the order of
    a sum) moves the L-BFGS path, and has given 97x to 137x after 250 iterations.
    """
    content = cnnlens.load_image(data / "photos/chelsea.png", 64)
    style = cnnlens.load_image(data / "style/starry_night.jpg", 64)
    result = stylize(squeezenet_trained, content, style, backbone="squeezenet1_0", steps=300)
    totals = [h["total"] for h in result.history]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(totals, totals[1:]))
    assert result.style_reduction >= 100, result.style_reduction


@pytest.mark.data
def test_preserve_color_on_a_real_transfer(mobilenet_trained: nn.Module, data) -> None:
    from skimage.color import rgb2yiq

    content = cnnlens.load_image(data / "imagenet_samples/n02123045_tabby.JPEG", 64)
    style = cnnlens.load_image(data / "style/starry_night.jpg", 64)
    kw = dict(backbone="mobilenet_v2", steps=25)
    plain = stylize(mobilenet_trained, content, style, **kw).image
    kept = stylize(mobilenet_trained, content, style, preserve_color=True, **kw).image

    def chroma(t: torch.Tensor) -> np.ndarray:
        return rgb2yiq(t.permute(1, 2, 0).double().numpy())[..., 1:]

    moved = np.abs(chroma(plain) - chroma(content)).mean()
    stayed = np.abs(chroma(kept) - chroma(content)).mean()
    assert moved > 0.02, moved  # Starry Night's blues change the cat's colours...
    assert stayed < 0.1 * moved, (stayed, moved)  # ...unless the colours are preserved


@pytest.mark.data
def test_blend_lies_between_its_styles(squeezenet_trained: nn.Module, data) -> None:
    content = cnnlens.load_image(data / "imagenet_samples/n02123045_tabby.JPEG", 64)
    s1 = cnnlens.load_image(data / "style/starry_night.jpg", 64)
    s2 = cnnlens.load_image(data / "style/the_scream.jpg", 64)
    kw = dict(backbone="squeezenet1_0", steps=25)
    images = {w: stylize(squeezenet_trained, content, [s1, s2], style_blend=w, **kw).image for w in ((1, 0), (1, 1), (0, 1))}
    spec = BACKBONES["squeezenet1_0"]

    def style_to(image: torch.Tensor, style: torch.Tensor) -> float:
        with cnnlens.eval_mode(squeezenet_trained):
            obj = StyleObjective(squeezenet_trained, content, [style], content_layer=spec.content_layer,
                                 style_layers=spec.style_layers, style_layer_weights=spec.style_layer_weights)
            return obj.terms(image.unsqueeze(0))["style"].item()

    to1 = [style_to(images[w], s1) for w in ((1, 0), (1, 1), (0, 1))]
    to2 = [style_to(images[w], s2) for w in ((1, 0), (1, 1), (0, 1))]
    assert to1[0] < to1[1] < to1[2], to1
    assert to2[0] > to2[1] > to2[2], to2


# ---------------------------------------------------------------- CLI
def test_cli_style_writes_refuses_overwrite_and_reports_json(tmp_path) -> None:
    from cnnlens.images import save_image

    g = torch.Generator().manual_seed(0)
    save_image(torch.rand(3, 40, 48, generator=g), tmp_path / "c.png")
    save_image(torch.rand(3, 40, 40, generator=g), tmp_path / "s1.png")
    save_image(torch.rand(3, 50, 40, generator=g), tmp_path / "s2.png")
    out = tmp_path / "out.png"
    args = ["style", str(tmp_path / "c.png"), str(tmp_path / "s1.png"), str(tmp_path / "s2.png"), "--style-blend", "1,2",
            "--model", "squeezenet1_0", "--weights", "none", "--size", "32", "--steps", "3", "--preserve-color",
            "--device", "cpu", "-o", str(out)]
    runner = CliRunner()
    res = runner.invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["steps"] == 3 and report["final"]["total"] <= report["initial"]["total"]
    assert cnnlens.load_image(out).shape == (3, 32, 38)
    again = runner.invoke(cli, args)
    assert again.exit_code == 2 and "exists" in again.output
    bad = runner.invoke(cli, [*args, "--overwrite", "--style-layer", "features.77", "--content-layer", "features.3"])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1 and "features.7" in bad.output
    blend = runner.invoke(cli, [*args, "--overwrite", "--style-blend", "1"])
    assert blend.exit_code == 2 and "blend" in blend.output


def test_cli_default_vgg19_without_weights_says_what_to_do(tmp_path) -> None:
    from cnnlens.images import save_image
    from cnnlens.models import hub_checkpoint_path, resolve_weights

    if hub_checkpoint_path(resolve_weights("vgg19", "DEFAULT")).is_file():
        pytest.skip("vgg19 weights are cached here")
    save_image(torch.rand(3, 32, 32), tmp_path / "c.png")
    res = CliRunner().invoke(cli, ["style", str(tmp_path / "c.png"), str(tmp_path / "c.png"), "-o", str(tmp_path / "o.png")])
    assert res.exit_code == 2
    line = [l for l in res.output.splitlines() if l.startswith("Error:")]
    assert len(line) == 1 and "--model squeezenet1_0 --weights" in line[0]
    assert not (tmp_path / "o.png").exists()


def test_gram_gradient_equals_autograd_of_the_plain_product_in_both_layouts() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gram_matrix, (x,))
    w = torch.randn(2, 5, 5, generator=g, dtype=torch.float64)
    for layout in (torch.contiguous_format, torch.channels_last):
        xl = x.detach().contiguous(memory_format=layout).requires_grad_(True)
        (ours,) = torch.autograd.grad((gram_matrix(xl) * w).sum(), xl)
        flat = x.reshape(2, 5, 12)
        (plain,) = torch.autograd.grad((torch.bmm(flat, flat.transpose(1, 2)) / 12 * w).sum(), x)
        torch.testing.assert_close(ours, plain, rtol=1e-12, atol=1e-12)


def test_lbfgs_line_search_survives_a_loss_of_1e11(squeezenet_trained: nn.Module, data) -> None:
    # the PyTorch tutorial's weights (style 1e6 with its C·H·W Gram) put the loss near 1e11: in float32
    # the strong-Wolfe cubic interpolation overflowed and proposed NaN pixels within 6 evaluations
    photo = cnnlens.load_image(data / "photos/chelsea.png", 64)
    style = cnnlens.load_image(data / "style/starry_night.jpg", 128)
    layers = ["features.0", "features.3", "features.4", "features.5", "features.7"]
    channels = [96, 128, 128, 256, 256]
    result = stylize(squeezenet_trained, photo, style, content_layer="features.5", style_layers=layers,
                     style_layer_weights=[1e6 / c**2 for c in channels], content_weight=1.0, style_weight=1.0, tv_weight=0.0, steps=12)
    totals = [h["total"] for h in result.history]
    assert totals[0] > 1e11 and all(np.isfinite(totals)) and totals[-1] < totals[0] / 3
    assert result.image.dtype == torch.float32 and torch.isfinite(result.image).all()
