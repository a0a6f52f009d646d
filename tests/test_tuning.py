"""Gratings, the tuning measures, the small-canvas engine, tuning curves, hierarchy and invariance:
analytic units with known answers, and the result protocol."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from skimage.filters import gabor_kernel

import cnnlens
from cnnlens.pixelnet import image_preprocessing
from cnnlens.pixels import Preprocessing
from cnnlens.tuning import (
    Gratings,
    bars,
    default_frequencies,
    default_orientations,
    gratings,
    harmonics,
    hierarchy,
    invariance,
    modulation_ratio,
    orientation_selectivity,
    place_layers,
    random_init_like,
    read_units,
    transform_views,
    tuning_curves,
    window_mask,
)

GREY33 = Preprocessing(mean=(0.5,), std=(0.5,), resize_size=None, crop_size=33, channels=1, source="test: grey maps to 0")
QUICK = dict(gratings=Gratings(orientations=8, frequencies=4, phases=4), contrasts=None, progress=False)


def gabor(frequency: float, theta_deg: float, *, sigma: float = 3.0, side: int = 15, quadrature: bool = False) -> torch.Tensor:
    """A zero-mean ``side`` x ``side`` Gabor (scikit-image's kernel, cropped), cosine or sine phase."""
    g = gabor_kernel(frequency, theta=math.radians(theta_deg), sigma_x=sigma, sigma_y=sigma, n_stds=3)
    c, h = g.shape[0] // 2, side // 2
    g = g[c - h : c + h + 1, c - h : c + h + 1]
    w = torch.tensor(g.imag if quadrature else g.real, dtype=torch.float32)
    return w - w.mean()


def simple_cell(frequency: float, theta: float) -> nn.Module:
    conv = nn.Conv2d(1, 1, 15, bias=False)
    with torch.no_grad():
        conv.weight[0, 0] = gabor(frequency, theta)
    return nn.Sequential(conv, nn.ReLU())


class EnergyCell(nn.Module):
    """The energy model of a complex cell (Adelson & Bergen 1985): the sum of the squares of a
    quadrature pair of Gabors."""

    def __init__(self, frequency: float, theta: float) -> None:
        super().__init__()
        self.pair = nn.Conv2d(1, 2, 15, bias=False)
        with torch.no_grad():
            self.pair.weight[0, 0] = gabor(frequency, theta)
            self.pair.weight[1, 0] = gabor(frequency, theta, quadrature=True)
        self.energy = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.energy(self.pair(x).pow(2).sum(1, keepdim=True))


# -- stimuli ------------------------------------------------------------------------------------------


def test_gratings_follow_the_gabor_orientation_convention() -> None:
    g = gratings([0.0, 90.0, 45.0], 0.125, size=16)[:, 0]
    assert g.shape == (3, 16, 16) and float(g.min()) >= 0 and float(g.max()) <= 1
    assert torch.allclose(g[0], g[0][:1].expand(16, 16))  # 0 degrees: vertical stripes, changes along x only
    assert torch.allclose(g[1], g[1][:, :1].expand(16, 16))  # 90: horizontal stripes
    assert torch.allclose(g[2][1:, :-1], g[2][:-1, 1:], atol=1e-6)  # 45: constant along the anti-diagonal
    centre = gratings(30.0, 0.2, 0.0, size=9)[0, 0, 4, 4]
    assert float(centre) == pytest.approx(1.0)  # phase 0: a bright stripe on the centre
    assert float(gratings(30.0, 0.2, 180.0, size=9)[0, 0, 4, 4]) == pytest.approx(0.0, abs=1e-6)
    assert float(gratings(0.0, 0.2, contrast=0.5, size=9).max()) == pytest.approx(0.75)
    # the grating that matches a Gabor of orientation theta (skimage's kernel) correlates with it best
    kernel = gabor(0.2, 60.0)
    orients = default_orientations(12)
    best = [float((gratings(o, 0.2, p, size=15)[0, 0] - 0.5).mul(kernel).sum()) for o in orients for p in (0.0, 90.0, 180.0, 270.0)]
    assert orients[int(np.argmax(best)) // 4] == 60.0


def test_bars_are_stripes_of_the_grating() -> None:
    b = bars(0.0, 2, size=7)[0, 0]
    assert b[3].tolist() == [0.5, 0.5, 0.75, 1.0, 0.75, 0.5, 0.5] and torch.equal(b[0], b[6])
    dark = bars(90.0, 3, offset=2, contrast=-1.0, size=9)[0, 0]
    assert float(dark[6, 4]) == 0.0 and float(dark[4, 4]) == 0.5  # 2 pixels below the centre, dark
    short = bars(0.0, 1, length=3, size=9)[0, 0]
    assert float(short[4, 4]) == 1.0 and float(short[0, 4]) == 0.5


def test_windows() -> None:
    box = (2, 3, 9, 10)
    rf = window_mask("rf", 12, box)
    assert rf.sum() == 49 and rf[2, 3] == 1 and rf[9, 3] == 0
    circle = window_mask("circle", 12, box)
    assert circle[5, 6] == 1 and circle[2, 3] == 0 and 0 <= float(circle.min()) and float(circle.max()) == 1
    g = gratings(0.0, 0.25, size=12, window="rf", box=box)[0, 0]
    assert float(g[0, 0]) == 0.5 and float(g[5, 6]) != 0.5
    with pytest.raises(cnnlens.CnnlensError, match=r"^window 'box' unknown"):
        window_mask("box", 12)


def test_default_grids() -> None:
    f = default_frequencies(7, 12)
    assert f[0] == pytest.approx(0.5 / 7) and f[-1] == pytest.approx(0.4) and len(f) == 12
    assert np.allclose(np.diff(np.log(f)), np.log(f[1] / f[0]))
    assert default_orientations(4) == [0.0, 45.0, 90.0, 135.0]


# -- measures -----------------------------------------------------------------------------------------


def test_modulation_ratio_and_osi_of_known_curves() -> None:
    phi = torch.arange(64) * 2 * math.pi / 64
    rectified = torch.cos(phi).clamp_min(0)
    f0, f1 = harmonics(rectified)
    assert float(modulation_ratio(f0, f1)) == pytest.approx(math.pi / 2, rel=1e-3)  # half-wave rectified linear unit
    f0, f1 = harmonics(torch.full((64,), 3.0))
    assert float(modulation_ratio(f0, f1)) == pytest.approx(0.0, abs=1e-12)  # phase invariant
    f0, f1 = harmonics(rectified + 2.0, blank=2.0)  # a baseline is the blank: subtracted
    assert float(modulation_ratio(f0, f1)) == pytest.approx(math.pi / 2, rel=1e-3)
    assert float(modulation_ratio(torch.tensor(0.0), torch.tensor(1.0))) == 2.0  # modulates without a mean rise
    orients = default_orientations(8)
    osi, angle = orientation_selectivity(torch.tensor([0.0, 0, 5, 0, 0, 0, 0, 0]), orients)
    assert float(osi) == pytest.approx(1.0) and float(angle) == pytest.approx(45.0)
    osi, _ = orientation_selectivity(torch.ones(8), orients)
    assert float(osi) == pytest.approx(0.0, abs=1e-12)
    # R = 1 + cos(2 (theta - 30)): circular variance 1 - 1/2
    theta = torch.tensor(orients, dtype=torch.float64)
    osi, angle = orientation_selectivity(1 + torch.cos(2 * torch.deg2rad(theta - 30)), orients)
    assert float(osi) == pytest.approx(0.5) and float(angle) == pytest.approx(30.0)


@pytest.mark.parametrize("k_freq,theta", [(7, 45.0), (4, 0.0), (9, 112.5)])
def test_gabor_unit_recovered_exactly(k_freq: int, theta: float) -> None:
    """A unit whose filter is a Gabor of a grid orientation and frequency: both recovered exactly,
    F1/F0 > 1.5 (a rectified linear unit: pi/2), a simple cell."""
    freqs = default_frequencies(15, 12)
    unit = simple_cell(freqs[k_freq], theta)
    r = tuning_curves(unit, "1", preprocessing=GREY33, progress=False)
    u = r.units[0]
    assert u.preferred_orientation_deg == theta
    assert u.preferred_frequency == pytest.approx(freqs[k_freq])
    assert u.preferred_frequency_cycles_per_rf == pytest.approx(15 * freqs[k_freq])
    assert u.modulation_ratio > 1.5 and u.classification == "simple" and u.osi > 0.3  # broader at low frequency
    assert u.orientation_vector_deg == pytest.approx(theta, abs=1.0)
    # a linear unit: the contrast response is proportional to contrast, half at contrast 0.5
    assert u.c50 == pytest.approx(0.5, rel=1e-3)
    assert np.allclose(np.asarray(u.contrast_response) / u.contrast_response[-1], np.asarray(r.contrasts), rtol=1e-4)
    pl = r.layers[0].placement
    assert pl.canvas == 15 and pl.exact and pl.full_position == (9, 9)


def test_energy_complex_cell_is_phase_invariant_with_the_same_orientation() -> None:
    freqs = default_frequencies(15, 12)
    simple = tuning_curves(simple_cell(freqs[7], 45.0), "1", preprocessing=GREY33, contrasts=None, progress=False).units[0]
    complex_ = tuning_curves(EnergyCell(freqs[7], 45.0), "energy", preprocessing=GREY33, contrasts=None, progress=False).units[0]
    assert complex_.modulation_ratio < 0.01 and complex_.classification == "complex"
    assert complex_.preferred_orientation_deg == simple.preferred_orientation_deg == 45.0
    assert complex_.preferred_frequency == simple.preferred_frequency
    assert max(complex_.phase_response) == pytest.approx(min(complex_.phase_response), rel=1e-3)


def test_an_unoriented_unit_is_unselective() -> None:
    conv = nn.Conv2d(1, 1, 9, bias=False)
    y, x = torch.meshgrid(torch.arange(9.0) - 4, torch.arange(9.0) - 4, indexing="ij")
    r2 = x**2 + y**2
    with torch.no_grad():
        conv.weight[0, 0] = torch.exp(-r2 / 2) - 0.5 * torch.exp(-r2 / 8)  # centre-surround (a retinal ganglion cell)
    u = tuning_curves(nn.Sequential(conv, nn.ReLU()), "1", preprocessing=GREY33, contrasts=None, progress=False).units[0]
    assert u.responsive and u.osi < 0.05 and u.classification == "unselective"
    dead = nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU())
    with torch.no_grad():
        dead[0].weight.zero_()
        dead[0].bias.fill_(-1.0)
    u = tuning_curves(dead, "1", preprocessing=GREY33, contrasts=None, progress=False).units[0]
    assert not u.responsive and u.classification == "unselective" and u.modulation_ratio is None


# -- the engine ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,layer,size", [("squeezenet1_0", "features.7", 96), ("mobilenet_v2", "features.4", 64)])
def test_small_canvas_gives_the_full_image_unit_exactly(name: str, layer: str, size: int) -> None:
    model = cnnlens.create_model(name, seed=0)
    prep = image_preprocessing(model, None, size)
    canvas, placed = place_layers(model, {layer: None}, prep)
    pl = placed[layer]
    assert pl.exact and canvas < size
    o, f, p = torch.tensor([0.0, 30.0, 100.0]), torch.tensor([0.05, 0.13, 0.3]), torch.tensor([0.0, 90.0, 200.0])
    small = read_units(model, prep, [gratings(o, f, p, size=canvas, center=pl.center, window="rf", box=pl.box)], {layer: pl.position})[layer]
    full_box = pl.receptive_field.box(*pl.full_position)
    centre = ((full_box[0] + full_box[2] - 1) / 2, (full_box[1] + full_box[3] - 1) / 2)
    big = read_units(model, prep, [gratings(o, f, p, size=size, center=centre)], {layer: pl.full_position})[layer]
    assert small.shape == big.shape and big.abs().max() > 0
    assert torch.allclose(small, big, atol=1e-5 * float(big.abs().max()))


def test_a_field_larger_than_the_image_is_read_at_full_size() -> None:
    model = cnnlens.create_model("squeezenet1_0", seed=0)
    r = tuning_curves(model, "features.12:3", size=96, **QUICK)
    pl = r.layers[0].placement
    assert pl.canvas == 96 and not pl.exact and pl.field_leaves_image and pl.full_position == (2, 2)
    assert any("leaves the 96-pixel input" in w for w in r.warnings)


# -- tuning curves ------------------------------------------------------------------------------------


def test_channels_and_layer_agree_and_the_model_is_left_as_it_was() -> None:
    model = cnnlens.create_model("resnet18", seed=0).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    whole = tuning_curves(model, "layer1", size=64, **QUICK)
    two = tuning_curves(model, ["layer1:5", "layer1:9"], size=64, **QUICK)
    assert [u.unit.channel for u in two.units] == [5, 9] and len(whole.units) == 64
    for u in two.units:
        w = whole[f"layer1:{u.unit.channel}"]
        assert w.osi == pytest.approx(u.osi) and w.preferred_orientation_deg == u.preferred_orientation_deg
    assert torch.allclose(whole.layers[0].responses[[5, 9]], two.layers[0].responses)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm statistics too
    assert {n: p.requires_grad for n, p in model.named_parameters()} == grads
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_tuning_result_protocol(tmp_path) -> None:
    model = cnnlens.create_model("squeezenet1_0", seed=0)
    r = tuning_curves(model, ['features.3:1', 'features.3:7@10,12'], size=64, progress=False, gratings=Gratings(orientations=8, frequencies=4, phases=4))
    data = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert data["model"] == "squeezenet1_0" and data["weights"] == "random init, seed 0" and data["random_init"] is True
    assert [u["unit"] for u in data["units"]] == ["features.3:1@7,7", "features.3:7@10,12"]
    for key in ("preferred_orientation_deg", "osi", "preferred_frequency", "modulation_ratio", "classification", "contrast_response", "c50"):
        assert key in data["units"][0]
    assert data["units"][0]["classification"] in ("simple", "complex", "unselective")
    assert len(data["layers"]) == 2 and data["layers"][0]["rf_size"] == 19
    assert data["n_stimuli"] == 2 * (8 * 4 * 4 + 1) + 2 * 5  # two places: grid and blank, then 5 contrasts each
    fig = r.figure()
    assert "squeezenet1_0 (random init, seed 0)" in fig._suptitle.get_text() and "features.3" in fig._suptitle.get_text()
    one = tuning_curves(model, 'features.3:1', size=64, progress=False, gratings=Gratings(orientations=8, frequencies=4, phases=4))
    assert "features.3:1@7,7" in one.figure()._suptitle.get_text()
    for kind in ("polar", "summary", "unit", "all"):
        assert r.save(tmp_path / f"{kind}.png", kind=kind).stat().st_size > 5000
    assert json.loads(r.save(tmp_path / "t.json").read_text())["units"][1]["position"] == [10, 12]
    html = r._repr_html_()
    assert "TuningResult" in html and "median_osi" in html and "data:image/png;base64" in html
    assert "features.3" in repr(r)
    with pytest.raises(cnnlens.CnnlensError, match="was not measured"):
        r["features.3:2"]


def test_logits_unit_of_a_file_model(file_model: str) -> None:
    model = cnnlens.create_model(file_model, seed=0)
    r = tuning_curves(model, "logits:dog", **QUICK)
    u = r.units[0]
    assert str(u.unit) == "logits:1" and u.unit.name == "dog" and r.layers[0].placement.canvas == 32
    assert u.to_dict()["class_name"] == "dog"


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(orientations=0), r"^orientations must be >= 1"),
        (dict(phases=2), r"^phases must be >= 3"),
        (dict(frequencies=[0.1, 0.7]), r"^frequencies must be <= 0.5"),
        (dict(frequencies=[0.0]), r"^frequencies must be > 0"),
        (dict(contrast=float("nan")), r"^contrast must be a finite number"),
        (dict(contrasts=[0.5, 2.0]), r"^contrasts must be <= 1"),
        (dict(window="square"), r"^window 'square' unknown"),
        (dict(osi_threshold=-0.1), r"^osi_threshold must be >= 0"),
        (dict(batch_size=0), r"^batch_size must be >= 1"),
        (dict(unit="features.99"), r"^unit: unknown layer 'features.99' \(did you mean"),
        (dict(unit="features.0:96"), r"^unit: channel 96 out of range"),
        (dict(unit="features.0:1@200,3"), r"^unit: position 200,3 outside"),
        (dict(size=8), r"^size 8 is below"),
    ],
)
def test_bad_arguments_fail_before_any_work(kwargs: dict, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import cnnlens.tuning.curves as curves
    import cnnlens.tuning.engine as engine

    model = cnnlens.create_model("squeezenet1_0", seed=0)
    for module in (engine, curves):
        monkeypatch.setattr(module, "read_units", lambda *a, **k: pytest.fail("ran the model"))
    args = {"unit": "features.0", **kwargs}
    fields = {k: args.pop(k) for k in list(args) if k in Gratings.__dataclass_fields__}
    with pytest.raises(cnnlens.CnnlensError, match=message):
        tuning_curves(model, progress=False, gratings=Gratings(**fields), **args)


def test_models_that_do_not_take_images_are_refused() -> None:
    with pytest.raises(cnnlens.CnnlensError, match="not images"):
        tuning_curves(cnnlens.create_model("three-3x3", seed=0), "0", progress=False)
    with pytest.raises(cnnlens.CnnlensError, match="has no Conv2d layer"):
        tuning_curves(cnnlens.create_model("mlp-mnist", seed=0), progress=False)


# -- hierarchy ----------------------------------------------------------------------------------------


def test_hierarchy_rows_and_baseline_of_any_module(tmp_path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU())
    with torch.no_grad():
        net[0].weight[0] = gabor(0.2, 90.0, side=5)  # one oriented channel
    prep = Preprocessing(resize_size=None, crop_size=40)
    h = hierarchy(net, ['1', '4', '6'], preprocessing=prep, baseline=True, progress=False, gratings=Gratings(orientations=8, frequencies=5, phases=4))
    assert h.layers == ["1", "4", "6"] and [r.rf_size for r in h.rows] == [5, 10, 14]
    assert h.tuning.layers[0].placement.canvas == 14  # the deepest field
    for r in h.rows + h.baseline_rows:
        assert r.share_simple + r.share_complex + r.share_unselective == pytest.approx(1.0)
        assert r.share_selective == pytest.approx(r.share_simple + r.share_complex) and r.n_units == 8
    assert h.tuning.layers[0].units[0].preferred_orientation_deg == 90.0
    assert h.baseline_info.weights == "weights as given" and h.baseline_tuning.layers[0].responses.shape == h.tuning.layers[0].responses.shape
    assert not torch.equal(h.baseline_tuning.layers[0].responses, h.tuning.layers[0].responses)
    data = json.loads(json.dumps(h.to_dict(), allow_nan=False))
    assert [r["layer"] for r in data["rows"]] == ["1", "4", "6"] and len(data["baseline"]["rows"]) == 3
    assert "layer" in h.to_text() and "random: selective" in h.to_text()
    html = h._repr_html_()
    assert "Hierarchy" in html and "share_simple" in html and "data:image/png;base64" in html
    assert h.save(tmp_path / "h.png").stat().st_size > 10_000
    # the same units as tuning_curves measures with full-field gratings
    t = tuning_curves(net, '4', contrasts=None, window='full', preprocessing=prep, progress=False, gratings=Gratings(orientations=8, frequencies=h.tuning.layers[0].frequencies, phases=4))
    assert [u.osi for u in t.units] == pytest.approx([u.osi for u in h.tuning.layers[1].units], abs=1e-9)


def test_random_init_like_is_the_registry_init() -> None:
    trained = cnnlens.create_model("squeezenet1_0", seed=3)
    a, b = random_init_like(trained, 0), cnnlens.create_model("squeezenet1_0", seed=0)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert cnnlens.model_info(a).random_init


# -- invariance ---------------------------------------------------------------------------------------


def test_transform_views_are_exact_where_they_can_be() -> None:
    from cnnlens.folders import prepare_image

    torch.manual_seed(0)
    frame = torch.rand(3, 40, 52)
    views, labels = transform_views(frame, {"translation": [0, 3], "rotation": [90], "brightness": [0.2], "contrast": [0.5]}, 32)
    assert labels == [("translation", 3.0), ("rotation", 90.0), ("brightness", 0.2), ("contrast", 0.5)]
    crop = frame[:, 4:36, 10:42]
    prep = Preprocessing(resize_size=None, crop_size=32)
    assert torch.equal(views[0], crop) and torch.equal(views[0], prepare_image(frame, prep))
    assert torch.allclose(views[1], frame[:, 4:36, 7:39], atol=1e-6)  # content moved right by 3: more photo, no border
    assert torch.allclose(views[2], torch.rot90(crop, 1, dims=(1, 2)), atol=1e-5) or torch.allclose(views[2], torch.rot90(crop, -1, dims=(1, 2)), atol=1e-5)
    assert torch.allclose(views[3], (crop + 0.2).clamp(0, 1))
    assert torch.allclose(views[4], crop.mean() + 0.5 * (crop - crop.mean()))


def test_invariance_of_a_permutation_invariant_model_and_the_result(tmp_path) -> None:
    """1x1 convolutions and a global average pool ignore where pixels are: a 90-degree rotation of
    the view leaves them unchanged (similarity 1), a shift that brings in new photo does not."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 1), nn.ReLU(), nn.Conv2d(16, 16, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    images = torch.nn.functional.interpolate(torch.rand(6, 3, 5, 6), size=(40, 48), mode="bilinear")  # smooth "photos"
    prep = Preprocessing(resize_size=None, crop_size=32)
    inv = invariance(net, images, ["2", "3"], transforms={"rotation": [90], "translation": [4, 8], "brightness": [0.3]}, preprocessing=prep, baseline=True, progress=False)
    assert inv.similarity["3"]["rotation"] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert inv.similarity["2"]["rotation"][1] < 0.9  # the map itself turns
    assert inv.similarity["3"]["translation"][0] == 1.0 and inv.similarity["3"]["translation"][2] < 1 - 1e-4
    assert inv.similarity["2"]["translation"][1] > inv.similarity["2"]["translation"][2]  # more shift, less alike
    assert inv.rf_sizes == {"2": 1, "3": None} and inv.n_images == 6
    assert inv.baseline_similarity is not None and inv.baseline_info.weights == "weights as given"
    data = json.loads(json.dumps(inv.to_dict(), allow_nan=False))
    assert data["transforms"] == {"rotation": [0.0, 90.0], "translation": [0.0, 4.0, 8.0], "brightness": [0.0, 0.3]}
    assert data["scores"]["rotation"]["3"] == pytest.approx(1.0, abs=1e-5) and "baseline" in data
    assert "translation" in inv.to_text() and " / " in inv.to_text()
    assert inv.save(tmp_path / "inv.png").stat().st_size > 10_000
    assert "Sequential" in inv.figure()._suptitle.get_text()
    html = inv._repr_html_()
    assert "Invariance" in html and "translation_score" in html and "data:image/png;base64" in html


def test_invariance_bad_arguments() -> None:
    model = cnnlens.create_model("squeezenet1_0", seed=0)
    with pytest.raises(cnnlens.CnnlensError, match=r"^transforms: unknown transform 'rotate' \(did you mean: rotation"):
        invariance(model, torch.rand(2, 3, 40, 40), transforms=["rotate"], size=32, progress=False)
    with pytest.raises(cnnlens.CnnlensError, match=r"^images: 1 image given; give a folder of at least 2 images"):
        invariance(model, torch.rand(1, 3, 40, 40), size=32, progress=False)
    with pytest.raises(cnnlens.CnnlensError, match=r"^layers: unknown layer 'features.99'"):
        invariance(model, torch.rand(2, 3, 40, 40), ["features.99"], size=32, progress=False)
    with pytest.raises(cnnlens.CnnlensError, match=r"^transforms must be"):
        invariance(model, torch.rand(2, 3, 40, 40), transforms={"scale": [0.0]}, size=32, progress=False)
