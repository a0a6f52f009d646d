"""Maximal dataset patches: streamed top-k = brute force, crops hold the whole receptive field,
border units, the JSON index reproduces the figure, the `patches` command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

import cnnlens
from cnnlens.cli import cli
from cnnlens.pixels import Preprocessing
from cnnlens.testing import model_state
from cnnlens.folders import prepare_image, select_images
from cnnlens.units import PatchSettings, add_projections, border_mask, crop_box, load_index, paste_box, plot_patches, replay, top_patches


PREP = Preprocessing(crop_size=48, resize_size=52)
QUIET = {"preprocessing": PREP, "progress": False}


def tiny_net() -> nn.Module:
    """conv 5x5 -> in-place ReLU -> maxpool (ceil) -> conv 3x3 pad 1 -> ReLU; channel 3 of the last conv is dead
    (zero weights, negative bias), so its units tie at 0 everywhere."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(8, 6, 3, padding=1), nn.ReLU(inplace=True),
    )  # fmt: skip
    with torch.no_grad():
        net[3].weight[3] = 0
        net[3].bias[3] = -1.0
    return net.eval()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    import skimage.io

    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    for i in range(13):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        h, w = (60, 70) if i % 3 else (52, 52)
        img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        img[rng.integers(0, h - 10) :][:10, :, rng.integers(0, 3)] = 255  # some structure
        skimage.io.imsave(sub / f"img{i:02d}.png", img, check_contrast=False)
    return root


