"""Filters: pixel-space first layer, Gabor fit, separability, colour; the `filters` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

import cnnlens
from cnnlens.cli import cli
from cnnlens.testing import model_state
from cnnlens.pixels import Preprocessing
from cnnlens.units import conv_filters, filter_grid, fit_gabor, input_scale, plot_filters, separability


def gabor(size: int, *, theta_deg: float, freq: float, sigma: float, phase: float = 0.3, center=(0.0, 0.0)) -> np.ndarray:
    """An independent Gabor (not skimage's): wave along direction theta from +x (columns) towards +y (rows)."""
    r = np.arange(size) - size // 2 - center[0]
    c = np.arange(size) - size // 2 - center[1]
    y, x = np.meshgrid(r, c, indexing="ij")
    t = math.radians(theta_deg)
    u = x * math.cos(t) + y * math.sin(t)
    return np.exp(-(x**2 + y**2) / (2 * sigma**2)) * np.cos(2 * math.pi * freq * u + phase)


@pytest.mark.parametrize("theta", [0.0, 45.0, 90.0, 135.0])
def test_gabor_fit_recovers_orientation_and_frequency(theta: float) -> None:
    k = gabor(11, theta_deg=theta, freq=0.18, sigma=2.5)
    fit = fit_gabor(np.stack([k, 2 * k, -k])[:, None])  # scale and sign do not matter
    assert np.all(fit.r2 > 0.95)
    assert np.allclose(fit.orientation_deg, theta % 180, atol=6)
    assert np.allclose(fit.frequency, 0.18, atol=0.03)


def test_gabor_fit_off_centre_and_blob() -> None:
    shifted = gabor(7, theta_deg=90, freq=0.22, sigma=1.4, center=(1.0, -1.0))
    blob = gabor(7, theta_deg=0, freq=0.0, sigma=1.5, phase=0.0)
    fit = fit_gabor(np.stack([shifted, blob]))
    assert fit.r2[0] > 0.95 and abs(fit.orientation_deg[0] - 90) <= 6
    assert fit.r2[1] > 0.98 and fit.frequency[1] == 0.0 and math.isnan(fit.orientation_deg[1])


def test_gabor_fit_noise_is_poor_and_small_kernels_are_nan() -> None:
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(64, 3, 7, 7, generator=g)
    assert np.mean(fit_gabor(noise).r2) < 0.25
    assert np.isnan(fit_gabor(torch.randn(4, 8, 1, 1, generator=g)).r2).all()


def test_separability_matches_numpy_svd() -> None:
    g = torch.Generator().manual_seed(1)
    col, row = torch.randn(3, 1, generator=g), torch.randn(1, 3, generator=g)
    w = torch.stack([torch.stack([col @ row, 2 * col @ row]), torch.stack([torch.eye(3), torch.randn(3, 3, generator=g)])])
    sep = separability(w)
    assert sep[0] == pytest.approx(1.0, abs=1e-9)
    mats = w[1].double().numpy()
    s = [np.linalg.svd(m, compute_uv=False) for m in mats]
    expected = sum(v[0] ** 2 for v in s) / sum((v**2).sum() for v in s)
    assert sep[1] == pytest.approx(expected, rel=1e-9)
    assert separability(torch.eye(3).expand(1, 1, 3, 3))[0] == pytest.approx(1 / 3)


def test_first_layer_is_pixel_space_and_colour_is_detected() -> None:
    net = nn.Sequential(nn.Conv2d(3, 2, 9), nn.ReLU(), nn.Conv2d(2, 4, 3))
    edge = torch.from_numpy(gabor(9, theta_deg=30, freq=0.15, sigma=2.0)).float()
    with torch.no_grad():
        net[0].weight[0] = edge.expand(3, 9, 9) * torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)  # grey in pixel space
        net[0].weight[1] = torch.stack([edge.abs(), -edge.abs(), torch.zeros_like(edge)])  # red minus green
    before = model_state(net)
    f = conv_filters(net)
    assert model_state(net) == before
    assert f.layer == "0" and f.first_layer and f.scale == pytest.approx((0.229, 0.224, 0.225))
    assert torch.allclose(f.weight[0, 0], f.weight[0, 2], atol=1e-6)  # divided by std: equal channels
    assert f.filters[0].is_color is False and f.filters[0].color_share < 1e-6
    assert f.filters[1].is_color is True and f.filters[1].color_share > 0.9
    assert abs(f.filters[0].orientation_deg - 30) <= 6 and f.filters[0].gabor_r2 > 0.95
    deep = conv_filters(net, "2")
    assert not deep.first_layer and deep.scale is None and deep.filters[0].is_color is None
    assert torch.equal(deep.weight, net[2].weight.detach())
    d = deep.to_dict()
    assert d["layer"] == "2" and set(d["filters"][0]) >= {"index", "orientation_deg", "frequency", "gabor_r2", "separability", "is_color"}


