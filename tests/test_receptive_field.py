"""Receptive fields from the meta-device op graph against an independent measurement: the support of
the gradient of one unit with respect to the input, with positive weights, max pooling replaced by
average pooling of the same geometry, normalization layers made transparent, float64 (so nothing
underflows) and a tiny positive input (so no ReLU6 saturates)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torch.overrides import TorchFunctionMode

import cnnlens
from cnnlens.receptive_field import GLOBAL, ReceptiveField
from cnnlens.zoo import three_3x3


class MaxToAvgPool(TorchFunctionMode):
    """Max pooling routes the gradient to one pixel; average pooling of the same geometry reaches all."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in ("fn", "max_pool2d", "_max_pool2d"):
            x, kernel = args[0], args[1] if len(args) > 1 else kwargs["kernel_size"]
            stride = args[2] if len(args) > 2 else kwargs.get("stride") or kernel
            padding = args[3] if len(args) > 3 else kwargs.get("padding", 0)
            ceil_mode = args[5] if len(args) > 5 else kwargs.get("ceil_mode", False)
            return F.avg_pool2d(x, kernel, stride, padding, ceil_mode=ceil_mode, count_include_pad=False)
        return func(*args, **kwargs)


def make_positive(model: nn.Module) -> nn.Module:
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.LayerNorm):  # also ConvNeXt's LayerNorm2d
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            setattr(parent, name.rsplit(".", 1)[-1], nn.Identity())
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.fill_(1.0 / fan_in)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.zero_()
                module.running_var.fill_(1.0)
                module.weight.fill_(1.0)
                module.bias.zero_()
        for name, p in model.named_parameters():
            if "layer_scale" in name:
                p.fill_(1.0)
    return model.double().eval()


def measured_box(model: nn.Module, layer: str, size: int) -> tuple[int, int, int, int] | str:
    """Bounding box (top, left, bottom, right) of the input pixels that move the centre unit of ``layer``."""
    x = torch.full((1, 3, size, size), 1e-3, dtype=torch.float64, requires_grad=True)
    out = {}
    handle = model.get_submodule(layer).register_forward_hook(lambda m, a, o: out.__setitem__("y", o))
    try:
        with MaxToAvgPool():
            model(x)
    finally:
        handle.remove()
    y = out["y"]
    i, j = y.shape[-2] // 2, y.shape[-1] // 2
    (grad,) = torch.autograd.grad(y[0, :, i, j].sum(), x)
    support = grad[0].abs().sum(0) > 0
    rows, cols = support.any(1).nonzero(), support.any(0).nonzero()
    box = (rows.min().item(), cols.min().item(), rows.max().item() + 1, cols.max().item() + 1)
    if bool(support.all()):
        return "whole"
    return box