def brute_force(net: nn.Module, paths: list[str], layer: str, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All activations at once, then a stable descending sort per channel (earlier image first on ties)."""
    x = PREP.normalize(torch.stack([prepare_image(p, PREP) for p in paths]))
    with torch.no_grad(), cnnlens.capture(net, layer) as cap:
        net(x)
    act = cap[layer]
    flat = act.flatten(2)
    unit = flat.amax(2)  # (N, C)
    pos = torch.stack([torch.nonzero(flat[n, c] == unit[n, c])[0, 0] for n in range(flat.shape[0]) for c in range(flat.shape[1])])
    pos = pos.view(flat.shape[0], flat.shape[1])
    order = torch.sort(unit.T, dim=1, descending=True, stable=True).indices[:, :k]  # (C, k)
    return unit.T.gather(1, order), order, pos.T.gather(1, order)


@pytest.mark.parametrize("batch_size", [1, 5, 32])
def test_streamed_topk_equals_brute_force(folder: Path, batch_size: int) -> None:
    net = tiny_net()
    before = model_state(net)
    r = top_patches(net, [f'4:{c}' for c in range(6)], folder, k=4, settings=PatchSettings(batch_size=batch_size, min_inside=0), **QUIET)
    assert model_state(net) == before
    paths = [str(p) for p in cnnlens.folders.list_images(folder)]
    values, order, pos = brute_force(net, paths, "4", 4)
    width = 24
    for c in range(6):
        got = r.patches[c]
        assert [p.image for p in got] == [paths[i] for i in order[c]]
        assert torch.allclose(torch.tensor([p.activation for p in got]), values[c], rtol=1e-5, atol=1e-6)
        assert [p.position for p in got] == [divmod(int(v), width) for v in pos[c]]
    # the dead channel ties at 0 everywhere: the first k images in order, at position (0, 0)
    assert [p.image_index for p in r.patches[3]] == [0, 1, 2, 3] and all(p.activation == 0 for p in r.patches[3])
    assert r.mean_activation[3] == 0
    assert r.dead_channels == [3] and r.to_dict()["dead_channels"] == [3] and "channel 3 of 4 never fired" in r.warnings[0]


def test_threads_give_the_same_result(folder: Path) -> None:
    net = tiny_net()
    one = top_patches(net, '4', folder, k=3, settings=PatchSettings(batch_size=4), **QUIET)
    two = top_patches(net, '4', folder, k=3, settings=PatchSettings(batch_size=4, workers=3), **QUIET)
    assert one.all_patches() == two.all_patches() and one.mean_activation == two.mean_activation


def test_crops_hold_the_whole_receptive_field(folder: Path) -> None:
    net = tiny_net().train()  # left in train mode: every call must run in eval and restore it
    before = model_state(net)
    r = top_patches(net, '3', folder, n_channels=3, k=5, settings=PatchSettings(batch_size=4, min_inside=0), **QUIET)
    rf = cnnlens.report(net, (1, 3, 48, 48))["3"].receptive_field
    assert r.receptive_field == rf and rf.size == (11, 11) and rf.stride == (2, 2)
    flat = r.all_patches()
    assert len(flat) == 15 and all(p.box == rf.box(*p.position) for p in flat)
    assert all(c.shape == (3, 11, 11) for ch in r.channels for c in r.crops[ch])
    recorded = torch.tensor([p.activation for p in flat])
    again = replay(net, r)
    assert torch.allclose(again, recorded, rtol=1e-5, atol=1e-5)
    shrunk = replay(net, r, shrink=1)  # control: lose one pixel ring and most values change
    assert ((shrunk - recorded).abs() > 1e-4).float().mean() > 0.5
    add_projections(net, r, method="guided", batch_size=4, progress=False)
    assert all(g.shape == (3, 11, 11) for c in r.channels for g in r.projections[c])
    assert model_state(net) == before
    # default channels are those with the highest mean unit value
    all_means = top_patches(net, [f'3:{c}' for c in range(6)], folder, k=1, settings=PatchSettings(crops=False, min_inside=0), **QUIET).mean_activation
    assert r.channels == sorted(all_means, key=lambda c: -all_means[c])[:3]


def test_projections_in_one_call_equal_add_projections(folder: Path) -> None:
    net = tiny_net()
    one = top_patches(net, '4', folder, k=2, n_channels=2, settings=PatchSettings(method='deconvnet'), **QUIET)
    two = add_projections(net, top_patches(net, "4", folder, k=2, n_channels=2, **QUIET), progress=False)
    assert one.method == "deconvnet" and one.to_dict()["deconv_method"] == "deconvnet"
    assert all(torch.equal(a, b) for c in one.channels for a, b in zip(one.projections[c], two.projections[c]))


def brute_force_masked(net: nn.Module, paths: list[str], layer: str, channels: list[int], mask: torch.Tensor, k: int) -> torch.Tensor:
    x = PREP.normalize(torch.stack([prepare_image(p, PREP) for p in paths]))
    with torch.no_grad(), cnnlens.capture(net, layer) as cap:
        net(x)
    act = cap[layer][:, channels]
    unit = act[:, :, mask].amax(2).T  # (C, N): the maximum over the counted positions
    return torch.sort(unit, dim=1, descending=True, stable=True).indices[:, :k]


@pytest.mark.parametrize("min_inside", [1.0, 0.5])
def test_border_units_keep_most_of_their_field_inside_the_image(folder: Path, min_inside: float) -> None:
    net = tiny_net()
    r = top_patches(net, ['4:0', '4:1', '4:2'], folder, k=4, settings=PatchSettings(min_inside=min_inside), **QUIET)
    rf = r.receptive_field
    flat = r.all_patches()

    def share(box: tuple[int, int, int, int]) -> float:
        h = max(0, min(box[2], 48) - max(box[0], 0)) / (box[2] - box[0])
        w = max(0, min(box[3], 48) - max(box[1], 0)) / (box[3] - box[1])
        return h * w

    assert all(share(p.box) >= min_inside - 1e-9 for p in flat)
    mask = torch.tensor([[share(rf.box(i, j)) >= min_inside - 1e-9 for j in range(24)] for i in range(24)])
    assert torch.equal(border_mask(rf, (24, 24), (48, 48), min_inside), mask) and 0 < int(mask.sum()) < 24 * 24
    paths = [str(p) for p in cnnlens.folders.list_images(folder)]
    order = brute_force_masked(net, paths, "4", [0, 1, 2], mask, 4)
    for c in range(3):
        assert [p.image_index for p in r.patches[c]] == order[c].tolist()
    assert torch.allclose(replay(net, r), torch.tensor([p.activation for p in flat]), rtol=1e-5, atol=1e-5)
    assert load_index(json.loads(json.dumps(r.to_dict())), progress=False).min_inside == min_inside


def test_border_mask_falls_back_to_the_largest_share() -> None:
    from cnnlens.receptive_field import ReceptiveField

    rf = ReceptiveField((40, 40), (8, 8), (24, 24))  # a field much larger than a 24 px image
    # per axis the fields [-24, 16), [-16, 24), [-8, 32) have 0.4, 0.6, 0.6 inside: no unit reaches 0.5 in area
    mask = border_mask(rf, (3, 3), (24, 24), 0.5)
    assert mask.tolist() == [[False] * 3, [False, True, True], [False, True, True]]  # those with the largest share, 0.36
    assert border_mask(rf, (3, 3), (24, 24), 0.0).all()


def test_crop_and_paste_pad_with_fill() -> None:
    img = torch.arange(2 * 4 * 5, dtype=torch.float32).view(2, 4, 5)
    crop = crop_box(img, (-1, 3, 2, 7), fill=(-1.0, -2.0))
    assert crop.shape == (2, 3, 4)
    assert torch.equal(crop[:, 1:, :2], img[:, 0:2, 3:5])
    assert (crop[0, 0] == -1).all() and (crop[1, :, 2:] == -2).all()
    canvas = paste_box(crop, (-1, 3, 2, 7), (4, 5), fill=(9.0, 9.0))
    assert torch.equal(canvas[:, 0:2, 3:5], img[:, 0:2, 3:5]) and (canvas[:, 2:] == 9).all()


def test_index_reproduces_the_figure(folder: Path, tmp_path: Path) -> None:
    net = tiny_net()
    r = top_patches(net, ["4:0", "4:2"], folder, k=3, **QUIET)
    index = json.loads(json.dumps(r.to_dict()))
    assert index["units"] == ["4:0", "4:2"] and index["min_inside"] == 0.5 and index["model"] == "Sequential"
    again = load_index(index, progress=False)
    assert again.all_patches() == r.all_patches()
    for c in r.channels:
        assert all(torch.equal(a, b) for a, b in zip(r.crops[c], again.crops[c]))
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    pixels = []
    for fig in (plot_patches(r), plot_patches(again)):
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        pixels.append(np.asarray(canvas.buffer_rgba()))
    assert np.array_equal(*pixels)
    saved = r.save(tmp_path / "index.json")
    assert load_index(saved, progress=False).all_patches() == r.all_patches()  # a path works too
    with pytest.raises(cnnlens.CnnlensError, match="index: not a cnnlens patches index"):
        load_index({"layer": "4"})
    (tmp_path / "bad.json").write_bytes(b"\xff\xfe")
    with pytest.raises(cnnlens.CnnlensError, match="index: cannot read"):
        load_index(tmp_path / "bad.json")


def test_errors(folder: Path) -> None:
    net = tiny_net().train()
    before = model_state(net)
    with pytest.raises(cnnlens.CnnlensError, match="unit: channel 6 out of range, 4 has channels 0..5"):
        top_patches(net, "4:6", folder, **QUIET)
    with pytest.raises(cnnlens.CnnlensError, match="unit: unknown layer '9'"):
        top_patches(net, "9", folder, **QUIET)
    with pytest.raises(cnnlens.CnnlensError, match="without @Y,X"):
        top_patches(net, "4:1@2,2", folder, **QUIET)
    with pytest.raises(cnnlens.CnnlensError, match="one layer at a time"):
        top_patches(net, ["3:1", "4:1"], folder, **QUIET)
    with pytest.raises(cnnlens.CnnlensError, match="logits have no receptive field"):
        top_patches(cnnlens.create_model("mnist-cnn", seed=0), "logits:3", folder, progress=False)
    head = nn.Sequential(tiny_net(), nn.AdaptiveAvgPool2d(1))
    with pytest.raises(cnnlens.CnnlensError, match="global"):
        top_patches(head, "1", folder, **QUIET)
    empty = folder.parent / "empty"
    empty.mkdir()
    with pytest.raises(cnnlens.CnnlensError, match="no images"):
        top_patches(net, "4", empty, **QUIET)
    cases = [
        ({"limit": 0}, "limit must be >= 1"),
        ({"k": 0}, "k must be >= 1"),
        ({"min_inside": 1.5}, "min_inside must be <= 1"),
        ({"min_inside": float("nan")}, "min_inside must be a finite number"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"method": "lrp"}, "method: unknown method"),
    ]
    for kwargs, match in cases:
        with pytest.raises(cnnlens.CnnlensError, match=match):
            knobs = PatchSettings(**{k: kwargs.pop(k) for k in list(kwargs) if k in PatchSettings.__dataclass_fields__})
            top_patches(net, "4", folder, **QUIET, **kwargs, settings=knobs)
    bad = folder / "a" / "zz_bad.png"
    bad.write_bytes(b"not an image")
    for workers in (0, 2):
        with pytest.raises(cnnlens.CnnlensError, match="cannot read image .*zz_bad.png"):
            top_patches(net, '4', folder, settings=PatchSettings(workers=workers), **QUIET)
    assert model_state(net) == before


def test_limit_spreads_over_the_folder(folder: Path) -> None:
    paths = list(select_images(folder, 4).values())
    every = cnnlens.folders.list_images(folder)
    assert len(paths) == 4 and paths[0] == every[0] and {p.parent.name for p in paths} == {"a", "b"}


def test_in_memory_images_grey_models_and_progress(capsys: pytest.CaptureFixture[str]) -> None:
    model = cnnlens.create_model("lenet5", seed=0)  # 1 x 32 x 32 grey, tanh
    images = torch.rand(5, 3, 40, 36, generator=torch.Generator().manual_seed(0))
    r = top_patches(model, "3", images, k=2, n_channels=3)
    err = capsys.readouterr().err
    assert "patches 3: started, 0/5 img" in err and "patches 3: done, 5/5 img" in err  # stderr is no terminal here
    assert r.input_size == (32, 32) and r.n_images == 5 and len(r.channels) == 3
    assert all(p.image.startswith("images[") for p in r.all_patches())
    assert all(c.shape[0] == 1 for ch in r.channels for c in r.crops[ch])
    recorded = torch.tensor([p.activation for p in r.all_patches()])
    assert torch.allclose(replay(model, r), recorded, atol=1e-5)
    d = r.to_dict()
    assert d["model"] == "lenet5" and d["random_init"] and d["preprocessing"]["channels"] == 1
    with pytest.raises(cnnlens.CnnlensError, match="in-memory images"):
        load_index(d, progress=False)
    again = load_index(d, images=images, progress=False)
    assert all(torch.equal(a, b) for c in r.channels for a, b in zip(r.crops[c], again.crops[c]))
    title = r.figure().texts[0].get_text().replace("\n", " ")
    assert "lenet5 (random init, seed 0)" in title and "layer 3" in title and "at least 50% inside" in title
    assert "PatchResult(model='lenet5'" in repr(r) and "data:image/png;base64," in r._repr_html_()
    with pytest.raises(cnnlens.CnnlensError, match="takes 64-channel tensors, not images"):
        top_patches(cnnlens.create_model("three-3x3", seed=0), "0", images, progress=False)
    with pytest.raises(cnnlens.CnnlensError, match="size 16 is below lenet5's minimum input of 32x32"):
        top_patches(model, "3", images, size=16, progress=False)


def test_patches_cli_and_from_index(folder: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out, index = tmp_path / "p.png", tmp_path / "p.json"
    args = ["patches", "squeezenet1_0", "-w", "none", "-u", "features.3", "--data", str(folder), "--top", "2", "--num-channels", "2", "--batch-size", "4", "--limit", "6"]
    res = runner.invoke(cli, [*args, "-o", str(out), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["layer"] == "features.3" and len(data["channels"]) == 2 and data["n_images"] == 6
    assert data["receptive_field"] == {"size": [19, 19], "stride": [4, 4], "padding": [4, 4]}
    assert data["weights"] == "random init, seed 0" and data["random_init"] is True
    first = data["channels"][0]["patches"][0]
    assert set(first) == {"rank", "image", "image_index", "position", "box", "activation"}
    assert "patches features.3: started" in res.stderr and "patches features.3: done, 6/6 img" in res.stderr
    res = runner.invoke(cli, [*args, "-o", str(index)], catch_exceptions=False)  # -o FILE.json saves the index
    assert res.exit_code == 0 and json.loads(index.read_text()) == data  # the same --seed: the same random init
    other = runner.invoke(cli, [*args, "--seed", "1", "--json"], catch_exceptions=False)
    assert other.exit_code == 0 and json.loads(other.stdout)["channels"] != data["channels"]
    before = out.read_bytes()
    res = runner.invoke(cli, [*args, "-o", str(out)])
    assert res.exit_code == 2 and "exists" in res.output and out.read_bytes() == before
    again = tmp_path / "again.png"
    res = runner.invoke(cli, ["patches", "squeezenet1_0", "--from-index", str(index), "-o", str(again)], catch_exceptions=False)
    assert res.exit_code == 0, res.output  # no model needed (nor weights): the index and the image files suffice
    import skimage.io

    assert np.array_equal(skimage.io.imread(out), skimage.io.imread(again))
    res = runner.invoke(cli, ["patches", "alexnet", "--from-index", str(index), "-o", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "made with squeezenet1_0, not alexnet" in res.output
    res = runner.invoke(cli, ["patches", "squeezenet1_0", "-w", "none", "-u", "features.3"])
    assert res.exit_code == 2 and "--data" in res.output
    res = runner.invoke(cli, [*args, "-u", "features.3:999", "-o", str(tmp_path / "c.png")])
    assert res.exit_code == 2 and res.output == "Error: --unit: give either the layer features.3 or channels of it (LAYER:CHANNEL), not both\n"
    res = runner.invoke(cli, [*args[:4], "-u", "features.3:999", *args[6:], "-o", str(tmp_path / "c.png")])
    assert res.exit_code == 2 and res.output == "Error: --unit: channel 999 out of range, features.3 has channels 0..127\n"
    assert not (tmp_path / "c.png").exists()


@pytest.mark.slow
def test_patches_cli_bad_image_with_a_worker_is_one_line(folder: Path, tmp_path: Path) -> None:
    """A bad image under --workers 1: one Error line, no traceback, nothing written, nothing left in TMPDIR."""
    import os
    import subprocess
    import sys

    broken = folder / "b" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    tmp = tmp_path / ("t" * 90)  # a long TMPDIR: AF_UNIX socket paths would not fit
    tmp.mkdir()
    out = tmp_path / "p.png"
    env = {**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}
    code = "from cnnlens.cli import main; main()"
    args = ["patches", "mnist-cnn", "-w", "none", "--data", str(folder), "-u", "conv1", "--workers", "1", "-o", str(out)]
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120)
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error")]
    assert res.returncode == 2 and errors == [f"Error: cannot read image {broken}: UnidentifiedImageError: cannot identify image file '{broken}'"], res.stderr
    assert "Traceback" not in res.stderr and not out.exists()
    assert [p for p in tmp.rglob("*") if p.is_socket() or p.name.startswith("pymp-")] == []


def test_patches_cli_on_every_registry_source(folder: Path, tmp_path: Path, file_model: str, two_input_model: str) -> None:
    """One model per source with -w none --seed 0 and tiny sizes; models that take no images refuse in one line."""
    pytest.importorskip("timm")
    cases = {
        "squeezenet1_0": ["-u", "features.4", "--size", "48"],
        "lenet5": ["-u", "3"],
        "mnist-cnn": [],  # default: the last spatial layer
        file_model: ["-u", "features.1"],  # features.1: the ReLU after its first conv
        "timm/resnet18": ["-u", "layer2", "--size", "48"],
    }
    runner = CliRunner()
    for name, args in cases.items():
        res = runner.invoke(cli, ["patches", name, "-w", "none", "--seed", "0", "--data", str(folder), "--limit", "4", "-k", "2", "--num-channels", "2", *args, "--json"])
        assert res.exit_code == 0, (name, res.output)
        data = json.loads(res.stdout)
        assert data["random_init"] and data["n_images"] == 4 and len(data["channels"]) == 2, name
    for name in ("three-3x3", "mlp-mnist", two_input_model):
        res = runner.invoke(cli, ["patches", name, "-w", "none", "--data", str(folder), "-o", str(tmp_path / "no.png")])
        assert res.exit_code == 2 and res.output.startswith("Error: ") and len(res.output.strip().splitlines()) == 1, res.output
        assert not (tmp_path / "no.png").exists()


@pytest.mark.data
def test_trained_squeezenet_patches_replay_and_brute_force(squeezenet_trained: nn.Module, data: Path) -> None:
    """Must-show on real data: streamed top-k = brute force, and each crop alone gives its activation back."""
    folder = data / "imagenet_samples"
    prep = cnnlens.model_info(squeezenet_trained).preprocessing
    before = model_state(squeezenet_trained)
    r = top_patches(squeezenet_trained, ['features.7:5', 'features.7:17', 'features.7:100'], folder, k=4, limit=12, progress=False, settings=PatchSettings(batch_size=5, min_inside=0))
    assert model_state(squeezenet_trained) == before
    recorded = torch.tensor([p.activation for p in r.all_patches()])
    again = replay(squeezenet_trained, r)
    err = ((again - recorded).abs() / recorded.abs().clamp_min(1)).max().item()
    print(f"replay: max relative error {err:.2e} over {len(recorded)} crops (tolerance 1e-4)")
    assert err < 1e-4
    shrunk = replay(squeezenet_trained, r, shrink=10)  # control: a crop 20 px smaller loses part of what the unit sees
    assert ((shrunk - recorded).abs() / recorded.abs().clamp_min(1) > 1e-3).float().mean() > 0.5
    paths = list(select_images(folder, 12))
    x = prep.normalize(torch.stack([prepare_image(p, prep) for p in paths]))
    with torch.no_grad(), cnnlens.capture(squeezenet_trained, "features.7") as cap:
        squeezenet_trained(x)
    unit = cap["features.7"][:, [5, 17, 100]].flatten(2).amax(2).T  # (3, 12)
    order = torch.sort(unit, dim=1, descending=True, stable=True).indices[:, :4]
    for row, c in enumerate([5, 17, 100]):
        assert [p.image for p in r.patches[c]] == [paths[i] for i in order[row]]
        assert torch.allclose(torch.tensor([p.activation for p in r.patches[c]]), unit[row, order[row]], rtol=1e-5)


def test_unit_maxima_equal_masking_every_map() -> None:
    """The maxima over the inside positions are taken from the whole map first and searched again only
    where the first maximum lies on the border: the same values and earliest positions as masking
    every map, with ties and border maxima made on purpose."""
    from cnnlens.units.patches import _unit_maxima

    g = torch.Generator().manual_seed(0)
    act = torch.randint(0, 4, (5, 7, 6, 6), generator=g).float()  # few values: many ties
    act[0, 0, 0, 0] = 9.0  # maximum on the border
    act[1, 1] = 2.0  # a flat map
    outside = torch.zeros(6, 6, dtype=torch.bool)
    outside[0, :] = outside[:, 0] = outside[5, 5] = True
    value, where = _unit_maxima(act, outside)
    expected_value, expected_where = act.masked_fill(outside, -math.inf).flatten(2).max(dim=2)
    assert torch.equal(value, expected_value) and torch.equal(where, expected_where)
    first = (act.masked_fill(outside, -math.inf).flatten(2) == expected_value[..., None]).float().argmax(2)
    assert torch.equal(where, first)  # the earliest inside position of the maximum
    assert not bool(outside.reshape(-1)[where].any())
    assert value[0, 0] < 9.0
    full_value, full_where = _unit_maxima(act, None)
    assert torch.equal(full_value, act.flatten(2).amax(2))
