"""Smoke test of recipes/concepts_discover_and_test.py on a random-init squeezenet1_0 and synthetic images."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import torch

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "concepts_discover_and_test.py"


def test_recipe_runs_on_random_init(tmp_path: Path) -> None:
    import skimage.io

    import cnnlens

    data = tmp_path / "imgs"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(44):
        skimage.io.imsave(data / f"{i:02d}.png", (rng.random((40, 44, 3)) * 255).astype(np.uint8), check_contrast=False)
    weights = tmp_path / "w.pth"
    torch.save(cnnlens.create_model("squeezenet1_0", seed=1).state_dict(), weights)
    out = tmp_path / "out"
    summary = runpy.run_path(str(RECIPE))["main"]([
        "--weights", str(weights), "--data", str(data), "--layer", "features.4", "--concepts", "3", "--image", str(data / "00.png"),
        "--class-image", str(data / "01.png"), "--target", "5", "--steps", "2", "--size", "48", "--out", str(out),
    ])  # fmt: skip
    assert summary["n_images"] == 44 and len(summary["concepts"]) == 3
    assert summary["error_by_n"][1] > summary["error_by_n"][3]  # three concepts rebuild the layer better than one
    assert summary["nmf_check"] < 1e-3
    assert len(summary["tcav"]["scores"]) == 10 and 0 <= summary["tcav"]["p_value"] <= 1
    for name in ("concepts.png", "heatmaps.png", "tcav.png"):
        assert (out / name).stat().st_size > 5_000
    assert json.loads((out / "concepts.json").read_text())["n_concepts"] == 3
