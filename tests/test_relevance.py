"""LRP and concept relevance: equal to zennit where zennit applies, conserved where it cannot follow,
equal to gradient x input in the basic case, conditional heatmaps that add up, and the model left
as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torchvision
from click.testing import CliRunner

import cnnlens
from cnnlens.cli import cli
from cnnlens.errors import CnnlensError
from cnnlens.attribution import channel_heatmaps, concept_relevance
from cnnlens.relevance import RelevanceMode, composite, propagate
from cnnlens.relevance.rules import LinearRule

zennit = pytest.importorskip("zennit")
from zennit.attribution import Gradient  # noqa: E402
from zennit.canonizers import AttributeCanonizer, CompositeCanonizer, SequentialMergeBatchNorm  # noqa: E402
from zennit.composites import EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlus, EpsilonPlusFlat  # noqa: E402
from zennit.layer import Sum  # noqa: E402
from zennit.torchvision import ResNetCanonizer, VGGCanonizer  # noqa: E402

IDENTITY = cnnlens.Preprocessing(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), resize_size=None, crop_size=None, source="identity")


def _randomize_batchnorm(net: nn.Module, seed: int = 0) -> nn.Module:
    """Random BatchNorm statistics (a fresh one is the identity), and eps 0: zennit keeps a merged
    BatchNorm's eps, so its 'identity' BatchNorm scales by 1/sqrt(1 + eps) (module docstring of
    cnnlens.relevance.mode); with eps 0 both compute the same function."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.eps = 0.0
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
    return net


def _zennit(net: nn.Module, x: torch.Tensor, targets: torch.Tensor, comp: object) -> torch.Tensor:
    net.eval()
    with Gradient(model=net, composite=comp) as attributor:
        _, rel = attributor(x, lambda out: torch.eye(out.shape[1], dtype=out.dtype)[targets] * out)
    return rel


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


ZENNIT_COMPOSITES = [
    ("epsilon-plus-flat", lambda c: EpsilonPlusFlat(canonizers=c)),
    ("epsilon-plus", lambda c: EpsilonPlus(canonizers=c)),
    ("epsilon-alpha2-beta1", lambda c: EpsilonAlpha2Beta1(canonizers=c)),
    ("epsilon-gamma-box", lambda c: EpsilonGammaBox(low=0.0, high=1.0, canonizers=c)),
]


@pytest.mark.parametrize(("name", "canonizer"), [("vgg16", VGGCanonizer), ("resnet18", ResNetCanonizer), ("resnet50", ResNetCanonizer)])
def test_equal_to_zennit_on_vgg16_resnet18_resnet50(name: str, canonizer: type) -> None:
    torch.manual_seed(0)
    net = _randomize_batchnorm(torchvision.models.get_model(name, weights=None).eval())
    x = torch.rand(2, 3, 64, 64)
    targets = torch.tensor([3, 7])
    for key, make in ZENNIT_COMPOSITES if name != "vgg16" else ZENNIT_COMPOSITES[:1] + ZENNIT_COMPOSITES[3:]:
        ours = propagate(net, x, targets, composite=key, preprocessing=IDENTITY).relevance
        theirs = _zennit(net, x.clone(), targets, make([canonizer()]))
        assert _relative(ours, theirs) < 1e-5, (name, key)


class _MobileNetV2Canonizer(AttributeCanonizer):
    """zennit has no adapter for MobileNetV2: its residual adds are written as Sum modules (as
    zennit's ResNet canonizer does for ResNets) and its functional global average pooling as a
    module, so that zennit applies its Norm rule to both (zennit's hooks see modules only)."""

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @classmethod
    def _attribute_map(cls, name: str, module: nn.Module) -> dict | None:
        from torchvision.models.mobilenetv2 import InvertedResidual, MobileNetV2

        if isinstance(module, InvertedResidual) and module.use_res_connect:
            return {"forward": cls.block_forward.__get__(module), "canonizer_sum": Sum()}
        if isinstance(module, MobileNetV2):
            return {"forward": cls.net_forward.__get__(module), "canonizer_pool": nn.AdaptiveAvgPool2d(1)}
        return None

    @staticmethod
    def block_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return self.canonizer_sum(torch.stack([x, self.conv(x)], dim=-1))

    @staticmethod
    def net_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.canonizer_pool(self.features(x)), 1))


