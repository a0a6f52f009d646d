"""Smoke test of recipes/tuning_v1_hierarchy.py on a random-init model, tiny sizes and synthetic images."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tuning_v1_hierarchy.py"


@pytest.mark.slow
def test_recipe_runs_on_random_init(tmp_path: Path) -> None:
    import skimage.io
    import skimage.transform

    import cnnlens

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        image = skimage.transform.resize(rng.random((8, 9, 3)), (60, 70), order=1)
        skimage.io.imsave(imgs / f"{i}.png", (image * 255).astype(np.uint8), check_contrast=False)
    weights = tmp_path / "w.pth"
    torch.save(cnnlens.create_model("squeezenet1_0", seed=1).state_dict(), weights)
    main = runpy.run_path(str(RECIPE))["main"]
    out = tmp_path / "out"
    args = [
        "--weights", str(weights), "--data", str(imgs), "--layers", "features.1", "features.4", "--size", "48",
        "--orientations", "4", "--frequencies", "3", "--phases", "4", "--limit", "3", "--out", str(out),
    ]
    summary = main(args)
    assert summary["first_layer"] == "features.0" and sum(summary["classes_trained"].values()) == 96
    assert 0 < summary["median_osi_trained"] < 1 and 0 < summary["median_osi_random_init"] < 1
    assert summary["median_osi_trained"] != summary["median_osi_random_init"]  # seeds 1 and 0
    assert [r["layer"] for r in summary["hierarchy"]] == ["features.1", "features.4"] and len(summary["hierarchy_random_init"]) == 2
    assert set(summary["translation_invariance"]) == {"features.1", "features.4"}
    for name in ("conv1_tuning.png", "conv1_trained_vs_random.png", "hierarchy.png", "invariance.png"):
        assert (out / name).stat().st_size > 10_000
    assert json.loads((out / "summary.json").read_text())["gabor_like_filters"] == summary["gabor_like_filters"]
    assert "RF px" in (out / "hierarchy.txt").read_text() and "translation" in (out / "invariance.txt").read_text()
