"""Smoke test of recipes/units_filters_patches_deconv.py on a random-init model and tiny synthetic images."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "units_filters_patches_deconv.py"


@pytest.mark.slow
def test_recipe_runs_on_random_init(tmp_path: Path) -> None:
    import skimage.io

    import cnnlens

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        skimage.io.imsave(imgs / f"{i}.png", (rng.random((50, 60, 3)) * 255).astype(np.uint8), check_contrast=False)
    weights = tmp_path / "w.pth"
    torch.save(cnnlens.create_model("squeezenet1_0", seed=1).state_dict(), weights)
    main = runpy.run_path(str(RECIPE))["main"]
    out = tmp_path / "out"
    args = ["--weights", str(weights), "--data", str(imgs), "--layer", "features.4", "--limit", "4", "--top", "2", "--channels", "2", "--size", "48", "--out", str(out)]
    summary = main(args)
    assert summary["images"] == 4 and len(summary["channels"]) == 2
    assert summary["replay_max_relative_error"] < 1e-4
    assert summary["receptive_field"] == {"size": [27, 27], "stride": [4, 4], "padding": [8, 8]}
    assert 0.1 < summary["mean_gabor_r2_trained"] < 0.25 and 0.1 < summary["mean_gabor_r2_random_init"] < 0.25  # both random
    assert summary["mean_gabor_r2_trained"] != summary["mean_gabor_r2_random_init"]  # seeds 1 and 0
    assert summary["strongest_unit"].startswith("features.4:") and summary["relative_difference_from_gradient"]["deconvnet"] > 0.1
    for name in ("filters.png", "gabor_r2.png", "zeiler_fergus.png", "deconv.png"):
        assert (out / name).stat().st_size > 5_000
    index = json.loads((out / "patches.json").read_text())
    assert index["deconv_method"] == "deconvnet" and len(index["channels"][0]["patches"]) == 2
    assert index["weights"] == "w.pth" and index["random_init"] is False
