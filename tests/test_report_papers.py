"""Classic networks as their papers describe them, and the per-layer tables often printed for them
(VGG16's memory table after Simonyan & Zisserman 2015, AlexNet after Krizhevsky et al. 2012, LeNet-5
after LeCun et al. 1998), checked against cnnlens.report."""

from __future__ import annotations

import torch
import torch.nn as nn

import cnnlens
from cnnlens.receptive_field import ReceptiveField
from cnnlens.zoo import one_7x7, three_3x3

# The usual VGG16 memory table (conv layers: output H, W, C and weights without bias), in network order.
VGG16_TABLE = [
    ("features.0", (224, 224, 64), 1_728), ("features.2", (224, 224, 64), 36_864),
    ("features.4", (112, 112, 64), 0),
    ("features.5", (112, 112, 128), 73_728), ("features.7", (112, 112, 128), 147_456),
    ("features.9", (56, 56, 128), 0),
    ("features.10", (56, 56, 256), 294_912), ("features.12", (56, 56, 256), 589_824), ("features.14", (56, 56, 256), 589_824),
    ("features.16", (28, 28, 256), 0),
    ("features.17", (28, 28, 512), 1_179_648), ("features.19", (28, 28, 512), 2_359_296), ("features.21", (28, 28, 512), 2_359_296),
    ("features.23", (14, 14, 512), 0),
    ("features.24", (14, 14, 512), 2_359_296), ("features.26", (14, 14, 512), 2_359_296), ("features.28", (14, 14, 512), 2_359_296),
    ("features.30", (7, 7, 512), 0),
]  # fmt: skip
VGG16_FC = [("classifier.0", 4096, 102_760_448), ("classifier.3", 4096, 16_777_216), ("classifier.6", 1000, 4_096_000)]


def test_vgg16_total_parameters() -> None:
    r = cnnlens.report("vgg16", (1, 3, 224, 224))
    assert r.totals.params == 138_357_544  # "138M parameters" (Simonyan & Zisserman 2015, Table 2)


def test_vgg16_memory_table_per_layer() -> None:
    r = cnnlens.report("vgg16", (1, 3, 224, 224))
    for name, (h, w, c), weights in VGG16_TABLE:
        row = r[name]
        assert row.output_shape == [1, c, h, w], name
        bias = c if weights else 0
        assert row.params == weights + bias, name  # the table counts weights only, torchvision adds a bias
        assert row.output_bytes == h * w * c * 4, name
    for name, units, weights in VGG16_FC:
        assert r[name].output_shape == [1, units]
        assert r[name].params == weights + units


def test_vgg16_total_memory_is_15_2m_values_not_24m() -> None:
    """The table's rows add up to 15,237,608 values (61 MB in float32), not the "24M values, ~96 MB / image"
    often printed beneath it."""
    table_values = 224 * 224 * 3 + sum(h * w * c for _, (h, w, c), _ in VGG16_TABLE) + 4096 + 4096 + 1000
    assert table_values == 15_237_608
    r = cnnlens.report("vgg16", (1, 3, 224, 224))
    # cnnlens counts every distinct output tensor: the table without the input image, plus the 7x7 avgpool copy
    assert r.totals.activation_bytes == (table_values - 224 * 224 * 3 + 7 * 7 * 512) * 4


def test_alexnet_first_layers_as_in_the_paper() -> None:
    paper = nn.Sequential(nn.Conv2d(3, 96, 11, stride=4, padding=0), nn.ReLU(), nn.MaxPool2d(3, 2))
    r = cnnlens.report(paper, (1, 3, 227, 227))
    assert r["0"].output_shape == [1, 96, 55, 55]  # (227 - 11 + 0) / 4 + 1 = 55
    assert r["0"].params == 34_944  # 11*11*3*96 + 96
    assert r["2"].output_shape == [1, 96, 27, 27]  # (55 - 3) / 2 + 1 = 27


def test_alexnet_paper_model() -> None:
    r = cnnlens.report("alexnet-paper")
    assert r.input_size == (1, 3, 227, 227)
    assert r["0"].output_shape == [1, 96, 55, 55] and r["0"].params == 34_944
    assert r["12"].output_shape == [1, 256, 6, 6]
    assert r.totals.params == 60_965_224  # the paper's "60 million parameters"
    tv = cnnlens.report("alexnet", (1, 3, 224, 224))
    assert tv["features.0"].output_shape == [1, 64, 55, 55] and tv["features.0"].params == 23_296
    assert tv.totals.params == 61_100_840


def test_lenet5_shapes() -> None:
    r = cnnlens.report("lenet5")
    shapes = [r[n].output_shape[1:] for n in ("0", "2", "3", "5")]
    assert shapes == [[6, 28, 28], [6, 14, 14], [16, 10, 10], [16, 5, 5]]
    assert r.totals.params == 61_706


def test_mlp_669706_weights() -> None:
    r = cnnlens.report("mlp-mnist")
    assert [r[n].params for n in ("1", "3", "5")] == [401_920, 262_656, 5_130]
    assert r.totals.params == 669_706


def test_three_3x3_against_one_7x7() -> None:
    c = 64
    three = cnnlens.report(three_3x3(c), (1, c, 56, 56))
    one = cnnlens.report(one_7x7(c), (1, c, 56, 56))
    assert three.totals.params == 27 * c * c and one.totals.params == 49 * c * c
    assert three["2"].receptive_field == ReceptiveField((7, 7), (1, 1), (3, 3))
    assert one["0"].receptive_field == ReceptiveField((7, 7), (1, 1), (3, 3))
    assert three["0"].receptive_field.size == (3, 3) and three["1"].receptive_field.size == (5, 5)


def test_dense_equivalent_is_the_weight_sharing_argument() -> None:
    """200x200 grey image, 40k hidden units: a dense layer needs 1.6 billion weights, a 3x3 conv 10."""
    conv = nn.Conv2d(1, 1, 3, padding=1)
    r = cnnlens.report(conv, (1, 1, 200, 200))
    row = r.layers[0] if r.layers else None
    assert row is None  # a bare module has no submodules: report it inside a container
    r = cnnlens.report(nn.Sequential(conv), (1, 1, 200, 200))
    assert r["0"].params == 10
    assert r["0"].dense_equivalent_params == 40_000 * 40_000 == 1_600_000_000


def test_a_huge_dense_layer_reports_without_memory() -> None:
    with torch.device("meta"):
        dense = nn.Sequential(nn.Flatten(), nn.Linear(40_000, 40_000))
    r = cnnlens.report(dense, (1, 1, 200, 200))
    assert r.totals.params == 1_600_040_000
    assert r["1"].macs == 1_600_000_000
