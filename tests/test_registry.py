"""The model registry: every source, seeds, weights (names, files, offline), refusals in one line,
listing, default layers and did-you-mean."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch
import torchvision

import cnnlens
from cnnlens.errors import CnnlensError
from cnnlens.registry import RANDOM_INIT, get_entry, hub_checkpoint_path, list_models, model_info
from cnnlens.zoo import MnistCNN

TEACHING = ["alexnet-paper", "lenet5", "mlp-mnist", "three-3x3", "one-7x7"]

NET_PY = '''
import torch.nn as nn


class TinyNet(nn.Module):
    """A two-class net on 3x40x40 pixels."""

    input_size = (3, 40, 40)
    mean = (0.5, 0.4, 0.3)
    std = (0.2, 0.25, 0.3)
    categories = ("cat", "dog")

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).relu().mean((2, 3)))
'''


@pytest.fixture
def net_file(tmp_path: Path) -> str:
    path = tmp_path / "tiny_net.py"
    path.write_text(NET_PY)
    return f"{path}:TinyNet"


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache (the no_downloads fixture refuses every download)."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    return hub


def weights_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- one model of every source -------------------------------------------------------------------------


def test_torchvision_model_random_init() -> None:
    model = cnnlens.create_model("resnet18", seed=0)
    assert isinstance(model, torchvision.models.ResNet)
    assert not any(m.training for m in model.modules())
    info = model_info(model)
    assert (info.name, info.source, info.weights, info.seed, info.pretrained) == ("resnet18", "torchvision", RANDOM_INIT, 0, False)
    assert info.random_init and info.weights_label == "random init, seed 0" and info.label == "resnet18 (random init, seed 0)"
    assert info.to_dict() == {"model": "resnet18", "source": "torchvision", "weights": "random init, seed 0", "random_init": True}
    # preprocessing and class names come from torchvision's DEFAULT weights even for a random init
    assert info.preprocessing.crop_size == 224 and info.preprocessing.resize_size == 256
    assert info.category(0) == "tench" and info.category(5000) == "class 5000"


def test_teaching_model_lenet5() -> None:
    model = cnnlens.create_model("lenet5", seed=0)
    info = model_info(model)
    assert (info.source, info.preprocessing.input_size, info.preprocessing.channels) == ("teaching", (1, 32, 32), 1)
    assert info.categories == tuple("0123456789")
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 10)
    assert not model.training


@pytest.mark.parametrize("name", ["mnist-cnn", "lenet5-mnist"])
def test_mnist_cnn_and_its_old_name(name: str) -> None:
    model = cnnlens.create_model(name, seed=0)
    assert isinstance(model, MnistCNN) and not model.training
    info = model_info(model)
    assert (info.name, info.source) == ("mnist-cnn", "mnist")  # the alias resolves to the one MNIST CNN
    assert info.preprocessing.input_size == (1, 28, 28) and info.preprocessing.mean == (0.0,) and info.preprocessing.std == (1.0,)
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert "lenet5-mnist" not in list_models()
    assert weights_equal(model, cnnlens.create_model("mnist-cnn", seed=0))


def test_model_from_a_file_with_its_class_attributes(net_file: str) -> None:
    model = cnnlens.create_model(net_file, seed=1)
    assert type(model).__name__ == "TinyNet" and not model.training and not model.bn.training
    info = model_info(model)
    assert (info.name, info.source, info.weights) == (net_file, "file", RANDOM_INIT)
    p = info.preprocessing
    assert (p.input_size, p.resize_size, p.crop_size) == ((3, 40, 40), 40, 40)
    assert (p.mean, p.std, p.channels) == ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3), 3)
    assert info.categories == ("cat", "dog") and info.category(1) == "dog"
    assert get_entry(net_file).description == "A two-class net on 3x40x40 pixels."
    assert model(torch.rand(1, 3, 40, 40)).shape == (1, 2)


def test_model_file_errors_are_one_line(tmp_path: Path, net_file: str) -> None:
    with pytest.raises(CnnlensError, match="model file not found"):
        cnnlens.create_model(str(tmp_path / "absent.py") + ":Net")
    with pytest.raises(CnnlensError, match=r"no nn.Module class 'TinyNt' \(did you mean: TinyNet\?\)"):
        cnnlens.create_model(net_file.replace("TinyNet", "TinyNt"))
    broken = tmp_path / "broken.py"
    broken.write_text("import torch.nn as nn\nraise RuntimeError('boom\\nsecond line')\n")
    with pytest.raises(CnnlensError, match="cannot import .*RuntimeError: boom$"):
        cnnlens.create_model(f"{broken}:Net")


def test_timm_model() -> None:
    timm = pytest.importorskip("timm")
    model = cnnlens.create_model("timm/resnet18", seed=0)
    assert isinstance(model, timm.models.ResNet) and not model.training
    info = model_info(model)
    assert (info.name, info.source, info.weights) == ("timm/resnet18", "timm", RANDOM_INIT)
    cfg = timm.get_pretrained_cfg("resnet18").to_dict()
    assert info.preprocessing.mean == tuple(cfg["mean"]) and info.preprocessing.crop_size == cfg["input_size"][-1]
    assert weights_equal(model, cnnlens.create_model("timm/resnet18", seed=0))
    assert get_entry("timm/resnet18").pretrained  # timm publishes weights for it
    with pytest.raises(CnnlensError, match=r"unknown timm model 'resnet1' \(did you mean: resnet18"):
        cnnlens.create_model("timm/resnet1")


def _hub_cache(root: Path, repo_id: str, state: dict[str, torch.Tensor]) -> None:
    """Lay ``state`` down in a Hugging Face hub cache at ``root`` as ``repo_id``'s model.safetensors."""
    from safetensors.torch import save_file

    commit = "0" * 40
    folder = root / f"models--{repo_id.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "snapshots" / commit).mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "snapshots" / commit / "model.safetensors"))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """Every host name lookup fails (and is recorded); every sleep returns at once (and is recorded):
    a downloader that retries with backoff shows up in ``sleeps`` instead of hanging the test."""
    import socket
    import time

    calls: dict[str, list] = {"lookups": [], "sleeps": []}

    def lookup(host: object, *args: object, **kwargs: object) -> object:
        calls["lookups"].append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(time, "sleep", lambda seconds: calls["sleeps"].append(seconds))
    return calls


def test_timm_pretrained_weights_come_from_the_hub_cache_without_a_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: dict[str, list]) -> None:
    timm = pytest.importorskip("timm")
    hf = pytest.importorskip("huggingface_hub")
    cached = timm.create_model("test_resnet")  # random weights, standing for the published ones
    _hub_cache(tmp_path, timm.get_pretrained_cfg("test_resnet").hf_hub_id, cached.state_dict())
    monkeypatch.setattr(hf.constants, "HF_HUB_CACHE", str(tmp_path))
    offline_before = hf.constants.HF_HUB_OFFLINE
    model = cnnlens.create_model("timm/test_resnet", "DEFAULT")
    assert model_info(model).weights == "pretrained" and not model.training
    assert weights_equal(model, cached)
    assert no_network == {"lookups": [], "sleeps": []}  # not even the hub's usual check for a newer file
    assert hf.constants.HF_HUB_OFFLINE == offline_before  # the user's setting is back


def test_timm_pretrained_weights_offline_and_not_cached_fail_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: dict[str, list]) -> None:
    pytest.importorskip("timm")
    hf = pytest.importorskip("huggingface_hub")
    monkeypatch.setattr(hf.constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    monkeypatch.setattr(hf.constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(CnnlensError) as info:
        cnnlens.create_model("timm/test_resnet", "DEFAULT")
    message = str(info.value)
    assert "\n" not in message and info.value.param == "weights"
    # the network error's class name: httpx's ConnectError, or requests' ConnectionError in older huggingface_hub
    assert re.fullmatch(r"weights: timm's pretrained timm/test_resnet are not cached and could not be downloaded \((ConnectError|ConnectionError)\); pass a weights file or none", message), message
    # one request (the reachability check) and no retries: huggingface_hub alone retries each file with
    # 1+2+4+8+8 s of backoff before giving up
    assert no_network["lookups"] == ["huggingface.co"] and no_network["sleeps"] == []
    assert hf.constants.HF_HUB_OFFLINE is False  # the cache-only attempt did not leave offline mode on

    # the user's offline mode: not even the check
    monkeypatch.setattr(hf.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CnnlensError, match=r"^weights: timm's pretrained timm/test_resnet are not cached and could not be downloaded \(HF_HUB_OFFLINE is set\)"):
        cnnlens.create_model("timm/test_resnet", "DEFAULT")
    assert no_network["lookups"] == ["huggingface.co"] and no_network["sleeps"] == []
    assert hf.constants.HF_HUB_OFFLINE is True  # left as the user set it


# -- seeds ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lenet5", "resnet18"])
def test_same_seed_same_weights_other_seed_other_weights(name: str) -> None:
    a, b, c = (cnnlens.create_model(name, seed=s) for s in (0, 0, 1))
    assert weights_equal(a, b)
    assert not weights_equal(a, c)


def test_seeded_creation_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    cnnlens.create_model("lenet5", seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    # without a seed the global RNG draws the initialisation, as in torchvision
    torch.manual_seed(5)
    first = cnnlens.create_model("lenet5")
    torch.manual_seed(5)
    assert weights_equal(first, cnnlens.create_model("lenet5"))
    assert model_info(first).seed is None and model_info(first).weights_label == RANDOM_INIT


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, "x", True])
def test_bad_seed_is_refused(seed: object) -> None:
    with pytest.raises(CnnlensError, match="^seed must be"):
        cnnlens.create_model("lenet5", seed=seed)


# -- weights -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weights", [None, "none", "None", "random", ""])
def test_no_weights_is_a_random_init(weights: object) -> None:
    assert model_info(cnnlens.create_model("lenet5", weights, seed=0)).random_init


VGG16_FILE = "vgg16-397923af.pth"


@pytest.mark.parametrize(
    "weights", ["DEFAULT", "default", "IMAGENET1K_V1", "VGG16_Weights.IMAGENET1K_V1", torchvision.models.VGG16_Weights.IMAGENET1K_V1]
)
def test_pretrained_names_resolve_and_offline_is_one_line(weights: object, offline_hub: Path) -> None:
    """Every way of naming vgg16's ImageNet weights resolves to the same file, which is not cached here."""
    with pytest.raises(CnnlensError) as err:
        cnnlens.create_model("vgg16", weights)
    message = str(err.value)
    assert message.startswith("weights ") and err.value.param == "weights"
    assert VGG16_FILE in message and str(offline_hub) in message and "\n" not in message
    assert hub_checkpoint_path(torchvision.models.VGG16_Weights.IMAGENET1K_V1) == offline_hub / "checkpoints" / VGG16_FILE


