"""``cnnlens attribute``: one model of each registry source with ``-w none --seed S`` (same seed, same
bytes; another seed, other bytes), folders with one figure per image and an index, and bad input as
one ``Error:`` line before any work, with no file written and none changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from cnnlens.cli import cli
from cnnlens.images import save_image

SOURCES = ["resnet18", "lenet5", "mnist-cnn", "file", "timm/resnet18"]


def _run(args: list[object]):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("attr-images")
    g = torch.Generator().manual_seed(0)
    for i in range(3):
        save_image(torch.rand(3, 40, 52, generator=g), root / f"img{i}.png")
    return root


@pytest.mark.parametrize("source", SOURCES)
def test_every_source_runs_and_repeats_under_its_seed(source: str, photo: Path, file_model: str, tmp_path: Path) -> None:
    if source.startswith("timm/"):
        pytest.importorskip("timm")
    model = file_model if source == "file" else source
    outputs = {}
    for tag, seed in (("a", 0), ("b", 0), ("c", 1)):
        out = tmp_path / tag
        args = [
            "attribute", model, photo, "-w", "none", "--seed", seed, "--device", "cpu",
            "--method", "gradcam,smoothgrad", "--smoothgrad-samples", "2", "--faithfulness", "--faithfulness-steps", "2",
            "-o", out / "maps.png", "--json", *(["--size", "64"] if source in ("resnet18", "timm/resnet18") else []),
        ]
        result = _run(args)
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        outputs[tag] = ((out / "maps.png").read_bytes(), result.stdout)
        assert data["random_init"] is True and data["weights"] == f"random init, seed {seed}"
        assert data["methods"] == ["gradcam", "smoothgrad"] and data["layer"]
        assert data["images"][0]["image"] == str(photo) and set(data["faithfulness"]["deletion"]) == {"gradcam", "smoothgrad", "random", "random-grid"}
    assert outputs["a"] == outputs["b"]
    assert outputs["a"][0] != outputs["c"][0] and outputs["a"][1] != outputs["c"][1]


def test_a_folder_gives_one_figure_per_image_and_an_index(folder: Path, tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    result = _run(["attribute", "mnist-cnn", folder, "-w", "none", "--method", "gradcam", "--method", "occlusion", "-b", "2", "--figures", maps, "--json", "-o", tmp_path / "all.png"])
    assert result.exit_code == 0, result.output
    index = json.loads((maps / "index.json").read_text())
    assert [row["figure"] for row in index["images"]] == ["img0.png", "img1.png", "img2.png"]
    assert all((maps / f"img{i}.png").stat().st_size > 3000 for i in range(3)) and (tmp_path / "all.png").stat().st_size > 10_000
    printed = json.loads(result.stdout)
    for row in index["images"]:
        row.pop("figure")
    assert printed == index
    assert "wrote 3 figures" in result.stderr
    again = _run(["attribute", "mnist-cnn", folder, "-w", "none", "--figures", maps])
    assert again.exit_code == 2 and "exists" in again.stderr


def test_default_outputs(folder: Path, photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    one = _run(["attribute", "mnist-cnn", photo, "-w", "none", "--method", "gradcam"])
    assert one.exit_code == 0, one.output
    assert (tmp_path / "mnist-cnn-chelsea-attribution.png").is_file() and "top class" in one.stdout
    many = _run(["attribute", "mnist-cnn", folder, "-w", "none", "--method", "saliency"])
    assert many.exit_code == 0, many.output
    assert sorted(p.name for p in (tmp_path / f"mnist-cnn-{folder.name}-attribution").iterdir()) == ["img0.png", "img1.png", "img2.png", "index.json"]


def test_sanity_option(photo: Path, tmp_path: Path) -> None:
    result = _run(["attribute", "mnist-cnn", photo, "-w", "none", "--method", "gradcam,guided-backprop", "--sanity", "-o", tmp_path / "s.png", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["sanity"]["blocks"] == ["(trained)", "linear2", "linear1", "conv2", "conv1"]
    assert set(data["sanity"]["methods"]) == {"gradcam", "guided-backprop"} and data["sanity"]["methods"]["gradcam"]["mean"][0] == 1.0
    assert (tmp_path / "s.png").stat().st_size > 20_000


BAD = [
    (["--method", "gradcom"], "--method: unknown method 'gradcom' (did you mean: gradcam"),
    (["--method", ","], "--method is empty"),
    (["--target", "tabbby"], "--target: unknown class 'tabbby' (did you mean: tabby"),
    (["--target", "1000"], "--target: class 1000 out of range"),
    (["--target", "layer4:3"], "is a layer"),
    (["-l", "layer9"], "--layer: unknown layer 'layer9' (did you mean: layer4"),
    (["-l", "fc"], "--layer fc outputs (1, 1000), which has no spatial positions"),
    (["-l", "layer1.0.relu"], "runs 2 times in one forward pass"),
    (["--smoothgrad-noise", "nan"], "--smoothgrad-noise must be a finite number"),
    (["--smoothgrad-noise", "-1"], "--smoothgrad-noise must be >= 0"),
    (["--ig-steps", "0"], "--ig-steps"),
    (["--occlusion-window", "500", "--method", "occlusion"], "--occlusion-window 500 is larger than the 64x64 image"),
    (["--size", "0"], "--size"),
    (["--faithfulness-steps", "0"], "--faithfulness-steps"),
    (["-o", "OUT/x.xyz"], "unknown suffix '.xyz'"),
    (["-o", "OUT/exists.png"], "exists; choose another name or pass --overwrite"),
    (["--figures", "OUT/exists.png"], "is a file"),
    (["-w", "nonsense"], "weights 'nonsense' unknown"),
    (["--device", "tpu"], "device 'tpu' unknown"),
    (["--seed", "-1"], "--seed"),
]


@pytest.mark.parametrize(("extra", "message"), BAD)
def test_bad_input_is_one_error_line_and_nothing_written(extra: list[str], message: str, photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "exists.png").write_bytes(b"keep me")
    args = [a.replace("OUT", str(out)) for a in extra]
    defaults = ["-w", "none", "--size", "64", "-o", str(out / "new.png")] if "-o" not in extra else ["-w", "none", "--size", "64"]
    if "-w" in extra:
        defaults = defaults[2:]
    result = _run(["attribute", "resnet18", str(photo), *defaults, *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if not line.startswith("attribution maps")]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir()) == ["exists.png"] and (out / "exists.png").read_bytes() == b"keep me"


def test_missing_or_unreadable_images(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    for target, message in ((tmp_path / "none.png", "no such file or folder"), (bad, "cannot read image")):
        result = _run(["attribute", "resnet18", target, "-w", "none", "-o", tmp_path / "x.png"])
        assert result.exit_code == 2 and result.stderr.startswith("Error: ") and message in result.stderr, result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run(["attribute", "resnet18", empty, "-w", "none"])
    assert result.exit_code == 2 and "no images" in result.stderr
    assert not (tmp_path / "x.png").exists()
