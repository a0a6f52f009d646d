"""Smoke test of recipes/attribution_imagenet.py on a random-init model and tiny synthetic images."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "attribution_imagenet.py"


@pytest.mark.slow
def test_recipe_runs_on_random_init(tmp_path: Path) -> None:
    import skimage.io

    import cnnlens

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        skimage.io.imsave(imgs / f"{i}.png", (rng.random((40, 50, 3)) * 255).astype(np.uint8), check_contrast=False)
    weights = tmp_path / "w.pth"
    torch.save(cnnlens.create_model("mnist-cnn", seed=1).state_dict(), weights)
    main = runpy.run_path(str(RECIPE))["main"]
    out = tmp_path / "out"
    args = ["--model", "mnist-cnn", "--weights", str(weights), "--data", str(imgs), "--limit", "4", "--sanity-limit", "2", "--show", "2",
            "--ig-steps", "4", "--steps", "4", "--out", str(out)]
    summary = main(args)
    assert summary["images"] == 4 and summary["sanity_images"] == 2 and summary["layer"] == "conv2"
    assert summary["sanity_blocks"] == ["(trained)", "linear2", "linear1", "conv2", "conv1"]
    assert set(summary["faithfulness"]["deletion"]) == {"gradcam", "integrated-gradients", "lrp", "random", "random-grid"}
    assert 0 <= summary["faithfulness"]["deletion"]["gradcam"]["better_than_random"] <= 1
    assert all(curve[0] == 1.0 and len(curve) == 5 for curve in summary["sanity_mean_correlation"].values())
    for name in ("maps.png", "faithfulness.png", "sanity.png"):
        assert (out / name).stat().st_size > 10_000
    assert json.loads((out / "summary.json").read_text()) == summary
