"""Reconstruction from activations (Mahendran & Vedaldi): loss against the paper, behaviour, meaning, CLI."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

import cnnlens
from cnnlens.cli import cli
from cnnlens.errors import CnnlensError
from cnnlens.style import invert, reconstruction_loss, total_variation
from cnnlens.testing import model_state


def test_reconstruction_loss_matches_the_paper() -> None:
    g = torch.Generator().manual_seed(0)
    phi, phi0 = torch.randn(2, 7, 5, generator=g, dtype=torch.float64), torch.randn(2, 7, 5, generator=g, dtype=torch.float64)
    a, b = phi.numpy().ravel(), phi0.numpy().ravel()
    expected = sum((x - y) ** 2 for x, y in zip(a, b)) / sum(y**2 for y in b)  # ||phi - phi0||^2 / ||phi0||^2
    assert reconstruction_loss(phi, phi0).item() == pytest.approx(expected, rel=1e-12)
    assert reconstruction_loss(torch.zeros_like(phi0), phi0).item() == pytest.approx(1.0)


def test_invert_objective_is_reconstruction_plus_tv_and_model_is_untouched() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1)).eval()
    before = model_state(net)
    g = torch.Generator().manual_seed(0)
    image, init = torch.rand(3, 20, 20, generator=g), torch.rand(3, 20, 20, generator=g)
    result = invert(net, image, "0", steps=10, tv_weight=0.3, init=init, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    norm = lambda x: (x - 0.5) / 0.25  # noqa: E731
    expected = reconstruction_loss(net[0](norm(init[None])), net[0](norm(image[None]))) + 0.3 * total_variation(init)
    assert result.history[0]["total"] == pytest.approx(expected.item(), rel=1e-5)
    totals = [h["total"] for h in result.history]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(totals, totals[1:]))
    assert totals[-1] < 0.2 * totals[0]
    assert model_state(net) == before
    with pytest.raises(CnnlensError, match="unknown layer"):
        invert(net, image, "9", steps=1)
    assert model_state(net) == before


def test_invert_repeats_under_a_seed() -> None:
    torch.manual_seed(0)
    net = cnnlens.create_model("squeezenet1_0", None)
    image = torch.rand(3, 40, 40)
    a, b = (invert(net, image, "features.3", steps=3, generator=torch.Generator().manual_seed(7)).image for _ in range(2))
    torch.testing.assert_close(a, b)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


@pytest.mark.data
def test_shallow_layers_keep_more_of_the_photo_than_deep_ones(squeezenet_trained: nn.Module, data) -> None:
    image = cnnlens.load_image(data / "imagenet_samples/n02123045_tabby.JPEG", 64)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    shallow = invert(squeezenet_trained, image, "features.1", steps=40, generator=g())
    deep = invert(squeezenet_trained, image, "features.12", steps=40, generator=g())
    noise = torch.rand(image.shape, generator=g())
    assert shallow.history[-1]["reconstruction"] < 0.05
    assert _psnr(shallow.image, image) > 20 > _psnr(noise, image)
    assert _psnr(shallow.image, image) > _psnr(deep.image, image) + 3


def test_cli_invert(tmp_path) -> None:
    from cnnlens.images import save_image

    save_image(torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(0)), tmp_path / "a.png")
    out = tmp_path / "rec.png"
    args = ["invert", str(tmp_path / "a.png"), "--model", "squeezenet1_0", "--weights", "none", "--layer", "features.3",
            "--size", "32", "--steps", "3", "--device", "cpu", "-o", str(out)]
    res = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["layer"] == "features.3" and report["final"]["total"] <= report["initial"]["total"]
    assert cnnlens.load_image(out).shape == (3, 32, 32)
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 2 and "exists" in again.output
    bad = CliRunner().invoke(cli, [*args[:-2], "-o", str(tmp_path / "x.png"), "--layer", "features.33"])
    assert bad.exit_code == 2 and "unknown layer" in bad.output and not (tmp_path / "x.png").exists()
