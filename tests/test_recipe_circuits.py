"""Smoke test of recipes/circuits_unit.py on a random-init squeezenet1_0 and 5 synthetic images."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import torch

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "circuits_unit.py"


def test_recipe_runs_on_random_init(tmp_path: Path) -> None:
    import skimage.io

    import cnnlens

    data = tmp_path / "imgs"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        skimage.io.imsave(data / f"{i}.png", (rng.random((60, 70, 3)) * 255).astype(np.uint8), check_contrast=False)
    weights = tmp_path / "w.pth"
    torch.save(cnnlens.create_model("squeezenet1_0", seed=1).state_dict(), weights)
    out = tmp_path / "out"
    summary = runpy.run_path(str(RECIPE))["main"](["--weights", str(weights), "--data", str(data), "--unit", "features.12:3", "--top", "2", "--out", str(out)])
    assert summary["unit"] == "features.12:3" and summary["source"] == "features.10" and len(summary["top_images"]) == 2
    assert len(summary["strongest_by_weight"]) == 10 and 0 <= summary["overlap_of_top10"] <= 10 and -1 <= summary["rank_correlation"] <= 1
    assert len(summary["classes_using_it"]) == 5 and len(summary["circuit"]) == 3 + 9
    for name in ("inputs.png", "outputs.png", "circuit.png"):
        assert (out / name).stat().st_size > 5_000
    assert json.loads((out / "summary.json").read_text())["circuit"] == summary["circuit"]
