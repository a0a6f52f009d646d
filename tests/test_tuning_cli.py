"""``cnnlens tuning``, ``hierarchy`` and ``invariance`` on one model of each registry source, repeat
under --seed, and refuse bad input in one line before any work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cnnlens.cli import cli

QUICK = ["--orientations", "4", "--num-frequencies", "3", "--phases", "4"]


def run(args: list[object]) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small smooth colour images."""
    import skimage.io
    import skimage.transform

    path = tmp_path_factory.mktemp("tuning-images")
    rng = np.random.default_rng(0)
    for i in range(3):
        image = skimage.transform.resize(rng.random((6, 7, 3)), (44, 52), order=1)
        skimage.io.imsave(path / f"{i}.png", (image * 255).astype(np.uint8), check_contrast=False)
    return path


SOURCES = {
    "squeezenet1_0": (["-u", "features.3", "--size", "64"], ["--size", "64"]),
    "lenet5": (["-u", "3"], []),
    "mnist-cnn": (["-u", "conv2:3", "-u", "conv2:5@2,2"], []),
    "file": (["-u", "logits:dog"], []),
    "timm/resnet18": (["-u", "layer1", "--size", "64"], ["--size", "64", "-l", "layer1", "-l", "layer2"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("source", list(SOURCES))
def test_every_registry_source(source: str, file_model: str, folder: Path, tmp_path: Path) -> None:
    if source == "timm/resnet18":
        pytest.importorskip("timm")
    model = file_model if source == "file" else source
    tuning_args, other_args = SOURCES[source]
    fig = tmp_path / "t.png"
    res = run(["tuning", model, "-w", "none", "--seed", 0, *tuning_args, *QUICK, "--json", "-o", fig])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["weights"] == "random init, seed 0" and data["units"] and fig.stat().st_size > 5000
    for u in data["units"]:
        assert u["classification"] in ("simple", "complex", "unselective") and 0 <= u["osi"] <= 1
        assert {"preferred_orientation_deg", "preferred_frequency", "modulation_ratio"} <= set(u)
    res = run(["hierarchy", model, "-w", "none", "--seed", 0, *other_args, *QUICK, "-o", tmp_path / "h.json"])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "h.json").read_text())["rows"]
    assert rows and "RF px" in res.stdout and all(r["share_simple"] + r["share_complex"] + r["share_unselective"] == pytest.approx(1, abs=1e-5) for r in rows)
    res = run(["invariance", model, "-w", "none", "--seed", 0, "--data", folder, *other_args, "--transform", "translation=2", "--transform", "brightness=0.2", "-o", tmp_path / "i.png"])
    assert res.exit_code == 0, res.output
    assert "translation" in res.stdout and (tmp_path / "i.png").stat().st_size > 5000
    assert "no separate baseline" in res.stderr  # -w none is itself the random init


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    outs = {}
    for tag, seed in (("a", 0), ("b", 0), ("c", 1)):
        res = run(["tuning", "mnist-cnn", "-w", "none", "--seed", seed, *QUICK, "--contrasts", "none", "-o", tmp_path / f"{tag}.json"])
        assert res.exit_code == 0, res.output
        outs[tag] = (tmp_path / f"{tag}.json").read_bytes()
    assert outs["a"] == outs["b"] and outs["a"] != outs["c"]


def test_tuning_prints_a_summary_and_writes_the_default_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = run(["tuning", "mnist-cnn", "-w", "none", *QUICK])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("mnist-cnn (random init, seed 0): conv1: 32 units:") and "median OSI" in res.stdout
    assert (tmp_path / "mnist-cnn-first-conv-tuning.png").stat().st_size > 10_000
    res = run(["tuning", "mnist-cnn", "-w", "none", *QUICK, "-u", "conv1:4", "--plot", "unit", "-o", "one.png"])
    assert res.exit_code == 0 and (tmp_path / "one.png").stat().st_size > 5000


def test_hierarchy_with_a_baseline_of_trained_weights(tmp_path: Path) -> None:
    import torch

    import cnnlens

    weights = tmp_path / "w.pth"
    torch.save(cnnlens.create_model("mnist-cnn", seed=5).state_dict(), weights)
    res = run(["hierarchy", "mnist-cnn", "-w", weights, "--baseline", *QUICK, "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["weights"] == "w.pth" and data["baseline"]["weights"] == "random init, seed 0"
    assert [r["layer"] for r in data["rows"]] == [r["layer"] for r in data["baseline"]["rows"]] == ["conv1", "conv2"]


@pytest.mark.parametrize(
    "command,args,message",
    [
        ("tuning", ["--orientations", "0"], "Invalid value for '--orientations'"),
        ("tuning", ["--phases", "2"], "Invalid value for '--phases'"),
        ("tuning", ["--frequencies", "0.1,0.9"], "Error: --frequencies must be <= 0.5"),
        ("tuning", ["--frequencies", "x"], "Error: --frequencies 'x': expected a number"),
        ("tuning", ["--contrast", "nan"], "Error: --contrast must be a finite number"),
        ("tuning", ["--contrasts", "0.5,3"], "Error: --contrasts must be <= 1"),
        ("tuning", ["--osi-threshold", "2"], "Error: --osi-threshold must be <= 1"),
        ("tuning", ["-u", "conv9"], "Error: --unit: unknown layer 'conv9' (did you mean: conv"),
        ("tuning", ["-u", "conv2:99"], "Error: --unit: channel 99 out of range"),
        ("tuning", ["-u", "conv3:1"], "Error: --unit: unknown layer 'conv3'"),
        ("tuning", ["-l", "conv1"], "Error: No such option '-l'"),  # -u LAYER says it
        ("tuning", ["-o", "x.xyz"], "Error: -o/--output x.xyz: unknown suffix '.xyz'"),
        ("tuning", ["-o", "existing.png"], "exists"),
        ("tuning", ["--window", "box"], "Invalid value for '--window'"),
        ("tuning", ["-w", "nope.pth"], "Error: --weights file not found"),
        ("hierarchy", ["-l", "conv9"], "Error: --layer: unknown layer 'conv9' (did you mean: conv"),
        ("hierarchy", ["--frequencies", "0"], "Error: --frequencies must be > 0"),
        ("invariance", ["--data", "missing"], "Error: --data missing: no such file or folder"),
        ("invariance", ["--data", "DIR", "--transform", "rotate"], "Error: --transform: unknown transform 'rotate' (did you mean: rotation"),
        ("invariance", ["--data", "DIR", "--transform", "scale=0"], "Error: --transform must be >= 0.05"),
        ("invariance", ["--data", "DIR", "--limit", "1"], "Invalid value for '--limit'"),
        ("invariance", ["--data", "DIR", "-l", "conv9"], "Error: --layer: unknown layer 'conv9'"),
        ("invariance", ["--data", "EMPTY"], "Error: no images (.jpg"),
    ],
)
def test_bad_input_is_one_error_line_and_nothing_written(command: str, args: list[str], message: str, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing.png").write_bytes(b"keep me")
    (tmp_path / "EMPTY").mkdir()
    args = [str(folder) if a == "DIR" else a for a in args]
    weights = [] if "-w" in args else ["-w", "none"]
    extra = [] if "-o" in args else ["-o", "out.png"]
    res = run([command, "mnist-cnn", *weights, *args, *extra])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error") and message in lines[0], res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["EMPTY", "existing.png"]


@pytest.mark.parametrize("model,message", [("three-3x3", "not images"), ("mlp-mnist", "has no Conv2d layer")])
def test_models_without_images_or_convolutions_are_refused(model: str, message: str, tmp_path: Path) -> None:
    res = run(["tuning", model, "-w", "none", "-o", tmp_path / "x.png"])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1 and message in res.output, res.output
    assert not (tmp_path / "x.png").exists()