def test_equal_to_zennit_on_the_trained_mobilenet_v2(mobilenet_trained: nn.Module, data: Path) -> None:
    net = mobilenet_trained
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 0.0
    prep = cnnlens.model_info(net).preprocessing
    files = sorted((data / "imagenet_samples").glob("*.JPEG"))[:2]
    x = cnnlens.as_pixels([str(f) for f in files], prep, fit="crop")
    normalized = prep.normalize(x)
    ours = propagate(net, x, composite="epsilon-plus-flat", preprocessing=prep)
    canonizers = [CompositeCanonizer([SequentialMergeBatchNorm(), _MobileNetV2Canonizer()])]
    theirs = _zennit(net, normalized, ours.targets, EpsilonPlusFlat(canonizers=canonizers))
    assert _relative(ours.relevance, theirs) < 1e-5


@pytest.mark.parametrize("name", ["googlenet", "densenet121"])
def test_conservation_where_zennit_cannot_follow(name: str) -> None:
    """googlenet calls F.relu, densenet concatenates and calls F.relu: no zennit adapter; the input
    relevance is the logit less the bias and stabiliser terms, layer by layer."""
    torch.manual_seed(0)
    net = torchvision.models.get_model(name, weights=None, **({"aux_logits": False, "init_weights": True} if name == "googlenet" else {})).eval()
    x = torch.rand(1, 3, 96, 96)
    p = propagate(net, x, [5], preprocessing=IDENTITY)
    assert len(p.records) > 50
    for r in p.records:
        scale = max(abs(r.relevance_out), abs(r.relevance_in), 1e-12)
        assert abs(r.leak) <= 1e-4 * scale + 1e-9, r
    absorbed = sum(r.bias_term + r.stabilizer_term for r in p.records)
    assert float(p.relevance.sum()) == pytest.approx(float(p.explained[0]) - absorbed, rel=1e-4, abs=1e-6)
    if name == "densenet121":  # no biases but the classifier's: relevance reaches the pixels
        assert float(p.relevance.sum()) == pytest.approx(float(p.explained[0]), rel=1e-3)


def test_basic_lrp_equals_gradient_times_input_on_a_bias_free_relu_network() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, bias=False), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.ReLU(inplace=True),
        nn.Flatten(), nn.Linear(8 * 7 * 7, 10, bias=False),
    ).eval()  # fmt: skip
    x = torch.rand(3, 3, 16, 16)
    lrp0 = composite("epsilon", epsilon=1e-12, stabilizer=1e-12)
    ours = propagate(net, x, [1, 2, 3], composite=lrp0, preprocessing=IDENTITY).relevance
    v = x.clone().requires_grad_(True)
    out = net(v)
    (g,) = torch.autograd.grad(out[[0, 1, 2], [1, 2, 3]].sum(), v)
    assert torch.allclose(ours, g * x, rtol=1e-5, atol=1e-7)


def test_concept_heatmaps_of_all_channels_add_up_to_the_full_heatmap() -> None:
    torch.manual_seed(0)
    net = cnnlens.create_model("resnet18", seed=0)
    x = torch.rand(1, 3, 64, 64)
    full = propagate(net, x, [7], layers=["layer2"])
    n = full.layers["layer2"].shape[1]
    maps = channel_heatmaps(net, x, "layer2", list(range(n)), 7, batch_size=64)
    assert maps.shape == (n, 3, 64, 64)
    assert _relative(maps.sum(0), full.relevance[0]) < 1e-5
    # each conditional heatmap carries its channel's relevance down, less what the layers below absorb
    per_channel = full.layers["layer2"].sum((2, 3))[0]
    assert torch.corrcoef(torch.stack([maps.sum((1, 2, 3)), per_channel]))[0, 1] > 0.9


def test_a_condition_masks_the_channel_on_every_path() -> None:
    """resnet18 layer1.0's output feeds both layer1.1's convolutions and its shortcut: the mask must
    reach both, or the heatmaps of its 64 channels would count the unmasked path 64 times."""
    net = cnnlens.create_model("resnet18", seed=0)
    x = torch.rand(1, 3, 48, 48)
    full = propagate(net, x, [2], layers=["layer1.0"])
    maps = channel_heatmaps(net, x, "layer1.0", list(range(64)), 2, batch_size=64)
    assert _relative(maps.sum(0), full.relevance[0]) < 1e-5
    conditioned = propagate(net, x.expand(2, -1, -1, -1), [2, 2], layers=["layer1.0"], condition={"layer1.0": [5, 9]})
    # stored before the mask; a batch of 2 against one image: equal up to float rounding (relative to the largest value)
    assert _relative(conditioned.layers["layer1.0"], full.layers["layer1.0"].expand(2, -1, -1, -1)) < 1e-4
    assert _relative(conditioned.relevance, maps[[5, 9]]) < 1e-4


