"""Circuits: expanded weights against kernels composed by hand (two convolutions, BatchNorm folded, a
residual add), contributions against the unit's pre-activation, and a synthetic "A AND B" unit whose
inputs both methods must find."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

import cnnlens
from cnnlens.circuits import (
    circuit,
    class_weights,
    contributions,
    expanded_weights,
    inputs,
    outputs,
)
from cnnlens.cli import cli
from cnnlens.errors import CnnlensError
from cnnlens.testing import model_state

PREP = cnnlens.Preprocessing(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), resize_size=24, crop_size=24)


def wrap(net: nn.Module) -> nn.Module:
    return cnnlens.Normalized(net.eval(), PREP)


def compose(w2: torch.Tensor, w1: torch.Tensor) -> torch.Tensor:
    """The kernel of conv(w2) after conv(w1) (cross-correlations, stride 1), summed by hand."""
    t, m, kh2, kw2 = w2.shape
    _, s, kh1, kw1 = w1.shape
    out = torch.zeros(t, s, kh1 + kh2 - 1, kw1 + kw2 - 1, dtype=torch.float64)
    for i in range(kh2):
        for j in range(kw2):
            for k in range(kh1):
                for l in range(kw1):
                    out[:, :, i + k, j + l] += w2[:, :, i, j].double() @ w1[:, :, k, l].double()
    return out


def test_two_convolutions_without_nonlinearity_compose_exactly() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 5, 3, padding=1), nn.Conv2d(5, 2, 3, padding=1))
    got = expanded_weights(wrap(net), "0", "2")
    assert got.shape == (2, 4, 5, 5)
    assert torch.allclose(got.double(), compose(net[2].weight.detach(), net[1].weight.detach()), atol=1e-6)


def test_relu_between_is_set_aside_and_max_pooling_averages() -> None:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 2, 3, padding=1))
    plain = nn.Sequential(net[0], net[2], net[4])
    assert torch.allclose(expanded_weights(wrap(net), "0", "4"), expanded_weights(wrap(plain), "0", "2"), atol=1e-7)
    pooled = nn.Sequential(nn.Conv2d(3, 4, 1), nn.MaxPool2d(2), nn.Conv2d(4, 2, 1))
    avg = nn.Sequential(pooled[0], nn.AvgPool2d(2), pooled[2])
    assert torch.allclose(expanded_weights(wrap(pooled), "0", "2"), expanded_weights(wrap(avg), "0", "2"), atol=1e-7)
    k = expanded_weights(wrap(pooled), "0", "2")
    assert k.shape == (2, 4, 2, 2) and torch.allclose(k, (pooled[2].weight[:, :, 0, 0] / 4)[:, :, None, None].expand(2, 4, 2, 2), atol=1e-7)


def test_across_batchnorm_equals_the_folded_convolution() -> None:
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6))
    bn = net[2]
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    folded = net[1].weight * (bn.weight / torch.sqrt(bn.running_var + bn.eps))[:, None, None, None]
    assert torch.allclose(expanded_weights(wrap(net), "0", "2"), folded.detach(), atol=1e-6)
    assert not net.training  # the model is left in the mode it was given (eval here)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.out = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.out(self.conv2(self.relu(self.conv1(x))) + x)


def test_across_a_residual_add_the_sum_of_both_paths() -> None:
    torch.manual_seed(3)
    net = Residual()
    got = expanded_weights(wrap(net), "stem", "out")
    paths = compose(net.conv2.weight.detach(), net.conv1.weight.detach())
    paths[:, :, 2, 2] += torch.eye(4, dtype=torch.float64)  # the skip: the identity at the centre
    assert torch.allclose(got.double(), paths, atol=1e-6)


def test_refusals_of_expanded_weights() -> None:
    torch.manual_seed(0)
    net = wrap(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 2, 3, padding=1)))
    with pytest.raises(CnnlensError, match="does not depend on 1"):
        expanded_weights(net, "1", "0")
    with pytest.raises(CnnlensError, match="source: .*nolayer"):
        expanded_weights(net, "nolayer", "1")
    with pytest.raises(CnnlensError, match="not linear once activations are set aside"):
        expanded_weights(cnnlens.create_model("mobilenet_v3_small", seed=0), "features.0", "features.2")


def test_contributions_of_a_linear_block_sum_to_the_pre_activation(tmp_path: Path) -> None:
    torch.manual_seed(4)
    net = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 5, 3), nn.ReLU())
    model = wrap(net)
    x = torch.rand(4, 3, 24, 24)
    per_image = contributions(model, "2:3@7,9", "1", x)
    with torch.no_grad():
        pre = net[2](net[1](net[0](x)))[:, 3, 7, 9]
    assert torch.allclose(per_image.sum(1) + net[2].bias[3].detach(), pre, atol=1e-5, rtol=1e-5)
    # the strongest position when none is given
    best = contributions(model, "2:3", "1", x)
    with torch.no_grad():
        top = net[2](net[1](net[0](x)))[:, 3].flatten(1).max(1).values
    assert torch.allclose(best.sum(1) + net[2].bias[3].detach(), top, atol=1e-5, rtol=1e-5)


class AndNet(nn.Module):
    """Layer 1 detects red (A, channel 0), green (B, channel 1), blue (2) and darkness (3); unit 0 of
    layer 2 is "A AND B": relu(A + B - 1), silent unless both are there (yellow)."""

    def __init__(self) -> None:
        super().__init__()
        self.detect = nn.Conv2d(3, 4, 1)
        self.relu1 = nn.ReLU()
        self.combine = nn.Conv2d(4, 2, 1)
        self.relu2 = nn.ReLU()
        with torch.no_grad():
            self.detect.weight.zero_()
            self.detect.bias.zero_()
            for c in range(3):
                self.detect.weight[c, c] = 1.0
            self.detect.weight[3, :] = -1.0
            self.detect.bias[3] = 1.0
            self.combine.weight.zero_()
            self.combine.weight[0, 0] = 1.0
            self.combine.weight[0, 1] = 1.0
            self.combine.weight[0, 2] = -0.2
            self.combine.weight[0, 3] = 0.1
            self.combine.bias.zero_()
            self.combine.bias[0] = -1.0
            self.combine.weight[1, 2] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu2(self.combine(self.relu1(self.detect(x))))


def test_a_and_b_unit_recovers_a_and_b_by_both_methods() -> None:
    model = wrap(AndNet())
    g = torch.Generator().manual_seed(0)
    yellow = torch.rand(6, 3, 24, 24, generator=g) * 0.2
    yellow[:, 0, 8:16, 8:16] = 1.0
    yellow[:, 1, 8:16, 8:16] = 1.0
    before = model_state(model)
    c = inputs(model, "combine:0", source="relu1", images=yellow)
    assert set(c.top(2)) == {0, 1} and set(c.top(2, by="contribution")) == {0, 1}
    assert c.contributions[2] <= 0 and abs(float(c.contributions[3])) < 0.2 * float(c.contributions[:2].min())
    assert model_state(model) == before  # weights, modes, hooks, grads as they were
    o = outputs(model, "relu1:0", target="combine")
    assert o.top(1) == [0]
    d = json.loads(c.to_json())
    assert {r["channel"] for r in d["strongest"][:2]} == {0, 1} and d["by_contribution"][0]["channel"] in (0, 1)


def test_squeezenet_stages_and_classes() -> None:
    model = cnnlens.create_model("squeezenet1_0", seed=0)
    c = inputs(model, "features.12:5")
    assert c.other == "features.10" and c.kernels.shape == (512, 7, 7)
    o = outputs(model, "features.12:5")
    assert o.other == "logits" and o.weights.shape == (1000,) and o.names is not None and "(" in o.label(o.top(1)[0])
    cw = class_weights(model, "features.12")
    assert torch.allclose(cw[:, 5], o.weights)
    # the classifier of squeezenet is a 1x1 convolution, ReLU, and a global average over 13x13 positions:
    # a channel's weight to a class, summed over positions, is the convolution's weight times 169 / 169
    assert torch.allclose(cw, model.classifier[1].weight[:, :, 0, 0].detach(), atol=1e-5)
    tree = circuit(model, "features.12:5", depth=2, k=2)
    assert len(tree.tree) == 2 + 4 and tree.tree[0][1] == "features.12:5" and tree.tree[-1][2].startswith("features.9:")


def test_circuit_command(tmp_path: Path) -> None:
    out = tmp_path / "c.png"
    result = CliRunner().invoke(cli, ["circuit", "squeezenet1_0", "-w", "none", "-u", "features.12:5", "--depth", "1", "-k", "3", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 5000 and "features.10:" in result.stdout
    result = CliRunner().invoke(cli, ["circuit", "squeezenet1_0", "-w", "none", "-u", "features.12:5", "--depth", "1", "-k", "3", "--json"])
    assert json.loads(result.stdout)["edges"][0]["unit"] == "features.12:5"
    for args, message in [(["-u", "features.12"], "LAYER:CHANNEL"), (["-u", "features.12:5", "--depth", "0"], "--depth"), (["-u", "nolayer:1"], "--unit")]:
        result = CliRunner().invoke(cli, ["circuit", "squeezenet1_0", "-w", "none", *args, "--json"])
        assert result.exit_code == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr
