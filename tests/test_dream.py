"""DeepDream: octave pyramid, tiling, seeds, model hygiene, the result, the dream CLI, and a real photo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

import cnnlens
from cnnlens.cli import cli
from conftest import with_options
from cnnlens.errors import CnnlensError
from cnnlens.featvis import DreamResult, DreamSettings, dream
from cnnlens.featvis.dream import octave_sizes, tile_ranges
from cnnlens.featvis.render import activations, number
from cnnlens.images import load_image, save_image
from cnnlens.pixels import Preprocessing
from cnnlens.results import jsonable
from cnnlens.testing import model_state


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def photo(h: int = 40, w: int = 56) -> torch.Tensor:
    return torch.rand(3, h, w, generator=gen(3))


@pytest.fixture(scope="module")
def squeeze_reg() -> nn.Module:
    """squeezenet1_0 from the registry, random init with seed 0 (minimum size 21, class names)."""
    return cnnlens.create_model("squeezenet1_0", seed=0)


def test_octave_sizes_follow_the_scale_and_respect_min_size() -> None:
    assert octave_sizes((300, 451), 4, 1.4) == [(300, 451), (214, 322), (153, 230), (109, 164)]
    # squeezenet's weights say min_size 21: the 5th and 6th octaves (22x22 would be ok, 16x16 not) are dropped
    assert octave_sizes((60, 60), 6, 1.4, (21, 21)) == [(60, 60), (43, 43), (31, 31), (22, 22)]
    assert octave_sizes((60, 60), 3, 1e300) == [(60, 60)]  # the next octave would be 0 pixels
    with pytest.raises(CnnlensError, match="^image \\(16x40\\) is smaller than the model's minimum input 21x21"):
        octave_sizes((16, 40), 2, 1.4, (21, 21))
    with pytest.raises(CnnlensError, match="^octave_scale must be > 1"):
        octave_sizes((100, 100), 3, 0.6)
    with pytest.raises(CnnlensError, match="^octave_scale must be a finite number, not nan"):
        octave_sizes((100, 100), 3, float("nan"))
    with pytest.raises(CnnlensError, match="^octaves must be >= 1"):
        octave_sizes((100, 100), 0, 1.4)


def test_tiles_cover_everything_once() -> None:
    for n, tile, minimum in [(100, 512, 1), (1000, 300, 21), (530, 512, 21), (65, 32, 30)]:
        pieces = tile_ranges(n, tile, minimum)
        assert pieces[0][0] == 0 and pieces[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
        assert all(b - a <= max(tile, n // len(pieces) + 1) and b - a >= min(minimum, n) for a, b in pieces)
    assert tile_ranges(1000, 300, 21) == [(0, 250), (250, 500), (500, 750), (750, 1000)]


def test_dream_keeps_size_repeats_under_seed_and_leaves_model_unchanged(squeeze_random: nn.Module) -> None:
    before = model_state(squeeze_random)
    kw = dict(octaves=2, steps=2, settings=DreamSettings(jitter=4), progress=False)
    a = dream(squeeze_random, photo(), "features.5", seed=0, **kw)
    assert model_state(squeeze_random) == before
    b = dream(squeeze_random, photo(), "features.5", seed=0, **kw)
    c = dream(squeeze_random, photo(), "features.5", seed=1, **kw)
    assert a.image.shape == (3, 40, 56) and a.image.device.type == "cpu"
    assert torch.equal(a.image, b.image) and not torch.equal(a.image, c.image)
    assert 0 <= float(a.image.min()) and float(a.image.max()) <= 1
    assert [s.size for s in a.octaves] == [(29, 40), (40, 56)]
    assert all(s.after > s.before for s in a.octaves) and a.rose_every_octave
    assert not torch.equal(a.image, photo()) and torch.equal(a.original, photo())


def test_dream_leaves_batchnorm_statistics_of_a_training_model() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3)).train()
    stats = model[1].running_mean.clone(), model[1].running_var.clone()
    before = model_state(model)
    dream(model, photo(), "3", octaves=2, steps=2, progress=False)
    activations(model, photo()[None], ["3"])
    assert model_state(model) == before and model.training
    assert torch.equal(model[1].running_mean, stats[0]) and torch.equal(model[1].running_var, stats[1])
    assert int(model[1].num_batches_tracked) == 0


def test_dream_zero_steps_returns_the_photo(squeeze_random: nn.Module) -> None:
    # with no steps the detail stays zero: the output is the photo itself
    out = dream(squeeze_random, photo(), "features.5", octaves=3, steps=0, seed=0, progress=False)
    assert torch.allclose(out.image, photo(), atol=1e-6)


def test_dream_step_size_is_the_mean_pixel_change() -> None:
    # one octave, one step, no jitter, no clipping: mean |x1 - x0| is step_size / 255 (Mordvintsev's normalization)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()).eval()
    x = torch.full((3, 24, 24), 0.5) + 0.01 * torch.randn(3, 24, 24)
    out = dream(model, x, "1", octaves=1, steps=1, settings=DreamSettings(step_size=1.5, jitter=0), preprocessing=Preprocessing(mean=(0, 0, 0), std=(1, 1, 1)), progress=False)
    assert abs(float((out.image - x).abs().mean()) - 1.5 / 255) < 1e-5


def test_tiled_dream_equals_whole_image_for_a_pointwise_model() -> None:
    # with 1x1 convolutions every pixel's gradient is local, so tiles must give exactly the whole-image result
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 8, 1)).eval()
    kw = dict(octaves=2, steps=3, progress=False)
    whole = dream(model, photo(48, 64), "2", settings=DreamSettings(jitter=5, tile_size=512), seed=0, **kw)
    tiled = dream(model, photo(48, 64), "2", settings=DreamSettings(jitter=5, tile_size=20), seed=0, **kw)
    assert torch.allclose(whole.image, tiled.image, atol=1e-5)


def test_dream_units_and_errors(squeeze_reg: nn.Module) -> None:
    before = model_state(squeeze_reg)
    out = dream(squeeze_reg, photo(), unit="features.7:3", octaves=1, steps=3, settings=DreamSettings(step_size=8, jitter=0), progress=False)
    assert out.octaves[0].after > out.octaves[0].before and out.layers == ["features.7"]
    with torch.no_grad():
        a = activations(squeeze_reg, out.image[None], ["features.7"])["features.7"]
    assert out.octaves[0].after == pytest.approx(float(a[0, 3].mean()), rel=1e-5)
    cls = dream(squeeze_reg, photo(), unit="logits:flamingo", octaves=1, steps=1, progress=False)
    assert str(cls.unit) == "logits:130" and cls.unit.name == "flamingo" and cls.layers == ["logits"]
    assert cls.to_dict()["class_name"] == "flamingo"
    cases = [
        ({"layers": "features.77"}, "^layers: unknown layer 'features.77' \\(did you mean: features.7"),
        ({"unit": "features.5:4000"}, "^unit: channel 4000 out of range, features.5 has channels 0..255"),
        ({"unit": "logits:flamingoo"}, "^unit: unknown class 'flamingoo' \\(did you mean: flamingo"),
        ({"unit": "features.5:1@2,2"}, "^unit features.5:1@2,2: dream amplifies a layer"),
        ({"unit": "features.5:1", "layers": ["features.5"]}, "^unit: give layers or a unit, not both"),
        ({"step_size": float("nan")}, "^step_size must be a finite number, not nan"),
        ({"step_size": -1.0}, "^step_size must be > 0"),
        ({"step_size": 1e300}, "^step_size must be <= 255"),
        ({"octave_scale": float("nan")}, "^octave_scale must be a finite number, not nan"),
        ({"octave_scale": 1.0}, "^octave_scale must be > 1"),
        ({"octaves": 0}, "^octaves must be >= 1"),
        ({"steps": -1}, "^steps must be >= 0"),
        ({"jitter": -1}, "^jitter must be >= 0"),
        ({"size": 10}, "^size must be >= 21"),
        ({"size": 10**6}, "^size must be <= 4096"),
        ({"tile_size": 4}, "^tile_size must be >= 21"),
    ]
    for kw, message in cases:
        with pytest.raises(CnnlensError, match=message):
            knobs = DreamSettings(**{k: kw.pop(k) for k in list(kw) if k in DreamSettings.__dataclass_fields__})
            dream(squeeze_reg, photo(), **{"steps": 1, "progress": False, "settings": knobs, **kw})
    with pytest.raises(CnnlensError, match="^image: dream takes one image"):
        dream(squeeze_reg, torch.rand(2, 3, 30, 30), progress=False)
    with pytest.raises(CnnlensError, match="^image \\(16x30\\) is smaller than the model's minimum input 21x21"):
        dream(squeeze_reg, torch.rand(3, 16, 30), progress=False)
    with pytest.raises(CnnlensError, match="must be pixels in \\[0, 1\\]"):
        dream(squeeze_reg, photo() * 255, progress=False)
    assert model_state(squeeze_reg) == before


def test_dream_refuses_a_non_finite_gradient_instead_of_a_black_image() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()
    with torch.no_grad():
        model[0].weight.fill_(float("nan"))
    with pytest.raises(CnnlensError, match="is not finite at octave 40x56"):
        dream(model, photo(), "1", octaves=1, steps=1, progress=False)


def test_default_dream_layers_come_from_the_registry(squeeze_reg: nn.Module) -> None:
    assert cnnlens.default_layers(squeeze_reg, "dream") == ["features.9"]
    out = dream(squeeze_reg, photo(), octaves=1, steps=1, progress=False)
    assert out.layers == ["features.9"]
    tiny = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3))
    assert dream(tiny, photo(), octaves=1, steps=0, progress=False).layers == ["3"]  # the conv at 2 * n // 3 of n convs


@pytest.mark.parametrize("name", ["lenet5", "mnist-cnn"])
def test_dream_grey_models(name: str) -> None:
    model = cnnlens.create_model(name, seed=0)
    side = cnnlens.model_info(model).preprocessing.input_size[-1]
    out = dream(model, photo(48, 64), octaves=2, steps=2, seed=0, progress=False)
    assert out.image.shape == (1, 48, 64) and out.original.shape == (1, 48, 64)
    grey = (photo(48, 64) * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True)
    assert torch.allclose(out.original, grey, atol=1e-6)  # the photo in the model's grey (ITU-R 601 luma)
    # a class of a model that takes one input size: each octave is resized to it for the forward pass
    cls = dream(model, photo(48, 64), unit="logits:3", octaves=2, steps=2, seed=0, progress=False)
    assert cls.image.shape == (1, 48, 64) and cls.octaves[-1].size == (48, 64)
    with pytest.raises(CnnlensError, match=f"^size must be >= {side}"):
        dream(model, photo(48, 64), size=side - 1, progress=False)


def test_dream_result_dict_figure_and_repr(squeeze_reg: nn.Module) -> None:
    out = dream(squeeze_reg, photo(), octaves=2, steps=1, seed=0, progress=False)
    assert isinstance(out, DreamResult)
    d = out.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["model"] == "squeezenet1_0" and d["weights"] == "random init, seed 0" and d["layers"] == ["features.9"]
    assert d["octave_sizes"] == [[29, 40], [40, 56]] and d["image_size"] == [40, 56]
    assert [o["after"] for o in d["octave_objectives"]] == [s.after for s in out.octaves]
    assert d["rose_every_octave"] == all(s.after > s.before for s in out.octaves)
    fig = out.figure()
    try:
        title = fig._suptitle.get_text()
        assert "squeezenet1_0 (random init, seed 0)" in title and "features.9" in title
        assert [ax.get_title() for ax in fig.axes] == ["original, 40x56 px", "dream, layer features.9"]
        assert f"{number(out.octaves[0].before)} -> {number(out.octaves[0].after)}" in "".join(t.get_text() for t in fig.texts)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    assert "features.9" in repr(out) and "<img src='data:image/png;base64," in out._repr_html_()


# ---------------------------------------------------------------- CLI


def run(args: list[object]) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_dream_cli(tmp_path: Path, squeeze_reg: nn.Module) -> None:
    src = save_image(photo(36, 50), tmp_path / "p.png")
    out, fig = tmp_path / "d.png", tmp_path / "fig.png"
    args = ["dream", src, "-w", "none", "--octaves", 2, "--steps", 1, "--image", out, "-o", fig, "--json", "--device", "cpu"]
    result = run(args)
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    api = dream(squeeze_reg, load_image(src), octaves=2, steps=1, seed=0, progress=False)
    assert info == jsonable(api.to_dict())  # --json prints exactly the result's to_dict()
    assert info["layers"] == ["features.9"] and info["octave_sizes"] == [[26, 36], [36, 50]]
    assert load_image(out).shape == (3, 36, 50)  # --image is the dreamed image at the photo's size
    assert torch.allclose(load_image(out), api.image, atol=1 / 255 + 1e-6)
    assert load_image(fig).shape[-1] > 300  # -o: the photo beside the dream (the figure)
    again = run(args)
    assert again.exit_code == 2 and "exists" in again.output
    text = run(["dream", src, "-w", "none", "--octaves", 2, "--steps", 1, "--image", tmp_path / "t.png"])
    assert text.exit_code == 0 and text.stdout.startswith("octave 26x36: objective ")


@pytest.mark.parametrize(
    "args,message",
    [
        (["--image", "out.xyz"], "Error: --image out.xyz: unknown suffix '.xyz'"),
        (["--image", "out.pdf"], "Error: --image out.pdf: unknown suffix '.pdf'"),
        (["-o", "fig.xyz"], "Error: --output fig.xyz: unknown suffix '.xyz'"),
        (["--image", "same.png", "-o", "same.png"], "are the same file"),
        (["-o", "existing.png"], "exists"),
        (["--step-size", "nan"], "Error: --step-size must be a finite number, not nan"),
        (["--step-size", "-1"], "Error: --step-size must be > 0"),
        (["--octave-scale", "nan"], "Error: --octave-scale must be a finite number, not nan"),
        (["--octave-scale", "0.6"], "Error: --octave-scale must be > 1"),
        (["--octaves", "0"], "Error: --octaves must be >= 1"),
        (["--steps", "-1"], "Error: --steps must be >= 0"),
        (["--jitter", "-5"], "Error: --jitter must be >= 0"),
        (["--size", "5"], "Error: --size must be >= 21"),
        (["--size", "100000"], "Error: --size must be <= 4096"),
        (["--tile-size", "3"], "Error: --tile-size must be >= 21"),
        (["-u", "features.99"], "Error: --unit: unknown layer 'features.99' (did you mean: features.9"),
        (["-u", "features.9:9999"], "Error: --unit: channel 9999 out of range"),
        (["-u", "features.9:1@1,1"], "dream amplifies a layer, a channel or a class"),
        (["-u", "logits:flamingoo"], "Error: --unit: unknown class 'flamingoo' (did you mean: flamingo"),
        (["-u", "features.9:1", "-u", "features.9"], "Error: --unit: give layers (repeat -u LAYER) or one LAYER:CHANNEL or logits:CLASS, not both"),
        (["-m", "squeezenet9"], "Error: unknown model 'squeezenet9'"),
    ],
)
def test_dream_cli_bad_input_one_line_nothing_written(args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    save_image(photo(36, 50), tmp_path / "p.png")
    (tmp_path / "existing.png").write_bytes(b"keep me")
    result = run(with_options(["dream", "p.png", "-w", "none", "--steps", "1"], args))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.png", "p.png"]
    assert (tmp_path / "existing.png").read_bytes() == b"keep me"


NAN_NET = '''
import torch
import torch.nn as nn


class NanNet(nn.Module):
    """A CNN whose activations are NaN."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        with torch.no_grad():
            self.conv.weight.fill_(float("nan"))

    def forward(self, x):
        return self.conv(x).mean((2, 3))