def test_unknown_weight_names(offline_hub: Path) -> None:
    with pytest.raises(CnnlensError, match=r"weights 'IMAGENET1K_V9' unknown for vgg16 \(did you mean: IMAGENET1K_V1"):
        cnnlens.create_model("vgg16", "IMAGENET1K_V9")
    with pytest.raises(CnnlensError, match="^weights: lenet5 has no downloadable pretrained weights"):
        cnnlens.create_model("lenet5", "DEFAULT")
    with pytest.raises(CnnlensError, match="^weights file not found"):
        cnnlens.create_model("lenet5", "no/such/file.pth")
    with pytest.raises(CnnlensError, match="^weights must be a name, a path or a resnet18 weights enum"):
        cnnlens.create_model("resnet18", torchvision.models.VGG16_Weights.IMAGENET1K_V1)


def test_weights_from_a_state_dict_file(tmp_path: Path) -> None:
    torch.manual_seed(3)
    source = torchvision.models.squeezenet1_1()
    path = tmp_path / "sq.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in source.state_dict().items()}}, path)  # DataParallel checkpoint
    model = cnnlens.create_model("squeezenet1_1", str(path))
    assert weights_equal(model, source)
    info = model_info(model)
    assert (info.weights, info.random_init, info.pretrained, info.seed) == ("sq.pth", False, True, None)
    assert weights_equal(cnnlens.create_model("squeezenet1_1", path), source)  # a Path works too


