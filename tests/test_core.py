"""The shared ground: pixels, results, unit addresses, checks, progress, and the hooks core's promises."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import cnnlens
from cnnlens.address import Unit, parse_unit, resolve_unit
from cnnlens.checks import check_int, check_number
from cnnlens.errors import CnnlensError
from cnnlens.pixelnet import Normalized, pixel_model
from cnnlens.pixels import Preprocessing, as_pixels
from cnnlens.progress import Progress
from cnnlens.results import Result

from cnnlens.outputs import check_output
from cnnlens.testing import model_state

# -- pixels ------------------------------------------------------------------------------------------


def test_normalize_is_the_torchvision_arithmetic() -> None:
    import torchvision.transforms.v2.functional as TF

    prep = Preprocessing()
    x = torch.rand(2, 3, 8, 8)
    expected = TF.normalize(x, list(prep.mean), list(prep.std))
    assert torch.allclose(prep.normalize(x), expected, atol=1e-6)
    assert torch.allclose(prep.denormalize(prep.normalize(x)), x, atol=1e-6)


def test_normalized_model_takes_pixels() -> None:
    torch.manual_seed(0)
    net = nn.Conv2d(3, 4, 3)
    prep = Preprocessing()
    x = torch.rand(1, 3, 10, 10)
    assert torch.allclose(Normalized(net, prep)(x), net(prep.normalize(x)))
    # identity preprocessing: the model itself
    grey = Preprocessing(mean=(0.0,), std=(1.0,), channels=1)
    assert pixel_model(net, grey) is net


def test_channels_are_converted_by_luma() -> None:
    grey = Preprocessing(mean=(0.0,), std=(1.0,), resize_size=None, crop_size=None, channels=1)
    x = torch.zeros(1, 3, 2, 2)
    x[:, 1] = 1.0  # pure green
    assert torch.allclose(grey.prepare(x, fit="none"), torch.full((1, 1, 2, 2), 0.587))
    colour = Preprocessing(resize_size=None, crop_size=None)
    assert colour.prepare(torch.rand(1, 1, 4, 4), fit="none").shape == (1, 3, 4, 4)


def test_prepare_resizes_and_crops_like_the_weights() -> None:
    prep = Preprocessing(resize_size=32, crop_size=28)
    out = prep.prepare(torch.rand(3, 40, 80), fit="crop")
    assert out.shape == (3, 28, 28)
    assert prep.prepare(torch.rand(3, 40, 80), fit="resize").shape == (3, 32, 64)


def test_minimum_size_is_refused_in_one_line() -> None:
    prep = Preprocessing(resize_size=None, crop_size=None, min_size=(29, 29))
    with pytest.raises(CnnlensError, match="minimum 29x29"):
        prep.prepare(torch.rand(3, 20, 20), fit="none")


def test_as_pixels_accepts_paths_pil_arrays_and_tensors(tmp_path: Path) -> None:
    array = (np.arange(4 * 5 * 3).reshape(4, 5, 3) % 256).astype(np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(array).save(path)
    expected = torch.from_numpy(array).permute(2, 0, 1).float().unsqueeze(0) / 255
    for source in (path, str(path), Image.fromarray(array), array, expected[0], (expected[0] * 255).round().to(torch.uint8)):
        got = as_pixels(source)
        assert got.shape == (1, 3, 4, 5)
        assert torch.allclose(got, expected, atol=1e-6), type(source)
    assert as_pixels([path, path]).shape == (2, 3, 4, 5)


@pytest.mark.parametrize("bad", [torch.full((3, 4, 4), 2.0), torch.full((3, 4, 4), float("nan")), torch.zeros(2, 2, 2, 2, 2), "nope.png", 3])
def test_as_pixels_refuses_what_is_not_pixels(bad: object) -> None:
    with pytest.raises(CnnlensError):
        as_pixels(bad)


# -- results -----------------------------------------------------------------------------------------


class _Toy(Result):
    def __init__(self, value: float) -> None:
        self.value = value

    def to_dict(self) -> dict:
        return {"value": self.value, "tensor": torch.tensor([1.5, float("inf")])}

    def figure(self):  # type: ignore[no-untyped-def]
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.set_title(f"value {self.value}")
        return fig

    def _summary(self) -> dict:
        return {"value": self.value}


def test_result_protocol_saves_json_and_figures(tmp_path: Path) -> None:
    r = _Toy(0.25)
    assert repr(r) == "_Toy(value=0.25)"
    data = json.loads(r.save(tmp_path / "r.json").read_text())
    assert data == {"value": 0.25, "tensor": [1.5, None]}  # inf is not JSON
    png = r.save(tmp_path / "r.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = r._repr_html_()
    assert "0.25" in html and "data:image/png;base64," in html
    with pytest.raises(CnnlensError, match="exists"):
        r.save(tmp_path / "r.png")
    with pytest.raises(CnnlensError, match="unknown suffix"):
        r.save(tmp_path / "r.xyz")
    assert not (tmp_path / "r.xyz").exists()


def test_check_output_refuses_before_work(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(CnnlensError, match="is a file, not a folder"):
        check_output(tmp_path / "file" / "out.png")
    with pytest.raises(CnnlensError, match="is a folder"):
        check_output(tmp_path)
    assert check_output(tmp_path / "new" / "out.png") == tmp_path / "new" / "out.png"


# -- unit addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("features.10", Unit("features.10")),
        ("features.10:42", Unit("features.10", 42)),
        ("layer4.1.conv2:7@3,4", Unit("layer4.1.conv2", 7, (3, 4))),
        ("logits:388", Unit("logits", 388)),
        ("logits:giant panda", Unit("logits", None, None, "giant panda")),
    ],
)
def test_parse_unit(text: str, unit: Unit) -> None:
    assert parse_unit(text) == unit
    if unit.name is None:
        assert str(unit) == text


@pytest.mark.parametrize("text", ["", "a:b", "x:1@2", "x:1@a,b", "x@1,2", "x:-1", "logits:cat@1,2"])
def test_parse_unit_refuses_bad_syntax(text: str) -> None:
    with pytest.raises(CnnlensError):
        parse_unit(text)


def test_resolve_unit_checks_every_part() -> None:
    model = cnnlens.create_model("resnet18", seed=0)
    assert resolve_unit("logits:Giant Panda", model) == Unit("logits", 388, None, "giant panda")
    assert resolve_unit("logits:388", model).name == "giant panda"
    with pytest.raises(CnnlensError, match="did you mean: layer4"):
        resolve_unit("layer5:1", model)
    with pytest.raises(CnnlensError, match="did you mean: .*tabby"):
        resolve_unit("logits:tabby cat", model)
    with pytest.raises(CnnlensError, match="out of range"):
        resolve_unit("logits:1000", model)
    with pytest.raises(CnnlensError, match="channels 0..511"):
        resolve_unit("layer4:512", model, shape=(1, 512, 7, 7))
    with pytest.raises(CnnlensError, match="outside layer4's 7x7"):
        resolve_unit("layer4:3@7,0", model, shape=(1, 512, 7, 7))


# -- checks and errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, "x", None])
def test_check_number_names_the_parameter(value: object) -> None:
    with pytest.raises(CnnlensError, match="^step_size ") as info:
        check_number(value, "step_size", low=0.0, low_open=True)
    assert info.value.param == "step_size"
    assert info.value.for_option("--step-size").startswith("--step-size ")


def test_check_int() -> None:
    assert check_int(3, "k", low=1) == 3
    with pytest.raises(CnnlensError, match="k must be >= 1"):
        check_int(0, "k", low=1)
    with pytest.raises(CnnlensError, match="integer"):
        check_int(1.5, "k")


# -- progress ----------------------------------------------------------------------------------------


def test_progress_off_a_terminal_prints_lines() -> None:
    stream = io.StringIO()
    bar = Progress(4, "images", stream=stream, interval=0.0)
    for _ in range(4):
        bar.update(1, loss=0.5)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("images: started, 0/4")
    assert lines[-1].startswith("images: done, 4/4 it (100%)")
    assert len(lines) == 6 and "loss 0.5" in lines[-2]


def test_progress_disabled_is_silent() -> None:
    stream = io.StringIO()
    bar = Progress(4, "images", enabled=False, stream=stream, interval=0.0)
    bar.update(4)
    bar.close()
    assert stream.getvalue() == ""


# -- the hooks core leaves BatchNorm statistics alone ---------------------------------------------------


def test_forward_until_leaves_batchnorm_statistics_in_train_mode() -> None:
    model = cnnlens.create_model("resnet18", seed=0).train()
    before = model_state(model)
    mean = model.bn1.running_mean.clone()
    record = cnnlens.forward_until(model, torch.rand(2, 3, 32, 32), "layer1")
    assert record["layer1"].shape == (2, 64, 8, 8)
    assert torch.equal(model.bn1.running_mean, mean)
    assert int(model.bn1.num_batches_tracked) == 0
    assert model_state(model) == before and model.training


def test_outputs_get_the_usual_file_permissions(tmp_path: Path) -> None:
    """Atomic writes go through a private temporary file; the result must not stay private (0600)."""
    import os

    from cnnlens.outputs import save_text

    umask = os.umask(0o022)
    try:
        path = save_text("hello", tmp_path / "out.txt")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644
