"""Maximal dataset patches: streamed top-k = brute force, crops hold the whole receptive field,
the JSON index reproduces the figure, the `patches` command."""

from __future__ import annotations

import json
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
from cnnlens.units import crop_box, load_index, paste_box, plot_patches, prepare_image, replay, select_images, top_patches


PREP = Preprocessing(crop_size=48, resize_size=52)


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
    r = top_patches(net, "4", folder, channels=list(range(6)), k=4, batch_size=batch_size, preprocessing=PREP)
    assert model_state(net) == before
    paths = [str(p) for p in cnnlens.images.list_images(folder)]
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


def test_crops_hold_the_whole_receptive_field(folder: Path) -> None:
    net = tiny_net().train()  # left in train mode: every call must run in eval and restore it
    before = model_state(net)
    r = top_patches(net, "3", folder, n_channels=3, k=5, batch_size=4, preprocessing=PREP)
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
    from cnnlens.units import add_projections

    add_projections(net, r, method="guided", batch_size=4)
    assert all(g.shape == (3, 11, 11) for c in r.channels for g in r.projections[c])
    assert model_state(net) == before
    # default channels are those with the highest mean unit value
    all_means = top_patches(net, "3", folder, channels=list(range(6)), k=1, preprocessing=PREP, crops=False).mean_activation
    assert r.channels == sorted(all_means, key=lambda c: -all_means[c])[:3]


def test_interior_units_keep_their_field_inside_the_image(folder: Path) -> None:
    net = tiny_net()
    r = top_patches(net, "4", folder, channels=[0, 1, 2], k=4, preprocessing=PREP, interior=True)
    flat = r.all_patches()
    assert all(p.box[0] >= 0 and p.box[1] >= 0 and p.box[2] <= 48 and p.box[3] <= 48 for p in flat)
    paths = [str(p) for p in cnnlens.images.list_images(folder)]
    x = PREP.normalize(torch.stack([prepare_image(p, PREP) for p in paths]))
    with torch.no_grad(), cnnlens.capture(net, "4") as cap:
        net(x)
    rf = r.receptive_field
    inside = [(i, j) for i in range(24) for j in range(24) if min(rf.box(i, j)) >= 0 and max(rf.box(i, j)[2:]) <= 48]
    act = cap["4"][:, :3]
    unit = torch.stack([act[:, :, i, j] for i, j in inside], dim=2).amax(2).T  # (3, N)
    order = torch.sort(unit, dim=1, descending=True, stable=True).indices[:, :4]
    for c in range(3):
        assert [p.image_index for p in r.patches[c]] == order[c].tolist()
    assert torch.allclose(replay(net, r), torch.tensor([p.activation for p in flat]), rtol=1e-5, atol=1e-5)
    assert load_index(json.loads(json.dumps(r.to_dict()))).interior


def test_crop_and_paste_pad_with_fill() -> None:
    img = torch.arange(2 * 4 * 5, dtype=torch.float32).view(2, 4, 5)
    crop = crop_box(img, (-1, 3, 2, 7), fill=(-1.0, -2.0))
    assert crop.shape == (2, 3, 4)
    assert torch.equal(crop[:, 1:, :2], img[:, 0:2, 3:5])
    assert (crop[0, 0] == -1).all() and (crop[1, :, 2:] == -2).all()
    canvas = paste_box(crop, (-1, 3, 2, 7), (4, 5), fill=(9.0, 9.0))
    assert torch.equal(canvas[:, 0:2, 3:5], img[:, 0:2, 3:5]) and (canvas[:, 2:] == 9).all()


def test_index_reproduces_the_figure(folder: Path) -> None:
    net = tiny_net()
    r = top_patches(net, "4", folder, channels=[0, 2], k=3, preprocessing=PREP)
    index = json.loads(json.dumps(r.to_dict()))
    again = load_index(index)
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
    with pytest.raises(cnnlens.CnnlensError, match="index"):
        load_index({"layer": "4"})


