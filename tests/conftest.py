from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# ../shared/data beside the checkout (CNNLENS_DATA overrides); tests that need it skip without it
DATA = Path(os.environ.get("CNNLENS_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))

# one intra-op thread: CI has 2 cores and test files may run beside each other; 1 is also the fastest for these small models
torch.set_num_threads(1)


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to download weights is a test failure, never a silent skip."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a test tried to download: {args[:1]}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


@pytest.fixture(scope="module")
def squeeze_random() -> torch.nn.Module:
    """A random-init squeezenet1_0 in eval mode (seed 0), shared by a test module."""
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.squeezenet1_0().eval()


@pytest.fixture
def data() -> Path:
    """The shared data folder (real weights and images); skips the test when it is absent."""
    if not DATA.is_dir():
        pytest.skip(f"{DATA} is absent (real weights and images live there)")
    return DATA


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture
def squeezenet_trained(data: Path) -> torch.nn.Module:
    """ImageNet-trained squeezenet1_0 from ../shared/data (see its README)."""
    import cnnlens

    return cnnlens.create_model("squeezenet1_0", require(data / "imagenet/squeezenet1_0_imagenet_deepcompression.pth"))


@pytest.fixture
def mobilenet_trained(data: Path) -> torch.nn.Module:
    """ImageNet-trained mobilenet_v2 from ../shared/data."""
    import cnnlens

    return cnnlens.create_model("mobilenet_v2", require(data / "imagenet/mobilenet_v2_imagenet_dequantized.pth"))


TINY_NET = '''
import torch
import torch.nn as nn


class TinyNet(nn.Module):
    """A tiny image classifier written by a user."""

    input_size = (3, 32, 32)
    mean = (0.5, 0.5, 0.5)
    std = (0.25, 0.25, 0.25)
    categories = ["cat", "dog", "bird"]

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(16 * 8 * 8, 3)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))
'''


@pytest.fixture(scope="session")
def file_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``path/tinynet.py:TinyNet``: a user's own model file (3x32x32, three classes)."""
    path = tmp_path_factory.mktemp("usermodel") / "tinynet.py"
    path.write_text(TINY_NET)
    return f"{path}:TinyNet"


@pytest.fixture(scope="session")
def two_input_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``path/two.py:TinyNet``: the same user model with ``forward(self, x, y)``, which cnnlens cannot feed images."""
    path = tmp_path_factory.mktemp("usermodel") / "two.py"
    path.write_text(TINY_NET.replace("def forward(self, x):", "def forward(self, x, y):"))
    assert "def forward(self, x, y):" in path.read_text()
    return f"{path}:TinyNet"


@pytest.fixture(scope="session")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-image's chelsea photo (it ships with the library), 64 px high, as a PNG."""
    import numpy as np
    import skimage.data
    from PIL import Image

    image = Image.fromarray(skimage.data.chelsea()).resize((96, 64))
    path = tmp_path_factory.mktemp("photos") / "chelsea.png"
    image.save(path)
    assert np.asarray(image).shape == (64, 96, 3)
    return path


def with_options(base: list, extra: list) -> list:
    """``base`` command arguments with the options that ``extra`` gives replaced by ``extra``'s (the CLI
    refuses a single-value option given twice, so a case that changes one drops the base's value).
    ``-l`` and ``--layer`` (likewise other short/long pairs in ``ALIASES``) count as one option."""
    aliases = {"-l": "--layer", "-o": "--output", "-m": "--model", "-w": "--weights", "-u": "--unit"}
    canon = lambda a: aliases.get(str(a), str(a))  # noqa: E731
    given = {canon(a) for a in extra if str(a).startswith("--") or str(a) in aliases}
    out, skip = [], False
    for a in base:
        if skip:
            skip = False
            continue
        if canon(a) in given and str(a).startswith("-"):
            skip = True  # its value
            continue
        out.append(a)
    return [*out, *extra]
