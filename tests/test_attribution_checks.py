"""Faithfulness curves (deletion/insertion, Petsiuk et al. 2018) and the cascading randomization test
(Adebayo et al. 2018): exact on models whose evidence is known, seeded, the model left as it was."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

import cnnlens
from cnnlens.attribution.faithfulness import pixel_order
from cnnlens.attribution import (
    RANDOM,
    AttributionSettings,
    area,
    attribute,
    cascade_blocks,
    deletion_insertion,
    randomization_test,
    spearman,
)
from cnnlens.errors import CnnlensError
from cnnlens.pixelnet import pixel_model
from cnnlens.pixels import Preprocessing
from cnnlens.results import jsonable
from cnnlens.testing import model_state

GREY_MEAN = Preprocessing(mean=(0.5, 0.5, 0.5), std=(1.0, 1.0, 1.0), resize_size=None, crop_size=None)


class Quadrant(nn.Module):
    """Class 0's logit is 20 x the mean of the (normalized) top-left quadrant of the red channel: its
    evidence is known exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(20.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        s = x[:, 0, :h, :w].mean((1, 2))
        return torch.stack([self.scale * s, torch.zeros_like(s)], 1)


def _quadrant_images(n: int = 3) -> torch.Tensor:
    x = torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.2 + 0.4
    x[:, 0, :8, :8] = 1.0
    return x


def test_area_and_pixel_order() -> None:
    assert float(area(torch.ones(5))) == 1.0
    assert float(area(torch.linspace(1, 0, 5))) == pytest.approx(0.5)
    assert float(area(torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0]))) == pytest.approx(0.125)
    m = torch.zeros(4, 4)
    m[0, 0], m[3, 3] = 2.0, 1.0
    order = pixel_order(m, torch.Generator().manual_seed(0))
    assert order[:2].tolist() == [0, 15] and sorted(order.tolist()) == list(range(16))
    ties = pixel_order(torch.zeros(8, 8), torch.Generator().manual_seed(0))
    assert ties.tolist() != list(range(64))  # equal values in a random order, not top to bottom
    assert torch.equal(ties, pixel_order(torch.zeros(8, 8), torch.Generator().manual_seed(0)))


def test_deletion_and_insertion_find_the_known_evidence() -> None:
    model = Quadrant()
    x = _quadrant_images()
    r = attribute(model, x, ["saliency", "integrated-gradients"], target=0, preprocessing=GREY_MEAN, settings=AttributionSettings(ig_steps=8), progress=False)
    assert float(r["saliency"][:, 8:, :].abs().max()) == 0 and float(r["saliency"][:, :8, :8].min()) > 0  # the oracle map
    f = deletion_insertion(model, r, steps=8, seed=0, progress=False)
    assert f.methods == ("saliency", "integrated-gradients", RANDOM)
    dele, ins = f.curves["deletion"], f.curves["insertion"]
    assert dele["saliency"].shape == (3, 9) and f.fractions[2] == 0.25
    torch.testing.assert_close(dele["saliency"][:, 0], r.target_probability)  # nothing removed yet
    for m in f.methods:  # everything replaced by the mean: logit 0, probability 1/2
        torch.testing.assert_close(dele[m][:, -1], torch.full((3,), 0.5))
        torch.testing.assert_close(ins[m][:, -1], r.target_probability)
    # the quadrant is a quarter of the image: the oracle removes it in the first quarter of the curve
    assert torch.allclose(dele["saliency"][:, 2], torch.full((3,), 0.5), atol=1e-6)
    for m in ("saliency", "integrated-gradients"):
        assert bool((f.auc("deletion", m) < f.auc("deletion", RANDOM)).all())
        assert bool((f.auc("insertion", m) > f.auc("insertion", RANDOM)).all())
        assert f.better_than_random("deletion", m) == 1.0 == f.better_than_random("insertion", m)
    d = json.loads(json.dumps(jsonable(f.to_dict())))
    assert d["curves"]["deletion"]["saliency"]["mean_auc"] == pytest.approx(float(f.auc("deletion", "saliency").mean()))
    assert d["curves"]["deletion"]["saliency"]["better_than_random"] == 1.0 and len(d["images"]) == 3
    assert "deletion and insertion" in f.figure()._suptitle.get_text() and "Quadrant" in f.figure(0)._suptitle.get_text()  # type: ignore[union-attr]
    # each method is drawn beside its own random baseline: grouped in the legend, its label naming the baseline
    legend = [t.get_text() for ax in f.figure().axes for leg in [ax.get_legend()] if leg for t in leg.get_texts()]
    assert any(t.startswith("random (") and t.endswith("baseline of saliency, integrated-gradients") for t in legend), legend
    assert any(t.startswith("saliency (") and " vs random (" in t for t in legend), legend