def predicted_box(rf: ReceptiveField | str, shape: list[int], size: int) -> tuple[int, int, int, int] | str:
    if rf == GLOBAL:
        return "whole"
    top, left, bottom, right = rf.box(shape[-2] // 2, shape[-1] // 2)
    box = (max(top, 0), max(left, 0), min(bottom, size), min(right, size))
    return "whole" if box == (0, 0, size, size) else box


def build(name: str) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = {"init_weights": False, "aux_logits": False} if name in ("googlenet", "inception_v3") else {}
        model = torchvision.models.get_model(name, weights=None, **kwargs)
    if name in ("alexnet", "vgg11"):  # the cases measure conv layers: skip filling and running 100M+ classifier weights
        model.classifier = nn.Identity()
    return model


CASES = [
    ("alexnet", "features", 224),
    ("vgg11", "features.10", 96),
    ("resnet18", "layer2", 128),
    ("resnet50", "layer2.0", 96),
    ("googlenet", "inception3b", 128),
    ("inception_v3", "Mixed_5d", 160),
    ("densenet121", "features.denseblock2", 96),
    ("mobilenet_v2", "features.7", 128),
    ("efficientnet_b0", "features.0", 64),
    ("efficientnet_b0", "features.1", 64),  # squeeze-excitation: global
    ("convnext_tiny", "features.3", 96),
    ("regnet_x_400mf", "trunk_output.block2", 96),
    ("shufflenet_v2_x0_5", "stage2", 96),
    ("squeezenet1_0", "features.6", 96),
    ("mnasnet0_5", "layers.9", 96),
    ("resnext50_32x4d", "layer1", 64),
]


@pytest.mark.parametrize(("name", "layer", "size"), CASES)
def test_receptive_field_equals_gradient_support(name: str, layer: str, size: int) -> None:
    model = make_positive(build(name))
    row = cnnlens.report(model, (1, 3, size, size))[layer]
    expected = predicted_box(row.receptive_field, row.output_shape, size)
    assert measured_box(model, layer, size) == expected
    if row.receptive_field != GLOBAL:
        assert row.receptive_field.aligned


def test_three_stacked_3x3_see_7x7_by_gradient() -> None:
    model = three_3x3(4)
    with torch.no_grad():
        for conv in model:
            conv.weight.fill_(0.1)
    model = model.double()
    x = torch.full((1, 4, 15, 15), 1.0, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(model(x)[0, :, 7, 7].sum(), x)
    support = grad[0].sum(0) != 0
    assert support.sum().item() == 49 and support[4:11, 4:11].all()
    rf = cnnlens.report(model, (1, 4, 15, 15))["2"].receptive_field
    assert rf.box(7, 7) == (4, 4, 11, 11)


class Quirks(nn.Module):
    """Even 'same' kernels, dilation, asymmetric F.pad, ceil-mode pooling, CIFAR option-A subsampling."""

    def __init__(self) -> None:
        super().__init__()
        self.same = nn.Conv2d(3, 4, 4, padding="same")
        self.dilated = nn.Conv2d(4, 4, 3, dilation=2, padding=1)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.wide = nn.Conv2d(4, 4, (1, 5), padding=(0, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.same(x)
        x = F.pad(x, (2, 0, 1, 3))
        x = self.dilated(x)
        x = self.pool(x)
        x = x[:, :, ::2, 1::2]
        return self.wide(x)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_quirks_against_gradient_support() -> None:
    model = Quirks()
    r = cnnlens.report(model, (1, 3, 61, 61))
    rf = r["wide"].receptive_field
    assert rf.size[0] != rf.size[1]  # per axis
    assert r["same"].receptive_field == ReceptiveField((4, 4), (1, 1), (1, 1))  # pads 1 before, 2 after
    positive = make_positive(model)
    x = torch.full((1, 3, 61, 61), 1e-3, dtype=torch.float64, requires_grad=True)
    with MaxToAvgPool():
        y = positive(x)
    for i, j in [(y.shape[-2] // 2, y.shape[-1] // 2), (1, 2)]:
        (grad,) = torch.autograd.grad(y[0, :, i, j].sum(), x, retain_graph=True)
        support = grad[0].abs().sum(0) > 0
        rows, cols = support.any(1).nonzero(), support.any(0).nonzero()
        top, left, bottom, right = rf.box(i, j)
        assert (rows.min().item(), rows.max().item() + 1) == (max(top, 0), min(bottom, 61))
        assert (cols.min().item(), cols.max().item() + 1) == (max(left, 0), min(right, 61))


def test_published_receptive_fields() -> None:
    """vgg16 and inception_v3 as google-research/receptive_field publishes them; the others by the same
    arithmetic (Araujo, Norris & Sim, Distill 2019), recorded so that a change shows."""
    expected = {
        ("vgg16", "features"): (212, 32, 90),
        ("alexnet", "features"): (195, 32, 66),
        ("resnet18", "layer4"): (435, 32, 217),
        ("resnet50", "layer4"): (427, 32, 213),
        ("mobilenet_v2", "features"): (491, 32, 245),
        ("googlenet", "inception5b"): (379, 32, 167),
        ("inception_v3", "Mixed_7c"): (1311, 32, 618),
    }
    for (name, layer), (size, stride, pad) in expected.items():
        rf = cnnlens.report(name)[layer].receptive_field
        assert rf == ReceptiveField((size, size), (stride, stride), (pad, pad)), name


def test_global_after_pooling_and_gates() -> None:
    r = cnnlens.report("resnet18")
    assert r["avgpool"].receptive_field == GLOBAL and r["fc"].receptive_field == GLOBAL
    r = cnnlens.report("efficientnet_b0")
    assert r["features.1.0.block.1"].receptive_field == GLOBAL  # the squeeze-excitation gate
    assert isinstance(r["features.1.0.block.0"].receptive_field, ReceptiveField)
    r = cnnlens.report("vgg16")
    assert r["avgpool"].receptive_field == r["features"].receptive_field  # 7x7 adaptive pool on 7x7: identity


# ---- window attention: Swin's shifted windows and MaxViT's block and grid attention ------------------------


def support_box(grad: torch.Tensor, rel: float = 1e-25) -> tuple[int, int, int, int]:
    """Bounding box of the input pixels whose gradient exceeds ``rel`` of the largest: Swin masks the
    wrapped positions of a shifted window with a logit of -100, which leaves them a weight of
    e^-100 (about 4e-44) instead of zero; everything the unit really uses is far above 1e-25."""
    g = grad.abs().sum(dim=(0, 1))
    support = g > rel * g.max()
    rows, cols = support.any(1).nonzero(), support.any(0).nonzero()
    return rows.min().item(), cols.min().item(), rows.max().item() + 1, cols.max().item() + 1


def clipped(rf: ReceptiveField, i: int, j: int, size: int) -> tuple[int, int, int, int]:
    top, left, bottom, right = rf.box(i, j)
    return max(top, 0), max(left, 0), min(bottom, size), min(right, size)


def unit_gradients(model: nn.Module, layers: list[str], size: int, units: dict[str, list[tuple[int, int]]], nhwc: bool):  # noqa: ANN201
    """{(layer, unit): input gradient of the unit's channel sum}, one forward pass for all layers."""
    x = torch.full((1, 3, size, size), 1e-3, dtype=torch.float64, requires_grad=True)
    outs: dict[str, torch.Tensor] = {}
    handles = [model.get_submodule(name).register_forward_hook(lambda m, a, o, name=name: outs.__setitem__(name, o)) for name in layers]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    grads = {}
    for name in layers:
        y = outs[name].permute(0, 3, 1, 2) if nhwc else outs[name]
        for i, j in units[name]:
            (grads[name, (i, j)],) = torch.autograd.grad(y[0, :, i, j].sum(), x, retain_graph=True)
    return grads


@pytest.mark.slow
def test_swin_shifted_windows_equal_gradient_support() -> None:
    """swin_t at 224: features.1 (56x56 tokens, windows 7, shift 3) and features.3 (28x28) are local and
    depend on where a unit sits in its windows; features.5 (14x14) is global: every unit sees the whole image."""
    size = 224
    model = make_positive(build("swin_t"))
    r = cnnlens.report(model, (1, 3, size, size))
    layers = ["features.1", "features.3", "features.5"]
    units = {}
    for name in layers:
        h, w = r[name].output_shape[1:3]  # Swin keeps (B, H, W, C)
        units[name] = [(h // 2, w // 2), (1, 2), (h - 1, 3), (h // 2 - 2, w - 1)]
    grads = unit_gradients(model, layers, size, units, nhwc=True)
    rf1, rf3 = r["features.1"].receptive_field, r["features.3"].receptive_field
    assert rf1.windowed and rf3.windowed
    assert rf1.size == (56, 56) and rf3.size == (168, 168) and rf1.stride == (4, 4) and rf3.stride == (8, 8)
    assert clipped(rf1, 28, 28, size) == (84, 84, 140, 140)  # the 56x56 px the centre unit measures
    assert clipped(rf3, 14, 14, size) == (28, 28, 196, 196)  # 168x168 px
    for name in ("features.1", "features.3"):
        rf = r[name].receptive_field
        for i, j in units[name]:
            assert support_box(grads[name, (i, j)]) == clipped(rf, i, j, size), (name, i, j)
    assert r["features.5"].receptive_field == GLOBAL
    for unit in units["features.5"]:
        assert support_box(grads["features.5", unit]) == (0, 0, size, size)
        assert bool((grads["features.5", unit].abs().sum(dim=(0, 1)) > 0).all())


def test_swin_fields_from_windows_and_shifts() -> None:
    """The same fields from the report alone (no gradient): global only once the windows cover the image."""
    r = cnnlens.report("swin_t")
    assert r["features.0"].receptive_field == ReceptiveField((4, 4), (4, 4), (0, 0))
    assert r["features.1"].receptive_field.box(28, 28) == (84, 84, 140, 140)
    assert r["features.1"].receptive_field.box(0, 0) == (0, 0, 28, 28)  # the wrapped corner window of the shift
    assert r["features.3"].receptive_field.box(14, 14) == (28, 28, 196, 196)
    assert [r[f"features.{k}"].receptive_field for k in (5, 6, 7)] == [GLOBAL] * 3
    assert r["features.1.0.attn"].receptive_field.box(28, 28) == (112, 112, 140, 140)  # one 7x7 window
    assert r["features.1.1.attn"].receptive_field.box(28, 28) == (84, 84, 140, 140)  # shifted by 3
    # a larger input keeps later stages local too
    big = cnnlens.report("swin_t", (1, 3, 448, 448))
    assert big["features.5"].receptive_field.windowed and big["features.7"].receptive_field == GLOBAL


def test_vit_is_global_after_its_first_attention() -> None:
    r = cnnlens.report("vit_b_16")
    assert r["conv_proj"].receptive_field == ReceptiveField((16, 16), (16, 16), (0, 0))
    assert r["encoder.layers.encoder_layer_0"].receptive_field == GLOBAL


def maxvit_layer(kind: str) -> nn.Module:
    from torchvision.models.maxvit import PartitionAttentionLayer

    return PartitionAttentionLayer(8, 4, 7, kind, (28, 28), 2, nn.GELU, nn.LayerNorm, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("kinds", [("window",), ("grid",), ("window", "grid")])
def test_maxvit_block_and_grid_attention_equal_gradient_support(kinds: tuple[str, ...]) -> None:
    """MaxViT's block attention (7x7 windows) is local; its grid attention (a 7x7 grid of positions 4 apart
    on a 28x28 map) spans the map sparsely: the predicted box is the bounding box of the support."""
    torch.manual_seed(0)
    model = make_positive(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), *(maxvit_layer(k) for k in kinds)))
    size, last = 28, str(len(kinds))
    r = cnnlens.report(model, (1, 3, size, size))
    units = [(14, 14), (0, 5), (27, 27), (9, 20)]
    grads = unit_gradients(model, [last], size, {last: units}, nhwc=False)
    rf = r[last].receptive_field
    for unit in units:
        expected = (0, 0, size, size) if rf == GLOBAL else clipped(rf, *unit, size)
        assert support_box(grads[last, unit], rel=0.0) == expected, unit
    if kinds == ("window",):
        assert rf.box(14, 14) == (13, 13, 22, 22)  # the 3x3 conv around the window [14, 21)
    if kinds == ("grid",):
        assert rf.box(14, 14) == (1, 1, 28, 28)  # positions 2, 6, ..., 26, each widened by the conv


@pytest.mark.slow
def test_swin_windows_on_a_padded_grid_equal_gradient_support() -> None:
    """At 200 px stage 1 has 50 tokens: Swin pads to 56 (whole windows) and the last windows are cut."""
    size = 200
    model = make_positive(build("swin_t"))
    r = cnnlens.report(model, (1, 3, size, size))
    layers = ["features.1", "features.3"]
    units = {}
    for name in layers:
        h, w = r[name].output_shape[1:3]
        units[name] = [(h // 2, w // 2), (1, 2), (h - 1, w - 2), (h - 3, 3)]
    grads = unit_gradients(model, layers, size, units, nhwc=True)
    for name in layers:
        for unit in units[name]:
            assert support_box(grads[name, unit]) == clipped(r[name].receptive_field, *unit, size), (name, unit)
    assert r["features.1"].receptive_field.box(49, 48) == (168, 168, 200, 200)  # windows cut at the border: padding carries nothing


def test_timm_swin_patch_merging_equal_gradient_support() -> None:
    """timm's Swin merges patches with a reshape ``(B, H, W, C) -> (B, H/2, 2, W/2, 2, C)`` (torchvision
    slices and concatenates): followed as a 2x2 space-to-depth, stages 2 and 3 stay local (a small timm
    SwinTransformer at 448 px, so stage 3 has 28x28 tokens) and equal the gradient support of the centre
    and border units, also in stage 4, where some units see the whole image and others do not."""
    timm = pytest.importorskip("timm")
    size = 448
    torch.manual_seed(0)
    model = timm.models.swin_transformer.SwinTransformer(
        img_size=size, embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 1, 1, 1), drop_path_rate=0.0, num_classes=0
    )
    model = make_positive(model)
    r = cnnlens.report(model, (1, 3, size, size))
    layers = ["layers.1", "layers.2", "layers.3"]
    units = {}
    for name in layers:
        h, w = r[name].output_shape[1:3]
        units[name] = [(h // 2, w // 2), (0, w - 1), (h - 1, 3), (1, 2)]
    grads = unit_gradients(model, layers, size, units, nhwc=True)
    rf2, rf3 = r["layers.1"].receptive_field, r["layers.2"].receptive_field
    assert rf2.windowed and rf3.windowed and rf2.stride == (8, 8) and rf3.stride == (16, 16)
    assert rf2.size == (168, 168) and rf3.size == (392, 392)
    a, b = r["layers.0"].receptive_field.box(56, 56), r["layers.0"].receptive_field.box(57, 57)
    merged = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
    assert r["layers.1.downsample"].receptive_field.box(28, 28) == merged  # the 2x2 block of stage-1 tokens it merges
    for name in layers:
        for unit in units[name]:
            assert support_box(grads[name, unit]) == clipped(r[name].receptive_field, *unit, size), (name, unit)
    assert r["layers.3"].receptive_field.size == (448, 448)  # 14x14 tokens: some units see everything, not all
    assert cnnlens.report("timm/swin_tiny_patch4_window7_224")["layers.1"].receptive_field.box(14, 14) == (28, 28, 196, 196)
