"""DeepDream: octave pyramid, tiling, seeds, model hygiene, the dream CLI, and a real photo."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

from cnnlens.cli import cli
from cnnlens.errors import CnnlensError
from cnnlens.featvis import default_dream_layer, dream
from cnnlens.featvis.dream import _tiles, octave_sizes
from cnnlens.models import Preprocessing, preprocessing
from cnnlens.testing import model_state


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)



def photo(h: int = 40, w: int = 56) -> torch.Tensor:
    torch.manual_seed(3)
    return torch.rand(3, h, w)


def test_octave_sizes_follow_the_scale_and_respect_min_size() -> None:
    assert octave_sizes((300, 451), 4, 1.4) == [(300, 451), (214, 322), (153, 230), (109, 164)]
    # squeezenet's weights say min_size 21: the 5th and 6th octaves (22x22 would be ok, 16x16 not) are dropped
    assert octave_sizes((60, 60), 6, 1.4, (21, 21)) == [(60, 60), (43, 43), (31, 31), (22, 22)]
    with pytest.raises(CnnlensError, match="smaller than the model's minimum"):
        octave_sizes((16, 40), 2, 1.4, (21, 21))
    with pytest.raises(CnnlensError, match="octave-scale"):
        octave_sizes((100, 100), 3, 0.6)


def test_tiles_cover_everything_once() -> None:
    for n, tile, minimum in [(100, 512, 1), (1000, 300, 21), (530, 512, 21), (65, 32, 30)]:
        pieces = _tiles(n, tile, minimum)
        assert pieces[0][0] == 0 and pieces[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
        assert all(b - a <= max(tile, n // len(pieces) + 1) and b - a >= min(minimum, n) for a, b in pieces)
    assert _tiles(1000, 300, 21) == [(0, 250), (250, 500), (500, 750), (750, 1000)]


def test_dream_keeps_size_repeats_under_seed_and_leaves_model_unchanged(squeeze_random: nn.Module) -> None:
    before = model_state(squeeze_random)
    kw = dict(octaves=2, steps=2, jitter=4)
    a = dream(squeeze_random, photo(), "features.5", generator=gen(0), **kw)
    assert model_state(squeeze_random) == before
    b = dream(squeeze_random, photo(), "features.5", generator=gen(0), **kw)
    c = dream(squeeze_random, photo(), "features.5", generator=gen(1), **kw)
    assert a.image.shape == (3, 40, 56)
    assert torch.equal(a.image, b.image) and not torch.equal(a.image, c.image)
    assert 0 <= float(a.image.min()) and float(a.image.max()) <= 1
    assert [s.size for s in a.octaves] == [(29, 40), (40, 56)]
    assert all(s.after > s.before for s in a.octaves)
    assert not torch.equal(a.image, photo())


def test_dream_zero_steps_returns_the_photo(squeeze_random: nn.Module) -> None:
    # with no steps the detail stays zero: the output is the photo itself
    out = dream(squeeze_random, photo(), "features.5", octaves=3, steps=0, generator=gen(0))
    assert torch.allclose(out.image, photo(), atol=1e-6)


def test_dream_step_size_is_the_mean_pixel_change() -> None:
    # one octave, one step, no jitter, no clipping: mean |x1 - x0| is step_size / 255 (Mordvintsev's normalization)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()).eval()
    x = torch.full((3, 24, 24), 0.5) + 0.01 * torch.randn(3, 24, 24)
    out = dream(model, x, "1", octaves=1, steps=1, step_size=1.5, jitter=0, preprocessing=Preprocessing(mean=(0, 0, 0), std=(1, 1, 1)))
    assert abs(float((out.image - x).abs().mean()) - 1.5 / 255) < 1e-5


def test_tiled_dream_equals_whole_image_for_a_pointwise_model() -> None:
    # with 1x1 convolutions every pixel's gradient is local, so tiles must give exactly the whole-image result
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 8, 1)).eval()
    kw = dict(octaves=2, steps=3, jitter=5)
    whole = dream(model, photo(48, 64), "2", tile_size=512, generator=gen(0), **kw)
    tiled = dream(model, photo(48, 64), "2", tile_size=20, generator=gen(0), **kw)
    assert torch.allclose(whole.image, tiled.image, atol=1e-5)


def test_dream_channel_and_errors(squeeze_random: nn.Module) -> None:
    before = model_state(squeeze_random)
    out = dream(squeeze_random, photo(), ["features.5", "features.7"], channel=3, octaves=1, steps=3, step_size=8, jitter=0)
    assert out.octaves[0].after > out.octaves[0].before
    with pytest.raises(CnnlensError, match="unknown layer"):
        dream(squeeze_random, photo(), "features.77")
    assert model_state(squeeze_random) == before
    with pytest.raises(CnnlensError, match="out of range"):  # raised inside a forward/backward with hooks on
        dream(squeeze_random, photo(), "features.5", channel=4000, steps=1)
    assert model_state(squeeze_random) == before
    with pytest.raises(CnnlensError, match="one image"):
        dream(squeeze_random, torch.rand(2, 3, 30, 30), "features.5")


def test_default_dream_layers(squeeze_random: nn.Module) -> None:
    assert default_dream_layer("squeezenet1_0") == ["features.9"]
    tiny = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3))
    assert default_dream_layer("tiny", tiny) == ["3"]  # the conv at index 2 * n // 3 of the n convs
    with pytest.raises(CnnlensError, match="pass --layer"):
        default_dream_layer("tiny")


def test_dream_cli(tmp_path) -> None:
    from cnnlens.images import load_image, save_image

    src = save_image(photo(36, 50), tmp_path / "p.png")
    out = tmp_path / "d.png"
    args = ["dream", str(src), "--weights", "none", "--octaves", "2", "--steps", "1", "-o", str(out), "--json", "--device", "cpu"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["layers"] == ["features.9"] and [o["size"] for o in info["octaves"]] == [[26, 36], [36, 50]]
    assert load_image(out).shape == (3, 36, 50)
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 2 and "exists" in again.output
    missing = CliRunner().invoke(cli, ["dream", str(tmp_path / "nope.png"), "--weights", "none"])
    assert missing.exit_code == 2 and "image not found" in missing.output
    bad = CliRunner().invoke(cli, ["dream", str(src), "--weights", "none", "--layer", "features.99", "-o", str(tmp_path / "e.png")])
    assert bad.exit_code == 2 and "unknown layer" in bad.output


def test_dream_cli_without_weights_says_so(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the default weights are not cached and cannot be downloaded: one line that says what to do
    from cnnlens.images import save_image

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    src = save_image(photo(36, 50), tmp_path / "p.png")
    result = CliRunner().invoke(cli, ["dream", str(src), "-o", str(tmp_path / "d.png")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output  # no "Downloading: ..." line before it
    line = lines[0]
    assert line.startswith("Error: weights SqueezeNet1_0_Weights.IMAGENET1K_V1 are not cached") and "--weights PATH" in line


def test_dream_real_photo_raises_activation_every_octave(squeezenet_trained: nn.Module, data) -> None:
    from cnnlens.images import load_image

    prep = preprocessing("squeezenet1_0")
    image = load_image(data / "photos/chelsea.png", 56)
    before = model_state(squeezenet_trained)
    out = dream(squeezenet_trained, image, "features.9", octaves=3, steps=3, preprocessing=prep, generator=gen(0))
    assert model_state(squeezenet_trained) == before
    assert out.image.shape == image.shape
    assert [s.size for s in out.octaves] == [(29, 43), (40, 60), (56, 84)]
    for s in out.octaves:
        assert s.after > 1.2 * s.before, s
    again = dream(squeezenet_trained, image, "features.9", octaves=3, steps=3, preprocessing=prep, generator=gen(0))
    assert torch.equal(out.image, again.image)
