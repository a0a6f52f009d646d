"""Several layers mined in one streaming pass: each layer's result equals mining it alone, the
network runs once per batch, shards merge to the same result, bad requests fail before any work."""

from __future__ import annotations

import json

import pytest
import torch

import cnnlens
from cnnlens.distributed import Sharding, merge
from cnnlens.pixels import Preprocessing
from cnnlens.units import PatchSet, PatchSettings, top_patches, top_patches_layers

PREP = Preprocessing(crop_size=64, resize_size=64)
QUIET = {"preprocessing": PREP, "progress": False}
NO_CROPS = {"crops": False}


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    return cnnlens.create_model("squeezenet1_0", seed=0)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(11, 3, 64, 64, generator=g)


UNITS = ["features.3", "features.7:2", "features.7:0", "features.12:5"]


def test_each_layer_equals_mining_it_alone(net: torch.nn.Module, images: torch.Tensor) -> None:
    found = top_patches_layers(net, UNITS, images, k=3, n_channels=4, settings=PatchSettings(batch_size=4, crops=False), **QUIET)
    assert isinstance(found, PatchSet)
    assert list(found.layers) == ["features.3", "features.7", "features.12"]
    assert found["features.7"].channels == [2, 0]
    alone = {
        "features.3": top_patches(net, 'features.3', images, k=3, n_channels=4, settings=PatchSettings(batch_size=4, crops=False), **QUIET),
        "features.7": top_patches(net, ['features.7:2', 'features.7:0'], images, k=3, settings=PatchSettings(batch_size=4, crops=False), **QUIET),
        "features.12": top_patches(net, 'features.12:5', images, k=3, settings=PatchSettings(batch_size=4, crops=False), **QUIET),
    }
    for layer, result in alone.items():
        assert json.dumps(found[layer].to_dict(), sort_keys=True) == json.dumps(result.to_dict(), sort_keys=True)
    assert len(found["features.3"].channels) == 4  # the 4 strongest by mean, as alone
    assert found.to_dict()["layers"]["features.12"]["units"] == ["features.12:5"]


def test_one_forward_pass_per_batch(net: torch.nn.Module, images: torch.Tensor) -> None:
    calls = []  # passes on real tensors (the geometry is computed on the meta device first)
    handle = net.features[0].register_forward_hook(lambda m, args, out: calls.append(1) if not out.is_meta else None)
    try:
        top_patches_layers(net, UNITS, images, k=2, settings=PatchSettings(batch_size=4, crops=False), **QUIET)
    finally:
        handle.remove()
    assert len(calls) == 3  # 11 images in batches of 4: three passes for all three layers


def test_shards_merge_to_the_one_process_result(net: torch.nn.Module, images: torch.Tensor, tmp_path) -> None:
    whole = top_patches_layers(net, UNITS, images, k=3, settings=PatchSettings(batch_size=4, crops=False), **QUIET)
    parts = [top_patches_layers(net, UNITS, images, k=3, settings=PatchSettings(batch_size=4, crops=False), sharding=Sharding(shard=f'{i}/2'), **QUIET) for i in range(2)]
    for i, part in enumerate(parts):
        part.save(tmp_path / f"part{i}.json")
    merged = merge([tmp_path / "part0.json", tmp_path / "part1.json"])
    assert isinstance(merged, PatchSet)
    a, b = whole.to_dict(), merged.to_dict()
    for layer in a["layers"]:  # in-memory images have names only; the rankings are the same
        assert a["layers"][layer]["channels"] == b["layers"][layer]["channels"]


def test_crops_are_cut_for_every_layer(net: torch.nn.Module, images: torch.Tensor) -> None:
    found = top_patches_layers(net, ["features.3:1", "features.7:0"], images, k=2, preprocessing=PREP, progress=False)
    for layer, result in found.layers.items():
        rf = result.receptive_field
        for crop, patch in zip(result.crops[result.channels[0]], result.patches[result.channels[0]]):
            top, left, bottom, right = patch.box
            assert tuple(crop.shape) == (3, bottom - top, right - left)
            assert (bottom - top, right - left) == tuple(rf.size)  # the whole receptive field, padded where it leaves the image


@pytest.mark.parametrize(
    ("units", "message"),
    [
        (["features.3", "featurs.7"], "features.7"),  # did-you-mean on the misspelt layer
        (["features.3", "features.3:1"], "either the layer"),
        (["features.3", "logits:1"], "logits"),
        (["features.3", "features.7:9999"], "out of range"),
        (["features.3", "classifier.3"], "receptive field"),
    ],
)
def test_bad_requests_fail_before_any_work(net: torch.nn.Module, images: torch.Tensor, units: list[str], message: str) -> None:
    calls = []
    handle = net.features[0].register_forward_hook(lambda m, args, out: calls.append(1) if not out.is_meta else None)
    try:
        with pytest.raises(cnnlens.CnnlensError, match=message):
            top_patches_layers(net, units, images, k=2, settings=PatchSettings(crops=False), **QUIET)
    finally:
        handle.remove()
    assert not calls  # checked on the meta device, before the first batch


def test_top_patches_still_refuses_two_layers(net: torch.nn.Module, images: torch.Tensor) -> None:
    with pytest.raises(cnnlens.CnnlensError, match="top_patches_layers"):
        top_patches(net, ["features.3:0", "features.7:0"], images, settings=PatchSettings(crops=False), **QUIET)
