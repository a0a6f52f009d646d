"""Loading models and weights: names, enum names, files, and a clear message offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

import cnnlens
from cnnlens.models import hub_checkpoint_path, resolve_weights


def test_load_model_random_init_eval() -> None:
    model = cnnlens.create_model("resnet18")
    assert not model.training and isinstance(model, torchvision.models.ResNet)


def test_unknown_model_suggests() -> None:
    with pytest.raises(cnnlens.CnnlensError, match="did you mean: squeezenet1_1, squeezenet1_0"):
        cnnlens.create_model("squeezenet1_2")


def test_weights_names_resolve() -> None:
    assert resolve_weights("vgg16", "DEFAULT") is torchvision.models.VGG16_Weights.IMAGENET1K_V1
    assert resolve_weights("vgg16", "VGG16_Weights.IMAGENET1K_V1") is torchvision.models.VGG16_Weights.IMAGENET1K_V1
    assert resolve_weights("vgg16", "none") is None
    with pytest.raises(cnnlens.CnnlensError, match="unknown weights"):
        resolve_weights("vgg16", "IMAGENET1K_V9")


def test_missing_weights_offline_name_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    tried: list[str] = []

    def offline(url: str, *args: object, **kwargs: object) -> None:
        tried.append(url)
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(cnnlens.CnnlensError) as err:
        cnnlens.create_model("vgg16", "DEFAULT")
    message = str(err.value)
    assert tried == [torchvision.models.VGG16_Weights.IMAGENET1K_V1.url]
    assert "vgg16-397923af.pth" in message and str(tmp_path) in message and "--weights PATH" in message
    assert capfd.readouterr().err == ""  # nothing but the error itself reaches the user
    assert "\n" not in message
    assert hub_checkpoint_path(torchvision.models.VGG16_Weights.IMAGENET1K_V1).name == "vgg16-397923af.pth"


def test_weights_from_a_state_dict_file(tmp_path: Path) -> None:
    source = torchvision.models.squeezenet1_1(weights=None)
    path = tmp_path / "sq.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in source.state_dict().items()}}, path)
    model = cnnlens.create_model("squeezenet1_1", str(path))
    torch.testing.assert_close(model.features[0].weight, source.features[0].weight)
    with pytest.raises(cnnlens.CnnlensError, match="does not fit"):
        cnnlens.create_model("resnet18", str(path))


def test_preprocessing_comes_from_the_weights() -> None:
    p = cnnlens.preprocessing("inception_v3")
    assert p.crop_size == 299 and p.resize_size == 342 and p.categories[0] == "tench"
    assert cnnlens.preprocessing("vgg16").min_size == (32, 32)
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(p.denormalize(p.normalize(x)), x)


def test_trained_weights_from_shared_data(squeezenet_trained: torch.nn.Module, data: Path) -> None:
    """The ImageNet squeezenet1_0 in ../shared/data classifies the first sample photo (a tench) right."""
    image = cnnlens.load_image(data / "imagenet_samples/n01440764_tench.JPEG")
    p = cnnlens.preprocessing("squeezenet1_0")
    with torch.no_grad():
        logits = squeezenet_trained(p.normalize(p.resize_and_crop(image)[None]))
    assert p.category(int(logits.argmax())) == "tench"