'''


def test_dream_cli_never_writes_a_nan_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    save_image(photo(36, 50), tmp_path / "p.png")
    (tmp_path / "nan.py").write_text(NAN_NET)
    result = run(["dream", "p.png", "-m", "nan.py:NanNet", "-w", "none", "-u", "conv", "--steps", 1, "-o", "d.png"])
    last = result.output.strip().splitlines()[-1]  # after the progress lines (stderr is not a terminal here)
    assert result.exit_code == 2 and last.startswith("Error: the gradient of conv L2 is not finite at octave"), result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "d.png").exists()


def test_dream_cli_missing_image_and_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = run(["dream", tmp_path / "nope.png", "-w", "none", "-o", tmp_path / "d.png"])
    assert missing.exit_code == 2 and "image not found" in missing.output
    # the default weights are not cached and cannot be downloaded: one line that says what to do
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    src = save_image(photo(36, 50), tmp_path / "p.png")
    result = run(["dream", src, "-o", tmp_path / "d.png"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output  # no "Downloading: ..." line before it
    assert lines[0].startswith("Error: --weights SqueezeNet1_0_Weights.IMAGENET1K_V1 are not cached") and "weights file" in lines[0]
    assert not (tmp_path / "d.png").exists()


# ---------------------------------------------------------------- a real photo (trained weights)


def test_dream_real_photo_raises_activation_every_octave(squeezenet_trained: nn.Module, data: Path) -> None:
    image = data / "photos/chelsea.png"
    before = model_state(squeezenet_trained)
    out = dream(squeezenet_trained, image, "features.9", size=56, octaves=3, steps=3, seed=0, progress=False)
    assert model_state(squeezenet_trained) == before
    assert out.image.shape == (3, 56, 84) and out.original.shape == out.image.shape
    assert [s.size for s in out.octaves] == [(29, 43), (40, 60), (56, 84)]
    for s in out.octaves:
        assert s.after > 1.2 * s.before, s
    again = dream(squeezenet_trained, load_image(image, 56), "features.9", octaves=3, steps=3, seed=0, progress=False)
    assert torch.equal(out.image, again.image)
