"""Smoke test of recipes/style_transfer.py on a random-init backbone and tiny images."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from cnnlens.images import load_image, save_image


RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "style_transfer.py"


def test_recipe_runs_and_writes_images_and_numbers(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("style_recipe", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    g = torch.Generator().manual_seed(0)
    save_image(torch.rand(3, 32, 40, generator=g), tmp_path / "c.png")
    save_image(torch.rand(3, 36, 36, generator=g), tmp_path / "s.png")
    out = tmp_path / "out"
    numbers = module.main(["--weights", "none", "--content", str(tmp_path / "c.png"), "--style", str(tmp_path / "s.png"),
                           "--size", "32", "--steps", "2", "--invert-steps", "2", "--out", str(out)])
    assert json.loads((out / "losses.json").read_text()) == json.loads(json.dumps(numbers))
    assert set(numbers["styles"]) == {"s", "s-colors"}
    assert numbers["styles"]["s"]["final"]["total"] <= numbers["styles"]["s"]["initial"]["total"]
    assert numbers["weights"] == "random init, seed 0" and numbers["styles"]["s"]["total_never_rose"] is True
    assert list(numbers["inversions"]) == ["features.1", "features.4", "features.7", "features.10", "features.12"]
    assert all(-1 <= n["pixel_correlation"] <= 1 and n["reconstruction"] >= 0 for n in numbers["inversions"].values())
    for name in ("s.png", "s-colors.png", "invert-features.1.png", "loss_curves.png"):
        assert load_image(out / name).shape[0] == 3