def _fits(name: str, state: dict[str, torch.Tensor], path: Path) -> str:
    torch.save(state, path)
    try:
        cnnlens.create_model(name, path)
    except RuntimeError as exc:  # pragma: no cover - the failure this test guards against
        raise AssertionError(f"raw RuntimeError: {exc}") from exc
    except CnnlensError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("weights: ")
        return str(exc)
    raise AssertionError("the file was accepted")


def test_weights_that_do_not_fit_are_one_line(tmp_path: Path) -> None:
    squeeze11 = torchvision.models.squeezenet1_1().state_dict()
    message = _fits("resnet18", squeeze11, tmp_path / "a.pth")
    assert "a.pth does not fit resnet18" in message and "missing" in message and "unexpected" in message
    message = _fits("squeezenet1_1", torchvision.models.squeezenet1_0().state_dict(), tmp_path / "b.pth")
    assert "of other shape (e.g. features.0.weight: (96, 3, 7, 7) in the file, (64, 3, 3, 3) in the model)" in message
    message = _fits("resnet18", torchvision.models.resnet18(num_classes=10).state_dict(), tmp_path / "c.pth")
    assert message == (
        "weights: c.pth does not fit resnet18: 2 of other shape (e.g. fc.weight: (10, 512) in the file, (1000, 512) in the model) tensors"
    )
    message = _fits("mobilenet_v2", squeeze11, tmp_path / "d.pth")
    assert "d.pth does not fit mobilenet_v2" in message
    (tmp_path / "e.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CnnlensError, match="^weights: cannot read .*e.pth"):
        cnnlens.create_model("resnet18", tmp_path / "e.pth")
    torch.save([1, 2, 3], tmp_path / "f.pth")
    with pytest.raises(CnnlensError, match="holds no state dict of tensors"):
        cnnlens.create_model("resnet18", tmp_path / "f.pth")


def test_cifar_resnet20_into_resnet18_is_one_line(data: Path) -> None:
    path = data / "cifar10" / "resnet20-12fca82f.th"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    with pytest.raises(CnnlensError, match="^weights: resnet20-12fca82f.th does not fit resnet18"):
        cnnlens.create_model("resnet18", path)


class Payload:
    """Unpickling this would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_a_malicious_pickle_is_refused_without_running(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    if writer == "torch":
        torch.save({"state_dict": Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(Payload(marker), protocol=2))
    with pytest.raises(CnnlensError, match="^weights: cannot read"):
        cnnlens.create_model("resnet18", path)
    assert not marker.exists()


def test_trained_weights_from_the_development_data(squeezenet_trained: torch.nn.Module, data: Path) -> None:
    """The ImageNet squeezenet1_0 of the development data classifies a tench photo as a tench."""
    image = cnnlens.as_pixels(data / "imagenet_samples/n01440764_tench.JPEG")
    info = model_info(squeezenet_trained)
    assert info.weights == "squeezenet1_0_imagenet_deepcompression.pth" and not info.random_init
    x = info.preprocessing.prepare(image)
    with torch.no_grad():
        logits = cnnlens.Normalized(squeezenet_trained, info.preprocessing)(x)
    assert info.category(int(logits.argmax())) == "tench"


# -- listing -------------------------------------------------------------------------------------------


def test_list_models_sources_and_patterns() -> None:
    assert list_models(source="teaching") == TEACHING
    assert list_models(source="mnist") == ["mnist-cnn"]
    assert list_models(source="file") == []
    tv = list_models(source="torchvision")
    assert len(tv) >= 80 and {"resnet18", "vgg16", "inception_v3", "vit_h_14"} <= set(tv)
    assert list_models("vgg1?") == ["vgg11", "vgg13", "vgg16", "vgg19"]
    assert list_models("*lenet5*") == ["lenet5"]
    assert list_models("resnet*", source="teaching") == []
    assert set(list_models(source="teaching", pretrained=False)) == set(TEACHING)
    assert list_models(source="teaching", pretrained=True) == []
    everything = list_models()
    assert len(everything) == len(set(everything))
    assert set(tv + TEACHING + ["mnist-cnn"]) <= set(everything)
    with pytest.raises(CnnlensError, match=r"source 'teach' unknown \(did you mean: teaching\?\)"):
        list_models(source="teach")


def test_timm_names_are_listed_when_timm_is_installed() -> None:
    pytest.importorskip("timm")
    names = list_models(source="timm")
    assert len(names) > 500 and all(n.startswith("timm/") for n in names)
    assert "timm/resnet18" in names and "timm/resnet18" in list_models("timm/resnet1?")
    assert set(names) <= set(list_models())


def test_every_listed_name_has_an_entry() -> None:
    for name in list_models():
        entry = get_entry(name)
        d = entry.to_dict()
        assert d["name"] == name and d["source"] in ("torchvision", "teaching", "mnist", "timm")
        assert len(d["input_size"]) == 3 and len(d["min_size"]) == 2 and isinstance(d["pretrained"], bool)
    assert get_entry("resnet18").pretrained and not get_entry("lenet5").pretrained
    assert get_entry("three-3x3").kind == "tensor" and get_entry("three-3x3").input_size == (64, 56, 56)


# -- default layers ------------------------------------------------------------------------------------


def test_default_layers_resnet18_and_lenet5() -> None:
    resnet = cnnlens.create_model("resnet18", seed=0)
    assert cnnlens.default_layers(resnet, "dream") == ["layer3"]
    assert cnnlens.default_layers(resnet, "first_conv") == ["conv1"]
    assert cnnlens.default_layers(resnet, "last_spatial") == ["layer4"]
    lenet = cnnlens.create_model("lenet5", seed=0)
    assert cnnlens.default_layers(lenet, "first_conv") == ["0"]
    assert cnnlens.default_layers(lenet, "dream") == ["6"]  # the convolution two thirds of the way down (C5)
    assert cnnlens.default_layers(lenet, "last_spatial") == ["5"]  # S4, 16x5x5; C5 is 1x1
    squeeze = cnnlens.create_model("squeezenet1_0", seed=0)
    assert cnnlens.default_layers(squeeze, "style") == ["features.1", "features.4", "features.7", "features.9", "features.12"]
    with pytest.raises(CnnlensError, match=r"unknown capability 'dreem' \(did you mean: dream\?\)"):
        cnnlens.default_layers(lenet, "dreem")
    with pytest.raises(CnnlensError, match="mlp-mnist has no Conv2d layer"):
        cnnlens.default_layers(cnnlens.create_model("mlp-mnist", seed=0), "first_conv")


# -- names ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("squeezenet1_2", "did you mean: squeezenet1_1, squeezenet1_0"),
        ("lenet", "did you mean: lenet5"),
        ("mnist_cnn", "did you mean: mnist-cnn"),
        ("alexnet_paper", "did you mean: alexnet-paper"),
        ("Resnet18", "did you mean: resnet18"),
    ],
)
def test_unknown_names_suggest(name: str, suggestion: str) -> None:
    with pytest.raises(CnnlensError, match=suggestion) as err:
        cnnlens.create_model(name)
    assert err.value.param == "model" and "\n" not in str(err.value)


@pytest.mark.parametrize("bad", [None, "", 3])
def test_a_model_must_be_a_name(bad: object) -> None:
    with pytest.raises(CnnlensError, match="^model must be a model name"):
        get_entry(bad)  # type: ignore[arg-type]
