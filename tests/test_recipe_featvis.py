"""Smoke test of recipes/featvis_numbers.py on a random-init model, two made-up photos and tiny settings."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from cnnlens.images import load_image, save_image

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "featvis_numbers.py"


def test_featvis_numbers_recipe(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    torch.manual_seed(0)
    for i in range(2):
        save_image(torch.rand(3, 40, 48), photos / f"p{i}.png")
    spec = importlib.util.spec_from_file_location("featvis_numbers", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    out = tmp_path / "out"
    numbers = module.main(["--weights", "none", "--photos", str(photos), "--size", "32", "--steps", "2",
                           "--channels", "1,2", "--classes", "3", "--out", str(out)])
    assert json.loads((out / "numbers.json").read_text()) == numbers
    assert numbers["photos"] == 2 and [c["channel"] for c in numbers["channels"]] == [1, 2]
    assert numbers["classes"][0]["class_name"] == "tiger shark" and 0 < numbers["classes"][0]["p_end"] < 1
    assert numbers["weights"] == "random init, seed 0"
    for c in numbers["channels"]:
        assert abs(c["ratio"] - c["visualization"] / c["photo_mean"]) < 0.02 * abs(c["ratio"]) + 0.01
    assert load_image(out / "channels.png").shape == (3, 36, 70)
    assert load_image(out / "fourier_vs_pixels.png").shape == (3, 70, 70)
    assert (out / "classes_figure.png").stat().st_size > 5000
