"""Every torchvision classification model: parameters, MACs against torchvision's published numbers,
and meta-device shapes against a real forward pass."""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision

import cnnlens
from cnnlens.registry import build_empty, list_models

ALL_MODELS = list_models(source="torchvision")


def matching_weights(name: str, crop: int):  # noqa: ANN201
    """The torchvision weights entry published for this input size (vit_h_14 has 518 and 224 px entries)."""
    for w in torchvision.models.get_model_weights(name):
        if w.transforms().crop_size[0] == crop:
            return w
    raise AssertionError(f"no {name} weights for crop {crop}")


def test_the_zoo_is_complete() -> None:
    assert len(ALL_MODELS) >= 80
    assert {"vgg16", "resnet50", "googlenet", "inception_v3", "regnet_y_128gf", "vit_h_14"} <= set(ALL_MODELS)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_params_and_macs_match_torchvision(name: str) -> None:
    module = build_empty(name)  # what report(name) builds; built once here to count its auxiliary heads
    r = cnnlens.report(module)
    assert (r.model, r.source) == (name, "torchvision")
    w = matching_weights(name, r.input_size[-1])
    # torchvision's "_ops" is GMACs of conv and linear layers, rounded to 3 decimals
    published = w.meta["_ops"] * 1e9
    assert abs(r.totals.macs - published) <= max(0.01 * published, 0.5e6), (r.totals.macs, published)
    assert r.totals.flops == 2 * r.totals.macs
    if name == "googlenet":  # built without weights it keeps its two auxiliary heads; the weights drop them
        aux = sum(p.numel() for n, p in module.named_parameters() if n.startswith("aux"))
        assert r.totals.params - aux == w.meta["num_params"] == 6_624_904
    else:
        assert r.totals.params == w.meta["num_params"]


def test_inception_v3_defaults_to_299() -> None:
    r = cnnlens.report("inception_v3")
    assert r.input_size == (1, 3, 299, 299)
    assert r["Mixed_7c"].output_shape == [1, 2048, 8, 8]


def real_shapes(name: str, size: int) -> dict[str, list[int]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = {"init_weights": False} if name in ("googlenet", "inception_v3") else {}
        model = torchvision.models.get_model(name, weights=None, **kwargs).eval()
    shapes: dict[str, list[int]] = {}

    def record(name: str):  # noqa: ANN202
        def hook(module: torch.nn.Module, args: object, out: object) -> None:
            if isinstance(out, torch.Tensor):
                shapes.setdefault(name, list(out.shape))

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if n]
    with torch.no_grad():
        model(torch.rand(1, 3, size, size))
    for h in handles:
        h.remove()
    return shapes


def check_shapes(name: str, size: int) -> None:
    real = real_shapes(name, size)
    meta = {row.name: row.output_shape for row in cnnlens.report(name, (1, 3, size, size)).layers if row.output_shape}
    assert real.keys() <= meta.keys()
    mismatched = {n: (meta[n], real[n]) for n in real if meta[n] != real[n]}
    assert not mismatched


@pytest.mark.parametrize(
    ("name", "size"),
    [("googlenet", 224), ("inception_v3", 299), ("resnet18", 160), ("squeezenet1_0", 227), ("shufflenet_v2_x0_5", 224),
     ("mobilenet_v3_small", 224), ("densenet121", 96), ("efficientnet_b0", 160), ("regnet_x_400mf", 160), ("mnasnet0_5", 128),
     ("alexnet", 224)],
)  # fmt: skip
def test_meta_shapes_equal_a_real_forward(name: str, size: int) -> None:
    """googlenet's ceil-mode max pools (112 -> 56, not 55) and inception_v3 at 299 included."""
    check_shapes(name, size)


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_MODELS)
def test_meta_shapes_equal_a_real_forward_whole_zoo(name: str) -> None:
    size = cnnlens.report(name).input_size[-1]
    check_shapes(name, size)