def test_transform_input_uses_half_scale() -> None:
    import torchvision

    net = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False, transform_input=True).eval()
    assert input_scale(net) == (0.5, 0.5, 0.5)
    f = conv_filters(net)
    assert f.layer == "conv1.conv" and torch.allclose(f.weight, net.conv1.conv.weight.detach() / 0.5)
    prep = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.1, 0.2, 0.4))
    wrapped = cnnlens.Normalized(nn.Sequential(nn.Conv2d(3, 4, 3)), prep)
    assert input_scale(wrapped) == pytest.approx((0.1, 0.2, 0.4))
    f = conv_filters(wrapped)  # layer names are those of the wrapped network
    assert f.layer == "0" and f.scale == pytest.approx((0.1, 0.2, 0.4))
    assert torch.allclose(f.weight, wrapped.model[0].weight.detach() / torch.tensor([0.1, 0.2, 0.4]).view(1, 3, 1, 1))
    other = conv_filters(nn.Sequential(nn.Conv2d(3, 4, 3)), preprocessing=prep)  # the one keyword for normalization
    assert other.scale == pytest.approx((0.1, 0.2, 0.4))


def test_grey_model_first_layer_is_pixel_space() -> None:
    model = cnnlens.create_model("lenet5", seed=0)
    f = conv_filters(model)
    assert f.layer == "0" and f.first_layer and f.scale == (1.0,) and tuple(f.weight.shape) == (6, 1, 5, 5)
    assert torch.equal(f.weight, model[0].weight.detach())  # std 1: pixel space is the raw weight
    assert all(x.is_color is None for x in f.filters)
    d = f.to_dict()
    assert d["model"] == "lenet5" and d["random_init"] and d["weights"] == "random init, seed 0" and d["color_filters"] is None
    grid, order, inputs = filter_grid(f)
    assert order == list(range(6)) and inputs is None and grid.shape[-1] == 3


def test_non_conv_layer_is_one_line_error() -> None:
    net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU())
    with pytest.raises(cnnlens.CnnlensError, match="not a 2-d convolution") as err:
        conv_filters(net, "1")
    assert err.value.param == "layer"
    with pytest.raises(cnnlens.CnnlensError, match="unknown layer"):
        conv_filters(net, "nope")
    with pytest.raises(cnnlens.CnnlensError, match="mlp-mnist has no Conv2d layer"):
        conv_filters(cnnlens.create_model("mlp-mnist", seed=0))


def test_plots_are_figures_with_expected_grids() -> None:
    net = nn.Sequential(nn.Conv2d(3, 6, 5), nn.ReLU(), nn.Conv2d(6, 5, 3))
    grid, order, inputs = filter_grid(conv_filters(net))
    assert order == list(range(6)) and inputs is None and grid.min() >= 0 and grid.max() <= 1
    grid, order, inputs = filter_grid(conv_filters(net, "2"), max_filters=3, max_inputs=4)
    assert len(order) == 3 and len(inputs) == 4 and grid.shape == (3 * 4 + 1, 4 * 4 + 1, 3)
    norms = net[2].weight.detach().flatten(1).norm(dim=1)
    assert order == torch.argsort(norms, descending=True)[:3].tolist()
    assert plot_filters(conv_filters(net)).axes


def test_result_protocol_names_model_and_random_init(tmp_path) -> None:
    model = cnnlens.create_model("squeezenet1_0", seed=0)
    f = conv_filters(model, "features.3.expand3x3")
    assert isinstance(f, cnnlens.Result) and f.weight.device.type == "cpu"
    title = f.figure(max_filters=4).texts[0].get_text()
    assert "squeezenet1_0 (random init, seed 0)" in title and "features.3.expand3x3" in title
    d = json.loads(json.dumps(f.to_dict()))
    assert d["model"] == "squeezenet1_0" and d["source"] == "torchvision" and d["random_init"] is True
    assert d["shape"] == [64, 16, 3, 3] and not d["pixel_space"] and d["input_scale"] is None
    assert len(d["filters"]) == 64 and d["mean_gabor_r2"] == pytest.approx(np.mean([x["gabor_r2"] for x in d["filters"]]), abs=1e-5)
    text = repr(f)
    assert text.startswith("Filters(model='squeezenet1_0'") and "features.3.expand3x3" in text and len(text) < 200
    html = f._repr_html_()
    assert f"{f.mean_gabor_r2:.4g}" in html and "data:image/png;base64," in html
    assert f.save(tmp_path / "f.json").read_text().startswith("{")
    assert f.save(tmp_path / "f.png").stat().st_size > 5_000


