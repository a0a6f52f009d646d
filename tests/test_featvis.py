"""Feature visualization: objectives, parameterizations, transforms, render, its result, and the visualize CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

import cnnlens
from cnnlens.address import parse_unit
from cnnlens.cli import cli
from conftest import with_options
from cnnlens.errors import CnnlensError
from cnnlens.featvis import Recipe, RenderResult, high_frequency_energy, image_grid, redirected_relu, render
from cnnlens.featvis import objectives as O
from cnnlens.featvis import param as P
from cnnlens.featvis import transforms as T
from cnnlens.featvis.render import activations, fixed_input_size
from cnnlens.results import jsonable
from cnnlens.testing import model_state


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def prep_of(model: nn.Module) -> cnnlens.Preprocessing:
    return cnnlens.model_info(model).preprocessing


@pytest.fixture(scope="module")
def squeeze_reg() -> nn.Module:
    """squeezenet1_0 from the registry, random init with seed 0 (so it knows its class names)."""
    return cnnlens.create_model("squeezenet1_0", seed=0)


# ---------------------------------------------------------------- objectives


def fake_acts() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {"a": torch.randn(3, 4, 5, 6), O.LOGITS: torch.randn(3, 10), O.INPUT: torch.rand(3, 3, 8, 8)}


def test_channel_neuron_class_values_match_direct_computation() -> None:
    acts = fake_acts()
    a = acts["a"]
    assert torch.allclose(O.channel("a", 2)(acts), a[:, 2].mean((1, 2)))
    assert torch.allclose(O.neuron("a", 1)(acts), a[:, 1, 2, 3])  # centre of 5x6 is (2, 3)
    assert torch.allclose(O.neuron("a", 1, x=0, y=4)(acts), a[:, 1, 4, 0])
    assert torch.allclose(O.class_logit(7)(acts), acts[O.LOGITS][:, 7])
    assert torch.allclose(O.layer_l2("a")(acts), a.pow(2).mean((1, 2, 3)))
    one = O.channel("a", 2, batch=1)(acts)
    assert one[0] == 0 and one[2] == 0 and torch.isclose(one[1], a[1, 2].mean())


def test_objective_algebra_and_per_item_batches() -> None:
    acts = fake_acts()
    a = acts["a"]
    c0, c3 = a[:, 0].mean((1, 2)), a[:, 3].mean((1, 2))
    combo = 2 * O.channel("a", 0) - O.channel("a", 3) / 4 + 1
    assert torch.allclose(combo(acts), 2 * c0 - c3 / 4 + 1)
    assert torch.allclose((-O.channel("a", 0))(acts), -c0)
    assert torch.allclose(sum([O.channel("a", 0), O.channel("a", 3)])(acts), c0 + c3)
    per_item = O.channels("a", [3, 0, 1])
    assert per_item.batch_size == 3 and per_item.layers == frozenset({"a"})
    expected = torch.stack([a[0, 3].mean(), a[1, 0].mean(), a[2, 1].mean()])
    assert torch.allclose(per_item(acts), expected)
    assert torch.allclose(O.class_logits([4, 5])(acts)[:2], acts[O.LOGITS][[0, 1], [4, 5]])


def test_for_unit_maps_each_address_kind() -> None:
    acts = fake_acts()
    a = acts["a"]
    assert torch.allclose(O.for_unit(parse_unit("a:2"))(acts), a[:, 2].mean((1, 2)))
    assert torch.allclose(O.for_unit(parse_unit("a:1@4,0"))(acts), a[:, 1, 4, 0])
    assert torch.allclose(O.for_unit(parse_unit("a:1@40,50"))(acts), a[:, 1, 4, 5])  # clamped into a smaller output
    assert torch.allclose(O.for_unit(parse_unit("a"))(acts), a.pow(2).mean((1, 2, 3)))
    cls = cnnlens.Unit("logits", 7, name="seven")
    assert torch.allclose(O.for_unit(cls)(acts), acts[O.LOGITS][:, 7]) and O.for_unit(cls).name == "logits:7 (seven)"
    assert O.for_unit(parse_unit("a:2"), batch=1)(acts)[0] == 0
    assert O.unit_label(cnnlens.Unit("logits", 3, name="3")) == "logits:3"  # digit classes: no repeated name
    with pytest.raises(CnnlensError, match="resolve the class name"):
        O.for_unit(parse_unit("logits:flamingo"))


def test_direction_diversity_total_variation() -> None:
    acts = fake_acts()
    a = acts["a"]
    v = torch.tensor([1.0, 0.0, -1.0, 2.0])
    cos = (a * v.view(1, 4, 1, 1)).sum(1) / (a.norm(dim=1) * v.norm())
    assert torch.allclose(O.direction("a", v)(acts), cos.mean((1, 2)), atol=1e-6)
    # diversity: identical items are maximally similar (-1), and it equals minus the mean off-diagonal Gram cosine
    same = {"a": a[:1].repeat(3, 1, 1, 1)}
    assert torch.allclose(O.diversity("a")(same), torch.full((3,), -1.0), atol=1e-5)
    g = torch.einsum("bchw,bdhw->bcd", a, a).reshape(3, -1)
    sims = torch.nn.functional.normalize(g, dim=1) @ torch.nn.functional.normalize(g, dim=1).T
    assert torch.allclose(O.diversity("a")(acts)[0], -(sims[0, 1] + sims[0, 2]) / 2, atol=1e-5)
    x = acts[O.INPUT]
    tv = (x[..., 1:, :] - x[..., :-1, :]).abs().mean((1, 2, 3)) + (x[..., 1:] - x[..., :-1]).abs().mean((1, 2, 3))
    assert torch.allclose(O.total_variation()(acts), -tv)


# ---------------------------------------------------------------- parameterizations and transforms


def test_fft_image_is_seeded_valid_and_low_frequency() -> None:
    with torch.no_grad():
        a, b, c = (P.fft_image(32, batch=2, generator=gen(s), sd=0.5)() for s in (0, 0, 1))
    assert a.shape == (2, 3, 32, 32) and torch.equal(a, b) and not torch.equal(a, c)
    assert 0 < float(a.min()) and float(a.max()) < 1
    noise = P.pixel_image(32, batch=2, generator=gen(0), sd=0.5)().detach()
    # the 1/f amplitude spectrum puts far less power above 0.25 cycles/pixel than white pixel noise (~0.80)
    assert float(high_frequency_energy(noise).mean()) > 0.7
    assert float(high_frequency_energy(a).mean()) < 0.4
    img = P.pixel_image(8, init=torch.full((3, 8, 8), 0.3))()
    assert torch.allclose(img, torch.full_like(img, 0.3), atol=1e-5)
    dec = P.pixel_image(8, init=torch.full((3, 8, 8), 0.3), decorrelate=True)()
    assert torch.allclose(dec, torch.full_like(dec, 0.3), atol=1e-5)


def test_high_frequency_energy_of_known_signals() -> None:
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    slow = torch.sin(2 * math.pi * xx / 16).expand(1, 3, 32, 32)  # 1/16 cycles per pixel
    fast = torch.sin(2 * math.pi * xx * 12 / 32).expand(1, 3, 32, 32)  # 0.375 cycles per pixel
    assert float(high_frequency_energy(slow)) < 1e-6
    assert float(high_frequency_energy(fast)) > 0.999


def test_transforms_shapes_and_seeds() -> None:
    x = torch.rand(2, 3, 40, 40)
    assert T.resize((32, 32))(x, None).shape[-2:] == (32, 32) and T.resize((40, 40))(x, None) is x
    padded = T.pad(12)(x, None)
    assert padded.shape[-1] == 64 and float(padded[0, 0, 0, 0]) == 0.5
    assert T.jitter(8)(x, gen()).shape[-1] == 33
    t = T.compose(T.standard_transforms())
    a, b = t(x, gen(3)), t(x, gen(3))
    assert torch.equal(a, b)
    assert T.random_scale([1.1])(x, gen()).shape[-1] == 44
    assert torch.allclose(T.random_rotate([0])(x, gen()), x)
    # a 90-degree rotation of a 4x4 image by grid_sample equals rot90
    z = torch.arange(16.0).view(1, 1, 4, 4)
    r = T.random_rotate([90])(z, gen())
    assert torch.allclose(r, torch.rot90(z, 1, (2, 3)), atol=1e-4) or torch.allclose(r, torch.rot90(z, -1, (2, 3)), atol=1e-4)


def test_redirected_relu_gradient() -> None:
    x = torch.tensor([[-1.0, -2.0], [-1.0, 3.0]], requires_grad=True)
    y = redirected_relu(x)
    assert torch.equal(y, x.relu())
    # loss gradient: +1 on the first input (would push it lower), -1 on the second (pushes it up)
    (y * torch.tensor([[1.0, -1.0], [1.0, -1.0]])).sum().backward()
    # row 0 is dead: true ReLU gradient all zero -> redirected: keep only the part that raises the input
    # row 1 is alive: the true ReLU gradient
    assert torch.equal(x.grad, torch.tensor([[0.0, -1.0], [0.0, -1.0]]))
    x6 = torch.tensor([[7.0, 8.0]], requires_grad=True)
    (redirected_relu(x6, 6.0) * torch.tensor([[1.0, -1.0]])).sum().backward()
    assert torch.equal(x6.grad, torch.tensor([[1.0, 0.0]]))  # above 6: only the step that lowers it passes


def test_image_grid_layout() -> None:
    imgs = torch.stack([torch.full((3, 4, 5), float(i) / 4) for i in range(5)])
    g = image_grid(imgs, ncols=3, padding=1)
    assert g.shape == (3, 2 * 5 + 1, 3 * 6 + 1)
    assert float(g[0, 1, 1]) == 0.0 and float(g[0, 6, 7]) == 1.0  # item 4 at row 1 col 1
    assert float(g[0, 6, 1]) == 0.75 and float(g[0, 5, 1]) == 1.0  # item 3 at row 1 col 0, white gutter above


# ---------------------------------------------------------------- render mechanics (random init)


def test_render_leaves_model_unchanged_and_repeats(squeeze_random: nn.Module) -> None:
    before = model_state(squeeze_random)
    tensors = [(p.data_ptr(), p.stride()) for p in squeeze_random.parameters()]
    kw = dict(size=48, steps=4)
    a = render(squeeze_random, O.channels("features.9", [0, 5]), **{**kw, "seed": 0})
    assert model_state(squeeze_random) == before
    assert [(p.data_ptr(), p.stride()) for p in squeeze_random.parameters()] == tensors  # channels-last copies undone
    b = render(squeeze_random, O.channels("features.9", [0, 5]), **{**kw, "seed": 0})
    c = render(squeeze_random, O.channels("features.9", [0, 5]), **{**kw, "seed": 1})
    assert a.images.shape == (2, 3, 48, 48) and a.values.shape == (2,)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert 0 <= float(a.images.min()) and float(a.images.max()) <= 1
    assert all(p.grad is None for p in squeeze_random.parameters())
    assert any(getattr(m, "inplace", False) for m in squeeze_random.modules())  # in-place flags restored


def test_render_raises_cleanly(squeeze_random: nn.Module) -> None:
    before = model_state(squeeze_random)
    with pytest.raises(CnnlensError, match="unknown layer"):
        render(squeeze_random, O.channel("features.99", 0), size=32, steps=1)
    assert model_state(squeeze_random) == before
    with pytest.raises(CnnlensError, match="out of range"):  # raised inside the forward pass, hooks active
        render(squeeze_random, O.channel("features.9", 999), size=32, steps=1, recipe=Recipe(redirect_steps=1))
    assert model_state(squeeze_random) == before
    with pytest.raises(CnnlensError, match="needs 3 images"):
        render(squeeze_random, O.channels("features.9", [0, 1, 2]), size=32, batch=2, steps=1)
    assert model_state(squeeze_random) == before


def test_several_channels_in_one_batch_each_image_serves_its_own(squeeze_random: nn.Module) -> None:
    out = render(squeeze_random, O.channels("features.5", [3, 17]), size=48, steps=48, recipe=Recipe(lr=0.1), seed=0)
    with torch.no_grad():
        a = activations(squeeze_random, out.images, ["features.5"])["features.5"].mean((2, 3))
    # random-init channels rise together, but image 0 favours channel 3 and image 1 channel 17
    assert a[0, 3] / a[0, 17] > 2 * a[1, 3] / a[1, 17]
    assert torch.allclose(out.values, torch.stack([a[0, 3], a[1, 17]]))
    assert out.history[-1] > out.history[0]


def test_redirect_starts_dead_units() -> None:
    # a unit whose ReLU is dead on every start image: plain gradients never move it, redirected ones do
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 1, 3)
    with torch.no_grad():
        conv.weight.fill_(0.1)
        conv.bias.fill_(-10.0)
    model = nn.Sequential(conv, nn.ReLU(), nn.Conv2d(1, 1, 1)).eval()
    with torch.no_grad():
        model[2].weight.fill_(1.0)
        model[2].bias.zero_()
    kw = dict(size=16, steps=40)
    pixels = dict(fft=False, decorrelate=False, transforms=[], lr=0.5)
    dead = render(model, O.channel("2", 0), recipe=Recipe(redirect_steps=0, **pixels), seed=0, **kw)
    alive = render(model, O.channel("2", 0), recipe=Recipe(redirect_steps=40, **pixels), seed=0, **kw)
    assert float(dead.values[0]) == 0.0 and torch.allclose(dead.images, dead.images.mean(), atol=0.02)
    with torch.no_grad():
        pre_alive = conv(prep_of(model).normalize(alive.images))
        pre_dead = conv(prep_of(model).normalize(dead.images))
    assert float(pre_alive.max()) > float(pre_dead.max()) + 1


# ---------------------------------------------------------------- units, result, checks (random init)


def test_render_units_result_holds_values_classes_and_probabilities(squeeze_reg: nn.Module) -> None:
    before = model_state(squeeze_reg)
    units = ["features.9:1", "logits:flamingo", "features.10:3@1,1", "logits:949"]
    out = render(squeeze_reg, units, size=32, steps=3, seed=0, progress=False)
    assert model_state(squeeze_reg) == before
    assert isinstance(out, RenderResult) and out.images.device.type == "cpu" and out.values.device.type == "cpu"
    assert out.images.shape == (4, 3, 32, 32) and 0 <= float(out.images.min()) and float(out.images.max()) <= 1
    assert [str(u) for u in out.units] == ["features.9:1", "logits:130", "features.10:3@1,1", "logits:949"]
    assert out.class_names == [None, "flamingo", None, "strawberry"]
    # values and probabilities recomputed independently on the final images
    prep = prep_of(squeeze_reg)
    with torch.no_grad():
        logits = squeeze_reg(prep.normalize(out.images))
        f9 = activations(squeeze_reg, out.images, ["features.9"])["features.9"]
        f10 = activations(squeeze_reg, out.images, ["features.10"])["features.10"]
    p = torch.softmax(logits, 1)
    assert out.probabilities[0] is None and out.probabilities[2] is None
    assert out.probabilities[1] == pytest.approx(float(p[1, 130]), abs=1e-6)
    assert out.probabilities[3] == pytest.approx(float(p[3, 949]), abs=1e-6)
    expected = torch.stack([f9[0, 1].mean(), logits[1, 130], f10[2, 3, 1, 1], logits[3, 949]])
    assert torch.allclose(out.values, expected, atol=1e-5)
    d = out.to_dict()
    assert json.loads(json.dumps(d)) == d  # JSON-safe as it is
    assert d["model"] == "squeezenet1_0" and d["weights"] == "random init, seed 0" and d["random_init"] is True
    rows = d["images"]
    assert rows[1]["class_name"] == "flamingo" and rows[1]["probability"] == out.probabilities[1]
    assert rows[2]["position"] == [1, 1] and "probability" not in rows[0]
    assert [r["objective"] for r in rows] == pytest.approx(out.values.tolist())
    labels = out.labels()
    assert labels[1].startswith("logits:130 (flamingo)") and f"p = {out.probabilities[1]:.3f}" in labels[1]
    assert "random init" in repr(out) and "flamingo" in out.to_text()


def test_render_figure_stands_alone(squeeze_reg: nn.Module) -> None:
    out = render(squeeze_reg, ["features.9:1", "logits:flamingo"], size=32, steps=1, seed=0, progress=False)
    fig = out.figure()
    try:
        title = fig._suptitle.get_text()
        assert "squeezenet1_0" in title and "random init, seed 0" in title and "features.9" in title and "logits" in title
        titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
        assert titles == out.labels() and "flamingo" in titles[1] and "p = " in titles[1]
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    html = out._repr_html_()
    assert "<img src='data:image/png;base64," in html and str(round(out.values.tolist()[1], 4)) in html and "flamingo" in html


def test_render_checks_units_and_numbers_before_any_step(squeeze_reg: nn.Module) -> None:
    before = model_state(squeeze_reg)
    steps_run: list[int] = []
    cb = lambda step, values: steps_run.append(step)  # noqa: E731
    cases = [
        (["features.99:1"], {}, "unit: unknown layer 'features.99' \\(did you mean: features.9"),
        (["logits:flamingoo"], {}, "unit: unknown class 'flamingoo' \\(did you mean: flamingo"),
        (["features.9:384"], {}, "unit: channel 384 out of range, features.9 has channels 0..383"),
        (["features.9:1@9,9"], {}, "unit: position 9,9 outside features.9's 3x3 output"),
        (["logits:1000"], {}, "unit: class 1000 out of range"),
        (["features.9:x"], {}, "unit 'features.9:x': channel must be an index"),
        ([], {}, "objective_or_units must be"),
        ("features.9:1", {"lr": float("nan")}, "^lr must be a finite number, not nan"),
        ("features.9:1", {"lr": -0.1}, "^lr must be > 0"),
        ("features.9:1", {"size": 16}, "^size must be >= 21"),
        ("features.9:1", {"size": 100_000}, "^size must be <= 4096"),
        ("features.9:1", {"steps": -1}, "^steps must be >= 0"),
        ("features.9:1", {"diversity": float("inf")}, "^diversity must be a finite number"),
        ("features.9:1", {"batch": 0}, "^batch must be >= 1"),
        ("features.9:1", {"redirect_steps": -2}, "^redirect_steps must be >= 0"),
    ]
    for spec, kw, message in cases:
        with pytest.raises(CnnlensError, match=message):
            recipe = Recipe(**{k: kw.pop(k) for k in list(kw) if k in Recipe.__dataclass_fields__})
            render(squeeze_reg, spec, **{"size": 32, "steps": 2, "callback": cb, "progress": False, "recipe": recipe, **kw})
    assert steps_run == [] and model_state(squeeze_reg) == before


def test_render_batch_and_diversity(squeeze_reg: nn.Module) -> None:
    kw = dict(size=32, steps=6, seed=0, progress=False, batch=2)
    plain = render(squeeze_reg, ["features.9:1", "logits:flamingo"], **kw)
    assert [str(u) for u in plain.units] == ["features.9:1", "features.9:1", "logits:130", "logits:130"]
    assert plain.to_dict()["images_per_unit"] == 2 and len(plain.probabilities) == 4
    diverse = render(squeeze_reg, ["features.9:1", "logits:flamingo"], diversity=1e3, **kw)
    # diversity is measured on the units' layer, and on the last spatial layer for class units
    assert "diversity(features.9)" in diverse.objective and "diversity(features.12)" not in diverse.objective
    only_classes = render(squeeze_reg, ["logits:flamingo"], diversity=1.0, **{**kw, "steps": 1})
    assert f"diversity({cnnlens.default_layers(squeeze_reg, 'last_spatial')[0]})" in only_classes.objective
    # the two images of one unit move apart: their Gram matrices are less alike than without the term
    def gram_cos(images: torch.Tensor) -> float:
        a = activations(squeeze_reg, images, ["features.9"])["features.9"].detach()
        return float(-O.diversity("features.9")({"features.9": a[:2]})[0])

    assert gram_cos(diverse.images) < gram_cos(plain.images)


@pytest.mark.parametrize("name", ["lenet5", "mnist-cnn"])
def test_render_grey_models(name: str) -> None:
    model = cnnlens.create_model(name, seed=0)
    assert fixed_input_size(prep_of(model)) == prep_of(model).input_size[1:]
    conv = cnnlens.default_layers(model, "first_conv")[0]
    out = render(model, ["logits:3", f"{conv}:2"], steps=2, seed=0, progress=False)
    side = prep_of(model).input_size[-1]
    assert out.images.shape == (2, 1, side, side) and out.class_names == ["3", None]
    bigger = render(model, ["logits:3"], size=side + 8, steps=2, seed=0, progress=False)  # resized to the model's size
    assert bigger.images.shape == (1, 1, side + 8, side + 8) and 0 < bigger.probabilities[0] < 1
    with pytest.raises(CnnlensError, match=f"^size must be >= {side}"):
        render(model, ["logits:3"], size=side - 4, steps=1, progress=False)


def test_render_progress_lines_off_a_terminal(squeeze_reg: nn.Module, capsys: pytest.CaptureFixture[str]) -> None:
    render(squeeze_reg, "features.9:1", size=32, steps=2, seed=0)
    err = capsys.readouterr().err
    assert "visualize: started, 0/2 step" in err and "visualize: done, 2/2 step" in err
    render(squeeze_reg, "features.9:1", size=32, steps=2, seed=0, progress=False)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- CLI


NET_PY = '''
import torch.nn as nn


class Net(nn.Module):
    """A tiny CNN (3 colour channels, 4 classes)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))