def test_faithfulness_repeats_under_its_seed_and_leaves_the_model() -> None:
    model = cnnlens.create_model("mnist-cnn", seed=0).train()
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    before = model_state(model)
    r = attribute(model, x, ["gradcam", "saliency"], seed=3, settings=AttributionSettings(faithfulness_steps=4), checks=["faithfulness"], progress=False)
    again = attribute(model, x, ["gradcam", "saliency"], seed=3, settings=AttributionSettings(faithfulness_steps=4), checks=["faithfulness"], progress=False)
    other = attribute(model, x, ["gradcam", "saliency"], seed=4, settings=AttributionSettings(faithfulness_steps=4), checks=["faithfulness"], progress=False)
    assert model_state(model) == before and model.training
    assert r.faithfulness is not None and again.faithfulness is not None and other.faithfulness is not None
    assert torch.equal(r.faithfulness.curves["deletion"][RANDOM], again.faithfulness.curves["deletion"][RANDOM])
    assert not torch.equal(r.faithfulness.curves["deletion"][RANDOM], other.faithfulness.curves["deletion"][RANDOM])
    d = r.to_dict()
    assert set(d["faithfulness"]) == {"deletion", "insertion"} and "auc" in d["images"][0]
    assert "deletion area" in r.to_text()
    fig = r.figure(0)
    assert len(fig.axes) == 3 + 2  # image, two maps; two curves


def test_spearman_equals_scipy_with_ties() -> None:
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (20, 20), generator=g).float()  # many ties, as Grad-CAM's zeros
    b = a + torch.randint(0, 3, (20, 20), generator=g).float()
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a.flatten().numpy(), b.flatten().numpy()).statistic, abs=1e-12)
    assert spearman(a, a) == pytest.approx(1.0) and spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, torch.zeros(20, 20)) == 0.0  # a constant map has no ranks


def test_cascade_blocks_go_from_the_top_in_natural_blocks() -> None:
    resnet = cnnlens.create_model("resnet18", seed=0)
    prep = cnnlens.model_info(resnet).preprocessing
    blocks = cascade_blocks(resnet, pixel_model(resnet, prep), torch.rand(1, 3, 64, 64))
    assert [b for b, _ in blocks] == ["fc", "layer4.1", "layer4.0", "layer3.1", "layer3.0", "layer2.1", "layer2.0", "layer1.1", "layer1.0", "bn1", "conv1"]
    assert dict(blocks)["layer4.0"] == [
        "layer4.0.conv1", "layer4.0.bn1", "layer4.0.conv2", "layer4.0.bn2", "layer4.0.downsample.0", "layer4.0.downsample.1"
    ]
    mobile = cnnlens.create_model("mobilenet_v2", seed=0)
    names = [b for b, _ in cascade_blocks(mobile, pixel_model(mobile, prep), torch.rand(1, 3, 64, 64))]
    assert names == ["classifier.1", *(f"features.{i}" for i in range(18, -1, -1))]


def test_randomization_test_decorrelates_and_leaves_the_model() -> None:
    model = cnnlens.create_model("resnet18", seed=0)
    before = model_state(model)
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    r = attribute(model, x, ["gradcam", "saliency"], seed=0, settings=AttributionSettings(sanity_blocks=3), checks=["sanity"], progress=False)
    t = r.sanity
    assert t is not None and model_state(model) == before
    assert t.blocks == ["fc", "layer4.1", "layer4.0"] and t.correlations["gradcam"].shape == (3, 4)
    assert bool((t.correlations["gradcam"][:, 0] == 1).all())
    assert float(t.mean_curve("gradcam")[-1]) < 0.9  # re-initialising the top changes what Grad-CAM reads
    assert t.examples["saliency"].shape == (4, 64, 64)
    torch.testing.assert_close(t.examples["gradcam"][0], r["gradcam"][0])
    again = randomization_test(model, r, max_blocks=3, seed=0, progress=False)
    other = randomization_test(model, r, max_blocks=3, seed=1, progress=False)
    assert torch.equal(again.correlations["gradcam"], t.correlations["gradcam"])
    assert not torch.equal(other.correlations["gradcam"], t.correlations["gradcam"])
    d = json.loads(json.dumps(jsonable(r.to_dict())))
    assert d["sanity"]["blocks"] == ["(trained)", "fc", "layer4.1", "layer4.0"] and len(d["sanity"]["methods"]["gradcam"]["mean"]) == 4
    fig = t.figure()
    assert "randomization" in fig._suptitle.get_text()  # type: ignore[union-attr]
    assert "rank correlation" in r.to_text()
    extra = randomization_test(model, r, methods=["guided-backprop"], max_blocks=1, progress=False)
    assert extra.methods == ("guided-backprop",) and extra.correlations["guided-backprop"].shape == (3, 2)
    with pytest.raises(CnnlensError, match="max_blocks must be >= 1"):
        randomization_test(model, r, max_blocks=0, progress=False)


def test_the_insertion_blur_is_what_the_docs_say() -> None:
    """docs/attribution.md: torchvision's gaussian_blur, sigma 5 px at 224 px on an 11 x 11 kernel,
    reflect padding -- recomputed here against a blur written out by hand."""
    import torch.nn.functional as F

    from cnnlens.attribution.faithfulness import _blur, blur_sigma

    assert blur_sigma((224, 224)) == 5.0 and blur_sigma((112, 300)) == 2.5
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    k = torch.exp(-((torch.arange(11) - 5.0) ** 2) / (2 * 5.0**2))
    k = k / k.sum()
    kernel = (k[:, None] * k[None, :]).expand(3, 1, 11, 11)
    by_hand = F.conv2d(F.pad(x, (5, 5, 5, 5), mode="reflect"), kernel, groups=3)
    torch.testing.assert_close(_blur(x), by_hand, atol=1e-5, rtol=1e-5)
