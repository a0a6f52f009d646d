"""Smoke test of recipes/relevance_concepts.py on a random-init squeezenet1_0 and synthetic images."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "relevance_concepts.py"


def test_recipe_runs_on_random_init(tmp_path: Path) -> None:
    import skimage.io

    import cnnlens

    data = tmp_path / "imgs"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        skimage.io.imsave(data / f"{i}.png", (rng.random((70, 80, 3)) * 255).astype(np.uint8), check_contrast=False)
    weights = tmp_path / "w.pth"
    torch.save(cnnlens.create_model("squeezenet1_0", seed=1).state_dict(), weights)
    out = tmp_path / "out"
    summary = runpy.run_path(str(RECIPE))["main"]([
        "--weights", str(weights), "--image", str(data / "0.png"), "--data", str(data), "--layer", "features.12", "--channels", "2",
        "--size", "64", "--out", str(out),
    ])  # fmt: skip
    assert len(summary["channels"]) == 2 and summary["sum_error"] < 1e-5 and summary["images_mined"] == 4
    c = summary["conservation"]
    assert c["pixels"] == pytest.approx(c["logit"] - c["absorbed_by_bias_and_stabilisers"], rel=1e-3, abs=1e-6)
    for name in ("channels.png", "by_relevance.png", "by_activation.png"):
        assert (out / name).stat().st_size > 5_000
    assert json.loads((out / "summary.json").read_text())["channels"] == summary["channels"]