def test_the_model_is_left_as_it_was() -> None:
    net = cnnlens.create_model("mobilenet_v2", seed=0)
    net.train()
    flags = [p.requires_grad for p in net.parameters()]
    state = {k: v.clone() for k, v in net.state_dict().items()}
    concept_relevance(net, torch.rand(3, 64, 64), "features.10", k=2)
    assert net.training
    assert [p.requires_grad for p in net.parameters()] == flags
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in net.modules())
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize(("name", "op"), [("efficientnet_b0", "mul"), ("convnext_tiny", "layer_norm")])
def test_what_lrp_cannot_follow_is_refused_naming_the_call(name: str, op: str) -> None:
    net = cnnlens.create_model(name, seed=0)
    with pytest.raises(CnnlensError, match=op):
        propagate(net, torch.rand(1, 3, 64, 64))


def test_rules_conserve_relevance_up_to_their_bias_and_stabiliser_terms() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4, 9, 9)
    w, b = torch.randn(5, 4, 3, 3), torch.randn(5)

    def op(v: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return torch.nn.functional.conv2d(v, weight, bias, 1, 1)

    r = torch.rand(2, 5, 9, 9)
    for rule in [LinearRule("epsilon", epsilon=0.1), LinearRule("zplus"), LinearRule("alpha-beta"), LinearRule("gamma"), LinearRule("flat"), LinearRule("zbox", low=-3.0, high=3.0)]:
        share = rule(op, x, w, b, r)
        assert float(share.relevance.sum()) == pytest.approx(float(r.sum()) - share.bias_term - share.stabilizer_term, rel=1e-4), rule.name
    # epsilon by hand on a fully connected layer
    xl, wl, bl, rl = torch.rand(1, 6), torch.randn(3, 6), torch.randn(3), torch.rand(1, 3)
    share = LinearRule("epsilon", epsilon=0.25)(torch.nn.functional.linear, xl, wl, bl, rl)
    z = xl @ wl.T + bl
    expected = xl * ((rl / (z + 0.25 * z.sign())) @ wl)
    assert torch.allclose(share.relevance, expected, atol=1e-6)


def test_attribute_lrp_is_propagate_summed_over_colours_with_faithfulness() -> None:
    net = cnnlens.create_model("resnet18", seed=0)
    x = torch.rand(2, 3, 64, 64)
    r = cnnlens.attribute(net, x, ["lrp", "gradcam"], checks=["faithfulness"], settings=cnnlens.attribution.AttributionSettings(faithfulness_steps=4), progress=False)
    p = propagate(net, x, r.targets)
    assert torch.allclose(r.by_method["lrp"], p.relevance.sum(1), rtol=1e-5, atol=1e-8)
    assert "lrp" in r.faithfulness.methods and r.faithfulness.curves["deletion"]["lrp"].shape == (2, 5)
    with pytest.raises(CnnlensError, match="composite"):
        cnnlens.attribute(net, x, ["lrp"], settings=cnnlens.attribution.AttributionSettings(lrp_composite="epsilon-plus-flatt"), progress=False)


def test_concept_relevance_ranks_channels_and_shares_sum_to_one() -> None:
    net = cnnlens.create_model("squeezenet1_0", seed=0)
    r = concept_relevance(net, torch.rand(3, 96, 96), "features.9", k=3)
    assert len(r.channels) == 3 and r.heatmaps.shape == (3, 96, 96)
    assert r.channels == r.ranking[:3]
    assert float(r.share.sum()) == pytest.approx(1.0, abs=1e-5)
    assert r.layer_total == pytest.approx(float(r.relevance.sum()))
    given = concept_relevance(net, torch.rand(3, 96, 96), ["features.9:4", "features.9:7"], target=3)
    assert given.channels == [4, 7] and given.target == 3 and given.given
    d = given.to_dict()
    assert [c["relevance"] for c in d["channels"]] == sorted((c["relevance"] for c in d["channels"]), reverse=True)
    with pytest.raises(CnnlensError, match="out of range"):
        concept_relevance(net, torch.rand(3, 96, 96), "features.9:999")
    with pytest.raises(CnnlensError, match="one layer"):
        concept_relevance(net, torch.rand(3, 96, 96), ["features.9:1", "features.10:1"])


def test_relevance_command(tmp_path: Path) -> None:
    from PIL import Image

    img = tmp_path / "im.png"
    Image.fromarray((torch.rand(80, 80, 3) * 255).byte().numpy()).save(img)
    runner = CliRunner()
    out = tmp_path / "r.png"
    res = runner.invoke(cli, ["relevance", "squeezenet1_0", "-w", "none", str(img), "-u", "features.9", "-k", "3", "--size", "80", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 10_000
    res = runner.invoke(cli, ["relevance", "squeezenet1_0", "-w", "none", str(img), "-u", "features.9:3,features.9:5", "--size", "80", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["shown"] == [3, 5] and len(d["channels"]) == 384
    res = runner.invoke(cli, ["relevance", "squeezenet1_0", "-w", "none", str(img), "-u", "features.9", "--composite", "epsilon-plus-flatt", "--json"])
    assert res.exit_code == 2 and "epsilon-plus-flat" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["relevance", "efficientnet_b0", "-w", "none", str(img), "-u", "features.3", "--json"])
    assert res.exit_code == 2 and "mul" in res.output and len(res.output.strip().splitlines()) == 1


def test_relevance_maximization_ranks_by_the_relevance_propagate_gives() -> None:
    from cnnlens.units.patches import PatchSettings, top_patches

    net = cnnlens.create_model("squeezenet1_0", seed=0)
    x = torch.rand(6, 3, 96, 96)
    found = top_patches(net, "features.9:3", x, k=6, size=96, settings=PatchSettings(by="relevance", min_inside=0.0), progress=False)
    p = propagate(net, x, None, layers=["features.9"], input_relevance=False)
    best = p.layers["features.9"][:, 3].flatten(1).max(1).values
    got = {q.image_index: q.activation for q in found.patches[3]}
    for i, v in got.items():
        assert v == pytest.approx(float(best[i]), rel=1e-6)
    assert found.by == "relevance" and found.to_dict()["ranked_by"] == "relevance"
    shares = found.classes[3]
    assert shares and sum(s for _, s in shares) <= 1 + 1e-9
    with pytest.raises(CnnlensError, match="by"):
        top_patches(net, "features.9:3", x, settings=PatchSettings(by="gradient"), progress=False)


def test_relevance_patches_shards_merge_to_one_process(tmp_path: Path) -> None:
    from cnnlens.distributed import Sharding, merge
    from cnnlens.units.patches import PatchSettings, top_patches

    net = cnnlens.create_model("squeezenet1_0", seed=0)
    x = torch.rand(7, 3, 64, 64)
    settings = PatchSettings(by="relevance", batch_size=3)
    one = top_patches(net, "features.9:1", x, k=3, settings=settings, progress=False)
    parts = [top_patches(net, "features.9:1", x, k=3, settings=settings, progress=False, sharding=Sharding(shard=f"{i}/3")) for i in (0, 1, 2)]
    merged = merge(list(reversed(parts)))
    assert json.dumps(merged.to_dict(), sort_keys=True) == json.dumps(one.to_dict(), sort_keys=True)


def test_patches_command_by_relevance(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        Image.fromarray((torch.rand(70, 70, 3) * 255).byte().numpy()).save(folder / f"{i}.png")
    runner = CliRunner()
    res = runner.invoke(cli, ["patches", "squeezenet1_0", "-w", "none", "--data", str(folder), "-u", "features.9:2", "--by", "relevance", "--target", "tabby", "--size", "64", "-k", "2", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["ranked_by"] == "relevance" and d["target"] == 281
    assert d["channels"][0]["classes"][0]["name"] == "tabby"
    res = runner.invoke(cli, ["patches", "squeezenet1_0", "-w", "none", "--data", str(folder), "-u", "features.9:2", "--target", "tabby", "--json"])
    assert res.exit_code == 2 and "--by relevance" in res.output


def test_mode_counts_and_records_every_rule() -> None:
    net = cnnlens.create_model("resnet18", seed=0)
    p = propagate(net, torch.rand(1, 3, 64, 64))
    kinds = {r.rule for r in p.records}
    assert kinds == {"flat", "zplus", "sum", "epsilon"}
    assert sum(r.op == "add" for r in p.records) == 8  # the eight residual adds of resnet18
    assert isinstance(RelevanceMode(composite()), torch.overrides.TorchFunctionMode)


def test_a_layer_followed_by_an_in_place_relu_can_be_read() -> None:
    """squeezenet1_0's features.0 feeds nn.ReLU(inplace=True): the relevance read there must not be
    a view the ReLU writes into (it raised in the microscope's default site)."""
    net = cnnlens.create_model("squeezenet1_0", seed=0)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    got = propagate(net, x, layers=["features.0", "features.3"])
    assert got.layers["features.0"].shape == (2, 96, 29, 29) and bool(torch.isfinite(got.layers["features.0"]).all())
    plain = propagate(net, x)
    assert _relative(got.relevance, plain.relevance) < 1e-5  # reading layers changes nothing
