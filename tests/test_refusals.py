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
