"""Refusals that name what was wrong and the fix: exit code 2, one ``Error:`` line, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cnnlens.cli import cli
from cnnlens.images import save_image


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    import torch

    return save_image(torch.rand(3, 40, 48, generator=torch.Generator().manual_seed(0)), tmp_path / "photo.png")


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["fgsm", "squeezenet1_0", "@photo", "-w", ""], "Error: --weights is empty: give DEFAULT, none (a random init)"),
        (["filters", "squeezenet1_0", "-w", "none", "-o", "@out/a.png", "-o", "@out/a.json"], "Error: --output is given twice (-o, -o); give it once"),
        (["report", "lenet5", "--depth", "1", "--depth=2"], "Error: --depth is given twice (--depth, --depth); give it once"),
        (["deconv", "squeezenet1_0", "@photo", "-w", "none", "-u", "logit:281", "-o", "@out/d.png"], "the model's output is logits:281"),
        (["visualize", "squeezenet1_0", "-w", "none", "-u", "logit:tabby", "-o", "@out/v.png"], "a class goes with logits: logits:tabby"),
        (["deconv", "squeezenet1_0", "@photo", "-w", "none", "-u", "features.9:abc"], "channel must be an index: LAYER:CHANNEL such as features.9:3"),
        (["tuning", "lenet5", "-w", "none", "-u", "9", "-o", "@out/t.png"], "Error: --unit: layer '9' outputs (1, 84), not a (B, C, H, W) map: there is no place to put gratings on"),
        (["tuning", "lenet5", "-w", "none", "-u", "9:3", "-o", "@out/t.png"], "Error: --unit: layer '9' outputs (1, 84), not a (B, C, H, W) map: there is no place to put gratings on"),
        (["hierarchy", "lenet5", "-w", "none", "-l", "3", "-l", "11", "-o", "@out/h.png"], "Error: --layer: layer '11' outputs (1, 10), not a (B, C, H, W) map: there is no place to put gratings on"),
        (["visualize", "squeezenet1_0", "-w", "none", "-u", "features.9:1", "--diversity", "100", "-o", "@out/v.png"], "Error: --diversity: one image has nothing to differ from; give batch 2 or more"),
        (["fgsm", "squeezenet1_0", "@photo", "-w", "none", "--target", "-1", "-o", "@out/f.png"], "class -1 out of range, the model has classes 0..999"),
        (["fgsm", "squeezenet1_0", "@photo", "-w", "none", "--target", "1000", "-o", "@out/f.png"], "class 1000 out of range, the model has classes 0..999"),
        (["fgsm", "mobilenet_v2", "@photo", "-w", "ResNet18_Weights.IMAGENET1K_V1", "-o", "@out/f.png"],
         "are not mobilenet_v2's (ResNet18_Weights belongs to another model); use MobileNet_V2_Weights.DEFAULT"),
        (["tuning", "squeezenet1_0", "-w", "none", "-u", "classifier", "-o", "@out/t.png"], "a single position after a global pool: there is no place to put gratings on"),
        (["tuning", "mobilenet_v2", "-w", "none", "-u", "logits", "-o", "@out/t.png"], "Error: --unit: unknown layer 'logits'; the model's output is logits:CLASS"),
        (["hierarchy", "squeezenet1_0", "-w", "none", "-l", "classifier.3", "-o", "@out/h.png"], "Error: --layer: layer 'classifier.3' outputs (1, 1000, 1, 1), a single position after a global pool"),
        (["invariance", "squeezenet1_0", "-w", "none", "--data", "@photo", "--no-baseline", "-o", "@out/i.png"], "photo.png is one image; give a folder of at least 2 images"),
        (["invariance", "squeezenet1_0", "-w", "none", "--data", "@photo", "--transform", "--no-baseline", "-o", "@out/i.png"], "unknown transform '--no-baseline'"),
        (["patches", "squeezenet1_0", "-w", "none", "--data", "@photo", "--shard", "0/2", "-o", "@out/part.png"], "give -o PART.json, not "),
    ],
)
def test_refusal_names_the_thing_and_the_fix(args: list[str], expect: str, photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    argv = [str(photo) if a == "@photo" else a.replace("@out", str(out)) for a in args]
    before = sorted(tmp_path.rglob("*"))
    result = CliRunner().invoke(cli, argv)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expect in lines[0], result.stderr
    assert sorted(tmp_path.rglob("*")) == before and not out.exists()


def test_a_repeated_multiple_option_is_still_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["hierarchy", "lenet5", "-w", "none", "-l", "0", "-l", "3", "--orientations", "4",
                                      "--num-frequencies", "2", "--phases", "4", "--json"])
    assert result.exit_code == 0, result.output


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs a folder nothing can be written in (/proc)")
def test_an_unwritable_output_is_refused_before_any_work(photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Permissions do not tell for root or a read-only mount: the folder is tried before the work."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["fgsm", "squeezenet1_0", str(photo), "-w", "none", "-o", "/proc/cnnlens-out.png"])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "/proc is not writable" in lines[0], result.stderr


def test_merging_an_incomplete_set_names_the_missing_shard(photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.chdir(tmp_path)
    for i in range(40):
        save_image(torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(i)), tmp_path / "data" / f"{i:02d}.png")
    made = CliRunner().invoke(cli, ["patches", "squeezenet1_0", "-w", "none", "--data", "data", "-u", "features.3", "--size", "32",
                                    "-b", "8", "--shard", "0/2", "-o", "part-0.json"])  # fmt: skip
    assert made.exit_code == 0, made.output
    result = CliRunner().invoke(cli, ["merge", "part-0.json", "-o", "merged.json"])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "missing: shard 1/2 (run it with --shard 1/2" in lines[0], result.stderr
    assert not (tmp_path / "merged.json").exists()


def test_extreme_aspect_ratios_cost_what_a_normal_image_costs(tmp_path: Path) -> None:
    """A 1 x 20,000 strip: cut to what the centre crop keeps before the resize (it once made fgsm
    peak at 16 GB); run here under an 8 GB address-space limit."""
    import resource
    import subprocess
    import sys

    import numpy as np
    import skimage.io
    import torch

    import cnnlens

    strip = tmp_path / "strip.png"
    skimage.io.imsave(strip, np.zeros((1, 20000, 3), np.uint8), check_contrast=False)
    prep = cnnlens.Preprocessing()
    assert prep.prepare(torch.rand(3, 1, 20000), fit="crop").shape == (3, 224, 224)
    assert prep.prepare(torch.rand(3, 20000, 3), fit="crop").shape == (3, 224, 224)
    normal = torch.rand(3, 300, 451, generator=torch.Generator().manual_seed(0))  # below the cut: exactly the weights' transform
    import torchvision.transforms.v2.functional as TF

    assert torch.equal(prep.prepare(normal, fit="crop"), TF.center_crop(TF.resize(normal, [256], antialias=True), [224, 224]).clamp(0, 1))
    with pytest.raises(cnnlens.CnnlensError, match="crop it to an aspect ratio below"):
        prep.prepare(torch.rand(3, 1, 20000), fit="resize")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

    for command in (["fgsm", "squeezenet1_0", str(strip), "-w", "none", "-o", str(tmp_path / "f.png")],
                    ["attribute", "squeezenet1_0", str(strip), "-w", "none", "--method", "saliency", "-o", str(tmp_path / "a.png")]):  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "cnnlens", *command], capture_output=True, text=True, preexec_fn=limit, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