@pytest.mark.data
def test_trained_squeezenet_filters_are_gabors_random_init_is_not(squeezenet_trained: nn.Module) -> None:
    """Trained first-layer filters fit Gabors far better than random init."""
    trained = conv_filters(squeezenet_trained).to_dict()
    assert trained["weights"] == "squeezenet1_0_imagenet_deepcompression.pth" and not trained["random_init"]
    random = conv_filters(cnnlens.create_model("squeezenet1_0", seed=0)).to_dict()  # = `cnnlens filters squeezenet1_0 -w none`
    print(f"mean Gabor R^2: trained {trained['mean_gabor_r2']:.3f}, random init {random['mean_gabor_r2']:.3f}")
    assert trained["mean_gabor_r2"] > 0.7
    assert random["mean_gabor_r2"] < 0.25
    assert trained["mean_gabor_r2"] > 3 * random["mean_gabor_r2"]
    colours = sum(f["is_color"] for f in trained["filters"])
    assert 5 <= colours <= 60  # some colour blobs, mostly grey edges
    sep_t = np.mean([f["separability"] for f in trained["filters"]])
    sep_r = np.mean([f["separability"] for f in random["filters"]])
    assert sep_t > sep_r + 0.2


def test_filters_cli(tmp_path) -> None:
    runner = CliRunner()
    out = tmp_path / "f.png"
    res = runner.invoke(cli, ["filters", "squeezenet1_0", "-w", "none", "--json", "-o", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["layer"] == "features.0" and len(data["filters"]) == 96 and data["pixel_space"]
    assert data["weights"] == "random init, seed 0" and data["random_init"] is True
    assert data["mean_gabor_r2"] == pytest.approx(0.1523, abs=5e-4)
    again = json.loads(runner.invoke(cli, ["filters", "squeezenet1_0", "-w", "none", "--json"], catch_exceptions=False).stdout)
    assert again == data  # random init repeats under the default --seed 0
    other = json.loads(runner.invoke(cli, ["filters", "squeezenet1_0", "-w", "none", "--json", "--seed", "1"], catch_exceptions=False).stdout)
    assert other["filters"] != data["filters"] and other["weights"] == "random init, seed 1"
    assert out.stat().st_size > 1000
    before = out.read_bytes()
    res = runner.invoke(cli, ["filters", "squeezenet1_0", "-w", "none", "-o", str(out)])
    assert res.exit_code == 2 and "exists" in res.output and len(res.output.strip().splitlines()) == 1
    assert out.read_bytes() == before
    res = runner.invoke(cli, ["filters", "squeezenet1_0", "-w", "none", "--layer", "features.3.expand3x3", "-o", str(out), "--overwrite", "--max-filters", "4"])
    assert res.exit_code == 0, res.output
    assert out.read_bytes() != before
    res = runner.invoke(cli, ["filters", "squeezenet1_0", "-w", "none", "--layer", "features.1", "-o", str(tmp_path / "r.png")])
    assert res.exit_code == 2 and res.output.startswith("Error: --layer 'features.1' is a ReLU") and not (tmp_path / "r.png").exists()
    saved = tmp_path / "f.json"
    res = runner.invoke(cli, ["filters", "squeezenet1_0", "-w", "none", "-o", str(saved)])
    assert res.exit_code == 0 and json.loads(saved.read_text()) == data
    # -w defaults to DEFAULT: offline and uncached it is one line, not a random init
    res = runner.invoke(cli, ["filters", "squeezenet1_0", "-o", str(tmp_path / "d.png")])
    assert res.exit_code == 2 and res.output.startswith("Error: --weights") and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "d.png").exists()


def test_filters_cli_on_every_registry_source(file_model: str) -> None:
    """One model per source with -w none --seed 0; a model without convolution refuses in one line."""
    pytest.importorskip("timm")
    expected = {"squeezenet1_0": ("features.0", 96), "lenet5": ("0", 6), "mnist-cnn": ("conv1", 32), file_model: ("features.0", 8), "timm/resnet18": ("conv1", 64)}
    runner = CliRunner()
    for name, (layer, n) in expected.items():
        res = runner.invoke(cli, ["filters", name, "-w", "none", "--seed", "0", "--json"])
        assert res.exit_code == 0, (name, res.output)
        data = json.loads(res.stdout)
        assert (data["layer"], len(data["filters"]), data["pixel_space"], data["random_init"]) == (layer, n, True, True), name
    res = runner.invoke(cli, ["filters", "mlp-mnist", "-w", "none", "--json"])
    assert res.exit_code == 2 and res.output == "Error: mlp-mnist has no Conv2d layer: filters show the weights of a convolution\n"