'''


def run(args: list[str]) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_visualize_cli_json_is_the_result_and_files(tmp_path: Path, squeeze_reg: nn.Module) -> None:
    fig, grid = tmp_path / "fig.png", tmp_path / "grid.png"
    args = ["visualize", "squeezenet1_0", "-w", "none", "-u", "features.9:1", "-u", "features.9:2", "-u", "logits:3",
            "--steps", "2", "--size", "40", "-o", fig, "--image", grid, "--json", "--device", "cpu"]
    result = run(args)
    assert result.exit_code == 0, result.output
    api = render(squeeze_reg, ["features.9:1", "features.9:2", "logits:3"], size=40, steps=2, seed=0, progress=False)
    assert json.loads(result.stdout) == jsonable(api.to_dict())
    assert json.loads(result.stdout)["images"][2]["class_name"] == "tiger shark"
    from cnnlens.images import load_image

    assert load_image(grid).shape == (3, 2 + 42, 2 + 3 * 42)  # the bare grid at the rendered size
    assert torch.allclose(load_image(grid)[:, 2:42, 2:42], api.images[0], atol=1 / 255 + 1e-6)
    assert load_image(fig).shape[-1] > 300  # the labelled figure
    text = run(args[:-3] + ["--overwrite"])
    assert text.exit_code == 0 and "logits:3 (tiger shark): objective" in text.stdout and ", p = " in text.stdout
    again = run(args)
    assert again.exit_code == 2 and "exists" in again.output and "Traceback" not in again.output


SOURCES = ["squeezenet1_0", "lenet5", "mnist-cnn", "file", "timm/resnet18"]


@pytest.mark.parametrize("source", SOURCES)
def test_visualize_and_dream_every_registry_source_repeat_under_seed(source: str, tmp_path: Path) -> None:
    if source == "timm/resnet18":
        pytest.importorskip("timm")
    model = source
    if source == "file":
        (tmp_path / "net.py").write_text(NET_PY)
        model = f"{tmp_path / 'net.py'}:Net"
    from cnnlens.images import save_image

    photo = save_image(torch.rand(3, 36, 40, generator=gen(5)), tmp_path / "photo.png")
    runs = {}
    for tag, seed in [("a", 0), ("b", 0), ("c", 1)]:
        grid, fig, dreamed = tmp_path / f"grid-{tag}.png", tmp_path / f"fig-{tag}.png", tmp_path / f"dream-{tag}.png"
        vis = run(["visualize", model, "-w", "none", "--seed", seed, "-u", "logits:1", "--steps", 2, "--size", 32, "--image", grid, "-o", fig])
        assert vis.exit_code == 0, vis.output
        dr = run(["dream", photo, "-m", model, "-w", "none", "--seed", seed, "--steps", 2, "--size", 32, "--image", dreamed, "--json"])
        assert dr.exit_code == 0, dr.output
        assert json.loads(dr.stdout)["weights"] == f"random init, seed {seed}"
        runs[tag] = (grid.read_bytes(), fig.read_bytes(), dreamed.read_bytes())
    assert runs["a"] == runs["b"]
    assert all(x != y for x, y in zip(runs["a"], runs["c"]))


@pytest.mark.parametrize(
    "args,message",
    [
        (["-u", "features.9:1", "-o", "out.xyz"], "Error: --output out.xyz: unknown suffix '.xyz'"),
        (["-u", "features.9:1", "--image", "grid.pdf"], "Error: --image grid.pdf: unknown suffix '.pdf'"),
        (["-u", "features.9:1", "-o", "same.png", "--image", "same.png"], "are the same file"),
        (["-u", "features.9:1", "-o", "existing.png"], "exists"),
        (["-u", "features.99:1"], "Error: --unit: unknown layer 'features.99' (did you mean: features.9"),
        (["-u", "logits:flamingoo"], "Error: --unit: unknown class 'flamingoo' (did you mean: flamingo"),
        (["-u", "features.9:999"], "Error: --unit: channel 999 out of range"),
        (["-u", "features.9:1", "--lr", "nan"], "Error: --lr must be a finite number, not nan"),
        (["-u", "features.9:1", "--lr", "-1"], "Error: --lr must be > 0"),
        (["-u", "features.9:1", "--size", "8"], "Error: --size must be >= 21"),
        (["-u", "features.9:1", "--size", "1000000"], "Error: --size must be <= 4096"),
        (["-u", "features.9:1", "--steps", "-3"], "Error: --steps must be >= 0"),
        (["-u", "features.9:1", "--batch", "0"], "Error: --batch must be >= 1"),
        (["-u", "features.9:1", "--diversity", "nan"], "Error: --diversity must be a finite number"),
        (["-u", "features.9:1", "-w", "nope.pth"], "Error: --weights file not found"),
    ],
)
def test_visualize_cli_bad_input_one_line_nothing_written(args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing.png").write_bytes(b"keep me")
    weights = [] if "-w" in args else ["-w", "none"]
    result = run(with_options(["visualize", "squeezenet1_0", *weights, "--steps", "1", "--size", "32"], args))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.png"]
    assert (tmp_path / "existing.png").read_bytes() == b"keep me"


def test_visualize_refuses_a_model_that_does_not_take_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(["visualize", "three-3x3", "-w", "none", "-u", "0:1", "--steps", "1"])
    assert result.exit_code == 2 and result.output.strip() == "Error: MODEL: three-3x3 takes 64-channel input, not images (1 or 3 channels)"
    assert list(tmp_path.iterdir()) == []


def test_visualize_cli_needs_a_unit_and_default_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    missing = run(["visualize", "squeezenet1_0", "-w", "none"])
    assert missing.exit_code == 2 and "--unit" in missing.output
    no_weights = run(["visualize", "lenet5", "-u", "logits:1"])  # -w defaults to DEFAULT, which lenet5 lacks
    assert no_weights.exit_code == 2 and no_weights.output.strip().startswith("Error: --weights: lenet5 has no pretrained weights")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- meaning (real ImageNet weights)


def class_probabilities(model: nn.Module, prep, images: torch.Tensor, classes: list[int]) -> list[float]:
    with torch.no_grad():
        p = torch.softmax(model(prep.normalize(images)), 1)
    return [float(p[i, k]) for i, k in enumerate(classes)]


def test_class_visualization_quick_squeezenet(squeezenet_trained: nn.Module) -> None:
    prep = prep_of(squeezenet_trained)
    classes = [130]  # flamingo (the slow test below: 4 classes, 2 models, default settings)
    start = P.image(64, batch=1, generator=gen(0))
    with torch.no_grad():
        p0 = class_probabilities(squeezenet_trained, prep, start(), classes)
    before = model_state(squeezenet_trained)
    out = render(squeezenet_trained, "logits:flamingo", size=64, steps=32, seed=0)
    p1 = class_probabilities(squeezenet_trained, prep, out.images, classes)
    assert max(p0) < 0.01 and min(p1) > 0.9, (p0, p1)
    assert out.class_names == ["flamingo"] and out.probabilities == pytest.approx(p1, abs=1e-5)
    assert model_state(squeezenet_trained) == before


@pytest.mark.slow
@pytest.mark.parametrize("name,fixture", [("squeezenet1_0", "squeezenet_trained"), ("mobilenet_v2", "mobilenet_trained")])
def test_class_visualization_default_steps(name: str, fixture: str, request: pytest.FixtureRequest) -> None:
    """Default settings (256 steps, 128 px, Lucid parameterization): p from < 0.01 to > 0.9 for 4 classes."""
    model = request.getfixturevalue(fixture)
    prep = prep_of(model)
    classes = [130, 949, 1, 417]  # flamingo, strawberry, goldfish, balloon
    start = P.image(128, batch=4, generator=gen(0))
    p0 = class_probabilities(model, prep, start(), classes)
    out = render(model, O.class_logits(classes), size=128, seed=0)
    p1 = class_probabilities(model, prep, out.images, classes)
    print(name, "p start", p0, "p end", p1)
    assert max(p0) < 0.01 and min(p1) > 0.9, (p0, p1)


def sample_batch(data, every: int) -> torch.Tensor:
    from cnnlens.images import load_image

    prep = cnnlens.registry.get_entry("squeezenet1_0").preprocessing
    rows = list(csv.DictReader(open(data / "imagenet_samples/labels.csv")))[::every]
    return torch.stack([prep.resize_and_crop(load_image(data / "imagenet_samples" / r["filename"])) for r in rows])


def photo_channel_means(model: nn.Module, prep, data, layer: str, every: int) -> torch.Tensor:
    photos = sample_batch(data, every)
    total = None
    with torch.no_grad():
        for chunk in photos.split(50):
            a = activations(model, chunk, [layer], preprocessing=prep)[layer].mean((2, 3)).sum(0)
            total = a if total is None else total + a
    return total / len(photos)


# mean of features.9 channels 5, 20, 100 of the trained squeezenet1_0 over all 1,000 ImageNet sample photos
# (resize 256 + centre crop 224); test_channel_visualization_vs_all_photos recomputes and checks them
SQUEEZENET_PHOTO_MEANS = {5: 62.600, 20: 107.344, 100: 83.884}


def test_channel_visualization_beats_photos_squeezenet(squeezenet_trained: nn.Module) -> None:
    """Quick version: 48 steps at 64 px against the stored photo means (the slow test: defaults, recomputed means)."""
    channels = [5, 100]
    out = render(squeezenet_trained, O.channels("features.9", channels), size=64, steps=48, seed=0)
    ratios = out.values / torch.tensor([SQUEEZENET_PHOTO_MEANS[c] for c in channels])
    assert float(ratios.min()) > 5, ratios


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,fixture,layer,channels,minimum",
    [("squeezenet1_0", "squeezenet_trained", "features.9", [5, 20, 100], 10),
     # a ReLU6 layer: no channel can exceed 6, so the ratio is bounded by 6 / photo mean
     ("mobilenet_v2", "mobilenet_trained", "features.12.conv.0", [5, 20, 100], 3)],
)
def test_channel_visualization_vs_all_photos(
    name: str, fixture: str, layer: str, channels: list[int], minimum: float, data, request: pytest.FixtureRequest
) -> None:
    """Default settings (256 steps, 128 px) against the mean over all 1,000 ImageNet sample photos."""
    model = request.getfixturevalue(fixture)
    prep = prep_of(model)
    means = photo_channel_means(model, prep, data, layer, every=1)
    if name == "squeezenet1_0":
        assert torch.allclose(means[channels], torch.tensor([SQUEEZENET_PHOTO_MEANS[c] for c in channels]), rtol=1e-3)
    out = render(model, O.channels(layer, channels), size=128, seed=0)
    ratios = out.values / means[channels]
    print(name, layer, "photo means", means[channels].tolist(), "visualization", out.values.tolist(), "ratios", ratios.tolist())
    assert float(ratios.min()) > minimum, ratios


def test_fourier_decorrelation_transforms_lower_high_frequencies(squeezenet_trained: nn.Module) -> None:
    """Both runs stop as soon as every channel reaches the same activation (500, 6-8x the photo mean)."""
    obj = O.channels("features.9", [5, 100])
    lucid = render(squeezenet_trained, obj, size=64, steps=200, seed=0, until=500)
    pixel = render(squeezenet_trained, obj, size=64, steps=200, seed=0, until=500,
                   recipe=Recipe(fft=False, decorrelate=False, transforms=[]))
    assert float(lucid.values.min()) > 375 and float(pixel.values.min()) > 375  # comparable activations
    hf_lucid, hf_pixel = high_frequency_energy(lucid.images), high_frequency_energy(pixel.images)
    print("steps", len(lucid.history), len(pixel.history), "values", lucid.values, pixel.values, "hf", hf_lucid, hf_pixel)
    assert float(hf_lucid.max()) < 0.15 and float(hf_pixel.min()) > 0.25, (hf_lucid, hf_pixel)
