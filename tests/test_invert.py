"""Reconstruction from activations (Mahendran & Vedaldi): loss against the paper, behaviour, meaning, CLI."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

import cnnlens
from cnnlens.cli import cli
from conftest import with_options
from cnnlens.errors import CnnlensError
from cnnlens.pixels import Preprocessing
from cnnlens.style import INVERT_DEFAULTS, InvertSettings, correlation, invert, invert_defaults, layer_stride, reconstruction_loss, total_variation
from cnnlens.testing import model_state


def test_reconstruction_loss_matches_the_paper() -> None:
    g = torch.Generator().manual_seed(0)
    phi, phi0 = torch.randn(2, 7, 5, generator=g, dtype=torch.float64), torch.randn(2, 7, 5, generator=g, dtype=torch.float64)
    a, b = phi.numpy().ravel(), phi0.numpy().ravel()
    expected = sum((x - y) ** 2 for x, y in zip(a, b)) / sum(y**2 for y in b)  # ||phi - phi0||^2 / ||phi0||^2
    assert reconstruction_loss(phi, phi0).item() == pytest.approx(expected, rel=1e-12)
    assert reconstruction_loss(torch.zeros_like(phi0), phi0).item() == pytest.approx(1.0)


def test_correlation_is_pearsons() -> None:
    import numpy as np

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 4, 5, generator=g), torch.randn(3, 4, 5, generator=g)
    assert correlation(a, b) == pytest.approx(float(np.corrcoef(a.numpy().ravel(), b.numpy().ravel())[0, 1]), rel=1e-6)
    assert correlation(a, 2 * a + 1) == pytest.approx(1.0) and correlation(a, torch.zeros_like(a)) == 0.0


def test_invert_objective_is_reconstruction_plus_tv_and_model_is_untouched() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1)).eval()
    before = model_state(net)
    g = torch.Generator().manual_seed(0)
    image, init = torch.rand(3, 20, 20, generator=g), torch.rand(3, 20, 20, generator=g)
    prep = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    result = invert(net, image, "0", steps=10, settings=InvertSettings(tv_weight=0.3, init=init, optimizer="lbfgs"), preprocessing=prep, progress=False)
    norm = lambda x: (x - 0.5) / 0.25  # noqa: E731
    expected = reconstruction_loss(net[0](norm(init[None])), net[0](norm(image[None]))) + 0.3 * total_variation(init)
    assert result.history[0]["total"] == pytest.approx(expected.item(), rel=1e-5)
    totals = [h["total"] for h in result.history]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(totals, totals[1:])) and result.total_never_rose
    assert totals[-1] < 0.2 * totals[0]
    final = reconstruction_loss(net[0](norm(result.image[None])), net[0](norm(image[None]))).item()
    assert result.reconstruction == pytest.approx(final, rel=1e-4)
    assert result.pixel_correlation == pytest.approx(correlation(result.image, image), rel=1e-6)
    assert model_state(net) == before
    with pytest.raises(CnnlensError, match="layer: unknown layer '9'"):
        invert(net, image, "9", steps=1, progress=False)
    with pytest.raises(CnnlensError, match="jitter needs the adam optimizer"):
        invert(net, image, "0", steps=1, settings=InvertSettings(optimizer="lbfgs", jitter=2), progress=False)
    assert model_state(net) == before


def test_adam_with_jitter_repeats_under_a_seed_and_defaults_follow_the_optimizer() -> None:
    net = cnnlens.create_model("squeezenet1_0", seed=0)
    image = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(1))
    runs = [invert(net, image, "features.3", steps=4, seed=s, progress=False) for s in (7, 7, 8)]
    torch.testing.assert_close(runs[0].image, runs[1].image, rtol=0, atol=0)
    assert (runs[2].image - runs[0].image).abs().max() > 1e-3
    stride = runs[0].settings["stride"]  # 40 px in, 8x8 out of fire2
    assert stride == 5.0 and runs[0].settings == {"steps": 4, "optimizer": "adam", "lr": 0.05, "tv_weight": 15.0, "beta": 2.0,
                                                  "jitter": 0, "init": "noise", "stride": 5.0}
    assert invert_defaults("adam", 16.0) == {"steps": 300, "lr": 0.05, "tv_weight": 48.0, "jitter": 2}
    jittered = [invert(net, image, "features.3", steps=4, settings=InvertSettings(jitter=3), seed=7, progress=False)
                for _ in range(2)]
    torch.testing.assert_close(jittered[0].image, jittered[1].image, rtol=0, atol=0)
    assert (jittered[0].image - runs[0].image).abs().max() > 1e-4
    lbfgs = invert(net, image, "features.3", settings=InvertSettings(optimizer="lbfgs"), steps=2, progress=False)
    assert lbfgs.settings["jitter"] == 0 and lbfgs.settings["tv_weight"] == INVERT_DEFAULTS["lbfgs"]["tv_weight"]


def test_result_protocol_default_layer_and_correlations_at_several_depths(tmp_path) -> None:
    import matplotlib

    net = cnnlens.create_model("squeezenet1_0", seed=0)
    result = invert(net, torch.rand(3, 48, 40), size=32, steps=2, progress=False)
    assert result.layer == "features.7"  # the middle of the registry's inversion layers
    assert list(result.correlations) == ["features.1", "features.4", "features.7", "features.10", "features.12"]
    assert result.feature_correlation == result.correlations["features.7"]
    d = result.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["weights"] == "random init, seed 0" and d["size"] == [38, 32] and d["layer"] == "features.7"
    fig = result.figure()
    assert isinstance(fig, matplotlib.figure.Figure) and [ax.get_title() for ax in fig.axes] == ["original: image", "inversion from features.7"]
    title = fig._suptitle.get_text()
    assert "features.7" in title and "squeezenet1_0 (random init, seed 0)" in title and "correlation" in title
    assert "pixel_correlation" in result._repr_html_() and result.original.shape == result.image.shape == (3, 38, 32)


def test_grey_model_and_a_model_without_a_table() -> None:
    lenet = cnnlens.create_model("mnist-cnn", seed=0)
    result = invert(lenet, torch.rand(3, 28, 28), steps=2, progress=False)
    assert result.layer == "conv2" and result.image.shape == (1, 28, 28) and result.original.shape == (1, 28, 28)
    with pytest.raises(CnnlensError, match="size must be >= 28"):
        invert(lenet, torch.rand(3, 28, 28), size=20, steps=1, progress=False)
    mlp = cnnlens.create_model("mlp-mnist", seed=0)
    with pytest.raises(CnnlensError, match="layer: no default invert layers for mlp-mnist"):
        invert(mlp, torch.rand(1, 28, 28), steps=1, progress=False)


def test_layer_stride() -> None:
    assert layer_stride((3, 160, 240), (1, 96, 80, 120)) == 2.0
    assert layer_stride((1, 3, 64, 64), (1, 512, 4, 4)) == 16.0
    assert layer_stride((1, 28, 28), (1, 10)) == 28.0  # no spatial extent: the whole image


def test_half_precision_model_works_and_returns_float_pixels() -> None:
    net = cnnlens.create_model("squeezenet1_0", seed=0).half()
    result = invert(net, torch.rand(3, 32, 32), "features.4", steps=3, progress=False)
    assert result.image.dtype == torch.float32 and torch.isfinite(result.image).all()
    assert result.history[-1]["reconstruction"] < result.history[0]["reconstruction"]
    assert all(p.dtype == torch.float16 for p in net.parameters())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(tv_weight=float("nan")), "tv_weight must be a finite number"),
        (dict(tv_weight=-1.0), "tv_weight must be >= 0"),
        (dict(beta=0.5), "beta must be >= 1"),
        (dict(beta=float("nan")), "beta must be a finite number"),
        (dict(lr=-0.1), "lr must be > 0"),
        (dict(steps=-1), "steps must be >= 0"),
        (dict(jitter=-2), "jitter must be >= 0"),
        (dict(size=10), "size must be >= 21"),
        (dict(size=10**6), "size must be <= 4096"),
        (dict(optimizer="sgd"), "optimizer must be one of adam, lbfgs"),
    ],
)
def test_bad_numbers_are_refused_before_any_work(kwargs, message) -> None:
    net = cnnlens.create_model("squeezenet1_0", seed=0)
    calls = []
    with pytest.raises(CnnlensError, match=message) as info:
        knobs = InvertSettings(**{k: kwargs.pop(k) for k in list(kwargs) if k in InvertSettings.__dataclass_fields__})
        invert(net, torch.rand(3, 32, 32), "features.3", steps=kwargs.pop("steps", 1), settings=knobs, callback=calls.append, progress=False, **kwargs)
    assert not calls and info.value.param == message.split()[0]


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


@pytest.mark.data
def test_shallow_layers_keep_more_of_the_photo_than_deep_ones(squeezenet_trained: nn.Module, data) -> None:
    image = cnnlens.load_image(data / "imagenet_samples/n02123045_tabby.JPEG", 64)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    shallow = invert(squeezenet_trained, image, "features.1", settings=InvertSettings(optimizer="lbfgs"), steps=40, seed=0, progress=False)
    deep = invert(squeezenet_trained, image, "features.12", settings=InvertSettings(optimizer="lbfgs"), steps=40, seed=0, progress=False)
    noise = torch.rand(image.shape, generator=g())
    assert shallow.reconstruction < 0.05
    assert _psnr(shallow.image, image) > 20 > _psnr(noise, image)
    assert _psnr(shallow.image, image) > _psnr(deep.image, image) + 3


@pytest.mark.slow
@pytest.mark.data
def test_defaults_bring_back_structure_from_a_deep_layer(squeezenet_trained: nn.Module, mobilenet_trained: nn.Module, data) -> None:
    """docs/style.md, "Inversion against depth" (chelsea.png, 128 px, features.12 of the ImageNet squeezenet1_0):
    pixel correlation 0.02 with the former defaults (L-BFGS, TV 2), 0.20 with the current ones (Adam, TV 3 x
    stride = 54, jitter 2); features.4 activations 0.38 and 0.46; the activations of an independent network
    (mobilenet_v2 features.14.conv.0) 0.32 and 0.51."""
    photo = data / "photos/chelsea.png"
    judge = "features.14.conv.0"
    prep = cnnlens.model_info(mobilenet_trained).preprocessing

    def judged(x: torch.Tensor) -> torch.Tensor:
        return cnnlens.forward_until(mobilenet_trained, prep.normalize(x[None]), judge)[judge]

    runs = {
        name: invert(squeezenet_trained, photo, "features.12", size=128, seed=0, progress=False, **kw)
        for name, kw in (("former", dict(settings=InvertSettings(optimizer="lbfgs", tv_weight=2.0), steps=200)), ("default", {}))
    }
    pixels = {k: r.pixel_correlation for k, r in runs.items()}
    other = {k: correlation(judged(r.image), judged(r.original)) for k, r in runs.items()}
    assert pixels["former"] < 0.08 and pixels["default"] > 0.15, pixels
    assert other["former"] < 0.4 and other["default"] > 0.42, other
    assert runs["default"].correlations["features.4"] > runs["former"].correlations["features.4"] + 0.04, runs["default"].correlations
    assert runs["default"].feature_correlation > 0.9
    assert runs["default"].settings["jitter"] == 2 and 45 < runs["default"].settings["tv_weight"] < 60


def test_cli_invert(tmp_path) -> None:
    from cnnlens.images import save_image

    save_image(torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(0)), tmp_path / "a.png")
    out = tmp_path / "rec.png"
    args = ["invert", str(tmp_path / "a.png"), "-m", "squeezenet1_0", "-w", "none", "-l", "features.3",
            "--size", "32", "--steps", "3", "--device", "cpu", "-o", str(out), "--image", str(tmp_path / "alone.png")]
    res = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["layer"] == "features.3" and report["weights"] == "random init, seed 0" and report["steps"] == 3
    assert set(report) >= {"reconstruction", "pixel_correlation", "feature_correlation", "correlations", "initial", "final"}
    assert cnnlens.load_image(tmp_path / "alone.png").shape == (3, 32, 32)
    assert cnnlens.load_image(out).shape[2] > 400  # the figure: original beside the inversion
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 2 and "exists" in again.output
    bad = CliRunner().invoke(cli, with_options(args[:-4], ["-o", str(tmp_path / "x.png"), "--layer", "features.33"]))
    assert bad.exit_code == 2 and "Error: --layer: unknown layer 'features.33'" in bad.output and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--tv-weight", "nan", "Error: --tv-weight must be a finite number"),
        ("--tv-weight", "-3", "Error: --tv-weight must be >= 0"),
        ("--beta", "nan", "Error: --beta must be a finite number"),
        ("--beta", "0", "Error: --beta must be >= 1"),
        ("--lr", "0", "Error: --lr must be > 0"),
        ("--steps", "-1", "Error: --steps must be >= 0"),
        ("--jitter", "-1", "Error: --jitter must be >= 0"),
        ("--size", "12", "Error: --size must be >= 28"),
        ("--size", "99999", "Error: --size must be <= 4096"),
        ("-o", "x.xyz", "unknown suffix '.xyz'"),
    ],
)
def test_cli_bad_options_are_one_error_line_and_no_file(tmp_path, option, value, message) -> None:
    from cnnlens.images import save_image

    save_image(torch.rand(3, 28, 28), tmp_path / "d.png")
    value = str(tmp_path / value) if option == "-o" else value
    res = CliRunner().invoke(cli, with_options(["invert", str(tmp_path / "d.png"), "-m", "mnist-cnn", "-w", "none", "--steps", "1"], [option, value]))
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in res.output, res.output
    assert [p.name for p in tmp_path.iterdir()] == ["d.png"]


@pytest.mark.slow
def test_cli_invert_on_every_registry_source_is_seeded(tmp_path) -> None:
    """One model of each source, -w none --seed 0, 32 px, 2 steps: same seed -> same bytes, other seed -> other bytes."""
    from cnnlens.images import save_image

    from test_style import registry_models

    save_image(torch.rand(3, 32, 40, generator=torch.Generator().manual_seed(0)), tmp_path / "a.png")
    runner = CliRunner()
    for model in registry_models(tmp_path):
        outputs = []
        for tag, seed in (("a", "0"), ("b", "0"), ("c", "1")):
            out, alone = tmp_path / f"o{tag}.png", tmp_path / f"i{tag}.png"
            res = runner.invoke(cli, ["invert", str(tmp_path / "a.png"), "-m", model, "-w", "none", "--seed", seed, "--size", "32",
                                      "--steps", "2", "-o", str(out), "--image", str(alone), "--overwrite"])
            assert res.exit_code == 0, (model, res.output)
            outputs.append((out.read_bytes(), alone.read_bytes()))
        assert outputs[0] == outputs[1], model
        assert outputs[2][0] != outputs[0][0] and outputs[2][1] != outputs[0][1], model