def test_errors(folder: Path) -> None:
    net = tiny_net()
    before = model_state(net)
    with pytest.raises(cnnlens.CnnlensError, match="out of range"):
        top_patches(net, "4", folder, channels=[6], preprocessing=PREP)
    assert model_state(net) == before
    head = nn.Sequential(tiny_net(), nn.AdaptiveAvgPool2d(1))
    with pytest.raises(cnnlens.CnnlensError, match="global"):
        top_patches(head, "1", folder, preprocessing=PREP)
    empty = folder.parent / "empty"
    empty.mkdir()
    with pytest.raises(cnnlens.CnnlensError, match="no images"):
        top_patches(net, "4", empty, preprocessing=PREP)
    with pytest.raises(cnnlens.CnnlensError, match="limit"):
        top_patches(net, "4", folder, limit=0, preprocessing=PREP)


def test_limit_spreads_over_the_folder(folder: Path) -> None:
    paths = select_images(folder, 4)
    every = cnnlens.images.list_images(folder)
    assert len(paths) == 4 and paths[0] == every[0] and {p.parent.name for p in paths} == {"a", "b"}


def test_patches_cli_and_from_index(folder: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out, index = tmp_path / "p.png", tmp_path / "p.json"
    args = ["patches", "squeezenet1_0", "--layer", "features.3", "--data", str(folder), "--top", "2", "--num-channels", "2", "--batch-size", "4", "--limit", "6"]
    res = runner.invoke(cli, [*args, "-o", str(out), "--json", str(index)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = json.loads(index.read_text())
    assert data["layer"] == "features.3" and len(data["channels"]) == 2 and data["n_images"] == 6
    assert data["receptive_field"] == {"size": [19, 19], "stride": [4, 4], "padding": [4, 4]}
    first = data["channels"][0]["patches"][0]
    assert set(first) == {"rank", "image", "image_index", "position", "box", "activation"}
    res = runner.invoke(cli, [*args, "-o", str(out)])
    assert res.exit_code == 2 and "exists" in res.output
    again = tmp_path / "again.png"
    res = runner.invoke(cli, ["patches", "squeezenet1_0", "--from-index", str(index), "-o", str(again)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    import skimage.io

    assert np.array_equal(skimage.io.imread(out), skimage.io.imread(again))
    res = runner.invoke(cli, ["patches", "squeezenet1_0", "--data", str(folder)])
    assert res.exit_code == 2 and "--layer" in res.output


@pytest.mark.data
def test_trained_squeezenet_patches_replay_and_brute_force(squeezenet_trained: nn.Module, data: Path) -> None:
    """Must-show on real data: streamed top-k = brute force, and each crop alone gives its activation back."""
    folder = data / "imagenet_samples"
    prep = cnnlens.preprocessing("squeezenet1_0")
    before = model_state(squeezenet_trained)
    r = top_patches(squeezenet_trained, "features.7", folder, channels=[5, 17, 100], k=4, limit=12, batch_size=5, preprocessing=prep)
    assert model_state(squeezenet_trained) == before
    recorded = torch.tensor([p.activation for p in r.all_patches()])
    again = replay(squeezenet_trained, r)
    err = ((again - recorded).abs() / recorded.abs().clamp_min(1)).max().item()
    print(f"replay: max relative error {err:.2e} over {len(recorded)} crops (tolerance 1e-4)")
    assert err < 1e-4
    shrunk = replay(squeezenet_trained, r, shrink=10)  # control: a crop 20 px smaller loses part of what the unit sees
    assert ((shrunk - recorded).abs() / recorded.abs().clamp_min(1) > 1e-3).float().mean() > 0.5
    paths = [str(p) for p in select_images(folder, 12)]
    x = prep.normalize(torch.stack([prepare_image(p, prep) for p in paths]))
    with torch.no_grad(), cnnlens.capture(squeezenet_trained, "features.7") as cap:
        squeezenet_trained(x)
    unit = cap["features.7"][:, [5, 17, 100]].flatten(2).amax(2).T  # (3, 12)
    order = torch.sort(unit, dim=1, descending=True, stable=True).indices[:, :4]
    for row, c in enumerate([5, 17, 100]):
        assert [p.image for p in r.patches[c]] == [paths[i] for i in order[row]]
        assert torch.allclose(torch.tensor([p.activation for p in r.patches[c]]), unit[row, order[row]], rtol=1e-5)
